#!/usr/bin/env bash
# The siam program on a CUDA device (ctest label cuda-emu): siam_emu is the siam program linked with the CUDA
# emulator (kernels/emu/simt.h), so `train.device=cuda` runs siam's kernels on the CPU. Checks: the first step's
# loss on the device equals the CPU's (the runs then drift apart by rounding, as two CPU runs with other thread
# counts do), bf16 mixed precision, --resume on the device, a CPU evaluation of the device's checkpoint, and two
# ranks under mpirun with a device each (NCCL emulated over MPI).
# Usage: cli_cuda_emu_test.sh SIAM_EMU_BINARY SIAM_BINARY SOURCE_DIR
set -euo pipefail
EMU=$1
SIAM=$2
SRC=$3
CFG=$SRC/tests/e2e/tiny_synthetic.yaml
WORK=$(mktemp -d /tmp/siam_cli_emu.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export SIAM_EXPECT_CUDA=1

# 1. One epoch on the device and on the CPU: the same first loss, the run's files.
"$EMU" train --config "$CFG" --set out_dir="$WORK/dev" --set train.epochs=1 --set train.device=cuda > "$WORK/dev.txt"
"$SIAM" train --config "$CFG" --set out_dir="$WORK/cpu" --set train.epochs=1 > "$WORK/cpu.txt"
first() { grep -m1 'step 1/6' "$1" | grep -o 'loss [0-9.]*'; }
[ -n "$(first "$WORK/dev.txt")" ] || fail "no first step on the device: $(tail -n 3 "$WORK/dev.txt")"
[ "$(first "$WORK/dev.txt")" = "$(first "$WORK/cpu.txt")" ] ||
  fail "first loss on the device ($(first "$WORK/dev.txt")) differs from the CPU's ($(first "$WORK/cpu.txt"))"
tail -n 1 "$WORK/dev.txt" | grep -q '^{"method": "simclr".*"knn_top1": [0-9.]*' || fail "device run: no final JSON line"
for f in metrics.jsonl checkpoint.safetensors encoder.safetensors; do
  [ -s "$WORK/dev/$f" ] || fail "device run: missing $f"
done

# 2. bf16 mixed precision on the device (the InfoNCE logits on the emulated tensor cores).
"$EMU" train --config "$CFG" --set out_dir="$WORK/bf16" --set train.epochs=1 --set train.device=cuda \
  --set train.precision=bf16 > "$WORK/bf16.txt"
tail -n 1 "$WORK/bf16.txt" | grep -q '"loss": [0-9]' || fail "bf16 run: $(tail -n 2 "$WORK/bf16.txt")"

# 3. --resume on the device, then the device's checkpoint evaluated on the CPU.
"$EMU" train --resume "$WORK/dev" --set train.epochs=2 > "$WORK/resumed.txt"
grep -q "resumed from" "$WORK/resumed.txt" || fail "device resume did not say where it continued"
tail -n 1 "$WORK/resumed.txt" | grep -q '"epochs": 2' || fail "device resume did not finish"
"$SIAM" eval knn --checkpoint "$WORK/dev" --kind synthetic --k 5 > "$WORK/knn.txt"
tail -n 1 "$WORK/knn.txt" | grep -q '"top1": [0-9.]*' || fail "CPU eval of the device checkpoint: $(cat "$WORK/knn.txt")"

# 4. Two ranks, a device each, synchronized batch norm.
if command -v mpirun > /dev/null && "$EMU" version | grep -q "^mpi: yes"; then
  SIAM_EMU_DEVICES=2 OMPI_MCA_btl_vader_single_copy_mechanism=none OMP_NUM_THREADS=1 \
    mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 \
    "$EMU" train --config "$CFG" --set out_dir="$WORK/dist" --set train.epochs=1 --set train.threads=1 \
    --set train.device=cuda --set train.sync_bn=true > "$WORK/dist.txt"
  [ "$(grep -c '^{"method"' "$WORK/dist.txt")" -eq 1 ] || fail "mpirun: expected one final JSON line: $(cat "$WORK/dist.txt")"
  grep -q "x 2 ranks" "$WORK/dist.txt" || fail "mpirun: the run did not see 2 ranks"
  # half the batch on each rank, synchronized batch norm, DDP: the first step is the one-process step
  [ "$(first "$WORK/dist.txt")" = "$(first "$WORK/cpu.txt")" ] ||
    fail "2 ranks: first loss $(first "$WORK/dist.txt") differs from one CPU process' $(first "$WORK/cpu.txt")"
fi
echo "cli_cuda_emu_test: all checks passed"
