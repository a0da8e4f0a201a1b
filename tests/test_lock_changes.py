"""`lock_changes`: the change summary of a re-lock (what `lock` prints), from two locks read as the format says."""

from __future__ import annotations

from conftest import LOCK_HASH
from conftest import lock_entry as entry
from conftest import lock_of as lock

from kernel_lock.lock.changes import Change, lock_changes

RELU = "kernels-community/relu"
ACT = "kernels-community/activation"
DEP = "kernels-community/helper"
A, B, C = "a" * 40, "b" * 40, "c" * 40


def test_a_first_lock_adds_every_entry_direct_ones_first() -> None:
    after = lock(entry(RELU, A), entry(DEP, B, direct=False), entry(ACT, C, version=2))
    assert lock_changes(None, after) == [
        Change(ACT, "added", None, "v2 (ccccccc)", True),
        Change(RELU, "added", None, "v1 (aaaaaaa)", True),
        Change(DEP, "added", None, "v1 (bbbbbbb)", False),
    ]
    assert [str(c) for c in lock_changes(None, after)] == [
        f"+ {ACT} v2 (ccccccc)",
        f"+ {RELU} v1 (aaaaaaa)",
        f"+ {DEP} (dependency) v1 (bbbbbbb)",
    ]


def test_an_unchanged_lock_has_no_changes() -> None:
    same = lock(entry(RELU, A), entry(DEP, B, direct=False))
    assert lock_changes(same, lock(entry(RELU, A), entry(DEP, B, direct=False))) == []


def test_who_requires_an_entry_is_not_a_change_of_it() -> None:
    before = lock(entry(RELU, A), entry(DEP, B, direct=False))
    after = lock(
        entry(RELU, A),
        entry(DEP, B, direct=False, **{"required-by": [{"kernel": f"{RELU}@v1", "variants": ["x"]}]}),
    )
    assert lock_changes(before, after) == []


def test_a_new_major_version_is_one_update_not_a_removal_and_an_addition() -> None:
    changes = lock_changes(lock(entry(RELU, A)), lock(entry(RELU, B, version=2)))
    assert changes == [Change(RELU, "updated", "v1 (aaaaaaa)", "v2 (bbbbbbb)", True)]
    assert str(changes[0]) == f"~ {RELU} v1 (aaaaaaa) \N{RIGHTWARDS ARROW} v2 (bbbbbbb)"


def test_a_branch_that_moved_is_a_commit_move() -> None:
    changes = lock_changes(lock(entry(RELU, A), entry(ACT, C)), lock(entry(RELU, B), entry(ACT, C)))
    assert changes == [Change(RELU, "commit-moved", "v1 (aaaaaaa)", "v1 (bbbbbbb)", True)]


def test_a_revision_requirement_is_labelled_by_its_revision() -> None:
    changes = lock_changes(lock(entry(RELU, A, version=None)), lock(entry(RELU, B, version=None)))
    assert changes == [
        Change(RELU, "updated", f"{A} (aaaaaaa)", f"{B} (bbbbbbb)", True)
    ]  # another revision is another key: the old entry is gone, the new one came


def test_an_entry_rewritten_at_the_same_commit_says_what_changed() -> None:
    before = lock(entry(RELU, A), entry(DEP, B, direct=False))
    after = lock(entry(RELU, A, **{"hash-type": "git_lfs_concat"}), entry(DEP, B, direct=True))
    changes = lock_changes(before, after)
    assert changes == [
        Change(DEP, "updated", "v1 (bbbbbbb)", "v1 (bbbbbbb)", True, "now required directly"),
        Change(RELU, "updated", "v1 (aaaaaaa)", "v1 (aaaaaaa)", True, "hashes now git_lfs_concat"),
    ]
    assert str(changes[0]) == f"~ {DEP} v1 (bbbbbbb) (now required directly)"
    demoted = lock_changes(after, before)
    assert Change(DEP, "updated", "v1 (bbbbbbb)", "v1 (bbbbbbb)", False, "now only a dependency") in demoted
    variants = lock_changes(
        before,
        lock(entry(RELU, A, variants={"torch-cpu": LOCK_HASH, "x": LOCK_HASH}), entry(DEP, B, direct=False)),
    )
    assert variants == [
        Change(RELU, "updated", "v1 (aaaaaaa)", "v1 (aaaaaaa)", True, "entry rewritten at the same commit")
    ]


def test_removed_entries_are_listed_after_the_added_ones_of_their_kind() -> None:
    before = lock(entry(RELU, A), entry(ACT, B), entry(DEP, C, direct=False))
    after = lock(entry(RELU, A))
    assert lock_changes(before, after) == [
        Change(ACT, "removed", "v1 (bbbbbbb)", None, True),
        Change(DEP, "removed", "v1 (ccccccc)", None, False),
    ]
    assert str(lock_changes(before, after)[1]) == f"- {DEP} (dependency) v1 (ccccccc)"


def test_a_redirected_kernel_is_named_as_pyproject_names_it() -> None:
    moved = {"redirected-from": "old-org/relu"}
    changes = lock_changes(lock(entry(RELU, A, **moved)), lock(entry(RELU, B, **moved)))
    assert changes == [Change("old-org/relu", "commit-moved", "v1 (aaaaaaa)", "v1 (bbbbbbb)", True)]


def test_two_old_versions_of_a_dependency_and_one_new_are_not_paired_by_guess() -> None:
    before = lock(entry(RELU, A), entry(DEP, A, direct=False), entry(DEP, B, version=2, direct=False))
    after = lock(entry(RELU, A), entry(DEP, C, version=3, direct=False))
    assert lock_changes(before, after) == [
        Change(DEP, "added", None, "v3 (ccccccc)", False),
        Change(DEP, "removed", "v1 (aaaaaaa)", None, False),
        Change(DEP, "removed", "v2 (bbbbbbb)", None, False),
    ]
