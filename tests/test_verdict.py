"""The one verification rule: `core.verdict.judge` (pure) over `core.verdict.take_snapshot` (the walker), and sync's
plan built from it. No Hub: real files in a cache under tmp_path, laid out as sync lays them out."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kernel_lock.cache._variant_sync import plan_variant
from kernel_lock.cache.verify import check_variant, record_for
from kernel_lock.cache.writes import write_record
from kernel_lock.core.cache_layout import (
    Fingerprint,
    ManifestEntry,
    blob_path,
    manifest_hash,
    read_record,
    record_path,
    variant_dir,
)
from kernel_lock.core.hashing import git_blob_sha1
from kernel_lock.core.lockfile import LockedKernel, read_lock
from kernel_lock.core.verdict import FileSeen, Snapshot, Stamp, Wanted, judge, take_snapshot

REPO = "unit-org/k"
COMMIT = "c0ffee" + "0" * 34
VARIANT = "torch-cpu"
FILES = {
    "__init__.py": b"from .sub import x\n",
    "sub/__init__.py": b"",
    "sub/x.py": b"x = 1\n",
    "_ops.so": b"\x7fELF" + bytes(range(256)) * 8,
}


# --- the pure verdict -------------------------------------------------------------------------------


def stamp(i: int, link: str | None = None) -> Stamp:
    return (1, 100 + i, 10, 1_000 + i, 2_000 + i, link)


WANTED = [Wanted("__init__.py", 10, "a" * 40), Wanted("sub/x.py", 10, "b" * 40)]
KNOWN = {"__init__.py": stamp(0), "sub/x.py": stamp(1)}


def snap(files: dict[str, FileSeen] | None = None, **changes: Any) -> Snapshot:
    """A snapshot of a folder that matches `WANTED` and `KNOWN`, with `changes`."""
    seen = {"__init__.py": FileSeen("file", stamp(0)), "sub/x.py": FileSeen("file", stamp(1))}
    fields: dict[str, Any] = {"folders": frozenset({"sub"}), **changes}
    return Snapshot("/cache/v", files=seen if files is None else files, **fields)


def test_a_folder_as_recorded_is_ok_without_hashing() -> None:
    verdict = judge(WANTED, KNOWN, snap(), hash_all=False)
    assert verdict.ok_without_hashing and verdict.vouched == KNOWN and not verdict.problems
    assert verdict.clear == () and verdict.replace == ()


def test_full_mode_differs_only_in_hashing_what_the_fingerprints_vouch_for() -> None:
    fast, full = (judge(WANTED, KNOWN, snap(), hash_all=h) for h in (False, True))
    assert full.to_hash == KNOWN and full.vouched == {} and not full.ok_without_hashing
    assert (fast.status, fast.problems, fast.clear, fast.replace) == (
        full.status,
        full.problems,
        full.clear,
        full.replace,
    )


@pytest.mark.parametrize("field", ["device", "inode", "size", "mtime", "ctime", "link"])
def test_any_changed_fingerprint_field_means_a_hash(field: str) -> None:
    index = ["device", "inode", "size", "mtime", "ctime", "link"].index(field)
    now: list[Any] = list(stamp(1))
    now[index] = "../blobs/x" if field == "link" else now[index] + 1
    files = {"__init__.py": FileSeen("file", stamp(0)), "sub/x.py": FileSeen("file", tuple(now))}
    verdict = judge(WANTED, KNOWN, snap(files), hash_all=False)
    assert (
        verdict.status == "ok"
        and set(verdict.to_hash) == {"sub/x.py"}
        and set(verdict.vouched) == {"__init__.py"}
    )


def test_a_recorded_fingerprint_with_another_size_than_the_manifest_vouches_for_nothing() -> None:
    wanted = [WANTED[0], Wanted("sub/x.py", 11, "b" * 40)]
    assert set(judge(wanted, KNOWN, snap(), hash_all=False).to_hash) == {"sub/x.py"}


def test_a_file_others_can_write_is_hashed_every_time() -> None:
    files = {"__init__.py": FileSeen("file", stamp(0), shared=True), "sub/x.py": FileSeen("file", stamp(1))}
    assert set(judge(WANTED, KNOWN, snap(files), hash_all=False).to_hash) == {"__init__.py"}


def test_an_untrusted_record_vouches_for_nothing() -> None:
    verdict = judge(WANTED, KNOWN, snap(record_trusted=False), hash_all=False)
    assert verdict.to_hash == KNOWN and verdict.status == "ok"


def test_missing_extra_and_linked_entries_are_problems_to_repair() -> None:
    files = {
        "__init__.py": FileSeen("file", stamp(0)),
        "extra.py": FileSeen("file", stamp(5)),
        "sub/extra/y.py": FileSeen("file", stamp(6)),
    }
    verdict = judge(
        WANTED,
        KNOWN,
        snap(
            files, folders=frozenset({"sub", "sub/extra", "planted"}), linked_folders=frozenset({"sub/out"})
        ),
        hash_all=False,
    )
    assert verdict.status == "corrupt"
    assert [str(p) for p in verdict.problems] == [
        "sub/out: symlink to a directory",
        "extra.py: extra file, not in the locked variant",
        "sub/extra/y.py: extra file, not in the locked variant",
        "planted: extra folder, not in the locked variant",
        "sub/extra: extra folder, not in the locked variant",
        f"sub/x.py: missing (expected {'b' * 40}, actual -)",
    ]
    assert verdict.clear == ("extra.py", "planted", "sub/extra", "sub/out", "sub/extra/y.py")
    assert verdict.replace == ("sub/x.py",)
    assert verdict.vouched == {"__init__.py": stamp(0)}


@pytest.mark.parametrize(
    ("seen", "message"),
    [
        (
            FileSeen("outside-blobs", detail="/tmp/evil.py"),
            "symlink leads outside the cache's blobs folder, to /tmp/evil.py",
        ),
        (FileSeen("not-regular"), "not a regular file"),
        (FileSeen("unreadable", detail="Permission denied"), "cannot be read (Permission denied)"),
    ],
)
def test_a_file_of_the_wrong_kind_is_replaced_not_hashed(seen: FileSeen, message: str) -> None:
    files = {"__init__.py": seen, "sub/x.py": FileSeen("file", stamp(1))}
    verdict = judge(WANTED, KNOWN, snap(files), hash_all=False)
    assert [p.problem for p in verdict.problems] == [message]
    assert verdict.clear == ("__init__.py",) and verdict.replace == ("__init__.py",)
    assert "__init__.py" not in verdict.to_hash


def test_an_unsafe_folder_on_the_way_replaces_everything() -> None:
    verdict = judge(WANTED, KNOWN, snap(unsafe="/cache/repo/blobs"), hash_all=False)
    assert verdict.status == "corrupt" and [p.path for p in verdict.problems] == ["/cache/repo/blobs"]
    assert verdict.vouched == {} and verdict.to_hash == {}
    assert verdict.clear == ("__init__.py", "sub", "sub/x.py") and verdict.replace == (
        "__init__.py",
        "sub/x.py",
    )


def test_an_absent_folder_is_missing() -> None:
    verdict = judge(WANTED, KNOWN, snap({}, present=False, folders=frozenset()), hash_all=False)
    assert verdict.status == "missing" and str(verdict.problems[0]) == "no folder /cache/v"
    assert verdict.replace == ("__init__.py", "sub/x.py") and verdict.clear == ()


# --- the walker, on real files ----------------------------------------------------------------------


@dataclass
class Cache:
    """A cache under tmp_path holding one synced variant of `FILES`, and the lock entry it was synced for."""

    root: Path
    entry: LockedKernel

    @property
    def vdir(self) -> Path:
        return variant_dir(REPO, COMMIT, VARIANT, self.root)

    @property
    def blobs(self) -> Path:
        return blob_path(REPO, "", self.root)

    def take(self) -> Snapshot:
        return take_snapshot(REPO, COMMIT, VARIANT, self.root)


def manifest() -> list[ManifestEntry]:
    return [
        ManifestEntry(
            path=path,
            size=len(data),
            kind="lfs" if path.endswith(".so") else "git",
            hash=hashlib.sha256(data).hexdigest() if path.endswith(".so") else git_blob_sha1(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        for path, data in sorted(FILES.items())
    ]


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    """`FILES` synced as sync writes them: blobs, relative links, a record with every file's fingerprint."""
    root = tmp_path / "hub"
    items = manifest()
    variant_hash = manifest_hash(items, "sha256")
    lockfile = tmp_path / "kernels.lock"
    lockfile.write_text(
        f'version = 1\n\n[[kernel]]\nrepo-id = "{REPO}"\nversion = 1\nref = "v1"\ncommit = "{COMMIT}"\n'
        f'hash-type = "sha256"\ntrust = "trusted-publisher"\ndirect = true\n\n'
        f'[kernel.variants]\n{VARIANT} = "{variant_hash}"\n',
        encoding="utf-8",
    )
    world = Cache(root, read_lock(lockfile).kernel[0])
    world.blobs.mkdir(parents=True)
    for item in items:
        (world.blobs / item.hash).write_bytes(FILES[item.path])
        link = world.vdir / item.path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(world.blobs / item.hash, link.parent))
    seen = world.take().files
    verified = {p: Fingerprint.of(s.stamp) for p, s in seen.items() if s.stamp is not None}
    record = record_for(world.entry, VARIANT, items, verified)
    write_record(record_path(REPO, COMMIT, VARIANT, root), record)
    return world


