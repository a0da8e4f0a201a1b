"""Publisher signatures: verified at lock with sigstore's own Verifier, recorded, re-checked offline.

End-to-end cases run against the local Hub with a private Sigstore instance (`kernel_lock.testing.
sigstore_instance`): its trusted root is the project's `trusted-root`, and sigstore's `Verifier` checks
the chain, SCT, log inclusion proof, checkpoint and entry timestamp of every bundle. The real production
bundle in `tests/data/sigstore/` checks the same policy code against Sigstore's production root.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kernel_lock.core.lockfile import read_lock
from kernel_lock.core.signers import DEFAULT_SIGNERS, GITHUB_ACTIONS_ISSUER, Signer, policy
from kernel_lock.errors import SignatureError
from kernel_lock.lock.signatures import Verifiers, Where, verify_signature
from kernel_lock.testing import LocalHub, repo_files
from kernel_lock.testing.fixtures import CPU_VARIANT
from kernel_lock.testing.sigstore_instance import SigstoreInstance
from kernel_lock.testing.upstream import kernels_module

DATA = Path(__file__).parent / "data" / "sigstore"
COMMUNITY = "https://github.com/huggingface/kernels-community"
BUILD = DEFAULT_SIGNERS[0]
EVIL = Signer(
    issuer=GITHUB_ACTIONS_ISSUER,
    workflow=f"{COMMUNITY}/.github/workflows/evil.yaml@refs/heads/main",
    repository=COMMUNITY,
)
FORK = Signer(
    issuer=GITHUB_ACTIONS_ISSUER,
    workflow="https://github.com/someone/kernels-community/.github/workflows/build.yaml@refs/heads/main",
    repository="https://github.com/someone/kernels-community",
)
VARIANTS = ("torch-cpu", CPU_VARIANT, "torch213-cxx11-cu126-x86_64-linux")
RFC8785 = Signer(
    issuer=GITHUB_ACTIONS_ISSUER,
    workflow="https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
    repository="https://github.com/trailofbits/rfc8785.py",
)


@pytest.fixture(autouse=True)
def _sigstore_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sigstore keeps its (offline) trust root copy under the user's cache dir: keep it in the test's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def instance() -> SigstoreInstance:
    return SigstoreInstance()


def publish(
    hub: LocalHub,
    instance: SigstoreInstance,
    name: str,
    signer: Signer,
    *,
    skip: tuple[str, ...] = (),
    before_signing: Callable[[dict[str, bytes]], None] | None = None,
    edit: Callable[[dict[str, bytes]], None] | None = None,
) -> str:
    """Create `kernels-community/<name>` (branch v1) with every variant signed by `signer`; its commit.

    `before_signing` changes the built files before CI signs them, `edit` the files after.
    """
    files = repo_files(VARIANTS, name=name)
    if before_signing is not None:
        before_signing(files)
    files = instance.sign_variants(files, signer, skip=skip)
    if edit is not None:
        edit(files)
    repo = hub.create_repo(f"kernels-community/{name}", repo_type="kernel")
    commit = repo.commit(files, branch="v1", message="Build")
    repo.create_branch("main", commit)
    return commit


@pytest.fixture
def signed_project(
    hub_env: LocalHub, instance: SigstoreInstance, make_project: Callable[..., Path]
) -> Callable[..., Path]:
    """A project depending on the given repos, verifying with the private instance's trusted root."""

    def make(*deps: str, table: str = "") -> Path:
        root = make_project(*deps)
        instance.write_trusted_root(root / "trusted_root.json")
        text = (root / "pyproject.toml").read_text()
        text = text.replace(
            "[tool.kernels.dependencies]",
            f'[tool.kernels]\ntrusted-root = "trusted_root.json"\n{table}\n[tool.kernels.dependencies]',
        )
        (root / "pyproject.toml").write_text(text)
        return root

    return make


# --- the real production bundle, through our policy code and sigstore's production trusted root ---


def production_verify(artifact: bytes, signers: tuple[Signer, ...]) -> Signer:
    bundle = (DATA / "bundle_v3_github.whl.sigstore").read_bytes()
    verifier = Verifiers().get(None)
    return verify_signature(artifact, bundle, policy(signers), verifier, Where("o/r", "0" * 40, "v"))


def test_production_bundle_verifies_offline_and_names_its_signer() -> None:
    artifact = (DATA / "bundle_v3_github.whl").read_bytes()
    assert production_verify(artifact, (RFC8785,)) == RFC8785


