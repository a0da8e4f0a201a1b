"""`kernel-lock tree`: the locked kernel dependency tree (or, inverted, who requires each kernel), from the lock."""

from __future__ import annotations

from dataclasses import dataclass

from kernel_lock.core.lockfile import Lock


@dataclass(frozen=True)
class TreeNode:
    """A locked kernel with the kernels it requires (or, inverted, that require it)."""

    repo_id: str
    key: str  # `repo@vN` or `repo@rev:REVISION`
    commit: str
    variants: list[str]  # variants of the parent this edge is for (empty for a root)
    children: list[TreeNode]
    repeated: bool  # shown in full elsewhere in the tree (or a cycle)


def kernel_tree(lock: Lock, *, invert: bool = False) -> list[TreeNode]:
    """Roots with their subtrees: the direct kernels and what they require, or every kernel and its requirers.

    A kernel already shown in full is shown again without children and marked `repeated` (as uv does).
    """
    by_key = lock.by_key()
    edges: dict[str, list[tuple[str, list[str]]]] = {key: [] for key in by_key}
    for entry in lock.kernel:
        for edge in entry.required_by:
            if invert:
                edges[entry.key].append((edge.kernel, sorted(edge.variants)))
            elif edge.kernel in edges:
                edges[edge.kernel].append((entry.key, sorted(edge.variants)))
    shown: set[str] = set()

    def node(key: str, variants: list[str], path: tuple[str, ...]) -> TreeNode:
        entry = by_key[key]
        repeated = key in path or (bool(path) and key in shown)
        shown.add(key)
        children = (
            []
            if repeated
            else [node(child, v, (*path, key)) for child, v in sorted(edges[key]) if child in by_key]
        )
        return TreeNode(
            repo_id=entry.requested_repo,
            key=key,
            commit=entry.commit,
            variants=variants,
            children=children,
            repeated=repeated,
        )

    roots = sorted(by_key) if invert else sorted(k for k, e in by_key.items() if e.direct)
    return [node(key, [], ()) for key in roots]


def render_tree(roots: list[TreeNode]) -> list[str]:
    """Lines as `uv tree` draws them; `(*)` marks a kernel shown in full above."""
    lines: list[str] = []

    def walk(n: TreeNode, prefix: str, last: bool, top: bool) -> None:
        requirement = n.key.rsplit("@", 1)[1].removeprefix("rev:")
        text = f"{n.repo_id} {requirement} ({n.commit[:7]})"
        if n.variants:
            shown = ", ".join(n.variants[:2]) + (f", +{len(n.variants) - 2}" if len(n.variants) > 2 else "")
            text += f" [variants: {shown}]"
        if n.repeated:
            text += " (*)"
        lines.append(text if top else f"{prefix}{'└── ' if last else '├── '}{text}")
        inner = "" if top else prefix + ("    " if last else "│   ")
        for i, child in enumerate(n.children):
            walk(child, inner, i == len(n.children) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return lines
