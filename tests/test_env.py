"""Environment variables: read at call time, and the cache found where huggingface_hub finds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_lock import env

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
    monkeypatch.setenv(env.TARGET, "torch213-cxx11-cpu-x86_64-linux")
    assert env.declared_target() == "torch213-cxx11-cpu-x86_64-linux"
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
