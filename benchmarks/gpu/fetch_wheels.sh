#!/usr/bin/env bash
# Fetch wheels for the GPU machine's Python 3.12 into .carry/wheels (git-ignored): kernel-lock's
# dependencies that are not on that machine, kernels 0.17.2 (without its signing extras) and transformers 5.22.2.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .carry/wheels
pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d .carry/wheels pydantic click tomli-w tomlkit filelock packaging
pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 -d .carry/wheels kernels==0.17.2 transformers==5.22.2
ls .carry/wheels
