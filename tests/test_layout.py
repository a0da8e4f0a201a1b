"""The package's shape as tests, read from the source (ast): stages, arrows, circles, sizes.

The stages run core < project < hub < lock < cache < load < enforcement, inspect < cli; each subpackage's
`__init__` docstring says, in a sentence beginning "May import", which earlier stages it uses, and its
modules import nothing else of kernel-lock but `kernel_lock.errors`, `kernel_lock.env` and
`kernel_lock.__version__`. `kernel_lock.testing` may import what it needs, and nothing imports it. Imports
under `if TYPE_CHECKING:` do not run, so they do not count; function-level imports do. Each rule is
also checked against a copy of the package with a violation planted in it, so a checker that sees
nothing cannot pass.
"""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import kernel_lock

PACKAGE = Path(kernel_lock.__file__).parent

STAGES = ("core", "project", "hub", "lock", "cache", "load", "enforcement", "inspect", "cli")
"""In order: a stage may import only stages before it (`enforcement` and `inspect` are side by side)."""
SIDE_BY_SIDE = {frozenset({"enforcement", "inspect"})}
SHARED = {"kernel_lock.errors", "kernel_lock.env"}
"""Top-level modules every module may import (and `__version__` of the package itself)."""
TESTING = "testing"
RUN_AS_SCRIPT = {"kernel_lock.enforcement.site.sitecustomize"}
"""Put on `PYTHONPATH` and run as the top-level `sitecustomize`: an entry point like `kernel_lock.autoenforce`."""
MAX_TOP_LEVEL_MODULES = 15
MAX_LINES = 500


@dataclass(frozen=True)
class Import:
    """One run-time import of a kernel-lock module: who imports what, and where."""

    importer: str
    imported: str
    names: tuple[str, ...]
    line: int


