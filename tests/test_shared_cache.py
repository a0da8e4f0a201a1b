"""A cache shared between users: another user who can write some of it must not make a fast-mode load (or
`verify`) accept code the lock did not mean.

Two real users: the tests run as root and create a second one (`kl-attacker`, in the group `kl-team`) with
`useradd`; the attack runs in a separate process under that user's ids. The attack is the one issue 21
names: in a team cache (a folder the group can write, setgid), the other user rewrites the sync record and
re-points a file's link to an older build's blob, recording that blob's fingerprint, so that nothing but a
hash can tell. Skipped, with the reason, where a second user cannot be made (not root, no `useradd`).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import forget_kernels

from kernel_lock.core.cache_layout import record_path, repo_dir, variant_dir
from kernel_lock.core.fsutil import first_shared
from kernel_lock.core.lockfile import read_lock
from kernel_lock.errors import VerificationError
from kernel_lock.load._fast import quick_get_kernel
from kernel_lock.load.locked import get_kernel
from kernel_lock.testing.pytest_plugin import point_clients_at

REPO = "team-org/k"
VARIANT = "torch-cpu"
USER, GROUP = "kl-attacker", "kl-team"
KERNEL_MODULES = ("_team_k",)
COUNTS = {"shared-cache attacks tried": 3, "shared-cache attacks refused": 3}

# Runs as the other user: rewrite the record so that `__init__.py` is the older build's blob, fingerprint and
# all, and re-point the link there. In place where the record is writable, else by a rename in its folder.
ATTACK = """
import json, os, sys
record, link, old_blob = sys.argv[1:]
data = json.loads(open(record).read())
item = next(m for m in data["manifest"] if m["path"] == "__init__.py")
item["hash"] = os.path.basename(old_blob)
item["size"] = os.path.getsize(old_blob)
text = os.readlink(link)
text = text[: text.rindex("/") + 1] + item["hash"]
tmp = link + ".tmp"
os.symlink(text, tmp)
os.replace(tmp, link)
st = os.stat(link)
fp = {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
      "ctime_ns": st.st_ctime_ns, "link": text}
data["verified"]["__init__.py"] = fp
body = json.dumps(data)
try:
    with open(record, "w") as f:
        f.write(body)
    print("in place")
except PermissionError:
    with open(record + ".tmp", "w") as f:
        f.write(body)
    os.replace(record + ".tmp", record)
    print("replaced")
"""


@dataclass(frozen=True)
class Other:
    """The second user."""

    uid: int
    gid: int
    python: str  # an interpreter that user may run (root's own may sit in a folder only root can enter)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `python -I args...` as this user, from `/`."""
        try:
            return subprocess.run(
                [self.python, "-I", *args],
                user=self.uid,
                group=self.gid,
                extra_groups=[self.gid],
                cwd="/",
                capture_output=True,
                text=True,
                check=False,
            )
        except PermissionError as exc:  # the interpreter itself, before it runs
            return subprocess.CompletedProcess([self.python], 126, "", str(exc))


@pytest.fixture(scope="module")
def other() -> Other:
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("a second user can be made only as root (the attack needs two real users)")
    if shutil.which("useradd") is None or shutil.which("groupadd") is None:
        pytest.skip("no useradd/groupadd here to make a second user (the attack needs two real users)")
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", GROUP], check=True, capture_output=True)
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "-M", "-N", "-g", GROUP, "-s", "/bin/false", USER], check=True, capture_output=True
        )
    uid, gid = pwd.getpwnam(USER).pw_uid, grp.getgrnam(GROUP).gr_gid
    for python in (sys.executable, "/usr/bin/python3", shutil.which("python3") or ""):
        user = Other(uid, gid, python)
        if python and user.run("-c", "pass").returncode == 0:
            return user
    pytest.skip(f"no Python interpreter here that {USER} may run, to carry out the attack")


@pytest.fixture
def team(other: Other) -> Iterator[Path]:
    """A folder the other user can reach (pytest's own temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="kl-team-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@dataclass
class World:
    lockfile: Path
    project: Path
    commit: str
    old_blob: Path
    marker: Path

    @property
    def record(self) -> Path:
        return record_path(REPO, self.commit, VARIANT)

    @property
    def init_link(self) -> Path:
        return variant_dir(REPO, self.commit, VARIANT) / "__init__.py"

    def ran(self) -> list[str]:
        return self.marker.read_text().split() if self.marker.exists() else []


def _files(build: str, module: str) -> dict[str, bytes]:
    metadata = {"id": module, "name": "k", "version": 1, "backend": {"type": "cpu"}, "python-depends": []}
    init = f"import os\nwith open(os.environ['TEAM_MARKER'], 'a') as f:\n    f.write({build!r} + '\\n')\n"
    return {
        f"build/{VARIANT}/metadata.json": json.dumps(metadata).encode(),
        f"build/{VARIANT}/__init__.py": init.encode(),
    }


def _synced_twice(hub_env, make_project, cli, monkeypatch, cache: Path, tmp_path: Path, name: str) -> World:
    """v1 locked and synced at an old build, then at a new one: the cache holds the old build's blob too."""
    point_clients_at(monkeypatch, hub_env, cache, tmp_path / "hf-home")
    hub_env.set_organization("team-org", trusted_kernel_publisher=True)
    repo = hub_env.create_repo(REPO)
    module = f"_team_k_{name}"
    old = repo.commit(_files("old", module))
    repo.create_branch("v1", old)
    project = make_project(f'"{REPO}" = 1')
    assert cli("lock", "--project", str(project)).exit_code == 0
    assert cli("sync", "--project", str(project)).exit_code == 0
    old_blob = os.path.realpath(variant_dir(REPO, old, VARIANT) / "__init__.py")
    new = repo.commit(_files("new", module))
    repo.create_branch("v1", new, force=True)
    assert cli("lock", "--project", str(project), "--upgrade").exit_code == 0
    assert cli("sync", "--project", str(project)).exit_code == 0
    lockfile = project / "kernels.lock"
    entry = read_lock(lockfile).find(REPO)
    assert entry is not None and entry.commit == new
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TEAM_MARKER", str(tmp_path / "marker"))
    return World(lockfile, project, new, Path(old_blob), tmp_path / "marker")


