#!/usr/bin/env python3
"""Runs the CUDA tests and benchmarks of a gpu_check bundle and writes gpu_check.json (called by
`scripts/gpu_check.sh run`; standard library only, for the GPU machine's python3).

The first run on a GPU must not lose every figure to one faulting kernel. The test and benchmark binaries stop
themselves after a kernel fault that poisons the CUDA context, a hang or an uncaught exception, with a
"[siam-guard] ..." line (tests/cuda/main.cpp, bench/main.cpp); a plain crash stops them too. This driver then
starts a fresh process with the tests or benchmarks that did not run yet, without the one at fault, until all
ran, the time is up or nothing moves. Every fault is listed in gpu_check.json with its test or benchmark.

  gpu_check_run.py --bin DIR --out OUTDIR --deadline EPOCH_S [--device TEXT] [--manifest FILE] [--missing-libs]
                   [--start EPOCH_S]
Environment: SIAM_GTEST_FILTER (default *), SIAM_BENCH_FILTER (default _cuda|_nccl), SIAM_BENCH_FIRST (a regex of
the benchmarks run before the others, default the issues' goals: nce_|ema_|xcorr_|gemm_bf16|sgemm|copy_cuda|
elementwise_cuda; empty: the binary's order), SIAM_TEST_TIMEOUT_S (one test, default 90), SIAM_BENCH_STALL_S
(one benchmark, default 90), OMP_NUM_THREADS (default 8).
After the benchmarks, in the last TORCH_RESERVE_S seconds of the budget kept for it, bench/compare/
torch_gemm_cuda.py measures PyTorch's bf16 GEMM and copy rates with this python3 (the GPU machine's has a CUDA
PyTorch); gpu_check.json's "goals" holds the issues' GPU goals computed from the run (bf16 GEMM against
PyTorch's, elementwise and EMA against the measured copy rate, fused InfoNCE against the H200's bf16 peak),
each met, not met, or without a figure.
Files in OUTDIR: tests_<binary>.json (every test's status, merged over the attempts) and .log (all attempts),
bench_cuda.json (the benchmark runs, merged) and .log (with the PyTorch reference's output), gpu_check.json
(the summary).
"""
import argparse
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

RUN_LINE = re.compile(r"^\[ RUN      \] (\S+)\s*$")
END_LINE = re.compile(r"^\[\s*(OK|FAILED|SKIPPED)\s*\] ([^\s,]+)")  # "[  FAILED  ] A/B.C/0, where GetParam() = ..."
GUARD_LINE = re.compile(r"^\[siam-guard\] (.*)$")
STATUS = {"OK": "passed", "FAILED": "failed", "SKIPPED": "skipped"}


def run_logged(cmd, env, log_path, header, timeout_s):
    """Runs cmd with stdout and stderr appended to log_path; returns (exit code, this attempt's text)."""
    with open(log_path, "a") as log:
        log.write(f"\n=== {header}\n=== {' '.join(cmd)}\n")
        log.flush()
        start = log.tell()
    with open(log_path, "a") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = p.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            rc = 124
    with open(log_path) as log:
        log.seek(start)
        text = log.read()
    return rc, text


def exit_reason(rc):
    if rc == 124:
        return "timed out (the run's budget)"
    if rc < 0:
        return f"crashed ({signal.Signals(-rc).name})"
    return {86: "hung", 87: "sticky CUDA error", 88: "uncaught exception"}.get(rc, f"exit code {rc}")


def print_tail(path, n):
    """The last n lines of a log, into run.log and the caller's output."""
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()[-n:]
    except OSError:
        return
    print(f"gpu_check: the end of {os.path.basename(path)}:\n" + "".join(lines), flush=True)


def guard_detail(text):
    lines = [m.group(1) for m in map(GUARD_LINE.match, text.splitlines()) if m]
    return lines[-1] if lines else ""


# ------------------------------------------------------------------------------------------------------ tests
def parse_gtest_log(text):
    """(status of each test that ended, the test that started and did not end or None)."""
    done, current = {}, None
    for line in text.splitlines():
        m = RUN_LINE.match(line)
        if m:
            current = m.group(1)
            continue
        m = END_LINE.match(line)
        if m:
            if m.group(2) == current:
                done[current] = STATUS[m.group(1)]
                current = None
    return done, current


