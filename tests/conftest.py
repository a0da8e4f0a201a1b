"""Shared pytest setup: the local Hub fixtures come from kernel_lock.testing; helpers to write projects and run the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner

from kernel_lock import env
from kernel_lock.core.lockfile import Lock, parse_lock
from kernel_lock.testing import LocalHub
from kernel_lock.testing.fixtures import CPU_VARIANT
from kernel_lock.testing.transformers_kernels import publish_transformers_kernels
from kernel_lock.testing.upstream import loaded_kernels_module

pytest_plugins = ["kernel_lock.testing.pytest_plugin"]

INSTALL = "pip install -e '.[test,torch]' torch==2.13.0"


def _skip_reason(item: pytest.Item) -> str | None:
    """Why a marked test cannot run here, or None."""
    for marker, module in (("torch", "torch"), ("kernels", "kernels")):
        if item.get_closest_marker(marker) and importlib.util.find_spec(module) is None:
            return f"needs {module}, which is not installed ({INSTALL})"
    if item.get_closest_marker("gpu"):
        if importlib.util.find_spec("torch") is None:
            return "needs a CUDA build of torch, and torch is not installed"
        import torch

        if not torch.cuda.is_available():
            return "needs a CUDA GPU, and torch sees none"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    reason = _skip_reason(item)
    if reason:
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _declared_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """Select for `CPU_VARIANT` (the CPU build of the torch the tests install), not this machine: no result
    depends on the host's torch or CUDA libraries.

    A test of detection itself deletes `KERNEL_LOCK_TARGET` (`monkeypatch.delenv(env.TARGET)`).
    """
    monkeypatch.setenv(env.TARGET, CPU_VARIANT)


@dataclass
class Run:
    """The outcome of one CLI invocation."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


@pytest.fixture
def cli() -> Callable[..., Run]:
    """Run `kernel-lock ARGS...` in-process (the real CLI code, with click's runner) and capture its output."""
    from kernel_lock.cli import main

    def run(*args: str) -> Run:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """Write a project whose pyproject.toml declares `deps` (TOML source lines) and return its directory."""

    def make(*deps: str, name: str = "proj") -> Path:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        body = "\n".join(deps)
        (root / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "0.1.0"\n\n[tool.kernels.dependencies]\n{body}\n'
        )
        return root

    return make


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Append a test module's `COUNTS` (figures for the README's Reliability section) to $KERNEL_LOCK_COUNTS."""
    yield
    counts = getattr(request.module, "COUNTS", None)
    target = os.environ.get("KERNEL_LOCK_COUNTS")
    if counts and target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps({"file": request.module.__name__, **counts}) + "\n")


LOCK_HASH = "sha256-" + "1" * 64
"""A well-formed variant hash, for locks built in a test."""


def lock_entry(repo_id: str, commit: str, *, version: int | None = 1, **fields: Any) -> dict[str, Any]:
    """One `[[kernel]]` table of a lock with one variant; `fields` are more keys (`direct`, `hash-type`, ...).

    Without a version the requirement is the revision `commit`.
    """
    table: dict[str, Any] = {"repo-id": repo_id, "ref": f"v{version}" if version is not None else commit}
    table |= {"version": version} if version is not None else {"revision": commit}
    return {**table, "commit": commit, "variants": {"torch-cpu": LOCK_HASH}, **fields}


def lock_of(*entries: dict[str, Any]) -> Lock:
    """A lock parsed from its TOML text, as `kernel-lock` reads `kernels.lock`."""
    return parse_lock(tomli_w.dumps({"version": 1, "kernel": list(entries)}), where="kernels.lock")


@pytest.fixture
def tf_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """A local Hub with the kernels of transformers' Llama mapping and an attention kernel; clients pointed at it."""
    from kernel_lock.testing.pytest_plugin import point_clients_at  # here: pytest loads the plugin first

    hub = LocalHub()
    publish_transformers_kernels(hub)
    hub.start()
    point_clients_at(monkeypatch, hub, tmp_path / "hf-cache", tmp_path / "hf-home")
    try:
        yield hub
    finally:
        hub.stop()


def forget_kernels(prefixes: tuple[str, ...] = ()) -> None:
    """Forget the kernels this process imported (loaders import each once per process).

    kernel-lock's and kernels' registries of loaded kernels and kernels' layer cache are emptied, and the
    modules whose names start with one of `prefixes` are dropped from `sys.modules`.
    """
    from kernel_lock.load import _registry as registry

    registry.loaded.clear()
    for name, cache in (("importer", "_loaded_kernels"), ("layer.layer", "_CACHED_LAYER")):
        module = loaded_kernels_module(name)
        if module is not None:
            getattr(module, cache).clear()
    for name in [n for n in sys.modules if n.startswith(prefixes)]:
        del sys.modules[name]


@pytest.fixture(autouse=True)
def fresh_imports(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test imports its kernels afresh; after it, the modules named by its test module's `KERNEL_MODULES`
    (the name prefixes of that module's fixture kernels) are dropped."""
    forget_kernels()
    yield
    forget_kernels(tuple(getattr(request.module, "KERNEL_MODULES", ())))
