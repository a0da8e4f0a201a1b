"""Project-level locking: `kernel-lock lock` and `kernel-lock lock --check` as a Python API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kernel_lock.core.fsutil import atomic_write
from kernel_lock.core.hashing import DEFAULT_HASH_TYPE, HashType
from kernel_lock.core.lockfile import Lock, LockedKernel, read_lock, read_lock_if_exists, write_lock
from kernel_lock.core.requirement import is_hex
from kernel_lock.core.signers import policy_problems
from kernel_lock.errors import (
    CommitNotOnRef,
    KernelLockError,
    LockOutOfDate,
    RangeSpecifierError,
)
from kernel_lock.lock.changes import LockResult, entry_changed
from kernel_lock.lock.redirects import redirect_accepted
from kernel_lock.project.config import (
    Project,
    load_project,
    trust_granted,
)

if TYPE_CHECKING:
    from kernel_lock.hub.client import Hub


def _unfounded(entry: LockedKernel, project: Project) -> list[str]:
    """What in an entry the resolver would not have produced from this pyproject.toml, as far as it can tell offline.

    A redirect to another organization's repository must be one pyproject.toml accepts, and trust-remote-code
    must be granted to the repository the lock names (an opt-in does not follow a redirect): a hand-edited
    lock that swaps in another publisher's repository is caught here.
    """
    problems = []
    requested = entry.requested_repo
    if entry.redirected_from is not None:
        if entry.redirected_from == entry.repo_id:
            problems.append("redirected-from names the repository itself, which the resolver never writes")
        elif not redirect_accepted(requested, entry.repo_id, project.redirects):
            problems.append(
                f"redirected to {entry.repo_id}, another organization's repository, which pyproject.toml does not "
                f'accept (it would need "{requested}" = "{entry.repo_id}" under [tool.kernels.redirects])'
            )
    dep = project.dependencies.get(requested) if entry.direct else None
    opted_in = dep is not None and dep.trust_remote_code
    if entry.trust == "trust-remote-code" and not trust_granted(
        requested, entry.repo_id, opted_in, project.trusted_repos
    ):
        problems.append(
            f"locked with trust-remote-code for {entry.repo_id}, which pyproject.toml no longer grants (or never did)"
        )
    return problems


def lock_differences(project: Project, lock: Lock | None) -> list[str]:
    """Why the lock does not match `pyproject.toml`, one line per entry (empty when it matches)."""
    locked = lock.by_requested_repo() if lock else {}
    problems = []
    for repo_id, dep in project.dependencies.items():
        entry = locked.get(repo_id)
        if entry is None:
            problems.append(f"{repo_id}: required ({dep.describe()}) but not locked")
        elif not entry.satisfies(dep):
            problems.append(
                f"{repo_id}: pyproject.toml asks for {dep.describe()}, the lock has {entry.requirement().describe()}"
            )
    for repo_id in sorted(set(locked) - set(project.dependencies)):
        problems.append(f"{repo_id}: locked but no longer in pyproject.toml")
    for entry in lock.kernel if lock else []:
        problems.extend(f"{entry.key}: {p}" for p in _unfounded(entry, project))
    signing = project.signing()
    for entry in lock.kernel if lock else []:
        policy = signing.policy(entry.requested_repo)
        problems.extend(f"{entry.key}: {p}" for p in policy_problems(entry.variants, entry.signed_by, policy))
    return problems


def _write_both(project: Project, pyproject_text: str, lock: Lock) -> bool:
    """Write the new `pyproject.toml`, then the lock; where the lock cannot be written (a full disk, say), the old
    `pyproject.toml` is put back, so the project never requires what its lock does not hold."""
    before = project.pyproject.read_bytes()
    atomic_write(project.pyproject, pyproject_text.encode("utf-8"))
    try:
        return write_lock(project.lockfile, lock)
    except BaseException:
        atomic_write(project.pyproject, before)
        raise


@dataclass
class SignatureRecheck:
    """What `recheck_signatures` verified again: variants whose files were at hand, and those that were not."""

    verified: int = 0
    unavailable: list[str] = field(default_factory=list)


def recheck_signatures(project: Project, lock: Lock) -> SignatureRecheck:
    """Verify every locked variant's signature again, offline, from the files kept at lock or synced.

    A signature that does not verify, names another signer than the lock, or is claimed for a variant
    without one, raises `SignatureError`. Nothing is fetched, and nothing from the cache is taken on trust:
    a variant's `metadata.json` and bundle are used only where per-file hashes that reproduce the lock's
    variant hash (kept at lock, or a sync record's manifest) vouch for their bytes; a signed variant
    without such files is listed in `unavailable`.
    """
    from kernel_lock.lock.signatures import Verifiers, recheck_signature

    signing = project.signing()
    verifiers = Verifiers()
    result = SignatureRecheck()
    for entry in lock.kernel:
        for variant in sorted(entry.variants):
            material = locked_material(entry, variant)
            if material is None:
                if variant in entry.signed_by:
                    result.unavailable.append(f"{entry.key} {variant}")
                continue
            if variant not in entry.signed_by and material[1] is None:
                continue
            recheck_signature(
                entry,
                variant,
                *material,
                signing.policy(entry.requested_repo),
                lambda: verifiers.get(signing.trusted_root),
            )
            result.verified += 1
    return result


def locked_material(entry: LockedKernel, variant: str) -> tuple[bytes | None, bytes | None] | None:
    """A locked variant's `metadata.json` and bundle (None where the variant has none), from the cache, but
    only bytes that per-file hashes reproducing the lock's variant hash name; None where none vouch."""
    from kernel_lock.core.cache_layout import read_record, record_path
    from kernel_lock.core.hashing import git_blob_sha1
    from kernel_lock.lock.hashes import BUNDLE, METADATA, MetadataCache, kept_file_hashes
    from kernel_lock.lock.signatures import synced_material

    expected = entry.variants[variant]
    record = read_record(record_path(entry.repo_id, entry.commit, variant))
    vouched = [
        kept_file_hashes(entry.repo_id, entry.commit, entry.hash_type, variant, expected),
        {e.path: e.file_hash(entry.hash_type) or "" for e in record.manifest}
        if record is not None and record.manifest_matches(expected, entry.hash_type)
        else None,
    ]
    kept = {
        name: MetadataCache(entry.repo_id, entry.commit, name).files.get(variant)
        for name in (METADATA, BUNDLE)
    }
    synced = dict(zip((METADATA, BUNDLE), synced_material(entry, variant), strict=True))
    candidates = {
        name: [t.encode() for t in (kept[name],) if t] + [d for d in (synced[name],) if d] for name in kept
    }
    for hashes in filter(None, vouched):
        found = {
            name: next((d for d in choices if hashes.get(name) in (_sha256(d), git_blob_sha1(d))), None)
            for name, choices in candidates.items()
        }
        if BUNDLE not in hashes:  # proven unsigned: no bytes are needed to refuse a signature the lock claims
            return found[METADATA], None
        if found[METADATA] is not None and found[BUNDLE] is not None:
            return found[METADATA], found[BUNDLE]
    return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def weak_hash_types(lock: Lock, accepted: HashType | None = None) -> list[str]:
    """Entries hashed more weakly than sha256 unless `accepted` (`lock --check --hash-type`) names their type.

    `git_lfs_concat` hashes a git-stored file by its git blob id (SHA-1): a lock edited down to it from
    sha256 would pass every other check, so only a project that asks for it keeps it.
    """
    allowed = {DEFAULT_HASH_TYPE, accepted}
    return [
        f"{entry.key}: hashed with {entry.hash_type}, which names git-stored files by SHA-1; run `kernel-lock lock "
        f"--hash-type {DEFAULT_HASH_TYPE}`, or accept it with `--hash-type {entry.hash_type}`"
        for entry in lock.kernel
        if entry.hash_type not in allowed
    ]


def required_ref(entry: LockedKernel) -> str:
    """The ref an entry's requirement names: branch `vN` for a version, else its revision."""
    return f"v{entry.version}" if entry.version is not None else str(entry.revision)


def check_commits_on_refs(entries: Iterable[LockedKernel], hub: Hub) -> None:
    """Refuse a locked commit that is not on the history of the ref its requirement names (`CommitNotOnRef`).

    The lock's own `ref` is not asked: a hand edit could name `refs/pr/N` there too. A commit pinned by its
    id needs no request. One request per (repo, ref), concurrently.
    """
    from concurrent.futures import ThreadPoolExecutor

    entries = list(entries)
    todo = sorted({(e.repo_id, required_ref(e)) for e in entries if not is_hex(required_ref(e), 40)})
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="kernel-lock-history") as pool:
        histories = dict(zip(todo, pool.map(lambda key: hub.history(*key), todo), strict=True))
    for entry in entries:
        ref = required_ref(entry)
        history = histories.get((entry.repo_id, ref), frozenset({ref}))
        if entry.commit not in history:
            raise CommitNotOnRef(
                f"{entry.key} is locked at commit {entry.commit[:12]}, which is not on the history of {ref} of "
                f"{entry.repo_id} on {hub.endpoint} (a pull-request commit, or one the branch no longer has). "
                f"kernels.lock may have been edited by hand; run `kernel-lock lock` to lock a commit of {ref}.",
                repo_id=entry.repo_id,
                commit=entry.commit,
                ref=ref,
            )


