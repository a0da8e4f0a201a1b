"""Verified loading: the locked `get_kernel` and `LockedLayerRepository`.

A kernel is imported only after its synced files verify against the lock
(`kernel_lock.cache.verify`), never over the network unless the caller passes
`download=True`, and once per process per variant, under the unique module
name its metadata gives (`id`). Its modules are found only among the lock's
files and compiled from bytes checked against the lock as they are imported,
later (lazy) imports included (`kernel_lock.load._verified_import`): a planted
`__pycache__/*.pyc` (which verification ignores, like the hash does), or a file
swapped after the check, is never run.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from kernel_lock import env
from kernel_lock.errors import LockfileError, NotSyncedError
from kernel_lock.load import _registry as registry
from kernel_lock.load.find import find_lockfile

if TYPE_CHECKING:
    import importlib.metadata

    from kernel_lock.core.lockfile import Lock, LockedKernel
    from kernel_lock.core.target import Target


def find_lock(lockfile: str | os.PathLike[str] | None = None, *, caller: ModuleType | None = None) -> Lock:
    """The lock to load from; the first of:

    1. the `lockfile` argument;
    2. `KERNEL_LOCK_FILE`;
    3. `kernels.lock` in the installed metadata of the calling package;
    4. the `kernels.lock` nearest above the calling module's file, up to its project root (the nearest
       folder with a `pyproject.toml`; only the file's own folder where there is none);
    5. the same from the working directory.

    A lock found in 4 or 5 is used only where no one but this user and root can change it: a planted one
    (in a shared folder, say) is refused, never silently passed over (`kernel_lock.load.find.find_lockfile`).
    """
    from kernel_lock.core.lockfile import parse_lock, read_lock
    from kernel_lock.project.paths import LOCKFILE

    named = find_lockfile(lockfile, starts=())
    if named is not None:
        return read_lock(named)
    looked = ["the lockfile argument (not given)", f"${env.LOCK_FILE} (not set)"]
    distributions = _caller_distributions(caller)
    for dist in distributions:
        text = dist.read_text(LOCKFILE)
        where = f"{LOCKFILE} in the metadata of the installed distribution {dist.metadata['Name']}"
        if text is not None:
            return parse_lock(text, where=where)
        looked.append(f"{where} (absent)")
    if not distributions:
        looked.append("the metadata of the calling package (no installed distribution provides it)")
    file = getattr(caller, "__file__", None) if caller is not None else None
    starts = [(Path(file).resolve().parent, f"the calling module {file}")] if file else []
    starts.append((Path.cwd().resolve(), "the working directory"))
    found = find_lockfile(starts=[start for start, _ in starts])
    if found is not None:
        return read_lock(found)
    looked += [
        f"the folders from {start} up to its project root, for {what} (none holds a {LOCKFILE})"
        for start, what in starts
    ]
    raise LockfileError(
        "No kernels.lock found. Looked at: " + "; ".join(looked) + ". Pass lockfile=..., set "
        f"{env.LOCK_FILE}, or build your package with kernel-lock so it carries its kernels.lock."
    )


def _caller_distributions(caller: ModuleType | None) -> list[importlib.metadata.Distribution]:
    """Installed distributions that provide the calling module's top-level package."""
    import importlib.metadata

    if caller is None:
        return []
    package = caller.__name__.split(".")[0]
    names = importlib.metadata.packages_distributions().get(package, [])
    return [importlib.metadata.distribution(n) for n in names]


def _calling_module() -> ModuleType | None:
    """The first module up the stack that is not part of kernel-lock."""
    frame = inspect.currentframe()
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not name.startswith("kernel_lock"):
            return sys.modules.get(name)
        frame = frame.f_back
    return None


