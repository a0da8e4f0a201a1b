"""A hostile Hub answers downloads with any status, header and body; a hostile or careless hand damages the cache.

Whatever the Hub answers, nothing is written outside the cache, nothing that verified before is lost, and no
path comes from a response header (`ETag`, `X-Linked-Etag`, `X-Repo-Commit`, `Location`, `Content-*`): the
paths come from the lock. Local damage (a folder where a file belongs, a symlinked variant or snapshot folder,
a planted link) is repaired by one sync, touching nothing outside the variant's own folder and the blobs it
needs. Set `KERNEL_LOCK_COUNTS=/path/file.jsonl` to collect the figures for the README.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from kernel_lock.cache.verify import check_variant
from kernel_lock.core.cache_layout import hub_cache_dir, record_path, repo_dir, variant_dir
from kernel_lock.core.lockfile import Lock, LockedKernel, read_lock
from kernel_lock.testing import Answer, LocalHub, git_blob_id, lfs_pointer
from kernel_lock.testing.fixtures import CPU_VARIANT

OTHER = "torch-cpu"
COUNTS: Counter[str] = Counter()


def outside(root: Path) -> dict[str, bytes]:
    """Every path under `root` except the Hugging Face cache (path -> bytes, or a marker for links and folders)."""
    cache = hub_cache_dir().resolve()
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath).resolve() == cache:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = b"<link>" + os.readlink(path).encode()
            elif path.is_dir():
                found[rel] = b"<dir>"
            else:
                found[rel] = path.read_bytes()
    return found


def blobs_are_honest() -> None:
    """Every blob in the cache hashes to its own name, and no temporary download is left behind."""
    for blob in hub_cache_dir().glob("kernels--*/blobs/*"):
        assert not blob.name.endswith(".incomplete"), f"a partial download was left: {blob}"
        data = blob.read_bytes()
        actual = (
            hashlib.sha256(data).hexdigest()
            if len(blob.name) == 64
            else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        )
        assert actual == blob.name, f"blob {blob} holds bytes that do not match its name"


def nothing_outside(tmp_path: Path, before: dict[str, bytes]) -> None:
    """Assert (and count) that nothing outside the cache changed: no file, folder or link added, changed or lost."""
    assert outside(tmp_path) == before, "something outside the cache changed"
    COUNTS["nothing_written_outside"] += 1


def nothing_lost(root: Path) -> None:
    """Assert (and count) that the variant synced before the hostile sync still verifies in full."""
    assert check_variant(relu(root), OTHER, mode="full").ok, "a variant that verified before was lost"
    COUNTS["nothing_lost"] += 1


def refs_written() -> list[Path]:
    return [p for p in hub_cache_dir().glob("kernels--*/refs/**/*") if p.is_file()]


@pytest.fixture
def world(hub_env: LocalHub, tmp_path: Path, make_project, cli, monkeypatch) -> Path:
    """A project locked for relu v1 (two variants of it synced and verified), run from a folder of its own."""
    root = make_project('"kernels-community/relu" = 1')
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert sync(cli, root, OTHER).exit_code == 0  # verified before every hostile sync: it must stay so
    hub_env.clear_log()
    return root


def relu(root: Path) -> LockedKernel:
    entry = read_lock(root / "kernels.lock").find("kernels-community/relu")
    assert entry is not None
    return entry


def verified(lock: Lock) -> set[tuple[str, str]]:
    """Every (repo, variant) of the lock that verifies in full right now."""
    return {(e.repo_id, v) for e in lock.kernel for v in e.variants if check_variant(e, v, mode="full").ok}


def sync(cli, root: Path, *variants: str):
    args = [a for v in variants for a in ("--variant", v)]
    return cli("sync", "--project", str(root), *args)


def assert_clean(run, code: int, *says: str) -> None:
    assert run.exit_code == code, (run.exit_code, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and "error: unexpected" not in run.stderr, run.stderr
    for text in says:
        assert text in run.stderr, run.stderr


# -- answers with hostile headers: paths never come from them ------------------------------------------------

ESCAPES = ["../../../escaped.pth", "../../../../escaped.pth", "/{tmp}/abs.pth", "..", "../blobs", "x/../../y"]


@pytest.mark.parametrize("header", ["ETag", "X-Linked-Etag", "X-Repo-Commit", "Content-Disposition"])
@pytest.mark.parametrize("value", ESCAPES)
def test_traversal_in_headers_writes_nothing_outside_the_cache(
    hub_env, world, cli, tmp_path, header: str, value: str
) -> None:
    value = value.format(tmp=str(tmp_path).strip("/"))
    name = header
    before_outside = outside(tmp_path)
    other = relu(world)
    before = verified(read_lock(world / "kernels.lock"))
    hub_env.add_answer(Answer(r"/resolve/", headers={name: f'"{value}"'}, count=None))
    hub_env.add_answer(Answer(r"^/cdn/", headers={name: f'"{value}"'}, count=None))
    run = sync(cli, world, CPU_VARIANT)
    if name == "X-Repo-Commit":
        assert_clean(run, 3, "another commit's file")
    else:
        # The bytes are right: the headers are ignored, the paths come from the lock.
        assert run.exit_code == 0, run.stderr
        assert check_variant(other, CPU_VARIANT, mode="full").ok
    nothing_outside(tmp_path, before_outside)
    nothing_lost(world)
    assert before <= verified(read_lock(world / "kernels.lock")), "a variant that verified before was lost"
    assert refs_written() == []
    blobs_are_honest()
    COUNTS["hostile_answers_tried"] += 1
    COUNTS["hostile_answers_refused" if name == "X-Repo-Commit" else "hostile_headers_ignored"] += 1


@pytest.mark.parametrize("said", ["../../evil", "a" * 41, "", "A" * 40, "0" * 40 + "\u00e9"])
@pytest.mark.parametrize("where", ["/resolve/", "^/cdn/"])
def test_a_refused_x_repo_commit_names_the_request_id(hub_env, world, cli, where: str, said: str) -> None:
    headers = {"X-Repo-Commit": said.encode("utf-8").decode("latin-1"), "X-Request-Id": "req-commit-1"}
    hub_env.add_answer(Answer(where, headers=headers, count=None))
    run = cli("sync", "--verbose", "--project", str(world), "--variant", CPU_VARIANT)
    assert_clean(run, 3, "another commit's file", "Hub request id: req-commit-1")
    nothing_lost(world)
    COUNTS["hostile_answers_tried"] += 1
    COUNTS["hostile_answers_refused"] += 1


@pytest.mark.parametrize("status", [404, 401, 403, 410, 500, 302])
def test_error_statuses_with_a_traversal_commit_write_nothing(
    hub_env, world, cli, tmp_path, status: int
) -> None:
    before_outside = outside(tmp_path)
    hub_env.add_answer(
        Answer(
            r"/resolve/.*/_ops\.py$",
            status=status,
            headers={"X-Repo-Commit": "../../../../evil", "X-Error-Code": "EntryNotFound", "Location": None},
            body=b"{}",
            count=None,
        )
    )
    run = sync(cli, world, CPU_VARIANT)
    assert_clean(run, 3, "kernels-community/relu")
    nothing_outside(tmp_path, before_outside)
    nothing_lost(world)
    assert not check_variant(relu(world), CPU_VARIANT).ok
    assert not list(hub_cache_dir().glob("**/.no_exist")), "no negative-cache marker is written"
    assert refs_written() == []
    blobs_are_honest()
    COUNTS["hostile_answers_tried"] += 1
    COUNTS["hostile_answers_refused"] += 1


# -- answers with hostile statuses and bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "code", "says"),
    [
        (Answer(r"/resolve/.*/_ops\.py$", body=b"import os; os.system('evil')\n"), 4, "_ops.py"),
        (Answer(r"/resolve/.*/_ops\.py$", body=b""), 4, "_ops.py"),
        (Answer(r"/resolve/.*/_ops\.py$", status=204, body=b""), 4, "HTTP 204"),
        (
            Answer(r"/resolve/.*/_ops\.py$", status=206, headers={"Content-Range": "bytes 0-1/2"}),
            4,
            "HTTP 206",
        ),
        (Answer(r"/resolve/.*/_ops\.py$", status=418, body=b"teapot"), 3, "HTTP 418"),
        (Answer(r"/resolve/.*/_ops\.py$", status=301, headers={"Location": None}), 4, "HTTP 301"),
        (Answer(r"^/cdn/", body=b"x" * (8 << 20)), 4, "the lock lists 4096"),
        (Answer(r"/resolve/.*/_ops\.py$", body=b"y" * (2 << 20)), 4, "the lock lists"),
        (Answer(r"^/cdn/", body=b"x" * (8 << 20), chunked=True), 4, "more than the listed 4096 bytes"),
        (Answer(r"/resolve/.*/_ops\.py$", body=b"y" * (2 << 20), chunked=True), 4, "more than the listed"),
        (Answer(r"^/cdn/", status=200, body=b"NoSuchKey"), 4, ".abi3.so"),
        (Answer(r"^/cdn/", status=404, body=b"NoSuchKey"), 3, "HTTP 404"),
    ],
    ids=[
        "other-bytes",
        "empty",
        "204",
        "unasked-206",
        "418",
        "301-without-location",
        "8MB-for-a-4kB-lfs-file",
        "2MB-for-a-small-file",
        "8MB-chunked-for-a-4kB-lfs-file",
        "2MB-chunked-for-a-small-file",
        "wrong-lfs-bytes",
        "cdn-404",
    ],
)
def test_bodies_and_statuses_that_are_not_the_file_are_refused(
    hub_env, world, cli, tmp_path, answer: Answer, code: int, says: str
) -> None:
    before_outside = outside(tmp_path)
    hub_env.add_answer(dataclasses.replace(answer, count=None))
    run = sync(cli, world, CPU_VARIANT)
    assert_clean(run, code, "kernels-community/relu", says)
    nothing_outside(tmp_path, before_outside)
    nothing_lost(world)
    assert not check_variant(relu(world), CPU_VARIANT).ok
    blobs_are_honest()
    entry = relu(world)
    for blob in hub_cache_dir().glob("kernels--*/blobs/*"):
        assert blob.stat().st_size < (2 << 20), f"an oversized answer was kept: {blob}"
    COUNTS["hostile_answers_tried"] += 1
    COUNTS["hostile_answers_refused"] += 1
    hub_env.clear_faults()
    assert sync(cli, world, CPU_VARIANT).exit_code == 0, "the next sync from an honest Hub succeeds"
    assert check_variant(entry, CPU_VARIANT, mode="full").ok


def test_lfs_pointer_instead_of_content_is_refused(hub_env, world, cli, tmp_path) -> None:
    entry = relu(world)
    so = next(
        p
        for p in hub_env.repo("kernels-community/relu").files(entry.commit)
        if p.startswith(f"build/{CPU_VARIANT}/") and p.endswith(".so")
    )
    data = hub_env.repo("kernels-community/relu").files(entry.commit)[so]
    before_outside = outside(tmp_path)
    hub_env.add_answer(Answer(r"^/cdn/", body=lfs_pointer(data), count=None))
    run = sync(cli, world, CPU_VARIANT)
    assert_clean(run, 4, ".abi3.so")
    nothing_outside(tmp_path, before_outside)
    nothing_lost(world)
    blobs_are_honest()
    COUNTS["hostile_answers_tried"] += 1
    COUNTS["hostile_answers_refused"] += 1


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("file:///etc/passwd", 3),
        ("/api/kernels/kernels-community/relu/refs", 4),
        ("self", 3),
        ("http://127.0.0.1:1/unreachable", 3),
    ],
    ids=["file-url", "other-path", "loop", "dead-host"],
)
def test_location_redirects_cannot_place_or_swap_a_file(
    hub_env, world, cli, tmp_path, location: str, code: int
) -> None:
    if location == "self":
        location = f"{hub_env.url}/kernels/kernels-community/relu/resolve/{relu(world).commit}/build/{CPU_VARIANT}/_ops.py"
    before_outside = outside(tmp_path)
    hub_env.add_answer(
        Answer(r"/resolve/.*/_ops\.py$", status=302, headers={"Location": location}, body=b"", count=None)
    )
    run = sync(cli, world, CPU_VARIANT)
    assert_clean(run, code, "kernels-community/relu")
    nothing_outside(tmp_path, before_outside)
    nothing_lost(world)
    assert not check_variant(relu(world), CPU_VARIANT).ok
    blobs_are_honest()
    COUNTS["hostile_answers_tried"] += 1
    COUNTS["hostile_answers_refused"] += 1


# -- nothing the user had is lost ---------------------------------------------------------------------------------


def test_failed_sync_keeps_other_commits_and_shared_blobs(
    hub_env, hub_fixtures, world, make_project, cli, tmp_path
) -> None:
    # Another project has relu v2 (another commit) synced; this one syncs v1 from a Hub that lies about the commit.
    other = make_project('"kernels-community/relu" = 2', name="other")
    assert cli("lock", "--project", str(other)).exit_code == 0
    assert sync(cli, other, CPU_VARIANT, OTHER).exit_code == 0
    assert sync(cli, world, OTHER).exit_code == 0
    locks = [read_lock(other / "kernels.lock"), read_lock(world / "kernels.lock")]
    before = set().union(*map(verified, locks))
    blobs_before = {p: p.read_bytes() for p in hub_cache_dir().glob("kernels--*/blobs/*")}
    hub_env.add_answer(Answer(r"/resolve/", headers={"X-Repo-Commit": hub_fixtures.relu_v2}, count=None))
    run = sync(cli, world, CPU_VARIANT)
    assert_clean(run, 3, "another commit's file")
    assert before <= set().union(*map(verified, locks)), "a variant that verified before was lost"
    for blob, data in blobs_before.items():
        assert blob.read_bytes() == data, f"{blob} changed"
    assert refs_written() == []
    COUNTS["nothing_lost"] += 1


def test_repairing_one_variant_keeps_a_blob_another_variant_links_to(world, cli) -> None:
    entry = relu(world)
    assert sync(cli, world, CPU_VARIANT, OTHER).exit_code == 0
    shared = variant_dir(entry.repo_id, entry.commit, CPU_VARIANT) / "layers.py"
    other = variant_dir(entry.repo_id, entry.commit, OTHER) / "layers.py"
    assert os.path.realpath(shared) == os.path.realpath(other), "the fixture's layers.py is one blob"
    shared.unlink()
    shared.write_text("tampered\n")
    assert not check_variant(entry, CPU_VARIANT).ok
    assert sync(cli, world, CPU_VARIANT).exit_code == 0
    assert check_variant(entry, CPU_VARIANT, mode="full").ok and check_variant(entry, OTHER, mode="full").ok
    COUNTS["nothing_lost"] += 1


# -- local damage: one sync repairs it, touching only the variant's own folder --------------------------------


def damage_dir_where_file_belongs(vdir: Path) -> None:
    (vdir / "layers.py").unlink()
    (vdir / "layers.py").mkdir()
    (vdir / "layers.py" / "junk.py").write_text("x = 1\n")


def damage_file_where_folder_belongs(vdir: Path) -> None:
    shutil.rmtree(vdir / "relu")
    (vdir / "relu").write_text("not a package\n")


def damage_symlinked_variant(vdir: Path) -> None:
    copy = vdir.parents[5] / "elsewhere" / "variant"
    shutil.copytree(vdir, copy)
    shutil.rmtree(vdir)
    vdir.symlink_to(copy, target_is_directory=True)


def damage_symlinked_snapshot(vdir: Path) -> None:
    snapshot = vdir.parents[1]
    copy = vdir.parents[5] / "elsewhere" / "snapshot"
    shutil.copytree(snapshot, copy, symlinks=True)
    shutil.rmtree(snapshot)
    snapshot.symlink_to(copy, target_is_directory=True)


def damage_symlinked_subfolder(vdir: Path) -> None:
    copy = vdir.parents[5] / "elsewhere" / "relu"
    shutil.copytree(vdir / "relu", copy)
    shutil.rmtree(vdir / "relu")
    (vdir / "relu").symlink_to(copy, target_is_directory=True)


def damage_link_outside(vdir: Path) -> None:
    target = vdir.parents[5] / "elsewhere" / "layers.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((vdir / "layers.py").read_bytes())
    (vdir / "layers.py").unlink()
    (vdir / "layers.py").symlink_to(target)


def damage_unreadable_blob(vdir: Path) -> None:
    os.chmod(os.path.realpath(vdir / "_ops.py"), 0)


def damage_extra_and_changed(vdir: Path) -> None:
    (vdir / "evil.py").write_text("import os\n")
    (vdir / "_ops.py").unlink()
    (vdir / "_ops.py").write_text("changed\n")


DAMAGE = [
    damage_dir_where_file_belongs,
    damage_file_where_folder_belongs,
    damage_symlinked_variant,
    damage_symlinked_snapshot,
    damage_symlinked_subfolder,
    damage_link_outside,
    damage_unreadable_blob,
    damage_extra_and_changed,
]


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__.removeprefix("damage_") for d in DAMAGE])
def test_one_sync_repairs_local_damage(hub_env, world, cli, tmp_path, damage) -> None:
    if damage is damage_unreadable_blob and os.geteuid() == 0:
        pytest.skip("root reads a file without read permission")
    entry = relu(world)
    assert sync(cli, world, CPU_VARIANT, OTHER).exit_code == 0
    vdir = variant_dir(entry.repo_id, entry.commit, CPU_VARIANT)
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    damage(vdir)
    before_outside = outside(tmp_path)
    assert not check_variant(entry, CPU_VARIANT).ok, "verification refuses the damage"
    assert cli("verify", "--project", str(world), "--variant", CPU_VARIANT).exit_code == 4
    run = sync(cli, world, CPU_VARIANT)
    assert run.exit_code == 0, run.stderr
    assert check_variant(entry, CPU_VARIANT, mode="full").ok
    nothing_outside(tmp_path, before_outside)
    if damage is not damage_symlinked_snapshot:  # there the other variant lived in the refused copy too
        nothing_lost(world)
    if damage is not damage_unreadable_blob:
        blobs_are_honest()
    COUNTS["local_damage_repaired_in_one_sync"] += 1


def test_planted_links_in_the_record_folder_write_nothing_outside(hub_env, world, cli, tmp_path) -> None:
    entry = relu(world)
    victim = a_victim(tmp_path)
    elsewhere = victim.parent
    rpath = record_path(entry.repo_id, entry.commit, CPU_VARIANT)
    rpath.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{rpath}.lock").symlink_to(victim)
    blobs = repo_dir(entry.repo_id) / "blobs"
    shutil.move(blobs, elsewhere / "blobs")  # the blobs folder is now a link to a copy outside the cache
    blobs.symlink_to(elsewhere / "blobs", target_is_directory=True)
    before_outside = outside(tmp_path)
    assert not check_variant(entry, OTHER).ok, "files behind a symlinked blobs folder are refused"
    run = sync(cli, world, CPU_VARIANT)
    assert run.exit_code == 0, run.stderr
    assert victim.read_text() == "keep me\n"
    nothing_outside(tmp_path, before_outside)
    assert check_variant(entry, CPU_VARIANT, mode="full").ok
    COUNTS["local_damage_repaired_in_one_sync"] += 1


def a_victim(tmp_path: Path) -> Path:
    """A file outside the cache (in a folder of its own) that nothing kernel-lock does may change."""
    (tmp_path / "elsewhere").mkdir()
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.write_text("keep me\n")
    return victim


def plant(kind: str, at: Path, victim: Path) -> None:
    """Put a symlink (to a file, or dangling), a hard link or a FIFO where a lock file will be opened."""
    if kind == "symlink":
        at.symlink_to(victim)
    elif kind == "dangling":
        at.symlink_to(victim.with_name("created-through-the-link"))
    elif kind == "hardlink":
        os.link(victim, at)
    else:
        os.mkfifo(at)


@pytest.mark.parametrize("kind", ["symlink", "dangling", "hardlink", "fifo"])
def test_run_sync_takes_its_lock_through_nothing_planted(hub_env, world, tmp_path, kind: str) -> None:
    import subprocess
    import sys

    from kernel_lock.enforcement.run import SYNC_LOCK

    victim = a_victim(tmp_path)
    elsewhere = victim.parent
    plant(kind, hub_cache_dir() / SYNC_LOCK, victim)
    before_outside = outside(elsewhere)
    command = ["run", "--sync", "--project", str(world), "--", sys.executable, "-c", "print('ran')"]
    proc = subprocess.run([sys.executable, "-m", "kernel_lock", *command], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ran"]
    assert victim.read_text() == "keep me\n" and outside(elsewhere) == before_outside
    assert (hub_cache_dir() / SYNC_LOCK).is_file() and not (hub_cache_dir() / SYNC_LOCK).is_symlink()
    assert check_variant(relu(world), CPU_VARIANT, mode="full").ok
    COUNTS["nothing_written_outside"] += 1


@pytest.mark.parametrize("kind", ["symlink", "dangling", "hardlink", "fifo"])
def test_sync_takes_a_variant_lock_through_nothing_planted(hub_env, world, cli, tmp_path, kind: str) -> None:
    entry = relu(world)
    victim = a_victim(tmp_path)
    elsewhere = victim.parent
    rpath = record_path(entry.repo_id, entry.commit, CPU_VARIANT)
    rpath.parent.mkdir(parents=True, exist_ok=True)
    plant(kind, Path(f"{rpath}.lock"), victim)
    before_outside = outside(elsewhere)
    assert sync(cli, world, CPU_VARIANT).exit_code == 0
    assert victim.read_text() == "keep me\n" and outside(elsewhere) == before_outside
    assert check_variant(entry, CPU_VARIANT, mode="full").ok
    COUNTS["nothing_written_outside"] += 1


def test_a_lock_file_replaced_by_a_folder_is_our_error(hub_env, tmp_path) -> None:
    from kernel_lock.cache.writes import cache_file_lock
    from kernel_lock.errors import CacheError

    (tmp_path / "x.lock").mkdir()
    with pytest.raises(CacheError, match=r"x\.lock"), cache_file_lock(tmp_path / "x.lock"):
        pass


def test_lock_writes_nothing_through_a_planted_record_folder(hub_env, make_project, cli, tmp_path) -> None:
    """lock keeps small caches beside the snapshots; a link planted in their place is not written through."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    repo = repo_dir("kernels-community/relu")
    repo.mkdir(parents=True)
    (repo / ".kernel-lock").symlink_to(elsewhere, target_is_directory=True)
    root = make_project('"kernels-community/relu" = 1')
    before_outside = outside(tmp_path)
    assert cli("lock", "--project", str(root)).exit_code == 0
    after = {k: v for k, v in outside(tmp_path).items() if not k.startswith("proj")}
    assert after == {k: v for k, v in before_outside.items() if not k.startswith("proj")}
    assert list(elsewhere.iterdir()) == [], "a lock-time cache was written through the planted link"
    COUNTS["nothing_written_outside"] += 1


def test_a_killed_download_is_cleaned_up_by_the_next_sync(hub_env, world, cli) -> None:
    """A SIGKILLed sync leaves its temporary file in blobs/; the next sync removes it, not a live one's."""
    import socket
    import subprocess
    import sys

    entry = relu(world)
    blobs = repo_dir(entry.repo_id) / "blobs"
    name = git_blob_id(hub_env.repo(entry.repo_id).files(entry.commit)[f"build/{CPU_VARIANT}/_ops.py"])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = socket.gethostname().replace(".", "_")
    abandoned = blobs / f".{name}.{host}-{int(dead.stdout)}.abc.incomplete"
    live = blobs / f".{name}.{host}-{os.getpid()}.def.incomplete"
    elsewhere = blobs / f".{name}.other_host-1.ghi.incomplete"
    for tmp in (abandoned, live, elsewhere):
        tmp.write_bytes(b"partial")
    assert sync(cli, world, CPU_VARIANT).exit_code == 0
    assert not abandoned.exists(), "the killed process's partial download was left"
    assert live.exists() and elsewhere.exists(), "a download that may still be running was removed"
