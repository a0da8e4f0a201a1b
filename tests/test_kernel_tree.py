"""`kernel_tree`: the locked dependency tree (and its inversion) built from a lock's `required-by` edges."""

from __future__ import annotations

from typing import Any

from conftest import lock_entry, lock_of

from kernel_lock.inspect.tree import TreeNode, kernel_tree, render_tree

TOP, MID, LEAF, ALONE = "org/top", "org/mid", "org/leaf", "org/alone"
COMMIT = {TOP: "1" * 40, MID: "2" * 40, LEAF: "3" * 40, ALONE: "4" * 40}


def entry(repo_id: str, *requirers: tuple[str, list[str]], direct: bool = False) -> dict[str, Any]:
    """A v1 entry of `repo_id`, required by each (key, variants) in `requirers`."""
    required_by = [{"kernel": key, "variants": variants} for key, variants in requirers]
    return lock_entry(
        repo_id, COMMIT[repo_id], direct=direct, **({"required-by": required_by} if required_by else {})
    )


def node(repo_id: str, variants: list[str], *children: TreeNode, repeated: bool = False) -> TreeNode:
    return TreeNode(repo_id, f"{repo_id}@v1", COMMIT[repo_id], variants, list(children), repeated)


# top requires mid (two variants) and leaf; mid requires leaf; alone requires nothing.
LOCK = lock_of(
    entry(TOP, direct=True),
    entry(MID, (f"{TOP}@v1", ["torch-cpu", "cu126"])),
    entry(LEAF, (f"{TOP}@v1", ["torch-cpu"]), (f"{MID}@v1", ["torch-cpu"])),
    entry(ALONE, direct=True),
)


def test_the_tree_starts_at_the_direct_kernels_and_shows_each_kernel_in_full_once() -> None:
    assert kernel_tree(LOCK) == [
        node(ALONE, []),
        node(
            TOP,
            [],
            node(LEAF, ["torch-cpu"]),
            node(MID, ["cu126", "torch-cpu"], node(LEAF, ["torch-cpu"], repeated=True)),
        ),
    ]
    assert render_tree(kernel_tree(LOCK)) == [
        "org/alone v1 (4444444)",
        "org/top v1 (1111111)",
        "├── org/leaf v1 (3333333) [variants: torch-cpu]",
        "└── org/mid v1 (2222222) [variants: cu126, torch-cpu]",
        "    └── org/leaf v1 (3333333) [variants: torch-cpu] (*)",
    ]


def test_the_inverted_tree_starts_at_every_kernel_and_leads_to_its_requirers() -> None:
    assert kernel_tree(LOCK, invert=True) == [
        node(ALONE, []),
        node(
            LEAF,
            [],
            node(MID, ["torch-cpu"], node(TOP, ["cu126", "torch-cpu"])),
            node(TOP, ["torch-cpu"], repeated=True),
        ),
        node(MID, [], node(TOP, ["cu126", "torch-cpu"], repeated=True)),
        node(TOP, []),
    ]


def test_a_cycle_ends_where_a_kernel_comes_round_again() -> None:
    cycle = lock_of(
        entry(TOP, (f"{MID}@v1", ["torch-cpu"]), direct=True), entry(MID, (f"{TOP}@v1", ["torch-cpu"]))
    )
    assert kernel_tree(cycle) == [
        node(TOP, [], node(MID, ["torch-cpu"], node(TOP, ["torch-cpu"], repeated=True))),
    ]


def test_an_edge_from_a_kernel_that_is_not_locked_is_left_out() -> None:
    stray = lock_of(entry(TOP, direct=True), entry(LEAF, ("org/gone@v1", ["torch-cpu"])))
    assert kernel_tree(stray) == [node(TOP, [])]
    assert kernel_tree(stray, invert=True) == [node(LEAF, []), node(TOP, [])]


def test_a_redirected_kernel_is_shown_by_the_name_pyproject_uses() -> None:
    moved = lock_of(lock_entry("new-org/top", COMMIT[TOP], **{"redirected-from": TOP}))
    assert kernel_tree(moved) == [node(TOP, [])]
