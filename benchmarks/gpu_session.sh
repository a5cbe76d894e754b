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
# 1. per-method speed vs the libraries, all four architectures, random weights
run 170 python3 benchmarks/bench_methods.py --warmup 1 --device cuda --archs mobilenet_v2,resnet101,googlenet,densenet201 --n 8 \
  > "$OUT/bench_methods.txt"
# 2. the other three architectures with the study recipe, side by side (the GPU is far from busy at
#    batch 8); MobileNetV2 fold 0 ships with the package
for arch in ${ARCHS:-googlenet resnet101 densenet201}; do
  run "${TRAIN_LIMIT:-130}" python3 -m hfus_xai_bench train --models "$arch" --folds 0 --epochs "$EPOCHS" --init scratch \
    --device cuda --quiet &
done
wait
tar czf "$OUT/cards.tar.gz" --exclude='*.safetensors' -C "$HFUS_BENCH_CACHE" checkpoints
# 3. the whole protocol, ours vs a library-only pipeline
run 90 python3 benchmarks/bench_protocol.py --device cuda --archs all --n 8 --methods all > "$OUT/bench_protocol.txt"
exit 0
