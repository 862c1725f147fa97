#!/usr/bin/python3
"""PyTorch CPU reference timings for the shapes of bench/bench_conv.cpp (siam_bench BM_conv2d_*), plus sgemm.

Run with Debian's python3-torch:  /usr/bin/python3 bench/compare/torch_cpu_ops.py --threads 2
Prints one line per shape: forward, backward (input + weight gradients, no bias) and forward+backward GFLOP/s,
with FLOPs counted as in bench_conv.cpp (forward 2*N*Cout*OH*OW*Cin*k*k, backward twice that).
--json FILE also writes the numbers as JSON.
--table --siam-json A.json [B.json ...] --torch-json X.json [Y.json ...] prints the siam vs PyTorch markdown table of
docs/PERF.md from siam_bench --benchmark_format=json outputs and this script's --json outputs (median run per shape; --stat best for the best).
--siam-bench build/bench/siam_bench --rounds 5 alternates siam_bench and PyTorch shape by shape (same machine load
for both) and prints that table; set OMP_NUM_THREADS to --threads for siam.
siam's columns are BM_conv2d_cpu / BM_conv2d_bwd_cpu (the path siam::conv2d dispatches to: oneDNN when built with
it); when the JSON also holds BM_conv2d_im2col_cpu / BM_conv2d_bwd_im2col_cpu (always run by --siam-bench unless
--no-im2col), two more columns give the im2col + OpenBLAS path's fwd+bwd GFLOP/s and its ratio to PyTorch.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def stem_shapes():
    """ResNet-18 CIFAR stem on 28x28x1 input, batch 256: (N, C_in, H, C_out, k, stride, pad)."""
    out = []
    for wd in (64, 16):
        out += [
            (256, 1, 28, wd, 3, 1, 1),
            (256, wd, 28, wd, 3, 1, 1),
            (256, wd, 28, 2 * wd, 3, 2, 1),
            (256, 2 * wd, 14, 2 * wd, 3, 1, 1),
            (256, 2 * wd, 14, 4 * wd, 3, 2, 1),
            (256, 4 * wd, 7, 4 * wd, 3, 1, 1),
            (256, 4 * wd, 7, 8 * wd, 3, 2, 1),
            (256, 8 * wd, 4, 8 * wd, 3, 1, 1),
            (256, wd, 28, 2 * wd, 1, 2, 0),
            (256, 2 * wd, 14, 4 * wd, 1, 2, 0),
            (256, 4 * wd, 7, 8 * wd, 1, 2, 0),
        ]
    return out


def bench(fn, min_time):
    """One warm-up call, then calls until min_time has passed (at least 2); mean seconds per call, as Google
    Benchmark reports for siam_bench. Run the script several times and combine the runs (--table takes the median)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= min_time and n >= 2:
            return el / n


def shape_label(s):
    N, C, H, K, k, st, p = s
    return "%d->%d %dx%d s%d @%dx%d N%d" % (C, K, k, k, st, H, H, N)


def conv_case(s, min_time):
    N, C, H, K, k, st, p = s
    OH = (H + 2 * p - k) // st + 1
    flops = 2.0 * N * K * OH * OH * C * k * k
    x = torch.rand(N, C, H, H) * 2 - 1
    w = torch.rand(K, C, k, k) * 2 - 1
    with torch.no_grad():
        t_fwd = bench(lambda: F.conv2d(x, w, None, st, p), min_time)
    xg = x.clone().requires_grad_(True)
    wg = w.clone().requires_grad_(True)
    y = F.conv2d(xg, wg, None, st, p)
    gy = torch.rand_like(y) * 2 - 1
    t_bwd = bench(lambda: torch.autograd.grad(y, [xg, wg], gy, retain_graph=True), min_time)

    def fwd_bwd():
        yy = F.conv2d(xg, wg, None, st, p)
        torch.autograd.grad(yy, [xg, wg], gy)

    t_fb = bench(fwd_bwd, min_time)
    return {
        "shape": shape_label(s),
        "args": list(s),
        "fwd_ms": t_fwd * 1e3,
        "bwd_ms": t_bwd * 1e3,
        "fwd_bwd_ms": t_fb * 1e3,
        "fwd_gflops": flops / t_fwd / 1e9,
        "bwd_gflops": 2 * flops / t_bwd / 1e9,
        "fwd_bwd_gflops": 3 * flops / t_fb / 1e9,
    }


