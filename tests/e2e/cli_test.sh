#!/usr/bin/env bash
# End-to-end checks of the siam program (ctest label e2e): train from a config with --set overrides, the
# outputs a run leaves, a bad key, SIGINT then --resume, eval knn / linear and embed.
# Usage: cli_test.sh SIAM_BINARY SOURCE_DIR
set -euo pipefail
SIAM=$1
SRC=$2
CFG=$SRC/tests/e2e/tiny_synthetic.yaml
WORK=$(mktemp -d /tmp/siam_cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. A short run: progress lines, the final JSON object last on stdout, the files of the run.
"$SIAM" train --config "$CFG" --set out_dir="$WORK/run" --set train.epochs=1 > "$WORK/out.txt"
tail -n 1 "$WORK/out.txt" | grep -q '^{"method": "simclr".*"knn_top1": [0-9.]*' || fail "no final JSON line: $(tail -n 3 "$WORK/out.txt")"
grep -q '^epoch 1/1  step 6/6  loss' "$WORK/out.txt" || fail "no progress line"
for f in metrics.jsonl curve.svg checkpoint.safetensors encoder.safetensors config.yaml; do
  [ -s "$WORK/run/$f" ] || fail "missing $f"
done
grep -q '"images_per_s"' "$WORK/run/metrics.jsonl" || fail "metrics.jsonl lacks images_per_s"

# 2. A bad key: exit code 1 and a message naming it.
if "$SIAM" train --config "$CFG" --set train.epoch=3 2> "$WORK/err.txt"; then fail "a bad key was accepted"; fi
grep -q "train.epoch" "$WORK/err.txt" || fail "the error does not name the key: $(cat "$WORK/err.txt")"

# 3. SIGINT finishes the step, saves and exits 130; --resume completes the run.
"$SIAM" train --config "$CFG" --set out_dir="$WORK/cut" --set train.epochs=40 > "$WORK/cut.txt" 2> "$WORK/cut_err.txt" &
PID=$!
for _ in $(seq 1 600); do grep -q "step 2/6" "$WORK/cut.txt" 2>/dev/null && break; sleep 0.1; done
kill -INT $PID
set +e; wait $PID; RC=$?; set -e
[ "$RC" -eq 130 ] || fail "SIGINT gave exit code $RC, expected 130: $(cat "$WORK/cut_err.txt")"
grep -q "resume with" "$WORK/cut_err.txt" || fail "no resume hint after SIGINT"
[ -s "$WORK/cut/checkpoint.safetensors" ] || fail "no checkpoint after SIGINT"
"$SIAM" train --resume "$WORK/cut" --set train.epochs=2 > "$WORK/resumed.txt"
grep -q "resumed from" "$WORK/resumed.txt" || fail "resume did not say where it continued"
tail -n 1 "$WORK/resumed.txt" | grep -q '"epochs": 2' || fail "resumed run did not finish: $(tail -n 2 "$WORK/resumed.txt")"

# 4. Evaluation and embeddings of the trained encoder.
"$SIAM" eval knn --checkpoint "$WORK/run" --kind synthetic --k 5 > "$WORK/knn.txt"
tail -n 1 "$WORK/knn.txt" | grep -q '"top1": [0-9.]*' || fail "eval knn: $(cat "$WORK/knn.txt")"
"$SIAM" eval linear --checkpoint "$WORK/run" --kind synthetic --epochs 5 > "$WORK/lin.txt"
tail -n 1 "$WORK/lin.txt" | grep -q '"top1": [0-9.]*' || fail "eval linear: $(cat "$WORK/lin.txt")"
"$SIAM" embed --checkpoint "$WORK/run" --kind synthetic --out "$WORK/emb.npy" > /dev/null
head -c 6 "$WORK/emb.npy" | grep -q "NUMPY" || fail "embed .npy has no NumPy header"
[ -s "$WORK/emb.labels.npy" ] || fail "embed did not write the labels"
"$SIAM" embed --checkpoint "$WORK/run" --kind synthetic --split test --out "$WORK/emb.safetensors" > /dev/null
[ -s "$WORK/emb.safetensors" ] || fail "embed .safetensors missing"
if "$SIAM" eval knn --checkpoint "$WORK/nowhere" 2> "$WORK/err2.txt"; then fail "a missing checkpoint was accepted"; fi
grep -q "nowhere" "$WORK/err2.txt" || fail "the error does not name the missing checkpoint"
# 5. Two ranks under mpirun (when this build has MPI): one final JSON line, from rank 0, and the run's files.
if command -v mpirun > /dev/null && "$SIAM" version | grep -q "^mpi: yes"; then
  OMPI_MCA_btl_vader_single_copy_mechanism=none OMP_NUM_THREADS=1 \
    mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 \
    "$SIAM" train --config "$CFG" --set out_dir="$WORK/dist" --set train.epochs=1 --set train.threads=1 > "$WORK/dist.txt"
  [ "$(grep -c '^{"method"' "$WORK/dist.txt")" -eq 1 ] || fail "mpirun: expected one final JSON line: $(cat "$WORK/dist.txt")"
  grep -q "x 2 ranks" "$WORK/dist.txt" || fail "mpirun: the run did not see 2 ranks"
  [ -s "$WORK/dist/encoder.safetensors" ] || fail "mpirun: rank 0 wrote no encoder"
fi
echo "cli_test: all checks passed"
