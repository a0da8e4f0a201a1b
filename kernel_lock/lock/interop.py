"""Interop with the `kernels` library's lock files: export ours to them, import theirs into `kernels.lock`.

Two JSON formats exist. `kernels` (what `kernels lock` 0.17 to 0.19 writes): a list of
`{"dependency": {"repo-id", "version" | "revision"}, "lock": {"commit"}}`, the
whole dependency tree, no hashes. `kernels-legacy` (older `kernels`): a list of
`{"repo_id", "sha", "variants": {name: {"hash", "hash_type"}}}`, with no
requirement at all. Export writes either byte-for-byte as `kernels` would;
import re-resolves the named commits against the Hub (through `pins`), so the
result carries our variant hashes, trust decisions and direct/transitive split,
and a legacy file's hashes must be reproduced exactly.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from kernel_lock.core.fsutil import atomic_write
from kernel_lock.core.hashing import DEFAULT_HASH_TYPE, LEGACY_HASH_TYPE
from kernel_lock.core.lockfile import (
    BACKUP_SUFFIX,
    VARIANT_HASH_PATTERN,
    Lock,
    LockedKernel,
    RequiredBy,
    kernel_key,
    kernels_json_format,
    write_lock,
)
from kernel_lock.core.requirement import COMMIT_PATTERN, Dependency
from kernel_lock.errors import LockfileError
from kernel_lock.project.config import RepoId, read_project
from kernel_lock.project.paths import LOCKFILE, PYPROJECT, find_project_root

if TYPE_CHECKING:
    from kernel_lock.hub.client import Hub
    from kernel_lock.lock.resolve import LockRequest


Format = Literal["kernels", "kernels-legacy"]
_JSON_TYPES = {
    "dict": "object",
    "str": "string",
    "int": "number",
    "float": "number",
    "bool": "boolean",
    "NoneType": "null",
}
Commit = Annotated[str, Field(pattern=COMMIT_PATTERN)]
VariantHash = Annotated[str, Field(pattern=VARIANT_HASH_PATTERN)]


class KernelsDependency(BaseModel):
    """`dependency` of a `kernels` lock entry: a repo and a major version or a revision."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    repo_id: RepoId = Field(alias="repo-id")
    version: Annotated[int, Field(ge=0)] | None = None
    revision: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_requirement(self) -> KernelsDependency:
        if (self.version is None) == (self.revision is None):
            raise ValueError("exactly one of 'version' and 'revision' must be set")
        return self


class KernelsCommit(BaseModel):
    """`lock` of a `kernels` lock entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commit: Commit


class KernelsEntry(BaseModel):
    """One entry of a `kernels` (0.17 to 0.19) lock file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dependency: KernelsDependency
    lock: KernelsCommit


class KernelsLockFile(RootModel[list[KernelsEntry]]):
    """A `kernels` (0.17 to 0.19) lock file: the JSON list `kernels lock` writes."""


class LegacyVariant(BaseModel):
    """A variant of a legacy lock entry: its `git_lfs_concat` hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash: VariantHash
    hash_type: Literal["git_lfs_concat"] = LEGACY_HASH_TYPE


class LegacyEntry(BaseModel):
    """One entry of a legacy `kernels` lock file: a repo, its commit and per-variant hashes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo_id: RepoId
    sha: Commit
    variants: dict[str, LegacyVariant]


class LegacyLockFile(RootModel[list[LegacyEntry]]):
    """A legacy `kernels` lock file."""


@dataclass(frozen=True)
class ImportedEntry:
    """One entry of a `kernels` lock file, whichever its format: a repo at a commit, and what the format says.

    `requirement` is None where the format records none (legacy files): it is then taken from
    pyproject.toml, else from the Hub. `hashes` (variant -> hash) is set where the format records them
    (legacy files): they must equal ours.
    """

    repo_id: str
    commit: str
    requirement: Dependency | None
    hashes: dict[str, str] | None = None


def _from_kernels(data: KernelsLockFile) -> list[ImportedEntry]:
    """The entries of a `kernels` (0.17 to 0.19) lock file."""
    return [ImportedEntry(e.dependency.repo_id, e.lock.commit, _requirement(e.dependency)) for e in data.root]


def _from_legacy(data: LegacyLockFile) -> list[ImportedEntry]:
    """The entries of a legacy `kernels` lock file."""
    return [
        ImportedEntry(e.repo_id, e.sha, None, {name: v.hash for name, v in e.variants.items()})
        for e in data.root
    ]


@dataclass
class ImportResult:
    """What `import_lock` did."""

    lock: Lock
    format: Format
    source: Path
    written: list[Path]
    added_dependencies: dict[str, Dependency] = field(default_factory=dict)
    backup: Path | None = None  # where an imported-in-place kernels.lock was kept


