"""The one classifier of failed Hub requests: (exception | error answer) -> retry | give up (kind), as a table.

Every row is a real object of the HTTP stack (`huggingface_hub`'s errors raised by `hf_raise_for_status` on a
real response, the HTTP library's own exceptions), not a stand-in.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from huggingface_hub.errors import OfflineModeIsEnabled
from huggingface_hub.utils import get_session, hf_raise_for_status

from kernel_lock.errors import HubError, MalformedReply, ResolutionError
from kernel_lock.hub._classify import Fail, Retry, StatusError, classify
from kernel_lock.hub.client import Hub

httpx: Any = sys.modules[type(get_session()).__module__.split(".")[0]]
REQUEST = httpx.Request("GET", "http://127.0.0.1:9/api/kernels/org/name/refs")


def answer(status: int, **headers: str) -> Any:
    return httpx.Response(status, headers=headers, request=REQUEST)


def raised(status: int, **headers: str) -> BaseException:
    """What `hf_raise_for_status` raises for this answer."""
    try:
        hf_raise_for_status(answer(status, **headers))
    except Exception as exc:
        return exc
    raise AssertionError(f"HTTP {status} raised nothing")


ROWS: list[tuple[str, Any, Retry | Fail]] = [
    (
        "503 + Retry-After",
        raised(503, **{"Retry-After": "3", "X-Request-Id": "r1"}),
        Retry(Fail("http-status", 503, "r1"), "3"),
    ),
    ("429", raised(429), Retry(Fail("http-status", 429))),
    ("500", raised(500), Retry(Fail("http-status", 500))),
    ("408", raised(408), Retry(Fail("http-status", 408))),
    ("403", raised(403, **{"X-Request-Id": "r2"}), Fail("http-status", 403, "r2")),
    ("400", raised(400), Fail("http-status", 400)),
    (
        "RevisionNotFound",
        raised(404, **{"X-Error-Code": "RevisionNotFound"}),
        Fail("revision-not-found", 404),
    ),
    ("EntryNotFound", raised(404, **{"X-Error-Code": "EntryNotFound"}), Fail("entry-not-found", 404)),
    ("RepoNotFound", raised(401, **{"X-Error-Code": "RepoNotFound"}), Fail("repo-not-found", 401)),
    (
        "streamed 502",
        StatusError(answer(502, **{"X-Request-Id": "r3"})),
        Retry(Fail("http-status", 502, "r3")),
    ),
    (
        "streamed EntryNotFound",
        StatusError(answer(404, **{"X-Error-Code": "EntryNotFound"})),
        Fail("entry-not-found", 404),
    ),
    ("streamed 404 from a CDN", StatusError(answer(404)), Fail("http-status", 404)),
    ("streamed 418", answer(418), Fail("http-status", 418)),
    ("offline", OfflineModeIsEnabled("offline"), Fail("offline")),
    ("bug", KeyError("x"), Fail("bug", detail="KeyError('x')")),
]
TRANSPORT = [
    httpx.ConnectError("refused", request=REQUEST),
    httpx.ReadTimeout("slow", request=REQUEST),
    httpx.RemoteProtocolError("peer closed", request=REQUEST),
    httpx.TooManyRedirects("loop", request=REQUEST),
    httpx.UnsupportedProtocol("file://", request=REQUEST),
]


@pytest.mark.parametrize(("failure", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_classify(failure: Any, expected: Retry | Fail) -> None:
    assert classify(failure) == expected


@pytest.mark.parametrize("failure", TRANSPORT, ids=lambda e: type(e).__name__)
def test_transport_failures_are_retried_then_unreachable(failure: BaseException) -> None:
    decision = classify(failure)
    assert isinstance(decision, Retry) and decision.otherwise.kind == "unreachable"
    assert type(failure).__name__ in decision.otherwise.detail


def test_a_body_that_is_not_json_is_malformed() -> None:
    with pytest.raises(json.JSONDecodeError) as raised_by_json:
        answer(200).json()
    exc = raised_by_json.value
    assert classify(exc) == Fail("malformed", detail=f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize(
    ("failure", "error", "says"),
    [
        (raised(503, **{"X-Request-Id": "r9"}), HubError, "(HTTP 503) after 1 attempt(s) (request id r9)"),
        (raised(404, **{"X-Error-Code": "RevisionNotFound", "X-Request-Id": "r8"}), ResolutionError, "r8"),
        (ValueError("Expecting value"), MalformedReply, "malformed reply"),
        (httpx.ConnectError("refused", request=REQUEST), HubError, "Cannot reach the Hub"),
    ],
    ids=["503", "revision", "malformed", "unreachable"],
)
def test_hub_call_turns_each_kind_into_our_error_with_the_request_id(
    failure: BaseException, error: type[Exception], says: str
) -> None:
    def fail() -> None:
        raise failure

    with pytest.raises(error) as caught:
        Hub("http://127.0.0.1:9").call("org/name", "list its refs", fail, attempts=1)
    assert says in str(caught.value)
    rid = failure.request_id if hasattr(failure, "request_id") else None  # type: ignore[union-attr]
    assert getattr(caught.value, "request_id", None) == rid


def test_hub_call_lets_a_bug_of_ours_propagate() -> None:
    def fail() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        Hub("http://127.0.0.1:9").call("org/name", "list its refs", fail)