def test_a_synced_variant_verifies_without_hashing_and_with(cache: Cache) -> None:
    taken = cache.take()
    assert taken.record_trusted and taken.unsafe is None and taken.folders == {"sub"}
    assert all(s.kind == "file" and s.stamp and s.stamp[5] for s in taken.files.values())
    assert check_variant(cache.entry, VARIANT, cache=cache.root, mode="fast").hashed == 0
    full = check_variant(cache.entry, VARIANT, cache=cache.root, mode="full")
    assert full.ok and full.hashed == len(FILES)


def test_the_walker_lists_every_kind_of_entry_a_cache_can_hold(cache: Cache, tmp_path: Path) -> None:
    vdir = cache.vdir
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "outside.py").write_text("#\n")
    for folder in ["sub/deeper", "empty", "__pycache__", "sub/__pycache__/inner", "d.pyc"]:
        (vdir / folder).mkdir(parents=True, exist_ok=True)
    for rel in [
        "sub/deeper/x.so",
        "x.pyc",
        "__pycache__/evil.py",
        "sub/__pycache__/inner/y.py",
        "d.pyc/z.py",
    ]:
        (vdir / rel).write_text("#\n")
    (vdir / os.fsdecode(b"\xff.py")).write_text("#\n")
    (vdir / "file-link.py").symlink_to(outside / "outside.py")
    (vdir / "broken-link.py").symlink_to(outside / "missing.py")
    (vdir / "sub" / "__pycache__" / "link").symlink_to(outside, target_is_directory=True)
    (vdir / "sub" / "deeper" / "__pycache__").symlink_to(outside, target_is_directory=True)
    (vdir / "sub" / "dir-link").symlink_to(outside, target_is_directory=True)
    os.mkfifo(vdir / "fifo.py")
    taken = cache.take()
    assert taken.folders == {"sub", "sub/deeper", "empty", "d.pyc"}
    assert taken.linked_folders == {"sub/dir-link"}
    assert set(taken.files) == set(FILES) | {
        "sub/deeper/x.so",
        "d.pyc/z.py",
        os.fsdecode(b"\xff.py"),
        "file-link.py",
        "broken-link.py",
        "fifo.py",
    }
    kinds = {
        rel: taken.files[rel].kind for rel in ["file-link.py", "broken-link.py", "fifo.py", "d.pyc/z.py"]
    }
    assert kinds == {
        "file-link.py": "outside-blobs",
        "broken-link.py": "outside-blobs",
        "fifo.py": "not-regular",
        "d.pyc/z.py": "file",
    }


