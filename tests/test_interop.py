"""Export to and import from the `kernels` library's lock formats, checked against the real `kernels` 0.17.2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernel_lock.core.lockfile import Lock, read_lock
from kernel_lock.errors import KernelLockError, LockfileError
from kernel_lock.lock.interop import export_lock, import_lock
from kernel_lock.testing.upstream import KERNELS_CLI

RELU_V2 = '"kernels-community/relu" = 2'  # relu v2 depends on activation v1


LEGACY = ("--hash-type", "git_lfs_concat")


def locked(cli, root: Path, *args: str) -> Lock:
    """`kernel-lock lock ARGS` the project and return its lock."""
    run = cli("lock", "--project", str(root), *args)
    assert run.exit_code == 0, run.stderr
    return read_lock(root / "kernels.lock")


def kernels_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `kernels` 0.17.2 command line in a subprocess (environment from `hub_env`)."""
    return subprocess.run(
        [sys.executable, "-c", KERNELS_CLI, *args], capture_output=True, text=True, timeout=300
    )


def fresh_project(tmp_path: Path, name: str) -> Path:
    """A project directory whose pyproject.toml has no [tool.kernels] table."""
    root = tmp_path / name
    root.mkdir()
    (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0.1.0"\n')
    return root


@pytest.mark.kernels
def test_kernels_lock_output_equals_our_export(hub_env, make_project, cli, tmp_path) -> None:
    root = make_project(RELU_V2, '"kernels-community/activation" = 1')
    ours = export_lock(locked(cli, root), "kernels")
    theirs_dir = tmp_path / "theirs"
    theirs_dir.mkdir()
    shutil.copy(root / "pyproject.toml", theirs_dir / "pyproject.toml")
    run = kernels_cli("lock", str(theirs_dir))
    assert run.returncode == 0, run.stderr
    assert (theirs_dir / "kernels.lock").read_bytes() == ours.encode()
    assert [(e["dependency"]["repo-id"], e["dependency"]["version"]) for e in json.loads(ours)] == [
        ("kernels-community/activation", 1),
        ("kernels-community/relu", 2),
    ]


@pytest.mark.kernels
def test_revision_requirements_export_in_kernels_order(hub_env, hub_fixtures, make_project, cli) -> None:
    from kernels._rust import KernelLocks

    root = make_project(RELU_V2, '"kernels-community/activation" = { revision = "main" }')
    text = export_lock(locked(cli, root), "kernels")
    assert KernelLocks.from_json(text).to_json() == text, "same entries, order and layout as kernels writes"
    assert [e["dependency"] for e in json.loads(text)] == [
        {"repo-id": "kernels-community/activation", "version": 1},
        {"repo-id": "kernels-community/activation", "revision": "main"},
        {"repo-id": "kernels-community/relu", "version": 2},
    ]


@pytest.mark.parametrize(
    ("fmt", "deps"),
    [
        (
            "kernels",
            {RELU_V2: "version 2", '"kernels-community/activation" = { revision = "main" }': "revision main"},
        ),
        (
            "kernels-legacy",
            {RELU_V2: "version 2"},
        ),  # one commit per repo, and no requirements to tell v1 from rev v1
    ],
)
def test_round_trip_into_a_project_without_dependencies(
    hub_env, make_project, cli, tmp_path, fmt, deps
) -> None:
    root = make_project(*deps)
    original = locked(cli, root, *(LEGACY if fmt == "kernels-legacy" else ()))
    exported = tmp_path / f"export-{fmt}.json"
    exported.write_text(export_lock(original, fmt))
    target = fresh_project(tmp_path, "imported")
    (target / "pyproject.toml").write_text(
        '# keep me\n[project]\nname = "imported"\n\n[tool.ruff]\nline-length = 100\n'
    )

    result = import_lock(exported, target)

    assert result.format == fmt
    assert (target / "kernels.lock").read_text() == (root / "kernels.lock").read_text()
    assert result.lock == original
    assert sorted(result.written) == [target / "kernels.lock", target / "pyproject.toml"]
    assert {repo: dep.describe() for repo, dep in result.added_dependencies.items()} == {
        line.split(" = ")[0].strip('"'): described for line, described in sorted(deps.items())
    }
    assert (target / "pyproject.toml").read_text() == (
        '# keep me\n[project]\nname = "imported"\n\n[tool.ruff]\nline-length = 100\n\n[tool.kernels.dependencies]\n'
        + "".join(f"{line}\n" for line in sorted(deps))
    )
    check = cli("lock", "--check", "--project", str(target), "--hash-type", original.kernel[0].hash_type)
    assert check.exit_code == 0, check.stderr


def test_transitive_tree_and_export_of_the_import_is_stable(
    hub_env, hub_fixtures, make_project, cli, tmp_path
) -> None:
    original = locked(cli, make_project(RELU_V2))
    assert [(k.key, k.direct) for k in original.kernel] == [
        ("kernels-community/relu@v2", True),
        ("kernels-community/activation@v1", False),
    ]
    exported = tmp_path / "kernels.lock.json"
    exported.write_text(export_lock(original, "kernels"))
    target = tmp_path / "bare"
    target.mkdir()  # no pyproject.toml at all: one is written
    hub_env.clear_log()
    result = import_lock(exported, target)
    assert result.lock == original
    assert (
        target / "pyproject.toml"
    ).read_text() == '[tool.kernels.dependencies]\n"kernels-community/relu" = 2\n'
    assert export_lock(result.lock, "kernels") == exported.read_text()
    tree_listings = [r for r in hub_env.requests if "/tree/" in r.path]
    assert len(tree_listings) == 2, "the second pass reuses the first (one listing per kernel)"


def test_import_keeps_the_files_commits_when_branches_moved(
    hub_env, hub_fixtures, make_project, cli, tmp_path
) -> None:
    from kernel_lock.testing import repo_files

    original = locked(cli, make_project(RELU_V2))
    exported = tmp_path / "export.json"
    exported.write_text(export_lock(original, "kernels"))
    hub_fixtures.relu.commit(
        repo_files(["torch-cpu"], version=2, seed="moved"), branch="v2", message="move v2"
    )
    target = fresh_project(tmp_path, "moved")
    lock = import_lock(exported, target).lock
    assert lock.find("kernels-community/relu").commit == hub_fixtures.relu_v2
    assert lock == original


def test_import_into_a_project_that_declares_the_dependencies(hub_env, make_project, cli, tmp_path) -> None:
    root = make_project(RELU_V2)
    exported = tmp_path / "export.json"
    exported.write_text(export_lock(locked(cli, root), "kernels"))
    (root / "kernels.lock").unlink()
    pyproject = (root / "pyproject.toml").read_text()
    result = import_lock(exported, root)
    assert result.written == [root / "kernels.lock"] and result.added_dependencies == {}
    assert (root / "pyproject.toml").read_text() == pyproject

    (root / "kernels.lock").unlink()
    make_project('"kernels-community/relu" = 1')
    with pytest.raises(LockfileError, match="asks for version 1, the lock has version 2"):
        import_lock(exported, root)
    assert not (root / "kernels.lock").exists()


def test_legacy_import_reproduces_the_hashes(hub_env, hub_fixtures, make_project, cli, tmp_path) -> None:
    original = locked(cli, make_project(RELU_V2), *LEGACY)
    legacy = json.loads(export_lock(original, "kernels-legacy"))
    assert [(e["repo_id"], e["sha"]) for e in legacy] == [
        ("kernels-community/activation", hub_fixtures.activation_v1),
        ("kernels-community/relu", hub_fixtures.relu_v2),
    ]
    relu = legacy[1]["variants"]["torch-cpu"]
    assert relu == {
        "hash": original.find("kernels-community/relu").variants["torch-cpu"],
        "hash_type": "git_lfs_concat",
    }
    source = tmp_path / "legacy.json"
    source.write_text(json.dumps(legacy, indent=2))  # the layout older kernels wrote
    assert source.read_text() == export_lock(original, "kernels-legacy")
    result = import_lock(source, fresh_project(tmp_path, "legacy"))
    assert result.format == "kernels-legacy" and result.lock == original


def test_legacy_requirement_from_pyproject_else_branch_else_commit(
    hub_env, hub_fixtures, tmp_path, make_project, cli
) -> None:
    first = locked(
        cli, make_project('"kernels-community/relu" = { revision = "v1.0.0" }', name="first"), *LEGACY
    )
    assert first.kernel[0].commit == hub_fixtures.relu_v1_first  # no longer the head of v1
    source = tmp_path / "legacy.json"
    source.write_text(export_lock(first, "kernels-legacy"))

    bare = import_lock(source, fresh_project(tmp_path, "bare")).lock.kernel[0]
    assert (bare.revision, bare.commit) == (hub_fixtures.relu_v1_first, hub_fixtures.relu_v1_first)

    declared = make_project('"kernels-community/relu" = { revision = "v1.0.0" }', name="declared")
    assert import_lock(source, declared).lock == first

    source.write_text(
        export_lock(
            locked(cli, make_project('"kernels-community/relu" = 1', name="v1"), *LEGACY), "kernels-legacy"
        )
    )
    head = import_lock(source, fresh_project(tmp_path, "head")).lock.kernel[0]
    assert (head.version, head.commit) == (1, hub_fixtures.relu_v1)


def test_doctored_legacy_file_names_the_variant_and_writes_nothing(
    hub_env, make_project, cli, tmp_path
) -> None:
    original = locked(cli, make_project(RELU_V2), *LEGACY)
    legacy = json.loads(export_lock(original, "kernels-legacy"))
    good = legacy[1]["variants"]["torch-cpu"]["hash"]
    legacy[1]["variants"]["torch-cpu"]["hash"] = "sha256-" + "0" * 64
    del legacy[0]["variants"]["torch-cpu"]
    source = tmp_path / "legacy.json"
    source.write_text(json.dumps(legacy))
    target = fresh_project(tmp_path, "target")
    before = (target / "pyproject.toml").read_bytes()
    with pytest.raises(LockfileError) as info:
        import_lock(source, target)
    message = str(info.value)
    assert f"kernels-community/relu variant torch-cpu: the file has sha256-{'0' * 64}" in message
    assert f"gives {good}" in message
    assert "kernels-community/activation variant torch-cpu: the file has no such variant" in message
    assert sorted(p.name for p in target.iterdir()) == ["pyproject.toml"]
    assert (target / "pyproject.toml").read_bytes() == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON"),
        ('{"repo_id": "a/b"}', "holds a JSON object, not a list"),
        ("[]", "it is an empty list"),
        (
            '[{"dependency": {"repo-id": "a/b", "version": 1}, "lock": {"commit": "abc"}}]',
            "entry 0.lock.commit",
        ),
        ('[{"dependency": {"repo-id": "a/b"}, "lock": {"commit": "' + "a" * 40 + '"}}]', "exactly one of"),
        (
            '[{"repo_id": "a/b", "sha": "' + "a" * 40 + '", "variants": {"x": {"hash": "md5-1"}}}]',
            "entry 0.variants.x.hash",
        ),
        ('[{"name": "a/b"}]', "has neither 'dependency' nor 'repo_id'"),
    ],
)
def test_malformed_input_is_one_paragraph(tmp_path, content: str, expected: str) -> None:
    source = tmp_path / "bad.json"
    source.write_text(content)
    with pytest.raises(LockfileError) as info:
        import_lock(source, tmp_path, endpoint="http://127.0.0.1:9")
    message = str(info.value)
    assert expected in message and str(source) in message and "\n" not in message
    assert not (tmp_path / "kernels.lock").exists()


