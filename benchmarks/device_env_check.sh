#!/usr/bin/env bash
# The test suite on the CPU under the device image's package versions, before device time is spent on the tree
# (issue 20; benchmarks/README.md, "Preparing the GPU session"): torch, torchvision, huggingface_hub and
# safetensors at the image's versions (DEVICE_PINS), the packages the session carries as wheels at the versions
# of .whl/ (benchmarks/fetch_gpu_wheels.sh), the checkout on PYTHONPATH as on the device (nothing installed).
# Not reproduced: the device's Python (3.12) and numpy (2.5, which needs Python >= 3.12); this uses python3.
#   bash benchmarks/device_env_check.sh                        # the whole suite
#   bash benchmarks/device_env_check.sh tests/test_training.py  # pytest arguments
# The environment (about 5 GB of CUDA wheels from PyPI, a few minutes once) stays in ENV_DIR for the next run.
set -eu
cd "$(dirname "$0")/.."
ENV_DIR=${ENV_DIR:-/tmp/hfus-device-env}
DEVICE_PINS=${DEVICE_PINS:-torch==2.11.0 torchvision==0.26.0 huggingface_hub==1.33.0 safetensors==0.8.0}
ls .whl/*.whl >/dev/null 2>&1 || { echo "no .whl/: run benchmarks/fetch_gpu_wheels.sh first" >&2; exit 1; }
# name==version of each carried wheel (its file name: NAME-VERSION-...whl); the cp312 ones are built for the
# device's Python, so the same versions are taken from PyPI for this one
read -r -a carried < <(for f in .whl/*.whl; do basename "$f" | awk -F- '{printf "%s==%s ", $1, $2}'; done; echo)
if [ ! -x "$ENV_DIR/bin/python" ]; then
  python3 -m venv "$ENV_DIR"
  "$ENV_DIR/bin/pip" install -q --upgrade pip
fi
# the project's dependencies and test extras as pyproject.toml declares them, held to those versions
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT
printf '%s\n' $DEVICE_PINS "${carried[@]}" >"$pins"
read -r -a wanted < <(python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']
print(' '.join(p['dependencies'] + p['optional-dependencies']['test']))")
"$ENV_DIR/bin/pip" install -q -c "$pins" "${wanted[@]}"
"$ENV_DIR/bin/python" -c "
import importlib.metadata as m, sys
print('python', sys.version.split()[0], *(f'{p} {m.version(p)}' for p in
      ('torch', 'torchvision', 'numpy', 'pyarrow', 'huggingface-hub', 'safetensors', 'datasets', 'captum', 'grad-cam')))"
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONPATH=$PWD "$ENV_DIR/bin/python" -m pytest -q -n 2 -p no:cacheprovider \
  "${@:-tests}"
