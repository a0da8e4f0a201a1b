"""Who may sign a kernel's builds: signer identities, the `kernels` library's defaults, the per-kernel policy.

A signer is the identity a Sigstore certificate vouches for: the OIDC issuer, the workflow that signed
(Fulcio's build signer URI) and the source repository it ran for. A variant's `metadata.json.sigstore`
is accepted only from a signer its kernel's policy allows. `Signer` itself is defined with the
requirement (`kernel_lock.core.requirement`), which the lock model and the verified load import without
this policy. Nothing here imports sigstore.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kernel_lock.core.requirement import GITHUB_ACTIONS_ISSUER, Signer

__all__ = [
    "DEFAULT_SIGNERS",
    "GITHUB_ACTIONS_ISSUER",
    "SignaturePolicy",
    "Signer",
    "Signing",
    "policy",
    "policy_problems",
]


def _github(repository: str, workflow: str) -> Signer:
    repo = f"https://github.com/huggingface/{repository}"
    return Signer(
        issuer=GITHUB_ACTIONS_ISSUER,
        workflow=f"{repo}/.github/workflows/{workflow}@refs/heads/main",
        repository=repo,
    )


# The `kernels` library's own defaults (0.17: `DEFAULT_POLICIES`; 0.18 and 0.19 add kernels-community-rs to
# `DEFAULT_POLICY`; a test keeps them equal to the installed release's).
DEFAULT_SIGNERS: tuple[Signer, ...] = (
    *(
        _github("kernels-community", w)
        for w in ("build.yaml", "build-mac.yaml", "build-windows.yaml", "sign-old-builds.yaml")
    ),
    _github("kernels-community-rs", "build.yaml"),
)


@dataclass(frozen=True)
class SignaturePolicy:
    """What one kernel's variants must satisfy: who may sign them, and whether a signature is required."""

    signers: tuple[Signer, ...] = DEFAULT_SIGNERS
    required: bool = False

    def allows(self, signer: Signer) -> bool:
        """Whether `signer` is one of the allowed identities."""
        return signer in self.signers


def policy(extra: Iterable[Signer] = (), *, required: bool = False) -> SignaturePolicy:
    """The default signers plus `extra` (deduplicated, in order), and the requirement."""
    return SignaturePolicy(signers=tuple(dict.fromkeys((*DEFAULT_SIGNERS, *extra))), required=required)


@dataclass(frozen=True)
class Signing:
    """A project's signature settings: the policy of each kernel (by the repo id pyproject.toml names)."""

    default: SignaturePolicy = SignaturePolicy()
    per_repo: Mapping[str, SignaturePolicy] = field(default_factory=dict)
    trusted_root: Path | None = None  # a Sigstore trusted_root.json; None: the production root in sigstore

    def policy(self, repo_id: str) -> SignaturePolicy:
        """The policy for `repo_id`: its dependency's own, else the project-wide one."""
        return self.per_repo.get(repo_id, self.default)


def policy_problems(
    variants: Iterable[str], signed_by: Mapping[str, Signer], policy: SignaturePolicy
) -> list[str]:
    """What a lock entry's recorded signers break of `policy`, one line per variant (offline, no crypto)."""
    problems = []
    for variant in sorted(variants):
        signer = signed_by.get(variant)
        if signer is None and policy.required:
            problems.append(f"variant {variant} is unsigned, and require-signature is set")
        elif signer is not None and not policy.allows(signer):
            problems.append(
                f"variant {variant} is signed by {signer.describe()}, which is not an allowed signer"
            )
    return problems
