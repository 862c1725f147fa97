#!/usr/bin/env bash
# Installs the dependencies and builds into build/ (scripts/setup.sh), then runs the test suite with ctest.
# Usage: scripts/test.sh [ctest args...]     e.g. scripts/test.sh -L unit    scripts/test.sh -R Softmax
# Environment: SIAM_CMAKE_ARGS (extra cmake args for setup.sh, e.g. "-DSIAM_CUDA=OFF"), SIAM_JOBS,
#              SIAM_TEST_TIMEOUT (seconds per test, default 900).
# Without a GPU the cuda-labelled tests run and skip with a reason, so they still count in the summary.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
# shellcheck disable=SC2086  # SIAM_CMAKE_ARGS is a list of words on purpose
bash scripts/setup.sh ${SIAM_CMAKE_ARGS:-}
echo "test.sh: setup and build took $((SECONDS - t0)) s"

JOBS=${SIAM_JOBS:-$(nproc)}
log=build/ctest-output.log
rc=0
ctest --test-dir build --output-on-failure --no-tests=error -j "$JOBS" \
  --timeout "${SIAM_TEST_TIMEOUT:-900}" "$@" 2>&1 | tee "$log" || rc=$?
# ctest lists skipped tests after its summary; repeat the summary so it is the last line printed.
skipped=$(grep -c -E '\(Skipped\)$' "$log" || true)
summary=$(grep -E '^[0-9]+% tests passed' "$log" | tail -1 || true)
if [[ -n $summary ]]; then
  echo "test.sh: ${skipped} skipped (cuda tests skip without a GPU); total $((SECONDS - t0)) s"
  echo "$summary"
fi
exit "$rc"
