"""The import graph: every module imports on its own, and fast paths leave the heavy libraries unimported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kernel_lock

PACKAGE = Path(kernel_lock.__file__).parent
HEAVY = ("pydantic", "huggingface_hub", "torch", "kernels", "transformers", "sigstore")
HTTP_CLIENTS = ("huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3")


def _modules() -> list[str]:
    """Every module of the package, by dotted name (the `-m` entry point aside)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _imported_after(code: str, roots: tuple[str, ...], **env: str) -> list[str]:
    """Run `code` in a fresh interpreter; the top-level packages among `roots` it left in `sys.modules`."""
    report = (
        "\nimport json as _json, sys as _sys\n"
        f"print(_json.dumps(sorted({{m.split('.')[0] for m in _sys.modules}} & {set(roots)!r})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code + report],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.splitlines()[-1]))


def test_the_module_list_is_the_package() -> None:
    modules = _modules()
    assert {"kernel_lock", "kernel_lock.cli", "kernel_lock.env", "kernel_lock.testing.server"} <= set(modules)
    assert len(modules) == len([p for p in PACKAGE.rglob("*.py") if p.stem != "__main__"])


@pytest.mark.parametrize("module", _modules())
def test_each_module_imports_on_its_own(module: str) -> None:
    """A fresh interpreter imports the module alone: an import cycle fails here with a partial module."""
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"`import {module}` alone failed:\n{proc.stderr}"


def test_help_imports_no_heavy_library() -> None:
    code = (
        "from kernel_lock.cli import main\n"
        "for args in (['--help'], *([name, '--help'] for name in main.commands)):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, (args, exit.code)\n"
    )
    assert _imported_after(code, HEAVY) == []


def test_an_up_to_date_lock_imports_no_http_client(hub_env, make_project, cli) -> None:
    root = make_project('"kernels-community/relu" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    hub_env.clear_log()
    code = (
        "from kernel_lock.cli import main\n"
        "try:\n"
        f"    main(['lock', '--project', {str(root)!r}])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
    )
    assert _imported_after(code, HTTP_CLIENTS) == []
    assert hub_env.requests == []
    # the same lock with a changed requirement does reach the Hub, through those clients
    make_project('"kernels-community/relu" = 2')
    assert "huggingface_hub" in _imported_after(code, HTTP_CLIENTS)
    assert hub_env.requests != []


def test_run_checks_the_lock_it_wrote_without_pydantic(hub_env, make_project, cli) -> None:
    """`kernel-lock run` starts every command: with a lock as kernel-lock writes it, it imports no heavy library."""
    root = make_project('"kernels-community/relu" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "kernel_lock",
            "run",
            "--project",
            str(root),
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "kernel_lock" in imported
    assert not imported & set(HEAVY)


def test_the_public_api_is_pinned_and_typed() -> None:
    """`__all__` is the API users import; each name resolves lazily, shows in `dir()`, and mypy sees it typed."""
    import kernel_lock

    assert kernel_lock.__all__ == [
        "KernelLockError",
        "LockedLayerRepository",
        "__version__",
        "check_lock",
        "check_variant",
        "detect_target",
        "enforce",
        "enforced",
        "get_kernel",
        "get_kernel_dep",
        "load_project",
        "lock_project",
        "parse_target",
        "read_lock",
        "sync_project",
    ]
    assert set(kernel_lock.__all__) - {"__version__"} == set(kernel_lock._EXPORTS)
    assert set(kernel_lock.__all__) <= set(dir(kernel_lock))
    source = Path(kernel_lock.__file__).read_text(encoding="utf-8")
    for name in kernel_lock._EXPORTS:
        assert callable(getattr(kernel_lock, name))
        assert re.search(rf"^    from kernel_lock(\.\w+)+ import .*\b{name}\b", source, re.M), (
            f"{name}: no typed import"
        )


def test_a_kernel_without_python_depends_costs_no_metadata_lookup() -> None:
    """`importlib.metadata` (about 25 ms in a fresh process) is imported only to look up a kernel's needs."""
    script = (
        "import sys\n"
        "from kernel_lock.core.pydeps import missing\n"
        "for name in [m for m in sys.modules if m == 'importlib.metadata' or m.startswith('importlib.metadata.')]:\n"
        "    del sys.modules[name]\n"
        "assert missing([]) == []\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False"]
