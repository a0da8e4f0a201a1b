"""Reading `kernels.lock`: its text as tables, and each value of those tables checked for the model.

`read` reads the text as `Lock.to_toml` writes it without importing `tomllib`, which costs a fresh process
about 1.5 ms (it compiles its regexes at import): more than everything else the verified quick load does
before the kernel's own import. The lock as kernel-lock writes it uses a small part of TOML: full-line
comments, `[[kernel]]` and `[kernel.a.b]` / `[[kernel.a]]` headers, and `key = value` lines, of bare keys
or of quoted keys without escapes (a variant name of the `kernels` 0.19 grammar holds dots:
`"torch-2.10-cxx11-cuda-12.8-…"`), whose value is a string without escapes, a non-negative integer, a
boolean, or an array of such strings (`[]`, or one item a line). `read` reads exactly that part and
returns None for anything else (an escape, an inline table, a comment after a value, a key defined twice,
...), for which the caller uses `tomllib`. Where it returns a value, `tomllib` returns the same one:
`tests/test_lockread.py` checks this on the locks the writer makes and on mutations of them.

The value readers (`table`, `string`, `strings`, ...) check one value each and, where it is wrong, raise
`InvalidLockData` naming its key path (`kernel.0.variants`), so the model's `from_dict` methods read as a
list of rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kernel_lock.core.requirement import Signer

_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# Characters TOML allows nowhere in a file (tab aside); a carriage return is left to tomllib too.
_CONTROL = frozenset(map(chr, [*range(0x09), *range(0x0A + 1, 0x20), 0x7F])) | {"\r"}
_ARRAY_ITEM = "    "  # the indent of an array item, as tomli-w writes it


class _Unread(Exception):
    """The text leaves the part of TOML this reader reads."""


def read(text: str) -> dict[str, Any] | None:
    """The lock's data as `tomllib.loads(text)` gives it, or None where this reader does not read the text."""
    if not _CONTROL.isdisjoint(text):
        return None
    try:
        return _Reader().read(text.split("\n"))
    except _Unread:
        return None


class _Reader:
    """One pass over the lines. Only headers make tables and arrays of tables, so TOML's rules on defining
    things twice come down to: a header names a table once, and never what a value line set."""

    def __init__(self) -> None:
        self.root: dict[str, Any] = {}
        self.kernel: dict[str, Any] | None = None  # the current `[[kernel]]` element
        self.arrays: set[int] = set()  # ids of the arrays that `[[...]]` headers made (values are static)
        self.named: set[int] = set()  # ids of the tables a `[...]` header named

    def read(self, lines: list[str]) -> dict[str, Any]:
        table = self.root
        rows = iter(lines)
        for line in rows:
            if not line or line.startswith("#"):
                continue
            if line.startswith("[[") and line.endswith("]]"):
                table = self.array_table(_keys(line[2:-2]))
            elif line.startswith("[") and line.endswith("]"):
                table = self.table(_keys(line[1:-1]))
            else:
                name, eq, value = line.partition(" = ")
                key = _key(name)
                if not eq or key in table:
                    raise _Unread
                table[key] = _value(value, rows)
        return self.root

    def array_table(self, keys: list[str]) -> dict[str, Any]:
        """A new element of `[[kernel]]`, or of `[[kernel.name]]` in the current kernel."""
        if keys == ["kernel"]:
            parent = self.root
        elif len(keys) == 2 and keys[0] == "kernel" and self.kernel is not None:
            parent = self.kernel
        else:
            raise _Unread
        array = parent.get(keys[-1])
        if array is None:
            array = parent[keys[-1]] = []
            self.arrays.add(id(array))
        elif id(array) not in self.arrays:
            raise _Unread
        element: dict[str, Any] = {}
        array.append(element)
        if keys == ["kernel"]:
            self.kernel = element
        return element

    def table(self, keys: list[str]) -> dict[str, Any]:
        """`[kernel.a]` or `[kernel.a.b]`: a table in the current kernel that no header named before."""
        if len(keys) < 2 or keys[0] != "kernel" or self.kernel is None:
            raise _Unread
        table = self.kernel
        for key in keys[1:]:
            child = table.setdefault(key, {})
            if not isinstance(child, dict):
                raise _Unread
            table = child
        if id(table) in self.named:
            raise _Unread
        self.named.add(id(table))
        return table


def _keys(header: str) -> list[str]:
    """The keys of a header: bare or quoted, joined by dots (a quoted key may hold dots itself)."""
    keys = []
    rest = header
    while True:
        if rest.startswith('"'):
            end = rest.find('"', 1)
            if end < 0:
                raise _Unread
            keys.append(_key(rest[: end + 1]))
            rest = rest[end + 1 :]
        else:
            part, dot, after = rest.partition(".")
            keys.append(_key(part))
            rest = dot + after
        if not rest:
            return keys
        if not rest.startswith("."):
            raise _Unread
        rest = rest[1:]


