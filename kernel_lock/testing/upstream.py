"""Where the installed `kernels` release keeps a module: `kernels.X` (0.17, 0.18) or `kernels._internals.X` (0.19).

Tests that reach into `kernels` (its layer cache, its loaded-kernel registry,
its CLI) go through these, so one test runs against every supported release.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

KERNELS_CLI = (
    "import importlib, importlib.util, sys; "
    "cli = 'kernels._internals.cli' if importlib.util.find_spec('kernels._internals') else 'kernels.cli'; "
    "sys.argv[0] = 'kernels'; sys.exit(importlib.import_module(cli).main())"
)
"""A `python -c` program that runs the installed `kernels` CLI, wherever its release keeps it."""


def kernels_module_name(name: str) -> str:
    """The full name of `kernels`' module `name` (e.g. `layer.layer`) in the installed release."""
    import importlib.util

    internal = importlib.util.find_spec("kernels._internals") is not None
    return f"kernels._internals.{name}" if internal else f"kernels.{name}"


def kernels_module(name: str) -> ModuleType:
    """`kernels`' module `name` (e.g. `importer`), imported, wherever the installed release keeps it."""
    return importlib.import_module(kernels_module_name(name))


def loaded_kernels_module(name: str) -> ModuleType | None:
    """`kernels`' module `name` if it is imported already (else None): for clean-ups that must not import it."""
    return sys.modules.get(f"kernels._internals.{name}") or sys.modules.get(f"kernels.{name}")
