"""Exception types of kernel-lock: one base class, one subclass per kind of failure.

The CLI maps each class to an exit code in one place (`kernel_lock.cli.exitcodes`); the
Python API raises them as they are. Every message is one paragraph that says
what went wrong, where, and how to fix it. Each class has a stable `code`, the
`error.code` of `--json` output: scripts match on it, never on the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, TypeVar

_E = TypeVar("_E", bound="_HowToFix")


class KernelLockWarning(UserWarning):
    """Something the user should change, but that does not stop the command."""


class KernelLockNotice(KernelLockWarning):
    """A notice that stays true run after run (a newer version, unsigned builds): shown once while it is new."""


class KernelLockError(Exception):
    """Base class of every error kernel-lock raises on purpose."""

    code: ClassVar[str] = "error"


class ConfigError(KernelLockError):
    """`pyproject.toml` or its `[tool.kernels]` table is missing or malformed."""

    code = "config-invalid"


class RangeSpecifierError(ConfigError):
    """An old `kernels` range specifier (`">=0.0.2 && <0.1.0"`) where a major version belongs."""

    code = "version-specifier-unsupported"

    def __init__(self, message: str, repo_id: str) -> None:
        super().__init__(message)
        self.repo_id = repo_id


class LockfileError(KernelLockError):
    """`kernels.lock` is missing, unreadable or malformed."""

    code = "lock-invalid"


class LockMissing(LockfileError):
    """There is no `kernels.lock` yet: a check that failed, as `uv sync --locked` reports it."""

    code = "lock-missing"


class LockOutOfDate(KernelLockError):
    """The lock does not match `pyproject.toml` (`lock --check`, `sync` without `--frozen`).

    `problems` holds one line per difference; `how` says how to bring the lock up to date.
    """

    code = "lock-out-of-date"

    def __init__(
        self,
        lockfile: object,
        pyproject: object,
        problems: Sequence[str],
        *,
        how: str = "Run `kernel-lock lock` and commit the updated kernels.lock.",
    ) -> None:
        self.lockfile, self.pyproject, self.problems = str(lockfile), str(pyproject), tuple(problems)
        super().__init__(f"{lockfile} does not match {pyproject}: {'; '.join(problems)}. {how}")


class ResolutionError(KernelLockError):
    """A requirement cannot be resolved: unknown repo, missing version, wrong repo type."""

    code = "resolution-failed"

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class _HowToFix(ResolutionError):
    """A resolution error whose last sentence, `how`, says how to fix it; `reworded` gives one with another."""

    how: str

    def _message(self) -> str:
        raise NotImplementedError

    def reworded(self: _E, how: str) -> _E:
        """This error with another last sentence (`add` names its own options), its fields otherwise the same."""
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__, how=how)
        Exception.__init__(new, new._message())
        return new


class RepoNotFound(_HowToFix):
    """No kernel repository by that id on the Hub; `suggestion` is the closest id the Hub lists, if any."""

    code = "repo-not-found"

    def __init__(
        self,
        repo_id: str,
        endpoint: str,
        suggestion: str | None,
        *,
        how: str = "Check the repo id in pyproject.toml",
        request_id: str | None = None,
    ) -> None:
        self.repo_id, self.endpoint, self.suggestion, self.how = repo_id, endpoint, suggestion, how
        super().__init__(self._message(), request_id=request_id)

    def _message(self) -> str:
        maybe = f" Did you mean {self.suggestion}?" if self.suggestion else ""
        return (
            f"Kernel repository {self.repo_id} not found on {self.endpoint}.{maybe} {self.how}, and set HF_TOKEN "
            f"if it is private."
        )


class NoSuchVersion(_HowToFix):
    """A required major version has no `vN` branch; `available` lists the versions there are."""

    code = "no-such-version"

    def __init__(self, repo_id: str, version: int, available: Sequence[int], how: str | None = None) -> None:
        self.repo_id, self.version, self.available = repo_id, version, tuple(available)
        self.how = how or "Set the version in pyproject.toml to one of them."
        super().__init__(self._message())

    def _message(self) -> str:
        listed = ", ".join(map(str, self.available)) or "none"
        return (
            f"{self.repo_id} has no version {self.version} (no branch v{self.version}). Available versions: "
            f"{listed}. {self.how}"
        )


class UntrustedPublisher(_HowToFix):
    """A kernel's organization is not a trusted kernel publisher and the project did not opt in."""

    code = "untrusted-publisher"

    def __init__(self, repo_id: str, org: str, parent: str | None, how: str | None = None) -> None:
        self.repo_id, self.org, self.parent = repo_id, org, parent
        self.how = how or (
            (
                "set { version = ..., trust-remote-code = true } on its entry in [tool.kernels.dependencies]"
                if parent is None
                else f'add trust-remote-code = ["{repo_id}"] under [tool.kernels]'
            )
            + " in pyproject.toml"
        )
        super().__init__(self._message())

    def _message(self) -> str:
        who = self.repo_id if self.parent is None else f"{self.repo_id} (required by {self.parent})"
        return (
            f"{who} is published by {self.org}, which is not a trusted kernel publisher on the Hub. If you have "
            f"reviewed its code and trust it, {self.how}."
        )


