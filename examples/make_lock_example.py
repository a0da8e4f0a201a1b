"""Write `kernels.lock.example` with kernel-lock itself, from the local Hub's standard fixtures.

`python examples/make_lock_example.py [OUT]`; a test checks the committed file is current.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from kernel_lock.errors import KernelLockWarning
from kernel_lock.lock.project import lock_project
from kernel_lock.testing import LocalHub, populate

PYPROJECT = """[project]
name = "example"
version = "0.1.0"

[tool.kernels.dependencies]
"kernels-community/relu" = 1
"kernels-community/activation" = { version = 1 }
"kernels-community/old-relu" = 2
"""


def main(out: str = str(Path(__file__).resolve().parent.parent / "kernels.lock.example")) -> None:
    work = Path(tempfile.mkdtemp(prefix="kernel-lock-example-"))
    saved_cache = os.environ.get("HF_HUB_CACHE")
    try:
        (work / "pyproject.toml").write_text(PYPROJECT)
        with LocalHub() as hub, warnings.catch_warnings():
            warnings.simplefilter("ignore", KernelLockWarning)  # the example locks relu 1 although 2 exists
            populate(hub)
            os.environ["HF_HUB_CACHE"] = str(work / "cache")
            lock_project(work, endpoint=hub.url)
        shutil.copyfile(work / "kernels.lock", out)
    finally:
        if saved_cache is None:
            os.environ.pop("HF_HUB_CACHE", None)
        else:
            os.environ["HF_HUB_CACHE"] = saved_cache
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
