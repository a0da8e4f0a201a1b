"""`kernel-lock add` and `remove` as a Python API: edit `[tool.kernels.dependencies]`, then lock.

Both go through `lock_edited`, as `kernel-lock run --record` does: `pyproject.toml` is edited in memory,
and written, with the new lock, only once the lock succeeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kernel_lock.core.requirement import Dependency, is_repo_id
from kernel_lock.errors import ConfigError, NoSuchVersion, RepoNotFound, ResolutionError, UntrustedPublisher
from kernel_lock.lock.changes import LockResult
from kernel_lock.lock.project import lock_project
from kernel_lock.project.config import Project, project_from_text, read_project
from kernel_lock.project.paths import find_project_root

if TYPE_CHECKING:
    from kernel_lock.hub.client import Hub


@dataclass(frozen=True)
class AddedRequirement:
    """One repo `add` required: the requirement, and the one it replaced (None if new)."""

    repo_id: str
    dependency: Dependency
    before: Dependency | None

    @property
    def action(self) -> Literal["added", "updated", "unchanged"]:
        if self.before is None:
            return "added"
        return "unchanged" if self.before == self.dependency else "updated"


def _worded_for_add(exc: ResolutionError, requests: Mapping[str, object]) -> ResolutionError:
    """The error about a repo `add` was given, reworded to name `add`'s options (others as they are)."""
    if isinstance(exc, NoSuchVersion) and exc.repo_id in requests:
        newest = f"--version {max(exc.available)}" if exc.available else "--revision <branch, tag or commit>"
        return exc.reworded(f"Pick one: `kernel-lock add {exc.repo_id} {newest}`.")
    if isinstance(exc, RepoNotFound) and exc.repo_id in requests:
        instead = f" (`kernel-lock add {exc.suggestion}`)" if exc.suggestion else ""
        return exc.reworded(f"Check the repo id given to `kernel-lock add`{instead}")
    if isinstance(exc, UntrustedPublisher) and exc.parent is None and exc.repo_id in requests:
        return exc.reworded(f"add it with `kernel-lock add {exc.repo_id} --trust-remote-code`")
    return exc


@dataclass
class AddResult:
    """What `add_dependencies` did: each repo's requirement, and the lock."""

    added: list[AddedRequirement]
    lock: LockResult


def parse_add_spec(spec: str) -> tuple[str, int | None, str | None]:
    """`org/name`, `org/name@2` (version 2) or `org/name@main` (a revision) as (repo, version, revision)."""
    repo_id, _, pin = spec.partition("@")
    if not is_repo_id(repo_id) or (_ and not pin):
        raise ConfigError(
            f"{spec!r} is not a repo id; write it as org/name, optionally with @VERSION or @REVISION, "
            f"e.g. kernels-community/activation or kernels-community/activation@1."
        )
    if not pin:
        return repo_id, None, None
    return (repo_id, int(pin), None) if pin.isdigit() else (repo_id, None, pin)


def add_dependencies(
    requests: Mapping[str, tuple[int | None, str | None]],
    project: Path | None = None,
    *,
    trust_remote_code: bool = False,
    upgrade: bool = False,
    endpoint: str | None = None,
) -> AddResult:
    """Require each repo (at its version or revision; the newest major where neither) and update the lock.

    As with `uv add`, a repo already required keeps its requirement unless a version or revision is
    given, or `upgrade` (then: the newest major). It keeps its other settings (signers, trust). Nothing
    is written unless every requirement resolves; errors name the `add` options to use.
    """
    from kernel_lock.hub.client import Hub
    from kernel_lock.project.edit import set_dependencies

    hub = Hub(endpoint)
    added: list[AddedRequirement] = []

    def require(current: Project, text: str) -> str:
        added.extend(_requirements(requests, current.dependencies, hub, trust_remote_code, upgrade=upgrade))
        return set_dependencies(text, {a.repo_id: a.dependency for a in added})

    try:
        result = lock_edited(project, require, endpoint=endpoint)
    except (NoSuchVersion, RepoNotFound, UntrustedPublisher) as exc:
        raise _worded_for_add(exc, requests) from None
    return AddResult(added, result)


def remove_dependency(
    repo_id: str | Sequence[str], project: Path | None = None, *, endpoint: str | None = None
) -> LockResult:
    """Drop `repo_id` (or each of several) from `pyproject.toml` and from the lock (with what only they needed)."""
    from kernel_lock.project.edit import remove_dependency as without

    def drop(_current: Project, text: str) -> str:
        for repo in [repo_id] if isinstance(repo_id, str) else repo_id:
            text = without(text, repo)
        return text

    return lock_edited(project, drop, endpoint=endpoint)


def _requirements(
    requests: Mapping[str, tuple[int | None, str | None]],
    declared: Mapping[str, Dependency],
    hub: Hub,
    trust_remote_code: bool,
    *,
    upgrade: bool,
) -> list[AddedRequirement]:
    """What `add` requires of each repo: as asked, else as declared (unless `upgrade`), else its newest major."""
    from concurrent.futures import ThreadPoolExecutor

    from kernel_lock.lock.redirects import follow_redirects

    kept = {
        repo
        for repo, (version, revision) in requests.items()
        if version is None and revision is None and repo in declared and not upgrade
    }
    newest_needed = [
        repo
        for repo, (version, revision) in requests.items()
        if version is None and revision is None and repo not in kept
    ]
    with ThreadPoolExecutor(max_workers=8) as side, ThreadPoolExecutor(max_workers=8) as pool:
        found = pool.map(lambda r: follow_redirects(r, hub, side)[1], newest_needed)
        refs = dict(zip(newest_needed, found, strict=True))
    added = []
    for repo_id, (version, revision) in requests.items():
        if repo_id in kept:
            version, revision = declared[repo_id].version, declared[repo_id].revision
        elif version is None and revision is None:
            versions = refs[repo_id].versions()
            if not versions:
                raise ResolutionError(
                    f"{repo_id} has no major versions (no vN branches). Add it with `kernel-lock add {repo_id} "
                    f"--revision <branch, tag or commit>`."
                )
            version = max(versions)
        before = declared.get(repo_id)
        dep = Dependency(
            version=version,
            revision=revision,
            trust_remote_code=trust_remote_code or (before is not None and before.trust_remote_code),
            signers=before.signers if before else (),
            require_signature=before.require_signature if before else None,
        )
        added.append(AddedRequirement(repo_id, dep, before))
    return added


def lock_edited(
    project: Path | None, edit: Callable[[Project, str], str], *, endpoint: str | None = None
) -> LockResult:
    """Lock the project as `edit` leaves its `pyproject.toml`, writing it and the lock only once the lock succeeds.

    `edit` gets the project as it is and its `pyproject.toml` text, and returns the new text; nothing is
    written before it returns and the new requirements resolve, so on any error both files stay as they were.
    The one edit-then-lock step of `add`, `remove` and `run --record`.
    """
    root = find_project_root(project)
    current, text = read_project(root)
    new_text = edit(current, text)
    return lock_project(project_from_text(root, new_text), endpoint=endpoint, pyproject_text=new_text)
