"""Kernels that depend on kernels, Python requirements of a variant, and publisher trust."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kernel_lock.core.cache_layout import variant_dir
from kernel_lock.core.lockfile import read_lock
from kernel_lock.errors import MissingPythonDependency, VerificationError
from kernel_lock.load.locked import get_kernel
from kernel_lock.testing import LocalHub

VARIANT = "torch-cpu"
KERNEL_MODULES = ("_transitive_",)


def kernel(
    name: str, *, depends: list[tuple[str, int]] = (), python: list[str] = (), version: int = 1
) -> dict[str, bytes]:
    """A tiny pure-Python kernel whose import fetches its dependencies through get_kernel_dep."""
    module = name.split("/")[1].replace("-", "_")
    metadata = {
        "id": f"_transitive_{module}_v{version}",
        "name": module,
        "version": version,
        "license": "Apache-2.0",
        "backend": {"type": "cpu"},
        "python-depends": list(python),
        "kernel-depends": [{"repo-id": r, "version": v} for r, v in depends],
    }
    lines = [
        "from kernel_lock import get_kernel_dep",
        f"NAME = {name!r}",
        f"VERSION = {version}",
        "DEPS = {}",
    ]
    lines += [f"DEPS[{r!r}] = get_kernel_dep({r!r})" for r, _ in depends]
    lines += ["import builtins", "builtins.__dict__.setdefault('kernel_lock_import_order', []).append(NAME)"]
    return {
        f"build/{VARIANT}/metadata.json": json.dumps(metadata).encode(),
        f"build/{VARIANT}/__init__.py": ("\n".join(lines) + "\n").encode(),
    }


def publish(hub: LocalHub, name: str, **kw) -> str:
    repo = hub.create_repo(name) if name not in getattr(hub, "_published", set()) else hub.repo(name)
    hub.__dict__.setdefault("_published", set()).add(name)
    version = kw.get("version", 1)
    sha = repo.commit(kernel(name, **kw), branch=f"v{version}", message=f"{name} v{version}")
    if version == 1:
        repo.create_branch("main", sha, force=True)
    return sha


@pytest.fixture(autouse=True)
def no_import_order() -> None:
    """Each test records the order its kernels are imported in afresh (see `kernel()`)."""
    import builtins

    builtins.__dict__.pop("kernel_lock_import_order", None)


@pytest.fixture
def org(hub_env) -> LocalHub:
    hub_env.set_organization("chain-org", trusted_kernel_publisher=True)
    return hub_env


def lock_and_sync(cli, root: Path) -> None:
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    run = cli("sync", "--project", str(root))
    assert run.exit_code == 0, run.stderr


def test_three_level_chain_locks_syncs_and_loads_dependencies_first(
    org, make_project, cli, monkeypatch
) -> None:
    publish(org, "chain-org/c")
    publish(org, "chain-org/b", depends=[("chain-org/c", 1)])
    publish(org, "chain-org/a", depends=[("chain-org/b", 1)])
    root = make_project('"chain-org/a" = 1')
    lock_and_sync(cli, root)
    lock = read_lock(root / "kernels.lock")
    by_key = lock.by_key()
    assert set(by_key) == {"chain-org/a@v1", "chain-org/b@v1", "chain-org/c@v1"}
    assert [k.direct for k in lock.kernel] == [True, False, False]
    assert [(r.kernel, r.variants) for r in by_key["chain-org/c@v1"].required_by] == [
        ("chain-org/b@v1", [VARIANT])
    ]
    assert cli("lock", "--check", "--project", str(root)).exit_code == 0

    org.clear_log()
    org.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = get_kernel("chain-org/a", lockfile=root / "kernels.lock")
    import builtins

    assert builtins.kernel_lock_import_order == ["chain-org/c", "chain-org/b", "chain-org/a"]
    assert a.DEPS["chain-org/b"].DEPS["chain-org/c"].NAME == "chain-org/c"
    assert org.requests == []


def test_tampering_in_a_transitive_kernel_is_refused(org, make_project, cli) -> None:
    publish(org, "chain-org/c")
    publish(org, "chain-org/b", depends=[("chain-org/c", 1)])
    publish(org, "chain-org/a", depends=[("chain-org/b", 1)])
    root = make_project('"chain-org/a" = 1')
    lock_and_sync(cli, root)
    c = read_lock(root / "kernels.lock").by_key()["chain-org/c@v1"]
    with open(variant_dir(c.repo_id, c.commit, VARIANT) / "__init__.py", "ab") as f:
        f.write(b"raise SystemExit('tampered')\n")
    with pytest.raises(
        VerificationError, match=r"chain-org/c variant torch-cpu .*__init__\.py: content changed"
    ):
        get_kernel("chain-org/a", lockfile=root / "kernels.lock")
    assert not [n for n in sys.modules if n.startswith(KERNEL_MODULES)]
    assert cli("verify", "--project", str(root)).exit_code == 4


def test_diamond_locks_the_shared_kernel_once(org, make_project, cli) -> None:
    publish(org, "chain-org/shared")
    publish(org, "chain-org/left", depends=[("chain-org/shared", 1)])
    publish(org, "chain-org/right", depends=[("chain-org/shared", 1)])
    root = make_project('"chain-org/left" = 1', '"chain-org/right" = 1')
    lock_and_sync(cli, root)
    shared = read_lock(root / "kernels.lock").by_key()["chain-org/shared@v1"]
    assert {r.kernel for r in shared.required_by} == {"chain-org/left@v1", "chain-org/right@v1"}
    left = get_kernel("chain-org/left", lockfile=root / "kernels.lock")
    right = get_kernel("chain-org/right", lockfile=root / "kernels.lock")
    assert left.DEPS["chain-org/shared"] is right.DEPS["chain-org/shared"]


def test_cycle_is_an_error_naming_it(org, make_project, cli) -> None:
    publish(org, "chain-org/x", depends=[("chain-org/y", 1)])
    publish(org, "chain-org/y", depends=[("chain-org/x", 1)])
    root = make_project('"chain-org/x" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 2
    assert "Kernel dependency cycle: chain-org/x@v1 -> chain-org/y@v1 -> chain-org/x@v1" in run.stderr
    assert not (root / "kernels.lock").exists()


def test_two_major_versions_are_both_locked_and_loaded(org, make_project, cli) -> None:
    publish(org, "chain-org/q")
    publish(org, "chain-org/q", version=2)
    publish(org, "chain-org/p1", depends=[("chain-org/q", 1)])
    publish(org, "chain-org/p2", depends=[("chain-org/q", 2)])
    root = make_project('"chain-org/p1" = 1', '"chain-org/p2" = 1')
    lock_and_sync(cli, root)
    keys = set(read_lock(root / "kernels.lock").by_key())
    assert {"chain-org/q@v1", "chain-org/q@v2"} <= keys
    p1 = get_kernel("chain-org/p1", lockfile=root / "kernels.lock")
    p2 = get_kernel("chain-org/p2", lockfile=root / "kernels.lock")
    assert (p1.DEPS["chain-org/q"].VERSION, p2.DEPS["chain-org/q"].VERSION) == (1, 2)


def test_impossible_version_conflict_says_who_asked_for_what(org, make_project, cli) -> None:
    publish(org, "chain-org/q")
    publish(org, "chain-org/q", version=2)
    publish(org, "chain-org/greedy", depends=[("chain-org/q", 1), ("chain-org/q", 2)])
    root = make_project('"chain-org/greedy" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 2
    assert (
        "chain-org/greedy variant torch-cpu asks for chain-org/q twice, at version 1 and version 2"
        in run.stderr
    )


def test_untrusted_publisher_refused_then_accepted_with_the_opt_in(hub_env, make_project, cli) -> None:
    root = make_project('"my-org/untrusted-kernel" = 1')
    run = cli("lock", "--project", str(root))
    assert (
        run.exit_code == 2
        and "not a trusted kernel publisher" in run.stderr
        and "trust-remote-code = true" in run.stderr
    )
    make_project('"my-org/untrusted-kernel" = { version = 1, trust-remote-code = true }')
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert read_lock(root / "kernels.lock").find("my-org/untrusted-kernel").trust == "trust-remote-code"
    make_project('"my-org/untrusted-kernel" = 1')
    check = cli("lock", "--check", "--project", str(root))
    assert check.exit_code == 1 and "no longer grants" in check.stderr


def test_untrusted_transitive_kernel_needs_the_named_opt_in(hub_env, make_project, cli) -> None:
    hub_env.set_organization("chain-org", trusted_kernel_publisher=True)
    hub_env.set_organization("shady-org", trusted_kernel_publisher=False)
    publish(hub_env, "shady-org/dep")
    publish(hub_env, "chain-org/top", depends=[("shady-org/dep", 1)])
    root = make_project('"chain-org/top" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 2
    assert "shady-org/dep (required by chain-org/top@v1)" in run.stderr
    assert 'trust-remote-code = ["shady-org/dep"]' in run.stderr
    text = (
        (root / "pyproject.toml")
        .read_text()
        .replace(
            "[tool.kernels.dependencies]",
            '[tool.kernels]\ntrust-remote-code = ["shady-org/dep"]\n\n[tool.kernels.dependencies]',
        )
    )
    (root / "pyproject.toml").write_text(text)
    lock_and_sync(cli, root)
    assert read_lock(root / "kernels.lock").by_key()["shady-org/dep@v1"].trust == "trust-remote-code"


def test_python_depends_are_checked(org, make_project, cli) -> None:
    publish(org, "chain-org/needy", python=["definitely-not-installed-pkg", "click>=8"])
    root = make_project('"chain-org/needy" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    run = cli("sync", "--project", str(root))
    assert (
        run.exit_code == 0
        and "definitely-not-installed-pkg" in run.stderr
        and "click" not in run.stderr.split("here:")[1]
    )
    with pytest.raises(MissingPythonDependency, match="definitely-not-installed-pkg"):
        get_kernel("chain-org/needy", lockfile=root / "kernels.lock")
