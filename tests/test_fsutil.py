"""`parts_below`, the text-only `Path.relative_to(base).parts` that the shared-folder checks walk with."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel_lock.core.fsutil import parts_below

NAMES = st.lists(st.sampled_from(["a", "b", ".", "..", "", "c d", "é"]), max_size=5)


@given(NAMES, NAMES)
def test_parts_below_are_pathlib_s(base: list[str], below: list[str]) -> None:
    if {".", "..", ""} & set(base):
        return  # pathlib normalises the base too; the callers' bases are plain folders
    top = "/" + "/".join(base)
    path = top.rstrip("/") + "/" + "/".join(below)
    if path.startswith("//"):
        return  # POSIX leaves a leading `//` to the system; pathlib keeps it as a root of its own
    assert parts_below(top, path) == list(Path(path).relative_to(top).parts)


@pytest.mark.parametrize(("base", "path"), [("/a/b", "/a/bc"), ("/a/b", "/x"), ("/a/b", "a/b/c")])
def test_a_path_outside_is_a_value_error(base: str, path: str) -> None:
    with pytest.raises(ValueError, match="is not in"):
        parts_below(base, path)
