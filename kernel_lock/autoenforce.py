"""Enforcement switched on by the environment alone, at interpreter start-up.

Two ways in, both cheap when the variables are unset: the `sitecustomize` that
`kernel-lock run` puts on `PYTHONPATH`, and the `kernel_lock-enforce.pth` file
the package installs into site-packages, so an image that sets
`KERNEL_LOCK_ENFORCE=1` (with `KERNEL_LOCK_FILE`) is enforced without `run`.
"""

from __future__ import annotations

import os
import sys


def activate() -> None:
    """Turn on recording or enforcement as the environment asks; a process that cannot start it exits 2."""
    try:
        from kernel_lock.enforcement import activate_from_environment

        activate_from_environment()
    except Exception as exc:
        sys.stderr.write(f"error: kernel-lock could not turn on kernels enforcement: {exc}\n")
        sys.stderr.flush()
        os._exit(2)
