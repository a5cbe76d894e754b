#!/usr/bin/env bash
# One prepared GPU session for issue 20 (benchmarks/README.md, "Preparing the GPU session"), in priority order:
#   a) environment + the default track (hfus-synth synth-v3, built and hash-checked by `data info`)
#   b) determinism: ResNet101 fold 0 trained twice with the shipped checkpoint's recipe, both sha256 (the
#      first run is ResNet101's fold-0 checkpoint: its weights exceed the device's return limit, so its card
#      and sha256 come back, and the two runs show that the card's reproduce command gives that sha256)
#   c) checkpoints: the MobileNetV2 folds that have no card in the package yet; then DenseNet201 fold 0
#      (its card only comes back, as ResNet101's)
#   d) leaderboard rows: by default the default table's missing ones (MobileNetV2 fold 0), then the rows of
#      GoogLeNet's (registered checkpoint), ResNet101's (b's) and DenseNet201's (c's) tables that no entry
#      holds: the cheap ones architecture by architecture, then the costly ones cheapest first, as far as the
#      budget goes; one `hfus-bench evaluate` per (method, architecture), EVAL_JOBS of them side by side
#      (benchmarks/gpu_plan.py; PROTOCOL §4, §7 with randomisation@2, §9), the result records as the existing
#      leaderboard entries were made (+ --profile)
#   e) speed: bench_evaluate.py (whole protocol vs its counted bound, fp32 and bf16), bench_methods.py per
#      architecture, bench_precision.py (bf16 against fp32: maps r, HR1)
# The whole run stays inside BUDGET seconds (default 560: one `run` call is cut at 600 s): every step has its
# own `timeout`, capped by what is left, and a step that cannot get MIN_STEP seconds is skipped. Outputs are
# packed into $OUT after every phase (a cut run still returns what finished); the last lines list what ran.
# Tiny CPU dry run (CPU defaults below; shorter lists: benchmarks/README.md):
#   DEVICE=cpu EPOCHS=1 LIMIT=2 OUT=/tmp/gpu_dry bash benchmarks/gpu_session.sh
set -u
cd "$(dirname "$0")/.."
START=$SECONDS
OUT=${OUT:-gpu_out}
DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cpu ]; then  # a dry run here: the dev venv, no device wheels, the user's dataset cache,
  # records away from /tmp/lb, one thread per training and CPU-sized time limits
  [ -x .venv/bin/python ] && PY=${PY:-.venv/bin/python}
  WHEELS=${WHEELS:-none} WORK=${WORK:-/tmp/hfus-gpu-dry} LB_DIR=${LB_DIR:-/tmp/hfus-gpu-dry-lb}
  TRAIN_THREADS=${TRAIN_THREADS:-1} EVAL_JOBS=${EVAL_JOBS:-1} EVAL_THREADS=${EVAL_THREADS:-2} BUDGET=${BUDGET:-3600} TRAIN_LIMIT=${TRAIN_LIMIT:-1800}
  BIG_LIMIT=${BIG_LIMIT:-2400} EVAL_LIMIT=${EVAL_LIMIT:-1800} BENCH_LIMIT=${BENCH_LIMIT:-900}
else
  export HFUS_BENCH_CACHE=${HFUS_BENCH_CACHE:-/tmp/hfus-cache}
fi
BUDGET=${BUDGET:-560}         # seconds for the whole script
MIN_STEP=${MIN_STEP:-20}      # a step that cannot get this many seconds is skipped
PY=${PY:-python3}
WHEELS=${WHEELS:-.whl}        # wheels of what the image lacks (benchmarks/fetch_gpu_wheels.sh); 'none' skips
WORK=${WORK:-/tmp/hfus-gpu}   # checkpoints and records before packing
LIMIT=${LIMIT:-}              # images per evaluate (empty: all 126 test images)
# MobileNetV2 folds without a registered card (hfus_xai_bench/checkpoints/); "none" trains none
MOB_FOLDS=${MOB_FOLDS:-$(cd hfus_xai_bench/checkpoints && for k in 1 2 3 4; do
  [ -f "mobilenet_v2_hfus-synth_fold$k.json" ] || printf '%s ' "$k"; done)}
