"""The common verified load without pydantic: a fresh process pays for the checks, not for 100 ms of imports.

`get_kernel` in fast mode, for a kernel without kernel dependencies, reads the lock (with
`kernel_lock.core.lockfile_reader`, which leaves TOML that kernel-lock does not write to `tomllib`) and the sync
record with `json`, checks both by the models' rules, and accepts the variant only where the full check
(`kernel_lock.cache.verify`) would accept it without hashing: the record's manifest reproduces the lock's
variant hash, and the one verification verdict (`kernel_lock.core.verdict.judge`, over the folder's
`take_snapshot`, as the full check judges it) leaves no file to hash and finds nothing wrong.
Anything else (an unusual field, a file to hash, a dependency, a missing record) returns None, and the full
path decides and gives the proper error. So this module may only say yes where the full path says yes,
faster.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from kernel_lock import env
from kernel_lock.core import lockfile_reader as lockread
from kernel_lock.core.cache_layout import record_path, variant_dir
from kernel_lock.core.fsutil import read_regular_file
from kernel_lock.core.hashing import DEFAULT_HASH_TYPE, HASH_TYPES, variant_hash
from kernel_lock.core.verdict import Stamp, Wanted, judge, take_snapshot

# The models' patterns, checked with set and string operations: compiling a regex costs about 0.1 ms of
# every fresh process, and this module would compile six.
_HEX = "0123456789abcdef"
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_REPO_PART_CHARS = _ALNUM | frozenset("_.-")  # REPO_ID_RE: [A-Za-z0-9](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9])?
_VARIANT_CHARS = _ALNUM | frozenset("._+-")  # VARIANT_NAME_RE: [A-Za-z0-9][A-Za-z0-9._+-]{0,127}
_ENTRY_KEYS = {"repo-id", "version", "revision", "redirected-from", "ref", "commit", "hash-type", "trust"}
_ENTRY_KEYS |= {"direct", "variants", "required-by", "provenance", "signed-by"}
_TRUST = ("trusted-publisher", "trust-remote-code")
_SIGNER_KEYS = {"issuer", "workflow", "repository"}
_PROVENANCE_KEYS = {"builder", "builder-commit", "source-commit", "dirty", "variants"}
_RECORD_KEYS = {"repo_id", "commit", "variant", "hash_type", "variant_hash", "manifest", "verified"}
_FINGERPRINT_KEYS = ("dev", "ino", "size", "mtime_ns", "ctime_ns", "link")


def quick_get_kernel(lockfile: Path, repo_id: str) -> ModuleType | None:
    """The verified kernel, or None where the full path must decide (see the module docstring)."""
    if (env.verify_mode() or "fast").strip().lower() != "fast":
        return None
    entry = _direct_entry(lockfile, repo_id)
    if entry is None:
        return None
    from kernel_lock.core.detect import default_target
    from kernel_lock.core.variants import select_variant

    try:
        variant = select_variant(entry["variants"], default_target(), repo_id=entry["repo-id"])
    except Exception:
        return None
    record = _verified_without_hashing(entry, variant)
    if record is None:
        return None
    return _import_once(entry, variant, record)


def plain_lock(lockfile: Path) -> list[dict[str, Any]] | None:
    """The lock's entries where it is plainly well-formed by the lock model's own rules (so `read_lock` would
    accept it as it is); None where `read_lock` must judge it, or it cannot be read."""
    try:
        text = lockfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    data = lockread.read(text)
    if data is None:  # a lock edited by hand, say: TOML beyond what kernel-lock writes
        from kernel_lock.core import tomlread

        try:
            data = tomlread.loads(text)
        except tomlread.TOMLDecodeError:
            return None
    kernels = data.get("kernel")
    if data.get("version") != 1 or set(data) - {"version", "kernel"} or not isinstance(kernels, list):
        return None
    if not all(_plain_entry(k) for k in kernels):
        return None
    keys = [_key(k) for k in kernels]
    direct = [_requested(k) for k in kernels if k.get("direct", True)]
    if len(set(keys)) != len(keys) or len(set(direct)) != len(direct):
        return None  # locked more than once: `read_lock` names it
    return kernels


def _direct_entry(lockfile: Path, repo_id: str) -> dict[str, Any] | None:
    """The lock's direct entry for `repo_id` (as `Lock.find` picks it), if all is plainly well-formed and it
    has no kernel dependencies."""
    kernels = plain_lock(lockfile)
    if kernels is None:
        return None
    direct = [k for k in kernels if k.get("direct", True)]
    exact = [k for k in direct if _requested(k) == repo_id]
    redirected = [k for k in direct if k["repo-id"] == repo_id]
    chosen = exact[:1] or (redirected if len(redirected) == 1 else [])
    if not chosen:
        return None
    entry = chosen[0]
    requested, key = _requested(entry), _key(entry)
    if [_requested(k) for k in kernels].count(requested) > 1:
        return None  # the same repo locked twice (for itself and for another kernel): the full path decides
    if any(r["kernel"] == key for k in kernels for r in k.get("required-by", [])):
        return None
    return entry


def _requested(k: dict[str, Any]) -> str:
    """The repo id as `pyproject.toml` names it (`LockedKernel.requested_repo`)."""
    return str(k.get("redirected-from", k["repo-id"]))


def _key(k: dict[str, Any]) -> str:
    """`LockedKernel.key`: `repo@vN` or `repo@rev:REVISION`."""
    return f"{_requested(k)}@v{k['version']}" if "version" in k else f"{_requested(k)}@rev:{k['revision']}"


def _plain_entry(k: Any) -> bool:
    """Whether an entry is one `LockedKernel` accepts, by its rules without pydantic (stricter where that is
    simpler: `version = 1.0` goes to `read_lock`)."""
    if not isinstance(k, dict) or set(k) - _ENTRY_KEYS:
        return False
    variants = k.get("variants")
    return (
        isinstance(k.get("repo-id"), str)
        and _is_repo(k["repo-id"])
        and (
            "redirected-from" not in k
            or (isinstance(k["redirected-from"], str) and _is_repo(k["redirected-from"]))
        )
        and isinstance(k.get("commit"), str)
        and _is_hex(k["commit"], 40)
        and k.get("hash-type", DEFAULT_HASH_TYPE) in HASH_TYPES
        and (("version" in k) != ("revision" in k))
        and (type(k.get("version", 0)) is int and k.get("version", 0) >= 0)
        and isinstance(k.get("revision", "-"), str)
        and k.get("revision") != ""
        and type(k.get("direct", True)) is bool
        and isinstance(variants, dict)
        and all(
            isinstance(n, str)
            and _is_variant_name(n)
            and ".." not in n
            and isinstance(h, str)
            and h.startswith("sha256-")
            and _is_hex(h[7:], 64)
            for n, h in variants.items()
        )
        and isinstance(k.get("ref"), str)
        and k.get("trust", "trusted-publisher") in _TRUST
        and isinstance(k.get("required-by", []), list)
        and all(_plain_required_by(r) for r in k.get("required-by", []))
        and _plain_signers(k.get("signed-by", {}), variants)
        and _plain_provenance(k.get("provenance", []))
    )


def _plain_required_by(r: Any) -> bool:
    """A `required-by` item as `RequiredBy` accepts it: the requiring entry's key and its variants."""
    return (
        isinstance(r, dict)
        and set(r) == {"kernel", "variants"}
        and isinstance(r["kernel"], str)
        and isinstance(r["variants"], list)
        and all(isinstance(v, str) for v in r["variants"])
    )


