"""What the lock model's dataclasses share: equality, hash and repr from their fields, written once.

`@dataclass` writes and compiles these three methods for every class it makes, at import: about 0.1 ms a
method on Python 3.11, which every fresh process that loads a kernel pays (the lock model has six classes).
Classes that inherit them are declared `@dataclass(frozen=True, kw_only=True, eq=False, repr=False)`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """The names of a dataclass's fields, in order (its class variables left out)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


class Record:
    """Compares, hashes and prints a dataclass by its fields, as `@dataclass(eq=True, repr=True)` would."""

    __slots__ = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _field_names(self.__class__))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _field_names(self.__class__))
        return f"{self.__class__.__qualname__}({shown})"
