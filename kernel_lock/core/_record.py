"""The base of kernel-lock's light value classes: frozen dataclasses that cost almost nothing to define.

`@dataclass(frozen=True)` writes and compiles `__init__`, `__setattr__`, `__eq__`, `__hash__` and `__repr__`
for every class at import, and `typing.NamedTuple` compiles each annotation and a `__new__`: 0.05 to 0.2 ms
a class in a fresh process, which every process that loads a kernel would pay for the lock model, the
target, the variant and the verdict. A `Record` subclass reads its fields from its annotations when it is
defined and inherits these methods; it becomes a real dataclass (`dataclasses.fields`, `replace`, `asdict`,
pydantic at the edge) the first time anything asks for its dataclass fields. Type checkers read it as
`@dataclass(frozen=True, kw_only=True)` (`dataclass_transform`); `class X(Record, kw_only=False)` also
takes its fields by position, as a NamedTuple did.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10
    from typing_extensions import dataclass_transform

_MISSING = dataclasses.MISSING
_Spec = tuple[tuple[str, Any, Any], ...]  # each field's name, default and default factory (or MISSING)
_SPECS: dict[type, _Spec] = {}
_POSITIONAL: set[type] = set()


class _LazyDataclass(type):
    """Makes a `Record` class a dataclass the first time its dataclass fields are looked up."""

    if not TYPE_CHECKING:  # type checkers see each field through `dataclass_transform`

        def __getattr__(cls, name: str) -> Any:
            if name in ("__dataclass_fields__", "__dataclass_params__") and cls in _SPECS:
                dataclasses.dataclass(cls, init=False, repr=False, eq=False)
                return type.__getattribute__(cls, name)
            raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")


def _own_fields(cls: type) -> _Spec:
    """The fields `cls` itself annotates, in order: ClassVars left out, `field()` defaults read as dataclasses do."""
    fields = []
    for name, annotation in cls.__annotations__.items():  # the class's own (Python >= 3.10)
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, dataclasses.Field):
            fields.append((name, value.default, value.default_factory))
        else:
            fields.append((name, value, _MISSING))
    return tuple(fields)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(dataclasses.field,))
class Record(metaclass=_LazyDataclass):
    """A frozen value that takes keyword arguments (and positional ones where `kw_only=False`), compares,
    hashes and prints by its fields."""

    __slots__ = ()

    def __init_subclass__(cls, kw_only: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inherited = next((_SPECS[base] for base in cls.__mro__[1:] if base in _SPECS), ())
        _SPECS[cls] = inherited + _own_fields(cls)
        if not kw_only:
            _POSITIONAL.add(cls)

    def __init__(self, *args: Any, **values: Any) -> None:
        spec = _SPECS[self.__class__]
        if args:
            if self.__class__ not in _POSITIONAL or len(args) > len(spec):
                raise TypeError(f"{self.__class__.__name__}() takes keyword arguments only")
            for (name, _, _), value in zip(spec[: len(args)], args, strict=True):
                if name in values:
                    raise TypeError(f"{self.__class__.__name__}() got multiple values for {name!r}")
                values[name] = value
        for name, default, factory in spec:
            if name in values:
                value = values.pop(name)
            elif factory is not _MISSING:
                value = factory()
            elif default is not _MISSING:
                value = default
            else:
                raise TypeError(f"{self.__class__.__name__}() missing argument {name!r}")
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