def modules(package: Path) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts).removesuffix(".__init__")] = path
    return found


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_in(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of a module that run: all but those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            yield from (n for body in node.orelse for n in _imports_in_node(body))
            continue
        yield from _imports_in_node(node)


def _imports_in_node(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _imports_in(node)


def imports(package: Path) -> list[Import]:
    """Every run-time import of one of the package's modules by another, resolved to the module imported."""
    known = modules(package)
    root = package.name
    found = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in _imports_in(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[tuple[str, tuple[str, ...]]]
            if isinstance(node, ast.Import):
                targets = [(a.name, ()) for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [
                    (f"{base}.{a.name}", ()) if f"{base}.{a.name}" in known else (base, (a.name,))
                    for a in node.names
                ]
            for target, names in targets:
                if target == root or target.startswith(root + "."):
                    while target not in known:
                        target = target.rpartition(".")[0]
                    if target != name:
                        found.append(Import(name, target, names, node.lineno))
    return found


def stage_of(module: str) -> str | None:
    """The subpackage a module belongs to (None for a top-level module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in (*STAGES, TESTING) else None


def allowed_by_docstring(init: Path) -> set[str]:
    """The stages named in the `__init__` docstring's sentence beginning "May import"."""
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    sentence = re.search(r"May import(.*?)\.(?=\s|$)", doc, re.DOTALL)
    assert sentence is not None, f"{init} does not say what it may import (a sentence beginning 'May import')"
    return {word for word in re.findall(r"`([\w.]+)`", sentence.group(1)) if word in STAGES}


def earlier(stage: str) -> set[str]:
    """The stages before `stage` in the order."""
    at = STAGES.index(stage)
    return {s for s in STAGES[:at] if frozenset({s, stage}) not in SIDE_BY_SIDE}


def arrow_problems(package: Path) -> list[str]:
    """Imports a stage's docstring does not allow, imports of `testing`, and docstrings that allow a later stage."""
    problems = []
    allowed = {stage: allowed_by_docstring(package / stage / "__init__.py") for stage in STAGES}
    for stage, stages in allowed.items():
        problems += [
            f"{stage}/__init__.py allows {s}, which comes later" for s in sorted(stages - earlier(stage))
        ]
    for imp in imports(package):
        source, target = stage_of(imp.importer), stage_of(imp.imported)
        where = f"{imp.importer} (line {imp.line}) imports {imp.imported}"
        if target == TESTING and source != TESTING:
            problems.append(f"{where}: nothing may import the testing package")
        elif source in (None, TESTING, target) or imp.imported in SHARED or imp.importer in RUN_AS_SCRIPT:
            continue
        elif imp.imported == package.name:
            if set(imp.names) - {"__version__", "env", "errors"}:
                problems.append(f"{where}: only __version__, env and errors of the top level may be imported")
        elif target is None:
            problems.append(f"{where}: only {', '.join(sorted(SHARED))} of the top level may be imported")
        elif target not in allowed[source]:
            problems.append(f"{where}: {source}/__init__.py does not allow {target}")
    return problems


def circles(package: Path) -> list[list[str]]:
    """The import circles among run-time imports (strongly connected groups of more than one module)."""
    graph: dict[str, set[str]] = {name: set() for name in modules(package)}
    for imp in imports(package):
        graph[imp.importer].add(imp.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def size_problems(package: Path) -> list[str]:
    """Modules over `MAX_LINES` lines, and more than `MAX_TOP_LEVEL_MODULES` modules at the top."""
    problems = []
    for name, path in modules(package).items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            problems.append(f"{name} has {lines} lines (at most {MAX_LINES})")
    top = sorted(p.name for p in package.glob("*.py"))
    if len(top) > MAX_TOP_LEVEL_MODULES:
        problems.append(f"{len(top)} modules at the top (at most {MAX_TOP_LEVEL_MODULES}): {', '.join(top)}")
    return problems


def test_every_arrow_runs_to_a_stage_its_docstring_allows() -> None:
    assert arrow_problems(PACKAGE) == []


def test_no_import_circle() -> None:
    assert circles(PACKAGE) == []


def test_no_module_too_large_and_few_at_the_top() -> None:
    assert size_problems(PACKAGE) == []


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A copy of the package to plant violations in."""
    copy = tmp_path / PACKAGE.name
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


@pytest.mark.parametrize(
    ("module", "text", "expected"),
    [
        (
            "core/hashing.py",
            "\nfrom kernel_lock.lock import resolve\n",
            "core/__init__.py does not allow lock",
        ),
        (
            "core/hashing.py",
            "\n\ndef later() -> None:\n    import kernel_lock.cache.sync\n",
            "core/__init__.py does not allow cache",
        ),
        (
            "load/locked.py",
            "\nfrom kernel_lock.hub.client import Hub\n",
            "load/__init__.py does not allow hub",
        ),
        (
            "hub/client.py",
            "\nfrom kernel_lock.testing import LocalHub\n",
            "nothing may import the testing package",
        ),
        ("project/paths.py", "\nfrom kernel_lock import build\n", "of the top level may be imported"),
        ("project/paths.py", "\nfrom kernel_lock import get_kernel\n", "only __version__, env and errors"),
    ],
)
def test_an_arrow_back_up_is_found(planted: Path, module: str, text: str, expected: str) -> None:
    _append(planted / module, text)
    problems = arrow_problems(planted)
    assert len(problems) == 1 and expected in problems[0], problems


def test_a_docstring_that_allows_a_later_stage_is_found(planted: Path) -> None:
    init = planted / "hub" / "__init__.py"
    init.write_text(init.read_text(encoding="utf-8").replace("May import `core`", "May import `core`, `cli`"))
    assert arrow_problems(planted) == ["hub/__init__.py allows cli, which comes later"]


def test_an_import_only_for_type_checking_is_no_arrow(planted: Path) -> None:
    _append(
        planted / "core" / "hashing.py",
        "\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from kernel_lock.cli.reports import LockReport\n",
    )
    assert arrow_problems(planted) == []


def test_a_circle_is_found(planted: Path) -> None:
    _append(
        planted / "core" / "fsutil.py", "\n\ndef later() -> None:\n    from kernel_lock.core import hashing\n"
    )
    _append(planted / "core" / "hashing.py", "\nfrom kernel_lock.core import fsutil\n")
    assert circles(planted) == [["kernel_lock.core.fsutil", "kernel_lock.core.hashing"]]


def test_a_large_module_and_a_crowded_top_are_found(planted: Path) -> None:
    _append(planted / "core" / "hashing.py", "\n" * MAX_LINES)
    top = len(list(planted.glob("*.py")))
    for n in range(MAX_TOP_LEVEL_MODULES + 1 - top):
        (planted / f"extra{n}.py").write_text('"""Planted."""\n')
    problems = size_problems(planted)
    assert [p.split(" ")[0] for p in problems] == ["kernel_lock.core.hashing", str(MAX_TOP_LEVEL_MODULES + 1)]
