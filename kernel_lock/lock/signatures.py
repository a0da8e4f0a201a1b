"""Publisher signatures: verify a variant's `metadata.json.sigstore` offline and name who signed it.

`sigstore`'s own `Verifier` does all of the cryptography (certificate chain at the log's time, SCT,
transparency-log inclusion proof, checkpoint and signed entry timestamp, the signature over the exact
bytes of `metadata.json`); this module supplies the trusted root (the production one shipped in the
`sigstore` package, or a file the project names) and the policy (`kernel_lock.core.signers`), and turns every
refusal into a `SignatureError` naming the kernel, the variant and why. sigstore is imported only here,
and only when a signature is checked.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kernel_lock.core.signers import SignaturePolicy, Signer, Signing
from kernel_lock.errors import ConfigError, SignatureError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from kernel_lock.core.lockfile import LockedKernel
    from kernel_lock.lock.digest import Algorithm

BUNDLE_NAME = "metadata.json.sigstore"
METADATA_NAME = "metadata.json"

Reason = Literal[
    "unsigned",
    "invalid-bundle",
    "untrusted-signer",
    "invalid-signature",
    "digest-mismatch",
    "signer-mismatch",
    "identity-mismatch",
]

_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
_ISSUER = "1.3.6.1.4.1.57264.1.8"
_BUILD_SIGNER_URI = "1.3.6.1.4.1.57264.1.9"
_SOURCE_REPOSITORY_URI = "1.3.6.1.4.1.57264.1.12"


@dataclass(frozen=True)
class Where:
    """The variant a signature belongs to, for error messages."""

    repo_id: str
    commit: str
    variant: str


def signature_error(
    where: Where, reason: Reason, detail: str, *, signer: Signer | None = None
) -> SignatureError:
    """The error for a variant whose signature does not pass, with the reason as data."""
    how = {
        "unsigned": "Ask its publisher to sign it, or drop require-signature for this kernel in pyproject.toml",
        "invalid-bundle": "Tell its publisher; the Hub or mirror may also have served a damaged file",
        "untrusted-signer": (
            "If you trust that identity, add it to signers in [tool.kernels] (or on the dependency) in "
            "pyproject.toml"
        ),
        "invalid-signature": "Tell its publisher; the files may have been changed after they were signed",
        "digest-mismatch": "The files are not the ones the publisher signed; tell the publisher",
        "signer-mismatch": "kernels.lock does not record what the resolver found; run `kernel-lock lock`",
        "identity-mismatch": (
            "A signed build was served in place of another (a replay); tell the publisher, and do not use this "
            "commit until the Hub serves the build signed for it"
        ),
    }[reason]
    return SignatureError(
        f"{where.repo_id} variant {where.variant} (commit {where.commit[:12]}): {detail}. {how}.",
        repo_id=where.repo_id,
        commit=where.commit,
        variant=where.variant,
        reason=reason,
        signer=signer,
    )


class Verifiers:
    """One sigstore `Verifier` per trusted root (None = production), built on first use, shared by threads."""

    def __init__(self) -> None:
        self._built: dict[Path | None, Any] = {}
        self._lock = threading.Lock()

    def get(self, trusted_root: Path | None) -> Any:
        """The verifier for `trusted_root` (a `trusted_root.json`), or the production one shipped in sigstore."""
        with self._lock:
            if trusted_root not in self._built:
                self._built[trusted_root] = _build_verifier(trusted_root)
            return self._built[trusted_root]


def _build_verifier(trusted_root: Path | None) -> Any:
    from sigstore.errors import Error
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    if trusted_root is None:
        # sigstore logs a warning that offline means no TUF refresh: that is the point here, not news.
        tuf_log = logging.getLogger("sigstore._internal.tuf")
        level = tuf_log.level
        tuf_log.setLevel(logging.ERROR)
        try:
            return Verifier.production(offline=True)
        except (OSError, Error) as exc:
            raise SignatureError(
                f"Cannot load Sigstore's production trusted root offline ({exc}). Name a trusted_root.json "
                f"with trusted-root in [tool.kernels] of pyproject.toml."
            ) from None
        finally:
            tuf_log.setLevel(level)
    try:
        return Verifier(trusted_root=TrustedRoot.from_file(str(trusted_root)))
    except (OSError, ValueError, Error) as exc:
        raise ConfigError(
            f"Cannot read the Sigstore trusted root {trusted_root} ({exc}). Point trusted-root in [tool.kernels] "
            f"of pyproject.toml at a valid trusted_root.json."
        ) from None


def certificate_signer(cert: Certificate) -> Signer | None:
    """The identity a Fulcio certificate carries (None if it lacks one of the extensions)."""
    from cryptography.hazmat import asn1
    from cryptography.x509 import ExtensionNotFound, ObjectIdentifier

    values = []
    for oid in (_ISSUER, _BUILD_SIGNER_URI, _SOURCE_REPOSITORY_URI):
        try:
            raw = cert.extensions.get_extension_for_oid(ObjectIdentifier(oid)).value.value  # type: ignore[attr-defined]
            values.append(asn1.decode_der(str, raw))
        except (ExtensionNotFound, ValueError, AttributeError):
            return None
    issuer, workflow, repository = values
    return Signer(issuer=issuer, workflow=workflow, repository=repository)


class _AllowedSigners:
    """A sigstore verification policy: the certificate names an allowed signer (issuer in both extensions)."""

    def __init__(self, allowed: tuple[Signer, ...]) -> None:
        self.allowed = allowed
        self.seen: Signer | None = None
        self.matched: Signer | None = None

    def verify(self, cert: Certificate) -> None:
        from cryptography.x509 import ExtensionNotFound, ObjectIdentifier
        from sigstore.errors import VerificationError

        self.seen = certificate_signer(cert)
        try:
            issuer_v1 = cert.extensions.get_extension_for_oid(
                ObjectIdentifier(_ISSUER_V1)
            ).value.value.decode()  # type: ignore[attr-defined]
        except (ExtensionNotFound, UnicodeDecodeError):
            issuer_v1 = None
        if self.seen is None or issuer_v1 != self.seen.issuer or self.seen not in self.allowed:
            raise VerificationError("the certificate does not name an allowed signer")
        self.matched = self.seen


def verify_signature(
    metadata: bytes, bundle: bytes, policy: SignaturePolicy, verifier: Any, where: Where
) -> Signer:
    """Verify `bundle` over the exact bytes `metadata` against `policy`; the signer, or a `SignatureError`."""
    from sigstore.models import Bundle

    try:
        parsed = Bundle.from_json(bundle)
    # Any failure to parse the untrusted bundle (sigstore raises several kinds) is a refusal.
    except Exception as exc:
        raise signature_error(
            where, "invalid-bundle", f"{BUNDLE_NAME} is not a valid Sigstore bundle ({exc})"
        ) from None
    check = _AllowedSigners(policy.signers)
    try:
        verifier.verify_artifact(metadata, parsed, check)
    # Any failure inside the verifier is a refusal; its message says which step failed.
    except Exception as exc:
        if check.seen is not None and check.matched is None:
            allowed = "; ".join(s.describe() for s in policy.signers)
            raise signature_error(
                where,
                "untrusted-signer",
                f"signed by {check.seen.describe()} of {check.seen.repository}, which is not an allowed signer "
                f"(allowed: {allowed})",
                signer=check.seen,
            ) from None
        raise signature_error(
            where, "invalid-signature", f"the signature over {METADATA_NAME} does not verify ({exc})"
        ) from None
    if check.matched is None:
        raise signature_error(where, "invalid-signature", "the verifier did not check the signer")
    return check.matched


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return dict(pairs)


def _kernel_name(text: str) -> str:
    """A kernel or repo name compared as the Hub and Python spell it alike (case, `_` for `-`)."""
    return text.lower().replace("_", "-")


def _variant_backend(variant: str) -> str | None:
    """The backend a variant name is built for (`cuda`, `cpu`, ...); None for `torch-universal` (any)."""
    from kernel_lock.core.target import BACKENDS
    from kernel_lock.core.variants import parse_variant

    parsed = parse_variant(variant)
    if parsed.framework != "noarch":
        return parsed.backend
    if parsed.backend == "universal":
        return None
    return {b.noarch or b.name: b.name for b in BACKENDS.values()}.get(parsed.backend, parsed.backend)


def required_version(entry: LockedKernel) -> int | None:
    """The major version a lock entry's requirement names: its `version`, or N of a `vN` revision."""
    if entry.version is not None:
        return entry.version
    found = re.fullmatch(r"v(\d+)", entry.revision or "")
    return int(found[1]) if found else None


