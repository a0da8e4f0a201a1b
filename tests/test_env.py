"""Environment variables: read at call time, and the cache found where huggingface_hub finds it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_lock import env
from kernel_lock.testing.fixtures import CPU_VARIANT

CACHE_VARIABLES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")


def _huggingface_hubs_cache(environment: dict[str, str]) -> str:
    """`huggingface_hub.constants.HF_HUB_CACHE` as a fresh interpreter computes it in `environment`."""
    code = "import json; from huggingface_hub import constants; print(json.dumps(constants.HF_HUB_CACHE))"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    return str(json.loads(proc.stdout))


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"XDG_CACHE_HOME": "$BASE/xdg"},
        {"HF_HOME": "~/hf-home"},
        {"HF_HOME": "$BASE/home", "XDG_CACHE_HOME": "/elsewhere"},
        {"HUGGINGFACE_HUB_CACHE": "$BASE/legacy", "HF_HOME": "/elsewhere"},
        {"HF_HUB_CACHE": "~/${NAME}-cache", "HUGGINGFACE_HUB_CACHE": "/elsewhere"},
    ],
    ids=lambda s: ",".join(s) or "defaults",
)
def test_hub_cache_is_where_huggingface_hub_puts_it(settings, tmp_path, monkeypatch) -> None:
    for name in CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BASE", str(tmp_path))
    monkeypatch.setenv("NAME", "mine")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    ours = env.hub_cache()
    assert "$" not in str(ours) and "~" not in str(ours)
    assert ours == Path(_huggingface_hubs_cache(dict(os.environ)))


def test_settings_are_read_when_asked_for(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(env.TARGET, CPU_VARIANT)
    assert env.declared_target() == CPU_VARIANT
    monkeypatch.setenv(env.TARGET, "")
    assert env.declared_target() is None
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "a"))
    assert env.hub_cache() == tmp_path / "a"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "b"))
    assert env.hub_cache() == tmp_path / "b"
    monkeypatch.setenv("BASE", str(tmp_path))
    monkeypatch.setenv(env.LOCK_FILE, "$BASE/kernels.lock")
    assert env.lock_file() == tmp_path / "kernels.lock"
    monkeypatch.delenv(env.LOCK_FILE)
    assert env.lock_file() is None


# Modules that may touch os.environ other than through kernel_lock.env, and why.
ENVIRONMENT_READERS = {
    "kernel_lock/env.py": "the one place settings are read",
    "kernel_lock/cli/command.py": "--offline sets HF_HUB_OFFLINE for one command and restores what was there",
    "kernel_lock/enforcement/site/sitecustomize.py": "decides before importing anything whether enforcement is wanted",
    "kernel_lock/testing/transformers_kernels.py": "source text of a fixture kernel, not code of ours that runs",
}


def test_settings_are_read_only_through_env() -> None:
    package = Path(env.__file__).parent
    readers = {
        path.relative_to(package.parent).as_posix()
        for path in package.rglob("*.py")
        if re.search(r"os\.environ\.get\(|os\.environ\[|os\.getenv\(", path.read_text(encoding="utf-8"))
    }
    assert readers <= set(ENVIRONMENT_READERS), (
        f"read environment variables through kernel_lock.env: {sorted(readers - set(ENVIRONMENT_READERS))}"
    )
