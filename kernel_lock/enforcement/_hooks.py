"""The replacements enforcement installs in `kernels`; each calls the original unless a mode says otherwise.

They are written once for every release family: what differs between
releases (where a class lives, what a commit is) comes from the adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kernel_lock.enforcement._modes import Enforcer, Recorder, Request, resolving_dependency, state
from kernel_lock.errors import NotLockedError, NotSyncedError, OverrideRefused, VerificationError

if TYPE_CHECKING:
    from kernel_lock.core.lockfile import LockedKernel
    from kernel_lock.enforcement._adapters import Adapter


def _trusts(trust_remote_code: Any, repo_id: str) -> bool:
    return trust_remote_code is True or (isinstance(trust_remote_code, list) and repo_id in trust_remote_code)


def _request(kernel: Any, trust_remote_code: Any) -> Request:
    """A `kernels` `KernelDependency` as a `Request`."""
    from kernels._rust import KernelVersion

    version = kernel.version
    trusted = _trusts(trust_remote_code, kernel.repo_id)
    if isinstance(version, KernelVersion.Version):
        return Request(kernel.repo_id, version.version, None, trusted)
    return Request(kernel.repo_id, None, str(version.revision), trusted)


def hub_resolve(adapter: Adapter, original: Callable[..., Any]) -> Callable[..., Any]:
    """A Hub resolver's `resolve`: a locked request becomes the verified local variant, nothing else loads."""

    def resolve(self: Any, *, api: Any, backend: str | None, kernel: Any) -> Any:
        mode = state.mode
        request = _request(kernel, getattr(self, "trust_remote_code", False))
        if isinstance(mode, Recorder):
            try:
                location = original(self, api=api, backend=backend, kernel=kernel)
            except BaseException:
                mode.note(request)
                raise
            mode.note(request, _commit_of(location))
            return location
        if not isinstance(mode, Enforcer):
            return original(self, api=api, backend=backend, kernel=kernel)
        adapter.refuse_overrides()
        try:
            entry = mode.entry_for(request)
            kernel_locks = getattr(self, "kernel_locks", None)
            if kernel_locks is not None:
                _same_commit_as_kernels_lock(kernel_locks, kernel, entry)
        except NotLockedError as error:
            return mode.refuse_or_warn(error, lambda: original(self, api=api, backend=backend, kernel=kernel))
        path = mode.verified_variant(entry, backend)
        return adapter.local_kernel(path)

    return resolve


def _commit_of(location: Any) -> str | None:
    """The commit a resolver's answer is for: a Hub kernel's revision, or the snapshot folder it lies in."""
    for remote in (location, getattr(location, "origin", None)):
        revision = getattr(remote, "revision", None)
        if revision is not None:
            return str(revision)
    path = Path(getattr(location, "variant_path", ""))
    if len(path.parts) > 4 and path.parts[-4] == "snapshots":  # .../snapshots/<commit>/build/<variant>
        return path.parts[-3]
    return None


def _same_commit_as_kernels_lock(kernel_locks: Any, kernel: Any, entry: LockedKernel) -> None:
    """A `kernels` JSON lock (get_locked_kernel, load_kernel) must name the commit kernels.lock holds."""
    theirs = kernel_locks.get(kernel, None)
    if theirs is not None and str(theirs.commit) != entry.commit:
        raise NotLockedError(
            f"The kernels library's lock pins {entry.requested_repo} to commit {theirs.commit}, but kernels.lock "
            f"holds commit {entry.commit}. Export kernels.lock instead (`kernel-lock export --format kernels`), "
            f"or re-lock with `kernel-lock lock -P {entry.requested_repo}`."
        )


def path_resolve(adapter: Adapter, original: Callable[..., Any]) -> Callable[..., Any]:
    """A path resolver's `resolve` (`LOCAL_KERNELS`, `get_local_kernel`): a local folder bypasses the lock."""

    def resolve(self: Any, *, api: Any, backend: str | None, kernel: Any) -> Any:
        mode = state.mode
        if isinstance(mode, Enforcer):
            adapter.refuse_overrides()
        location = original(self, api=api, backend=backend, kernel=kernel)
        if location is None or not isinstance(mode, Enforcer):
            return location
        error = NotLockedError(
            f"The kernels library was asked to load {kernel.repo_id} from a local path "
            f"({location.variant_path}, through get_local_kernel), which bypasses kernels.lock. "
            f"Publish and lock the kernel (`kernel-lock add`), or load it without enforcement."
        )
        return mode.refuse_or_warn(error, lambda: location)

    return resolve


