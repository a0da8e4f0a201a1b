"""One JSON style for every `--json` output: kebab-case keys, `schema-version`, warnings, a JSON Schema in
schemas/output/ per command, and errors as `{"error": {"code", "message"}}` with stable codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kernel_lock import errors
from kernel_lock.testing.fixtures import CPU_VARIANT

ROOT = Path(__file__).resolve().parent.parent
# Keys that hold names the user chose (repo ids, variant names), not fields of ours.
NAME_MAPS = {"added-dependencies", "added", "variants"}


def schema(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "schemas" / "output" / f"{name}.schema.json").read_text())


def keys(data: Any, parent: str = "") -> set[str]:
    """Every field name in a JSON document (not the keys of maps of names)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if parent not in NAME_MAPS:
                found.add(key)
            found |= keys(value, key)
    elif isinstance(data, list):
        for item in data:
            found |= keys(item, parent)
    return found


def check(run: Any, name: str) -> dict[str, Any]:
    data = json.loads(run.stdout)
    jsonschema.validate(data, schema(name))
    assert data["schema-version"] == 1 and isinstance(data["warnings"], list)
    bad = sorted(k for k in keys(data) if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", k))
    assert not bad, f"{name}: keys not in kebab-case: {bad}"
    return data


def test_every_command_writes_its_documented_schema(hub_env, make_project, tmp_path: Path, cli) -> None:
    root = make_project('"kernels-community/relu" = 1')
    project = ["--project", str(root)]
    documents = {
        "lock": cli("lock", *project, "--json"),
        "lock-check": cli("lock", "--check", *project, "--json"),
        "sync": cli("sync", *project, "--target", CPU_VARIANT, "--json"),
        "verify": cli("verify", *project, "--target", CPU_VARIANT, "--json"),
        "status": cli("status", *project, "--target", CPU_VARIANT, "--json"),
        "versions": cli("versions", "kernels-community/relu", "--target", CPU_VARIANT, "--json"),
        "add": cli("add", "kernels-community/activation", *project, "--json"),
        "remove": cli("remove", "kernels-community/activation", *project, "--json"),
        "env": cli("env", "--target", CPU_VARIANT, "--json"),
        "tree": cli("tree", *project, "--json"),
        "init": cli("init", "--project", str(tmp_path / "new"), "--json"),
        "cache-prune": cli("cache", "prune", *project, "--dry-run", "--json"),
    }
    exported = tmp_path / "theirs.json"
    documents["export"] = cli("export", "--format", "kernels", "-o", str(exported), *project, "--json")
    assert documents["export"].exit_code == 0 and exported.exists()
    to_stdout = cli("export", "--format", "kernels", *project, "--json")
    assert to_stdout.exit_code == 2 and "needs -o" in to_stdout.json()["error"]["message"]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "pyproject.toml").write_text('[project]\nname = "fresh"\n')
    documents["import"] = cli("import", str(exported), "--project", str(fresh), "--json")
    documents["run-record"] = cli("run", "--record", "--json", *project, "--", sys.executable, "-c", "pass")
    documents["run"] = cli("run", "--json", *project, "--", sys.executable, "-c", "pass")
    documents["completion"] = cli("completion", "bash", "--json")
    for name, run in documents.items():
        assert run.exit_code == 0, (name, run.stderr)
        check(run, name)
    from kernel_lock.cli.reports import REPORTS

    assert set(REPORTS) == {*documents, "error"}, "every report has a test here"
    assert check(documents["lock"], "lock")["kernels"][0]["repo-id"] == "kernels-community/relu"


def test_warnings_are_in_the_document(hub_env, make_project, cli) -> None:
    root = make_project('"kernels-community/relu" = 1')
    (root / "model.py").write_text("from kernels import LockedFuncRepository\n")
    run = cli("lock", "--project", str(root), "--json")
    assert run.exit_code == 0
    data = check(run, "lock")
    assert any("function repositories" in w for w in data["warnings"])
    assert any("version 2 is available" in w for w in data["warnings"])
    assert "warning: " in run.stderr, "warnings still reach stderr"


@pytest.mark.parametrize(
    ("args", "code", "exit_code"),
    [
        (["lock", "--project", "{root}/nowhere"], "config-invalid", 2),
        (["lock", "--check", "--project", "{root}"], None, 1),
        (["sync", "--frozen", "--project", "{root}"], "lock-missing", 1),
        (["sync", "--target", "torch99-nope", "--project", "{root}"], "target-invalid", 2),
        (["add", "not a repo", "--project", "{root}"], "config-invalid", 2),
        (["versions", "kernels-community/does-not-exist"], "repo-not-found", 2),
        (["sync", "--bogus-option"], "usage", 2),
        (["add"], "usage", 2),
        (["export", "--format", "yaml"], "usage", 2),
        (["no-such-command"], "usage", 2),
    ],
)
def test_errors_are_one_document_with_a_stable_code(
    hub_env, make_project, cli, args, code, exit_code
) -> None:
    root = make_project('"kernels-community/relu" = 1')
    run = cli(*[a.format(root=root) for a in args], "--json")
    assert run.exit_code == exit_code, (run.stdout, run.stderr)
    if code is None:  # a failed check is its report, not an error
        assert check(run, "lock-check")["up-to-date"] is False
        return
    data = check(run, "error")
    assert data["error"]["code"] == code and data["error"]["message"]
    assert "Traceback" not in run.stderr and "error" in run.stderr.lower()


def test_usage_errors_without_json_are_clicks(cli) -> None:
    run = cli("sync", "--bogus-option")
    assert run.exit_code == 2 and run.stdout == "" and "No such option" in run.stderr
    after_separator = cli("add", "--", "--json")
    assert not after_separator.stdout.lstrip().startswith("{")


def test_usage_error_json_in_a_real_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kernel_lock", "verify", "--json", "--variant"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["code"] == "usage" and "Traceback" not in proc.stderr


def test_error_codes_are_stable_kebab_case_and_unique() -> None:
    classes = [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.KernelLockError)
    ]
    codes = {c: c.code for c in classes}
    for cls, code in codes.items():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", code), cls
    defined_here = [c for c in classes if "code" in vars(c)]
    assert len({c.code for c in defined_here}) == len(defined_here), "one code per class"
