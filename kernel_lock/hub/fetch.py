"""Download one locked file into the repo's `blobs/` folder of the Hugging Face cache; no path comes from the Hub.

The URL, the blob's name and where it lands all come from the lock and its
manifest (repo, commit, variant, the file's relative path and hash). What the
Hub answers is only checked against them: an `X-Repo-Commit` naming another
commit, a declared length or `Content-Range` other than the listed size, a
body longer than the listed size (cut off there), or bytes whose hash is not
the listed one are refused before anything is renamed into place. The body
streams into a temporary file inside `blobs/`, hashed as it lands; a retry
after a broken connection resumes with a `Range` request when the server
allows it. Only a complete, matching file (its listed hash, and its SHA-256
where the manifest knows it) becomes `blobs/<hash>`, the name `huggingface_hub`
gives it (git blob id, or LFS sha256).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from kernel_lock.core.verdict import FileProblem
from kernel_lock.errors import HubError, ResolutionError

if TYPE_CHECKING:
    from kernel_lock.core.cache_layout import ManifestEntry
    from kernel_lock.hub.client import Hub

CHUNK = 1 << 20


class Digests:
    """The hashes of a file's bytes, fed as they arrive: its git blob id (which needs the size first) and SHA-256.

    A new algorithm is one more hasher here and one more name in `hexdigests`.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.received = 0
        self._hashers = {"git": hashlib.sha1(b"blob %d\0" % size), "sha256": hashlib.sha256()}

    def update(self, data: bytes) -> None:
        """Feed the next bytes of the file."""
        self.received += len(data)
        for hasher in self._hashers.values():
            hasher.update(data)

    def hexdigests(self) -> dict[str, str]:
        """Every hash, by name (`git`: the git blob id, `sha256`)."""
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}

    def for_kind(self, kind: Literal["git", "lfs"]) -> str:
        """The hash a manifest entry of this kind lists: the git blob id, or the LFS sha256."""
        return self.hexdigests()["git" if kind == "git" else "sha256"]


def digests_of(path: Path, size: int) -> Digests:
    """Hash a file on disk the way a download is hashed (read once, in chunks)."""
    digests = Digests(size)
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            digests.update(chunk)
    return digests


@dataclass(frozen=True)
class Source:
    """Where a file comes from, as the lock says: repo, commit and its path in the repo."""

    repo_id: str
    commit: str
    path: str


