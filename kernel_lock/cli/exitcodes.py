"""Exit codes: the one table mapping our error classes to them, and the error codes of other failures."""

from __future__ import annotations

from kernel_lock import errors

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_VERIFICATION = 4
EXIT_CODES: dict[type[errors.KernelLockError], int] = {
    errors.LockOutOfDate: EXIT_CHECK_FAILED,
    errors.LockMissing: EXIT_CHECK_FAILED,
    errors.ConfigError: 2,
    errors.LockfileError: 2,
    errors.ResolutionError: 2,
    errors.VariantError: 2,
    errors.MissingPythonDependency: 2,
    errors.HubError: 3,
    errors.VerificationError: EXIT_VERIFICATION,
}
# Error codes of failures that are not a KernelLockError.
USAGE, FILE_SYSTEM, INTERRUPTED, INTERNAL = "usage", "file-system", "interrupted", "internal"


def exit_code_for(exc: errors.KernelLockError) -> int:
    """The exit code of an error: that of its nearest class in `EXIT_CODES`."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 2