def test_links_count_only_into_the_repos_own_blobs(cache: Cache, tmp_path: Path) -> None:
    """An absolute link into blobs is followed; a blob that is itself a link out, or `blobs/..`, is not."""
    init, x = cache.vdir / "__init__.py", cache.vdir / "sub" / "x.py"
    blob = os.readlink(init).rsplit("/", 1)[1]
    init.unlink()
    init.symlink_to(cache.blobs / blob)
    assert cache.take().files["__init__.py"].kind == "file"
    (tmp_path / "evil.py").write_text("print('pwned')\n")
    (cache.blobs / ("f" * 40)).symlink_to(tmp_path / "evil.py")
    x.unlink()
    x.symlink_to("../../../../../blobs/" + "f" * 40)
    seen = cache.take().files["sub/x.py"]
    assert seen.kind == "outside-blobs" and seen.detail == str(tmp_path / "evil.py")
    check = check_variant(cache.entry, VARIANT, cache=cache.root, mode="fast")
    assert check.status == "corrupt" and [p.path for p in check.problems] == ["sub/x.py"]
    x.unlink()
    x.symlink_to("../../../../../blobs/..")  # the repo folder: a link to a folder, never entered
    assert "sub/x.py" in cache.take().linked_folders


def test_a_file_others_can_write_is_seen_as_shared(cache: Cache) -> None:
    blob = cache.blobs / os.readlink(cache.vdir / "__init__.py").rsplit("/", 1)[1]
    blob.chmod(0o666)
    assert cache.take().files["__init__.py"].shared
    check = check_variant(cache.entry, VARIANT, cache=cache.root, mode="fast")
    assert check.ok and check.hashed == 1