def _key(text: str) -> str:
    """A bare key, or a quoted one without escapes (its text between the quotes)."""
    quoted = _quoted(text)
    if quoted is not None:
        return quoted
    if not text or not _BARE_KEY.issuperset(text):
        raise _Unread
    return text


def _quoted(text: str) -> str | None:
    """The text between the quotes of a basic string without escapes; None where `text` is not quoted."""
    if len(text) < 2 or not text[0] == text[-1] == '"':
        return None
    inner = text[1:-1]
    if '"' in inner or "\\" in inner:
        raise _Unread
    return inner


def _value(value: str, rows: Iterator[str]) -> Any:
    """A value: a scalar, `[]`, or a multi-line array that starts with this `[`."""
    if value == "[]":
        return []
    return _array(rows) if value == "[" else _scalar(value)


def _scalar(value: str) -> str | int | bool:
    """A string without escapes, a non-negative decimal integer as written (no `+`, `_` or leading 0, under
    20 digits: longer ones are no lock's), a bool."""
    quoted = _quoted(value)
    if quoted is not None:
        return quoted
    if value == "true" or value == "false":
        return value == "true"
    if value.isascii() and value.isdigit() and (value == "0" or value[0] != "0") and len(value) < 20:
        return int(value)
    raise _Unread


def _array(rows: Iterator[str]) -> list[Any]:
    """A multi-line array after its `[` line: one indented `"string",` a line, then `]`."""
    items: list[Any] = []
    for line in rows:
        if line == "]":
            return items
        if not (line.startswith(_ARRAY_ITEM) and line.endswith(",")):
            raise _Unread
        item = _scalar(line[len(_ARRAY_ITEM) : -1])
        if not isinstance(item, str):
            raise _Unread
        items.append(item)
    raise _Unread


# -- the values of the tables -------------------------------------------------------------------------


class InvalidLockData(ValueError):
    """Lock data that breaks the model's rules: `path` is the key path (`kernel.0.variants`), `reason` why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or 'top level'}: {reason}")
        self.path = path
        self.reason = reason


def at(path: str, key: str | int) -> str:
    """The key path of `key` in the table at `path`."""
    return f"{path}.{key}" if path else str(key)


def table(
    data: object,
    path: str,
    *,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    values: bool = False,
) -> dict[str, Any]:
    """`data` as a table with exactly the keys allowed (any keys where `values`: a map of names to values)."""
    if not isinstance(data, dict):
        raise InvalidLockData(path, "must be a table")
    if not values:
        for key in data:
            if key not in required and key not in optional:
                raise InvalidLockData(at(path, key), "unknown key")
        for key in required:
            if key not in data:
                raise InvalidLockData(at(path, key), "missing")
    return data


def items(data: dict[str, Any], key: str, path: str) -> list[tuple[int, Any]]:
    """The numbered items of an optional array of tables."""
    value = data.get(key, [])
    if not isinstance(value, list):
        raise InvalidLockData(at(path, key), "must be an array")
    return list(enumerate(value))


def string(value: object, path: str) -> str:
    """A string."""
    if not isinstance(value, str):
        raise InvalidLockData(path, "must be a string")
    return value


def optional_string(data: dict[str, Any], key: str, path: str) -> str | None:
    """The string at `key` of a table, None where the key is absent."""
    return string(data[key], at(path, key)) if key in data else None


def strings(value: object, path: str, key: str) -> list[str]:
    """An array of strings, at `key` of the table at `path`."""
    if not isinstance(value, list):
        raise InvalidLockData(at(path, key), "must be an array of strings")
    return [string(v, at(at(path, key), i)) for i, v in enumerate(value)]


def boolean(value: object, path: str) -> bool:
    """true or false (TOML keeps them apart from numbers and strings)."""
    if type(value) is not bool:
        raise InvalidLockData(path, "must be true or false")
    return value


def signer(data: object, path: str) -> Signer:
    """A `signed-by` identity: issuer, workflow and repository, each a non-empty string."""
    d = table(data, path, required=("issuer", "workflow", "repository"))
    for key in ("issuer", "workflow", "repository"):
        if not string(d[key], at(path, key)):
            raise InvalidLockData(at(path, key), "must not be empty")
    return Signer(issuer=d["issuer"], workflow=d["workflow"], repository=d["repository"])


def without_none(data: dict[str, Any]) -> dict[str, Any]:
    """A table as the writer writes it: absent values left out."""
    return {k: v for k, v in data.items() if v is not None}