def latest_resolve(adapter: Adapter, original: Callable[..., Any]) -> Callable[..., Any]:
    """`LatestHubResolver.resolve` (0.19, `UNSTABLE_KERNELS_ALL_LATEST`): never under enforcement."""

    def resolve(self: Any, *, api: Any, backend: str | None, kernel: Any) -> Any:
        mode = state.mode
        if isinstance(mode, Recorder):
            mode.note(_request(kernel, getattr(self, "trust_remote_code", False)))
        if isinstance(mode, Enforcer):
            adapter.refuse_overrides()
            raise OverrideRefused(
                f"The kernels library chose the newest version of {kernel.repo_id} over the requested one and the "
                f"lock (its UNSTABLE_KERNELS_ALL_LATEST mode); kernel-lock enforcement loads only the kernels in "
                f"kernels.lock. Unset UNSTABLE_KERNELS_ALL_LATEST.",
                variable="UNSTABLE_KERNELS_ALL_LATEST",
            )
        return original(self, api=api, backend=backend, kernel=kernel)

    return resolve


def repository_revision(original: Callable[..., str]) -> Callable[..., str]:
    """0.17's `LayerRepository`/`FuncRepository._resolve_revision`: a version becomes the locked commit, offline."""

    def resolve_revision(self: Any) -> str:
        mode = state.mode
        request = Request(
            self._repo_id, self._version, self._revision, _trusts(self._trust_remote_code, self._repo_id)
        )
        if isinstance(mode, Enforcer):
            try:
                return mode.entry_for(request).commit
            except NotLockedError as error:
                return mode.refuse_or_warn(error, lambda: original(self))  # type: ignore[no-any-return]
        commit = original(self)
        if isinstance(mode, Recorder):
            mode.note(request)
            mode.resolved_commits.add((request.repo_id, commit))
        return commit

    return resolve_revision


def kernel_tree(original: Callable[..., Any]) -> Callable[..., Any]:
    """`resolve_kernel_tree`: marks the recursive calls, which resolve a kernel's own dependencies."""

    def resolve_kernel_tree(*args: Any, **kwargs: Any) -> Any:
        token = resolving_dependency.set(kwargs.get("seen") is not None)
        try:
            return original(*args, **kwargs)
        finally:
            resolving_dependency.reset(token)

    return resolve_kernel_tree


def import_from_path(adapter: Adapter, original: Callable[..., ModuleType]) -> Callable[..., ModuleType]:
    """The import step: a verified variant is imported by kernel-lock's loader, anything else is refused."""

    def _import_from_path(
        variant_path: Path, deps: dict[str, ModuleType], repo_info: Any = None
    ) -> ModuleType:
        mode = state.mode
        if not isinstance(mode, Enforcer):
            return original(variant_path, deps, repo_info)
        found = mode.verified.get(str(variant_path))
        if found is None:
            if mode.strict:
                raise VerificationError(
                    f"The kernels library was about to import {variant_path}, which was not resolved through "
                    f"kernels.lock; under enforcement only verified, locked kernels are imported."
                )
            return original(variant_path, deps, repo_info)
        from kernel_lock.load.locked import load_entry

        entry, target = found
        module = load_entry(mode.lock, entry, target=target)
        adapter.register_loaded(variant_path, module, entry)
        return module

    return _import_from_path


def validate_kernel(original: Callable[..., None]) -> Callable[..., None]:
    """A kernel validator (0.18+: digest, signature): kernel-lock has verified a variant it resolved already.

    Upstream's checks would hash the variant again on every load, and its
    signature check asks the network for Sigstore's trust root; neither is
    relied on, and neither runs for a variant that verified against the lock.
    """

    def validate(self: Any, *, kernel: Any) -> None:
        mode = state.mode
        if isinstance(mode, Enforcer) and str(kernel.variant_path) in mode.verified:
            return
        original(self, kernel=kernel)

    return validate


def install_all_variants(original: Callable[..., Path]) -> Callable[..., Path]:
    """`install_kernel_all_variants`: under enforcement `kernels` downloads nothing, so it is refused."""

    def install_kernel_all_variants(repo_id: str, **kwargs: Any) -> Path:
        if isinstance(state.mode, Enforcer):
            raise NotSyncedError(
                f"The kernels library was asked to download every variant of {repo_id}; under kernel-lock "
                f"enforcement nothing is downloaded. Fetch the locked variants with "
                f"`kernel-lock sync --all-variants` instead."
            )
        return original(repo_id, **kwargs)

    return install_kernel_all_variants