def test_production_bundle_refuses_a_changed_byte() -> None:
    artifact = bytearray((DATA / "bundle_v3_github.whl").read_bytes())
    artifact[len(artifact) // 2] ^= 1
    with pytest.raises(SignatureError) as caught:
        production_verify(bytes(artifact), (RFC8785,))
    assert caught.value.reason == "invalid-signature"


@pytest.mark.parametrize(
    "other",
    [
        dataclasses.replace(RFC8785, workflow=RFC8785.workflow.replace("release.yml", "ci.yml")),
        dataclasses.replace(RFC8785, repository="https://github.com/trailofbits/other"),
        dataclasses.replace(RFC8785, issuer="https://gitlab.com"),
    ],
    ids=["other-workflow", "other-repository", "other-issuer"],
)
def test_production_bundle_refused_for_another_identity(other: Signer) -> None:
    artifact = (DATA / "bundle_v3_github.whl").read_bytes()
    with pytest.raises(SignatureError) as caught:
        production_verify(artifact, (other,))
    assert caught.value.reason == "untrusted-signer"
    assert caught.value.signer == RFC8785


@pytest.mark.kernels
def test_default_signers_are_the_kernels_librarys() -> None:
    """The installed kernels' default policy accepts exactly our default signers (0.17 trusts one repo less)."""
    verify = kernels_module("verify")
    if hasattr(verify, "DEFAULT_POLICY"):
        policies = verify.DEFAULT_POLICY._children  # 0.18+: AnyOf(GitHubWorkflowPolicy, ...)
    else:
        policies = verify.DEFAULT_POLICIES
    theirs = {(f"https://github.com/{p.repo_id}", uri) for p in policies for uri in p.signer_uris}
    ours = {(s.repository, s.workflow) for s in DEFAULT_SIGNERS}
    assert theirs <= ours
    assert ours - theirs <= {
        (s.repository, s.workflow) for s in DEFAULT_SIGNERS if s.repository.endswith("kernels-community-rs")
    }
    assert {s.issuer for s in DEFAULT_SIGNERS} == {"https://token.actions.githubusercontent.com"}


# --- the private instance is a real one: sigstore's verifier checks, and refuses, each of its parts ---


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _entry(bundle: dict) -> dict:
    return bundle["verificationMaterial"]["tlogEntries"][0]


BUNDLE_FORGERIES: dict[str, Callable[[dict], None]] = {
    # each forges one part that sigstore checks; which check refuses it is sigstore's to word
    "inclusion-proof": lambda b: _entry(b)["inclusionProof"]["hashes"].__setitem__(
        0, _flip(_entry(b)["inclusionProof"]["hashes"][0])
    ),
    "log-root": lambda b: _entry(b)["inclusionProof"].__setitem__(
        "rootHash", _flip(_entry(b)["inclusionProof"]["rootHash"])
    ),
    "checkpoint": lambda b: _entry(b)["inclusionProof"]["checkpoint"].__setitem__(
        "envelope", _entry(b)["inclusionProof"]["checkpoint"]["envelope"].replace("\n3\n", "\n4\n")
    ),
    "entry-timestamp": lambda b: _entry(b).__setitem__(
        "integratedTime", str(int(_entry(b)["integratedTime"]) + 1)
    ),
    "log-body": lambda b: _entry(b).__setitem__(
        "canonicalizedBody",
        base64.b64encode(
            base64.b64decode(_entry(b)["canonicalizedBody"]).replace(b"hashedrekord", b"hashedrekord ")
        ).decode(),
    ),
    "signature": lambda b: b["messageSignature"].__setitem__(
        "signature", base64.b64encode(b"0" * 70).decode()
    ),
}
ROOT_FORGERIES: dict[str, str] = {
    "ct-log": "ctlogs",
    "transparency-log": "tlogs",
    "certificate-authority": "certificateAuthorities",
}


WHERE = Where("o/r", "0" * 40, "v")


def _verifier(root: dict, tmp_path: Path) -> Any:
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    path = tmp_path / "root.json"
    path.write_text(json.dumps(root))
    return Verifier(trusted_root=TrustedRoot.from_file(str(path)))


def _verify_with(root: dict, bundle: dict, data: bytes, tmp_path: Path) -> Signer:
    return verify_signature(data, json.dumps(bundle).encode(), policy(), _verifier(root, tmp_path), WHERE)


def _sigstore_refusal(root: dict, bundle: dict, data: bytes, tmp_path: Path) -> str:
    """What sigstore's own verifier, under no identity policy, says of `bundle`: the detail our refusal passes on."""
    from sigstore.errors import VerificationError as SigstoreRefused
    from sigstore.models import Bundle
    from sigstore.verify.policy import UnsafeNoOp

    with pytest.raises(SigstoreRefused) as refused:
        _verifier(root, tmp_path).verify_artifact(data, Bundle.from_json(json.dumps(bundle)), UnsafeNoOp())
    return str(refused.value)


def _assert_refused_as_invalid(caught: SignatureError, sigstore_says: str) -> None:
    """Our refusal of a bundle sigstore refuses: reason and place as data, sigstore's explanation passed on whole."""
    assert (caught.reason, caught.repo_id, caught.commit, caught.variant) == (
        "invalid-signature",
        "o/r",
        "0" * 40,
        "v",
    )
    assert str(caught).startswith(
        "o/r variant v (commit 000000000000): the signature over metadata.json does not verify ("
    )
    assert f"({sigstore_says})" in str(caught)


def test_the_private_instance_signs_what_sigstore_verifies(
    instance: SigstoreInstance, tmp_path: Path
) -> None:
    data = b'{"name": "relu"}'
    for _ in range(4):  # a log of several entries, so the inclusion proofs have hashes
        bundle = json.loads(instance.sign(data, BUILD))
    root = json.loads(instance.trusted_root_json())
    assert _entry(bundle)["inclusionProof"]["hashes"]
    assert _verify_with(root, bundle, data, tmp_path) == BUILD


@pytest.mark.parametrize("part", sorted(BUNDLE_FORGERIES))
def test_sigstore_refuses_each_forged_part_of_a_bundle(
    part: str, instance: SigstoreInstance, tmp_path: Path
) -> None:
    data = b'{"name": "relu"}'
    for _ in range(3):
        bundle = json.loads(instance.sign(data, BUILD))
    BUNDLE_FORGERIES[part](bundle)
    root = json.loads(instance.trusted_root_json())
    with pytest.raises(SignatureError) as caught:
        _verify_with(root, bundle, data, tmp_path)
    _assert_refused_as_invalid(caught.value, _sigstore_refusal(root, bundle, data, tmp_path))


@pytest.mark.parametrize("part", sorted(ROOT_FORGERIES))
def test_sigstore_refuses_a_part_the_trusted_root_does_not_vouch_for(
    part: str, instance: SigstoreInstance, tmp_path: Path
) -> None:
    data = b'{"name": "relu"}'
    bundle = json.loads(instance.sign(data, BUILD))
    key = ROOT_FORGERIES[part]
    root = json.loads(instance.trusted_root_json())
    root[key] = json.loads(SigstoreInstance("rogue").trusted_root_json())[key]
    with pytest.raises(SignatureError) as caught:
        _verify_with(root, bundle, data, tmp_path)
    _assert_refused_as_invalid(caught.value, _sigstore_refusal(root, bundle, data, tmp_path))


# --- end to end against the local Hub and the private instance ---


def test_signed_by_a_trusted_workflow_locks_and_records_the_signer(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    publish(hub_env, instance, "signed", BUILD)
    root = signed_project('"kernels-community/signed" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    assert "unsigned" not in run.stderr
    [entry] = read_lock(root / "kernels.lock").kernel
    assert entry.signed_by == dict.fromkeys(VARIANTS, BUILD)
    assert (
        '[kernel.signed-by.torch-cpu]\nissuer = "https://token.actions.githubusercontent.com"'
        in (root / "kernels.lock").read_text()
    )

    check = cli("lock", "--check", "--project", str(root), "--json")
    assert check.exit_code == 0, check.stderr
    assert check.json()["signatures-verified"] == len(VARIANTS)

    status = cli("status", "--project", str(root), "--target", CPU_VARIANT, "--json")
    [row] = status.json()["kernels"]
    assert row["signer"] == dataclasses.asdict(BUILD) and row["signed-variants"] == len(VARIANTS)
    text = cli("status", "--project", str(root), "--target", CPU_VARIANT)
    assert f"signed by {BUILD.workflow}" in text.stdout


def test_relock_of_a_signed_lock_is_byte_identical_and_makes_no_request(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    publish(hub_env, instance, "signed", BUILD)
    root = signed_project('"kernels-community/signed" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    before = (root / "kernels.lock").read_bytes()
    hub_env.clear_log()
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert (root / "kernels.lock").read_bytes() == before
    assert [r for r in hub_env.requests if "/kernels-community/signed" in r.path] == []


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("other-workflow", "untrusted-signer"),
        ("fork", "untrusted-signer"),
        ("wrong-issuer", "untrusted-signer"),
        ("other-bytes", "invalid-signature"),
        ("expired-certificate", "invalid-signature"),
        ("untrusted-instance", "invalid-signature"),
        ("garbage-bundle", "invalid-bundle"),
        ("truncated-bundle", "invalid-bundle"),
    ],
)
def test_a_bad_signature_is_a_lock_error_naming_the_variant(
    case: str,
    reason: str,
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    victim = "build/torch-cpu/metadata.json"
    signer = {"other-workflow": EVIL, "fork": FORK}.get(case, BUILD)

    def edit(files: dict[str, bytes]) -> None:
        if case == "wrong-issuer":
            files[victim + ".sigstore"] = instance.sign(
                files[victim], dataclasses.replace(BUILD, issuer="https://gitlab.com")
            ).encode()
        elif case == "other-bytes":
            files[victim + ".sigstore"] = instance.sign(files[victim] + b" ", BUILD).encode()
        elif case == "expired-certificate":
            files[victim + ".sigstore"] = instance.sign(
                files[victim], BUILD, logged_after=timedelta(minutes=11)
            ).encode()
        elif case == "untrusted-instance":
            files[victim + ".sigstore"] = SigstoreInstance("rogue").sign(files[victim], BUILD).encode()
        elif case == "garbage-bundle":
            files[victim + ".sigstore"] = b"not json"
        elif case == "truncated-bundle":
            files[victim + ".sigstore"] = files[victim + ".sigstore"][:-200]

    publish(hub_env, instance, "kernel", signer, edit=edit)
    root = signed_project('"kernels-community/kernel" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 4, run.stderr
    assert "kernels-community/kernel variant torch-cpu" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (root / "kernels.lock").exists()

    from kernel_lock.lock.project import lock_project

    with pytest.raises(SignatureError) as caught:
        lock_project(root)
    assert (caught.value.reason, caught.value.variant, caught.value.repo_id) == (
        reason,
        "torch-cpu",
        "kernels-community/kernel",
    )


def test_a_signer_the_project_adds_is_accepted_globally_or_per_dependency(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    publish(hub_env, instance, "forked", FORK)
    publish(hub_env, instance, "signed", BUILD)
    fork = f'{{ issuer = "{FORK.issuer}", workflow = "{FORK.workflow}", repository = "{FORK.repository}" }}'
    per_dep = signed_project(
        f'"kernels-community/forked" = {{ version = 1, signers = [{fork}] }}',
        '"kernels-community/signed" = 1',
    )
    assert cli("lock", "--project", str(per_dep)).exit_code == 0
    by_repo = {k.repo_id: k for k in read_lock(per_dep / "kernels.lock").kernel}
    assert set(by_repo["kernels-community/forked"].signed_by.values()) == {FORK}
    assert set(by_repo["kernels-community/signed"].signed_by.values()) == {BUILD}

    project_wide = signed_project('"kernels-community/forked" = 1', table=f"signers = [{fork}]")
    assert cli("lock", "--project", str(project_wide)).exit_code == 0


def test_the_default_trust_root_is_productions(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    make_project: Callable[..., Path],
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    publish(hub_env, instance, "signed", BUILD)
    root = make_project('"kernels-community/signed" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 4 and not (root / "kernels.lock").exists()
    assert "kernels-community/signed variant " in run.stderr
    assert "the signature over metadata.json does not verify" in run.stderr
    assert cli("lock", "--project", str(root), "--json").json()["error"]["code"] == "signature-invalid"
    assert (
        signed_project('"kernels-community/signed" = 1') == root
    )  # the same project, trusting the instance's root
    assert cli("lock", "--project", str(root)).exit_code == 0


def test_unsigned_variants_lock_with_a_notice_unless_a_signature_is_required(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    publish(hub_env, instance, "partly", BUILD, skip=("torch-cpu",))
    root = signed_project('"kernels-community/partly" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    assert run.stderr.count("notice:") == 1 and "1 of 3 variant(s) are unsigned" in run.stderr
    [entry] = read_lock(root / "kernels.lock").kernel
    assert sorted(entry.signed_by) == sorted(set(VARIANTS) - {"torch-cpu"})

    required_globally = signed_project('"kernels-community/partly" = 1', table="require-signature = true")
    required_for_one = signed_project(
        '"kernels-community/partly" = { version = 1, require-signature = true }'
    )
    for project in (required_globally, required_for_one):
        run = cli("lock", "--project", str(project))
        assert run.exit_code == 4, run.stderr
        assert (
            "kernels-community/partly variant torch-cpu" in run.stderr and "require-signature" in run.stderr
        )

    exempt = signed_project(
        '"kernels-community/partly" = { version = 1, require-signature = false }',
        table="require-signature = true",
    )
    assert cli("lock", "--project", str(exempt)).exit_code == 0


def test_lock_check_notices_a_policy_change_and_a_hand_edited_signer(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    publish(hub_env, instance, "forked", FORK, skip=("torch-cpu",))
    fork = f'{{ issuer = "{FORK.issuer}", workflow = "{FORK.workflow}", repository = "{FORK.repository}" }}'
    root = signed_project('"kernels-community/forked" = 1', table=f"signers = [{fork}]")
    assert cli("lock", "--project", str(root)).exit_code == 0
    pyproject = (root / "pyproject.toml").read_text()
    lock_text = (root / "kernels.lock").read_text()

    (root / "pyproject.toml").write_text(pyproject.replace(f"signers = [{fork}]", ""))
    run = cli("lock", "--check", "--project", str(root))
    assert run.exit_code == 1 and "not an allowed signer" in run.stderr
    (root / "pyproject.toml").write_text(pyproject.replace(f"signers = [{fork}]", "require-signature = true"))
    run = cli("lock", "--check", "--project", str(root))
    assert run.exit_code == 1 and "variant torch-cpu is unsigned" in run.stderr

    # A signer claimed for a variant that is not signed, and another identity swapped in for a signed one.
    (root / "pyproject.toml").write_text(pyproject)
    extra = f'\n[kernel.signed-by.torch-cpu]\nissuer = "{FORK.issuer}"\nrepository = "{FORK.repository}"\nworkflow = "{FORK.workflow}"\n'
    (root / "kernels.lock").write_text(lock_text + extra)
    run = cli("lock", "--check", "--project", str(root))
    assert run.exit_code == 4 and "torch-cpu" in run.stderr and "no metadata.json.sigstore" in run.stderr
    both = pyproject.replace(
        f"signers = [{fork}]", f"signers = [{fork}, {fork.replace('someone', 'mallory')}]"
    )
    (root / "pyproject.toml").write_text(both)
    (root / "kernels.lock").write_text(lock_text.replace("someone", "mallory"))
    run = cli("lock", "--check", "--project", str(root))
    assert run.exit_code == 4 and "but the lock records" in run.stderr

    # A signed variant whose signer was deleted from the lock.
    (root / "pyproject.toml").write_text(pyproject)
    start = lock_text.index(f"[kernel.signed-by.{CPU_VARIANT}]")
    end = lock_text.index("[kernel.signed-by.", start + 1)
    (root / "kernels.lock").write_text(lock_text[:start] + lock_text[end:])
    run = cli("lock", "--check", "--project", str(root))
    assert run.exit_code == 4 and "the lock records no signature" in run.stderr


def test_verify_signatures_rechecks_synced_variants_offline(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish(hub_env, instance, "signed", BUILD)
    root = signed_project('"kernels-community/signed" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root), "--all-variants").exit_code == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_env.clear_log()
    run = cli("verify", "--project", str(root), "--all-variants", "--signatures")
    assert run.exit_code == 0, run.stderr
    assert run.stdout.count(f"signed by {BUILD.workflow}") == len(VARIANTS)
    assert hub_env.requests == []

    # The policy changed since: the synced files still match the lock, but the signer is no longer allowed.
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml")
        .read_text()
        .replace('trusted-root = "trusted_root.json"', 'trusted-root = "other.json"')
    )
    SigstoreInstance("rogue").write_trusted_root(root / "other.json")
    run = cli("verify", "--project", str(root), "--all-variants", "--signatures")
    assert run.exit_code == 4 and "signature:" in run.stdout


def test_no_signature_path_never_imports_sigstore(
    hub_env: LocalHub, make_project: Callable[..., Path]
) -> None:
    root = make_project('"kernels-community/relu" = 1')
    code = (
        "import sys\nfrom kernel_lock.lock.project import lock_project, recheck_signatures, check_lock\n"
        f"lock_project({str(root)!r})\nrecheck_signatures(__import__('kernel_lock.project.config').project.config.load_project({str(root)!r}), check_lock({str(root)!r}))\n"
        "assert 'sigstore' not in sys.modules, 'sigstore imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('signers = [{ issuer = "x", workflow = "y" }]', "exactly the keys issuer, workflow and repository"),
        ('signers = "everyone"', "must be a list of tables"),
        ('require-signature = "yes"', "write true or false"),
        ("trusted-root = 3", "trusted_root.json"),
    ],
)
def test_malformed_signature_settings_are_config_errors(
    table: str, says: str, make_project: Callable[..., Path], cli: Callable[..., object]
) -> None:
    root = make_project('"kernels-community/relu" = 1')
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        text.replace("[tool.kernels.dependencies]", f"[tool.kernels]\n{table}\n[tool.kernels.dependencies]")
    )
    run = cli("lock", "--check", "--project", str(root))
    assert run.exit_code == 2 and says in run.stderr


# --- the signed digest against the files ---


def edit_digest(change: Callable[[dict[str, str]], None]) -> Callable[[dict[str, bytes]], None]:
    """A `before_signing` step that changes the digest in SO_VARIANT's metadata.json (`None`: remove it)."""

    def before_signing(files: dict[str, bytes]) -> None:
        path = f"build/{CPU_VARIANT}/metadata.json"
        metadata = json.loads(files[path])
        change(metadata["digest"]["files"])
        files[path] = json.dumps(metadata).encode()

    return before_signing


def _so_name(digest: dict[str, str]) -> str:
    return next(p for p in digest if p.endswith(".so"))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            lambda d: d.__setitem__(_so_name(d), base64.b64encode(b"\0" * 32).decode()),
            "File hash mismatch for",
        ),
        (
            lambda d: d.__setitem__("extra.py", base64.b64encode(b"\0" * 32).decode()),
            "Missing file: extra.py",
        ),
        (lambda d: d.pop("layers.py"), "Unknown file: layers.py"),
        (lambda d: d.clear(), "Unknown file"),
    ],
    ids=["lfs-hash", "listed-but-absent", "present-but-unlisted", "empty"],
)
def test_files_that_do_not_match_the_signed_digest_are_refused_at_lock(
    change: Callable[[dict[str, str]], None],
    says: str,
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    publish(hub_env, instance, "kernel", BUILD, before_signing=edit_digest(change))
    root = signed_project('"kernels-community/kernel" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 4, run.stderr
    assert f"variant {CPU_VARIANT}" in run.stderr and says in run.stderr
    assert not (root / "kernels.lock").exists()


def test_a_signed_metadata_without_a_digest_is_refused(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    def drop(files: dict[str, bytes]) -> None:
        path = f"build/{CPU_VARIANT}/metadata.json"
        metadata = json.loads(files[path])
        del metadata["digest"]
        files[path] = json.dumps(metadata).encode()

    publish(hub_env, instance, "kernel", BUILD, before_signing=drop)
    run = cli("lock", "--project", str(signed_project('"kernels-community/kernel" = 1')))
    assert run.exit_code == 4 and "has no digest" in run.stderr


def test_python_changed_after_signing_is_caught_by_verify_signatures(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    """At lock a git-stored file is known by its blob id only (presence against the digest). A `sha256` lock
    takes its SHA-256 from the signed digest, so sync refuses it; a `git_lfs_concat` lock pins it by blob id,
    so sync takes it, and `verify --signatures` hashes it against the signed digest."""
    target = f"build/{CPU_VARIANT}/layers.py"

    def tamper(files: dict[str, bytes]) -> None:
        files[target] += b"\nimport os  # added after signing\n"

    publish(hub_env, instance, "kernel", BUILD, edit=tamper)
    root = signed_project('"kernels-community/kernel" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    refused = cli("sync", "--project", str(root), "--variant", CPU_VARIANT)
    assert refused.exit_code == 4 and "layers.py: content changed" in refused.stderr
    assert cli("lock", "--project", str(root), "--hash-type", "git_lfs_concat").exit_code == 0
    assert cli("sync", "--project", str(root), "--variant", CPU_VARIANT).exit_code == 0
    run = cli("verify", "--project", str(root), "--variant", CPU_VARIANT, "--signatures")
    assert run.exit_code == 4
    assert "File hash mismatch for layers.py" in run.stdout


def test_import_verifies_with_the_projects_signers_and_trusted_root(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    commit = publish(hub_env, instance, "forked", FORK)
    fork = f'{{ issuer = "{FORK.issuer}", workflow = "{FORK.workflow}", repository = "{FORK.repository}" }}'
    root = signed_project('"kernels-community/forked" = 1', table=f"signers = [{fork}]")
    source = root / "kernels-lock.json"
    source.write_text(
        json.dumps(
            [
                {
                    "dependency": {"repo-id": "kernels-community/forked", "version": 1},
                    "lock": {"commit": commit},
                }
            ]
        )
    )
    run = cli("import", str(source), "--project", str(root))
    assert run.exit_code == 0, run.stderr
    [entry] = read_lock(root / "kernels.lock").kernel
    assert set(entry.signed_by.values()) == {FORK}
    assert cli("lock", "--check", "--project", str(root)).exit_code == 0


@pytest.mark.parametrize("content", [None, "{}", "not json"], ids=["missing", "empty-object", "not-json"])
def test_an_unreadable_trusted_root_is_a_config_error(
    content: str | None,
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    publish(hub_env, instance, "signed", BUILD)
    root = signed_project('"kernels-community/signed" = 1')
    if content is None:
        (root / "trusted_root.json").unlink()
    else:
        (root / "trusted_root.json").write_text(content)
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 2 and "Cannot read the Sigstore trusted root" in run.stderr
    assert "Traceback" not in run.stderr and not (root / "kernels.lock").exists()


# --- a signature is bound to what it signs: a signed build replayed elsewhere is refused ---

CUDA = "torch213-cxx11-cu126-x86_64-linux"


def _signed(hub: LocalHub, instance: SigstoreInstance, name: str, version: int = 1) -> dict[str, bytes]:
    """The files of `kernels-community/<name>` at `version`, every variant signed by the community CI."""
    return instance.sign_variants(repo_files(VARIANTS, name=name, version=version), BUILD)


def _replay(case: str, hub: LocalHub, instance: SigstoreInstance) -> tuple[str, str]:
    """Publish `kernels-community/victim` where a genuinely signed build is served in the wrong place.

    Returns (the requirement, the variant the replay sits in).
    """
    genuine = _signed(hub, instance, "victim")
    repo = hub.create_repo("kernels-community/victim", repo_type="kernel")
    if case == "another-repo":
        other = _signed(hub, instance, "other")  # same CI, same signer: kernels-community signs every repo
        files = {p: d for p, d in other.items() if p.startswith("build/")} | {
            "README.md": genuine["README.md"]
        }
        repo.commit(files, branch="v1")
        return "1", "torch-cpu"
    if case == "another-variant":
        files = {p: d for p, d in genuine.items() if not p.startswith(f"build/{CUDA}/")}
        files |= {
            p.replace(CPU_VARIANT, CUDA): d
            for p, d in genuine.items()
            if p.startswith(f"build/{CPU_VARIANT}/")
        }
        repo.commit(files, branch="v1")
        return "1", CUDA
    repo.commit(genuine, branch="v1")
    repo.create_branch("v2", repo.head("v1"))  # the v1 build, served as v2
    return "2", "torch-cpu"


@pytest.mark.parametrize("case", ["another-repo", "another-variant", "v1-on-v2"])
def test_a_signed_build_replayed_in_another_place_is_refused(
    case: str,
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    version, variant = _replay(case, hub_env, instance)
    root = signed_project(f'"kernels-community/victim" = {version}', table="require-signature = true")
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 4, run.stderr
    assert (
        f"kernels-community/victim variant {variant}" in run.stderr
        and "not a build of this kernel" in run.stderr
    )
    assert not (root / "kernels.lock").exists()

    from kernel_lock.lock.project import lock_project

    with pytest.raises(SignatureError) as caught:
        lock_project(root)
    assert (caught.value.reason, caught.value.variant) == ("identity-mismatch", variant)


def test_a_signed_build_replayed_is_refused_again_by_lock_check_and_verify(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    """A lock written by an older kernel-lock (or by hand) that records the replay is caught offline too."""
    from kernel_lock.core.lockfile import write_lock
    from kernel_lock.hub.client import Hub
    from kernel_lock.lock.resolve import LockRequest, lock_dependencies
    from kernel_lock.project.config import load_project

    genuine = _signed(hub_env, instance, "victim")
    repo = hub_env.create_repo("kernels-community/victim", repo_type="kernel")
    repo.commit(genuine, branch="v1")
    repo.create_branch("v2", repo.head("v1"))
    root = signed_project('"kernels-community/victim" = 1')
    project = load_project(root)
    lock = lock_dependencies(project.dependencies, hub=Hub(), request=LockRequest(signing=project.signing()))
    # The same commit, relabelled as v2: the lock an attacker hands over.
    [entry] = lock.kernel
    forged = dataclasses.replace(lock, kernel=[dataclasses.replace(entry, version=2, ref="v2")])
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text().replace("= 1", "= 2"))
    write_lock(root / "kernels.lock", forged)
    check = cli("lock", "--check", "--project", str(root))
    assert check.exit_code == 4, check.stderr
    assert "not a build of this kernel" in check.stderr
    assert (
        cli("sync", "--project", str(root), "--variant", "torch-cpu").exit_code == 0
    )  # no signature required
    verify = cli("verify", "--project", str(root), "--variant", "torch-cpu", "--signatures")
    assert verify.exit_code == 4 and "not a build of this kernel" in verify.stdout, verify.stdout


def test_require_signature_is_enforced_at_sync_not_taken_from_the_lock(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    """A lock whose signed-by is forged for an unsigned variant passes `lock --check` on a fresh machine (the
    signature cannot be re-checked offline there); sync verifies it from the files it fetched."""
    import shutil

    from kernel_lock.core.cache_layout import repo_dir
    from kernel_lock.core.lockfile import write_lock

    publish(hub_env, instance, "kernel", BUILD, skip=("torch-cpu",))
    root = signed_project('"kernels-community/kernel" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    lock = read_lock(root / "kernels.lock")
    [entry] = lock.kernel
    forged = dataclasses.replace(entry, signed_by=dict.fromkeys(VARIANTS, BUILD))
    write_lock(root / "kernels.lock", dataclasses.replace(lock, kernel=[forged]))
    text = (
        (root / "pyproject.toml")
        .read_text()
        .replace("[tool.kernels]\n", "[tool.kernels]\nrequire-signature = true\n")
    )
    (root / "pyproject.toml").write_text(text)
    shutil.rmtree(repo_dir("kernels-community/kernel"))  # another machine: nothing kept from the lock run

    assert cli("lock", "--check", "--project", str(root)).exit_code == 0
    for args in (["--locked"], [], ["--frozen"]):
        run = cli("sync", *args, "--project", str(root), "--variant", "torch-cpu", "--json")
        assert run.exit_code == 4, run.stdout
        error = run.json()["error"]
        assert error["code"] == "signature-invalid" and "torch-cpu" in error["message"]
    signed = cli("sync", "--locked", "--project", str(root), "--variant", CPU_VARIANT)
    assert signed.exit_code == 0, signed.stderr


@pytest.mark.parametrize("kept_hashes", [True, False], ids=["lock-kept-hashes", "planted-copies-only"])
def test_lock_check_takes_no_signature_material_from_the_cache_on_trust(
    kept_hashes: bool,
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    """An unsigned variant, a forged signed-by, and another commit's genuinely signed metadata.json and bundle
    planted as lock's kept copies: `lock --check` must not count that as the locked variant's signature."""
    from kernel_lock.core.cache_layout import RECORD_DIR, repo_dir
    from kernel_lock.core.lockfile import write_lock

    old = publish(hub_env, instance, "kernel", BUILD)
    files = instance.sign_variants(repo_files(VARIANTS, name="kernel", seed="b"), BUILD, skip=("torch-cpu",))
    hub_env.repo("kernels-community/kernel").commit(files, branch="v1")
    signed_old = hub_env.repo("kernels-community/kernel").files(old)
    root = signed_project('"kernels-community/kernel" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    lock = read_lock(root / "kernels.lock")
    [entry] = lock.kernel
    assert "torch-cpu" not in entry.signed_by
    forged = dataclasses.replace(entry, signed_by=dict.fromkeys(VARIANTS, BUILD))
    write_lock(root / "kernels.lock", dataclasses.replace(lock, kernel=[forged]))
    records = repo_dir("kernels-community/kernel") / RECORD_DIR / entry.commit
    for name in ("metadata.json", "metadata.json.sigstore"):
        kept = json.loads((records / name).read_text())
        kept["torch-cpu"] = signed_old[f"build/torch-cpu/{name}"].decode()
        (records / name).write_text(json.dumps(kept))
    if not kept_hashes:
        (records / "file-hashes-sha256.json").unlink()

    check = cli("lock", "--check", "--project", str(root), "--json")
    if kept_hashes:
        assert check.exit_code == 4, check.stdout
        assert check.json()["error"]["code"] == "signature-invalid"
        assert "torch-cpu" in check.json()["error"]["message"]
    else:
        assert check.exit_code == 0, check.stdout
        report = check.json()
        # nothing vouches for the copies: none is used, and lock --check says so
        assert report["signatures-unavailable"] == [f"{entry.key} {v}" for v in sorted(VARIANTS)]
        assert report["signatures-verified"] == 0


def test_a_signed_metadata_with_a_duplicate_identity_key_is_refused(
    hub_env: LocalHub,
    instance: SigstoreInstance,
    signed_project: Callable[..., Path],
    cli: Callable[..., object],
) -> None:
    """`{"name": "other", ..., "name": "kernel"}`: Python reads the last, the kernels library refuses the file;
    a signature over it says nothing clear about which kernel it is."""

    def duplicate_name(files: dict[str, bytes]) -> None:
        path = "build/torch-cpu/metadata.json"
        files[path] = files[path].replace(b'"name": "kernel"', b'"name": "other", "name": "kernel"', 1)

    publish(hub_env, instance, "kernel", BUILD, before_signing=duplicate_name)
    root = signed_project('"kernels-community/kernel" = 1')
    run = cli("lock", "--project", str(root), "--json")
    # refused where the file is read, before its signature is looked at: a malformed answer of the Hub
    assert run.exit_code == 3, run.stdout
    assert "the key 'name' appears twice" in run.json()["error"]["message"]
    assert not (root / "kernels.lock").exists()