def export_lock(lock: Lock, fmt: Format) -> str:
    """The lock as a `kernels` (0.17 to 0.19) or legacy `kernels` lock file, laid out exactly as `kernels` writes it.

    Entries name the repo that holds the kernel (after any redirect), since
    `kernels` does not follow redirects; a repo locked at two commits cannot be
    written to the legacy format, which keys entries by repo only.
    """
    if fmt == "kernels":
        keyed: list[tuple[tuple[object, ...], LockedKernel]] = [
            ((k.repo_id, k.version is None, k.version or 0, k.revision or ""), k) for k in lock.kernel
        ]
        _refuse_conflicts(keyed, fmt)
        data: list[Any] = [
            KernelsEntry(
                dependency=KernelsDependency(repo_id=k.repo_id, version=k.version, revision=k.revision),
                lock=KernelsCommit(commit=k.commit),
            ).model_dump(by_alias=True, exclude_none=True)
            for _, k in sorted(dict(keyed).items())
        ]
    elif fmt == "kernels-legacy":
        newer = sorted(k.key for k in lock.kernel if k.hash_type != LEGACY_HASH_TYPE)
        if newer:
            raise LockfileError(
                f"Cannot export the lock as {fmt}: that format holds only {LEGACY_HASH_TYPE} hashes, and "
                f"{', '.join(newer)} {'is' if len(newer) == 1 else 'are'} locked with another hash type. Run "
                f"`kernel-lock lock --hash-type {LEGACY_HASH_TYPE}` (same commits, older hashes) and export again."
            )
        keyed = [((k.repo_id,), k) for k in lock.kernel]
        _refuse_conflicts(keyed, fmt)
        data = [
            LegacyEntry(
                repo_id=k.repo_id,
                sha=k.commit,
                variants={name: LegacyVariant(hash=h) for name, h in sorted(k.variants.items())},
            ).model_dump()
            for _, k in sorted(dict(keyed).items())
        ]
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    return json.dumps(data, indent=2, ensure_ascii=False)


def _refuse_conflicts(keyed: list[tuple[tuple[Any, ...], LockedKernel]], fmt: Format) -> None:
    """A `LockfileError` where two lock entries would share one exported entry with different commits."""
    commits: dict[tuple[Any, ...], set[str]] = {}
    for key, entry in keyed:
        commits.setdefault(key, set()).add(entry.commit)
    clashes = sorted(str(key[0]) for key, shas in commits.items() if len(shas) > 1)
    if clashes:
        raise LockfileError(
            f"Cannot export the lock as {fmt}: {', '.join(clashes)} would appear with two different commits "
            f"(through a redirect, or two requirements of one repo), which that format cannot tell apart. Depend "
            f"on one requirement per repository in pyproject.toml, re-lock, and export again."
        )


