"""Attacks on the quick load path: it may import only where the full path would, and only the locked bytes.

The shared Hugging Face cache (files, blobs, folders and kernel-lock's sync records) is written by the
attacker; the lock is trusted. Each test syncs a small real kernel from the local Hub, tampers with the
cache as an attacker would, and then asks `quickload.quick_get_kernel` (the quick path alone) and
`get_kernel(..., target=...)` (the full path alone). Every line of code the kernel runs appends to a marker
file, so a test sees exactly what ran: `locked` (the locked `__init__.py`), or `planted`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import marshal
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kernel_lock.cache.verify import check_variant
from kernel_lock.core import lockfile_reader
from kernel_lock.core.cache_layout import record_path, repo_dir, variant_dir
from kernel_lock.core.lockfile import Lock, LockedKernel, Provenance, read_lock, write_lock
from kernel_lock.core.signers import Signer
from kernel_lock.core.tomlread import loads as toml_loads
from kernel_lock.errors import NotSyncedError, VerificationError
from kernel_lock.load._fast import _verified_without_hashing, quick_get_kernel
from kernel_lock.load.locked import get_kernel
from kernel_lock.testing.fixtures import CPU_VARIANT

REPO = "quick-org/k"
VARIANT = "torch-cpu"  # the noarch variant the tests' declared CPU target selects
MODULE = "_quick_attack_k"
KERNEL_MODULES = (MODULE,)
MARK = "import os\nwith open(os.environ['QUICK_ATTACK_MARKER'], 'a') as f:\n    f.write({who!r} + '\\n')\n"
INIT = (
    "from . import sub\n"
    "try:\n"
    "    from . import optional  # not in the build: nothing planted may be found in its place\n"
    "except ImportError:\n"
    "    pass\n" + MARK.format(who="locked")
)
FILES = {
    "metadata.json": json.dumps(
        {
            "id": MODULE,
            "name": "k",
            "version": 1,
            "license": "Apache-2.0",
            "backend": {"type": "cpu"},
            "python-depends": [],
            "kernel-depends": [],
        }
    ),
    "__init__.py": INIT,
    "alt.py": MARK.format(who="alt"),  # locked, but never imported
    "sub/__init__.py": "# the sub-package\n",
}


@dataclass
class World:
    """A synced kernel: its lock, its variant folder, its sync record and the marker its code writes."""

    lockfile: Path
    entry: LockedKernel
    marker: Path

    @property
    def vdir(self) -> Path:
        return variant_dir(self.entry.repo_id, self.entry.commit, VARIANT)

    @property
    def record(self) -> Path:
        return record_path(self.entry.repo_id, self.entry.commit, VARIANT)

    @property
    def blobs(self) -> Path:
        return repo_dir(self.entry.repo_id) / "blobs"

    def ran(self) -> list[str]:
        """What kernel code ran, in order."""
        return self.marker.read_text().split() if self.marker.exists() else []

    def quick(self) -> Any:
        """The quick path's answer: the module, or None (the full path decides)."""
        return quick_get_kernel(self.lockfile, REPO)

    def full(self) -> Any:
        """The full path's answer (a target given: `get_kernel` skips the quick path)."""
        return get_kernel(REPO, lockfile=self.lockfile, target=CPU_VARIANT)


