"""`get_kernel` where users expect it: `version=`/`revision=` checked against the lock, the lock found from the
calling script's folder, and a missing variant that names the other environment's variant that is synced."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernel_lock.errors import LockfileError, NotSyncedError
from kernel_lock.load.locked import get_kernel
from kernel_lock.testing.fixtures import CPU_VARIANT

pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="loading a fixture kernel needs torch (marker `torch`)")

CUDA_TARGET = "torch213-cxx11-cu126-x86_64-linux"
KERNEL_MODULES = ("_relu", "_activation")


@pytest.fixture
def project(hub_env, make_project, cli) -> Path:
    root = make_project('"kernels-community/relu" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root), "--target", CPU_VARIANT).exit_code == 0
    return root


def test_version_and_revision_are_checked_against_the_lock(project) -> None:
    lockfile = project / "kernels.lock"
    assert get_kernel("kernels-community/relu", version=1, lockfile=lockfile).VARIANT == CPU_VARIANT
    assert get_kernel("kernels-community/relu", revision="v1", lockfile=lockfile).VARIANT == CPU_VARIANT
    with pytest.raises(LockfileError, match=r"asks for version 2, but kernels.lock holds version 1") as info:
        get_kernel("kernels-community/relu", version=2, lockfile=lockfile)
    assert "kernel-lock add kernels-community/relu --version 2" in str(info.value)
    with pytest.raises(LockfileError, match=r"asks for revision main"):
        get_kernel("kernels-community/relu", revision="main", lockfile=lockfile)
    with pytest.raises(LockfileError, match="not both"):
        get_kernel("kernels-community/relu", version=1, revision="v1", lockfile=lockfile)


def test_the_lock_is_found_beside_the_script_from_any_directory(project, tmp_path: Path) -> None:
    app = project / "src" / "app.py"
    app.parent.mkdir()
    app.write_text(
        textwrap.dedent(
            """
            from kernel_lock import get_kernel
            print(get_kernel("kernels-community/relu").VARIANT)
            """
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "KERNEL_LOCK_FILE"}
    run = subprocess.run(
        [sys.executable, str(app)], cwd=elsewhere, capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == CPU_VARIANT


def test_another_environments_synced_variant_is_named(project) -> None:
    with pytest.raises(NotSyncedError) as info:
        get_kernel("kernels-community/relu", lockfile=project / "kernels.lock", target=CUDA_TARGET)
    message = str(info.value)
    assert f"Synced: {CPU_VARIANT} (for torch 2.13, CPU, x86_64-linux)" in message
    assert "this environment is torch 2.13 (cxx11), CUDA 12.6, x86_64-linux" in message
    assert f"kernel-lock sync --variant {CUDA_TARGET}" in message