class VariantError(KernelLockError):
    """A target is malformed, or no build variant fits it."""

    code = "target-invalid"


class NoVariantFits(VariantError):
    """No build variant of a kernel fits the target; `rejections` holds (variant, reason) for each one."""

    code = "no-variant-fits"

    def __init__(
        self,
        repo_id: str,
        target: str,
        rejections: Sequence[tuple[str, str]],
        *,
        suggestions: Sequence[str] = (),
    ) -> None:
        self.repo_id = repo_id
        self.target = target
        self.rejections = tuple(sorted(rejections))
        self.suggestions = tuple(suggestions)
        if rejections:
            listing = "".join(f"\n  - {variant}: {reason}" for variant, reason in self.rejections)
            found = f"The available variants and why each was rejected:{listing}\n"
        else:
            found = "There are no build variants at all (no build/<variant>/ directory).\n"
        fits = (
            f", or select for the environment where the kernel runs; the nearest that a variant fits: "
            f"{', '.join(f'`--target {s}`' for s in self.suggestions)}"
            if self.suggestions
            else ""
        )
        super().__init__(f"{self.summary}. {found}Pick one explicitly with `--variant NAME`{fits}.")

    @property
    def summary(self) -> str:
        """One line: which kernel, and for which target."""
        of_repo = f" of {self.repo_id}" if self.repo_id else ""
        return f"No build variant{of_repo} fits {self.target}"


class MissingPythonDependency(KernelLockError):
    """A kernel variant needs Python packages that are not installed in this environment."""

    code = "missing-python-dependency"


class HubError(KernelLockError):
    """The Hub (or mirror) is unreachable, failed, or served something inconsistent.

    `request_id` is the Hub's id of the request that failed (its `X-Request-Id`), when there was an answer:
    quote it to the Hub's support. The CLI shows it with `--verbose`.
    """

    code = "hub-error"

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class HubOffline(HubError):
    """A request the Hub would answer, refused because this run is offline (`HF_HUB_OFFLINE`, or `--offline`)."""

    code = "hub-offline"

    def __init__(self, what: str, repo_id: str, endpoint: str, *, by_option: bool = False) -> None:
        self.what, self.repo_id, self.endpoint, self.by_option = what, repo_id, endpoint, by_option
        why, fix = (
            ("--offline was given", "Run without --offline")
            if by_option
            else ("HF_HUB_OFFLINE is set", "Unset HF_HUB_OFFLINE")
        )
        super().__init__(f"Cannot {what} of {repo_id}: {why}. {fix} to reach the Hub at {endpoint}.")


