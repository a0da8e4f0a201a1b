"""Reading the lock's tables as TOML gives them: each helper checks one value and, where it is wrong, raises
`InvalidLockData` naming its key path (`kernel.0.variants`), so the model's `from_dict` methods read as a
list of rules.
"""

from __future__ import annotations

from typing import Any

from kernel_lock.core.requirement import Signer


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