def parse_gtest_json(path):
    with open(path) as f:
        g = json.load(f)
    result = {}
    for suite in g.get("testsuites", []):
        for t in suite.get("testsuite", []):
            if t.get("status", "RUN") != "RUN":
                continue
            name = f'{suite["name"]}.{t["name"]}'
            if t.get("failures"):
                msg = "\n".join(f.get("failure", "") for f in t["failures"])
                result[name] = ("failed", msg[:2000])
            elif t.get("result") == "SKIPPED":
                result[name] = ("skipped", "")
            else:
                result[name] = ("passed", "")
    return result


def with_excluded(filt, names):
    if not names:
        return filt
    pos, _, neg = filt.partition("-")
    return f"{pos or '*'}-" + ":".join(([neg] if neg else []) + sorted(names))


def run_tests(binary, out, deadline, reserve_s, tmp):
    name = os.path.basename(binary)
    log = os.path.join(out, f"tests_{name}.log")
    base_filter = os.environ.get("SIAM_GTEST_FILTER", "*")
    env = dict(os.environ)
    env.setdefault("SIAM_TEST_TIMEOUT_S", "90")
    env.setdefault("OMP_NUM_THREADS", "8")
    tests, faults, attempts = {}, [], 0
    finished, stop_reason = False, ""
    while True:
        left = deadline - time.time() - reserve_s
        if left < 10:
            stop_reason = "no time left"
            break
        attempts += 1
        js = os.path.join(tmp, f"{name}.{attempts}.json")
        filt = with_excluded(base_filter, list(tests))
        rc, text = run_logged([binary, f"--gtest_filter={filt}", f"--gtest_output=json:{js}"], env, log,
                              f"attempt {attempts} ({len(tests)} tests excluded, {left:.0f} s left)", left)
        print(f"gpu_check: {name} attempt {attempts}: exit {rc}", flush=True)
        try:
            for t, (status, msg) in parse_gtest_json(js).items():
                tests[t] = {"status": status, **({"message": msg} if msg else {})}
            finished = True  # gtest wrote its JSON: the run went to its end (rc 1 means failed tests)
            if rc not in (0, 1):
                stop_reason = f"exit code {rc} after the tests"
            break
        except (OSError, ValueError):
            pass
        done, current = parse_gtest_log(text)
        for t, status in done.items():
            tests[t] = {"status": status, "message": "(from the log: the process did not finish)"}
        if current is None:
            stop_reason = f"{exit_reason(rc)} outside any test; see {os.path.basename(log)}"
            break
        detail = guard_detail(text) or exit_reason(rc)
        tests[current] = {"status": "failed", "message": f"{exit_reason(rc)}: {detail}"}
        faults.append({"test": current, "kind": exit_reason(rc), "detail": detail, "attempt": attempts})
        print(f"gpu_check: {name}: {current} {exit_reason(rc)}; resuming without it", flush=True)
        if attempts >= 12:
            stop_reason = "12 attempts"
            break
    counts = {k: sum(1 for t in tests.values() if t["status"] == k) for k in ("passed", "failed", "skipped")}
    merged = {"binary": name, "filter": base_filter, "attempts": attempts, "finished": finished,
              "stop_reason": stop_reason, "faults": faults, **counts, "tests": tests}
    with open(os.path.join(out, f"tests_{name}.json"), "w") as f:
        json.dump(merged, f, indent=1)
    print_tail(log, 40)
    return merged


