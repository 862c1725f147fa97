#!/usr/bin/env bash
# A rank of `mpirun -np 2 siam train` that dies (SIGKILL) or hangs (SIGSTOP) mid-training: the run ends with a
# non-zero exit status within a bounded time, and its output names rank 1. The test signals rank 1 from outside
# (siam has no fault hook): the rank is the siam process whose environment holds this run's marker and
# OMPI_COMM_WORLD_RANK=1. A dead rank is caught by mpirun, which stops the others; a hung one by rank 0's
# collective timeout (SIAM_DIST_TIMEOUT_S, here 2 s), whose error names the rank that did not answer; then
# MPI_Abort stops every rank.
# Usage: dead_rank_test.sh SIAM_BINARY SOURCE_DIR
set -euo pipefail
SIAM=$(readlink -f "$1")
SRC=$2
CFG=$SRC/tests/e2e/tiny_synthetic.yaml
if ! command -v mpirun > /dev/null || ! "$SIAM" version | grep -q "^mpi: yes"; then
  echo "dead_rank_test: skipped (no mpirun, or siam built without MPI)"
  exit 0
fi
WORK=$(mktemp -d /tmp/siam_dead_rank.XXXXXX)
MARK="siam_dead_rank_$$_$RANDOM"
cleanup() {  # whatever this test started and is still running
  for p in $(marked_pids); do kill -KILL "$p" 2> /dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Processes whose environment holds this run's marker (mpirun and the ranks it started), optionally only rank $1.
marked_pids() {
  local d env
  for d in /proc/[0-9]*; do
    env=$(tr '\0' '\n' 2> /dev/null < "$d/environ") || continue
    grep -qx "SIAM_DEAD_RANK_MARK=$MARK" <<< "$env" || continue
    if [ $# -gt 0 ]; then
      grep -qx "OMPI_COMM_WORLD_RANK=$1" <<< "$env" || continue
      [ "$(readlink "$d/exe" 2> /dev/null)" = "$SIAM" ] || continue
    fi
    echo "${d#/proc/}"
  done
}

# run NAME SIGNAL BOUND_S TIMEOUT_S: trains on 2 ranks (long enough never to finish) with SIAM_DIST_TIMEOUT_S =
# TIMEOUT_S, sends SIGNAL to rank 1 once epoch 2 has begun, and expects mpirun to end non-zero within BOUND_S
# seconds of the signal.
run() {
  local name=$1 sig=$2 bound=$3 out=$WORK/$1.txt pid rank1="" t0 rc
  SIAM_DEAD_RANK_MARK=$MARK SIAM_DIST_TIMEOUT_S=$4 OMPI_MCA_btl_vader_single_copy_mechanism=none OMP_NUM_THREADS=1 \
    mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 \
    "$SIAM" train --config "$CFG" --set out_dir="$WORK/$name" --set train.epochs=100000 --set train.threads=1 \
    --set eval.knn=false > "$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    grep -q "^epoch 2/" "$out" 2> /dev/null && rank1=$(marked_pids 1) && [ -n "$rank1" ] && break
    kill -0 "$pid" 2> /dev/null || fail "$name: the run ended before it could be signalled: $(tail -n 5 "$out")"
    sleep 0.1
  done
  [ -n "$rank1" ] || fail "$name: no progress, or no rank 1 process found: $(tail -n 5 "$out")"
  kill "-$sig" "$rank1"
  t0=$(date +%s.%N)
  for _ in $(seq 1 $((bound * 10))); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2> /dev/null && fail "$name: mpirun still runs ${bound} s after SIG$sig to rank 1: $(tail -n 5 "$out")"
  set +e; wait "$pid"; rc=$?; set -e
  local took
  took=$(awk -v now="$(date +%s.%N)" -v t0="$t0" 'BEGIN { printf "%.2f", now - t0 }')
  [ "$rc" -ne 0 ] || fail "$name: mpirun exited 0 after SIG$sig to rank 1"
  echo "dead_rank_test: $name: mpirun exited $rc ${took} s after SIG$sig to rank 1 (pid $rank1)"
  [ -z "$(marked_pids)" ] || fail "$name: processes of the run are left: $(marked_pids)"
}

# 1. Rank 1 dies: mpirun notices and stops rank 0 (which may be waiting in a collective for the dead rank), long
# before siam's own timeout (60 s here) would.
run dead KILL 20 60
grep -E "process rank 1 .*(signal 9|Killed)" "$WORK/dead.txt" \
  || fail "dead: the output does not name rank 1: $(tail -n 20 "$WORK/dead.txt")"

# 2. Rank 1 hangs: rank 0's collective times out after 2 s with an error naming it, and every rank stops.
run hung STOP 20 2
grep "timed out on rank 0 .*rank(s) 1 did not answer" "$WORK/hung.txt" \
  || fail "hung: no timeout error naming rank 1: $(tail -n 20 "$WORK/hung.txt")"

echo "dead_rank_test: all checks passed"