def check_identity(where: Where, entry: LockedKernel, metadata: bytes) -> None:
    """Refuse a signed `metadata.json` that names another kernel, version or backend than the one locked.

    A signature says who built the bytes, not where they were served: the same CI signs every repo of
    its organization, every variant and every version. So the signed build must itself say it is this
    repo's kernel (`name`), of the version the requirement names (`version`), for the variant's backend
    (`backend.type`; `torch-universal` takes any), else a signed build of another repo, variant or
    version served here would pass as this one.
    """
    try:
        parsed = json.loads(metadata, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise signature_error(
            where, "identity-mismatch", f"the signed {METADATA_NAME} is not readable JSON ({exc})"
        ) from None
    if not isinstance(parsed, dict):
        raise signature_error(where, "identity-mismatch", f"the signed {METADATA_NAME} is not a JSON object")
    problems = []
    repo_name = entry.repo_id.split("/", 1)[1]
    name = parsed.get("name")
    if not isinstance(name, str) or _kernel_name(name) != _kernel_name(repo_name):
        problems.append(f"its name is {name!r}, not {repo_name!r}")
    version = required_version(entry)
    signed_version = parsed.get("version")
    if version is not None and (type(signed_version) is not int or signed_version != version):
        problems.append(f"its version is {signed_version!r}, not {version}")
    backend = _variant_backend(where.variant)
    info = parsed.get("backend")
    signed_backend = info.get("type") if isinstance(info, dict) else None
    if backend is not None and (not isinstance(signed_backend, str) or signed_backend.lower() != backend):
        problems.append(f"it is built for backend {signed_backend!r}, not {backend!r}")
    if problems:
        raise signature_error(
            where,
            "identity-mismatch",
            f"the signed {METADATA_NAME} is not a build of this kernel: {'; '.join(problems)}",
        )


def check_digest(
    where: Where, metadata: bytes, files: Mapping[str, str | None], algorithm: Algorithm = "sha256"
) -> None:
    """The variant's files (relative path -> hex hash with `algorithm`, or None where only presence is known)
    against the digest in its signed `metadata.json`; a signed `metadata.json` without one covers no file."""
    from kernel_lock.lock.digest import MalformedDigest, parse_digest

    try:
        digest = parse_digest(metadata)
    except MalformedDigest as exc:
        raise signature_error(where, "digest-mismatch", f"the signed {METADATA_NAME}: {exc.reason}") from None
    if digest is None:
        raise signature_error(
            where,
            "digest-mismatch",
            f"the signed {METADATA_NAME} has no digest of the variant's files, so the signature does not cover them",
        )
    hashes = files if digest.algorithm == algorithm else dict.fromkeys(files)
    violations = digest.check(hashes, digest.algorithm)
    if violations:
        shown = "; ".join(map(str, violations[:3])) + ("; ..." if len(violations) > 3 else "")
        raise signature_error(where, "digest-mismatch", f"the files do not match the signed digest ({shown})")


def check_signatures(
    entry: LockedKernel,
    metadata: Mapping[str, bytes],
    bundles: Mapping[str, bytes | None],
    files: Mapping[str, Mapping[str, str | None]],
    policy: SignaturePolicy,
    verifier: Callable[[], Any],
) -> dict[str, Signer]:
    """Verify every variant's bundle (None: listed, but in Git LFS) at lock, then its listed files (`files`:
    variant -> relative path -> LFS SHA-256, or None for a git-stored file) against the signed digest;
    variant -> signer.

    A bundle that is present must verify, always; a variant without one is an error under
    `require-signature` (else `unsigned_notice` has a line for the kernel).
    """
    unsigned = sorted(set(entry.variants) - set(bundles))
    if unsigned and policy.required:
        others = f" (nor do {', '.join(unsigned[1:])})" if len(unsigned) > 1 else ""
        raise signature_error(
            Where(entry.repo_id, entry.commit, unsigned[0]),
            "unsigned",
            f"has no {BUNDLE_NAME}{others}, and require-signature is set",
        )
    signed = {}
    for variant, bundle in sorted(bundles.items()):
        where = Where(entry.repo_id, entry.commit, variant)
        data = metadata.get(variant)
        if bundle is None:
            raise signature_error(where, "invalid-bundle", f"its {BUNDLE_NAME} is listed as a Git LFS file")
        if data is None:
            raise signature_error(
                where, "invalid-bundle", f"it has a {BUNDLE_NAME} but no {METADATA_NAME} for it to sign"
            )
        signed[variant] = verify_signature(data, bundle, policy, verifier(), where)
        check_identity(where, entry, data)
        check_digest(where, data, files.get(variant, {}))
    return signed


def recheck_signature(
    entry: LockedKernel,
    variant: str,
    metadata: bytes | None,
    bundle: bytes | None,
    policy: SignaturePolicy,
    verifier: Callable[[], Any],
) -> Signer | None:
    """Verify again, offline, that a locked variant is signed as the lock records: its signer, or None."""
    where = Where(entry.repo_id, entry.commit, variant)
    recorded = entry.signed_by.get(variant)
    if bundle is None:
        if recorded is not None:
            raise signature_error(
                where,
                "signer-mismatch",
                f"the lock records a signature by {recorded.describe()}, but the variant has no {BUNDLE_NAME}",
            )
        if policy.required:
            raise signature_error(where, "unsigned", f"has no {BUNDLE_NAME}, and require-signature is set")
        return None
    if metadata is None:
        raise signature_error(
            where, "invalid-bundle", f"it has a {BUNDLE_NAME} but no {METADATA_NAME} for it to sign"
        )
    signer = verify_signature(metadata, bundle, policy, verifier(), where)
    check_identity(where, entry, metadata)
    if signer != recorded:
        lock_says = recorded.describe() if recorded else "no signature"
        raise signature_error(
            where, "signer-mismatch", f"signed by {signer.describe()}, but the lock records {lock_says}"
        )
    return signer


def synced_material(
    entry: LockedKernel, variant: str, cache: Path | None = None
) -> tuple[bytes | None, bytes | None]:
    """A synced variant's `metadata.json` and `metadata.json.sigstore` (None where absent or not a file)."""
    from kernel_lock.core.cache_layout import variant_dir
    from kernel_lock.core.fsutil import read_regular_file

    folder = variant_dir(entry.repo_id, entry.commit, variant, cache)
    found: list[bytes | None] = []
    for name in (METADATA_NAME, BUNDLE_NAME):
        try:
            found.append(read_regular_file(folder / name))
        except OSError:  # absent, or not a regular file (a FIFO planted there would hang the read)
            found.append(None)
    return found[0], found[1]


def unsigned_notice(entry: LockedKernel) -> str | None:
    """One line naming a kernel's unsigned variants (None when every variant is signed)."""
    unsigned = sorted(set(entry.variants) - set(entry.signed_by))
    if not unsigned:
        return None
    shown = ", ".join(unsigned[:3]) + (", ..." if len(unsigned) > 3 else "")
    return (
        f"{entry.repo_id}: {len(unsigned)} of {len(entry.variants)} variant(s) are unsigned "
        f"(no {BUNDLE_NAME}: {shown}); set require-signature = true to refuse unsigned builds."
    )


def check_synced_signature(
    entry: LockedKernel,
    variant: str,
    policy: SignaturePolicy,
    verifier: Callable[[], Any],
    cache: Path | None = None,
) -> Signer | None:
    """A synced variant's signature verified again (as `recheck_signature`), then every file of it hashed
    against the signed digest: its signer, or None where it is unsigned."""
    from kernel_lock.core.cache_layout import variant_dir
    from kernel_lock.lock.digest import MalformedDigest, digest_folder, parse_digest

    metadata, bundle = synced_material(entry, variant, cache)
    signer = recheck_signature(entry, variant, metadata, bundle, policy, verifier)
    if signer is not None and metadata is not None:
        try:
            digest = parse_digest(metadata)
        except MalformedDigest:
            digest = None
        algorithm = digest.algorithm if digest else "sha256"
        folder = variant_dir(entry.repo_id, entry.commit, variant, cache)
        check_digest(
            Where(entry.repo_id, entry.commit, variant), metadata, digest_folder(folder, algorithm), algorithm
        )
    return signer


def check_required_signatures(
    pairs: Iterable[tuple[LockedKernel, str]], signing: Signing, cache: Path | None = None
) -> None:
    """At sync: every synced variant whose kernel requires a signature is verified again, offline, from its
    files (`check_synced_signature`); the first that fails raises `SignatureError`.

    The lock's `signed-by` is not taken on trust: a hand-edited lock could claim a signature for any commit.
    """
    verifiers = Verifiers()
    for entry, variant in pairs:
        policy = signing.policy(entry.requested_repo)
        if policy.required:
            check_synced_signature(entry, variant, policy, lambda: verifiers.get(signing.trusted_root), cache)
