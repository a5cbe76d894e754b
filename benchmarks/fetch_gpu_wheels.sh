#!/usr/bin/env bash
# Download into .whl/ the wheels that benchmarks/gpu_session.sh needs on the GPU machine: our dependencies
# (pyproject.toml) that its stock CUDA torch image lacks, with the needs of theirs that it lacks too.
# The image has torch, torchvision, numpy, pillow, pyarrow, pandas, huggingface-hub, safetensors, tqdm,
# tabulate, scipy, scikit-learn, matplotlib, opencv-python-headless, attrs, xxhash, pyyaml, requests.
# Versions: those installed in $PYTHON's environment (the one the tests ran with), so the device runs the
# same code. Usage (repository root, with network):  bash benchmarks/fetch_gpu_wheels.sh
# Env: PYTHON (default .venv/bin/python), PYVER (the device's Python, default 3.12), DEST (default .whl)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
PYVER=${PYVER:-3.12}
DEST=${DEST:-.whl}
# captum, grad-cam (+ ttach), datasets (+ dill, multiprocess; fsspec pinned to the range datasets accepts),
# platformdirs, jsonschema (+ jsonschema-specifications, referencing, rpds-py).
# Pure Python: `pip wheel` (grad-cam and ttach are published as source only; this builds py3-none-any).
PURE=(captum grad-cam ttach datasets dill fsspec platformdirs jsonschema jsonschema-specifications referencing)
# Tagged by Python version / platform: downloaded for the device's Python
TAGGED=(multiprocess rpds-py)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64
  manylinux2014_x86_64 manylinux1_x86_64)
mkdir -p "$DEST"
rm -f "$DEST"/*.whl  # one version of each: two stop the install on the device
pinned() {
  local name
  for name in "$@"; do
    echo "$name==$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")"
  done
}
mapfile -t pure < <(pinned "${PURE[@]}")
mapfile -t tagged < <(pinned "${TAGGED[@]}")
echo "pure Python: ${pure[*]}"
"$PYTHON" -m pip wheel --quiet --no-deps --no-cache-dir -w "$DEST" "${pure[@]}"
echo "for CPython $PYVER, manylinux x86_64: ${tagged[*]}"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${PLATFORMS[@]/#/--platform=}" -d "$DEST" "${tagged[@]}"
ls -l "$DEST"
du -ch "$DEST"/*.whl | tail -1
