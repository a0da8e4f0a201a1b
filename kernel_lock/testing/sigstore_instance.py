"""A private Sigstore instance for offline tests: a Fulcio-like CA, a CT log, a Rekor-like log, a trusted root.

It signs bytes (a variant's `metadata.json`) into the same bundle a GitHub Actions workflow gets from the
public-good instance: a short-lived certificate carrying Fulcio's OIDC extensions and an embedded SCT from
the CT log, a `hashedrekord` 0.0.1 log entry with a Merkle inclusion proof, a signed checkpoint and a signed
entry timestamp. `trusted_root_json()` describes the instance the way Sigstore's TUF repository describes
production, so `sigstore`'s own `Verifier(trusted_root=...)` does all of the verifying. Keys come from a
seed, so two instances with the same seed trust each other and ones with different seeds do not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kernel_lock.core.signers import Signer

__all__ = ["SigstoreInstance"]

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
CERT_LIFETIME = timedelta(minutes=10)

_FULCIO = "1.3.6.1.4.1.57264.1."
_SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def _key(seed: str, role: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key derived from the instance seed and its role (deterministic, so tests are too)."""
    scalar = int.from_bytes(hashlib.sha256(f"{seed}/{role}".encode()).digest(), "big")
    return ec.derive_private_key(scalar % (2**255) + 1, ec.SECP256R1())


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der(tag: int, raw: bytes) -> bytes:
    """A DER primitive (tag, definite length, content)."""
    n = len(raw)
    width = (n.bit_length() + 7) // 8
    length = bytes([n]) if n < 0x80 else bytes([0x80 | width]) + n.to_bytes(width, "big")
    return bytes([tag]) + length + raw


