"""`unwritable_paths`: the paths of a variant listing that no cache folder could hold, or that would leave it."""

from __future__ import annotations

import pytest

from kernel_lock.core.cache_layout import NAME_MAX, PATH_MAX, unwritable_paths


def test_an_ordinary_variant_listing_is_writable() -> None:
    listing = [
        "__init__.py",
        "_ops.py",
        "layers/__init__.py",
        "layers/x.py",
        "a.b/c",
        "..hidden",
        "x..y",
        "ab",
    ]
    assert unwritable_paths(listing) == []
    assert unwritable_paths([]) == []


@pytest.mark.parametrize(
    "path",
    [
        "",
        ".",
        "..",
        "../x.py",
        "a/../../x.py",
        "a/..",
        "./x.py",
        "a/./x.py",
        "a//x.py",
        "a/",
        "/etc/passwd",
        "a\\..\\..\\x.py",
        "C:\\x.py",
        "x\0.py",
    ],
)
def test_a_path_that_could_leave_the_variant_folder_is_refused(path: str) -> None:
    assert unwritable_paths(["__init__.py", path]) == [path]


def test_names_and_paths_are_measured_in_bytes_at_the_file_systems_limits() -> None:
    longest_name = "é" * ((NAME_MAX - 1) // 2) + "a"  # 255 bytes in 128 characters
    too_long_name = "é" * (NAME_MAX // 2 + 1)  # 256 bytes
    assert len(longest_name.encode()) == NAME_MAX and len(too_long_name.encode()) == NAME_MAX + 1
    assert unwritable_paths([longest_name, f"d/{longest_name}"]) == []
    assert unwritable_paths([too_long_name, f"d/{too_long_name}"]) == sorted(
        [too_long_name, f"d/{too_long_name}"]
    )

    folders = "/".join(["d" * 100] * 10)  # 1009 bytes, each name short
    longest_path = f"{folders}/{'f' * (PATH_MAX - len(folders) - 1)}"
    assert len(longest_path) == PATH_MAX
    assert unwritable_paths([longest_path]) == []
    assert unwritable_paths([longest_path + "x"]) == [longest_path + "x"]


def test_a_file_where_another_path_needs_a_folder_is_refused_with_that_path() -> None:
    assert unwritable_paths(["a", "a/b.py"]) == ["a", "a/b.py"]
    assert unwritable_paths(["a/b", "a/b/c/d.py", "a/e.py"]) == ["a/b", "a/b/c/d.py"]
    assert unwritable_paths(["x", "x/y/z.py", "x/w.py"]) == ["x", "x/w.py", "x/y/z.py"]


def test_the_answer_is_sorted_and_names_each_path_once() -> None:
    listing = ["z/../q", "a", "a/x", "a/y", "z/../q", "ok.py"]
    assert unwritable_paths(listing) == ["a", "a/x", "a/y", "z/../q"]
