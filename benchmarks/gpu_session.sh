#!/usr/bin/env bash
# One prepared GPU session (see benchmarks/README.md): build hfus-synth, train the four reference
# architectures on fold 0 with the study recipe, then run the performance benchmarks at full size.
# Every step has its own time limit so the whole fits one device call; outputs land in $OUT.
# Needs the wheels of what the GPU image lacks in .whl/ (datasets, dill, multiprocess, grad-cam,
# captum, ttach, platformdirs, jsonschema + its deps).
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export HFUS_BENCH_CACHE=${HFUS_BENCH_CACHE:-/tmp/hfus-cache} PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1
export CUBLAS_WORKSPACE_CONFIG=:4096:8
EPOCHS=${EPOCHS:-30}
LOG=$OUT/log.txt
run() { local limit=$1; shift; echo "+ $*" | tee -a "$LOG"; timeout "$limit" "$@" 2>&1 | tee -a "$LOG"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
run 30 python3 -c "import torch, pyarrow, datasets, captum, pytorch_grad_cam; print(torch.__version__, torch.version.cuda, pyarrow.__version__, datasets.__version__)"
run 120 python3 -m hfus_xai_bench data info
# the shipped checkpoint: MobileNetV2 fold 0, float16 storage; two recipes trained side by side,
# the one with the higher validation accuracy is shipped (the test fold plays no part in the choice)
run 150 python3 -m hfus_xai_bench train --arch mobilenet_v2 --fold 0 --epochs "$EPOCHS" --init scratch --device cuda \
  --dtype float16 --quiet &
run 150 python3 -m hfus_xai_bench train --arch mobilenet_v2 --fold 0 --epochs "$EPOCHS" --init scratch --device cuda \
  --dtype float16 --lr 0.01 --step-size 15 --out "$HFUS_BENCH_CACHE/alt" --quiet &
wait
cp "$HFUS_BENCH_CACHE"/checkpoints/mobilenet_v2_*.safetensors "$OUT"/ 2>/dev/null
cp "$HFUS_BENCH_CACHE"/alt/mobilenet_v2_*.safetensors "$OUT"/alt_mobilenet_v2.safetensors 2>/dev/null
run 150 python3 benchmarks/bench_methods.py --device cuda --archs all --n 8 > "$OUT/bench_methods.txt"
# the other three architectures, side by side (the GPU is far from busy at batch 8)
for arch in googlenet resnet101 densenet201; do
  run 180 python3 -m hfus_xai_bench train --arch "$arch" --fold 0 --epochs "$EPOCHS" --init scratch --device cuda --quiet &
done
wait
tar czf "$OUT/cards.tar.gz" -C "$HFUS_BENCH_CACHE" $(cd "$HFUS_BENCH_CACHE" && ls checkpoints/*.json alt/*.json 2>/dev/null)
run 120 python3 benchmarks/bench_protocol.py --device cuda --archs all --n 16 --methods all > "$OUT/bench_protocol.txt"
exit 0