@pytest.mark.torch
@pytest.mark.kernels
def test_kernels_download_and_offline_load_accept_the_export(hub_env, make_project, cli, tmp_path) -> None:
    root = make_project(RELU_V2)
    lock = locked(cli, root)
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    shutil.copy(root / "pyproject.toml", consumer / "pyproject.toml")
    (consumer / "kernels.lock").write_text(export_lock(lock, "kernels"))

    run = kernels_cli("download", str(consumer))
    assert run.returncode == 0, run.stderr
    assert "kernels-community/activation" in run.stderr and "kernels-community/relu" in run.stderr

    shutil.rmtree(os.environ["HF_HUB_CACHE"])  # what loads next is what kernel-lock sync put there
    sync = cli("sync", "--project", str(root))
    assert sync.exit_code == 0, sync.stderr
    hub_env.stop()
    load = textwrap.dedent("""\
        import sys
        from pathlib import Path
        import kernels
        relu = kernels.load_kernel("kernels-community/relu", lockfile=Path(sys.argv[1]))
        print(relu.VERSION, relu.VARIANT)
        """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-c", load, str(consumer / "kernels.lock")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    version, variant = run.stdout.split()
    assert version == "2" and variant in lock.find("kernels-community/relu").variants


def test_redirected_entries_export_under_the_repo_that_holds_them(
    hub_env, hub_fixtures, make_project, cli
) -> None:
    lock = locked(
        cli, make_project('"kernels-community/relu" = 1', '"kernels-community/old-relu" = 2'), *LEGACY
    )
    exported = json.loads(export_lock(lock, "kernels"))
    assert [
        (e["dependency"]["repo-id"], e["dependency"]["version"], e["lock"]["commit"]) for e in exported
    ] == [
        ("kernels-community/activation", 1, hub_fixtures.activation_v1),
        ("kernels-community/relu", 1, hub_fixtures.relu_v1),
        ("kernels-community/relu", 2, hub_fixtures.relu_v2),
    ]
    with pytest.raises(LockfileError, match="kernels-community/relu would appear with two different commits"):
        export_lock(lock, "kernels-legacy")


def test_import_of_an_untrusted_kernel_needs_the_projects_opt_in(
    hub_env, make_project, cli, tmp_path
) -> None:
    root = make_project('"my-org/untrusted-kernel" = { version = 1, trust-remote-code = true }')
    source = tmp_path / "export.json"
    source.write_text(export_lock(locked(cli, root, *LEGACY), "kernels-legacy"))
    target = fresh_project(tmp_path, "target")
    with pytest.raises(KernelLockError, match="not a trusted kernel publisher"):
        import_lock(source, target)
    (target / "pyproject.toml").write_text(
        '[tool.kernels]\ntrust-remote-code = ["my-org/untrusted-kernel"]\n'
    )
    result = import_lock(source, target)
    assert result.lock.kernel[0].trust == "trust-remote-code"
    assert (target / "pyproject.toml").read_text() == (
        '[tool.kernels]\ntrust-remote-code = ["my-org/untrusted-kernel"]\n\n'
        '[tool.kernels.dependencies]\n"my-org/untrusted-kernel" = 1\n'
    )
    assert cli("lock", "--check", "--project", str(target), "--hash-type", "git_lfs_concat").exit_code == 0


def test_legacy_export_of_a_sha256_lock_says_how(hub_env, make_project, cli) -> None:
    lock = locked(cli, make_project(RELU_V2))
    assert {k.hash_type for k in lock.kernel} == {"sha256"}
    with pytest.raises(LockfileError, match="--hash-type git_lfs_concat"):
        export_lock(lock, "kernels-legacy")
