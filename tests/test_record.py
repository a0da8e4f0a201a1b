"""`Record`, the base of the light value classes: a frozen dataclass in behaviour, made without compiling
anything when its class is defined, and a real dataclass once anything asks for its fields."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from kernel_lock.core._record import Record


class Point(Record, kw_only=False):
    x: int
    y: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)
    unit: ClassVar[str] = "px"


class Named(Record):
    name: str
    point: Point | None = None


class Labelled(Named):
    label: str = ""


def test_fields_come_by_position_or_keyword_with_defaults() -> None:
    assert Point(1, 2) == Point(x=1, y=2) == Point(1, y=2)
    assert (Point(3).y, Point(3).tags) == (0, [])
    assert Point(1).tags is not Point(1).tags  # a fresh default from the factory each time
    assert Labelled(name="a", label="b").label == "b" and Labelled(name="a").point is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Named("a"), "keyword arguments only"),
        (lambda: Point(), "missing argument 'x'"),
        (lambda: Point(1, x=1), "multiple values for 'x'"),
        (lambda: Point(1, 2, [], 4), "keyword arguments only"),
        (lambda: Point(1, unit="cm"), "unexpected keyword arguments unit"),
    ],
)
def test_wrong_arguments_are_a_type_error(make, message) -> None:
    with pytest.raises(TypeError, match=message):
        make()


def test_values_are_frozen_compared_hashed_and_shown_by_their_fields() -> None:
    p = Point(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.y  # type: ignore[misc]
    assert Point(1, 2, ["a"]) != Point(1, 2) and Named(name="a") != Labelled(name="a")
    assert hash(Named(name="a")) == hash(Named(name="a"))
    assert repr(Labelled(name="a")) == "Labelled(name='a', point=None, label='')"
    assert Point.unit == "px" and "unit" not in repr(p)


def test_the_dataclass_is_made_when_first_asked_for() -> None:
    class Late(Record, kw_only=False):
        a: int
        b: Point = dataclasses.field(default_factory=lambda: Point(0))

    assert "__dataclass_fields__" not in Late.__dict__
    value = Late(1)
    assert dataclasses.is_dataclass(value)
    assert "__dataclass_fields__" in Late.__dict__
    assert [f.name for f in dataclasses.fields(Late)] == ["a", "b"]
    assert dataclasses.replace(value, a=2) == Late(2, Point(0))
    assert dataclasses.asdict(value) == {"a": 1, "b": {"x": 0, "y": 0, "tags": []}}
    assert [f.name for f in dataclasses.fields(Labelled)] == ["name", "point", "label"]


def test_pydantic_at_the_edge_sees_the_fields() -> None:
    from pydantic import TypeAdapter

    adapter = TypeAdapter(Named)
    assert adapter.validate_python({"name": "n", "point": {"x": 1}}) == Named(name="n", point=Point(1))
    assert adapter.dump_python(Named(name="n")) == {"name": "n", "point": None}
