"""pytest plugin: a started, populated `LocalHub` per test, and an environment that points the Hub clients at it.

Load it with `pytest_plugins = ["kernel_lock.testing.pytest_plugin"]`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_lock.testing.fixtures import HubFixtures, populate
from kernel_lock.testing.server import LocalHub

__all__ = ["hub_env", "hub_fixtures", "local_hub", "point_clients_at"]


@pytest.fixture
def _populated_hub() -> Iterator[tuple[LocalHub, HubFixtures]]:
    hub = LocalHub()
    fixtures = populate(hub)
    hub.start()
    try:
        yield hub, fixtures
    finally:
        hub.stop()


@pytest.fixture
def local_hub(_populated_hub: tuple[LocalHub, HubFixtures]) -> LocalHub:
    """A started `LocalHub` holding the standard fixture repos (`fixtures.populate`); stopped after the test."""
    return _populated_hub[0]


@pytest.fixture
def hub_fixtures(_populated_hub: tuple[LocalHub, HubFixtures]) -> HubFixtures:
    """The repos and commit shas that `populate` created on `local_hub`."""
    return _populated_hub[1]


def point_clients_at(monkeypatch: pytest.MonkeyPatch, hub: LocalHub, cache_dir: Path, hf_home: Path) -> None:
    """Point `huggingface_hub` (in this process and in subprocesses) at `hub`, with an isolated cache and no token.

    Subprocesses read the environment variables. In this process `huggingface_hub` has already read
    `HF_ENDPOINT` / `HF_HUB_CACHE` into `huggingface_hub.constants` at import time, so those constants, the URL
    template `hf_hub_url` builds from, and the module-level `HfApi` behind `huggingface_hub.list_repo_refs` & co
    are patched too. `kernels` reads `KERNELS_CACHE` at import: it is removed, and patched if already imported.
    """
    from huggingface_hub import constants, hf_api

    for name, value in {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(cache_dir),
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_USER_AGENT_ORIGIN": "kernel-lock-tests",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "KERNELS_CACHE"):
        monkeypatch.delenv(name, raising=False)

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.setattr(hf_api.api, "endpoint", hub.url)
    kernels_hf_hub = sys.modules.get("kernels.hf_hub")
    if kernels_hf_hub is not None and hasattr(kernels_hf_hub, "CACHE_DIR"):  # 0.17 reads it once, at import
        monkeypatch.setattr(kernels_hf_hub, "CACHE_DIR", None)


@pytest.fixture
def hub_env(local_hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalHub:
    """`local_hub`, with the environment pointing every Hub client at it; returns the hub.

    Sets `HF_ENDPOINT` (hub url), `HF_HUB_CACHE` (`tmp_path/hf-cache`), `HF_HOME` (`tmp_path/hf-home`, so no
    user token is found), `HF_HUB_DISABLE_TELEMETRY=1`, `HF_HUB_USER_AGENT_ORIGIN=kernel-lock-tests` (kernels
    0.17.2 otherwise sends an invalid User-Agent), `HF_HUB_DISABLE_XET=1`; unsets `HF_TOKEN`, `HF_HUB_OFFLINE`
    and `KERNELS_CACHE`. Because `huggingface_hub` copies `HF_ENDPOINT` and `HF_HUB_CACHE` into
    `huggingface_hub.constants` at import time, the fixture also monkeypatches `constants.ENDPOINT`,
    `constants.HUGGINGFACE_CO_URL_TEMPLATE`, `constants.HF_HUB_CACHE` and the module-level `HfApi`'s endpoint,
    so `HfApi()`, `hf_hub_download` and `snapshot_download` use the hub without an `endpoint=` argument.
    Subprocesses inherit the environment. Everything is restored after the test.
    """
    point_clients_at(monkeypatch, local_hub, tmp_path / "hf-cache", tmp_path / "hf-home")
    return local_hub