class MalformedReply(HubError):
    """The Hub answered, but with something that is not what its API returns (bad JSON, wrong shape).

    `sent` says what the Hub sent (`The Hub at URL sent a malformed list of ...`); the message adds the fix.
    """

    code = "hub-malformed-reply"

    def __init__(self, sent: str, *, request_id: str | None = None) -> None:
        self.sent = sent
        super().__init__(
            f"{sent}. Refusing it; check HF_ENDPOINT points at a Hub or a faithful mirror.",
            request_id=request_id,
        )


class CacheError(KernelLockError):
    """The Hugging Face cache cannot be written or read here (permissions, a full disk, a read-only mount)."""

    code = "cache-unwritable"


class VerificationError(KernelLockError):
    """Files on disk do not match the lock: changed, missing, extra, or not synced."""

    code = "verification-failed"


class NotSyncedError(VerificationError):
    """The locked variant has not been synced (or not verified) into the cache."""

    code = "not-synced"


class KernelsLockFound(LockfileError):
    """Where kernel-lock's TOML lock belongs lies a JSON lock of the `kernels` library (`kernels lock`)."""

    code = "lock-is-kernels-json"

    def __init__(self, message: str, path: str, format: str) -> None:
        super().__init__(message)
        self.path = path
        self.format = format


class NotLockedError(LockfileError):
    """Under enforcement, the `kernels` library asked for a kernel (repo and version/revision) the lock does not hold."""

    code = "not-locked"


class UnsupportedKernelsVersion(KernelLockError):
    """Enforcement cannot hook this version of the `kernels` library (it knows 0.17.x, 0.18.x and 0.19.x)."""

    code = "kernels-version-unsupported"

    def __init__(self, message: str, *, version: str, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.version = version
        self.missing = missing


class OverrideRefused(KernelLockError):
    """Under enforcement, a `kernels` variable (`variable`) would load something other than the lock."""

    code = "override-refused"

    def __init__(self, message: str, *, variable: str) -> None:
        super().__init__(message)
        self.variable = variable


class SyncFailed(VerificationError):
    """Files the Hub served for a sync did not match the lock (none was kept); `failures` holds one error per variant."""

    code = "sync-failed"

    def __init__(self, failures: Sequence[VerificationError], *, endpoint: str) -> None:
        self.failures = tuple(failures)
        self.endpoint = endpoint
        super().__init__(
            " ".join(map(str, self.failures))
            + f" The Hub at {endpoint} served files that do not match kernels.lock; none of them was kept, and "
            f"nothing that verified before was touched. Sync again once the Hub or mirror serves the locked files."
        )


class SignatureError(VerificationError):
    """A variant's publisher signature is missing where required, invalid, or by a signer the policy refuses.

    `reason` says which (`unsigned`, `invalid-bundle`, `untrusted-signer`, `invalid-signature`,
    `digest-mismatch`, `signer-mismatch`, `identity-mismatch`); `signer` is the identity the certificate named, where one was read.
    """

    code = "signature-invalid"

    def __init__(
        self,
        message: str,
        *,
        repo_id: str | None = None,
        commit: str | None = None,
        variant: str | None = None,
        reason: str | None = None,
        signer: object = None,
    ) -> None:
        super().__init__(message)
        self.repo_id = repo_id
        self.commit = commit
        self.variant = variant
        self.reason = reason
        self.signer = signer


class CommitNotOnRef(VerificationError):
    """A locked commit is not on the history of the branch or tag its requirement names (a pull-request commit)."""

    code = "commit-not-on-ref"

    def __init__(self, message: str, *, repo_id: str, commit: str, ref: str) -> None:
        super().__init__(message)
        self.repo_id = repo_id
        self.commit = commit
        self.ref = ref


class DigestError(VerificationError):
    """A variant disagrees with the publisher's digest in its `metadata.json`, or that digest is malformed.

    `violations` holds the differences as `kernel_lock.lock.digest` reports them (empty for a malformed digest).
    """

    code = "digest-mismatch"

    def __init__(
        self, message: str, *, repo_id: str, commit: str, variant: str, violations: Sequence[object] = ()
    ) -> None:
        super().__init__(message)
        self.repo_id = repo_id
        self.commit = commit
        self.variant = variant
        self.violations = list(violations)
