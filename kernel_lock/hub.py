"""All Hub access of kernel-lock, through `huggingface_hub`, with errors translated to ours.

One `Hub` holds one `HfApi` client; its methods are safe to call from many
threads. Transient failures (connection errors, 408/429/5xx) are retried with
bounded backoff, honouring `Retry-After`; anything else becomes a
`ResolutionError` or `HubError` that names the repo and what failed.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kernel_lock.errors import HubError, KernelLockError, ResolutionError

T = TypeVar("T")

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 5
MAX_RETRY_AFTER = 10.0


class LfsInfo(BaseModel):
    """The `lfs` part of a tree entry."""

    model_config = ConfigDict(extra="ignore")

    oid: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class TreeEntry(BaseModel):
    """One entry of a Hub tree listing (`/api/kernels/{repo}/tree/{rev}/{path}`)."""

    model_config = ConfigDict(extra="ignore")

    type: str
    path: str
    oid: str = ""
    size: int = Field(0, ge=0)
    lfs: LfsInfo | None = None

    @property
    def file_hash(self) -> str:
        """The hash `git_lfs_concat` uses: the LFS sha256, else the git blob sha1."""
        return self.lfs.oid if self.lfs else self.oid


class Refs(BaseModel):
    """Branches and tags of a repo, name -> commit."""

    branches: dict[str, str]
    tags: dict[str, str]

    def versions(self) -> dict[int, str]:
        """Major versions (branches `vN`) -> commit."""
        return {int(name[1:]): sha for name, sha in self.branches.items() if re.fullmatch(r"v\d+", name)}


class Hub:
    """A client for one Hub endpoint (`HF_ENDPOINT`, else huggingface.co)."""

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        from huggingface_hub import HfApi

        from kernel_lock import __version__

        self.api = HfApi(
            endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None,
            token=token,
            library_name="kernel-lock",
            library_version=__version__,
        )
        self.endpoint: str = self.api.endpoint

    def refs(self, repo_id: str) -> Refs:
        """Branches and tags of a kernel repo."""
        refs = self._call(repo_id, "list its refs", lambda: self.api.list_repo_refs(repo_id, repo_type="kernel"))
        return Refs(
            branches={b.name: b.target_commit for b in refs.branches},
            tags={t.name: t.target_commit for t in refs.tags},
        )

    def tree(self, repo_id: str, revision: str, path: str = "build", *, recursive: bool = True) -> list[TreeEntry]:
        """Every entry under `path` at `revision` (recursively by default), following pagination."""
        from urllib.parse import quote

        from huggingface_hub.utils import get_session, hf_raise_for_status

        url = f"{self.endpoint}/api/kernels/{repo_id}/tree/{quote(revision, safe='')}/{quote(path)}"

        def fetch() -> list[dict]:
            items: list[dict] = []
            page_url, params = url, {"recursive": str(recursive).lower(), "expand": "false"}
            while page_url:
                response = get_session().get(page_url, params=params, headers=self._headers())
                hf_raise_for_status(response)
                items.extend(response.json())
                page_url, params = response.links.get("next", {}).get("url"), None
            return items

        raw = self._call(repo_id, f"list {path}/ at {revision}", fetch, missing_path_ok=True)
        try:
            return [TreeEntry.model_validate(item) for item in raw]
        except (ValidationError, TypeError) as exc:
            raise HubError(
                f"The Hub at {self.endpoint} sent a malformed tree listing for {repo_id} at {revision}: {exc}. "
                f"Check HF_ENDPOINT points at a Hub or a faithful mirror."
            ) from None

    def read_file(self, repo_id: str, revision: str, path: str) -> bytes | None:
        """The bytes of a small file at `revision` (one GET), or None if the repo has no such file."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.errors import EntryNotFoundError
        from huggingface_hub.utils import get_session, hf_raise_for_status

        url = hf_hub_url(repo_id, path, repo_type="kernel", revision=revision, endpoint=self.endpoint)

        def fetch() -> bytes | None:
            response = get_session().get(url, headers=self._headers(), follow_redirects=True)
            try:
                hf_raise_for_status(response)
            except EntryNotFoundError:
                return None
            return response.content

        return self._call(repo_id, f"download {path} at {revision}", fetch)

    def download(self, repo_id: str, revision: str, path: str, cache_dir: Path) -> Path:
        """Fetch one file into the Hugging Face cache (as `hf_hub_download` does) and return its snapshot path."""
        fetched = self._call(
            repo_id,
            f"download {path} at {revision[:12]}",
            lambda: self.api.hf_hub_download(
                repo_id, path, repo_type="kernel", revision=revision, cache_dir=cache_dir
            ),
        )
        return Path(fetched)

    def org_is_trusted(self, org: str) -> bool:
        """Whether the Hub marks this organization a trusted kernel publisher."""
        from huggingface_hub.errors import HfHubHTTPError

        def fetch() -> bool:
            try:
                overview = self.api.get_organization_overview(org)
            except HfHubHTTPError as exc:
                if exc.response is not None and exc.response.status_code == 404:
                    return False
                raise
            return bool(getattr(overview, "trustedKernelPublisher", False))

        return self._call(org, "read the organization overview", fetch)

    def _headers(self) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers

        return build_hf_headers(
            token=self.api.token, library_name="kernel-lock", library_version=self.api.library_version
        )

    def _call(self, repo_id: str, what: str, fn: Callable[[], T], *, missing_path_ok: bool = False) -> T:
        """Run one Hub request with bounded retries, translating every failure to our errors."""
        from huggingface_hub.errors import (
            EntryNotFoundError,
            HfHubHTTPError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return fn()
            except KernelLockError:
                raise
            except OfflineModeIsEnabled:
                raise HubError(
                    f"Cannot {what} of {repo_id}: HF_HUB_OFFLINE is set. Unset it to reach the Hub at {self.endpoint}."
                ) from None
            except RevisionNotFoundError:
                raise ResolutionError(
                    f"Revision not found while trying to {what} of {repo_id} on {self.endpoint}. "
                    f"Check the branch, tag or commit in pyproject.toml (`kernel-lock versions {repo_id}` lists versions)."
                ) from None
            except RepositoryNotFoundError:
                raise self._not_found(repo_id) from None
            except EntryNotFoundError:
                if missing_path_ok:
                    return []  # type: ignore[return-value]
                raise ResolutionError(f"Not found while trying to {what} of {repo_id} on {self.endpoint}.") from None
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status not in RETRY_STATUS or attempt == MAX_ATTEMPTS:
                    raise HubError(
                        f"The Hub at {self.endpoint} failed to {what} of {repo_id} (HTTP {status}) "
                        f"after {attempt} attempt(s). Try again later, or check HF_ENDPOINT and HF_TOKEN."
                    ) from None
                _sleep_before_retry(attempt, exc.response.headers.get("Retry-After") if exc.response else None)
            except _transport_errors() as exc:
                if attempt == MAX_ATTEMPTS:
                    raise HubError(
                        f"Cannot reach the Hub at {self.endpoint} to {what} of {repo_id} "
                        f"({type(exc).__name__}: {exc}) after {attempt} attempts. Check your network "
                        f"and HF_ENDPOINT."
                    ) from None
                _sleep_before_retry(attempt, None)
        raise AssertionError("unreachable")

    def _not_found(self, repo_id: str) -> ResolutionError:
        """Explain a missing kernel repo, telling apart one that exists as a model-type repo."""
        try:
            self.api.repo_info(repo_id, repo_type="model")
        except Exception:
            return ResolutionError(
                f"Kernel repository {repo_id} not found on {self.endpoint}. Check the repo id in "
                f"pyproject.toml, and set HF_TOKEN if it is private."
            )
        return ResolutionError(
            f"{repo_id} is a model-type repository; kernel-lock supports only kernel-type repositories. "
            f"Ask its publisher to move it to a kernel repository (huggingface.co/kernels/...), "
            f"or depend on the kernel repository that replaces it."
        )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the HTTP library `huggingface_hub` uses (httpx or httpx2)."""
    from huggingface_hub.utils import get_session

    httpx = sys.modules[type(get_session()).__module__.split(".")[0]]
    return (httpx.TransportError, httpx.DecodingError, ValueError)


def _sleep_before_retry(attempt: int, retry_after: str | None) -> None:
    """Exponential backoff from 0.1 s, capped; a server's Retry-After wins (up to a bound)."""
    delay = min(0.1 * 2 ** (attempt - 1), 2.0)
    if retry_after:
        try:
            delay = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
        except ValueError:
            pass
    time.sleep(delay)
