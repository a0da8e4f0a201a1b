"""JSON Schemas of the files kernel-lock reads and writes, generated from their pydantic models.

`python -m kernel_lock.schemas` rewrites `schemas/`; a test fails when they are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from kernel_lock.config import KernelsConfig
from kernel_lock.lockfile import Lock

SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "tool-kernels.schema.json": (KernelsConfig, "The [tool.kernels] table of pyproject.toml"),
    "kernels-lock.schema.json": (Lock, "kernels.lock, written by kernel-lock"),
}


def render() -> dict[str, str]:
    """File name -> schema text, deterministic."""
    out = {}
    for name, (model, title) in SCHEMAS.items():
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}
        out[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main(directory: str = "schemas") -> None:
    """Write every schema into `directory`."""
    target = Path(directory)
    target.mkdir(exist_ok=True)
    for name, text in render().items():
        (target / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:])
