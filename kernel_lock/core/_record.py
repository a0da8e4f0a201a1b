"""The base of the lock model's classes: frozen, keyword-only dataclasses whose methods are written once.

`@dataclass(frozen=True)` writes and compiles `__init__`, `__setattr__`, `__delattr__`, `__eq__`, `__hash__`
and `__repr__` for every class it makes, at import: about 0.1 ms a method on Python 3.11, which every fresh
process that loads a kernel would pay (the lock model has six classes, 3.2 ms). A `Record` subclass is a
dataclass all the same (`dataclasses.fields`, `replace`, `asdict`, and pydantic at the edge see its fields),
made when the class is defined, with these methods inherited from here; type checkers read it as
`@dataclass(frozen=True, kw_only=True)` (`dataclass_transform`).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10
    from typing_extensions import dataclass_transform

_Spec = tuple[tuple[str, Any, Any], ...]  # each field's name, default and default factory (or MISSING)
_SPECS: dict[type, _Spec] = {}


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(dataclasses.field,))
class Record:
    """A frozen dataclass that takes keyword arguments, compares, hashes and prints by its fields."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        made: type[Any] = dataclasses.dataclass(
            cls, init=False, repr=False, eq=False
        )  # fields; no method compiled
        _SPECS[cls] = tuple((f.name, f.default, f.default_factory) for f in dataclasses.fields(made))

    def __init__(self, **values: Any) -> None:
        for name, default, factory in _SPECS[self.__class__]:
            if name in values:
                value = values.pop(name)
            elif factory is not dataclasses.MISSING:
                value = factory()
            elif default is not dataclasses.MISSING:
                value = default
            else:
                raise TypeError(f"{self.__class__.__name__}() missing keyword argument {name!r}")
            object.__setattr__(self, name, value)
        if values:
            raise TypeError(
                f"{self.__class__.__name__}() got unexpected keyword arguments {', '.join(values)}"
            )

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name, _, _ in _SPECS[self.__class__])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name, _, _ in _SPECS[self.__class__])
        return f"{self.__class__.__qualname__}({shown})"