def gemm_case(m, n, k, min_time):
    a = torch.rand(m, k)
    b = torch.rand(k, n)
    t = bench(lambda: torch.mm(a, b), min_time)
    return {"shape": "sgemm %dx%dx%d" % (m, n, k), "ms": t * 1e3, "gflops": 2.0 * m * n * k / t / 1e9}


def load_best(paths, kind, stat="median"):
    """Per shape over several runs: the median (robust to the outliers of a shared machine, in both directions)
    or the best run. siam: Google Benchmark JSON; torch: this script's --json output."""
    runs = {}
    for path in paths:
        with open(path) as f:
            d = json.load(f)
        if kind == "siam":
            for b in d["benchmarks"]:
                if b.get("run_type", "iteration") != "iteration":
                    continue  # skip mean/median/stddev aggregates of --benchmark_repetitions
                parts = b["name"].split("/")
                fields = {"BM_conv2d_cpu": "fwd", "BM_conv2d_bwd_cpu": "bwd",
                          "BM_conv2d_im2col_cpu": "im2col_fwd", "BM_conv2d_bwd_im2col_cpu": "im2col_bwd"}
                if parts[0] not in fields:
                    continue
                key = tuple(int(x) for x in parts[1:8])
                field = fields[parts[0]]
                ms = b["real_time"] * {"ms": 1.0, "us": 1e-3, "ns": 1e-6, "s": 1e3}[b["time_unit"]]
                runs.setdefault(key, {}).setdefault(field + "_ms", []).append(ms)
        else:
            for r in d["conv"]:
                e = runs.setdefault(tuple(r["args"]), {})
                for field in ("fwd_ms", "bwd_ms", "fwd_bwd_ms"):
                    e.setdefault(field, []).append(r[field])
    out = {}
    for key, e in runs.items():
        for pre in ("", "im2col_"):
            if kind == "siam" and pre + "fwd_ms" in e and pre + "bwd_ms" in e:
                e[pre + "fwd_bwd_ms"] = [f + b for f, b in zip(e[pre + "fwd_ms"], e[pre + "bwd_ms"])]
        red = {}
        for field, v in e.items():
            v = sorted(v)
            red[field] = v[0] if stat == "best" else (v[len(v) // 2] if len(v) % 2 else 0.5 * (v[len(v) // 2 - 1] + v[len(v) // 2]))
        out[key] = red
    return out


def print_table(siam_paths, torch_paths, stat="median"):
    """Markdown table: GFLOP/s of siam and PyTorch per shape and direction, ratio siam / torch."""
    siam, torch_ = load_best(siam_paths, "siam", stat), load_best(torch_paths, "torch", stat)
    im2col = any("im2col_fwd_bwd_ms" in v for v in siam.values())
    print("(%s of %d siam runs and %d PyTorch runs per shape)" % (stat, len(siam_paths), len(torch_paths)))
    print("| shape | fwd siam | fwd torch | ratio | bwd siam | bwd torch | ratio | fwd+bwd siam | fwd+bwd torch | ratio |"
          + (" fwd+bwd im2col | ratio |" if im2col else ""))
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if im2col else ""))
    tot = {"siam": 0.0, "torch": 0.0, "im2col": 0.0}
    for s in stem_shapes():
        if s not in siam or s not in torch_:
            continue
        N, C, H, K, k, st, p = s
        OH = (H + 2 * p - k) // st + 1
        fl = 2.0 * N * K * OH * OH * C * k * k
        row = [shape_label(s)]
        for field, mult in (("fwd_ms", 1), ("bwd_ms", 2), ("fwd_bwd_ms", 3)):
            a, b = siam[s][field], torch_[s][field]
            row += ["%.1f" % (mult * fl / a / 1e6), "%.1f" % (mult * fl / b / 1e6), "%.2f" % (b / a)]
        if im2col:
            a = siam[s].get("im2col_fwd_bwd_ms")
            row += ["%.1f" % (3 * fl / a / 1e6), "%.2f" % (torch_[s]["fwd_bwd_ms"] / a)] if a else ["-", "-"]
            tot["im2col"] += a or 0.0
        tot["siam"] += siam[s]["fwd_bwd_ms"]
        tot["torch"] += torch_[s]["fwd_bwd_ms"]
        print("| " + " | ".join(row) + " |")
    print()
    print("Sum of fwd+bwd times over these shapes: siam %.0f ms, torch %.0f ms (ratio torch/siam %.2f)"
          % (tot["siam"], tot["torch"], tot["torch"] / max(tot["siam"], 1e-9))
          + ("; siam im2col %.0f ms (ratio torch/im2col %.2f)" % (tot["im2col"], tot["torch"] / max(tot["im2col"], 1e-9))
             if im2col else ""))


