"""Shared pytest setup: the local Hub fixtures come from kernel_lock.testing; helpers to write projects and run the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest_plugins = ["kernel_lock.testing.pytest_plugin"]


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
