"""`[tool.kernels]` parsing: valid forms, and an error that says what to write for every mistake."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from kernel_lock.core.requirement import Dependency
from kernel_lock.errors import ConfigError, KernelLockWarning
from kernel_lock.project.config import load_project, parse_kernels_table


def parse(deps: dict) -> dict[str, Dependency]:
    return parse_kernels_table({"dependencies": deps}, where="pyproject.toml")


def test_the_three_forms() -> None:
    deps = parse(
        {
            "kernels-community/activation": 1,
            "kernels-community/relu": {"version": 2},
            "my-org/my-kernel": {"revision": "a" * 40, "trust-remote-code": True},
        }
    )
    assert deps["kernels-community/activation"] == Dependency(version=1)
    assert deps["kernels-community/relu"] == Dependency(version=2)
    assert deps["my-org/my-kernel"] == Dependency(revision="a" * 40, trust_remote_code=True)
    assert list(deps) == sorted(deps)


@pytest.mark.parametrize(
    ("deps", "says"),
    [
        ({"org/k": {}}, "has no version"),
        ({"org/k": {"trust-remote-code": True}}, "has no version"),
        ({"org/k": ">=0.0.2 && <0.1.0"}, "version = <major>"),
        ({"org/k": {"version": ">=0.0.2"}}, "not a major version"),
        ({"org/k": -1}, "Invalid"),
        ({"org/k": {"version": -3}}, "whole number >= 0"),
        ({"org/k": True}, "is not a version"),
        ({"org/k": 1.5}, "expected a major version or a table"),
        ({"org/k": {"version": 1, "revision": "main"}}, "Keep only one"),
        ({"org/k": {"versoin": 1}}, "Unknown key(s) 'versoin'"),
        ({"org/k": {"revision": ""}}, "Invalid revision"),
        ({"org/k": {"version": 1, "trust-remote-code": "yes"}}, "write true or false"),
        ({"no-slash": 1}, "Malformed repo id"),
        ({"org/a--b": 1}, "Malformed repo id"),
        ({"org/../x": 1}, "Malformed repo id"),
        ({"/x": 1}, "Malformed repo id"),
    ],
)
def test_bad_dependencies_explain_the_fix(deps: dict, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(deps)
    assert says in str(info.value)
    assert "\n" not in str(info.value).split("e.g.")[0]


def test_unknown_table_keys() -> None:
    with pytest.raises(ConfigError, match="Unknown key"):
        parse_kernels_table({"dependencies": {}, "depends": {}}, where="x")


def test_version_zero_warns() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert parse({"org/k": 0})["org/k"].version == 0
    assert any(issubclass(w.category, KernelLockWarning) and "version 0" in str(w.message) for w in caught)


def test_missing_pyproject_and_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"No pyproject\.toml"):
        load_project(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"no \[tool.kernels\] table"):
        load_project(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.kernels\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_project(tmp_path)
