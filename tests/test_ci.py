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


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_no_extra_conflicts_with_the_newest_supported_stack() -> None:
    """`pip install kernel-lock[any extra]` beside transformers 5.25 (which requires kernels 0.19) resolves."""
    from packaging.requirements import Requirement

    newest = {"kernels": "0.19.1", "transformers": "5.25.0"}
    project = _pyproject()["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    for text in requirements:
        requirement = Requirement(text)
        if requirement.name in newest:
            assert requirement.specifier.contains(newest[requirement.name]), text


def test_the_matrix_runs_every_older_supported_stack() -> None:
    """The test extra is the newest stack; noxfile.py holds each older one, and the README names them all."""
    import ast

    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    stacks = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STACKS"
    )
    assert set(stacks.values()) == {("0.17.2", "5.22.2"), ("0.18.3", "5.24.0")}
    test_extra = _pyproject()["project"]["optional-dependencies"]["test"]
    assert {"kernels==0.19.1", "transformers==5.25.0"} <= set(test_extra)
    assert ".venv/bin/nox" in _readme_test_command()
