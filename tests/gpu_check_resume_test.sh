#!/usr/bin/env bash
# The GPU check's resume after a fault (ctest label cuda-harness), on any machine: `scripts/gpu_check.sh run` over
# this build's siam_tests_cuda and siam_bench, with a crash, a poisoned CUDA context and a hang simulated in
# three tests (SIAM_TEST_SIMULATE, tests/cuda/main.cpp) and an exception, a poisoned context and a hang in three
# benchmarks (SIAM_BENCH_SIMULATE, bench/main.cpp). Every other test and benchmark must still have run, each
# fault must be named with its kind, and gpu_check.json must say not ok.
# Usage: gpu_check_resume_test.sh SIAM_TESTS_CUDA SIAM_BENCH SOURCE_DIR
set -euo pipefail
TESTS=$1
BENCH=$2
SRC=$3
WORK=$(mktemp -d /tmp/siam_gpu_resume.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bundle" "$WORK/out"
ln -s "$TESTS" "$WORK/bundle/siam_tests_cuda"
ln -s "$BENCH" "$WORK/bundle/siam_bench"

# Three tests and three benchmarks from the middle of the lists.
mapfile -t T < <("$TESTS" --gtest_list_tests | awk '/^[^ ]/ {s = $1} /^  / {print s $1}')
mapfile -t B < <("$BENCH" --benchmark_list_tests --benchmark_filter='_cuda|_nccl')
((${#T[@]} >= 8 && ${#B[@]} >= 8)) || { echo "too few tests (${#T[@]}) or benchmarks (${#B[@]})"; exit 1; }
export SIAM_TEST_SIMULATE="${T[1]}:crash,${T[4]}:sticky,${T[6]}:hang"
export SIAM_BENCH_SIMULATE="${B[1]}:throw,${B[4]}:sticky,${B[6]}:hang"
export SIAM_TEST_TIMEOUT_S=8 SIAM_BENCH_STALL_S=8 SIAM_GPU_CHECK_BUDGET=240

rc=0
(cd "$SRC" && bash scripts/gpu_check.sh run "$WORK/out" "$WORK/bundle") >"$WORK/run.txt" 2>&1 || rc=$?
tail -n 12 "$WORK/run.txt"
((rc == 1)) || { echo "gpu_check.sh run exited with $rc, expected 1 (faults found)"; cat "$WORK/run.txt"; exit 1; }

python3 - "$WORK/out" "${#T[@]}" "${#B[@]}" "${T[1]}" "${T[4]}" "${T[6]}" "${B[1]}" "${B[4]}" "${B[6]}" <<'PY'
import json, sys
out, n_tests, n_bench = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t_crash, t_sticky, t_hang, b_throw, b_sticky, b_hang = sys.argv[4:10]
g = json.load(open(f"{out}/gpu_check.json"))
t = json.load(open(f"{out}/tests_siam_tests_cuda.json"))
b = json.load(open(f"{out}/bench_cuda.json"))
def check(cond, what):
    if not cond:
        print("FAIL:", what)
        print(json.dumps(g, indent=1)[:4000])
        sys.exit(1)
check(not g["ok"], "gpu_check.json says ok")
check(len(t["tests"]) == n_tests, f'{len(t["tests"])} tests have a status, {n_tests} listed')
check(t["finished"] and t["attempts"] == 4, f'attempts {t["attempts"]}, finished {t["finished"]}')
faults = {f["test"]: f["kind"] for f in t["faults"]}
check(faults == {t_crash: "crashed (SIGABRT)", t_sticky: "sticky CUDA error", t_hang: "hung"}, f"test faults {faults}")
for name in (t_crash, t_sticky, t_hang):
    check(t["tests"][name]["status"] == "failed", f"{name} not failed")
check(g["tests"]["passed"] + g["tests"]["failed"] + g["tests"]["skipped"] == n_tests, "summary counts")
names = [r["name"] for r in b["benchmarks"]]
check(len(names) == len(set(names)) == n_bench - 2, f"{len(names)} benchmarks reported of {n_bench} (2 lost to faults)")
check(b_throw not in names and b_hang not in names and b_sticky in names, "which benchmarks were reported")
bf = {f["benchmark"]: f["kind"] for f in b["faults"]}
check(bf == {b_throw: "uncaught exception", b_sticky: "sticky CUDA error", b_hang: "hung"}, f"benchmark faults {bf}")
check(not b["not_run"] and g["benchmarks"]["run"] == n_bench - 2, "benchmarks left")
# no device here: the PyTorch reference says why it has no figure, and every goal is there without one
check("error" in g["benchmarks"]["torch_reference"], f'torch reference {g["benchmarks"]["torch_reference"]}')
check(len(g["goals"]) == 4 and all(x["met"] is None for x in g["goals"]), f'goals {g["goals"]}')
print(f"gpu_check_resume_test: {n_tests} tests and {n_bench - 2} benchmarks accounted for around 6 simulated faults")
PY