@pytest.mark.parametrize("where", ["variant", "blobs", "record"])
def test_a_folder_replaced_by_a_symlink_is_not_read_through(cache: Cache, tmp_path: Path, where: str) -> None:
    folder = {
        "variant": cache.vdir,
        "blobs": cache.blobs,
        "record": record_path(REPO, COMMIT, VARIANT, cache.root).parent,
    }[where]
    copy = tmp_path / "copy"
    shutil.move(folder, copy)
    folder.symlink_to(copy, target_is_directory=True)
    taken = cache.take()
    assert taken.unsafe == str(folder) and not taken.record_trusted
    assert bool(taken.files) == (where != "variant")
    check = check_variant(cache.entry, VARIANT, cache=cache.root)
    assert check.status == "corrupt" and [p.path for p in check.problems] == [str(folder)]


def test_a_record_others_can_write_is_not_trusted(cache: Cache) -> None:
    record_path(REPO, COMMIT, VARIANT, cache.root).chmod(0o666)
    assert not cache.take().record_trusted
    check = check_variant(cache.entry, VARIANT, cache=cache.root, mode="fast")
    assert check.ok and check.hashed == len(FILES)


# --- sync's plan, from the same verdict -------------------------------------------------------------


def test_the_plan_of_a_verified_variant_keeps_everything_unhashed(cache: Cache) -> None:
    plan = plan_variant(cache.entry, VARIANT, manifest(), cache.root)
    assert set(plan.keep) == set(FILES) and plan.clear == () and plan.link == plan.fetch == ()
    assert plan.sha256 == {e.path: e.sha256 for e in manifest()}


def test_the_plan_clears_what_is_wrong_and_links_good_blobs(cache: Cache) -> None:
    vdir = cache.vdir
    (vdir / "sub" / "x.py").unlink()
    (vdir / "sub" / "x.py").write_bytes(b"x = 2\n")  # changed content: hashed, wrong
    (vdir / "__init__.py").unlink()  # missing, its blob is still in the cache
    (vdir / "planted").mkdir()
    (vdir / "planted" / "evil.py").write_text("#\n")
    plan = plan_variant(cache.entry, VARIANT, manifest(), cache.root)
    assert set(plan.keep) == {"_ops.so", "sub/__init__.py"}
    assert plan.clear == ("planted", "planted/evil.py", "sub/x.py")
    assert sorted(i.path for i in plan.link) == ["__init__.py", "sub/x.py"] and plan.fetch == ()


def test_the_plan_fetches_what_no_good_blob_holds(cache: Cache) -> None:
    so = next(e for e in manifest() if e.path == "_ops.so")
    (cache.blobs / so.hash).write_bytes(b"not the library")
    (cache.vdir / "_ops.so").unlink()
    plan = plan_variant(cache.entry, VARIANT, manifest(), cache.root)
    assert [i.path for i in plan.fetch] == ["_ops.so"] and plan.link == ()


def test_in_full_mode_the_plan_hashes_every_file_it_keeps(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    (cache.vdir / "sub" / "x.py").unlink()
    (cache.vdir / "sub" / "x.py").write_bytes(b"x = 2\n")
    record = read_record(record_path(REPO, COMMIT, VARIANT, cache.root))
    assert record is not None
    monkeypatch.setenv("KERNEL_LOCK_VERIFY", "full")
    plan = plan_variant(cache.entry, VARIANT, manifest(), cache.root)
    assert set(plan.keep) == set(FILES) - {"sub/x.py"} and [i.path for i in plan.link] == ["sub/x.py"]


def test_the_plan_keeps_nothing_behind_a_symlinked_blobs_folder(cache: Cache, tmp_path: Path) -> None:
    """The blobs folder moved out of the cache and linked back: the variant's links still lead to good bytes,
    but sync replaces that link by a real folder, so a file kept as it is would lead nowhere after."""
    shutil.move(cache.blobs, tmp_path / "elsewhere")
    cache.blobs.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    plan = plan_variant(cache.entry, VARIANT, manifest(), cache.root)
    assert plan.keep == {} and plan.link == ()
    assert sorted(i.path for i in plan.fetch) == sorted(FILES)
    assert set(plan.clear) == set(FILES) | {"sub"}


def test_sync_repairs_a_variant_whose_blobs_folder_was_moved_out_and_linked_back(
    hub_env: object, make_project: Any, cli: Any, tmp_path: Path
) -> None:
    """End to end, the attack the plan test above models: sync after it, and the variant verifies in full."""
    root = make_project('"kernels-community/relu" = 1')
    assert cli("sync", "--project", str(root)).exit_code == 0
    entry = read_lock(root / "kernels.lock").find("kernels-community/relu")
    assert entry is not None
    [variant] = os.listdir(variant_dir(entry.repo_id, entry.commit, VARIANT).parent)
    blobs = blob_path(entry.repo_id, "")
    shutil.move(blobs, tmp_path / "elsewhere")
    blobs.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert not check_variant(entry, variant).ok
    run = cli("sync", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    assert check_variant(entry, variant, mode="full").ok and not blobs.is_symlink()
