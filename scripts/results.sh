#!/usr/bin/env bash
# Runs the Fashion-MNIST recipes and prints the rows of docs/RESULTS.md: method, epochs, wall time, images/s,
# final kNN top-1 and linear-probe top-1. Long (minutes per method): not part of the tests.
#   scripts/results.sh [method ...]            (default: every configs/<method>_fmnist.yaml)
#   SIAM_SET="train.epochs=2 data.limit=20000" scripts/results.sh byol   (extra --set overrides)
#   SIAM_LINEAR_EPOCHS=30 (linear probe epochs, default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
SIAM=${SIAM:-build/siam}
methods=("$@")
if [ ${#methods[@]} -eq 0 ]; then
  methods=(simclr_reference simclr moco byol simsiam barlow_twins wmse swav vicreg)
fi
sets=()
for kv in ${SIAM_SET:-}; do sets+=(--set "$kv"); done
mkdir -p runs
echo "| method | command | epochs | wall | images/s | kNN top-1 | linear top-1 |"
echo "|---|---|---|---|---|---|---|"
for m in "${methods[@]}"; do
  cfg=configs/${m}_fmnist.yaml
  [ "$m" = simclr_reference ] && cfg=configs/simclr_fmnist_reference.yaml
  out=runs/results_$m
  "$SIAM" train --config "$cfg" "${sets[@]}" --set out_dir="$out" > "runs/results_$m.log" 2>&1
  final=$(tail -n 1 "runs/results_$m.log")
  lin=$("$SIAM" eval linear --checkpoint "$out" --epochs "${SIAM_LINEAR_EPOCHS:-30}" | tail -n 1)
  /usr/bin/python3 - "$m" "$cfg" "$final" "$lin" "${SIAM_SET:-}" <<'PY'
import json, sys
m, cfg, final, lin, extra = sys.argv[1:6]
f, l = json.loads(final), json.loads(lin)
cmd = "siam train --config %s" % cfg + "".join(" --set %s" % kv for kv in extra.split())
print("| %s | `%s` | %d | %.0f s | %.0f | %.4f | %.4f |" % (m, cmd, f["epochs"], f["wall_s"], f["images_per_s"],
      f["knn_top1"], l["top1"]))
PY
done