# ------------------------------------------------------------------------------------------------- benchmarks
def load_bench_json(path):
    """The runs of a Google Benchmark JSON file, also of one cut short (killed while writing)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, []
    try:
        data = json.loads(text)
    except ValueError:
        cut = text.rfind("\n    }")
        try:
            data = json.loads(text[:cut + 6] + "\n  ]\n}\n") if cut > 0 else None
        except ValueError:
            data = None
    if not data:
        return None, []
    return data.get("context"), [b for b in data.get("benchmarks", []) if b.get("run_type", "iteration") == "iteration"]


def bench_regex(names):
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


def run_bench(binary, out, deadline, tmp):
    log = os.path.join(out, "bench_cuda.log")
    env = dict(os.environ)
    env.setdefault("SIAM_BENCH_STALL_S", "90")
    filt = os.environ.get("SIAM_BENCH_FILTER", "_cuda|_nccl")
    listing = subprocess.run([binary, "--benchmark_list_tests", f"--benchmark_filter={filt}"], env=env,
                             capture_output=True, text=True, timeout=60)
    planned = [l.strip() for l in listing.stdout.splitlines() if l.strip()]
    # The issues' goals first (fused InfoNCE, EMA, cross-correlation, GEMM, copy and elementwise rates), so that
    # a run cut short by the budget still measures them; then the rest. Each phase keeps the binary's order.
    first_re = os.environ.get("SIAM_BENCH_FIRST", r"nce_|ema_|xcorr_|gemm_bf16|sgemm|copy_cuda|elementwise_cuda")
    first = [n for n in planned if first_re and re.search(first_re, n)]
    phases = [first, [n for n in planned if n not in set(first)]]
    runs, faults, context, attempts = [], [], None, 0
    stop_reason, not_run = "", []
    for phase in phases:
        remaining = list(phase)
        while remaining and not stop_reason:
            left = deadline - time.time() - 5
            if left < 5:
                stop_reason = "no time left"
                break
            attempts += 1
            js = os.path.join(tmp, f"bench.{attempts}.json")
            rc, text = run_logged([binary, f"--benchmark_filter={bench_regex(remaining)}", f"--benchmark_out={js}",
                                   "--benchmark_out_format=json"], env, log,
                                  f"attempt {attempts} ({len(remaining)} benchmarks, {left:.0f} s left)", left)
            print(f"gpu_check: siam_bench attempt {attempts}: exit {rc}", flush=True)
            ctx, got = load_bench_json(js)
            context = context or ctx
            runs += got
            seen = {b["name"] for b in got}
            remaining = [n for n in remaining if n not in seen]
            if rc == 0 or not remaining:
                break
            detail = guard_detail(text) or exit_reason(rc)
            if rc == 87:  # the last benchmark reported left the context poisoned: its figures are suspect
                faults.append({"benchmark": got[-1]["name"] if got else "(none)", "kind": exit_reason(rc),
                               "detail": detail, "attempt": attempts})
            else:  # the first one not reported was running
                culprit = remaining.pop(0)
                faults.append({"benchmark": culprit, "kind": exit_reason(rc), "detail": detail, "attempt": attempts})
            print(f"gpu_check: siam_bench: {faults[-1]['benchmark']} {exit_reason(rc)}; resuming after it",
                  flush=True)
            if attempts >= 12:
                stop_reason = "12 attempts"
        not_run += remaining
    merged = {"context": context, "filter": filt, "planned": len(planned), "attempts": attempts,
              "not_run": not_run, "stop_reason": stop_reason, "faults": faults, "benchmarks": runs}
    with open(os.path.join(out, "bench_cuda.json"), "w") as f:
        json.dump(merged, f, indent=1)
    print_tail(log, 60)
    return merged


# ----------------------------------------------------------------------------------------- goals and references
H200_BF16_DENSE = 989e12  # FLOP/s, H200 SXM dense bf16 tensor-core peak (NVIDIA's figure, without sparsity)
TORCH_RESERVE_S = 40  # the end of the budget kept from the benchmarks for the PyTorch reference


def run_torch_reference(out, deadline):
    """PyTorch's bf16 GEMM and copy rates on this GPU (bench/compare/torch_gemm_cuda.py, this python3), the
    reference of the GEMM goal; its output goes to bench_cuda.log. Run after siam's benchmarks, in what is left
    of the budget (at most 60 s), so that it never costs them their time. PyTorch finds its own NVIDIA libraries
    (its run path): the LD_LIBRARY_PATH gpu_check.sh set for siam's binaries is left out. A dict, with "error"
    when there is no figure."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "bench", "compare",
                          "torch_gemm_cuda.py")
    left = deadline - time.time() - 5
    if not os.path.exists(script):
        return {"error": f"{script} not found"}
    if left < 20:
        return {"error": f"not run: {left:.0f} s left of the budget after the benchmarks"}
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    rc, text = run_logged([sys.executable, script], env, os.path.join(out, "bench_cuda.log"),
                          "PyTorch reference (bench/compare/torch_gemm_cuda.py)", min(60.0, left - 2))
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    return {"error": f"{exit_reason(rc) if rc else 'exit 0'}, no result line (see bench_cuda.log)"}


