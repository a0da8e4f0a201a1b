"""Put on `PYTHONPATH` by `kernel-lock run`: kernels enforcement (or recording) in every Python process.

`KERNEL_LOCK_RECORD` or `KERNEL_LOCK_ENFORCE=1` (with `KERNEL_LOCK_FILE`)
turns kernel-lock on first; the `kernels` library is hooked when it is
imported, so a process that never loads a kernel pays only this file's import.
If enforcement cannot start, the process stops with exit status 2 rather than
run unenforced. Then the environment's own `sitecustomize` (the next one on
`sys.path`) runs, as it would without us: one that fails is reported on stderr,
as Python reports its own, and enforcement stays on.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def _activate() -> None:
    if not (os.environ.get("KERNEL_LOCK_RECORD") or os.environ.get("KERNEL_LOCK_ENFORCE")):
        return
    try:
        from kernel_lock.autoenforce import activate
    except Exception as exc:
        sys.stderr.write(f"error: kernel-lock could not turn on kernels enforcement: {exc}\n")
        sys.stderr.flush()
        os._exit(2)
    activate()


def _run_next_sitecustomize() -> None:
    """Execute the `sitecustomize` this one hides, as the module `sitecustomize`; its failure is only reported."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    ours = sys.modules[__name__]
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules["sitecustomize"] = ours  # the import of this module, still under way, finds itself
        sys.stderr.write(
            f"warning: the environment's sitecustomize ({spec.origin}) failed: {type(exc).__name__}: {exc}; "
            f"kernel-lock's start-up hook ran before it and stays on.\n"
        )
        sys.stderr.flush()


_activate()
_run_next_sitecustomize()