def interleaved(siam_bench, rounds, min_time, out_prefix, stat, im2col=True):
    """Alternates siam_bench and PyTorch shape by shape, `rounds` times, so both see the same machine load;
    writes out_prefix + siam_<r>.json / torch_<r>.json and prints the table (median run per shape; --stat best for the best)."""
    import os
    import subprocess
    siam_paths, torch_paths = [], []
    for r in range(rounds):
        sj = {"benchmarks": []}
        tj = {"conv": [], "gemm": []}
        for s in stem_shapes():
            args = "/".join(str(v) for v in s)
            flt = ("^BM_conv2d_(bwd_)?(im2col_)?cpu/%s/" if im2col else "^BM_conv2d_(bwd_)?cpu/%s/") % args
            out = subprocess.run([siam_bench, "--benchmark_filter=" + flt, "--benchmark_format=json"],
                                 check=True, capture_output=True, text=True).stdout
            sj["benchmarks"] += json.loads(out)["benchmarks"]
            tj["conv"].append(conv_case(s, min_time))
            print("round %d %-34s done" % (r + 1, shape_label(s)), flush=True)
        for kind, d, paths in (("siam", sj, siam_paths), ("torch", tj, torch_paths)):
            path = "%s%s_%d.json" % (out_prefix, kind, r + 1)
            with open(path, "w") as f:
                json.dump(d, f)
            paths.append(path)
    print_table(siam_paths, torch_paths, stat)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", action="store_true",
                    help="print a siam vs torch markdown table from --siam-json and --torch-json (best of runs)")
    ap.add_argument("--siam-json", nargs="*", default=[])
    ap.add_argument("--torch-json", nargs="*", default=[])
    ap.add_argument("--siam-bench", default="",
                    help="path of siam_bench: alternate siam and torch shape by shape (--rounds times) and print the table")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-im2col", action="store_true",
                    help="with --siam-bench: skip the explicit im2col + OpenBLAS benchmarks (BM_conv2d_*im2col_cpu)")
    ap.add_argument("--stat", choices=("median", "best"), default="median", help="how --table combines runs")
    ap.add_argument("--out-prefix", default="/tmp/conv_cmp_")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--filter", default="", help="only shapes whose label contains this string")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.table:
        print_table(a.siam_json, a.torch_json, a.stat)
        return
    if a.siam_bench:
        torch.set_num_threads(a.threads)
        interleaved(a.siam_bench, a.rounds, a.min_time, a.out_prefix, a.stat, not a.no_im2col)
        return
    torch.set_num_threads(a.threads)
    print("torch %s, threads %d, mkldnn %s" % (torch.__version__, torch.get_num_threads(),
                                             torch.backends.mkldnn.is_available()))
    res = {"threads": a.threads, "torch": torch.__version__, "conv": [], "gemm": []}
    for m, n, k in ((1024, 1024, 1024), (256, 4608, 576)):
        r = gemm_case(m, n, k, a.min_time)
        res["gemm"].append(r)
        print("%-34s %8.2f ms %8.1f GFLOP/s" % (r["shape"], r["ms"], r["gflops"]), flush=True)
    print("%-34s %9s %9s %9s   (GFLOP/s)" % ("conv2d", "fwd", "bwd", "fwd+bwd"))
    for s in stem_shapes():
        if a.filter and a.filter not in shape_label(s):
            continue
        r = conv_case(s, a.min_time)
        res["conv"].append(r)
        print("%-34s %9.1f %9.1f %9.1f" % (r["shape"], r["fwd_gflops"], r["bwd_gflops"], r["fwd_bwd_gflops"]),
              flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
