#!/usr/bin/env bash
# A leaderboard row too long for one session, one fold at a time: for each fold that has no part yet,
# `benchmarks/cpu_rows.sh METHOD ARCH FOLD` (one-thread shards, then their merge), then the merged record
# is kept as PARTS/METHOD.ARCH.foldK.json (commit it: it is the only thing that outlives the machine).
# When every fold has its part, they are combined (`hfus-bench merge`) into OUT/combined/METHOD.json.
#
#   bash benchmarks/cpu_folds.sh METHOD [ARCH] [FOLDS]      e.g. scorecam mobilenet_v2 "0 1 2 3 4"
#
# Environment: PARTS (default leaderboard/parts), OUT (default ~/.cache/hfus-bench/folds/METHOD.ARCH),
# HFUS_BENCH (default .venv/bin/hfus-bench) and cpu_rows.sh's JOBS, SHARDS, KEEP, EVAL_ARGS. Run it from a
# snapshot (`git worktree add`) with PARTS in the checkout, as cpu_rows.sh says.
set -euo pipefail

METHOD=${1:?usage: bash benchmarks/cpu_folds.sh METHOD [ARCH] [FOLDS]}
ARCH=${2:-mobilenet_v2}
FOLDS=${3:-0 1 2 3 4}
PARTS=${PARTS:-leaderboard/parts}
OUT=${OUT:-$HOME/.cache/hfus-bench/folds/$METHOD.$ARCH}
HFUS_BENCH=${HFUS_BENCH:-.venv/bin/hfus-bench}
export HFUS_BENCH
stem=$(basename "$METHOD" .py)
here=$(dirname "$0")
mkdir -p "$PARTS"
parts=()
for k in $FOLDS; do
  part="$PARTS/$stem.$ARCH.fold$k.json"
  parts+=("$part")
  if [ -f "$part" ]; then
    echo "fold $k: part there ($part)"
    continue
  fi
  OUT="$OUT/fold$k" bash "$here/cpu_rows.sh" "$METHOD" "$ARCH" "$k"
  cp "$OUT/fold$k/merged/$stem.json" "$part.tmp"
  mv "$part.tmp" "$part"
  echo "fold $k: part written ($part); commit it"
done
[ ${#parts[@]} -gt 1 ] || exit 0
"$HFUS_BENCH" merge "${parts[@]}" --out "$OUT/combined"
echo "next: $HFUS_BENCH leaderboard add $OUT/combined/$stem.json; then git rm ${parts[*]}"
