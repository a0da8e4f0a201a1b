"""The TOML reader: the standard library's `tomllib` on Python 3.11+, `tomli` (the same code) on 3.10.

`loads` reads a leading UTF-8 byte order mark (editors on Windows write one) and turns the parser's
`RecursionError` on arrays or tables nested hundreds deep into a `TOMLDecodeError`, so hostile input is
one more syntax error for the caller, never a crash.
"""

import sys
from typing import Any

if sys.version_info >= (3, 11):
    from tomllib import TOMLDecodeError, load
    from tomllib import loads as _loads
else:  # pragma: no cover - exercised on Python 3.10 only
    from tomli import TOMLDecodeError, load
    from tomli import loads as _loads

__all__ = ["NestedTooDeeply", "TOMLDecodeError", "load", "loads"]


class NestedTooDeeply(TOMLDecodeError):
    """TOML whose arrays or inline tables nest deeper than the parser can follow."""

    def __init__(self) -> None:
        ValueError.__init__(self, "arrays or inline tables nested too deeply to read")


def loads(text: str) -> dict[str, Any]:
    """Parse TOML text (a leading byte order mark allowed); any failure is a `TOMLDecodeError`."""
    try:
        return _loads(text.removeprefix("\ufeff"))
    except RecursionError:
        raise NestedTooDeeply() from None