def bench_rate(results, pattern, counter):
    """The largest `counter` of the results whose name matches `pattern` (a regex), and that name; (None, None)
    when none ran."""
    best, name = None, None
    for r in results:
        v = r.get(counter)
        if isinstance(v, (int, float)) and re.match(pattern, r["name"]) and (best is None or v > best):
            best, name = v, r["name"]
    return best, name


def goals(results, torch_ref):
    """Issue 3's and 4's GPU goals from this run's figures: each {goal, value, target, met, detail}; met is None
    when a figure is missing."""
    out = []

    def add(goal, value, target, detail):
        out.append({"goal": goal, "value": None if value is None else round(value, 4), "target": target,
                    "met": None if value is None else value >= target, "detail": detail})

    copy, copy_name = bench_rate(results, r"BM_copy_cuda/", "bytes")
    copy_detail = f"{copy_name}: {copy / 1e9:.0f} GB/s" if copy else "BM_copy_cuda did not run"
    ours, name = bench_rate(results, r"BM_gemm_bf16_cuda/8192/", "flops")
    gemm_ref = torch_ref.get("gemm_bf16")
    ref = gemm_ref.get("tflops") if isinstance(gemm_ref, dict) else None
    ref = ref if isinstance(ref, (int, float)) and ref > 0 else None
    add("bf16 GEMM at 8192^3 / PyTorch's on the same GPU (issue 3)", ours / 1e12 / ref if ours and ref else None,
        0.8, f"{name}: {ours / 1e12:.0f} TFLOP/s" if ours else "BM_gemm_bf16_cuda/8192 did not run")
    out[-1]["detail"] += (f"; PyTorch {torch_ref.get('torch')}: {ref:.0f} TFLOP/s" if ref
                          else f"; PyTorch: {torch_ref.get('error', 'no figure')}")
    ew, name = bench_rate(results, r"BM_elementwise_cuda/", "bytes")
    add("elementwise rate / measured device copy rate (issue 3)", ew / copy if ew and copy else None, 0.85,
        (f"{name}: {ew / 1e9:.0f} GB/s" if ew else "BM_elementwise_cuda did not run") + "; " + copy_detail)
    nce, name = bench_rate(results, r"BM_nce_fused_bf16_cuda/(16384|32768|65536)/256/", "flops")
    add("fused InfoNCE bf16, 2N >= 32768, D 256, / the H200's dense bf16 rate (issue 4)",
        nce / H200_BF16_DENSE if nce else None, 0.5,
        f"{name}: {nce / 1e12:.0f} TFLOP/s of {H200_BF16_DENSE / 1e12:.0f}" if nce else "did not run")
    ema, name = bench_rate(results, r"BM_ema_fused_cuda/", "bytes")
    add("EMA over ResNet-50's parameters / measured device copy rate (issue 4)", ema / copy if ema and copy else None,
        0.8, (f"{name}: {ema / 1e9:.0f} GB/s" if ema else "BM_ema_fused_cuda did not run") + "; " + copy_detail)
    return out


