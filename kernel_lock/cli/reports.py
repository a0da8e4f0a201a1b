"""The `--json` documents of the command line, one pydantic model per command.

Every document uses the lock's key style (kebab-case), carries `schema-version`
(raised when a field changes meaning or goes away; new fields do not raise it)
and the `warnings` the command printed. Errors are one `ErrorReport` with a
stable `code` (see `kernel_lock.errors`). `python -m kernel_lock.cli.schemas`
writes their JSON Schemas into `schemas/output/`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from kernel_lock.core.lockfile import LockedKernel, Provenance
from kernel_lock.core.signers import Signer
from kernel_lock.core.variants import Rejection

if TYPE_CHECKING:
    from kernel_lock.cache.verify import VariantCheck
    from kernel_lock.core.target import TargetChoice
    from kernel_lock.lock.changes import LockResult


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class JsonModel(BaseModel):
    """A part of a `--json` document: kebab-case keys, nothing unknown."""

    model_config = ConfigDict(alias_generator=_kebab, populate_by_name=True, extra="forbid")

    def to_json(self) -> dict[str, object]:
        """The document as JSON-able data, keys as written."""
        return self.model_dump(mode="json", by_alias=True)


class Report(JsonModel):
    """What every `--json` document has."""

    schema_version: Literal[1] = Field(1, description="Version of this document's layout")
    warnings: list[str] = Field(default_factory=list, description="Warnings printed while the command ran")


class ErrorDetail(JsonModel):
    """What went wrong: a stable code to match on, and the message a person reads."""

    code: str = Field(
        description="Stable, e.g. lock-out-of-date, config-invalid, hub-error, usage (see the README)"
    )
    message: str


class ErrorReport(Report):
    """The document of a command that failed (exit code not 0)."""

    error: ErrorDetail


class TargetReport(JsonModel):
    """The environment variants were selected for, and where that came from."""

    spec: str | None = Field(description="As `--target` takes it; null where the target has no torch")
    description: str
    source: Literal["--target", "options", "KERNEL_LOCK_TARGET", "detected"]
    torch: bool = Field(description="Whether the target has torch (detection found it importable)")

    @classmethod
    def of(cls, choice: TargetChoice) -> TargetReport:
        return cls(
            spec=choice.target.spec(),
            description=choice.target.describe(),
            source=choice.source,
            torch=choice.target.torch is not None,
        )


class Change(JsonModel):
    """One kernel's line of a lock's change summary."""

    repo_id: str = Field(description="As pyproject.toml (or the requiring kernel) names it")
    change: Literal["added", "removed", "updated", "commit-moved"]
    before: str | None = Field(description="Requirement and commit before, e.g. `v1 (e25d292)`")
    after: str | None
    direct: bool
    detail: str | None = Field(
        None, description="What changed where requirement and commit did not, e.g. `now only a dependency`"
    )


class LockChanges(JsonModel):
    """What writing the lock changed."""

    lockfile: str
    written: bool
    added: list[str] = Field(description="Direct requirements newly locked")
    updated: list[str] = Field(description="Direct requirements whose entry changed")
    removed: list[str] = Field(description="Direct requirements no longer locked")
    changes: list[Change] = Field(description="Every entry (direct or not) that changed")

    @classmethod
    def of(cls, result: LockResult) -> LockChanges:
        return cls(
            lockfile=str(result.path),
            written=result.written,
            added=result.added,
            updated=result.updated,
            removed=result.removed,
            changes=[Change(**vars(c)) for c in result.changes()],
        )


class LockReport(LockChanges, Report):
    """`kernel-lock lock --json`."""

    kernels: list[LockedKernel] = Field(description="Every locked kernel, as in kernels.lock")
    dry_run: bool = Field(False, description="With --dry-run: nothing was written")


class LockCheckReport(Report):
    """`kernel-lock lock --check --json`."""

    lockfile: str
    up_to_date: bool
    differences: list[str] = Field(description="Why the lock does not match pyproject.toml")
    kernels: int = Field(description="How many kernels the lock holds, direct or not")
    signatures_verified: int = Field(0, description="Signed variants whose signature was verified again")
    signatures_unavailable: list[str] = Field(
        default_factory=list, description="Signed variants whose metadata was not at hand to verify again"
    )


class VariantReport(JsonModel):
    """One variant checked by `sync` or `verify`."""

    repo_id: str
    commit: str
    variant: str
    status: Literal["ok", "missing", "corrupt"]
    path: str
    problems: list[str]
    signature: str | None = Field(
        None, description="With verify --signatures: `signed by WORKFLOW` or `unsigned`; else null"
    )

    @classmethod
    def of(cls, check: VariantCheck, signature: str | None = None) -> VariantReport:
        return cls(
            repo_id=check.repo_id,
            commit=check.commit,
            variant=check.variant,
            status=check.status,
            path=str(check.path),
            problems=[str(p) for p in check.problems],
            signature=signature,
        )


class SyncReport(Report):
    """`kernel-lock sync --json`."""

    target: TargetReport | None = Field(description="null with --variant or --all-variants")
    lock: LockChanges | None = Field(
        description="Set where sync locked first (the lock was missing or stale)"
    )
    variants: list[VariantReport]
    downloaded_files: int
    downloaded_bytes: int
    dry_run: bool = Field(False, description="With --dry-run: nothing was written or fetched")


class VerifyReport(Report):
    """`kernel-lock verify --json`."""

    ok: bool
    target: TargetReport | None
    variants: list[VariantReport]


class KernelStatusReport(JsonModel):
    """One row of `kernel-lock status --json`."""

    repo_id: str = Field(description="As pyproject.toml names it")
    resolved_repo: str = Field(description="The repo that holds it, after any redirect")
    requirement: str
    direct: bool
    commit: str
    trust: str | None
    variant: str | None = Field(description="The variant selected for the target; null where none fits")
    variant_error: str | None
    sync: Literal["verified", "missing", "corrupt"]
    problems: list[str]
    python_depends: list[str]
    python_missing: list[str]
    newer_version: int | None = Field(description="With --outdated: a newer major version on the Hub")
    newer_commit: str | None = Field(
        description="With --outdated: the head of the locked branch, if it moved"
    )
    signer: Signer | None = Field(description="Who signed the selected variant, as the lock records it")
    signed_variants: int = Field(description="How many of the kernel's locked variants are signed")
    provenance: list[Provenance] = Field(
        description="How the kernel's variants were built (from metadata.json)"
    )


class StatusReport(Report):
    """`kernel-lock status --json`."""

    lockfile: str
    up_to_date: bool | None = Field(
        description="Whether the lock matches pyproject.toml; null where there is no pyproject.toml"
    )
    differences: list[str]
    target: TargetReport
    kernels: list[KernelStatusReport]


class DecisionReport(JsonModel):
    """Whether a variant fits the target: the one it would load, another that fits, or rejected and why."""

    variant: str
    status: Literal["preferred", "compatible", "rejected"]
    reason: str | None
    why: Rejection | None = Field(
        default=None, description="The reason as a stable code (e.g. python-too-old); null where it fits"
    )


class VersionReport(JsonModel):
    """One major version of a kernel repo."""

    version: int
    commit: str
    unstable: bool
    variants: list[str]
    selected: str | None = Field(description="The variant the target would load; null where none fits")
    decisions: list[DecisionReport] = Field(description="Every variant, in the order of preference")


class VersionsReport(Report):
    """`kernel-lock versions --json`."""

    repo_id: str = Field(description="The repo that holds the kernel, after any redirect")
    target: TargetReport
    trusted_publisher: bool = Field(
        description="Whether the Hub marks its organization a trusted kernel publisher"
    )
    versions: list[VersionReport]


class AddedKernel(JsonModel):
    """One repo `add` required."""

    repo_id: str
    requirement: str
    action: Literal["added", "updated", "unchanged"]
    redirects_to: str | None = Field(
        default=None, description="The repo its kernel-status.toml redirects to, which the lock pins"
    )


class AddReport(LockChanges, Report):
    """`kernel-lock add --json`."""

    kernels: list[AddedKernel] = Field(description="Each repo named, in the order given")
    variants: list[VariantReport] = Field(
        default_factory=list, description="The variants synced for this machine (none with --no-sync)"
    )


class RemoveReport(LockChanges, Report):
    """`kernel-lock remove --json`."""

    repo_id: str = Field(description="The first repo removed (all of them: repo-ids)")
    repo_ids: list[str] = Field(default_factory=list, description="Every repo removed, in the order given")
    required_by: list[str] = Field(
        description="Locked kernels that still require one of them (it stays in the lock as their dependency)"
    )


class ExportReport(Report):
    """`kernel-lock export -o FILE --json`."""

    format: Literal["kernels", "kernels-legacy"]
    output: str
    kernels: int = Field(
        description="Locked kernels exported (entries may merge where the format keys by repo)"
    )


class ImportReport(Report):
    """`kernel-lock import --json`."""

    format: Literal["kernels", "kernels-legacy"]
    source: str
    backup: str | None = Field(description="Where an imported kernels.lock was kept, when imported in place")
    written: list[str]
    added_dependencies: dict[str, str] = Field(description="Requirements written to pyproject.toml")


class EnvReport(Report):
    """`kernel-lock env --json`."""

    target: TargetReport
    python: str
    torch_path: str | None = Field(description="Where torch is installed; null where it is not importable")


class KernelRequestReport(JsonModel):
    """A kernel a program asked the `kernels` library for."""

    repo_id: str
    version: int | None
    revision: str | None
    trust_remote_code: bool


class RunRecordReport(Report):
    """`kernel-lock run --record --json`."""

    exit_code: int = Field(description="The command's exit status")
    requests: list[KernelRequestReport]
    added: dict[str, str] = Field(description="Requirements written to pyproject.toml, by repo id")
    conflicts: list[str]


class RunReport(Report):
    """`kernel-lock run --json` (without --record): the command ran to its end, enforced."""

    exit_code: int = Field(description="The command's exit status")
    lockfile: str = Field(description="The lock every kernel load answered from")
    downloaded_files: int = Field(0, description="Files `--sync` downloaded before the run")


class CompletionReport(Report):
    """`kernel-lock completion --json`."""

    shell: Literal["bash", "zsh", "fish"]
    script: str


class InitReport(Report):
    """`kernel-lock init --json`."""

    pyproject: str
    action: Literal["created", "added-table", "unchanged"]


class TreeNode(JsonModel):
    """A locked kernel in `kernel-lock tree`, with the kernels it requires (or, inverted, that require it)."""

    repo_id: str
    key: str = Field(description="`repo@vN` or `repo@rev:REVISION`")
    commit: str
    variants: list[str] = Field(description="Variants of the parent this edge is for (empty for a root)")
    children: list[TreeNode]
    repeated: bool = Field(False, description="Shown in full elsewhere in the tree (or a cycle)")


class TreeReport(Report):
    """`kernel-lock tree --json`."""

    invert: bool
    kernels: list[TreeNode]


class PrunedReport(JsonModel):
    """A commit (`variant` null: all of it) or one variant of a commit, removed from the cache."""

    repo_id: str
    commit: str
    variant: str | None


class PruneReport(Report):
    """`kernel-lock cache prune --json`."""

    dry_run: bool
    lockfiles: list[str] = Field(description="The locks whose kernels were kept")
    removed: list[PrunedReport]
    blobs: int = Field(description="File contents removed (or, on a dry run, that would be)")
    freed_bytes: int


REPORTS: dict[str, type[Report]] = {
    "error": ErrorReport,
    "lock": LockReport,
    "lock-check": LockCheckReport,
    "sync": SyncReport,
    "verify": VerifyReport,
    "status": StatusReport,
    "versions": VersionsReport,
    "add": AddReport,
    "remove": RemoveReport,
    "import": ImportReport,
    "export": ExportReport,
    "env": EnvReport,
    "run-record": RunRecordReport,
    "run": RunReport,
    "completion": CompletionReport,
    "init": InitReport,
    "tree": TreeReport,
    "cache-prune": PruneReport,
}