class Refused(Exception):
    """A download the Hub answered with something other than the listed file; carries the file's problem."""

    def __init__(self, problem: FileProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def fetch_blob(
    hub: Hub,
    source: Source,
    item: ManifestEntry,
    blobs: Path,
    received: Callable[[int], None] | None = None,
) -> FileProblem | Digests:
    """Download `source` into `blobs/<item.hash>`: its digests once it matched `item`, else what was wrong.

    Nothing lands at the blob's name unless the whole body matched; the temporary file is removed on any
    failure. Hub failures (unreachable, error status, another commit) raise `HubError`. `received` is
    told the size of each chunk as it lands (for a progress bar).
    """
    remove_abandoned(blobs, item.hash)
    fd, tmp = tempfile.mkstemp(prefix=f".{item.hash}.{_owner()}.", suffix=".incomplete", dir=blobs)
    try:
        with os.fdopen(fd, "r+b") as out:
            download = _Download(hub, source, item, out, received)
            try:
                hub.call(source.repo_id, f"download {source.path} at {source.commit[:12]}", download.attempt)
            except Refused as refused:
                return refused.problem
            except ResolutionError as exc:
                raise HubError(
                    f"The Hub at {hub.endpoint} lists {source.path} of {source.repo_id} at {source.commit[:12]} "
                    f"but does not serve it: {exc} Nothing was written; check HF_ENDPOINT.",
                    request_id=exc.request_id,
                ) from None
            out.flush()
            os.fsync(out.fileno())
        actual = download.digests.for_kind(item.kind)
        if actual != item.hash:
            return FileProblem(item.path, "content changed", item.hash, actual)
        sha256 = download.digests.hexdigests()["sha256"]
        if item.sha256 is not None and sha256 != item.sha256:
            return FileProblem(item.path, "content changed", item.sha256, sha256)
        _land(tmp, blobs / item.hash)
        return download.digests
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def store_blob(blobs: Path, name: str, data: bytes) -> None:
    """Put bytes already checked against `name` (their git blob id) into `blobs/<name>` as a download lands
    there, so that the file is not fetched a second time; a file already under that name is left to the plan."""
    if os.path.lexists(blobs / name):
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{_owner()}.", suffix=".incomplete", dir=blobs)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        _land(tmp, blobs / name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _land(tmp: str, blob: Path) -> None:
    """Rename a complete, matching temporary file to its blob name, readable by all as other blobs are."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o644 & ~umask)
    os.replace(tmp, blob)


def _host() -> str:
    """This host's name, without the dots that separate the parts of a temporary file's name."""
    return socket.gethostname().replace(".", "_")


def _owner() -> str:
    """`<host>-<pid>`: who writes a temporary download, so a later sync can tell an abandoned one."""
    return f"{_host()}-{os.getpid()}"


def remove_abandoned(blobs: Path, name: str) -> None:
    """Remove temporary downloads of blob `name` left by a process of this host that no longer runs (killed).

    A download in progress (its process alive, or on another host sharing the cache) is left alone.
    """
    host = _host()
    for tmp in blobs.glob(f".{name}.*.incomplete"):
        owner = tmp.name[len(name) + 2 :].split(".", 1)[0]
        owner_host, _, pid = owner.rpartition("-")
        if owner_host != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        except PermissionError:
            continue  # alive, another user's


class _Download:
    """One file's download across attempts: the bytes written so far and their running digests."""

    def __init__(
        self,
        hub: Hub,
        source: Source,
        item: ManifestEntry,
        out: BinaryIO,
        received: Callable[[int], None] | None = None,
    ) -> None:
        self.received = received
        self.hub = hub
        self.source = source
        self.item = item
        self.out = out
        self.digests = Digests(item.size)

    def attempt(self) -> None:
        """One GET (resuming after the bytes already written, if any) streamed into the file."""
        resume = self.digests.received
        headers = {"Accept-Encoding": "identity"}
        if resume:
            headers["Range"] = f"bytes={resume}-"
        url = self.hub.file_url(self.source.repo_id, self.source.commit, self.source.path)
        with self.hub.stream(url, headers=headers) as response:
            self._check_commit(response)
            if not (resume and response.status_code == 206 and self._resumes_at(response, resume)):
                self._restart(response)
            for chunk in response.iter_bytes(CHUNK):
                if self.digests.received + len(chunk) > self.item.size:
                    raise Refused(
                        FileProblem(
                            self.item.path,
                            f"the Hub sent more than the listed {self.item.size} bytes; cut off there",
                        )
                    )
                self.out.write(chunk)
                self.digests.update(chunk)
                if self.received is not None:
                    self.received(len(chunk))
        if self.digests.received != self.item.size:
            raise Refused(
                FileProblem(
                    self.item.path,
                    f"the Hub sent {self.digests.received} bytes, the lock lists {self.item.size}",
                )
            )

    def _restart(self, response: Any) -> None:
        """Start the file over for a full answer; refuse one whose status or declared length is not the file's."""
        if response.status_code != 200:
            raise Refused(
                FileProblem(
                    self.item.path, f"the Hub answered HTTP {response.status_code} instead of the file"
                )
            )
        declared = response.headers.get("Content-Length")
        encoded = response.headers.get("Content-Encoding", "identity") != "identity"
        if declared is not None and not encoded and declared.strip() != str(self.item.size):
            raise Refused(
                FileProblem(
                    self.item.path,
                    f"the Hub declared {declared.strip()[:40]!r} bytes, the lock lists {self.item.size}",
                )
            )
        self.out.seek(0)
        self.out.truncate()
        self.digests = Digests(self.item.size)

    def _resumes_at(self, response: Any, offset: int) -> bool:
        """Whether a 206 answer continues exactly where the file stopped (else it is fetched again whole)."""
        content_range = response.headers.get("Content-Range", "")
        return bool(
            content_range.startswith(f"bytes {offset}-") and content_range.endswith(f"/{self.item.size}")
        )

    def _check_commit(self, response: Any) -> None:
        """Refuse an answer (or a redirect on the way to it) that says it comes from another commit, naming the
        request id of the answer that said so."""
        from kernel_lock.hub._classify import request_id_of

        for hop in (*response.history, response):
            said = hop.headers.get("X-Repo-Commit")
            if said is not None and said != self.source.commit:
                raise HubError(
                    f"The Hub at {self.hub.endpoint} answered {self.source.repo_id} {self.source.path} for commit "
                    f"{self.source.commit[:12]} with another commit's file (X-Repo-Commit {said[:64]!r}). Refusing "
                    f"it; nothing was written. Check HF_ENDPOINT.",
                    request_id=request_id_of(hop) or request_id_of(response),
                )
