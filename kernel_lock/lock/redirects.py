"""Redirects between kernel repositories: a repo's `kernel-status.toml` of kind `redirect` names where it moved.

`follow_redirects` follows a chain to the repo that holds the kernel (refusing loops and long chains);
`accept_redirect` refuses one to another organization's repository unless pyproject.toml accepts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from kernel_lock.core import tomlread
from kernel_lock.core.requirement import is_repo_id
from kernel_lock.errors import HubError, ResolutionError
from kernel_lock.project.config import same_publisher

if TYPE_CHECKING:
    from kernel_lock.hub.client import Hub, Refs

STATUS_FILE = "kernel-status.toml"
MAX_REDIRECTS = 8


class Redirect(BaseModel):
    """A `kernel-status.toml` of kind `redirect`: the repo moved to `destination`."""

    model_config = ConfigDict(extra="ignore")

    kind: str
    destination: str
    revision: str = "main"


def redirect_accepted(repo_id: str, target: str, redirects: Mapping[str, str]) -> bool:
    """Whether `repo_id` may stand for `target`: itself, a repo of the same organization, or a redirect
    that pyproject.toml's `[tool.kernels.redirects]` accepts exactly.

    Within one organization the publisher controls both repositories; across organizations the redirect
    hands the project to another publisher, which the project must agree to (and which `lock --check` can
    then see, offline, in pyproject.toml).
    """
    return target == repo_id or same_publisher(repo_id, target) or redirects.get(repo_id) == target


def accept_redirect(repo_id: str, target: str, redirects: Mapping[str, str]) -> None:
    """Refuse a redirect to another organization's repository unless pyproject.toml accepts exactly it."""
    if redirect_accepted(repo_id, target, redirects):
        return
    raise ResolutionError(
        f"{repo_id} redirects to {target} (through {STATUS_FILE}), a repository of another organization. "
        f"kernel-lock follows a redirect to another publisher only when pyproject.toml accepts it: add "
        f'"{repo_id}" = "{target}" under [tool.kernels.redirects], or depend on {target} directly.'
    )


def follow_redirects(repo_id: str, hub: Hub, side: ThreadPoolExecutor) -> tuple[str, Refs]:
    """The repo that finally holds the kernel, and its refs; the refs and status requests overlap."""
    chain = [repo_id]
    current = repo_id
    while True:
        refs_future = side.submit(hub.refs, current)
        try:
            status = hub.read_file(current, "main", STATUS_FILE)
            refs = refs_future.result()
        except ResolutionError as exc:
            if len(chain) == 1:
                raise
            raise ResolutionError(
                f"{repo_id} redirects ({' -> '.join(chain)}) through {STATUS_FILE} to a repository that cannot be "
                f"resolved: {exc} Depend on the repository that now holds the kernel, and tell the publisher of "
                f"{chain[-2]}."
            ) from None
        redirect = _parse_status(current, status)
        if redirect is None:
            return current, refs
        destination = redirect.destination
        if destination in chain:
            raise ResolutionError(
                f"{repo_id} redirects in a loop ({' -> '.join([*chain, destination])}) through "
                f"{STATUS_FILE}. Depend on the repository that really holds the kernel, and tell its publisher."
            )
        if len(chain) > MAX_REDIRECTS:
            raise ResolutionError(
                f"{repo_id} redirects more than {MAX_REDIRECTS} times ({' -> '.join(chain)})."
            )
        chain.append(destination)
        current = destination


def _parse_status(repo_id: str, content: bytes | None) -> Redirect | None:
    """The redirect in a `kernel-status.toml`, if the file exists and says so."""
    if content is None:
        return None
    try:
        data = tomlread.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, tomlread.TOMLDecodeError) as exc:
        raise HubError(
            f"{repo_id} has a malformed {STATUS_FILE} on main ({exc}); tell its publisher."
        ) from None
    if data.get("kind") != "redirect":
        return None
    try:
        redirect = Redirect.model_validate(data)
    except ValidationError:
        raise HubError(
            f"{repo_id} has a redirect {STATUS_FILE} without a destination; tell its publisher."
        ) from None
    if not is_repo_id(redirect.destination):
        raise HubError(
            f"{repo_id} redirects to {redirect.destination!r} in {STATUS_FILE}, which is not a repo id; "
            f"tell its publisher."
        )
    return redirect
