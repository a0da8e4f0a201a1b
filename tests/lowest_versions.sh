#!/usr/bin/env bash
# The tests that need neither torch nor the kernels library (markers, see pyproject.toml), on the lowest
# versions pyproject.toml declares: Python 3.10, huggingface_hub 1.33, pydantic 2.12, tomli-w 1.0, tomlkit 0.12,
# filelock 3.20.3, sigstore 4.5. (tests/conftest.py declares the target every test selects for, so none needs torch to detect it.)
set -euo pipefail
cd "$(dirname "$0")/.."
py=""
for candidate in python3.10 "$(pyenv root 2>/dev/null || echo ~/.pyenv)"/versions/3.10*/bin/python3.10; do
  if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
    py=$candidate
    break
  fi
done
if [ -z "$py" ]; then
  echo "no working Python 3.10 found: the lowest-versions run is skipped"
  exit 0
fi
"$py" -m venv .venv-lowest
.venv-lowest/bin/pip install -q "huggingface_hub==1.33.0" "pydantic==2.12.0" "tomli-w==1.0.0" "tomlkit==0.12.0" \
  "filelock==3.20.3" "tomli==2.0.1" "sigstore==4.5.0" pytest hypothesis jsonschema
.venv-lowest/bin/pip install -q --no-deps -e .
.venv-lowest/bin/python -m pytest -q -p no:cacheprovider -m "not (slow or torch or kernels or gpu)"
