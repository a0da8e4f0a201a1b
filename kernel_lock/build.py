"""A setuptools `egg_info` writer: a package built with kernel-lock carries its `kernels.lock`.

Registered as the `egg_info.writers` entry point `kernels.lock`, the same name
the `kernels` library uses, so the file lands in the dist-info where
`kernel_lock.get_kernel` (and `kernels`) look for the caller's lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernel_lock.core import tomlread


def write_egg_lockfile(cmd: Any, basename: str, filename: str) -> None:
    """Copy the project's `kernels.lock` into the package metadata (or remove a stale copy)."""
    pyproject = Path.cwd() / "pyproject.toml"
    if not pyproject.is_file():
        return
    with open(pyproject, "rb") as f:
        if "kernels" not in tomlread.load(f).get("tool", {}):
            return
    lock = Path.cwd() / "kernels.lock"
    cmd.write_or_delete_file(basename, filename, lock.read_text(encoding="utf-8") if lock.is_file() else None)
