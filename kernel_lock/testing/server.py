"""A real threaded HTTP server on 127.0.0.1 that serves Hub repositories the way huggingface.co does.

The real `huggingface_hub` client (2.x and 1.3x) talks to it unchanged through `HF_ENDPOINT`: refs, repo
info, paginated tree listings with LFS metadata, paths-info, commits, organization overviews, and
`resolve` downloads (LFS files redirect to a CDN-like URL on another host name of the same server).
Faults, hostile answers and latency can be injected per request for reliability tests and benchmarks.

The parts live by concern: git objects and trees (`git`), one repository (`repo`), the HTTP handler
(`http`), routing (`routes`), faults and hostile answers (`faults`); this module holds `LocalHub` itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import socket
import threading
from typing import Any, TypeVar

from kernel_lock.testing.faults import Answer, Fault, FaultKind
from kernel_lock.testing.git import default_lfs_rule, git_blob_id, lfs_pointer
from kernel_lock.testing.http import RequestRecord, _Server
from kernel_lock.testing.repo import HubRepo
from kernel_lock.testing.routes import _REPO_TYPES, Routes

__all__ = [
    "Answer",
    "Fault",
    "FaultKind",
    "HubRepo",
    "LocalHub",
    "RequestRecord",
    "default_lfs_rule",
    "git_blob_id",
    "lfs_pointer",
]

HUB_TREE_PAGE_SIZE = 1000
_Pending = TypeVar("_Pending", Fault, Answer)


class LocalHub(Routes):
    """An in-process Hugging Face Hub on 127.0.0.1 serving kernel and model repositories over real HTTP."""

    def __init__(self, *, latency: float = 0.0, tree_page_size: int = HUB_TREE_PAGE_SIZE) -> None:
        self.latency = latency
        self.tree_page_size = tree_page_size
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], HubRepo] = {}
        self._orgs: dict[str, dict[str, Any]] = {}
        self._lfs_objects: dict[str, bytes] = {}
        self._faults: list[Fault] = []
        self._answers: list[Answer] = []
        self._log_records: list[RequestRecord] = []
        self._connections: set[socket.socket] = set()
        self._held = threading.Condition()
        self._holding = 0
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- content -------------------------------------------------------------------------------------

    def create_repo(self, repo_id: str, *, repo_type: str = "kernel") -> HubRepo:
        """Create an empty repository `org/name` of type "kernel" or "model" (also "dataset", "space")."""
        if repo_type not in _REPO_TYPES.values():
            raise ValueError(f"unsupported repo type {repo_type!r}")
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
            raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise ValueError(f"{repo_type} repository {repo_id} already exists")
            repo = HubRepo(self, repo_id, repo_type)
            self._repos[(repo_type, repo_id)] = repo
        return repo

    def repo(self, repo_id: str, *, repo_type: str = "kernel") -> HubRepo:
        """An existing repository (KeyError if missing)."""
        with self._lock:
            return self._repos[(repo_type, repo_id)]

    def set_organization(
        self, name: str, *, trusted_kernel_publisher: bool = False, fullname: str | None = None
    ) -> None:
        """Declare (or update) organization `name`, as `get_organization_overview` reports it."""
        with self._lock:
            self._orgs[name] = {
                "_id": hashlib.sha1(name.encode()).hexdigest()[:24],
                "name": name,
                "fullname": fullname or name,
                "avatarUrl": f"https://cdn-avatars.huggingface.co/{name}.png",
                "type": "org",
                "isVerified": trusted_kernel_publisher,
                "isFollowing": False,
                "numUsers": 1,
                "numModels": 0,
                "numSpaces": 0,
                "numDatasets": 0,
                "numFollowers": 0,
                "numPapers": 0,
                "trustedKernelPublisher": trusted_kernel_publisher,
            }

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Start serving on `port` of 127.0.0.1 (0: a free one); return the endpoint URL."""
        with self._lock:
            if self._server is not None:
                return self.url
            self._server = _Server(self, port)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="LocalHub",
                daemon=True,
            )
            self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and drop every open connection (idempotent)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
            connections = list(self._connections)
        if server is None:
            return
        self.release()
        server.shutdown()
        server.server_close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> LocalHub:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the hub listens on (RuntimeError if not started)."""
        if self._server is None:
            raise RuntimeError("LocalHub is not started; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The endpoint to use as HF_ENDPOINT, e.g. http://127.0.0.1:40123."""
        return f"http://127.0.0.1:{self.port}"

    # -- faults and log ------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Inject `fault` into the next matching request(s)."""
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Remove every pending fault and hostile answer."""
        with self._lock:
            self._faults.clear()
            self._answers.clear()

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served since start (or the last `clear_log`), oldest first (a copy)."""
        with self._lock:
            return list(self._log_records)

    def clear_log(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._log_records.clear()

    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self._log_records.append(record)

    def _replace_log(self, old: RequestRecord, new: RequestRecord) -> None:
        with self._lock:
            for index, record in enumerate(self._log_records):
                if record is old:
                    self._log_records[index] = new

    def wait_held(self, count: int, timeout: float = 60.0) -> None:
        """Block until `count` requests are held at once by latency or a stall: proof without a clock that
        they overlap (TimeoutError after `timeout` seconds, so a server that queues them fails instead of hanging)."""
        with self._held:
            if not self._held.wait_for(lambda: self._holding >= count, timeout):
                raise TimeoutError(f"{self._holding} request(s) held at once, not {count}, after {timeout} s")

    def release(self) -> None:
        """End every latency wait and stall in progress now (`stop` does too); later requests are held as before."""
        with self._held:
            self._release.set()
            self._release = threading.Event()

    def _hold(self, seconds: float) -> None:
        """Hold a request for `seconds` (latency or a stall), or until `release`."""
        with self._held:
            release = self._release
            self._holding += 1
            self._held.notify_all()
        try:
            release.wait(seconds)
        finally:
            with self._held:
                self._holding -= 1
                self._held.notify_all()

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def add_answer(self, answer: Answer) -> None:
        """Answer the next matching request(s) with `answer`'s status, headers and body (a hostile Hub)."""
        with self._lock:
            self._answers.append(answer)

    def _take_faults(self, method: str, path: str) -> list[Fault]:
        return self._take(self._faults, method, path)

    def _take(self, pending: list[_Pending], method: str, path: str) -> list[_Pending]:
        """The pending faults or answers that match a request; each one's count goes down by one."""
        taken: list[_Pending] = []
        with self._lock:
            remaining: list[_Pending] = []
            for item in pending:
                if item.applies_to(method, path):
                    taken.append(item)
                    if item.count is None:
                        remaining.append(item)
                    elif item.count > 1:
                        remaining.append(dataclasses.replace(item, count=item.count - 1))
                else:
                    remaining.append(item)
            pending[:] = remaining
        return taken