def _plain_signers(signed_by: Any, variants: dict[str, Any]) -> bool:
    """`signed-by` as the lock model accepts it: locked variant -> {issuer, workflow, repository}, all text.

    Loading does not use it (signatures are checked at lock and by `verify --signatures`), but a lock the
    full path would refuse must not load here.
    """
    return isinstance(signed_by, dict) and all(
        v in variants
        and isinstance(s, dict)
        and set(s) == _SIGNER_KEYS
        and all(isinstance(x, str) and x for x in s.values())
        for v, s in signed_by.items()
    )


def _plain_provenance(provenance: Any) -> bool:
    """`provenance` as the lock model accepts it (unused by loading, checked for the same reason)."""
    return isinstance(provenance, list) and all(
        isinstance(p, dict)
        and not set(p) - _PROVENANCE_KEYS
        and isinstance(p.get("builder"), str)
        and all(isinstance(p.get(c, ""), str) for c in ("builder-commit", "source-commit"))
        and type(p.get("dirty")) is bool
        and isinstance(p.get("variants"), list)
        and all(isinstance(v, str) for v in p["variants"])
        for p in provenance
    )


def _is_repo(value: str) -> bool:
    """`org/name` as `RepoId` accepts it."""
    org, slash, name = value.partition("/")
    return (
        bool(slash) and _is_repo_part(org) and _is_repo_part(name) and "--" not in value and ".." not in value
    )


