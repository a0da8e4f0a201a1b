"""CI runs the README's test command, and that command checks formatting, lint and types before the tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_test_command() -> str:
    """The indented command after the README's "Tests (what `.ci/run` runs ...)" paragraph."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Tests (what `.ci/run` runs"))
    return next(line.strip() for line in lines[start + 1 :] if line.startswith("    "))


def test_ci_runs_the_readme_test_command_exactly() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci_lines[-1] == _readme_test_command()


def test_the_test_command_checks_format_lint_and_types_first() -> None:
    steps = [step.strip() for step in _readme_test_command().split("&&")]
    checks = [".venv/bin/ruff format --check .", ".venv/bin/ruff check .", ".venv/bin/mypy"]
    assert all(check in steps for check in checks)
    first_test = next(i for i, step in enumerate(steps) if "pytest" in step)
    assert max(steps.index(check) for check in checks) < first_test