def _attack(world: World, other: Other) -> str:
    """Run the attack as the other user; what it managed ("in place" or "replaced")."""
    done = other.run("-c", ATTACK, str(world.record), str(world.init_link), str(world.old_blob))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _assert_refused(world: World, cli) -> None:
    """Fast `verify`, the quick path and `get_kernel` all refuse; the old build never runs."""
    assert json.loads(world.record.read_text())["verified"]["__init__.py"]["link"].endswith(
        world.old_blob.name
    )
    result = cli("verify", "--project", str(world.project))
    assert result.exit_code != 0, result.stdout
    assert "__init__.py" in result.stdout + result.stderr
    assert quick_get_kernel(world.lockfile, REPO) is None
    with pytest.raises(VerificationError, match=r"__init__\.py"):
        get_kernel(REPO, lockfile=world.lockfile)
    assert world.ran() == []


def test_in_a_team_cache_another_user_cannot_roll_a_file_back(
    other, team, hub_env, make_project, cli, monkeypatch, tmp_path
) -> None:
    """A cache the team's group can write (setgid, umask 002): the other user rewrites the record and
    re-points the link; fast mode hashes (the record is not ours alone to vouch for) and refuses."""
    cache = team / "cache"
    cache.mkdir()
    os.chown(cache, 0, other.gid)
    cache.chmod(0o2775)
    old_umask = os.umask(0o002)
    try:
        world = _synced_twice(hub_env, make_project, cli, monkeypatch, cache, tmp_path, "team")
    finally:
        os.umask(old_umask)
    assert get_kernel(REPO, lockfile=world.lockfile) is not None  # before the attack: it loads (by hashing)
    assert world.ran() == ["new"]
    forget_kernels(KERNEL_MODULES)
    world.marker.unlink()
    assert _attack(world, other) in ("in place", "replaced")
    _assert_refused(world, cli)


def test_a_record_left_group_writable_vouches_for_nothing(
    other, team, hub_env, make_project, cli, monkeypatch, tmp_path
) -> None:
    """Folders only root can write, but a record the group can write (as kernel-lock wrote them under umask
    002 before): the other user rewrites it in place; its fingerprints are not trusted, the file is hashed."""
    cache = team / "cache"
    cache.mkdir()
    world = _synced_twice(hub_env, make_project, cli, monkeypatch, cache, tmp_path, "legacy")
    os.chown(world.record, 0, other.gid)
    world.record.chmod(0o664)
    world.init_link.parent.chmod(0o2775)
    os.chown(world.init_link.parent, 0, other.gid)
    assert _attack(world, other) == "in place"
    _assert_refused(world, cli)


def test_records_are_written_like_blobs(
    other, team, hub_env, make_project, cli, monkeypatch, tmp_path
) -> None:
    """Under umask 002 a record is still writable by its owner alone: in a cache no one else can write, the
    other user cannot touch the record at all, and the untouched kernel loads quickly."""
    cache = team / "cache"
    cache.mkdir()
    old_umask = os.umask(0o002)
    try:
        world = _synced_twice(hub_env, make_project, cli, monkeypatch, cache, tmp_path, "private")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(world.record.stat().st_mode) & 0o022 == 0
    assert first_shared(cache, world.record) is None  # group-writable folders, but the group is our own
    refused = other.run("-c", ATTACK, str(world.record), str(world.init_link), str(world.old_blob))
    assert "PermissionError" in refused.stderr
    assert quick_get_kernel(world.lockfile, REPO) is not None
    assert world.ran() == ["new"]


def test_a_private_cache_under_umask_002_still_loads_without_hashing(
    hub_env, make_project, cli, monkeypatch, tmp_path
) -> None:
    """Where every user has a group of their own (umask 002 is then the default), folders the user's own
    group can write are not shared with anyone: fast mode still trusts the record and hashes nothing."""
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    own = grp.getgrgid(os.getegid())
    if own.gr_name != pwd.getpwuid(os.geteuid()).pw_name or set(own.gr_mem) - {own.gr_name}:
        pytest.skip("this user has no private group of their own")
    cache = tmp_path / "cache"
    old_umask = os.umask(0o002)
    try:
        world = _synced_twice(hub_env, make_project, cli, monkeypatch, cache, tmp_path, "umask")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(repo_dir(REPO).stat().st_mode) & 0o020  # the folders are group-writable
    assert quick_get_kernel(world.lockfile, REPO) is not None
    assert world.ran() == ["new"]
