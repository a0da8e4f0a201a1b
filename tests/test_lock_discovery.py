"""Where `get_kernel` finds `kernels.lock` when it is not told, attacked with a planted lock.

The attacker can write a shared folder (world-writable, like a scratch or team folder) that holds the script
or lies above it, and plants a `kernels.lock` there that pins an older commit. Discovery looks no higher than
the project root (the nearest `pyproject.toml`) and never uses a lock that someone else could change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from kernel_lock.errors import LockfileError
from kernel_lock.load.locked import find_lock

pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="loading a fixture kernel needs torch (marker `torch`)")

REPO = "kernels-community/relu"
SCRIPT = """
from kernel_lock.load import _registry as registry
from kernel_lock import get_kernel
get_kernel("kernels-community/relu", download=True)
print(*[commit for (_, commit, _) in registry.loaded])
"""
COUNTS = {
    "lock discovery attacks tried": 5,
    "lock discovery attacks refused": 5,
}  # planted above (2), writable (2), sticky


@pytest.fixture
def locks(hub_env, make_project, cli, hub_fixtures) -> tuple[Path, Path]:
    """The project's lock (relu v1, latest commit) and the attacker's (relu at the older tag v1.0.0)."""
    project = make_project(f'"{REPO}" = 1')
    attacker = make_project(f'"{REPO}" = {{ revision = "v1.0.0" }}', name="attacker")
    for root in (project, attacker):
        assert cli("lock", "--project", str(root)).exit_code == 0
    assert hub_fixtures.relu_v1 != hub_fixtures.relu_v1_first
    return project / "kernels.lock", attacker / "kernels.lock"


def _shared(tmp_path: Path, mode: int) -> Path:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(mode)
    return folder


def _run(script: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KERNEL_LOCK_FILE"}
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def _caller(file: Path) -> ModuleType:
    module = ModuleType("some_app")
    module.__file__ = str(file)
    return module


def test_a_lock_planted_above_the_script_is_never_reached(locks, tmp_path, hub_fixtures) -> None:
    """The script sits in a shared folder (no project of its own) and runs from the project: the planted lock
    one folder up pinned the older commit, and `get_kernel(download=True)` fetched and ran it."""
    project_lock, planted = locks
    shared = _shared(tmp_path, 0o777)
    shutil.copy(planted, shared / "kernels.lock")
    script = shared / "scripts" / "app.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    run = _run(script, cwd=project_lock.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [hub_fixtures.relu_v1]


def test_discovery_stops_at_the_project_root(locks, tmp_path, monkeypatch) -> None:
    """A project without a lock of its own inside a shared folder that holds one: nothing is found."""
    _, planted = locks
    shared = _shared(tmp_path, 0o777)
    shutil.copy(planted, shared / "kernels.lock")
    (shared / "proj" / "src").mkdir(parents=True)
    (shared / "proj" / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n')
    monkeypatch.chdir(shared / "proj")
    with pytest.raises(LockfileError, match=r"No kernels\.lock found"):
        find_lock(caller=_caller(shared / "proj" / "src" / "app.py"))


def test_a_lock_others_can_change_is_refused(locks, tmp_path, hub_fixtures, monkeypatch) -> None:
    """The script and the planted lock in a world-writable folder: refused, naming the folder, never run."""
    _, planted = locks
    shared = _shared(tmp_path, 0o777)
    shutil.copy(planted, shared / "kernels.lock")
    script = shared / "app.py"
    script.write_text(SCRIPT)
    run = _run(script, cwd=tmp_path)
    assert run.returncode != 0
    assert "can be changed by users other than you and root" in run.stderr
    assert hub_fixtures.relu_v1_first not in run.stdout
    monkeypatch.chdir(tmp_path)
    writable = tmp_path / "writable"
    writable.mkdir()
    shutil.copy(planted, writable / "kernels.lock")
    (writable / "kernels.lock").chmod(0o666)
    with pytest.raises(LockfileError, match="other than you and root"):
        find_lock(caller=_caller(writable / "app.py"))


def test_in_a_sticky_folder_only_our_own_lock_is_used(locks, tmp_path, monkeypatch) -> None:
    """A folder like `/tmp` (world-writable, sticky): our own lock there is used; another user's is refused."""
    _, planted = locks
    sticky = _shared(tmp_path, 0o1777)
    shutil.copy(planted, sticky / "kernels.lock")
    monkeypatch.chdir(tmp_path)
    assert find_lock(caller=_caller(sticky / "app.py")).find(REPO) is not None
    if os.geteuid() != 0:
        pytest.skip("giving the lock to another user needs root (chown)")
    os.chown(sticky / "kernels.lock", 4242, 4242)
    with pytest.raises(LockfileError, match="other than you and root"):
        find_lock(caller=_caller(sticky / "app.py"))
