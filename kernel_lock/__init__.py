"""kernel-lock: lock, sync and verify Hugging Face Hub kernels; load them only after they verify.

The public API is imported lazily so that `import kernel_lock` (and the CLI) stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"  # the only place the version is written; pyproject.toml reads it from here

_EXPORTS = {
    "get_kernel": "kernel_lock.load",
    "LockedLayerRepository": "kernel_lock.load",
    "get_kernel_dep": "kernel_lock.load",
    "sync_project": "kernel_lock.sync",
    "check_variant": "kernel_lock.verify",
    "detect_target": "kernel_lock.target",
    "parse_target": "kernel_lock.target",
    "lock_project": "kernel_lock.locking",
    "check_lock": "kernel_lock.locking",
    "load_project": "kernel_lock.config",
    "read_lock": "kernel_lock.lockfile",
    "KernelLockError": "kernel_lock.errors",
    "enforce": "kernel_lock.enforcement",
    "enforced": "kernel_lock.enforcement",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kernel_lock' has no attribute {name!r}")
    return getattr(import_module(module), name)
