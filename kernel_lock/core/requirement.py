"""A kernel requirement as a project and its lock state it: a repo id and a major version or a revision; the
signer identities a requirement and a lock name; the string rules of repo ids and commits.

The verified load imports this (through the lock model): nothing here may be heavy, and the signature
policy, which the load does not need, is in `kernel_lock.core.signers`.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, ClassVar, TypeGuard

from kernel_lock.core._record import Record

_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9])?"  # ASCII: a Unicode \w costs 0.1 s to compile
REPO_ID_PATTERN = rf"^{_REPO_PART}/{_REPO_PART}$"
COMMIT_PATTERN = r"^[0-9a-f]{40}$"
_HEX = frozenset("0123456789abcdef")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_REPO_PART_CHARS = _ALNUM | frozenset("_.-")


def is_repo_id(value: object) -> TypeGuard[str]:
    """Whether `value` is a Hub repo id `org/name` (as `huggingface_hub` validates them): `REPO_ID_PATTERN`, and no
    '--' or '..'. Checked with string operations: compiling the pattern costs every fresh process 0.1 ms."""
    if not isinstance(value, str) or "--" in value or ".." in value:
        return False
    org, slash, name = value.partition("/")
    return bool(slash) and _is_repo_part(org) and _is_repo_part(name)


def _is_repo_part(part: str) -> bool:
    return 0 < len(part) <= 96 and part[0] in _ALNUM and part[-1] in _ALNUM and set(part) <= _REPO_PART_CHARS


def is_hex(value: object, length: int) -> TypeGuard[str]:
    """Whether `value` is lowercase hex of `length` characters (a commit: 40)."""
    return isinstance(value, str) and len(value) == length and _HEX.issuperset(value)


def repo_id_metadata(**metadata: Any) -> dict[str, Any]:
    """A repo id field's `metadata`: what pydantic reads at the edge (schemas, `--json` reports)."""
    return {
        "pattern": REPO_ID_PATTERN,
        "description": "Hub repo id, `org/name`",
        "json_schema_extra": {"not": {"type": "string", "pattern": "--|[.][.]"}},
        **metadata,
    }


GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"


def _text(description: str) -> dict[str, Any]:
    """A non-empty string field's `metadata`: what pydantic reads at the edge (schemas, `--json` reports)."""
    return {"description": description, "min_length": 1}


class Signer(Record):
    """A signing identity, as Fulcio writes it into the certificate (issuer, build signer URI, source repo)."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    issuer: str = field(metadata=_text("OIDC issuer, e.g. https://token.actions.githubusercontent.com"))
    workflow: str = field(
        metadata=_text(
            "Workflow that signed (build signer URI), e.g. https://github.com/ORG/REPO/.github/workflows/build.yaml@refs/heads/main"
        )
    )
    repository: str = field(metadata=_text("Source repository URI, e.g. https://github.com/ORG/REPO"))

    def describe(self) -> str:
        """The identity in one line: the workflow, and the issuer when it is not GitHub Actions."""
        return (
            self.workflow
            if self.issuer == GITHUB_ACTIONS_ISSUER
            else f"{self.workflow} (issuer {self.issuer})"
        )


class Dependency(Record):
    """One kernel requirement: a major version (branch `vN`) or an explicit revision."""

    # Built from [tool.kernels] by `kernel_lock.project.config` (which explains each mistake), from a lock
    # entry (`LockedKernel.requirement`) or from a variant's `kernel-depends` (`stated_requirement`).

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    version: int | None = field(
        default=None, metadata={"ge": 0, "description": "Major version N, i.e. branch `vN`"}
    )
    revision: str | None = field(
        default=None, metadata={"min_length": 1, "description": "Branch, tag or 40-hex commit"}
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "alias": "trust-remote-code",
            "description": "Allow a repo whose organization is not a trusted kernel publisher",
        },
    )
    signers: tuple[Signer, ...] = field(
        default=(),
        metadata={
            "description": "Signers allowed for this kernel, besides the defaults and [tool.kernels] signers"
        },
    )
    require_signature: bool | None = field(
        default=None,
        metadata={
            "alias": "require-signature",
            "description": "Refuse to lock a variant without a valid signature (default: [tool.kernels] require-signature)",
        },
    )

    def describe(self) -> str:
        """The requirement in words, e.g. `version 2` or `revision main`."""
        return f"version {self.version}" if self.version is not None else f"revision {self.revision}"


def requirement_problem(version: object, revision: object) -> tuple[str, str] | None:
    """What is wrong with a stated requirement (`version`, `revision`: None where absent): the key at fault
    ('' for both) and why; None where it is one.

    The one rule for a lock entry and a `kernel-depends` item: exactly one of a whole number >= 0 and a
    non-empty string.
    """
    if version is not None and (type(version) is not int or version < 0):
        return "version", "must be a whole number >= 0"
    if revision is not None and (not isinstance(revision, str) or not revision):
        return "revision", "must be a non-empty string"
    if (version is None) == (revision is None):
        return "", "exactly one of 'version' and 'revision' must be set"
    return None


def stated_requirement(version: object, revision: object) -> Dependency | None:
    """The requirement stated by `version` / `revision` (None where absent), or None where it is not one."""
    if requirement_problem(version, revision) is not None:
        return None
    return Dependency(version=version, revision=revision)  # type: ignore[arg-type]
