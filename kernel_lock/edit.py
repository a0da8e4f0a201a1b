"""Edit `[tool.kernels.dependencies]` in place, keeping the rest of `pyproject.toml` byte-for-byte.

`tomlkit` keeps comments, order and formatting of everything we do not touch.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import tomlkit

from kernel_lock.config import Dependency
from kernel_lock.errors import ConfigError


def _dependencies_table(doc: tomlkit.TOMLDocument, *, create: bool) -> MutableMapping[str, Any] | None:
    """`[tool.kernels.dependencies]`, created (parents as super tables, so no empty headers) when asked and missing."""
    table: MutableMapping[str, Any] = doc
    for key, is_super in (("tool", True), ("kernels", True), ("dependencies", False)):
        child = table.get(key)
        if child is None:
            if not create:
                return None
            child = tomlkit.table(is_super_table=is_super)
            table[key] = child
        table = child
    return table


def _value(dep: Dependency) -> object:
    """The shortest TOML value that says `dep`: `N`, or an inline table."""
    if dep.version is not None and not dep.trust_remote_code:
        return dep.version
    table = tomlkit.inline_table()
    if dep.version is not None:
        table["version"] = dep.version
    else:
        table["revision"] = dep.revision
    if dep.trust_remote_code:
        table["trust-remote-code"] = True
    return table


def set_dependency(text: str, repo_id: str, dep: Dependency) -> str:
    """`pyproject.toml` text with `repo_id` required as `dep` (added, or its line replaced)."""
    doc = tomlkit.parse(text)
    table = _dependencies_table(doc, create=True)
    assert table is not None
    table[repo_id] = _value(dep)
    return tomlkit.dumps(doc)


def remove_dependency(text: str, repo_id: str) -> str:
    """`pyproject.toml` text without `repo_id` in `[tool.kernels.dependencies]`."""
    doc = tomlkit.parse(text)
    table = _dependencies_table(doc, create=False)
    if table is None or repo_id not in table:
        raise ConfigError(f"{repo_id} is not in [tool.kernels.dependencies]; nothing to remove.")
    del table[repo_id]
    return tomlkit.dumps(doc)