@pytest.fixture
def world(hub_env, make_project, cli, tmp_path, monkeypatch) -> World:
    hub_env.set_organization("quick-org", trusted_kernel_publisher=True)
    repo = hub_env.create_repo(REPO)
    files = {f"build/{VARIANT}/{path}": data.encode() for path, data in FILES.items()}
    repo.create_branch("v1", repo.commit(files))
    root = make_project(f'"{REPO}" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root), "--variant", VARIANT).exit_code == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("QUICK_ATTACK_MARKER", str(tmp_path / "marker"))
    lockfile = root / "kernels.lock"
    entry = read_lock(lockfile).find(REPO)
    assert entry is not None
    return World(lockfile, entry, tmp_path / "marker")


def test_the_untouched_kernel_loads_quickly(world: World) -> None:
    """The baseline every attack departs from: the quick path says yes, and the locked code runs once."""
    assert world.quick() is not None
    assert world.ran() == ["locked"]


# --- the sync record: the quick path reads it with `json`, the full path with the pydantic model ----------

ODD: list[Any] = [5, 5.0, True, None, "", "x", [], {}, "\udcff", float("nan"), 2**70, -1]
PATHS = ["../__init__.py", "/__init__.py", "./__init__.py", "sub//__init__.py", "sub\\__init__.py", "a\0b"]


def _replaced(record: dict[str, Any], where: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `record` with the item at `where` replaced by `value` (or removed, for `...`)."""
    copy = json.loads(json.dumps(record))
    parent = copy
    for key in where[:-1]:
        parent = parent[key]
    if value is ...:
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    return copy


def record_mutations(record: dict[str, Any]) -> dict[str, bytes]:
    """Records an attacker could write, by name: every field odd, dropped or added; duplicates; other encodings."""
    first = record["manifest"][0]["path"]
    places: list[tuple[Any, ...]] = [(k,) for k in record]
    places += [("manifest", 0, k) for k in record["manifest"][0]]
    places += [("verified", first, k) for k in record["verified"][first]]
    found: dict[str, Any] = {"as synced": record}
    for where in places:
        found[f"{where} dropped"] = _replaced(record, where, ...)
        for value in ODD:
            found[f"{where} = {value!r}"] = _replaced(record, where, value)
    for where in [(*p, "extra") for p in [(), ("manifest", 0), ("verified", first)]]:
        found[f"{where} added"] = _replaced(record, where, 1)
    for path in PATHS:
        found[f"manifest path {path!r}"] = _replaced(record, ("manifest", 0, "path"), path)
    fingerprint = record["verified"][first]
    for key in ("dev", "ino", "size", "mtime_ns", "ctime_ns"):
        found[f"verified {key} as a float"] = _replaced(
            record, ("verified", first, key), float(fingerprint[key])
        )
    found["verified keys reordered"] = _replaced(
        record, ("verified", first), dict(reversed(fingerprint.items()))
    )
    found["verified entry for a path not in the manifest"] = _replaced(record, ("verified", "zz.py"), "x")
    found["verified copy for a path not in the manifest"] = _replaced(
        record, ("verified", "zz.py"), fingerprint
    )
    bogus = {**record["manifest"][0], "hash": "0" * 40, "sha256": "0" * 64}
    found["manifest entry twice, a bogus one first"] = _replaced(
        record, ("manifest",), [bogus, *record["manifest"]]
    )
    found["manifest entry twice"] = _replaced(
        record, ("manifest",), [*record["manifest"], record["manifest"][0]]
    )
    text = json.dumps(record)
    raw = {name: json.dumps(r).encode() for name, r in found.items()}
    raw["UTF-16"] = text.encode("utf-16")
    raw["UTF-32"] = text.encode("utf-32")
    raw["UTF-8 byte order mark"] = b"\xef\xbb\xbf" + text.encode()
    raw["encoded surrogate"] = text.replace(first, first + "\udcff").encode("utf-8", "surrogatepass")
    raw["a key twice, bogus first"] = ('{"variant_hash": "sha256-' + "0" * 64 + '", ' + text[1:]).encode()
    raw["a key twice, bogus last"] = (text[:-1] + ', "variant_hash": "sha256-' + "0" * 64 + '"}').encode()
    raw["trailing text"] = text.encode() + b" x"
    raw["deeply nested"] = (text[:-1] + ', "extra": ' + "[" * 5000 + "]" * 5000 + "}").encode()
    return raw


def test_the_quick_path_accepts_only_records_the_full_path_accepts_as_they_are(world: World) -> None:
    """Each mutation of the record in turn: where the quick check says yes, the full check (pydantic model,
    fast mode) says yes too without hashing anything; it never raises instead of saying no."""
    entry = world.entry
    synced = world.record.read_bytes()
    accepted, disagreements = [], []
    for name, data in record_mutations(json.loads(synced)).items():
        world.record.write_bytes(data)
        try:
            quick = _verified_without_hashing(entry, VARIANT)
        except Exception as exc:  # the quick path must answer no, never fail in the full path's place
            disagreements.append(f"{name}: the quick check raised {exc!r}")
            continue
        if not quick:
            continue
        accepted.append(name)
        check = check_variant(world.entry, VARIANT)
        if not (check.ok and check.hashed == 0):
            disagreements.append(f"{name}: quick yes, full {check.status} {[str(p) for p in check.problems]}")
    assert disagreements == [], "\n".join(disagreements)
    assert "as synced" in accepted


@pytest.mark.parametrize(
    "name",
    ["('repo_id',) = 5", "UTF-16", "verified entry for a path not in the manifest", "manifest entry twice"],
)
def test_a_record_the_model_refuses_imports_nothing(world: World, name: str) -> None:
    """End to end, for the records the quick path once accepted: the full path's error, and no code ran."""
    world.record.write_bytes(record_mutations(json.loads(world.record.read_bytes()))[name])
    assert world.quick() is None
    with pytest.raises((NotSyncedError, VerificationError)):
        world.full()
    assert world.ran() == []


# --- files and folders in the cache ---------------------------------------------------------------------


def test_a_link_through_a_folder_later_swapped_for_a_symlink_is_refused(world: World, tmp_path: Path) -> None:
    """A link whose text climbs through a folder of the repo: real when verified, a symlink out of the cache
    when loaded. Its text, the inode it reaches (a hard link to the blob) and that inode's ctime all stay as
    recorded, so only resolving the path tells that it now leads outside."""
    init = world.vdir / "__init__.py"
    blob = init.resolve()
    outside = tmp_path / "outside"
    (outside / "blobs").mkdir(parents=True)
    (outside / "x").mkdir()
    os.link(blob, outside / "blobs" / blob.name)
    detour = repo_dir(world.entry.repo_id) / "detour"
    detour.mkdir()
    init.unlink()
    init.symlink_to(f"../../../../detour/../blobs/{blob.name}")
    check = check_variant(world.entry, VARIANT)  # any verify: the changed link is hashed, and recorded
    assert check.ok and check.hashed == 1
    detour.rmdir()
    detour.symlink_to(outside / "x", target_is_directory=True)
    assert os.path.realpath(init) == str(outside / "blobs" / blob.name)
    assert world.quick() is None
    with pytest.raises(VerificationError, match="symlink leads outside"):
        world.full()
    assert world.ran() == []


def test_a_link_to_another_blob_of_the_repo_is_refused(world: World) -> None:
    """`__init__.py` pointing at the blob of `alt.py`: locked bytes of this very repo, but not this file's."""
    init = world.vdir / "__init__.py"
    alt_blob = (world.vdir / "alt.py").resolve()
    init.unlink()
    init.symlink_to(f"../../../../blobs/{alt_blob.name}")
    assert world.quick() is None
    with pytest.raises(VerificationError, match=r"__init__\.py: content changed"):
        world.full()
    assert world.ran() == []


def _planted(size: int) -> bytes:
    """Code that marks `planted`, padded with a comment to `size` bytes (a file the same size as the locked one)."""
    code = MARK.format(who="planted").encode()
    return code + b"#" * (size - len(code) - 1) + b"\n"


def _same_size_and_mtime(world: World, how: str, tmp_path: Path) -> None:
    """Put planted code in `__init__.py`'s place, keeping its size and mtime (and, often, its inode number)."""
    init = world.vdir / "__init__.py"
    blob = init.resolve()
    st = os.stat(blob)
    planted = _planted(st.st_size)
    if how == "new file, same inode number":  # file systems hand a freed inode number to the next file
        blob.unlink()
        blob.write_bytes(planted)
        target = blob
    elif how == "written through a hard link":
        target = tmp_path / "hard-link"
        os.link(blob, target)
        with open(target, "r+b") as f:
            f.write(planted)
    elif how == "renamed over the blob":
        target = blob.with_name("planted")
        target.write_bytes(planted)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(target, blob)
        target = blob
    else:  # a regular file in place of the link
        init.unlink()
        init.write_bytes(planted)
        target = init
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(init).st_size == st.st_size and os.stat(init).st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize(
    "how",
    [
        "new file, same inode number",
        "written through a hard link",
        "renamed over the blob",
        "file for the link",
    ],
)
def test_planted_code_with_the_size_and_mtime_of_the_locked_file_is_refused(
    world: World, tmp_path: Path, how: str
) -> None:
    """The fingerprint's ctime (which no unprivileged write can set back) and inode catch each of these."""
    _same_size_and_mtime(world, how, tmp_path)
    assert world.quick() is None
    with pytest.raises(VerificationError, match=r"__init__\.py"):
        world.full()
    assert world.ran() == []


@pytest.mark.parametrize("folder", ["repo", "build", "records"])
def test_a_folder_replaced_by_a_symlink_to_a_copy_is_refused(
    world: World, tmp_path: Path, folder: str
) -> None:
    """The folders `tests/test_quickload.py` does not swap: the repo's, `build/`, and the records' folder."""
    repo = repo_dir(world.entry.repo_id)
    path = {"repo": repo, "build": world.vdir.parent, "records": world.record.parent.parent}[folder]
    copy = tmp_path / "elsewhere" / folder
    shutil.copytree(path, copy, symlinks=True)
    shutil.rmtree(path)
    path.symlink_to(copy, target_is_directory=True)
    assert world.quick() is None
    with pytest.raises(VerificationError, match="a symlink or a file where the cache needs a real folder"):
        world.full()
    assert world.ran() == []


def test_planted_sourceless_bytecode_is_never_imported(world: World) -> None:
    """Bytecode is outside the variant hash, so the quick path says yes with it planted; but the loader
    compiles from source only, so neither `optional.pyc` nor `__pycache__/optional.*.pyc` (for a module the
    build lacks and the kernel tries to import) nor a cache for `sub` ever runs."""
    code = marshal.dumps(compile(MARK.format(who="planted"), "planted", "exec"))
    pyc = importlib.util.MAGIC_NUMBER + b"\0" * 12 + code  # a valid header: unchecked-hash flags, no source
    (world.vdir / "optional.pyc").write_bytes(pyc)
    (world.vdir / "__pycache__").mkdir()
    (world.vdir / importlib.util.cache_from_source(str(world.vdir / "optional.py"))).write_bytes(pyc)
    (world.vdir / importlib.util.cache_from_source(str(world.vdir / "sub" / "__init__.py"))).parent.mkdir()
    (world.vdir / importlib.util.cache_from_source(str(world.vdir / "sub" / "__init__.py"))).write_bytes(pyc)
    assert world.quick() is not None
    assert world.ran() == ["locked"]


# --- after the load: a kernel imports some of its modules lazily, long after the check ---------------------


def _loaded(world: World, path: str) -> Any:
    """The kernel, loaded by the quick or the full path."""
    return world.quick() if path == "quick" else world.full()


def _swap_alt(world: World, how: str) -> None:
    """Replace the locked, not yet imported `alt.py` with planted code."""
    alt = world.vdir / "alt.py"
    planted = MARK.format(who="planted").encode()
    if how == "file for the link":
        alt.unlink()
        alt.write_bytes(planted)
    elif how == "link to a planted blob":
        blob = world.blobs / ("f" * 40)
        blob.write_bytes(planted)
        alt.unlink()
        alt.symlink_to(os.path.relpath(blob, alt.parent))
    else:  # the blob itself rewritten
        os.chmod(alt, 0o644)
        alt.write_bytes(planted)


@pytest.mark.parametrize("path", ["quick", "full"])
@pytest.mark.parametrize("how", ["file for the link", "link to a planted blob", "blob rewritten"])
def test_a_module_swapped_after_the_load_is_refused_when_imported(world: World, path: str, how: str) -> None:
    """The kernel verified and loaded; then `alt.py` is swapped, and the kernel imports it lazily: the
    loader reads it, finds it is not the locked file, and runs none of it."""
    kernel = _loaded(world, path)
    assert kernel is not None
    _swap_alt(world, how)
    with pytest.raises(VerificationError, match=r"alt\.py: content changed"):
        importlib.import_module(f"{MODULE}.alt")
    assert world.ran() == ["locked"]


@pytest.mark.parametrize("path", ["quick", "full"])
def test_bytecode_planted_after_the_load_never_runs(world: World, path: str) -> None:
    """After the load, an attacker plants a `.pyc` that Python's own loader would accept for `alt.py` (its
    header matches the source's mtime and size), a sourceless `late.pyc`, and a `late2.py` outside the lock,
    then clears `sys.path_importer_cache`: `alt` runs from its locked source, the others are not found."""
    assert _loaded(world, path) is not None
    alt = world.vdir / "alt.py"
    st = os.stat(alt)
    code = compile(MARK.format(who="planted"), str(alt), "exec")
    header = importlib.util.MAGIC_NUMBER + b"\0" * 4
    header += (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (st.st_size & 0xFFFFFFFF).to_bytes(
        4, "little"
    )
    cached = Path(importlib.util.cache_from_source(str(alt)))
    cached.parent.mkdir(exist_ok=True)
    cached.write_bytes(header + marshal.dumps(code))
    (world.vdir / "late.pyc").write_bytes(header + marshal.dumps(code))
    (world.vdir / "late2.py").write_text(MARK.format(who="planted"))
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    importlib.import_module(f"{MODULE}.alt")
    for name in ("late", "late2"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"{MODULE}.{name}")
    assert world.ran() == ["locked", "alt"]


def test_a_file_name_that_is_not_utf8_is_refused(world: World) -> None:
    """An extra file whose name is not UTF-8 (`os.scandir` gives a lone surrogate): refused, never a crash."""
    (world.vdir / os.fsdecode(b"\xff.py")).write_bytes(_planted(100))
    assert world.quick() is None
    with pytest.raises(VerificationError, match="extra file"):
        world.full()
    assert world.ran() == []


# --- the lock: trusted, but a publisher chooses some of its strings -------------------------------------

PUBLISHER_STRINGS = [
    '1.0"\nrepo-id = "evil/k',
    "x\n[[kernel]]\n",
    "a = b",
    "# c",
    "[kernel.variants]",
    'quote"',
    "back\\",
    "tab\t",
    "cr\r",
    "\u2028",
    "\x85",
    "\ufeff",
    "\u00a0",
    "\x7f",
]


@pytest.mark.parametrize("text", PUBLISHER_STRINGS)
def test_strings_a_publisher_chooses_read_the_same_both_ways(tmp_path: Path, text: str) -> None:
    """A build's `provenance` (from its metadata.json) and its signer identity land in the lock as text:
    whatever they hold, the quick path reads the lock kernel-lock wrote exactly as tomllib and the model do."""
    entry = LockedKernel(
        repo_id=REPO,
        version=1,
        ref="v1",
        commit="0" * 40,
        variants={VARIANT: "sha256-" + "0" * 64},
        provenance=[Provenance(builder=text, source_commit=text, dirty=False, variants=[VARIANT])],
        signed_by={VARIANT: Signer(issuer=text, workflow=text, repository=text)},
    )
    path = tmp_path / "kernels.lock"
    write_lock(path, Lock(kernel=[entry]))
    assert read_lock(path) == Lock(kernel=[entry])
    written = path.read_text(encoding="utf-8")
    assert lockfile_reader.read(written) in (None, toml_loads(written))  # read alike, or left to tomllib
