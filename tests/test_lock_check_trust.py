"""`lock --check` catches a hand-edited lock that swaps in another publisher's repository.

The lock is the trust anchor, so every field the resolver would not have produced from `pyproject.toml`, as far
as can be told offline, fails the check (and `sync` without `--frozen`): a redirect to another organization
that pyproject.toml does not accept, a `trust-remote-code` that it does not grant to the repository the lock
names. The resolver keeps the same rules: a redirect to another organization needs `[tool.kernels.redirects]`,
and a `trust-remote-code` opt-in does not follow a redirect.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from kernel_lock.core.lockfile import read_lock
from kernel_lock.testing import LocalHub, repo_files

COUNTS: Counter[str] = Counter()
RELU = "kernels-community/relu"


def write_project(root: Path, deps: list[str], extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "0.1.0"\n\n[tool.kernels]\n'
        + extra
        + "\n[tool.kernels.dependencies]\n"
        + "\n".join(deps)
        + "\n"
    )
    return root


def publish(hub: LocalHub, repo_id: str, *, trusted: bool, status: bytes | None = None) -> None:
    repo = hub.create_repo(repo_id)
    files = repo_files(["torch-cpu"], name=repo_id.split("/")[1])
    if status is not None:
        files = {"kernel-status.toml": status}
    repo.create_branch("v1", repo.commit(files, branch="main"))
    hub.set_organization(repo_id.split("/")[0], trusted_kernel_publisher=trusted)


def redirect_to(destination: str) -> bytes:
    return f'kind = "redirect"\ndestination = "{destination}"\n'.encode()


@pytest.mark.parametrize("trust", ["trusted-publisher", "trust-remote-code"])
def test_a_lock_edited_to_swap_the_publisher_fails_the_check(hub_env, tmp_path, cli, trust: str) -> None:
    publish(hub_env, "evil-org/relu", trusted=trust == "trusted-publisher")
    evil = write_project(tmp_path / "evil", ['"evil-org/relu" = { version = 1, trust-remote-code = true }'])
    assert cli("lock", "--project", str(evil)).exit_code == 0
    [swap] = read_lock(evil / "kernels.lock").kernel

    opt_in = ", trust-remote-code = true" if trust == "trust-remote-code" else ""
    root = write_project(tmp_path / "victim", [f'"{RELU}" = {{ version = 1{opt_in} }}'])
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("lock", "--check", "--project", str(root)).exit_code == 0
    [honest] = read_lock(root / "kernels.lock").kernel
    edited = dataclasses.replace(
        honest,
        repo_id=swap.repo_id,
        commit=swap.commit,
        variants=swap.variants,
        redirected_from=RELU,
        trust=trust,
    )
    text = dataclasses.replace(read_lock(root / "kernels.lock"), kernel=[edited]).to_toml()
    (root / "kernels.lock").write_text(text)

    for command in (("lock", "--check"), ("sync", "--locked")):
        run = cli(*command, "--project", str(root))
        assert run.exit_code == 1, (command, run.stdout, run.stderr)
        assert "redirected to evil-org/relu" in run.stderr and "[tool.kernels.redirects]" in run.stderr
        if trust == "trust-remote-code":
            assert "trust-remote-code for evil-org/relu" in run.stderr
        COUNTS["lock_edits_detected"] += 1
    run = cli("sync", "--project", str(root))  # a plain sync re-locks what does not match, from the Hub
    assert run.exit_code == 0, run.stderr
    [relocked] = read_lock(root / "kernels.lock").kernel
    assert (relocked.repo_id, relocked.commit, relocked.redirected_from) == (RELU, honest.commit, None)


def test_redirect_to_another_organization_needs_acceptance(hub_env, tmp_path, cli) -> None:
    publish(hub_env, "kernels-community/moved", trusted=True, status=redirect_to("new-home/moved"))
    publish(hub_env, "new-home/moved", trusted=True)
    root = write_project(tmp_path / "p", ['"kernels-community/moved" = 1'])
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 2 and "Traceback" not in run.stderr
    assert '"kernels-community/moved" = "new-home/moved" under [tool.kernels.redirects]' in run.stderr
    assert not (root / "kernels.lock").exists()

    accepted = '[tool.kernels.redirects]\n"kernels-community/moved" = "new-home/moved"\n'
    write_project(root, ['"kernels-community/moved" = 1'], accepted)
    assert cli("lock", "--project", str(root)).exit_code == 0
    [entry] = read_lock(root / "kernels.lock").kernel
    assert (entry.repo_id, entry.redirected_from) == ("new-home/moved", "kernels-community/moved")
    assert cli("lock", "--check", "--project", str(root)).exit_code == 0

    write_project(root, ['"kernels-community/moved" = 1'])  # the acceptance is withdrawn
    check = cli("lock", "--check", "--project", str(root))
    assert check.exit_code == 1 and "redirected to new-home/moved" in check.stderr
    assert cli("lock", "--project", str(root)).exit_code == 2, "lock re-resolves and refuses the redirect"
    COUNTS["lock_edits_detected"] += 1


def test_trust_remote_code_does_not_follow_a_redirect(hub_env, tmp_path, cli) -> None:
    publish(hub_env, "untrusted-a/k", trusted=False, status=redirect_to("untrusted-b/k"))
    publish(hub_env, "untrusted-b/k", trusted=False)
    accepted = '[tool.kernels.redirects]\n"untrusted-a/k" = "untrusted-b/k"\n'
    root = write_project(
        tmp_path / "p", ['"untrusted-a/k" = { version = 1, trust-remote-code = true }'], accepted
    )
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 2, run.stderr
    assert 'trust-remote-code = ["untrusted-b/k"]' in run.stderr and "does not carry over" in run.stderr

    allow = accepted.replace(
        "[tool.kernels.redirects]", 'trust-remote-code = ["untrusted-b/k"]\n[tool.kernels.redirects]'
    )
    write_project(root, ['"untrusted-a/k" = { version = 1, trust-remote-code = true }'], allow)
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("lock", "--check", "--project", str(root)).exit_code == 0

    write_project(root, ['"untrusted-a/k" = { version = 1, trust-remote-code = true }'], accepted)
    check = cli("lock", "--check", "--project", str(root))
    assert check.exit_code == 1 and "trust-remote-code for untrusted-b/k" in check.stderr
    COUNTS["lock_edits_detected"] += 1


def test_a_self_redirect_written_by_hand_fails_the_check(hub_env, tmp_path, cli) -> None:
    root = write_project(tmp_path / "p", [f'"{RELU}" = 1'])
    assert cli("lock", "--project", str(root)).exit_code == 0
    text = (
        (root / "kernels.lock")
        .read_text()
        .replace(
            'repo-id = "kernels-community/relu"\n',
            'repo-id = "kernels-community/relu"\nredirected-from = "kernels-community/relu"\n',
            1,
        )
    )
    (root / "kernels.lock").write_text(text)
    check = cli("lock", "--check", "--project", str(root))
    assert check.exit_code in (1, 2) and "Traceback" not in check.stderr, check.stderr
    COUNTS["lock_edits_detected"] += 1
