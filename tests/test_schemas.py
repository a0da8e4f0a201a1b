"""The JSON Schemas in schemas/ are current, and real files validate against them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pydantic
import pytest
from packaging.version import Version

from kernel_lock.cli.schemas import render
from kernel_lock.core import tomlread

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    Version(pydantic.VERSION) < Version("2.13"),
    reason="schemas/ is generated with pydantic >= 2.13, which writes `propertyNames` (2.10) and a plain "
    "dataclass's docstring as its description (2.13); older ones do not",
)
def test_schemas_are_current() -> None:
    for name, text in render().items():
        assert (ROOT / "schemas" / name).read_text(encoding="utf-8") == text, (
            f"schemas/{name} is stale: run `python -m kernel_lock.cli.schemas`"
        )


def test_example_lock_and_config_validate() -> None:
    lock_schema = json.loads((ROOT / "schemas" / "kernels-lock.schema.json").read_text())
    jsonschema.validate(tomlread.loads((ROOT / "kernels.lock.example").read_text()), lock_schema)
    tool_schema = json.loads((ROOT / "schemas" / "tool-kernels.schema.json").read_text())
    table = {
        "dependencies": {
            "kernels-community/relu": 1,
            "org/k": {"revision": "main", "trust-remote-code": True},
        }
    }
    jsonschema.validate(table, tool_schema)
    bad = {"dependencies": {"org/k": {"versoin": 1}}}
    try:
        jsonschema.validate(bad, tool_schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("an unknown key must not validate")


def test_lock_example_is_current(tmp_path: Path) -> None:
    import runpy

    runpy.run_path(str(ROOT / "examples" / "make_lock_example.py"))["main"](str(tmp_path / "lock"))
    assert (tmp_path / "lock").read_text() == (ROOT / "kernels.lock.example").read_text(), (
        "kernels.lock.example is stale: run `python examples/make_lock_example.py`"
    )
