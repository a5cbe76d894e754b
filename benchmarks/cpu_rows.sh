#!/usr/bin/env bash
# One leaderboard row on the CPU, as shards that survive interruption: `hfus-bench evaluate --shard I/N`
# with one thread per shard, JOBS shards at a time, a shard that already has its record is skipped (so
# the same command resumes after a stop), then `hfus-bench merge`. On a machine that does not outlive the
# session (a job's scratch disk), KEEP names a folder that does: records in its subfolder for this run
# (KEEP/METHOD.MODELS.FOLDS, so one KEEP serves many rows and folds; with their maps files) are copied into
# OUT first and each new record is copied there. Where nothing outlives the session but
# the git checkout, run a long row one fold at a time and commit each fold's merged record (small: the
# shards' maps stay out of git), then combine the folds: benchmarks/cpu_folds.sh does both.
#
#   bash benchmarks/cpu_rows.sh METHOD [MODELS] [FOLDS]     e.g. scorecam googlenet 0
#
# Environment: SHARDS (default 8 per architecture and fold: 126 test images in batches of 16, so every
# shard has one batch; more shards than batches leave some empty, which merge accepts), JOBS (default:
# the CPU count), OUT (default ~/.cache/hfus-bench/shards/METHOD.MODELS.FOLDS), KEEP (default: none),
# HFUS_BENCH (the command; default .venv/bin/hfus-bench), EVAL_ARGS (more `evaluate` options, e.g.
# `--limit 2`). With an editable install, run it from a snapshot (`git worktree add`) so that edits to the
# checkout do not reach shards still running. After the merge it prints the
# `leaderboard add` command; nothing is added by itself.
set -euo pipefail

METHOD=${1:?usage: bash benchmarks/cpu_rows.sh METHOD [MODELS] [FOLDS]}
MODELS=${2:-mobilenet_v2}
FOLDS=${3:-0}
n_models=$([ "$MODELS" = all ] && echo 4 || tr ',' '\n' <<<"$MODELS" | grep -c .)
n_folds=$([ "$FOLDS" = all ] && echo 5 || tr ',' '\n' <<<"$FOLDS" | grep -c .)
SHARDS=${SHARDS:-$((8 * n_models * n_folds))}
JOBS=${JOBS:-$(nproc)}
OUT=${OUT:-$HOME/.cache/hfus-bench/shards/$METHOD.$MODELS.$FOLDS}
HFUS_BENCH=${HFUS_BENCH:-.venv/bin/hfus-bench}
KEEP=${KEEP:-}
stem=$(basename "$METHOD" .py)
[ -z "$KEEP" ] || KEEP="$KEEP/$stem.$MODELS.$FOLDS"  # shard file names do not say the folds: one folder per run
mkdir -p "$OUT"
if [ -n "$KEEP" ]; then
  mkdir -p "$KEEP"
  for kept in "$KEEP/$stem".shard-*-of-"$SHARDS".json "$KEEP/$stem".shard-*-of-"$SHARDS".maps.npz; do
    if [ -f "$kept" ] && [ ! -f "$OUT/$(basename "$kept")" ]; then cp "$kept" "$OUT/"; fi
  done
fi

run_shard() {
  local i=$1 record="$OUT/$stem.shard-$1-of-$SHARDS.json"
  if [ -f "$record" ]; then
    echo "shard $i/$SHARDS: done before"
    return 0
  fi
  local start=$SECONDS
  if OMP_NUM_THREADS=1 "$HFUS_BENCH" evaluate "$METHOD" --models "$MODELS" --folds "$FOLDS" --device cpu \
    --out "$OUT" --no-figure --quiet --shard "$i/$SHARDS" ${EVAL_ARGS:-} >"$OUT/shard-$i.log" 2>&1; then
    echo "shard $i/$SHARDS: $((SECONDS - start)) s"
    if [ -n "$KEEP" ]; then cp "${record%.json}.maps.npz" "$record" "$KEEP/"; fi  # the maps first
  else
    echo "shard $i/$SHARDS: failed, see $OUT/shard-$i.log" >&2
    return 1
  fi
}
export -f run_shard
export OUT KEEP SHARDS METHOD MODELS FOLDS HFUS_BENCH EVAL_ARGS stem

echo "$METHOD on $MODELS, folds $FOLDS: $SHARDS shards, $JOBS at a time, in $OUT"
seq 0 $((SHARDS - 1)) | xargs -P "$JOBS" -I{} bash -c 'run_shard {}'
"$HFUS_BENCH" merge "$OUT"/"$stem".shard-*-of-"$SHARDS".json --out "$OUT/merged" --no-figure
echo "next: $HFUS_BENCH leaderboard add $OUT/merged/$stem.json"