def import_lock(
    source: Path | None, project: Path | None = None, *, endpoint: str | None = None
) -> ImportResult:
    """Import a `kernels` or legacy `kernels` lock file into the project's `kernels.lock`, keeping its commits.

    Without `source` (or where it is the project's own `kernels.lock`, as `kernels lock`
    writes it) the import is in place: the JSON is first copied next to it
    (`kernels.lock.kernels.json`, or a numbered name where that is taken by other bytes).

    Each entry is re-resolved at the commit the file names, so the result has
    our hashes and trust decisions; a legacy file's hashes must match them.
    Entries that no other entry requires are the direct dependencies; where
    `pyproject.toml` declares none, they are written to
    `[tool.kernels.dependencies]`, else the lock must match what it declares.
    Nothing is written on any error.
    """
    from kernel_lock.hub.client import Hub
    from kernel_lock.lock.project import lock_differences
    from kernel_lock.lock.resolve import LockRequest, Pin, lock_dependencies
    from kernel_lock.project.edit import set_dependencies

    root = find_project_root(project)
    lockfile = root / LOCKFILE
    source = lockfile if source is None else Path(source)
    in_place = source.resolve() == lockfile.resolve()
    if in_place and _is_our_lock(source):
        raise LockfileError(
            f"{source} is already kernel-lock's TOML lock; there is nothing to import. To import a `kernels` JSON "
            f"lock, give its path: `kernel-lock import PATH`."
        )
    fmt, entries = _parse(source)
    current, pyproject_text = read_project(root, missing_ok=True)
    declared, trusted, signing = current.dependencies, current.trusted_repos, current.signing()
    hub = Hub(endpoint)

    guessed = [e for e in entries if e.requirement is None]
    _refuse_duplicates(source, [e.repo_id for e in guessed])
    items = [
        (
            e.repo_id,
            e.requirement or declared.get(e.repo_id) or _legacy_requirement(e.repo_id, e.commit, hub),
            e.commit,
        )
        for e in entries
    ]
    pins = {
        Pin(e.repo_id): e.commit for e in guessed
    }  # also for what the metadata requires under another version
    _refuse_duplicates(source, [kernel_key(repo, dep) for repo, dep, _ in items])
    pins |= {Pin.of(repo, dep): sha for repo, dep, sha in items}
    wanted = {kernel_key(repo, dep): (repo, _declared_or(declared, repo, dep)) for repo, dep, _ in items}

    # A legacy file's hashes are git_lfs_concat, and must be reproduced; `lock --upgrade` moves to sha256 later.
    request = LockRequest(
        pins=pins,
        hash_type=LEGACY_HASH_TYPE if fmt == "kernels-legacy" else DEFAULT_HASH_TYPE,
        signing=signing,
    )
    everything = _resolve_all(list(wanted.values()), hub=hub, trusted=trusted, request=request)
    # A guessed requirement may not be the one another kernel requires, so there "required" means the same
    # repo at the same commit.
    same = (lambda k: (k.repo_id, k.commit)) if guessed else (lambda k: k.key)
    required = {same(k) for k in everything.kernel if k.required_by}
    first = everything.by_key()
    direct_keys = [
        key
        for key, (repo, dep) in wanted.items()
        if declared.get(repo) is dep or same(first[key]) not in required
    ]
    _refuse_duplicates(source, [wanted[key][0] for key in direct_keys], what="direct dependency")
    direct = dict(wanted[key] for key in direct_keys)
    lock = lock_dependencies(direct, hub=hub, previous=everything, trusted_repos=trusted, request=request)
    _check_hashes(source, [e for e in entries if e.hashes is not None], lock)
    if declared:
        problems = lock_differences(current, lock)
        if problems:
            raise LockfileError(
                f"{source} does not match {root / PYPROJECT}: " + "; ".join(problems) + ". Change "
                "[tool.kernels.dependencies] to match the imported lock (or remove the table to have it written), "
                "and import again."
            )
    backup = _backup(source) if in_place else None
    written = []
    added: dict[str, Dependency] = {}
    if not declared:
        added = dict(sorted(direct.items()))
        atomic_write(root / PYPROJECT, set_dependencies(pyproject_text, added).encode("utf-8"))
        written.append(root / PYPROJECT)
    if write_lock(lockfile, lock):
        written.append(lockfile)
    return ImportResult(
        lock=lock, format=fmt, source=source, written=written, added_dependencies=added, backup=backup
    )


def _is_our_lock(path: Path) -> bool:
    """Whether `path` holds a TOML lock of ours (any text that is not a `kernels` JSON lock)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return not text.lstrip().startswith("[") or text.lstrip().startswith("[[")


def _backup(source: Path) -> Path:
    """Copy `source` to `<name>.kernels.json` (numbered where that name holds other bytes); the copy's path."""
    data = source.read_bytes()
    for n in range(1000):
        suffix = BACKUP_SUFFIX if n == 0 else f".{n}{BACKUP_SUFFIX}"
        path = source.with_name(source.name + suffix)
        if not path.exists() or path.read_bytes() == data:
            atomic_write(path, data)
            return path
    raise LockfileError(f"Too many backups of {source} next to it; remove old ones and import again.")


def _resolve_all(
    wanted: list[tuple[str, Dependency]], *, hub: Hub, trusted: list[str], request: LockRequest
) -> Lock:
    """Every requirement in `wanted` and all it depends on, in one lock (all entries transitive) with every edge.

    A pass of `lock_dependencies` takes one requirement per repo, so a repo
    required twice (say `v1` by a kernel, `main` directly) takes another pass,
    which reuses what earlier passes resolved.
    """
    from kernel_lock.lock.resolve import lock_dependencies

    entries: dict[str, LockedKernel] = {}
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    remaining = wanted
    while remaining:
        batch: dict[str, Dependency] = {}
        rest = []
        for repo, dep in remaining:
            if repo in batch:
                rest.append((repo, dep))
            else:
                batch[repo] = dep
        remaining = rest
        previous = _transitive_lock(entries, edges) if entries else None
        for entry in lock_dependencies(
            batch, hub=hub, previous=previous, trusted_repos=trusted, request=request
        ).kernel:
            entries.setdefault(entry.key, entry)
            for edge in entry.required_by:
                edges[entry.key][edge.kernel].update(edge.variants)
    return _transitive_lock(entries, edges)


