#!/usr/bin/env bash
# Evaluate every built-in method and sanity baseline with `hfus-bench evaluate`, turn each result
# into a leaderboard entry (`hfus-bench leaderboard add`) and re-render the pages.
# Entries are never hand-edited: each one records the exact evaluate command that produced it.
#
# Usage:  leaderboard/make_baselines.sh [reference|cheap|expensive|all|METHOD...]     (default: all)
# Env:    DEVICE=auto|cpu|cuda (default auto)   MODELS=mobilenet_v2 (comma list or all)
#         FOLDS=0 (comma list or all: every fold needs its checkpoint)   OUT=results/baselines
#         BENCH=hfus-bench (e.g. ".venv/bin/hfus-bench")
# Cheap methods run fine on CPU; the expensive ones (many forward passes per image) are better on a GPU:
#   DEVICE=cuda leaderboard/make_baselines.sh expensive
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE="${DEVICE:-auto}"
MODELS="${MODELS:-mobilenet_v2}"
FOLDS="${FOLDS:-0}"
OUT="${OUT:-results/baselines}"
BENCH="${BENCH:-hfus-bench}"

# sanity baselines and (evidence tracks) the reference rows first: every method's gains are paired with them
REFERENCE=(depth_prior random input oracle oracle@grid center sobel)
CHEAP=(gradcam gradientshap saliency gradcampp hirescam eigengradcam ablationcam layercam xgradcam inputxgradient
  smoothgrad expectedgradients fullgrad deeplift guidedbackprop)
EXPENSIVE=(ig scorecam occlusion15 occlusion30 occlusion45)

case "${1:-all}" in
  reference) METHODS=("${REFERENCE[@]}") ;;
  cheap) METHODS=("${REFERENCE[@]}" "${CHEAP[@]}") ;;
  expensive) METHODS=("${EXPENSIVE[@]}") ;;
  all) METHODS=("${REFERENCE[@]}" "${CHEAP[@]}" "${EXPENSIVE[@]}") ;;
  *) METHODS=("$@") ;;
esac

for m in "${METHODS[@]}"; do
  echo "== $m ($MODELS, folds $FOLDS, device $DEVICE)"
  if ! log=$("$BENCH" evaluate "$m" --models "$MODELS" --folds "$FOLDS" --device "$DEVICE" --out "$OUT" \
      --no-figure --quiet 2>&1); then
    # a method undefined on every architecture asked for (PROTOCOL §5) is n/a there, not a failure
    if grep -q "undefined (n/a)" <<<"$log"; then echo "skipped $m: n/a on $MODELS"; continue; fi
    echo "$log" >&2; exit 1
  fi
  echo "$log"
  "$BENCH" leaderboard add "$OUT/$m.json"
done
"$BENCH" leaderboard render
echo "done: commit leaderboard/entries/*.json, leaderboard/LEADERBOARD.md and leaderboard/index.html"
