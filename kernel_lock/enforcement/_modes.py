"""What enforcement (or recording) does with a request of the `kernels` library, whatever its release."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel_lock import env
from kernel_lock.errors import NotLockedError, NotSyncedError, OverrideRefused

if TYPE_CHECKING:
    from kernel_lock.core.lockfile import Lock, LockedKernel
    from kernel_lock.core.target import Target

_COMMIT = re.compile(r"^[0-9a-f]{40}$")

OVERRIDES = {
    env.LOCAL_KERNELS: "loads kernels from local folders instead of the locked commits",
    env.ALL_LATEST: "replaces every requested version and lock pin with the newest version",
}
"""The `kernels` library's variables that would load something other than the lock, and what each does."""


resolving_dependency: ContextVar[bool] = ContextVar("kernel_lock_resolving_dependency", default=False)
"""True while `kernels` resolves a kernel's own dependencies (`kernel-depends`), not the program's request."""


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


def refuse_overrides(variables: tuple[str, ...]) -> None:
    """Raise `OverrideRefused` if one of `variables` (those the installed `kernels` honours) is in effect."""
    for variable in variables:
        value = env.kernels_override(variable)
        if value is not None:
            raise OverrideRefused(
                f"{variable} is set ({variable}={value!r}); it {OVERRIDES[variable]}, which kernel-lock "
                f"enforcement does not allow: only the kernels in kernels.lock load. Unset {variable} in the "
                f"environment of this program, or run it without enforcement.",
                variable=variable,
            )


def _declared_beside(lockfile: Path | None, request: Request) -> bool:
    """Whether the pyproject.toml beside the lock requires what `request` asks for (then the lock is stale)."""
    from kernel_lock.errors import KernelLockError
    from kernel_lock.load.find import find_lockfile
    from kernel_lock.project.config import load_project

    try:
        path = find_lockfile(lockfile)
        dep = load_project(path.parent).dependencies.get(request.repo_id) if path is not None else None
    except KernelLockError:
        return False
    return dep is not None and (dep.version, dep.revision) == (request.version, request.revision)


@dataclass
class Enforcer:
    """Answers `kernels` requests from one lock."""

    lockfile: Path | None
    strict: bool
    _lock: Lock | None = None
    verified: dict[str, tuple[LockedKernel, Target]] = field(default_factory=dict)

    @property
    def lock(self) -> Lock:
        if self._lock is None:
            from kernel_lock.load.locked import find_lock

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

    def verified_variant(self, entry: LockedKernel, backend: str | None) -> Path:
        """Verify the variant our selection picks for this machine (or `backend`); its folder."""
        from kernel_lock.cache.verify import check_variant
        from kernel_lock.core.target import default_target
        from kernel_lock.core.variants import select_variant

        target = default_target()
        if backend is not None and backend != target.backend:
            target = dataclasses.replace(target, backend=backend, backend_version=None)
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
        return check.path

    def refuse_or_warn(self, error: NotLockedError, fallback: Callable[[], Any]) -> Any:
        """Raise (strict), or warn and let `kernels` do what it would have done."""
        from kernel_lock.errors import KernelLockWarning

        if self.strict:
            raise error
        warnings.warn(f"{error} Loading it unverified (strict=False).", KernelLockWarning, stacklevel=4)
        return fallback()


@dataclass
class Recorder:
    """Appends each request of the program to a JSON-lines file (`kernel-lock run --record`); `kernels` goes on.

    Only what the program asked for is noted: the kernels a kernel depends on
    are the resolver's to find (and to check) when the lock is made, never
    requirements taken from the Hub's answers.
    """

    path: Path
    seen: set[Request] = field(default_factory=set)
    resolved_commits: set[tuple[str, str]] = field(default_factory=set)

    def note(self, request: Request, commit: str | None = None) -> None:
        """Note `request` once; `commit`: what `kernels` resolved it to, when known (to tell a moved branch)."""
        if resolving_dependency.get():
            return
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
                "commit": commit,
            }
        )
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


Mode = Enforcer | Recorder


@dataclass
class State:
    """The process-wide mode and the patches that route `kernels` through it."""

    mode: Mode | None = None
    patches: list[tuple[Any, str, Any]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)


state = State()