[ "$MOB_FOLDS" = none ] && MOB_FOLDS=
DET_ARCH=${DET_ARCH:-resnet101}  # b): trained twice on fold DET_FOLD; the first run is its checkpoint
DET_FOLD=${DET_FOLD:-0}
SMALL_ARCHS=${SMALL_ARCHS:-}      # more fold-0 trainings whose weights come back (besides DET_ARCH)
BIG_ARCHS=${BIG_ARCHS:-densenet201}  # fold-0 trainings whose weights stay on the device (besides DET_ARCH)
# d)'s --models: by default the default table's missing rows, then GoogLeNet's (registered checkpoint),
# ResNet101's (b's checkpoint) and DenseNet201's (c's, waited for when its first run comes) tables
EVAL_MODELS=${EVAL_MODELS:-mobilenet_v2,googlenet,resnet101,densenet201}
EVAL_FOLDS=${EVAL_FOLDS:-0}               # d)'s --folds
PLAN_ENTRIES=${PLAN_ENTRIES:-leaderboard/entries}  # the rows they hold are not planned (a dry run: an empty folder)
EVAL_JOBS=${EVAL_JOBS:-3}       # d)'s evaluates side by side on the one device (never two of one method)
EVAL_THREADS=${EVAL_THREADS:-4}  # CPU threads per evaluate
# d)'s methods (all: every built-in); benchmarks/gpu_plan.py orders the runs (MobileNetV2's first, then
# cheapest first) and leaves out the (method, architecture) pairs that are n/a or whose row an entry or an
# earlier call's record ($WORK/lb) holds
EVAL_METHODS=${EVAL_METHODS:-all}
BENCH_ARCHS=${BENCH_ARCHS:-mobilenet_v2 googlenet resnet101 densenet201}
BENCH_N=${BENCH_N:-8}         # images per call in bench_methods.py
BENCH_METHODS=${BENCH_METHODS:-all}
PRECISIONS=${PRECISIONS:-fp32 bf16}  # e)'s whole-protocol runs (bench_evaluate.py --precision)
BENCH_EVAL_METHODS=${BENCH_EVAL_METHODS:-gradcam}     # their --method (a comma list or all: the whole protocol)
BENCH_EVAL_MODELS=${BENCH_EVAL_MODELS:-mobilenet_v2}  # their --models (all needs every checkpoint, e.g. c)'s)
PREC_N=${PREC_N:-32}          # images per method x architecture in bench_precision.py (fp32 vs bf16)
STEPS=${STEPS:-train eval speed}  # a) always runs; e.g. STEPS=speed on a second, warm call
TRAIN_LIMIT=${TRAIN_LIMIT:-300}   # seconds per training of b) (DET_ARCH) and c) (MobileNetV2, SMALL_ARCHS)
BIG_LIMIT=${BIG_LIMIT:-420}       # seconds per training of BIG_ARCHS
EVAL_LIMIT=${EVAL_LIMIT:-400}     # seconds per evaluate of d)
BENCH_LIMIT=${BENCH_LIMIT:-200}   # seconds per speed benchmark of e)
RESERVE_SPEED=${RESERVE_SPEED:-45}  # seconds that d) and the big trainings leave for e)
LB_DIR=${LB_DIR:-/tmp/lb}     # evaluate --out, as in the existing entries' commands
TRAIN_THREADS=${TRAIN_THREADS:-2}  # CPU threads per training process (several share the machine)
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/log.txt
STATUS=$WORK/status.txt
: >"$LOG"
: >"$STATUS"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ "$WHEELS" != none ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl || { echo "wheel install failed" | tee -a "$LOG"; exit 1; }
  export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
