"""The quick start runs, and the Docker example's steps work when replayed here against the local Hub."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_lock.core.target import default_target

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.torch
def test_quickstart_runs() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart" / "run.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "relu([-2.0, -0.5, 0.0, 0.5, 1.0, 2.0]) = [0.0, 0.0, 0.0, 0.5, 1.0, 2.0]" in proc.stdout
    assert "layers.py: content changed" in proc.stdout
    assert "Quick start OK" in proc.stdout


def kernel_lock(*args: str, env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "kernel_lock", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.torch
def test_docker_example_steps(hub_env, tmp_path: Path) -> None:
    target = default_target().spec()
    app = tmp_path / "app"
    app.mkdir()
    for name in ("pyproject.toml", "serve.py"):
        shutil.copy(ROOT / "examples" / "docker" / name, app / name)
    assert '--target "${KERNEL_TARGET}"' in (ROOT / "examples" / "docker" / "Dockerfile").read_text()
    env = dict(os.environ)
    kernel_lock("lock", env=env, cwd=app)  # the developer's step: the lock is committed with the project

    # build stage: a fresh cache, `kernel-lock sync --frozen --target ...`
    build_cache = tmp_path / "build-stage-cache"
    kernel_lock("sync", "--frozen", "--target", target, env=dict(env, HF_HUB_CACHE=str(build_cache)), cwd=app)

    # runtime stage: COPY --from the build stage, Hub unreachable, HF_HUB_OFFLINE=1
    runtime_cache = tmp_path / "runtime" / "hf-cache"
    shutil.copytree(build_cache, runtime_cache, symlinks=True)
    hub_env.clear_log()
    hub_env.stop()
    runtime = dict(
        env, HF_HUB_CACHE=str(runtime_cache), HF_HUB_OFFLINE="1", KERNEL_LOCK_FILE=str(app / "kernels.lock")
    )
    kernel_lock("verify", "--target", target, env=runtime, cwd=app)
    proc = subprocess.run(
        [sys.executable, "serve.py"], env=runtime, cwd=app, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "relu OK" in proc.stdout
    assert hub_env.requests == []