def get_kernel(
    repo_id: str,
    *,
    version: int | None = None,
    revision: str | None = None,
    lockfile: str | os.PathLike[str] | None = None,
    target: Target | str | None = None,
    download: bool = False,
) -> ModuleType:
    """Import the locked kernel `repo_id` after verifying its synced files against the lock.

    The variant is the one the `kernels` library would pick for this environment
    (or for `target`). With `download=True` a variant that is not synced yet is
    synced first (and verified as `kernel-lock sync` does); otherwise nothing
    touches the network. `version=` / `revision=`, as `kernels.get_kernel` takes
    them, must be what the lock holds for `repo_id` (a `LockfileError` if not).
    """
    known = find_lockfile(lockfile, starts=())
    if known and target is None and version is None and revision is None:
        from kernel_lock.load._fast import quick_get_kernel

        module = quick_get_kernel(known, repo_id)
        if module is not None:
            return module
    lock = find_lock(lockfile, caller=_calling_module())
    return load_locked(lock, repo_id, target=target, download=download, version=version, revision=revision)


def load_locked(
    lock: Lock,
    repo_id: str,
    *,
    target: Target | str | None = None,
    download: bool = False,
    version: int | None = None,
    revision: str | None = None,
) -> ModuleType:
    """`get_kernel` for a lock already in hand."""
    from kernel_lock.core.target import default_target, parse_target

    entry = lock.find(repo_id)
    if entry is None:
        locked = ", ".join(k.requested_repo for k in lock.kernel if k.direct) or "none"
        raise LockfileError(
            f"{repo_id} is not in kernels.lock (locked: {locked}). Add it to [tool.kernels.dependencies] "
            f"and run `kernel-lock lock` and `kernel-lock sync`."
        )
    _check_requested(entry, version, revision)
    chosen = parse_target(target) if isinstance(target, str) else target or default_target()
    return _load_entry(lock, entry, chosen, download=download, chain=())


def _check_requested(entry: LockedKernel, version: int | None, revision: str | None) -> None:
    """A `LockfileError` where `get_kernel(..., version=, revision=)` asks for other than what is locked."""
    if version is not None and revision is not None:
        raise LockfileError(f"get_kernel({entry.requested_repo!r}): give version= or revision=, not both.")
    asked = (
        f"version {version}"
        if version is not None
        else f"revision {revision}"
        if revision is not None
        else None
    )
    if asked is None:
        return
    same = (
        entry.version == version
        if version is not None
        else revision in (entry.revision, entry.ref, entry.commit)
    )
    if not same:
        raise LockfileError(
            f"get_kernel({entry.requested_repo!r}) asks for {asked}, but kernels.lock holds "
            f"{entry.requirement().describe()} (commit {entry.commit[:12]}). Change the call, or require {asked} "
            f"in [tool.kernels.dependencies] (`kernel-lock add {entry.requested_repo} "
            f"{'--version ' + str(version) if version is not None else '--revision ' + str(revision)}`) and sync."
        )


def load_entry(lock: Lock, entry: LockedKernel, *, target: Target) -> ModuleType:
    """Load one entry of `lock` (direct or a dependency) offline, verified, once per process per variant."""
    return _load_entry(lock, entry, target, download=False, chain=())


def _load_entry(
    lock: Lock, entry: LockedKernel, target: Target, *, download: bool, chain: tuple[str, ...]
) -> ModuleType:
    """Load one locked kernel: its dependencies first (each verified), then itself, once per process."""
    from kernel_lock.core.variants import select_variant

    if entry.key in chain:
        raise LockfileError(f"kernels.lock has a dependency cycle: {' -> '.join([*chain, entry.key])}.")
    variant = select_variant(entry.variants, target, repo_id=entry.repo_id)

    def load() -> ModuleType:
        deps = {}
        for dep in lock.dependencies_of(entry, variant):
            deps[dep.requested_repo] = deps[dep.repo_id] = _load_entry(
                lock, dep, target, download=download, chain=(*chain, entry.key)
            )
        return _verify_and_import(entry, variant, download=download, deps=deps, target=target)

    return registry.imported_once((entry.repo_id, entry.commit, variant), load)


def _synced_elsewhere(entry: LockedKernel, variant: str, target: Target) -> str:
    """` Synced: V (for ENV); this machine is ENV.` where another environment's variant is synced (else empty).

    The usual cause is a sync for another target (a Docker build stage without torch, say).
    """
    from kernel_lock.cache.verify import check_variant
    from kernel_lock.core.variants import describe_variant

    others = [
        v for v in sorted(entry.variants) if v != variant and check_variant(entry, v).status != "missing"
    ]
    if not others:
        return ""
    synced = ", ".join(f"{v} (for {describe_variant(v)})" for v in others)
    return f" Synced: {synced}; this environment is {target.describe()}, which loads {variant}."


