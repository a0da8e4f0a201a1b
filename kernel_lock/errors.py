"""Exception types of kernel-lock: one base class, one subclass per kind of failure.

The CLI maps each class to an exit code in one place (`kernel_lock.cli`); the
Python API raises them as they are. Every message is one paragraph that says
what went wrong, where, and how to fix it.
"""

from __future__ import annotations


class KernelLockError(Exception):
    """Base class of every error kernel-lock raises on purpose."""


class ConfigError(KernelLockError):
    """`pyproject.toml` or its `[tool.kernels]` table is missing or malformed."""


class LockfileError(KernelLockError):
    """`kernels.lock` is missing, unreadable or malformed."""


class LockOutOfDate(KernelLockError):
    """The lock does not match `pyproject.toml` (`lock --check`, `sync` without `--frozen`)."""


class ResolutionError(KernelLockError):
    """A requirement cannot be resolved: unknown repo, missing version, wrong repo type."""


class VariantError(KernelLockError):
    """A target is malformed, or no build variant fits it."""


class MissingPythonDependency(KernelLockError):
    """A kernel variant needs Python packages that are not installed in this environment."""


class HubError(KernelLockError):
    """The Hub (or mirror) is unreachable, failed, or served something inconsistent."""


class VerificationError(KernelLockError):
    """Files on disk do not match the lock: changed, missing, extra, or not synced."""


class NotSyncedError(VerificationError):
    """The locked variant has not been synced (or not verified) into the cache."""


class NotLockedError(LockfileError):
    """Under enforcement, the `kernels` library asked for a kernel (repo and version/revision) the lock does not hold."""


class UnsupportedKernelsVersion(KernelLockError):
    """Enforcement cannot hook this version of the `kernels` library (it knows the hooks of 0.17.x)."""
