"""Edit `[tool.kernels.dependencies]` in place, keeping the rest of `pyproject.toml` byte-for-byte.

`tomlkit` keeps comments, order and formatting of everything we do not touch.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

import tomlkit
from tomlkit.items import InlineTable, Table

from kernel_lock.core.requirement import Dependency
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


_OURS = ("version", "revision", "trust-remote-code")


def _spaced(table: MutableMapping[str, Any]) -> bool:
    """Whether the table's inline tables are written `{ version = 1 }` (the default) or `{version = 1}`."""
    styles = [v.as_string().startswith("{ ") for v in table.values() if isinstance(v, InlineTable)]
    return styles[-1] if styles else True


def _value(dep: Dependency, current: object, spaced: bool) -> object:
    """The shortest TOML value that says `dep`: `N`, or an inline table.

    Keys of an existing entry that are not ours to set (`signers`, `require-signature`, ...)
    are kept, after ours, in their order, and so is its spacing.
    """
    kept = (
        [(k, current[k]) for k in current if k not in _OURS]
        if isinstance(current, (InlineTable, Table))
        else []
    )
    if dep.version is not None and not dep.trust_remote_code and not kept:
        return dep.version
    if isinstance(current, InlineTable):
        spaced = current.as_string().startswith("{ ")
    items: list[tuple[str, object]] = [
        ("version", dep.version) if dep.version is not None else ("revision", dep.revision)
    ]
    if dep.trust_remote_code:
        items.append(("trust-remote-code", True))
    table = tomlkit.inline_table()
    if spaced:
        table.add(tomlkit.ws(" "))
    for key, value in [*items, *kept]:
        table.add(key, value)
    if spaced:
        table.add(tomlkit.ws(" "))
    return table


def set_dependencies(text: str, dependencies: Mapping[str, Dependency]) -> str:
    """`pyproject.toml` text with each repo required as given (added, or its entry replaced in place).

    The one writer of `[tool.kernels.dependencies]`, for `add` and `import` alike.
    """
    doc = tomlkit.parse(text)
    table = _dependencies_table(doc, create=True)
    assert table is not None
    spaced = _spaced(table)
    for repo_id, dep in dependencies.items():
        table[repo_id] = _value(dep, table.get(repo_id), spaced)
    return tomlkit.dumps(doc)


def with_dependencies_table(text: str) -> str:
    """`pyproject.toml` text that has a `[tool.kernels.dependencies]` table (added, empty, where missing)."""
    doc = tomlkit.parse(text)
    _dependencies_table(doc, create=True)
    return tomlkit.dumps(doc)


def remove_dependency(text: str, repo_id: str) -> str:
    """`pyproject.toml` text without `repo_id` in `[tool.kernels.dependencies]`."""
    doc = tomlkit.parse(text)
    table = _dependencies_table(doc, create=False)
    if table is None or repo_id not in table:
        raise ConfigError(f"{repo_id} is not in [tool.kernels.dependencies]; nothing to remove.")
    del table[repo_id]
    return tomlkit.dumps(doc)
