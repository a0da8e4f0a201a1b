"""A kernel requirement as a project and its lock state it: a repo id and a major version or a revision."""

from __future__ import annotations

import re
from typing import Annotated, TypeGuard

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from kernel_lock.core.signers import Signer

_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9])?"  # ASCII: a Unicode \w costs 0.1 s to compile
REPO_ID_RE = re.compile(rf"^{_REPO_PART}/{_REPO_PART}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def is_repo_id(value: object) -> TypeGuard[str]:
    """Whether `value` is a Hub repo id `org/name` (as `huggingface_hub` validates them)."""
    return (
        isinstance(value, str)
        and bool(REPO_ID_RE.fullmatch(value))
        and "--" not in value
        and ".." not in value
    )


def _repo_id(value: str) -> str:
    if not is_repo_id(value):
        raise ValueError("not a repo id 'org/name' (no '--' or '..')")
    return value


RepoId = Annotated[
    str, Field(pattern=REPO_ID_RE.pattern, description="Hub repo id, `org/name`"), AfterValidator(_repo_id)
]


class Dependency(BaseModel):
    """One kernel requirement: a major version (branch `vN`) or an explicit revision."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    version: Annotated[int, Field(ge=0, description="Major version N, i.e. branch `vN`")] | None = None
    revision: Annotated[str, Field(min_length=1, description="Branch, tag or 40-hex commit")] | None = None
    trust_remote_code: bool = Field(
        False,
        alias="trust-remote-code",
        description="Allow a repo whose organization is not a trusted kernel publisher",
    )
    signers: tuple[Signer, ...] = Field(
        (), description="Signers allowed for this kernel, besides the defaults and [tool.kernels] signers"
    )
    require_signature: bool | None = Field(
        None,
        alias="require-signature",
        description="Refuse to lock a variant without a valid signature (default: [tool.kernels] require-signature)",
    )

    def describe(self) -> str:
        """The requirement in words, e.g. `version 2` or `revision main`."""
        return f"version {self.version}" if self.version is not None else f"revision {self.revision}"
