"""Locked loading inside the unchanged `kernels` library: every kernel it loads is answered from the lock.

`enforce()` hooks `kernels` where a request (repo, version or revision)
becomes a location to load from, and where a location is imported:

- the `resolve` method of its Hub resolvers, which every loader goes through
  (`get_kernel`, `load_kernel`, `get_locked_kernel`, `has_kernel`,
  `install_kernel`, the layer and function repositories, kernel dependencies):
  the request is looked up in `kernels.lock`, and the variant our selection
  picks is verified offline and handed back as a local kernel;
- the path resolvers and the variables that bypass the lock (`LOCAL_KERNELS`,
  0.19's `UNSTABLE_KERNELS_ALL_LATEST`): refused;
- the import step: a verified variant is imported by kernel-lock's loader
  rather than one that would run a planted `__pycache__/*.pyc`;
- what differs by release (0.17's repositories resolving versions over the
  network, 0.18's load-time validators, 0.19's `kernels._internals`): one
  adapter per release family (`_adapters`), chosen from the installed version.

Classes and module globals are patched, not names, so references taken before
the call (transformers' `from kernels import get_kernel`) are covered too. The
same hooks can instead record requests (`kernel-lock run --record`).

Holds: `_modes` (what a request becomes), `_hooks` (the replacements),
`_adapters` (where they go in each release), `run` (the processes `kernel-lock
run` starts) and `site/` (their `sitecustomize`). May import `core`,
`project`, `lock`, `cache` and `load`, lazily.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from kernel_lock import env
from kernel_lock.enforcement._adapters import SUPPORTED_KERNELS, adapter_for
from kernel_lock.enforcement._modes import Enforcer, Mode, Recorder, Request, state

__all__ = [
    "SUPPORTED_KERNELS",
    "Request",
    "activate_from_environment",
    "disable",
    "enforce",
    "enforced",
    "record",
]


def enforce(lockfile: str | os.PathLike[str] | None = None, *, strict: bool = True) -> None:
    """From now on, answer every kernel the `kernels` library loads in this process from the lock.

    The lock is found as `kernel_lock.get_kernel` finds it (argument,
    `KERNEL_LOCK_FILE`, the calling package's metadata, the project here). A
    request the lock does not hold raises `NotLockedError` (`strict=False`:
    a warning, and `kernels` loads it as it would). Works whether or not
    `kernels` (or transformers) is imported yet; raises
    `UnsupportedKernelsVersion` for a `kernels` it does not know.
    """
    from kernel_lock.load.locked import _calling_module, find_lock

    lock = find_lock(lockfile, caller=_calling_module())
    _activate(Enforcer(Path(lockfile) if lockfile is not None else None, strict, lock))


def enforced() -> bool:
    """Whether `enforce()` is on in this process."""
    return isinstance(state.mode, Enforcer)


def disable() -> None:
    """Undo `enforce()` (or recording): restore the `kernels` library as it was."""
    with state.lock:
        for owner, name, original in reversed(state.patches):
            setattr(owner, name, original)
        state.patches.clear()
        state.mode = None
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterKernelsImport)]


def record(path: str | os.PathLike[str]) -> None:
    """Append every kernel the program asks the `kernels` library for to `path` (JSON lines), changing nothing else."""
    _activate(Recorder(Path(path)))


def activate_from_environment() -> None:
    """What `kernel-lock run` starts in every Python process: `KERNEL_LOCK_RECORD`, else `KERNEL_LOCK_ENFORCE=1`.

    The lock is read on the first kernel request, so a process that never
    loads a kernel pays nothing for it.
    """
    recording = env.record_file()
    if recording is not None:
        _activate(Recorder(recording))
    elif env.enforce():
        _activate(Enforcer(None, env.strict()))


def _activate(mode: Mode) -> None:
    """Switch to `mode`, hooking `kernels` now if it is imported, else as soon as it is."""
    disable()
    with state.lock:
        state.mode = mode
        if "kernels" in sys.modules:
            _install_or_disable(sys.modules["kernels"])
        else:
            sys.meta_path.insert(0, _AfterKernelsImport())


class _AfterKernelsImport(importlib.abc.MetaPathFinder):
    """Installs the hooks right after `import kernels` finishes, without importing it earlier."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "kernels":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_hook(module: ModuleType) -> None:
            exec_module(module)
            with state.lock:
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                    _install_or_disable(module)

        loader.exec_module = exec_then_hook  # type: ignore[method-assign]
        return spec


def _install_or_disable(kernels: ModuleType) -> None:
    """Hook `kernels` through the adapter of its release family, leaving it untouched and nothing on if that fails."""
    try:
        adapter_for(kernels).install(_patch)
    except BaseException:
        disable()
        raise


def _patch(owner: Any, name: str, value: Any) -> None:
    state.patches.append(
        (owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name))
    )
    setattr(owner, name, value)