def check_lock(project: Project | Path | None = None) -> Lock:
    """The project's lock, after checking it matches `pyproject.toml` (offline); `LockOutOfDate` if not."""
    project = project if isinstance(project, Project) else load_project(project)
    lock = read_lock(project.lockfile)
    problems = lock_differences(project, lock)
    if problems:
        raise LockOutOfDate(project.lockfile, project.pyproject, problems)
    return lock


def load_project_online(project: Project | Path | None, *, endpoint: str | None = None) -> Project:
    """`load_project`, but an old range specifier's error names the major versions the Hub has."""
    if isinstance(project, Project):
        return project
    try:
        return load_project(project)
    except RangeSpecifierError as exc:
        from kernel_lock.hub.client import Hub

        try:
            versions = sorted(Hub(endpoint).refs(exc.repo_id).versions())
        except KernelLockError:
            raise exc from None
        if not versions:
            raise exc from None
        raise RangeSpecifierError(
            f"{exc} {exc.repo_id} has major versions {', '.join(map(str, versions))} on the Hub: "
            f'write "{exc.repo_id}" = {versions[-1]} for the newest.',
            exc.repo_id,
        ) from None


def lock_hash_type(previous: Lock | None, *, upgrade: bool, hash_type: HashType | None) -> HashType:
    """The hash type a lock run writes: as asked, else the default (`--upgrade`, a new lock), else the lock's own.

    So an existing lock changes hash type only when told to.
    """
    if hash_type is not None:
        return hash_type
    used = {k.hash_type for k in previous.kernel} if previous else set()
    if upgrade or len(used) != 1:
        return DEFAULT_HASH_TYPE
    return used.pop()