def _transitive_lock(entries: dict[str, LockedKernel], edges: dict[str, dict[str, set[str]]]) -> Lock:
    """A lock of `entries`, none direct, with the `required-by` edges collected over all passes."""
    return Lock(
        kernel=[
            dataclasses.replace(
                entry,
                direct=False,
                required_by=[RequiredBy(kernel=k, variants=sorted(v)) for k, v in sorted(edges[key].items())],
            )
            for key, entry in sorted(entries.items())
        ]
    )


def _requirement(dep: KernelsDependency) -> Dependency:
    """A `kernels` lock entry's requirement as ours."""
    return Dependency(version=dep.version, revision=dep.revision)


def _declared_or(declared: dict[str, Dependency], repo: str, dep: Dependency) -> Dependency:
    """The pyproject.toml requirement (the same object, with its trust opt-in) where it is the same one, else `dep`."""
    mine = declared.get(repo)
    return mine if mine is not None and (mine.version, mine.revision) == (dep.version, dep.revision) else dep


_PARSERS: dict[
    Format, tuple[type[KernelsLockFile] | type[LegacyLockFile], Callable[[Any], list[ImportedEntry]]]
] = {
    "kernels": (KernelsLockFile, _from_kernels),
    "kernels-legacy": (LegacyLockFile, _from_legacy),
}


def _parse(source: Path) -> tuple[Format, list[ImportedEntry]]:
    """Read a lock file, tell its format from the shape of its first entry, and parse it into entries."""
    how = (
        "Export it again with `kernels lock` (or `kernel-lock export`), or fix it by hand: a `kernels` lock is a "
        'JSON list of {"dependency": {"repo-id": ..., "version": N}, "lock": {"commit": ...}}, a legacy one a list '
        'of {"repo_id": ..., "sha": ..., "variants": {...}}.'
    )
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LockfileError(
            f"No lock file at {source}. Give the path of a `kernels` lock file to import."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockfileError(f"Cannot read {source}: {exc}.") from None
    except (ValueError, RecursionError) as exc:
        raise LockfileError(f"{source} is not valid JSON ({exc}). {how}") from None
    fmt = kernels_json_format(data)
    if fmt is None:
        if not isinstance(data, list):
            found = f"it holds a JSON {_JSON_TYPES.get(type(data).__name__, 'value')}, not a list"
        else:
            found = (
                "it is an empty list"
                if not data
                else "its first entry has neither 'dependency' nor 'repo_id'"
            )
        raise LockfileError(f"{source} is not a lock file in either `kernels` format: {found}. {how}")
    model, entries = _PARSERS[fmt]
    try:
        return fmt, entries(model.model_validate(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"entry {'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise LockfileError(
            f"{source} looks like a {fmt} lock file but is malformed ({problems}). {how}"
        ) from None


def _refuse_duplicates(source: Path, keys: list[str], what: str = "entry") -> None:
    """A `LockfileError` naming the keys (requirements or repos) that occur more than once."""
    dupes = sorted(k for k, n in Counter(keys).items() if n > 1)
    if dupes:
        raise LockfileError(
            f"{source} has more than one {what} for {', '.join(dupes)}, which one kernels.lock and pyproject.toml "
            f"cannot hold. Keep one of them in the file (or declare the one you want in pyproject.toml) and "
            f"import again."
        )


def _legacy_requirement(repo_id: str, sha: str, hub: Hub) -> Dependency:
    """A legacy entry's requirement: the newest major version whose branch head is `sha`, else the commit itself."""
    versions = [n for n, commit in hub.refs(repo_id).versions().items() if commit == sha]
    return Dependency(version=max(versions)) if versions else Dependency(revision=sha)


def _check_hashes(source: Path, entries: list[ImportedEntry], lock: Lock) -> None:
    """A `LockfileError` naming every variant whose hash in the file differs from the Hub's listing."""
    ours: dict[tuple[str, str], LockedKernel] = {(k.repo_id, k.commit): k for k in lock.kernel}
    ours |= {(k.requested_repo, k.commit): k for k in lock.kernel}
    diffs = []
    for entry in entries:
        computed = ours[(entry.repo_id, entry.commit)].variants
        recorded = entry.hashes or {}
        for variant in sorted(set(computed) | set(recorded)):
            theirs = recorded.get(variant, "no such variant")
            mine = computed.get(variant, "no such variant")
            if theirs != mine:
                diffs.append(
                    f"{entry.repo_id} variant {variant}: the file has {theirs}, the Hub's listing at "
                    f"{entry.commit[:12]} gives {mine}"
                )
    if diffs:
        raise LockfileError(
            f"{source} does not match what the Hub serves: {'; '.join(diffs)}. The files changed since the lock "
            f"was written, or the lock file was edited; nothing was imported. Check where the file came from, or "
            f"lock afresh with `kernel-lock lock`."
        )
