"""The publisher's per-file digest in a variant's `metadata.json`, and checking files against it.

The `kernels` builder writes `"digest": {"algorithm": "sha256" | "sha512", "files": {relpath: base64}}`
into each variant's `metadata.json`: every file of the variant except `metadata.json`,
`metadata.json.sigstore` (both at the variant's top level), `__pycache__/` and `*.pyc`, with paths
relative to the variant folder, `/`-separated. `PublisherDigest.check` compares a set of files with it
and returns the differences as the `kernels` library's own `DigestViolation` kinds (missing file,
unknown file, hash mismatch, algorithm mismatch), in the same order and wording. Nothing here touches
the network, and nothing here imports pydantic (the verified full load reads it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

from kernel_lock.core.hashing import is_ignored

Algorithm = Literal["sha256", "sha512"]
DIGEST_SIZES: dict[str, int] = {"sha256": 32, "sha512": 64}
NOT_DIGESTED = frozenset({"metadata.json", "metadata.json.sigstore"})
_CHUNK = 1 << 20


def in_digest(relpath: str) -> bool:
    """Whether a file of a variant (path relative to the variant folder) belongs in its publisher digest."""
    return relpath not in NOT_DIGESTED and not is_ignored(relpath)


def b64_to_hex(value: str) -> str:
    """A digest as the lock writes it (hex) from its `metadata.json` form (standard base64)."""
    return base64.b64decode(value, validate=True).hex()


def hex_to_b64(value: str) -> str:
    """A digest in its `metadata.json` form (standard base64, padded) from hex."""
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


@dataclass(frozen=True)
class _FileListed:
    """A file the digest and the files checked disagree about, as kernels words it (`Missing file: PATH`)."""

    path: str
    what: ClassVar[str]

    def __str__(self) -> str:
        return f"{self.what}: {self.path}"


@dataclass(frozen=True)
class MissingFile(_FileListed):
    """A file the publisher's digest lists is not among the files checked."""

    what = "Missing file"


@dataclass(frozen=True)
class UnknownFile(_FileListed):
    """A file checked is not in the publisher's digest."""

    what = "Unknown file"


@dataclass(frozen=True)
class HashMismatch:
    """A file's hash differs from the publisher's (both in base64, as `metadata.json` writes them)."""

    path: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"File hash mismatch for {self.path}: expected: {self.expected}, got: {self.got}"


@dataclass(frozen=True)
class AlgorithmMismatch:
    """The hashes checked were made with another algorithm than the publisher's digest."""

    expected: Algorithm
    got: Algorithm

    def __str__(self) -> str:
        return f"Algorithm mismatch: expected: {self.expected.upper()}, got: {self.got.upper()}"


DigestViolation = MissingFile | UnknownFile | HashMismatch | AlgorithmMismatch


