#!/usr/bin/env bash
# The GPU run, from a clean checkout on the GPU machine (no network, no package registry):
#   bash benchmarks/gpu/run.sh [OUT_DIR]
# Wheels of kernel-lock's pure-Python dependencies (and kernels 0.17.2) must be in .carry/wheels
# (made on a machine with PyPI access by benchmarks/gpu/fetch_wheels.sh); torch, CUDA, ninja and
# huggingface_hub come from the machine. Nothing is installed into the machine's Python: the
# wheels are unpacked into a folder of their own that PYTHONPATH puts first.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-${OUT:-/tmp/kernel-lock-gpu}}"
site=/tmp/kernel-lock-gpu-site
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --target "$site" .carry/wheels/*.whl
export PYTHONPATH="$PWD:$site"
which nvcc ninja || true
exec python3 benchmarks/gpu/run_gpu.py --out "$out"
