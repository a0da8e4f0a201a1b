"""All Hub access of kernel-lock, through `huggingface_hub`, with errors translated to ours.

One `Hub` holds one `HfApi` client; its methods are safe to call from many
threads. Transient failures (connection errors, 408/429/5xx) are retried with
bounded backoff, honouring `Retry-After`; anything else becomes a
`ResolutionError` or `HubError` that names the repo and what failed.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kernel_lock import env
from kernel_lock.errors import HubError, KernelLockError, ResolutionError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 5
DOWNLOAD_ATTEMPTS = 2  # huggingface_hub retries each download itself
MAX_RETRY_AFTER = 10.0
MAX_PAGES = 10_000
MAX_ENTRIES = 2_000_000


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

    @model_validator(mode="after")
    def _file_has_blob_id(self) -> TreeEntry:
        if self.type == "file" and not re.fullmatch(r"[0-9a-f]{40}", self.oid):
            raise ValueError(f"file {self.path!r} has no git blob id (oid {self.oid!r})")
        return self

    @property
    def file_hash(self) -> str:
        """The hash `git_lfs_concat` uses: the LFS sha256, else the git blob sha1."""
        return self.lfs.oid if self.lfs else self.oid


class GitRef(BaseModel):
    """A branch or tag in the Hub's refs answer."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    target_commit: str = Field(alias="targetCommit", pattern=r"^[0-9a-f]{40}$")


class Refs(BaseModel):
    """Branches and tags of a repo (`/api/kernels/{repo}/refs`)."""

    model_config = ConfigDict(extra="ignore")

    branches: list[GitRef]
    tags: list[GitRef] = []

    @property
    def branch_heads(self) -> dict[str, str]:
        """Branch name -> commit."""
        return {b.name: b.target_commit for b in self.branches}

    @property
    def tag_commits(self) -> dict[str, str]:
        """Tag name -> commit."""
        return {t.name: t.target_commit for t in self.tags}

    def versions(self) -> dict[int, str]:
        """Major versions (branches `vN`) -> commit."""
        return {int(b.name[1:]): b.target_commit for b in self.branches if re.fullmatch(r"v\d+", b.name)}


class OrganizationOverview(BaseModel):
    """The part of `/api/organizations/{org}/overview` that kernel-lock reads."""

    model_config = ConfigDict(extra="ignore")

    trusted_kernel_publisher: bool = Field(False, alias="trustedKernelPublisher")


