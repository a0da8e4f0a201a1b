"""What to do about a failed Hub request: retry it, or give up with a kind of failure (`classify`).

The one classifier every request of `Hub` goes through: connection errors and 408/429/5xx are retried
with bounded backoff (`sleep_before_retry`, honouring `Retry-After`); the Hub's `X-Error-Code` names a
missing repo, revision or file; anything else is a malformed reply or a bug of ours.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 10.0


class StatusError(Exception):
    """An error status on a streamed answer, whose body is left unread (see `Hub.stream`)."""

    def __init__(self, response: Any) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


FailKind = Literal[
    "offline",
    "revision-not-found",
    "repo-not-found",
    "entry-not-found",
    "http-status",
    "unreachable",
    "malformed",
    "bug",
]


@dataclass(frozen=True)
class Fail:
    """Give up on a request: what kind of failure, its HTTP status and the Hub's request id, if any."""

    kind: FailKind
    status: int | None = None
    request_id: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Retry:
    """Try the request again (after the server's `Retry-After`, if any); `otherwise` when no attempt is left."""

    otherwise: Fail
    retry_after: str | None = None


_ERROR_CODES: dict[str, FailKind] = {
    "RevisionNotFound": "revision-not-found",
    "EntryNotFound": "entry-not-found",
    "RepoNotFound": "repo-not-found",
}


def classify(failure: BaseException | Any) -> Retry | Fail:
    """What to do about a failed request: a raised exception, or an answer with an error status.

    Connection-level errors and 408/429/5xx are retried; the Hub's `X-Error-Code` (or `huggingface_hub`'s
    class for it) names a missing repo, revision or file; a reply that does not parse is malformed; any
    other exception is a bug of ours and propagates.
    """
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(failure, StatusError):
        failure = failure.response
    if isinstance(failure, OfflineModeIsEnabled):
        return Fail("offline")
    if isinstance(failure, HfHubHTTPError):
        rid = failure.request_id
        for cls, kind in (
            (RevisionNotFoundError, "revision-not-found"),
            (RepositoryNotFoundError, "repo-not-found"),
            (EntryNotFoundError, "entry-not-found"),
        ):
            if isinstance(failure, cls):
                return Fail(kind, _status(getattr(failure, "response", None)), rid)  # type: ignore[arg-type]
        return _by_status(failure.response, rid)
    if isinstance(failure, BaseException):
        if isinstance(failure, _transport_errors()):
            return Retry(Fail("unreachable", detail=f"{type(failure).__name__}: {failure}"))
        if isinstance(failure, ValueError):
            return Fail("malformed", detail=f"{type(failure).__name__}: {failure}")
        return Fail("bug", detail=repr(failure))
    return _by_status(failure, request_id_of(failure))


def _by_status(response: Any, request_id: str | None) -> Retry | Fail:
    """Classify an error answer by its `X-Error-Code` and status."""
    status = _status(response)
    headers = response.headers if response is not None else {}
    code = headers.get("X-Error-Code") if headers else None
    if code in _ERROR_CODES:
        return Fail(_ERROR_CODES[code], status, request_id)
    if status in RETRY_STATUS:
        return Retry(Fail("http-status", status, request_id), headers.get("Retry-After") if headers else None)
    return Fail("http-status", status, request_id)


def _status(response: Any) -> int | None:
    return int(response.status_code) if response is not None else None


def request_id_of(response: Any) -> str | None:
    """The Hub's id of the request an answer belongs to (as `huggingface_hub` reads it)."""
    headers = response.headers
    value = headers.get("x-request-id") or headers.get("X-Amzn-Trace-Id") or headers.get("x-amz-cf-id")
    return str(value) if value else None


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the HTTP library `huggingface_hub` uses (httpx or httpx2)."""
    from huggingface_hub.utils import get_session

    httpx = sys.modules[type(get_session()).__module__.split(".")[0]]
    return (httpx.TransportError, httpx.DecodingError, httpx.TooManyRedirects)


def sleep_before_retry(attempt: int, retry_after: str | None) -> None:
    """Exponential backoff from 0.1 s, capped; a server's Retry-After wins (up to a bound)."""
    delay = min(0.1 * 2 ** (attempt - 1), 2.0)
    if retry_after:
        with contextlib.suppress(ValueError):
            delay = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
    time.sleep(delay)
