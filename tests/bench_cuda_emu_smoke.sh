#!/usr/bin/env bash
# Every CUDA benchmark once on the CUDA emulator (ctest bench.cuda_emu_smoke, label cuda-emu): siam_bench_emu
# with SIAM_BENCH_SMOKE=1 registers each as "smoke/<name>" at small sizes (bench/smoke.h). Each must report a
# result without an error (no "no CUDA device", no exception). BM_allreduce_nccl is not among them (it needs
# a communicator; the emulated NCCL runs over MPI ranks, tests/dist).
# Usage: bench_cuda_emu_smoke.sh SIAM_BENCH_EMU
set -euo pipefail
BIN=$1
WORK=$(mktemp -d /tmp/siam_bench_smoke.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export SIAM_BENCH_SMOKE=1 SIAM_EXPECT_CUDA=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mapfile -t LISTED < <("$BIN" --benchmark_list_tests --benchmark_filter='^smoke/')
((${#LISTED[@]} >= 30)) || { echo "only ${#LISTED[@]} smoke benchmarks registered"; exit 1; }
t0=$SECONDS
"$BIN" --benchmark_filter='^smoke/' --benchmark_out="$WORK/out.json" --benchmark_out_format=json \
  > "$WORK/out.txt" 2>&1 || { tail -n 30 "$WORK/out.txt"; echo "siam_bench_emu failed"; exit 1; }
python3 - "$WORK/out.json" "${#LISTED[@]}" "$((SECONDS - t0))" <<'PY'
import json, sys
runs = [b for b in json.load(open(sys.argv[1]))["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
bad = [f'{b["name"]}: {b.get("error_message", "?")}' for b in runs if b.get("error_occurred")]
if len(runs) != int(sys.argv[2]) or bad:
    print(f"{len(runs)} of {sys.argv[2]} smoke benchmarks reported; errors:", *bad, sep="\n  ")
    sys.exit(1)
print(f"bench_cuda_emu_smoke: {len(runs)} CUDA benchmarks ran once on the emulator in {sys.argv[3]} s")
PY