def _verify_and_import(
    entry: LockedKernel, variant: str, *, download: bool, deps: dict[str, ModuleType], target: Target
) -> ModuleType:
    from kernel_lock.cache.verify import check_variant
    from kernel_lock.load._verified_import import locked_files

    check = check_variant(entry, variant)
    if check.status == "missing" and download:
        from kernel_lock.cache.sync import sync_variants

        sync_variants([(entry, variant)])
        check = check_variant(entry, variant)
    if check.status == "missing":
        raise NotSyncedError(
            f"{check.error()}{_synced_elsewhere(entry, variant, target)} Run `kernel-lock sync --variant {variant}` "
            f"(or `kernel-lock sync` on a machine like this one) before loading, or call "
            f"get_kernel(..., download=True)."
        )
    if not check.ok:
        raise check.error()
    assert check.record is not None  # a check that passed read it
    files = locked_files(check.record)
    with _kernel_deps(deps):
        return registry.import_variant(check.path, where=f"{entry.repo_id} variant {variant}", files=files)


_DEPS: ContextVar[dict[str, ModuleType] | None] = ContextVar("kernel_lock_deps", default=None)


@contextmanager
def _kernel_deps(deps: dict[str, ModuleType]) -> Iterator[None]:
    """Make a kernel's dependencies available to it while it is imported (also through `kernels.get_kernel_dep`)."""
    token = _DEPS.set(deps)
    kernels_token = None
    if deps:
        kernels_deps = _kernels_deps_module()
        if kernels_deps is not None:
            kernels_token = (kernels_deps._KERNEL_DEPS, kernels_deps._KERNEL_DEPS.set(deps))
    try:
        yield
    finally:
        if kernels_token is not None:
            kernels_token[0].reset(kernels_token[1])
        _DEPS.reset(token)


def _kernels_deps_module() -> ModuleType | None:
    """The `kernels` module that holds `get_kernel_dep`'s state (0.19: under `kernels._internals`), if installed."""
    for name in ("kernels._internals.deps", "kernels.deps"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def get_kernel_dep(repo_id: str) -> ModuleType:
    """A dependency of the kernel being imported, as its `kernel-depends` names it; only valid during its import."""
    deps = _DEPS.get()
    if deps is None or repo_id not in deps:
        raise LockfileError(
            f"get_kernel_dep({repo_id!r}) called outside the import of a kernel that declares {repo_id} in its "
            f"kernel-depends."
        )
    return deps[repo_id]


class LockedLayerRepository:
    """A layer from a locked kernel, for `kernels.kernelize` / `use_kernel_mapping`.

    Satisfies the `kernels` library's layer repository protocol (`load()`,
    `layer_name`, hashable, comparable); `load()` goes through the verified
    `get_kernel`, so a tampered kernel fails before any of its code runs.
    """

    def __init__(
        self, repo_id: str, *, layer_name: str, lockfile: str | os.PathLike[str] | None = None
    ) -> None:
        self.repo_id = repo_id
        self.layer_name = layer_name
        self._lock = find_lock(lockfile, caller=_calling_module())
        entry = self._lock.find(repo_id)
        if entry is None:
            raise LockfileError(
                f"{repo_id} is not in kernels.lock; add it to [tool.kernels.dependencies] and lock."
            )
        self.commit = entry.commit

    def load(self) -> type:
        """The layer class, after verified loading of its kernel."""
        kernel = load_locked(self._lock, self.repo_id)
        layers = getattr(kernel, "layers", None)
        layer = getattr(layers, self.layer_name, None) if layers is not None else None
        if not isinstance(layer, type):
            raise LockfileError(f"Kernel {self} has no layer {self.layer_name!r} in its `layers` module.")
        return layer

    def _key(self) -> tuple[str, str, str]:
        return (self.repo_id, self.commit, self.layer_name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LockedLayerRepository) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return f"`{self.repo_id}` (locked commit: {self.commit}), layer `{self.layer_name}`"

    def __repr__(self) -> str:
        return f"LockedLayerRepository({self.repo_id!r}, layer_name={self.layer_name!r}, commit={self.commit[:12]!r})"
