"""Locked loading inside the unchanged `kernels` library: every kernel it loads is answered from the lock.

`enforce()` hooks `kernels` (0.17.x) at its resolver layer, where a request
(repo, version or revision) becomes a location to load from:

- the `resolve` method of its Hub resolvers (`HubResolver`, `HubCacheResolver`,
  `LockedHubResolver`, `LockedHubCacheResolver`), which every loader goes
  through (`get_kernel`, `load_kernel`, `get_locked_kernel`, `has_kernel`,
  `install_kernel`, both layer repositories, kernel dependencies): the request
  is looked up in `kernels.lock`, the variant our selection picks is verified
  offline and handed back as a local kernel;
- the path resolvers (`LOCAL_KERNELS`, `get_local_kernel`), which would bypass
  the lock;
- `LayerRepository._resolve_revision`, which turns a version into a commit over
  the network before loading: answered with the locked commit;
- `kernels.deps._import_from_path`, the import step: a verified variant is
  imported by kernel-lock's loader (from source, once per variant) rather than
  one that would run a planted `__pycache__/*.pyc`.

Classes and module globals are patched, not names, so references taken before
the call (transformers' `from kernels import get_kernel`) are covered too. The
same resolver hook can instead record requests (`kernel-lock run --record`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kernel_lock import env
from kernel_lock.errors import NotLockedError, NotSyncedError, UnsupportedKernelsVersion, VerificationError

if TYPE_CHECKING:
    from kernel_lock.lockfile import Lock, LockedKernel
    from kernel_lock.target import Target

SUPPORTED_KERNELS = ((0, 17),)
_HUB_RESOLVERS = ("HubResolver", "HubCacheResolver", "LockedHubResolver", "LockedHubCacheResolver")
_PATH_RESOLVERS = ("RepoPathsResolver", "KernelPathsResolver")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Request:
    """What a program asked `kernels` for: a repo and a version or revision, and whether it trusts remote code."""

    repo_id: str
    version: int | None
    revision: str | None
    trust_remote_code: bool

    def describe(self) -> str:
        return f"version {self.version}" if self.version is not None else f"revision {self.revision}"

    def add_command(self) -> str:
        """The `kernel-lock add` command that locks this request."""
        how = f"--version {self.version}" if self.version is not None else f"--revision {self.revision}"
        trust = " --trust-remote-code" if self.trust_remote_code else ""
        return f"kernel-lock add {self.repo_id} {how}{trust}"


def _declared_beside(lockfile: Path | None, request: Request) -> bool:
    """Whether the pyproject.toml beside the lock requires what `request` asks for (then the lock is stale)."""
    from kernel_lock.config import load_project
    from kernel_lock.errors import KernelLockError
    from kernel_lock.projectpaths import LOCKFILE, find_project_root

    path = lockfile or env.lock_file() or find_project_root(None) / LOCKFILE
    try:
        dep = load_project(path.parent).dependencies.get(request.repo_id)
    except KernelLockError:
        return False
    return dep is not None and (dep.version, dep.revision) == (request.version, request.revision)


@dataclass
class _Enforcer:
    """Answers `kernels` requests from one lock."""

    lockfile: Path | None
    strict: bool
    _lock: Lock | None = None
    verified: dict[str, tuple[LockedKernel, Target]] = field(default_factory=dict)

    @property
    def lock(self) -> Lock:
        if self._lock is None:
            from kernel_lock.load import find_lock

            self._lock = find_lock(self.lockfile)
        return self._lock

    def entry_for(self, request: Request) -> LockedKernel:
        """The lock entry for a request: same repo and requirement, or (for a commit) the entry locked at it."""
        lock = self.lock
        for entry in lock.kernel:
            if request.repo_id not in (entry.requested_repo, entry.repo_id):
                continue
            if request.version is not None and entry.version == request.version:
                return entry
            if request.revision is not None and (
                entry.revision == request.revision
                or (_COMMIT.fullmatch(request.revision) and entry.commit == request.revision)
            ):
                return entry
        held = [
            f"{e.requirement().describe()} (commit {e.commit[:12]})"
            for e in lock.kernel
            if request.repo_id in (e.requested_repo, e.repo_id)
        ]
        holds = f"holds {', '.join(held)} of it" if held else "holds nothing of it"
        asked = f"The kernels library was asked for {request.repo_id} {request.describe()}, which kernels.lock does not "
        if _declared_beside(self.lockfile, request):
            raise NotLockedError(
                f"{asked}hold (it {holds}), though pyproject.toml requires it: the lock is older than "
                f"pyproject.toml. Run `kernel-lock lock` and `kernel-lock sync` (or `kernel-lock run --sync`, which "
                f"locks first)."
            )
        raise NotLockedError(
            f"{asked}hold (it {holds}); under kernel-lock enforcement only locked kernels load. Lock it with "
            f"`{request.add_command()}` and `kernel-lock sync`, or change the program to ask for what is locked."
        )

    def local_kernel(self, entry: LockedKernel, backend: str | None) -> Any:
        """Verify the variant our selection picks for this machine (or `backend`) and describe it for `kernels`."""
        from kernels._rust import Metadata
        from kernels.resolver import LocalKernel

        from kernel_lock.target import default_target
        from kernel_lock.variants import select_variant
        from kernel_lock.verify import check_variant

        target = default_target()
        if backend is not None and backend != target.backend:
            target = target._replace(backend=backend, backend_version=None)
        variant = select_variant(entry.variants, target, repo_id=entry.repo_id)
        check = check_variant(entry, variant)
        if check.status == "missing":
            raise NotSyncedError(
                f"{check.error()} Under enforcement nothing is downloaded: run `kernel-lock sync` first "
                f"(or start the program with `kernel-lock run --sync`)."
            )
        if not check.ok:
            raise check.error()
        self.verified[str(check.path)] = (entry, target)
        return LocalKernel(
            variant_path=check.path, metadata=Metadata.read_from_file(check.path / "metadata.json")
        )

    def refuse(self, error: NotLockedError, fallback: Callable[[], Any]) -> Any:
        """Raise (strict), or warn and let `kernels` do what it would have done."""
        from kernel_lock.errors import KernelLockWarning

        if self.strict:
            raise error
        warnings.warn(f"{error} Loading it unverified (strict=False).", KernelLockWarning, stacklevel=4)
        return fallback()


@dataclass
class _Recorder:
    """Appends each request to a JSON-lines file (`kernel-lock run --record`) and lets `kernels` go on."""

    path: Path
    seen: set[Request] = field(default_factory=set)
    resolved_commits: set[tuple[str, str]] = field(default_factory=set)

    def note(self, request: Request) -> None:
        if request.revision is not None and (request.repo_id, request.revision) in self.resolved_commits:
            return  # a LayerRepository version, already noted, that kernels resolved to this commit
        if request in self.seen:
            return
        self.seen.add(request)
        line = json.dumps(
            {
                "repo_id": request.repo_id,
                "version": request.version,
                "revision": request.revision,
                "trust_remote_code": request.trust_remote_code,
            }
        )
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


_mode: _Enforcer | _Recorder | None = None
_patches: list[tuple[Any, str, Any]] = []
_state_lock = threading.RLock()


def enforce(lockfile: str | os.PathLike[str] | None = None, *, strict: bool = True) -> None:
    """From now on, answer every kernel the `kernels` library loads in this process from the lock.

    The lock is found as `kernel_lock.get_kernel` finds it (argument,
    `KERNEL_LOCK_FILE`, the calling package's metadata, the project here). A
    request the lock does not hold raises `NotLockedError` (`strict=False`:
    a warning, and `kernels` loads it as it would). Works whether or not
    `kernels` (or transformers) is imported yet; raises
    `UnsupportedKernelsVersion` for a `kernels` it does not know.
    """
    from kernel_lock.load import _calling_module, find_lock

    lock = find_lock(lockfile, caller=_calling_module())
    enforcer = _Enforcer(Path(lockfile) if lockfile is not None else None, strict, lock)
    _activate(enforcer)


def enforced() -> bool:
    """Whether `enforce()` is on in this process."""
    return isinstance(_mode, _Enforcer)


def disable() -> None:
    """Undo `enforce()` (or recording): restore the `kernels` library as it was."""
    global _mode
    with _state_lock:
        for owner, name, original in reversed(_patches):
            setattr(owner, name, original)
        _patches.clear()
        _mode = None
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterKernelsImport)]


def record(path: str | os.PathLike[str]) -> None:
    """Append every kernel request the `kernels` library sees to `path` (JSON lines), changing nothing else."""
    _activate(_Recorder(Path(path)))


def activate_from_environment() -> None:
    """What `kernel-lock run` starts in every Python process: `KERNEL_LOCK_RECORD`, else `KERNEL_LOCK_ENFORCE=1`.

    The lock is read on the first kernel request, so a process that never
    loads a kernel pays nothing for it.
    """
    recording = env.record_file()
    if recording is not None:
        _activate(_Recorder(recording))
    elif env.enforce():
        _activate(_Enforcer(None, env.strict()))


def _activate(mode: _Enforcer | _Recorder) -> None:
    """Switch to `mode`, hooking `kernels` now if it is imported, else as soon as it is."""
    global _mode
    disable()
    with _state_lock:
        _mode = mode
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
            with _state_lock:
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                    _install_or_disable(module)

        loader.exec_module = exec_then_hook  # type: ignore[method-assign]
        return spec


def _install_or_disable(kernels: ModuleType) -> None:
    """`_install`, leaving `kernels` untouched and nothing on if it fails."""
    try:
        _install(kernels)
    except BaseException:
        disable()
        raise


def _install(kernels: ModuleType) -> None:
    """Patch `kernels` (its version checked first) to go through the current mode."""
    version = getattr(kernels, "__version__", "unknown")
    try:
        major_minor = tuple(int(p) for p in str(version).split(".")[:2])
    except ValueError:
        major_minor = ()
    resolver = sys.modules.get("kernels.resolver")
    deps = sys.modules.get("kernels.deps")
    layer = sys.modules.get("kernels.layer.layer")
    hooked = [resolver, deps, layer]
    missing = [
        f"{m.__name__ if m else '?'}.{name}"
        for m, name in [
            *((resolver, n) for n in (*_HUB_RESOLVERS, *_PATH_RESOLVERS)),
            (deps, "_import_from_path"),
            (layer, "LayerRepository"),
        ]
        if m is None or not hasattr(m, name)
    ]
    if major_minor not in SUPPORTED_KERNELS or missing or None in hooked:
        known = ", ".join(f"{a}.{b}.x" for a, b in SUPPORTED_KERNELS)
        raise UnsupportedKernelsVersion(
            f"kernel-lock enforcement knows the kernels library {known}, but kernels {version} is installed"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + ". Nothing would be enforced, so it refuses to start. Install a supported kernels "
            "(e.g. `pip install 'kernels>=0.17,<0.18'`) or upgrade kernel-lock."
        )
    assert resolver is not None and deps is not None and layer is not None
    for name in _HUB_RESOLVERS:
        cls = getattr(resolver, name)
        _patch(cls, "resolve", _hub_resolve(cls.resolve))
    for name in _PATH_RESOLVERS:
        cls = getattr(resolver, name)
        _patch(cls, "resolve", _path_resolve(cls.resolve))
    _patch(
        layer.LayerRepository, "_resolve_revision", _layer_revision(layer.LayerRepository._resolve_revision)
    )
    _patch(deps, "_import_from_path", _import_from_path(deps._import_from_path))


def _patch(owner: Any, name: str, value: Any) -> None:
    _patches.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)))
    setattr(owner, name, value)


def _trusts(trust_remote_code: Any, repo_id: str) -> bool:
    return trust_remote_code is True or (isinstance(trust_remote_code, list) and repo_id in trust_remote_code)


def _request(kernel: Any, trust_remote_code: Any) -> Request:
    """A `kernels` `KernelDependency` as a `Request`."""
    from kernels._rust import KernelVersion

    version = kernel.version
    if isinstance(version, KernelVersion.Version):
        return Request(kernel.repo_id, version.version, None, _trusts(trust_remote_code, kernel.repo_id))
    return Request(kernel.repo_id, None, version.revision, _trusts(trust_remote_code, kernel.repo_id))


def _hub_resolve(original: Callable[..., Any]) -> Callable[..., Any]:
    def resolve(self: Any, *, api: Any, backend: str | None, kernel: Any) -> Any:
        mode = _mode
        request = _request(kernel, getattr(self, "trust_remote_code", False))
        if isinstance(mode, _Recorder):
            mode.note(request)
        if not isinstance(mode, _Enforcer):
            return original(self, api=api, backend=backend, kernel=kernel)
        try:
            entry = mode.entry_for(request)
            kernel_locks = getattr(self, "kernel_locks", None)
            if kernel_locks is not None:
                _same_commit_as_kernels_lock(kernel_locks, kernel, entry)
        except NotLockedError as error:
            return mode.refuse(error, lambda: original(self, api=api, backend=backend, kernel=kernel))
        return mode.local_kernel(entry, backend)

    return resolve


def _same_commit_as_kernels_lock(kernel_locks: Any, kernel: Any, entry: LockedKernel) -> None:
    """A `kernels` JSON lock (get_locked_kernel, load_kernel) must name the commit kernels.lock holds."""
    theirs = kernel_locks.get(kernel, None)
    if theirs is not None and theirs.commit != entry.commit:
        raise NotLockedError(
            f"The kernels library's lock pins {entry.requested_repo} to commit {theirs.commit}, but kernels.lock "
            f"holds commit {entry.commit}. Export kernels.lock instead (`kernel-lock export --format kernels`), "
            f"or re-lock with `kernel-lock lock -P {entry.requested_repo}`."
        )


def _path_resolve(original: Callable[..., Any]) -> Callable[..., Any]:
    def resolve(self: Any, *, api: Any, backend: str | None, kernel: Any) -> Any:
        location = original(self, api=api, backend=backend, kernel=kernel)
        mode = _mode
        if location is None or not isinstance(mode, _Enforcer):
            return location
        error = NotLockedError(
            f"The kernels library was asked to load {kernel.repo_id} from a local path "
            f"({location.variant_path}, through LOCAL_KERNELS or get_local_kernel), which bypasses kernels.lock. "
            f"Unset LOCAL_KERNELS, or publish and lock the kernel (`kernel-lock add`)."
        )
        return mode.refuse(error, lambda: location)

    return resolve


def _layer_revision(original: Callable[..., str]) -> Callable[..., str]:
    def resolve_revision(self: Any) -> str:
        mode = _mode
        request = Request(
            self._repo_id, self._version, self._revision, _trusts(self._trust_remote_code, self._repo_id)
        )
        if isinstance(mode, _Enforcer):
            try:
                return mode.entry_for(request).commit
            except NotLockedError as error:
                return mode.refuse(error, lambda: original(self))  # type: ignore[no-any-return]
        commit = original(self)
        if isinstance(mode, _Recorder):
            mode.note(request)
            mode.resolved_commits.add((request.repo_id, commit))
        return commit

    return resolve_revision


def _import_from_path(original: Callable[..., ModuleType]) -> Callable[..., ModuleType]:
    def import_from_path(
        variant_path: Path, deps: dict[str, ModuleType], repo_info: Any = None
    ) -> ModuleType:
        mode = _mode
        if not isinstance(mode, _Enforcer):
            return original(variant_path, deps, repo_info)
        found = mode.verified.get(str(variant_path))
        if found is None:
            if mode.strict:
                raise VerificationError(
                    f"The kernels library was about to import {variant_path}, which was not resolved through "
                    f"kernels.lock; under enforcement only verified, locked kernels are imported."
                )
            return original(variant_path, deps, repo_info)
        from kernels.hf_hub import RepoInfo
        from kernels.importer import LoadedKernel, _loaded_kernels

        from kernel_lock.load import load_entry

        entry, target = found
        module = load_entry(mode.lock, entry, target=target)
        if variant_path not in _loaded_kernels:
            from kernels._rust import Metadata

            _loaded_kernels[variant_path] = LoadedKernel(
                metadata=Metadata.read_from_file(variant_path / "metadata.json"),
                module=module,
                repo_info=RepoInfo(repo_id=entry.repo_id, revision=entry.commit),
            )
        return module

    return import_from_path