BENCH=("$PY" -m hfus_xai_bench)
has() { [[ " $STEPS " == *" $1 "* ]]; }

left() { echo $((BUDGET - (SECONDS - START))); }
log() { echo "[$((SECONDS - START))s] $*" | tee -a "$LOG"; }
# step NAME WANT RESERVE CMD...: run CMD under `timeout min(WANT, left - RESERVE)`; its output is appended to
# $WORK/NAME.log and the log; one status line per step (ok / failed / cut at the limit / skipped for time)
step() {
  local name=$1 want=$2 reserve=$3 limit t0 rc
  shift 3
  limit=$(($(left) - reserve))
  [ "$limit" -gt "$want" ] && limit=$want
  if [ "$limit" -lt "$MIN_STEP" ]; then
    echo "skipped for time: $name" >>"$STATUS"
    log "skip $name (only ${limit}s left for it)"
    return 1
  fi
  log "start $name (limit ${limit}s): $*"
  t0=$SECONDS
  timeout -k 5 "$limit" "$@" >"$WORK/$name.log" 2>&1 </dev/null
  rc=$?
  cat "$WORK/$name.log" >>"$LOG"
  case $rc in
    0) echo "ok ($((SECONDS - t0))s): $name" >>"$STATUS" ;;
    124 | 137) echo "cut at its ${limit}s limit: $name" >>"$STATUS" ;;
    *) echo "failed (exit $rc, $((SECONDS - t0))s): $name" >>"$STATUS" ;;
  esac
  log "end $name: exit $rc after $((SECONDS - t0))s"
  return "$rc"
}
# pack: cards, result records and logs (with bench/ and status.txt) into three tarballs, the returned weights
# split into parts of <= 15 MiB: ckpt.tar.0, ckpt.tar.1, ... (`cat ckpt.tar.* | tar x`). With log.txt at most
# 8 files come back (the limit: 8 files of 16 MiB, 64 MiB in all; MobileNetV2 x4 + GoogLeNet in float16 would
# be about 32 MB, three parts; both are registered already, so by default no weights come back).
pack() {
  # not the weights, nor the resumable state that a training cut at its limit leaves (models/resume.py;
  # hundreds of MB for the big architectures: it would push the cards over the return limit)
  tar czf "$OUT/cards.tar.gz" -C "$WORK" --exclude='*.safetensors' --exclude='*.resume.pt' ckpt det 2>/dev/null
  tar czf "$OUT/results.tar.gz" -C "$WORK" lb 2>/dev/null
  tar czf "$OUT/logs.tar.gz" -C "$WORK" --exclude=./ckpt --exclude=./det --exclude=./lb . 2>/dev/null
  rm -f "$OUT"/ckpt.tar.*
  (cd "$WORK/ckpt" 2>/dev/null && ls ./*.safetensors >/dev/null 2>&1) || return 0
  # the weights that come back: MobileNetV2 folds and the small architectures (not the big ones)
  local keep=()
  for f in "$WORK"/ckpt/*.safetensors; do
    case $(basename "$f") in resnet101_* | densenet201_*) ;; *) keep+=("$(basename "$f")") ;; esac
  done
  [ ${#keep[@]} -eq 0 ] && return 0
  tar cf - -C "$WORK/ckpt" "${keep[@]}" | split -b 15m -d -a 1 - "$OUT/ckpt.tar."
}
sha() { sha256sum "$1" 2>/dev/null | cut -c1-64; }

# ---- a) environment and the default track -------------------------------------------------------------
log "a) environment"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi") | tee -a "$LOG"
# GPU memory in use every 5 s for the whole run (side-by-side trainings and evaluates share the GPU)
SMI_PID=
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -l 5 >"$WORK/gpu_memory.log" 2>&1 &
  SMI_PID=$!
fi
trap '[ -n "$SMI_PID" ] && kill "$SMI_PID" 2>/dev/null' EXIT
step env 60 0 "$PY" -c "
import importlib.metadata as m, sys, torch
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda,
      'cudnn', torch.backends.cudnn.version(), 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name())
for p in ('torchvision', 'numpy', 'pyarrow', 'datasets', 'fsspec', 'huggingface-hub', 'captum', 'grad-cam'):
    print(p, m.version(p))
import hfus_xai_bench, pytorch_grad_cam, captum, datasets, jsonschema, platformdirs
"
if ! step data 240 0 "${BENCH[@]}" data info; then
  # no default track (e.g. its golden hashes differ on this machine): nothing comparable can be trained or
  # scored; the per-method speed (random weights and inputs) needs no dataset
  log "NO DATASET: b), c), d) and bench_evaluate are skipped; see data.log"
  STEPS=methods_only
fi
# the recipe of the shipped checkpoint (fold 0), so that folds 1-4 are its cross-validation folds
read -r EPOCHS_CARD INIT DTYPE SEED REVISION < <("$PY" -c "
import json
c = json.load(open('hfus_xai_bench/checkpoints/mobilenet_v2_hfus-synth_fold0.json'))
print(c['epochs'], c['init'], c['dtype'], c['seed'], c['dataset']['revision'])")
EPOCHS=${EPOCHS:-$EPOCHS_CARD}
DET_EPOCHS=${DET_EPOCHS:-$EPOCHS}  # the two determinism runs (fold DET_FOLD); the first is its checkpoint
log "recipe: epochs $EPOCHS (shipped card: $EPOCHS_CARD), init $INIT, dtype $DTYPE, seed $SEED, revision $REVISION"
[ "$EPOCHS" != "$EPOCHS_CARD" ] && log "NOTE: EPOCHS=$EPOCHS differs from the shipped card's $EPOCHS_CARD: not the CV folds"
train() {  # train NAME ARCH FOLD EPOCHS DIR WANT RESERVE
  OMP_NUM_THREADS=$TRAIN_THREADS step "$1" "$6" "$7" "${BENCH[@]}" train --models "$2" --folds "$3" --epochs "$4" --init "$INIT" \
    --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" --revision "$REVISION" --out "$5" --quiet
}

# d)'s run list (benchmarks/gpu_plan.py reads every leaderboard entry: seconds of CPU) while b) and c) train
has eval && { "$PY" benchmarks/gpu_plan.py --methods "$EVAL_METHODS" --models "$EVAL_MODELS" \
  --folds "$EVAL_FOLDS" --records "$WORK/lb" --entries "$PLAN_ENTRIES" >"$WORK/plan.txt" 2>"$WORK/plan.log" & PLAN_PID=$!; }

# ---- b) determinism + c) checkpoints, side by side on the one GPU -------------------------------------
# the big architectures start too but are not waited for: they go on (capped) while d) runs
SMALL_PIDS=()
BIG_PIDS=()
BIG_NAMES=()  # the architecture of each of BIG_PIDS
if has train; then
  log "b) determinism ($DET_ARCH fold $DET_FOLD twice, $DET_EPOCHS epochs) + c) MobileNetV2 folds ${MOB_FOLDS:-none}"
  log "   + ${SMALL_ARCHS:-no other small architecture} + ${BIG_ARCHS:-no big architecture} fold 0 (not waited for)"
  if [ "$DET_EPOCHS" = "$EPOCHS" ]; then DET1=$WORK/ckpt; else DET1=$WORK/det/run1; fi  # run 1 = the checkpoint
  mkdir -p "$WORK/ckpt" "$WORK/det" "$DET1"
  train det_run1 "$DET_ARCH" "$DET_FOLD" "$DET_EPOCHS" "$DET1" "$TRAIN_LIMIT" 0 &
  SMALL_PIDS+=($!)
  train det_run2 "$DET_ARCH" "$DET_FOLD" "$DET_EPOCHS" "$WORK/det" "$TRAIN_LIMIT" 0 &
  SMALL_PIDS+=($!)
  for k in $MOB_FOLDS; do
    [ "$DET_ARCH $DET_FOLD" = "mobilenet_v2 $k" ] && [ "$DET1" = "$WORK/ckpt" ] && continue  # det_run1
    train "train_mobilenet_v2_fold$k" mobilenet_v2 "$k" "$EPOCHS" "$WORK/ckpt" "$TRAIN_LIMIT" 0 &
    SMALL_PIDS+=($!)
  done
  for a in $SMALL_ARCHS; do
    [ "$DET_ARCH $DET_FOLD" = "$a 0" ] && [ "$DET1" = "$WORK/ckpt" ] && continue  # det_run1
    train "train_${a}_fold0" "$a" 0 "$EPOCHS" "$WORK/ckpt" "$TRAIN_LIMIT" 0 &
    SMALL_PIDS+=($!)
  done
  for a in $BIG_ARCHS; do
    [ "$DET_ARCH $DET_FOLD" = "$a 0" ] && [ "$DET1" = "$WORK/ckpt" ] && continue  # det_run1
    train "train_${a}_fold0" "$a" 0 "$EPOCHS" "$WORK/ckpt" "$BIG_LIMIT" "$RESERVE_SPEED" &
    BIG_PIDS+=($!)
    BIG_NAMES+=("$a")
  done
  wait "${SMALL_PIDS[@]}"
  s1=$(sha "$DET1/${DET_ARCH}_hfus-synth_fold$DET_FOLD.safetensors")
  s2=$(sha "$WORK/det/${DET_ARCH}_hfus-synth_fold$DET_FOLD.safetensors")
  if [ -n "$s1" ] && [ "$s1" = "$s2" ]; then verdict="IDENTICAL"; else verdict="DIFFERENT or missing"; fi
  log "determinism ($DET_ARCH fold $DET_FOLD, $DEVICE, $DET_EPOCHS epochs): run 1 sha256 ${s1:-none}, run 2 sha256 ${s2:-none}: $verdict"
  echo "determinism: $verdict ($DET_ARCH fold $DET_FOLD: run 1 ${s1:-none}, run 2 ${s2:-none}, $DET_EPOCHS epochs, $DEVICE)" >>"$STATUS"
  pack
fi
big_running() {
  local p
  for p in "${BIG_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done
  return 1
}
# d) and e)'s bench_evaluate on other architectures than MobileNetV2 evaluate with b)/c)'s checkpoints: a cache
# holding them next to (links to) everything of the usual cache but its checkpoints; linked again before each
# run (a big training that ends during d adds its files)
link_checkpoints() {
  mkdir -p "$WORK/cache/checkpoints"
  for x in "$real_cache"/*; do [ "$(basename "$x")" = checkpoints ] || ln -sfn "$x" "$WORK/cache/"; done
  for x in "$WORK"/ckpt/*; do [ -e "$x" ] && ln -sf "$x" "$WORK/cache/checkpoints/"; done
}
if { has eval && [ "$EVAL_MODELS" != mobilenet_v2 ]; } || { has speed && [ "$BENCH_EVAL_MODELS" != mobilenet_v2 ]; }; then
  real_cache=$("$PY" -c "from hfus_xai_bench.constants import cache_dir; print(cache_dir())")
  link_checkpoints
  export HFUS_BENCH_CACHE=$WORK/cache
  log "d) uses the checkpoints of b)/c): $(ls "$WORK/cache/checkpoints" | grep -c json) cards in $HFUS_BENCH_CACHE so far"
fi

# ---- d) the default table's missing rows (MobileNetV2 fold 0), then the other architectures' tables ------
LANE_PIDS=()
LANE_METHODS=()
lanes_running() {  # the number of d)'s runs going
  local i n=0
  for i in "${!LANE_PIDS[@]}"; do kill -0 "${LANE_PIDS[$i]}" 2>/dev/null && n=$((n + 1)); done
  echo "$n"
}
method_running() {  # method_running METHOD: a run of METHOD is going (their records share a file name)
  local i
  for i in "${!LANE_PIDS[@]}"; do
    [ "${LANE_METHODS[$i]}" = "$1" ] && kill -0 "${LANE_PIDS[$i]}" 2>/dev/null && return 0
  done
  return 1
}
training() {  # training ARCH: c)'s training of ARCH still runs
  local i
  for i in "${!BIG_PIDS[@]}"; do
    [ "${BIG_NAMES[$i]}" = "$1" ] && kill -0 "${BIG_PIDS[$i]}" 2>/dev/null && return 0
  done
  return 1
}
evaluate_row() {  # evaluate_row NAME METHOD ARCH: one leaderboard row, its record and profile kept in $WORK
  local name=$1 m=$2 a=$3
  rm -f "$LB_DIR/$m.json" "$LB_DIR/$m.profile.json"  # never return an older record (a second, warm call)
  OMP_NUM_THREADS=$EVAL_THREADS step "$name" "$EVAL_LIMIT" "$RESERVE_SPEED" "${BENCH[@]}" evaluate "$m" \
    --models "$a" --folds "$EVAL_FOLDS" --device "$DEVICE" ${LIMIT:+--limit "$LIMIT"} --out "$LB_DIR" \
    --no-figure --quiet --profile
  cp "$LB_DIR/$m.json" "$WORK/lb/$m.$a.json" 2>/dev/null
  cp "$LB_DIR/$m.profile.json" "$WORK/prof/$m.$a.json" 2>/dev/null  # wall, stages, bound (logs.tar.gz)
}
if has eval; then
  # one run (record, entry) per (method, architecture): a cut run loses only its own rows; EVAL_JOBS runs side
  # by side (start-up, data and ROAD on the CPU overlap the others' model passes), never two of one method
  wait "$PLAN_PID"
  PLAN=$(cat "$WORK/plan.txt")
  log "d) leaderboard rows ($EVAL_METHODS on $EVAL_MODELS, folds $EVAL_FOLDS, $EVAL_JOBS side by side): $(echo $PLAN | tr '\n' ' ')"
  [ "$EVAL_JOBS" -gt 1 ] && log "NOTE: d)'s runs share the device $EVAL_JOBS at a time: their cost seconds include that contention"
  sed 's/^/   /' "$WORK/plan.log" >>"$LOG"
  grep "earlier call" "$WORK/plan.log" >>"$STATUS"  # rows whose records results.tar.gz holds already
  mkdir -p "$WORK/lb" "$WORK/prof"
  mapfile -t PENDING < <(grep . <<<"$PLAN")
  # the first pending run whose method is not going and whose architecture is not training starts when a lane
  # is free (the plan's order otherwise); a run of an architecture still training waits for it
  while [ ${#PENDING[@]} -gt 0 ]; do
    pick=
    if [ "$(lanes_running)" -lt "$EVAL_JOBS" ]; then
      for i in "${!PENDING[@]}"; do
        read -r m a <<<"${PENDING[$i]}"
        method_running "$m" || training "$a" || { pick=$i; break; }
      done
    fi
    if [ -z "$pick" ]; then
      sleep 1
      continue
    fi
    unset 'PENDING[pick]'
    PENDING=("${PENDING[@]}")
    pack
    [ -n "${real_cache:-}" ] && link_checkpoints
    if [ "$a" != mobilenet_v2 ] && ! compgen -G "$WORK/ckpt/${a}_*.safetensors" >/dev/null &&
      ! compgen -G "hfus_xai_bench/checkpoints/${a}_*.safetensors" >/dev/null; then
      echo "skipped, no $a checkpoint (b/c or registered): eval_${m}_$a" >>"$STATUS"  # not 20 failures
      continue
    fi
    [ "$EVAL_MODELS" = "$a" ] && name=eval_$m || name=eval_${m}_$a
    big_running && log "NOTE: $name starts while ${BIG_ARCHS} train: its cost seconds include that contention"
    evaluate_row "$name" "$m" "$a" &
    LANE_PIDS+=($!)
    LANE_METHODS+=("$m")
  done
  [ ${#LANE_PIDS[@]} -gt 0 ] && wait "${LANE_PIDS[@]}"
  pack
  # these runs' wall time against their counted bound, summed (the whole-protocol line when d) ran everything)
  ls "$WORK"/prof/*.json >/dev/null 2>&1 &&
    "$PY" benchmarks/bench_evaluate.py --profiles "$WORK"/prof/*.json 2>&1 | tee -a "$LOG" >/dev/null
fi
if big_running; then
  log "waiting for ${BIG_ARCHS}"
  for p in "${BIG_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && wait "$p"; done
fi
[ -n "${real_cache:-}" ] && link_checkpoints  # e)'s bench_evaluate may use them
for f in "$WORK"/ckpt/resnet101_*.json "$WORK"/ckpt/densenet201_*.json; do
  [ -f "$f" ] && log "not returned (too large): $(basename "${f%.json}").safetensors sha256 $(sha "${f%.json}.safetensors")"
done
pack

# ---- e) speed --------------------------------------------------------------------------------------------
if has speed || has methods_only; then
  log "e) speed"
  mkdir -p "$WORK/bench"
  if has speed; then  # the whole protocol against its bound, fp32 then bf16 (each against its own bound)
    for prec in $PRECISIONS; do
      step "bench_evaluate_$prec" "$BENCH_LIMIT" 0 "$PY" benchmarks/bench_evaluate.py --device "$DEVICE" \
        --precision "$prec" --method "$BENCH_EVAL_METHODS" --models "$BENCH_EVAL_MODELS" ${LIMIT:+--limit "$LIMIT"}
      cp "$WORK/bench_evaluate_$prec.log" "$WORK/bench/" 2>/dev/null
      pack
    done
  fi
  for a in $BENCH_ARCHS; do
    step "bench_methods_$a" "$BENCH_LIMIT" 0 "$PY" benchmarks/bench_methods.py --device "$DEVICE" --archs "$a" \
      --n "$BENCH_N" --warmup 1 --methods "$BENCH_METHODS" --out "$WORK/bench/methods_$a.json"
    cp "$WORK/bench_methods_$a.log" "$WORK/bench/" 2>/dev/null
    # the table of every architecture measured so far (benchmarks/README's speed table)
    "$PY" benchmarks/bench_methods.py --markdown "$WORK"/bench/methods_*.json >"$WORK/bench/methods.md" 2>&1
    pack
  done
  if has speed && [[ " $PRECISIONS " == *" bf16 "* ]]; then  # bf16's agreement with fp32 (maps r, HR1)
    step bench_precision "$BENCH_LIMIT" 0 "$PY" benchmarks/bench_precision.py --device "$DEVICE" \
      --archs "$(echo $BENCH_ARCHS | tr ' ' ,)" --n "$PREC_N" --out "$WORK/bench/precision.json"
    cp "$WORK/bench_precision.log" "$WORK/bench/" 2>/dev/null
    pack
  fi
fi

[ -n "$SMI_PID" ] && kill "$SMI_PID" 2>/dev/null
log "peak GPU memory used: $(awk -F, 'NR > 1 {gsub(/[^0-9]/, "", $2); if ($2 + 0 > m) m = $2 + 0} END {print m + 0}' \
  "$WORK/gpu_memory.log" 2>/dev/null) MiB"
log "done in $((SECONDS - START))s of the ${BUDGET}s budget (STEPS: $STEPS). What ran:"
tee -a "$LOG" <"$STATUS"
pack
ls -l "$OUT" | tee -a "$LOG"
exit 0