@dataclass(frozen=True)
class PublisherDigest:
    """The `digest` of a variant's `metadata.json`: algorithm and base64 hash per file."""

    algorithm: Algorithm
    files: dict[str, str]

    @classmethod
    def from_dict(cls, raw: object) -> PublisherDigest:
        """Validate a `digest` as `metadata.json` holds it; `MalformedDigest` names the first problem."""
        if not isinstance(raw, dict) or set(raw) != {"algorithm", "files"}:
            keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
            raise MalformedDigest(f"its digest is malformed (not an object of algorithm and files: {keys})")
        algorithm, files = raw["algorithm"], raw["files"]
        if algorithm not in DIGEST_SIZES:
            raise MalformedDigest(
                f"its digest is malformed (algorithm: {algorithm!r} is not sha256 or sha512)"
            )
        if not isinstance(files, dict):
            raise MalformedDigest("its digest is malformed (files: not an object)")
        size = DIGEST_SIZES[algorithm]
        for path, value in files.items():
            parts = path.split("/")
            if "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
                problem = f"unsafe path {path!r} (absolute, '..', backslash or empty part)"
            elif not isinstance(value, str):
                problem = f"the hash of {path!r} is not a string"
            else:
                try:
                    raw_hash = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    problem = f"the hash of {path!r} is not base64: {value!r}"
                else:
                    problem = (
                        f"the hash of {path!r} has {len(raw_hash)} bytes, not the {size} of {algorithm}"
                        if len(raw_hash) != size
                        else ""
                    )
            if problem:
                raise MalformedDigest(f"its digest is malformed (files: {problem})")
        return cls(algorithm=cast("Algorithm", algorithm), files=dict(files))

    def to_dict(self) -> dict[str, Any]:
        """As `metadata.json` holds it."""
        return asdict(self)

    def hex(self, path: str) -> str:
        """The digest of one listed file, in hex."""
        return b64_to_hex(self.files[path])

    def check(
        self, actual: Mapping[str, str | None], algorithm: Algorithm = "sha256"
    ) -> list[DigestViolation]:
        """Compare files (relative path -> hex hash with `algorithm`, or None where unknown) with this digest.

        As `kernels`' `Digest.validate`: the algorithm first, then the digest's files in path order
        (mismatched or missing), then files the digest does not list. A file whose hash is None (a
        git-stored file at lock, not downloaded) is checked for presence only; paths `in_digest` leaves
        out are not checked.
        """
        problems: list[DigestViolation] = []
        same_algorithm = algorithm == self.algorithm
        if not same_algorithm:
            problems.append(AlgorithmMismatch(expected=self.algorithm, got=algorithm))
        checked = {p: h for p, h in actual.items() if in_digest(p)}
        for path in sorted(self.files):
            if path not in checked:
                problems.append(MissingFile(path))
                continue
            got = checked[path]
            if same_algorithm and got is not None and hex_to_b64(got) != self.files[path]:
                problems.append(HashMismatch(path, self.files[path], hex_to_b64(got)))
        problems.extend(UnknownFile(path) for path in sorted(set(checked) - set(self.files)))
        return problems


class MalformedDigest(ValueError):
    """A `metadata.json` that is not JSON, or whose `digest` is not a digest (the reason in `reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_digest(metadata: bytes | Mapping[str, Any]) -> PublisherDigest | None:
    """The publisher digest in a `metadata.json` (bytes, or parsed), None where it has none.

    Raises `MalformedDigest` where the file is not a JSON object or its `digest` is malformed.
    """
    data: Any = metadata
    if isinstance(metadata, bytes):
        from kernel_lock.core import jsonread

        try:
            data = jsonread.loads(metadata)
        except jsonread.MalformedJSON as exc:
            raise MalformedDigest(f"metadata.json is not JSON ({exc.reason})") from None
    if not isinstance(data, Mapping):
        raise MalformedDigest("metadata.json is not a JSON object")
    raw = data.get("digest")
    if raw is None:
        return None
    return PublisherDigest.from_dict(raw)


def hash_bytes(data: bytes, algorithm: Algorithm = "sha256") -> str:
    """The hex hash of `data`."""
    return hashlib.new(algorithm, data).hexdigest()


def hash_path(path: str | os.PathLike[str], algorithm: Algorithm = "sha256") -> str:
    """The hex hash of a file's content, read once in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _variant_files(root: Path) -> Iterator[str]:
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        dirs.sort()
        for name in sorted(files):
            path = name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")
            if in_digest(path):
                yield path


def digest_folder(root: Path, algorithm: Algorithm = "sha256") -> dict[str, str]:
    """Hex hash of every file of a variant folder that belongs in its digest (as the `kernels` builder walks it)."""
    return {path: hash_path(root / path, algorithm) for path in _variant_files(root)}


def publisher_digest(files: Mapping[str, bytes], algorithm: Algorithm = "sha256") -> PublisherDigest:
    """The digest the `kernels` builder writes for a variant's files (relative path -> bytes)."""
    return PublisherDigest(
        algorithm=algorithm,
        files={
            p: hex_to_b64(hash_bytes(data, algorithm)) for p, data in sorted(files.items()) if in_digest(p)
        },
    )