def lock_project(
    project: Project | Path | None = None,
    *,
    upgrade: bool = False,
    upgrade_packages: tuple[str, ...] = (),
    hash_type: HashType | None = None,
    endpoint: str | None = None,
    pyproject_text: str | None = None,
    dry_run: bool = False,
) -> LockResult:
    """Resolve the project's requirements and write `kernels.lock` (untouched on any error).

    `hash_type` converts every entry to that hash type (at its locked commit);
    without it the lock keeps the type it has (see `lock_hash_type`). With
    `pyproject_text`, that new `pyproject.toml` (which `project` must describe)
    is written just before the lock, once resolution succeeded, and put back if
    the lock cannot be written. `dry_run` resolves and reports the changes but
    writes nothing.
    """
    from kernel_lock.hub.client import Hub
    from kernel_lock.lock.resolve import LockRequest, Pin, lock_dependencies

    project = load_project_online(project, endpoint=endpoint)
    previous = read_lock_if_exists(project.lockfile)
    chosen = lock_hash_type(previous, upgrade=upgrade, hash_type=hash_type)
    rehash = {
        Pin.of(k.requested_repo, k.requirement()): k.commit
        for k in (previous.kernel if previous and not upgrade else [])
        if k.hash_type != chosen and k.requested_repo not in upgrade_packages
    }
    lock = lock_dependencies(
        project.dependencies,
        hub=Hub(endpoint),
        previous=previous,
        request=LockRequest(
            upgrade_all=upgrade,
            upgrade=frozenset(upgrade_packages),
            pins=rehash,
            hash_type=chosen,
            signing=project.signing(),
            redirects=project.redirects,
        ),
        trusted_repos=project.trusted_repos,
    )
    if dry_run:
        written = False
    elif pyproject_text is None:
        written = write_lock(project.lockfile, lock)
    else:
        written = _write_both(project, pyproject_text, lock)
    old = previous.by_requested_repo() if previous else {}
    new = lock.by_requested_repo()
    return LockResult(
        lock=lock,
        path=project.lockfile,
        written=written,
        previous=previous,
        added=sorted(set(new) - set(old)),
        updated=sorted(r for r in set(new) & set(old) if entry_changed(old[r], new[r])),
        removed=sorted(set(old) - set(new)),
    )
