#!/usr/bin/env bash
# Fetch wheels for the GPU machine's Python 3.12 into .carry/wheels (git-ignored): kernel-lock's
# dependencies that are not on that machine, the newest supported stack (kernels 0.19.1 without its
# signing extras, transformers 5.25.0), the huggingface_hub that transformers 5.25 needs (>= 2.4), and pytest
# for the suite's `gpu` tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .carry/wheels
mkdir -p .carry/wheels
platforms=(--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64)
pip download -q --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d .carry/wheels pydantic click tomli-w tomlkit filelock packaging "huggingface_hub==2.4.0" pytest
pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d .carry/wheels kernels==0.19.1 transformers==5.25.0
ls .carry/wheels
