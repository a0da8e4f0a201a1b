"""Planning a lock run without I/O: what `LockRequest` keeps and pins, and the `DependencyGraph` it builds."""

from __future__ import annotations

from kernel_lock.core.lockfile import Lock, LockedKernel, RequiredBy
from kernel_lock.core.requirement import Dependency
from kernel_lock.lock.resolve import DependencyGraph, LockRequest, Pin, _Node, _plan

V1 = Dependency(version=1)
HASH = "sha256-" + "0" * 64


def entry(repo: str, commit: str = "a" * 40, **kw: object) -> LockedKernel:
    return LockedKernel(repo_id=repo, version=1, ref="v1", commit=commit, variants={"torch-cpu": HASH}, **kw)  # type: ignore[arg-type]


def test_pins_by_requirement_win_over_pins_by_repo() -> None:
    request = LockRequest(pins={Pin("org/a"): "b" * 40, Pin.of("org/a", V1): "c" * 40})
    assert request.pin("org/a", V1) == "c" * 40
    assert request.pin("org/a", Dependency(version=2)) == "b" * 40
    assert request.pin("org/other", V1) is None


def test_keeps_unless_upgraded_retyped_or_no_longer_trusted() -> None:
    old = entry("org/a")
    assert LockRequest().keeps(old, "org/a", V1, set())
    assert not LockRequest().keeps(None, "org/a", V1, set())
    assert not LockRequest(upgrade_all=True).keeps(old, "org/a", V1, set())
    assert not LockRequest(upgrade=frozenset({"org/a"})).keeps(old, "org/a", V1, set())
    assert LockRequest(upgrade=frozenset({"org/b"})).keeps(old, "org/a", V1, set())
    assert not LockRequest(hash_type="git_lfs_concat").keeps(old, "org/a", V1, set())
    untrusted = entry("org/a", trust="trust-remote-code")
    assert not LockRequest().keeps(untrusted, "org/a", V1, set())
    assert LockRequest().keeps(untrusted, "org/a", V1, {"org/a"})


def test_plan_splits_kept_from_fresh_and_reads_kept_edges_back() -> None:
    parent = entry("org/a")
    child = entry("org/b", direct=False, required_by=[RequiredBy(kernel="org/a@v1", variants=["torch-cpu"])])
    previous = Lock(kernel=[parent, child])
    wanted = {"org/a@v1": ("org/a", V1, None), "org/c@v1": ("org/c", V1, None)}
    kept, fresh = _plan(wanted, previous.by_key(), previous, LockRequest(), set())
    assert list(kept) == ["org/a@v1"] and list(fresh) == ["org/c@v1"]
    assert kept["org/a@v1"].needs == {"torch-cpu": [("org/b", child.requirement())]}


def test_graph_wanted_required_by_and_cycles() -> None:
    graph = DependencyGraph(
        {
            "org/a@v1": _Node(
                entry("org/a"), {"torch-cpu": [("org/b", V1)], "torch-universal": [("org/b", V1)]}
            ),
            "org/b@v1": _Node(entry("org/b"), {"torch-cpu": [("org/c", V1)]}),
        }
    )
    assert graph.wanted() == {"org/c@v1": ("org/c", V1, "org/b@v1")}
    assert graph.required_by()["org/b@v1"] == {"org/a@v1": {"torch-cpu", "torch-universal"}}
    assert graph.cycles() == []
    graph.nodes["org/c@v1"] = _Node(entry("org/c"), {"torch-cpu": [("org/a", V1)]})
    assert graph.cycles() == [["org/a@v1", "org/b@v1", "org/c@v1", "org/a@v1"]]
