"""The publisher digest: parsed, checked and reported exactly as the `kernels` library (0.17.2) does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kernel_lock.lock.digest import (
    AlgorithmMismatch,
    HashMismatch,
    MalformedDigest,
    MissingFile,
    UnknownFile,
    digest_folder,
    hex_to_b64,
    in_digest,
    parse_digest,
    publisher_digest,
)
from kernel_lock.testing import variant_files
from kernel_lock.testing.fixtures import BUILDER_VERSION, RELU_V1_VARIANTS

CUDA_VARIANT = "torch213-cxx11-cu126-x86_64-linux"


def _materialize(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.mark.kernels
@pytest.mark.parametrize("variant", [CUDA_VARIANT, "torch-universal", "torch213-metal-aarch64-darwin"])
def test_fixture_digest_is_what_the_kernels_builder_computes(tmp_path: Path, variant: str) -> None:
    from kernels._rust import Digest, DigestAlgorithm, Metadata

    files = variant_files(variant)
    vdir = _materialize(tmp_path, files)
    # What the builder leaves out: bytecode, the signature bundle next to metadata.json.
    (vdir / "__pycache__").mkdir()
    (vdir / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"bytecode")
    (vdir / "metadata.json.sigstore").write_bytes(b"{}")
    theirs = Digest.hash_variant(DigestAlgorithm.SHA256, vdir)
    metadata = Metadata.from_bytes(files["metadata.json"])
    assert metadata.digest is not None
    metadata.digest.validate(theirs)  # raises on any difference
    ours = parse_digest(files["metadata.json"])
    assert ours is not None and ours.files == theirs.files == metadata.digest.files
    assert {p: hex_to_b64(h) for p, h in digest_folder(vdir).items()} == theirs.files
    assert metadata.provenance is not None and metadata.provenance.kernel_builder.version == BUILDER_VERSION
    assert not metadata.provenance.dirty


@pytest.mark.kernels
def test_fixture_without_digest_has_no_digest() -> None:
    from kernels._rust import Metadata

    for variant in RELU_V1_VARIANTS:
        assert Metadata.from_bytes(variant_files(variant, digest=False)["metadata.json"]).digest is None
        assert parse_digest(variant_files(variant, digest=False)["metadata.json"]) is None


def _replace(rel: str, data: bytes) -> Callable[[Path], None]:
    return lambda vdir: (vdir / rel).write_bytes(data)


TAMPERING: dict[str, Callable[[Path], None]] = {
    "changed": _replace("layers.py", b"import os\n"),
    "removed": lambda vdir: (vdir / "_ops.py").unlink(),
    "added": _replace("evil.py", b"import os\n"),
    "added in a subfolder": _replace("relu/evil.py", b"x = 1\n"),
    "a nested metadata.json counts": _replace("relu/metadata.json", b"{}"),
    "several at once": lambda vdir: _several(vdir),
}


def _several(vdir: Path) -> None:
    (vdir / "__init__.py").write_bytes(b"")
    (vdir / "layers.py").unlink()
    (vdir / "zzz.py").write_bytes(b"")


@pytest.mark.kernels
@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_check_reports_what_kernels_reports(tmp_path: Path, how: str) -> None:
    from kernels._rust import Digest, DigestAlgorithm, DigestValidationError, Metadata

    files = variant_files(CUDA_VARIANT)
    vdir = _materialize(tmp_path, files)
    TAMPERING[how](vdir)
    expected = Metadata.from_bytes(files["metadata.json"]).digest
    assert expected is not None
    with pytest.raises(DigestValidationError) as caught:
        expected.validate(Digest.hash_variant(DigestAlgorithm.SHA256, vdir))
    ours = parse_digest(files["metadata.json"])
    assert ours is not None
    found = ours.check(digest_folder(vdir))
    assert [str(v) for v in found] == [str(v) for v in caught.value.violations]
    assert [type(v).__name__ for v in found] == [
        type(v).__name__.removeprefix("PyDigestViolation_") for v in caught.value.violations
    ]


def test_check_kinds_and_fields() -> None:
    files = {"a.py": b"a", "b.py": b"b", "metadata.json": b"{}"}
    digest = publisher_digest(files)
    assert "metadata.json" not in digest.files
    assert digest.check({"a.py": digest.hex("a.py"), "b.py": digest.hex("b.py"), "metadata.json": None}) == []
    other = publisher_digest({"a.py": b"A"})
    assert digest.check({"a.py": other.hex("a.py"), "c.py": None}) == [
        HashMismatch("a.py", digest.files["a.py"], other.files["a.py"]),
        MissingFile("b.py"),
        UnknownFile("c.py"),
    ]
    # A file whose hash is not known (a git-stored file at lock) is checked for presence only.
    assert digest.check({"a.py": None, "b.py": None}) == []
    sha512 = publisher_digest(files, "sha512")
    assert sha512.check({"a.py": digest.hex("a.py")}) == [
        AlgorithmMismatch(expected="sha512", got="sha256"),
        MissingFile("b.py"),
    ]
    assert str(AlgorithmMismatch("sha512", "sha256")) == "Algorithm mismatch: expected: SHA512, got: SHA256"


def test_in_digest_leaves_out_what_the_builder_leaves_out() -> None:
    assert not in_digest("metadata.json") and not in_digest("metadata.json.sigstore")
    assert (
        not in_digest("__pycache__/x.pyc") and not in_digest("pkg/__pycache__/y") and not in_digest("a.pyc")
    )
    assert in_digest("pkg/metadata.json") and in_digest("sub/__pycache__x/f") and in_digest(".hidden")


@pytest.mark.parametrize(
    "digest",
    [
        {"algorithm": "sha1", "files": {}},
        {"algorithm": "SHA256", "files": {}},
        {"algorithm": "sha256"},
        {"algorithm": "sha256", "files": {"a.py": "not base64!"}},
        {"algorithm": "sha256", "files": {"a.py": "AAAA"}},
        {"algorithm": "sha512", "files": {"a.py": "A" * 43 + "="}},
        {"algorithm": "sha256", "files": {"../a.py": "A" * 43 + "="}},
        {"algorithm": "sha256", "files": {"/a.py": "A" * 43 + "="}},
        {"algorithm": "sha256", "files": {"a\\b.py": "A" * 43 + "="}},
        {"algorithm": "sha256", "files": {"a.py": "A" * 43 + "="}, "extra": 1},
        {"algorithm": "sha256", "files": ["a.py"]},
        "sha256",
    ],
)
def test_malformed_digest_is_refused(digest: object) -> None:
    with pytest.raises(MalformedDigest) as caught:
        parse_digest(json.dumps({"name": "x", "digest": digest}).encode())
    assert "digest is malformed" in caught.value.reason


@pytest.mark.parametrize("data", [b"not json", b"[1]", b'"x"', b"\xff"])
def test_metadata_that_is_not_an_object_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedDigest):
        parse_digest(data)
