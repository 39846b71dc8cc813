#!/usr/bin/env bash
# One GPU session's measurements in one command, for a lent machine that has
# torch with CUDA, Triton, torchvision, Pillow and scikit-image but neither
# jpeglib nor kornia, and no network. Here, before the run, in the repo root:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl jpeglib==1.0.2 kornia==0.9.0 kornia_rs
#
# then on the machine (device tool: carry [".whl"], command "bash benchmarks/gpu_device.sh"):
# the wheels go to /tmp/site, the project is installed in place, and
# benchmarks/gpu.py writes its report, JSON and pytest logs under $OUT
# (the working tree's benchmarks/results/ when $OUT is unset).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export PYTHONUNBUFFERED=1
python3 benchmarks/gpu.py --out "$out/gpu.md" "$@" 2>&1 | tee "$out/gpu-log.txt"
# at most 8 files come back from $OUT: the per-file pytest logs as one archive
if [ -d "$out/gpu-pytest-logs" ] && [ -n "${OUT:-}" ]; then
    tar czf "$out/gpu-pytest-logs.tgz" -C "$out" gpu-pytest-logs && rm -rf "$out/gpu-pytest-logs"
fi