# ------------------------------------------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--deadline", type=float, required=True, help="epoch seconds by which everything has ended")
    ap.add_argument("--start", type=float, default=time.time())
    ap.add_argument("--device", default="none")
    ap.add_argument("--manifest", default="")
    ap.add_argument("--missing-libs", action="store_true")
    ap.add_argument("--bench-reserve", type=float, default=160,
                    help="seconds kept for the benchmarks and, in their last TORCH_RESERVE_S, the PyTorch reference")
    a = ap.parse_args()

    summary = {"device": a.device, "tests": {"passed": 0, "failed": 0, "skipped": 0, "binaries": {}},
               "benchmarks": {"run": 0, "results": []}}
    try:
        with open(a.manifest) as f:
            summary["bundle"] = [l.strip() for l in f.readlines()[1:3]]
    except OSError:
        pass
    problems = ["missing shared libraries (see run.log)"] if a.missing_libs else []
    bench = os.path.join(a.bin, "siam_bench")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for binary in sorted(glob.glob(os.path.join(a.bin, "siam_tests*_cuda"))):
            if not os.access(binary, os.X_OK):
                continue
            reserve = a.bench_reserve if os.access(bench, os.X_OK) else 0
            r = run_tests(binary, a.out, a.deadline, reserve, tmp)
            entry = {k: r[k] for k in ("passed", "failed", "skipped", "attempts", "finished", "faults")}
            entry["failed_tests"] = sorted(t for t, v in r["tests"].items() if v["status"] == "failed")
            summary["tests"]["binaries"][r["binary"]] = entry
            for k in ("passed", "failed", "skipped"):
                summary["tests"][k] += r[k]
            if r["faults"]:
                problems.append(f'{len(r["faults"])} fault(s) in {r["binary"]}: '
                                + ", ".join(f'{x["test"]} ({x["kind"]})' for x in r["faults"]))
            if r["stop_reason"]:
                problems.append(f'{r["binary"]} stopped: {r["stop_reason"]}')
        if not summary["tests"]["binaries"]:
            summary["tests"]["note"] = "no cuda test binary (siam_tests*_cuda) in the bundle"
        if summary["tests"]["failed"]:
            problems.append(f'{summary["tests"]["failed"]} test(s) failed')
        if os.access(bench, os.X_OK):
            b = run_bench(bench, a.out, a.deadline - TORCH_RESERVE_S, tmp)
            try:
                torch_ref = run_torch_reference(a.out, a.deadline)
            except Exception as e:  # the summary must still be written
                torch_ref = {"error": f"the reference step failed: {e!r}"}
            print(f"gpu_check: PyTorch reference: {json.dumps(torch_ref)}", flush=True)
            summary["benchmarks"]["torch_reference"] = torch_ref
            summary["benchmarks"]["context"] = {k: (b["context"] or {}).get(k) for k in ("num_cpus", "mhz_per_cpu")}
            for run in b["benchmarks"]:
                r = {"name": run["name"], "real_time": run.get("real_time"), "time_unit": run.get("time_unit")}
                for k in ("flops", "bytes", "bytes_peak", "pct_of_peak", "pct_of_copy", "peak_fraction",
                          "error_message"):
                    if k in run:
                        r[k] = run[k]
                summary["benchmarks"]["results"].append(r)
            summary["benchmarks"].update(run=len(b["benchmarks"]), planned=b["planned"], attempts=b["attempts"],
                                         faults=b["faults"], not_run=b["not_run"])
            if b["faults"]:
                problems.append(f'{len(b["faults"])} benchmark fault(s): '
                                + ", ".join(f'{x["benchmark"]} ({x["kind"]})' for x in b["faults"]))
            if b["not_run"]:
                problems.append(f'{len(b["not_run"])} benchmark(s) not run ({b["stop_reason"] or "see bench_cuda.log"})')
            try:
                summary["goals"] = goals(summary["benchmarks"]["results"], torch_ref)
            except Exception as e:  # a malformed figure must not cost the summary
                summary["goals"] = [{"goal": "all", "value": None, "target": None, "met": None,
                                     "detail": f"goals() failed: {e!r}"}]
            for g in summary["goals"]:
                state = "no figure" if g["met"] is None else "met" if g["met"] else "NOT met"
                print(f'gpu_check: goal {state}: {g["goal"]}: {g["value"]} (target {g["target"]}); {g["detail"]}',
                      flush=True)
        else:
            summary["benchmarks"]["note"] = "no siam_bench in the bundle"
    summary["wall_s"] = round(time.time() - a.start, 1)
    summary["ok"] = not problems
    summary["problems"] = problems
    with open(os.path.join(a.out, "gpu_check.json"), "w") as f:
        json.dump(summary, f, indent=1)
    t = summary["tests"]
    print(f'gpu_check: device {summary["device"]}; tests {t["passed"]} passed, {t["failed"]} failed, '
          f'{t["skipped"]} skipped; {summary["benchmarks"]["run"]} benchmarks; {summary["wall_s"]} s; '
          + ("ok" if summary["ok"] else "PROBLEMS: " + "; ".join(problems)), flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