class Hub:
    """A client for one Hub endpoint (`HF_ENDPOINT`, else huggingface.co).

    `huggingface_hub` and its HTTP client are imported on the first request, not here: an up-to-date
    `kernel-lock lock` makes none, and importing them is most of what it would otherwise spend.
    """

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        self._endpoint = endpoint
        self._token = token

    @functools.cached_property
    def api(self) -> HfApi:
        """The `huggingface_hub` client, created on first use."""
        from huggingface_hub import HfApi

        from kernel_lock import __version__

        return HfApi(
            endpoint=self._endpoint or env.hub_endpoint(),
            token=self._token,
            library_name="kernel-lock",
            library_version=__version__,
        )

    @property
    def endpoint(self) -> str:
        """The Hub's base URL."""
        return str(self.api.endpoint)

    def refs(self, repo_id: str) -> Refs:
        """Branches and tags of a kernel repo."""
        url = f"{self.endpoint}/api/kernels/{repo_id}/refs"
        return self._parse(
            Refs, self._call(repo_id, "list its refs", lambda: self._get(url).json()), repo_id, "refs"
        )

    def tree(
        self, repo_id: str, revision: str, path: str = "build", *, recursive: bool = True
    ) -> list[TreeEntry]:
        """Every entry under `path` at `revision` (recursively by default), following pagination."""
        from urllib.parse import quote

        url = f"{self.endpoint}/api/kernels/{repo_id}/tree/{quote(revision, safe='')}/{quote(path)}"

        def fetch() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            seen: set[str] = set()
            page_url: str | None = url
            params: dict[str, str] | None = {"recursive": str(recursive).lower(), "expand": "false"}
            while page_url:
                if page_url in seen or len(seen) >= MAX_PAGES or len(items) > MAX_ENTRIES:
                    raise HubError(
                        f"The Hub at {self.endpoint} keeps paginating the listing of {repo_id} at {revision} "
                        f"({len(seen)} pages, {len(items)} entries, or a page that links back). Refusing it."
                    )
                seen.add(page_url)
                response = self._get(page_url, params=params)
                page = response.json()
                if not isinstance(page, list):
                    raise ValueError("a listing page is not a JSON list")
                items.extend(page)
                page_url, params = response.links.get("next", {}).get("url"), None
            return items

        raw = self._call(repo_id, f"list {path}/ at {revision}", fetch, missing_path_ok=True)
        return [self._parse(TreeEntry, item, repo_id, f"tree listing at {revision}") for item in raw]

    def read_file(self, repo_id: str, revision: str, path: str) -> bytes | None:
        """The bytes of a small file at `revision` (one GET), or None if the repo has no such file or revision."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

        url = hf_hub_url(repo_id, path, repo_type="kernel", revision=revision, endpoint=self.endpoint)

        def fetch() -> bytes | None:
            try:
                return bytes(self._get(url, follow_redirects=True).content)
            except (EntryNotFoundError, RevisionNotFoundError):
                return None

        return self._call(repo_id, f"download {path} at {revision}", fetch)

    def download(self, repo_id: str, revision: str, path: str, cache_dir: Path) -> Path:
        """Fetch one file into the Hugging Face cache (as `hf_hub_download` does) and return its snapshot path."""
        fetched = self._call(
            repo_id,
            f"download {path} at {revision[:12]}",
            lambda: self.api.hf_hub_download(
                repo_id, path, repo_type="kernel", revision=revision, cache_dir=cache_dir
            ),
            attempts=DOWNLOAD_ATTEMPTS,
        )
        return Path(fetched)

    def org_is_trusted(self, org: str) -> bool:
        """Whether the Hub marks this organization a trusted kernel publisher (an unknown org is not)."""
        from huggingface_hub.errors import HfHubHTTPError

        url = f"{self.endpoint}/api/organizations/{org}/overview"

        def fetch() -> dict[str, Any]:
            try:
                overview: dict[str, Any] = self._get(url).json()
                return overview
            except HfHubHTTPError as exc:
                if exc.response is not None and exc.response.status_code in (401, 404):
                    return {}
                raise

        return self._parse(
            OrganizationOverview,
            self._call(org, "read the organization overview", fetch),
            org,
            "organization overview",
        ).trusted_kernel_publisher

    def _get(self, url: str, *, params: dict[str, str] | None = None, follow_redirects: bool = False) -> Any:
        """One GET with the client's headers and a timeout; HTTP errors raised as `huggingface_hub` classifies them."""
        from huggingface_hub import constants
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        headers = build_hf_headers(
            token=self.api.token, library_name="kernel-lock", library_version=self.api.library_version
        )
        response = get_session().get(
            url,
            params=params,
            headers=headers,
            follow_redirects=follow_redirects,
            timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
        )
        hf_raise_for_status(response)
        return response

    def _parse(self, model: type[M], data: Any, repo_id: str, what: str) -> M:
        """Validate a Hub answer, or say the Hub sent something malformed."""
        try:
            return model.model_validate(data)
        except (ValidationError, TypeError) as exc:
            first = exc.errors(include_url=False)[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise HubError(
                f"The Hub at {self.endpoint} sent a malformed {what} for {repo_id} ({first}). Refusing it; check "
                f"HF_ENDPOINT points at a Hub or a faithful mirror."
            ) from None

    def _call(
        self,
        repo_id: str,
        what: str,
        fn: Callable[[], T],
        *,
        missing_path_ok: bool = False,
        attempts: int = MAX_ATTEMPTS,
    ) -> T:
        """Run one Hub request with bounded retries, translating every failure to our errors."""
        from huggingface_hub.errors import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        transport: tuple[type[Exception], ...] = (LocalEntryNotFoundError, *_transport_errors())
        for attempt in range(1, attempts + 1):
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
            except transport as exc:
                # LocalEntryNotFoundError: huggingface_hub gave up on a download after its own retries.
                if attempt == attempts:
                    raise HubError(
                        f"Cannot reach the Hub at {self.endpoint} to {what} of {repo_id} "
                        f"({type(exc).__name__}: {exc}) after {attempt} attempts. Check your network "
                        f"and HF_ENDPOINT."
                    ) from None
                _sleep_before_retry(attempt, None)
            except EntryNotFoundError:
                if missing_path_ok:
                    return []  # type: ignore[return-value]
                raise ResolutionError(
                    f"Not found while trying to {what} of {repo_id} on {self.endpoint}."
                ) from None
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status not in RETRY_STATUS or attempt == attempts:
                    raise HubError(
                        f"The Hub at {self.endpoint} failed to {what} of {repo_id} (HTTP {status}) "
                        f"after {attempt} attempt(s). Try again later, or check HF_ENDPOINT and HF_TOKEN."
                    ) from None
                _sleep_before_retry(
                    attempt, exc.response.headers.get("Retry-After") if exc.response else None
                )
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


def _transport_errors() -> tuple[type[Exception], ...]:
    """Connection-level errors of the HTTP library `huggingface_hub` uses (httpx or httpx2)."""
    from huggingface_hub.utils import get_session

    httpx = sys.modules[type(get_session()).__module__.split(".")[0]]
    return (httpx.TransportError, httpx.DecodingError, ValueError)


def _sleep_before_retry(attempt: int, retry_after: str | None) -> None:
    """Exponential backoff from 0.1 s, capped; a server's Retry-After wins (up to a bound)."""
    delay = min(0.1 * 2 ** (attempt - 1), 2.0)
    if retry_after:
        with contextlib.suppress(ValueError):
            delay = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
    time.sleep(delay)
