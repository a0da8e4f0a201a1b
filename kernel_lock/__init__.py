"""kernel-lock: lock, sync and verify Hugging Face Hub kernels; load them only after they verify.

The public API is imported lazily so that `import kernel_lock` (and the CLI) stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real signatures for mypy and editors; at run time each is imported when first used
    from kernel_lock.cache.sync import sync_project
    from kernel_lock.cache.verify import check_variant
    from kernel_lock.core.lockfile import read_lock
    from kernel_lock.core.target import detect_target, parse_target
    from kernel_lock.enforcement import enforce, enforced
    from kernel_lock.errors import KernelLockError
    from kernel_lock.load.locked import LockedLayerRepository, get_kernel, get_kernel_dep
    from kernel_lock.lock.project import check_lock, lock_project
    from kernel_lock.project.config import load_project

__version__ = "0.1.0"  # the only place the version is written; pyproject.toml reads it from here

_EXPORTS = {
    "get_kernel": "kernel_lock.load.locked",
    "LockedLayerRepository": "kernel_lock.load.locked",
    "get_kernel_dep": "kernel_lock.load.locked",
    "sync_project": "kernel_lock.cache.sync",
    "check_variant": "kernel_lock.cache.verify",
    "detect_target": "kernel_lock.core.target",
    "parse_target": "kernel_lock.core.target",
    "lock_project": "kernel_lock.lock.project",
    "check_lock": "kernel_lock.lock.project",
    "load_project": "kernel_lock.project.config",
    "read_lock": "kernel_lock.core.lockfile",
    "KernelLockError": "kernel_lock.errors",
    "enforce": "kernel_lock.enforcement",
    "enforced": "kernel_lock.enforcement",
}

__all__ = [
    "KernelLockError",
    "LockedLayerRepository",
    "__version__",
    "check_lock",
    "check_variant",
    "detect_target",
    "enforce",
    "enforced",
    "get_kernel",
    "get_kernel_dep",
    "load_project",
    "lock_project",
    "parse_target",
    "read_lock",
    "sync_project",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kernel_lock' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
