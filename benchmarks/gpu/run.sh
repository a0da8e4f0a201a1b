#!/usr/bin/env bash
# The GPU run, from a clean checkout on the GPU machine (no network, no package registry):
#   bash benchmarks/gpu/run.sh [OUT_DIR]
# Wheels of kernel-lock's pure-Python dependencies, kernels 0.19.1 and transformers 5.25.0 must be in
# .carry/wheels (made on a machine with PyPI access by benchmarks/gpu/fetch_wheels.sh); torch, CUDA,
# ninja and huggingface_hub come from the machine. Nothing is installed into the machine's Python: the
# wheels are unpacked into a folder of their own that PYTHONPATH puts first.
#   run_gpu.py           a real CUDA kernel locked, synced, loaded with kernel_lock.get_kernel; load timings
#   run_transformers.py  a tiny Llama with use_kernels=True under `kernel-lock run`; start-up vs kernels alone
#   pytest -m gpu        the suite's GPU tests (a locked CUDA kernel, use_kernels with a kernel_config)
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:-${OUT:-/tmp/kernel-lock-gpu}}"
site=/tmp/kernel-lock-gpu-site
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --target "$site" .carry/wheels/*.whl || exit 2
export PYTHONPATH="$PWD:$site"
# Bytecode for kernel-lock itself, as `pip install` writes it (this machine does not write bytecode as it
# imports, so without this every fresh process would compile kernel-lock's modules: not what users see).
python3 -m compileall -q -j 0 kernel_lock
which nvcc ninja || true
status=0
python3 benchmarks/gpu/run_gpu.py --out "$out" || status=1
python3 benchmarks/gpu/run_transformers.py --out "$out" || status=1
python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py tests/test_enforce.py || status=1
exit $status