def _der_utf8(value: str) -> bytes:
    """A DER UTF8String, as Fulcio encodes its newer (`.8` onwards) extensions."""
    return _der(0x0C, value.encode())


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _tree_hash(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _node_hash(_tree_hash(leaves[:k]), _tree_hash(leaves[k:]))


def _inclusion_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 audit path of leaf `index`, bottom-up, as Rekor returns it."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < k:
        return [*_inclusion_path(index, leaves[:k]), _tree_hash(leaves[k:])]
    return [*_inclusion_path(index - k, leaves[k:]), _tree_hash(leaves[:k])]


class SigstoreInstance:
    """Fulcio, CT log and Rekor in one object; `sign` returns a bundle, `trusted_root_json` the trust root."""

    def __init__(self, seed: str = "kernel-lock-test-instance", *, name: str = "kernel-lock.test") -> None:
        self.name = name
        self._ca_key = _key(seed, "fulcio")
        self._ct_key = _key(seed, "ctlog")
        self._log_key = _key(seed, "rekor")
        self._seed = seed
        self._ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} fulcio"),
            ]
        )
        self._ca_cert = self._make_ca()
        self._leaves: list[bytes] = []
        self._signed = 0

    def _make_ca(self) -> x509.Certificate:
        public = self._ca_key.public_key()
        valid = (EPOCH - timedelta(days=365), EPOCH + timedelta(days=365 * 50))
        return (
            self._certificate(self._ca_name, public, valid, ca=True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._ca_key, hashes.SHA384())
        )

    def _certificate(
        self,
        subject: x509.Name,
        public: ec.EllipticCurvePublicKey,
        valid: tuple[datetime, datetime],
        *,
        ca: bool,
    ) -> x509.CertificateBuilder:
        """A certificate of this instance's CA for `public` (the CA's own where `ca`, else a leaf that signs):
        its serial from the key, validity, key usage and subject key id."""
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._ca_name)
            .public_key(public)
            .serial_number(int.from_bytes(hashlib.sha256(_spki(public)).digest()[:16], "big"))
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(
                x509.KeyUsage(
                    digital_signature=not ca,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=ca,
                    crl_sign=ca,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        )

    @property
    def log_id(self) -> bytes:
        """The transparency log's id: SHA-256 of its public key (as in the trusted root)."""
        return hashlib.sha256(_spki(self._log_key.public_key())).digest()

    def trusted_root_json(self) -> str:
        """This instance's `trusted_root.json` (media type 0.1, the shape of Sigstore's TUF target)."""
        start = (EPOCH - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, object]:
            spki = _spki(key.public_key())
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": _b64(hashlib.sha256(spki).digest())},
            }

        root = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self._log_key, f"https://rekor.{self.name}")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": self.name, "commonName": f"{self.name} fulcio"},
                    "uri": f"https://fulcio.{self.name}",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(self._ca_cert.public_bytes(serialization.Encoding.DER))}
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
            "ctlogs": [log(self._ct_key, f"https://ctfe.{self.name}")],
            "timestampAuthorities": [],
        }
        return json.dumps(root, indent=2) + "\n"

    def sign_variants(
        self, files: dict[str, bytes], identity: Signer, *, skip: tuple[str, ...] = ()
    ) -> dict[str, bytes]:
        """A repo's files with a `metadata.json.sigstore` by `identity` beside every `build/<variant>/metadata.json`
        (except the variants in `skip`), as the `kernels` builder's CI leaves them."""
        signed = dict(files)
        for path, data in files.items():
            parts = path.split("/")
            if (
                len(parts) == 3
                and parts[0] == "build"
                and parts[2] == "metadata.json"
                and parts[1] not in skip
            ):
                signed[f"{path}.sigstore"] = self.sign(data, identity).encode()
        return signed

    def write_trusted_root(self, path: Path) -> Path:
        """Write `trusted_root.json` to `path` and return it."""
        path.write_text(self.trusted_root_json(), encoding="utf-8")
        return path

    def sign(
        self,
        data: bytes,
        identity: Signer,
        *,
        at: datetime | None = None,
        logged_after: timedelta = timedelta(seconds=2),
    ) -> str:
        """Sign `data` as `identity` would in CI and return the Sigstore bundle (v0.3 JSON).

        The certificate is valid for ten minutes from `at`; the log integrates the entry `logged_after`
        that (past ten minutes makes an entry logged after the certificate expired).
        """
        self._signed += 1
        issued = (at or EPOCH + timedelta(minutes=self._signed)).replace(microsecond=0)
        signing_key = _key(self._seed, f"leaf-{self._signed}")
        cert = self._issue(signing_key.public_key(), identity, issued)
        signature = signing_key.sign(data, ec.ECDSA(hashes.SHA256()))
        body = json.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest()}},
                    "signature": {
                        "content": _b64(signature),
                        "publicKey": {"content": _b64(cert.public_bytes(serialization.Encoding.PEM))},
                    },
                },
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        entry = self._log(body, int((issued + logged_after).timestamp()))
        bundle = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [entry],
                "timestampVerificationData": {},
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(hashlib.sha256(data).digest())},
                "signature": _b64(signature),
            },
        }
        return json.dumps(bundle, indent=2) + "\n"

    def _issue(
        self, public: ec.EllipticCurvePublicKey, identity: Signer, issued: datetime
    ) -> x509.Certificate:
        """A Fulcio-profile leaf certificate with an embedded SCT from this instance's CT log."""
        repo_path = identity.repository.removeprefix("https://github.com/")
        ref = identity.workflow.rpartition("@")[2]
        raw = {  # the deprecated (v1) extensions hold raw bytes
            "1": identity.issuer,
            "2": "push",
            "3": "0" * 40,
            "4": "build",
            "5": repo_path,
            "6": ref,
        }
        der = {  # the newer ones hold a DER UTF8String
            "8": identity.issuer,
            "9": identity.workflow,
            "10": "0" * 40,
            "11": "github-hosted",
            "12": identity.repository,
            "13": "0" * 40,
            "14": ref,
            "18": identity.workflow,
            "20": "push",
        }
        builder = (
            self._certificate(x509.Name([]), public, (issued, issued + CERT_LIFETIME), ca=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.workflow)]),
                critical=True,
            )
        )
        for oid, value in raw.items():
            builder = builder.add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(_FULCIO + oid), value.encode()),
                critical=False,
            )
        for oid, value in der.items():
            builder = builder.add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(_FULCIO + oid), _der_utf8(value)),
                critical=False,
            )
        precert = builder.sign(self._ca_key, hashes.SHA384())
        sct = self._sct(precert.tbs_certificate_bytes, issued)
        cert = builder.add_extension(
            x509.UnrecognizedExtension(_SCT_LIST_OID, _der(0x04, struct.pack("!H", len(sct)) + sct)),
            critical=False,
        ).sign(self._ca_key, hashes.SHA384())
        if cert.tbs_precertificate_bytes != precert.tbs_certificate_bytes:
            raise AssertionError("the SCT does not cover the issued certificate")
        return cert

    def _sct(self, tbs: bytes, issued: datetime) -> bytes:
        """One RFC 6962 SCT (as a list item) over a precertificate's TBS, signed by the CT log."""
        timestamp = int(issued.timestamp() * 1000)
        issuer_key_hash = hashlib.sha256(_spki(self._ca_key.public_key())).digest()
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)
        )
        signature = self._ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        log_id = hashlib.sha256(_spki(self._ct_key.public_key())).digest()
        sct = (
            struct.pack("!B", 0)
            + log_id
            + struct.pack("!QH", timestamp, 0)
            + struct.pack("!BBH", 4, 3, len(signature))
            + signature
        )
        return struct.pack("!H", len(sct)) + sct

    def _log(self, body: bytes, integrated_time: int) -> dict[str, object]:
        """Append `body` to the log; its entry with inclusion proof, signed checkpoint and signed entry timestamp."""
        index = len(self._leaves)
        self._leaves.append(_leaf_hash(body))
        size = len(self._leaves)
        root = _tree_hash(self._leaves)
        note = f"{self.name} - 1\n{size}\n{_b64(root)}\n"
        note_sig = self._log_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 {self.name} {_b64(self.log_id[:4] + note_sig)}\n"
        promise = json.dumps(
            {
                "body": _b64(body),
                "integratedTime": integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": index,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.log_id)},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {
                "signedEntryTimestamp": _b64(self._log_key.sign(promise, ec.ECDSA(hashes.SHA256())))
            },
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in _inclusion_path(index, self._leaves)],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }
