"""Resolve requirements to locked kernels: version -> branch `vN` -> commit -> variant hashes.

Everything a lock needs comes from two round trips per repo: the refs (with the
`kernel-status.toml` redirect check alongside), then one recursive listing of
`build/` at the commit, from which every variant hash is computed. Repos are
resolved concurrently.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from kernel_lock.config import COMMIT_RE, Dependency, is_repo_id
from kernel_lock.errors import HubError, ResolutionError
from kernel_lock.hashing import variant_hash
from kernel_lock.lockfile import Lock, LockedKernel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from kernel_lock.hub import Hub, Refs, TreeEntry

STATUS_FILE = "kernel-status.toml"
MAX_REDIRECTS = 8
MAX_WORKERS = 32


class Redirect(BaseModel):
    """A `kernel-status.toml` of kind `redirect`: the repo moved to `destination`."""

    model_config = ConfigDict(extra="ignore")

    kind: str
    destination: str
    revision: str = "main"


def lock_dependencies(
    dependencies: Mapping[str, Dependency],
    *,
    hub: Hub,
    previous: Lock | None = None,
    upgrade: bool | Iterable[str] = False,
) -> Lock:
    """The lock for `dependencies`, keeping unchanged entries of `previous` (unless upgraded)."""
    upgrade_all = upgrade is True
    upgrade_some = set() if isinstance(upgrade, bool) else set(upgrade)
    kept = previous.by_requested_repo() if previous else {}
    entries: dict[str, LockedKernel | Future[LockedKernel]] = {}
    with ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="kernel-lock-resolve") as pool:
        for repo_id, dep in dependencies.items():
            old = kept.get(repo_id)
            if old is not None and old.satisfies(dep) and not upgrade_all and repo_id not in upgrade_some:
                entries[repo_id] = old
            else:
                entries[repo_id] = pool.submit(resolve_dependency, repo_id, dep, hub=hub)
        resolved = [e if isinstance(e, LockedKernel) else e.result() for e in entries.values()]
    return Lock(kernel=sorted(resolved, key=lambda k: k.requested_repo))


def resolve_dependency(repo_id: str, dep: Dependency, *, hub: Hub) -> LockedKernel:
    """Resolve one requirement: follow redirects, pick the commit, hash every variant."""
    target, refs = _follow_redirects(repo_id, hub)
    ref, commit = _pick_commit(target, dep, refs)
    variants = variant_hashes(target, commit, hub.tree(target, commit, "build"))
    return LockedKernel(
        repo_id=target,
        redirected_from=repo_id if target != repo_id else None,
        version=dep.version,
        revision=dep.revision,
        ref=ref,
        commit=commit,
        variants=variants,
    )


def _follow_redirects(repo_id: str, hub: Hub) -> tuple[str, Refs]:
    """The repo that finally holds the kernel, and its refs; the refs and status requests overlap."""
    chain = [repo_id]
    current = repo_id
    while True:
        with ThreadPoolExecutor(max_workers=1) as side:
            refs_future = side.submit(hub.refs, current)
            status = hub.read_file(current, "main", STATUS_FILE)
            refs = refs_future.result()
        redirect = _parse_status(current, status)
        if redirect is None:
            return current, refs
        destination = redirect.destination
        if destination in chain:
            raise ResolutionError(
                f"{repo_id} redirects in a loop ({' -> '.join([*chain, destination])}) through "
                f"{STATUS_FILE}. Depend on the repository that really holds the kernel, and tell its publisher."
            )
        if len(chain) > MAX_REDIRECTS:
            raise ResolutionError(f"{repo_id} redirects more than {MAX_REDIRECTS} times ({' -> '.join(chain)}).")
        chain.append(destination)
        current = destination


def _parse_status(repo_id: str, content: bytes | None) -> Redirect | None:
    """The redirect in a `kernel-status.toml`, if the file exists and says so."""
    if content is None:
        return None
    try:
        data = tomllib.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HubError(f"{repo_id} has a malformed {STATUS_FILE} on main ({exc}); tell its publisher.") from None
    if data.get("kind") != "redirect":
        return None
    try:
        redirect = Redirect.model_validate(data)
    except ValidationError:
        raise HubError(f"{repo_id} has a redirect {STATUS_FILE} without a destination; tell its publisher.") from None
    if not is_repo_id(redirect.destination):
        raise HubError(
            f"{repo_id} redirects to {redirect.destination!r} in {STATUS_FILE}, which is not a repo id; "
            f"tell its publisher."
        )
    return redirect


def _pick_commit(repo_id: str, dep: Dependency, refs: Refs) -> tuple[str, str]:
    """(ref, commit) for a requirement: branch `vN` for a version, else the branch, tag or commit named."""
    if dep.version is not None:
        versions = refs.versions()
        if dep.version not in versions:
            available = ", ".join(str(v) for v in sorted(versions)) or "none"
            raise ResolutionError(
                f"{repo_id} has no version {dep.version} (no branch v{dep.version}). Available versions: "
                f"{available}. Set the version in pyproject.toml to one of them."
            )
        return f"v{dep.version}", versions[dep.version]
    revision = dep.revision or ""
    if revision in refs.branches:
        return revision, refs.branches[revision]
    if revision in refs.tags:
        return revision, refs.tags[revision]
    if COMMIT_RE.match(revision):
        return revision, revision
    raise ResolutionError(
        f"{repo_id} has no branch or tag {revision!r}. Branches: {', '.join(sorted(refs.branches)) or 'none'}; "
        f"tags: {', '.join(sorted(refs.tags)) or 'none'}. Use one of them or a full 40-hex commit."
    )


def variant_hashes(repo_id: str, commit: str, entries: Iterable[TreeEntry]) -> dict[str, str]:
    """Group a `build/` listing by variant and compute each variant's `git_lfs_concat` hash."""
    files: dict[str, dict[str, str]] = defaultdict(dict)
    for entry in entries:
        if entry.type == "directory":
            continue
        split = split_variant_path(repo_id, commit, entry.path)
        if split is None:
            continue
        variant, rel = split
        if entry.type != "file":
            raise HubError(
                f"{repo_id} at {commit} lists {entry.path!r} as a {entry.type!r}; kernel variants may hold only "
                f"regular files. Refusing to lock it."
            )
        if rel in files[variant]:
            raise HubError(f"{repo_id} at {commit} lists {entry.path!r} twice. Refusing to lock it.")
        files[variant][rel] = entry.file_hash
    if not files:
        raise ResolutionError(f"{repo_id} has no build variants (no files under build/) at commit {commit}.")
    return {name: variant_hash(fs.items()) for name, fs in sorted(files.items())}


def split_variant_path(repo_id: str, commit: str, path: str) -> tuple[str, str] | None:
    """`build/<variant>/<rel>` -> (variant, rel); None for a file directly in `build/`.

    Paths that could escape a directory (absolute, `..`, backslash) are refused.
    """
    parts = path.split("/")
    unsafe = (
        "\\" in path
        or "\0" in path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or PurePosixPath(path).is_absolute()
        or len(parts) < 2
        or parts[0] != "build"
    )
    if unsafe:
        raise HubError(
            f"{repo_id} at {commit} lists an unsafe or unexpected path {path!r} (absolute, '..', backslash, "
            f"or outside build/<variant>/). Refusing to lock it; the Hub or mirror may be compromised."
        )
    return (parts[1], "/".join(parts[2:])) if len(parts) > 2 else None