def _is_repo_part(part: str) -> bool:
    return 0 < len(part) <= 96 and part[0] in _ALNUM and part[-1] in _ALNUM and set(part) <= _REPO_PART_CHARS


def _is_variant_name(name: str) -> bool:
    return 0 < len(name) <= 128 and name[0] in _ALNUM and set(name) <= _VARIANT_CHARS


def _is_hex(value: Any, *lengths: int) -> bool:
    """Lowercase hex of one of `lengths` characters."""
    return isinstance(value, str) and len(value) in lengths and not value.strip(_HEX)


def _verified_without_hashing(entry: dict[str, Any], variant: str) -> dict[str, Any] | None:
    """The record, where the fast-mode check passes with no file to hash (the record's fingerprints all hold).

    The record must be one the model reads as it is, in the shape sync writes: UTF-8 (as pydantic reads it;
    `json.loads` of bytes would also take UTF-16 or a byte order mark), naming this variant, each manifest
    path once (the model hashes the list as written, duplicates and all) and a fingerprint for exactly those
    paths (the model validates every one it holds).
    """
    repo_id, commit = entry["repo-id"], entry["commit"]
    rpath = record_path(repo_id, commit, variant)
    try:
        record = json.loads(read_regular_file(rpath).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if (
        not isinstance(record, dict)
        or set(record) - _RECORD_KEYS
        or (record.get("repo_id"), record.get("commit"), record.get("variant")) != (repo_id, commit, variant)
    ):
        return None
    manifest, verified = record.get("manifest"), record.get("verified", {})
    if not isinstance(manifest, list) or not isinstance(verified, dict):
        return None
    hash_type = entry.get("hash-type", DEFAULT_HASH_TYPE)
    by_path: dict[str, dict[str, Any]] = {}
    for m in manifest:
        if not (
            isinstance(m, dict)
            and set(m) == {"path", "size", "kind", "hash", "sha256"}
            and isinstance(m["path"], str)
            and type(m["size"]) is int
            and m["size"] >= 0
            and m["kind"] in ("git", "lfs")
            and _is_hex(m["hash"], 40, 64)
            and _is_hex(m["sha256"], 64)
        ):
            return None
        by_path[m["path"]] = m
    if len(by_path) != len(manifest) or verified.keys() != by_path.keys():
        return None
    expected = entry["variants"].get(variant)
    per_file = ((p, m["hash"] if hash_type == "git_lfs_concat" else m["sha256"]) for p, m in by_path.items())
    try:
        actual = variant_hash(per_file)
    except UnicodeEncodeError:  # a lone surrogate (a `\udcff` escape) in a path: the model refuses the record
        return None
    if record.get("hash_type") != hash_type or record.get("variant_hash") != expected or actual != expected:
        return None
    known: dict[str, Stamp] = {}
    for rel, fingerprint in verified.items():
        if not isinstance(fingerprint, dict) or tuple(fingerprint) != _FINGERPRINT_KEYS:
            return None
        known[rel] = tuple(fingerprint.values())  # JSON values: compared with what the folder holds
    files = [Wanted(rel, m["size"], m["hash"]) for rel, m in by_path.items()]
    verdict = judge(files, known, take_snapshot(repo_id, commit, variant), hash_all=False)
    return record if verdict.ok_without_hashing else None


def _import_once(entry: dict[str, Any], variant: str, record: dict[str, Any]) -> ModuleType | None:
    """Import the verified variant through the loader's registry (once per process per variant)."""
    from kernel_lock.cache.pydeps import missing, python_depends
    from kernel_lock.load import _registry as registry
    from kernel_lock.load._verified_import import locked_files

    vdir = variant_dir(entry["repo-id"], entry["commit"], variant)

    def load() -> ModuleType | None:
        if missing(python_depends(vdir)):
            return None  # the full path names what is missing
        files = locked_files(
            ((m["path"], m["kind"], m["hash"], m["sha256"]) for m in record["manifest"]),
            entry.get("hash-type", DEFAULT_HASH_TYPE),
            record["verified"],
        )
        return registry.import_variant(vdir, where=f"{entry['repo-id']} variant {variant}", files=files)

    return registry.imported_once((entry["repo-id"], entry["commit"], variant), load)
