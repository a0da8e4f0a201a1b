"""JSON Schemas of what kernel-lock reads and writes, generated from their models by pydantic.

`schemas/` holds the files (`[tool.kernels]`, `kernels.lock`: the lock model is plain dataclasses, whose
field metadata carries the keys, descriptions and patterns pydantic writes); `schemas/output/` the
`--json` document of each command (`kernel_lock.cli.reports`). `python -m kernel_lock.cli.schemas`
rewrites them; a test fails when they are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from kernel_lock.cli.reports import REPORTS
from kernel_lock.core.lockfile import Lock
from kernel_lock.project.config import KernelsConfig

SCHEMAS: dict[str, tuple[type[Any], str, str]] = {
    "tool-kernels.schema.json": (KernelsConfig, "The [tool.kernels] table of pyproject.toml", "validation"),
    "kernels-lock.schema.json": (Lock, "kernels.lock, written by kernel-lock", "validation"),
    **{
        f"output/{name}.schema.json": (model, f"The --json output of kernel-lock {name}", "serialization")
        for name, model in REPORTS.items()
        if name != "error"
    },
    "output/error.schema.json": (
        REPORTS["error"],
        "The --json output of any failed kernel-lock command",
        "serialization",
    ),
}


def render() -> dict[str, str]:
    """Relative file name -> schema text, deterministic."""
    out = {}
    for name, (model, title, mode) in SCHEMAS.items():
        schema = TypeAdapter(model).json_schema(by_alias=True, mode=mode)  # type: ignore[arg-type]
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}
        out[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main(directory: str = "schemas") -> None:
    """Write every schema into `directory`."""
    for name, text in render().items():
        path = Path(directory) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:])
