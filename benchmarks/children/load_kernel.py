"""One load in a fresh interpreter: torch first (every program that uses a kernel has it), then the library,
then the load call alone. Prints one JSON line with the in-process times.

    python load_kernel.py TOOL REPO LOCKFILE     # TOOL: kernel-lock, kernels, or none (torch only)
    python load_kernel.py bare REPO VARIANT_DIR  # the variant's files imported as they are, unverified
"""

import json
import sys
import time

t0 = time.perf_counter()
import torch  # noqa: E402 - timed: the imports are what this child measures

t1 = time.perf_counter()
tool, repo, lockfile = sys.argv[1], sys.argv[2], sys.argv[3]
if tool == "kernel-lock":
    from kernel_lock import get_kernel

    t2 = time.perf_counter()
    kernel = get_kernel(repo, lockfile=lockfile)
elif tool == "kernels":
    from pathlib import Path

    from kernels import load_kernel

    t2 = time.perf_counter()
    kernel = load_kernel(repo, lockfile=Path(lockfile))
elif tool == "bare":
    import importlib.util
    import os

    t2 = time.perf_counter()
    vdir = lockfile
    with open(os.path.join(vdir, "metadata.json")) as f:
        name = json.load(f)["id"]
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(vdir, "__init__.py"), submodule_search_locations=[vdir]
    )
    kernel = importlib.util.module_from_spec(spec)
    sys.modules[name] = kernel
    spec.loader.exec_module(kernel)
else:
    t2 = time.perf_counter()
    kernel = None
t3 = time.perf_counter()
variant = None
if kernel is not None:
    x = torch.randn(4, 8)
    out = torch.empty_like(x)
    assert torch.equal(kernel.relu(out, x), torch.relu(x)), "kernel computes wrong"
    variant = kernel.VARIANT
print(
    json.dumps(
        {
            "torch_import": t1 - t0,
            "lib_import": t2 - t1,
            "load": t3 - t2,
            "variant": variant,
            "module": getattr(kernel, "__name__", None),
        }
    )
)
