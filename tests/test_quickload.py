"""The quick load path: a fresh process loads a verified kernel without pydantic, and says yes only where
the full path would (everything unusual goes to the full path, which gives the proper error). And fast
mode in a cache other users can write."""

from __future__ import annotations

import mmap
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernel_lock.cache.verify import check_variant
from kernel_lock.core.cache_layout import record_path, variant_dir
from kernel_lock.core.lockfile import LockedKernel, read_lock
from kernel_lock.testing.fixtures import CPU_VARIANT as CPU

pytestmark = pytest.mark.torch
pytest.importorskip("torch")


CHILD = textwrap.dedent(
    """
    import sys
    from kernel_lock import get_kernel
    try:
        k = get_kernel("kernels-community/relu")
    except Exception as exc:
        print(type(exc).__name__, str(exc)[:300])
    else:
        print("loaded", k.VARIANT)
    print("pydantic" in sys.modules)
    """
)


@pytest.fixture
def synced(hub_env, make_project, cli, monkeypatch) -> Path:
    root = make_project('"kernels-community/relu" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root), "--variant", CPU).exit_code == 0
    monkeypatch.setenv("KERNEL_LOCK_FILE", str(root / "kernels.lock"))
    monkeypatch.setenv("KERNEL_LOCK_TARGET", CPU)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def _entry(project: Path) -> LockedKernel:
    entry = read_lock(project / "kernels.lock").find("kernels-community/relu")
    assert entry is not None
    return entry


def child(cwd: Path) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()


def test_a_fresh_process_loads_without_pydantic(synced, tmp_path) -> None:
    assert child(tmp_path) == [f"loaded {CPU}", "False"]


COMPILED = textwrap.dedent(
    """
    import sys
    from kernel_lock import get_kernel
    get_kernel("kernels-community/relu")
    for module in [m for name, m in sys.modules.items() if name.startswith("kernel_lock")]:
        for name, value in vars(module).items():
            if isinstance(value, type) and value.__module__ == module.__name__:
                if "__dataclass_fields__" in value.__dict__ or "_fields" in value.__dict__:
                    print(module.__name__, name)
    """
)


def test_a_fresh_load_compiles_no_dataclass_or_named_tuple(synced, tmp_path) -> None:
    """Each would cost a fresh process 0.05 to 0.2 ms at import: the load path's values are `Record`s."""
    proc = subprocess.run(
        [sys.executable, "-c", COMPILED], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []


def test_a_git_lfs_concat_lock_loads_quickly_too(synced, cli, tmp_path) -> None:
    assert cli("lock", "--project", str(synced), "--hash-type", "git_lfs_concat").exit_code == 0
    assert cli("sync", "--project", str(synced), "--variant", CPU).exit_code == 0
    assert 'hash-type = "git_lfs_concat"' in (synced / "kernels.lock").read_text()
    assert child(tmp_path) == [f"loaded {CPU}", "False"]


def test_a_changed_file_goes_to_the_full_check_and_is_refused(synced, tmp_path) -> None:
    entry = _entry(synced)
    target = (variant_dir(entry.repo_id, entry.commit, CPU) / "_ops.py").resolve()
    target.write_text(target.read_text() + "\n# changed\n")
    out = child(tmp_path)
    assert out[0].startswith("VerificationError") and "_ops.py: content changed" in out[0]


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (
            lambda t: t.replace('hash-type = "sha256"', 'hash-type = "sha256"\nsurprise = 1'),
            "malformed",
        ),
        (lambda t: t.replace("version = 1\n", "version = 2\n", 1), "lock format version"),
        (lambda t: t.replace('repo-id = "kernels-community/relu"', 'repo-id = "../relu"'), "malformed"),
    ],
)
def test_an_unusual_lock_gets_the_full_paths_error(synced, tmp_path, edit, error) -> None:
    lock = synced / "kernels.lock"
    lock.write_text(edit(lock.read_text()))
    out = child(tmp_path)
    assert out[0].startswith("LockfileError") and error in out[0]


@pytest.mark.parametrize("folder", ["variant", "snapshot", "blobs"])
def test_a_folder_replaced_by_a_symlink_goes_to_the_full_check_and_is_refused(
    synced, tmp_path, folder
) -> None:
    import shutil

    from kernel_lock.core.cache_layout import repo_dir

    entry = _entry(synced)
    vdir = variant_dir(entry.repo_id, entry.commit, CPU)
    path = {"variant": vdir, "snapshot": vdir.parents[1], "blobs": repo_dir(entry.repo_id) / "blobs"}[folder]
    copy = tmp_path / "elsewhere" / folder
    shutil.copytree(path, copy, symlinks=True)
    shutil.rmtree(path)
    path.symlink_to(copy, target_is_directory=True)
    out = child(tmp_path)
    assert out[0].startswith("VerificationError") and "failed verification" in out[0]


SIGNED_BY = (
    f'\n[kernel.signed-by.{CPU}]\nissuer = "https://token.actions.githubusercontent.com"\n'
    'workflow = "https://github.com/huggingface/kernels-community/.github/workflows/build.yaml@refs/heads/main"\n'
    "{repository}"
)


def test_a_signed_lock_with_provenance_loads_quickly_too(synced, tmp_path) -> None:
    lock = synced / "kernels.lock"
    text = lock.read_text()
    assert "[[kernel.provenance]]" in text  # the fixture kernels carry provenance
    lock.write_text(
        text
        + SIGNED_BY.format(repository='repository = "https://github.com/huggingface/kernels-community"\n')
    )
    assert child(tmp_path) == [f"loaded {CPU}", "False"]


def test_a_malformed_signer_gets_the_full_paths_error(synced, tmp_path) -> None:
    lock = synced / "kernels.lock"
    lock.write_text(lock.read_text() + SIGNED_BY.format(repository=""))
    out = child(tmp_path)
    assert out[0].startswith("LockfileError") and "malformed" in out[0]


# Strings at the edges of the models' patterns: lengths, first and last characters, non-ASCII letters and
# digits that `str.isalnum` accepts, separators, a trailing newline (which `$` alone would let through).
EDGES = [
    "",
    "a",
    "a/b",
    "A0/b-c.d_e",
    "-a/b",
    "a-/b",
    "a/b.",
    "a//b",
    "a/b/c",
    "a--b/c",
    "a/b..c",
    "é/b",
    "a/ß",
    "a/\u0663",
    "a/b\n",
    " a/b",
    "a" * 96 + "/b",
    "a" * 97 + "/b",
    "torch213-cxx11-cpu-x86_64-linux",
    "torch+cu.1",
    "_torch",
    "+x",
    "x" * 128,
    "x" * 129,
    "0" * 40,
    "0" * 64,
    "f" * 39,
    "F" * 40,
    "g" * 40,
    "0" * 40 + "\n",
    "\u0660" * 40,  # ARABIC-INDIC DIGIT ZERO: a decimal digit, not hex
]


@pytest.mark.parametrize("text", EDGES)
def test_the_models_string_checks_agree_with_the_schemas_patterns(text) -> None:
    """The model checks strings without regexes (compiling one costs every fresh process 0.1 ms); the schema
    states the same rules as patterns."""
    from kernel_lock.core.lockfile import VARIANT_NAME_PATTERN, is_variant_name
    from kernel_lock.core.requirement import COMMIT_PATTERN, REPO_ID_PATTERN, is_hex, is_repo_id

    no_dots = "--" not in text and ".." not in text
    assert is_repo_id(text) == (re.fullmatch(REPO_ID_PATTERN, text) is not None and no_dots)
    assert is_variant_name(text) == (
        re.fullmatch(VARIANT_NAME_PATTERN, text) is not None and ".." not in text
    )
    assert is_hex(text, 40) == (re.fullmatch(COMMIT_PATTERN, text) is not None)
    assert is_hex(text, 64) == (re.fullmatch(r"[0-9a-f]{64}", text) is not None)


# A cache other users can write. A write through a shared memory mapping whose page is already dirty
# changes a file's bytes and leaves its device, inode, size, mtime and ctime as they were, so whoever can
# write a blob could change code that already verified without the fingerprint noticing: fingerprints
# vouch only for files no one but this user and root can write. And nothing planted in the cache (a FIFO
# where a record belongs) can make a load hang.
STRANGER = 54321  # a uid that is neither root nor this user
as_root = pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root to chown")


def test_an_untouched_private_variant_is_not_hashed(synced) -> None:
    assert check_variant(_entry(synced), CPU).hashed == 0


@pytest.mark.parametrize("who", ["everyone", "a shared group"])
def test_a_file_others_may_write_is_hashed_on_every_check(synced, who: str) -> None:
    """Writable by everyone, or by a group that is not this user's own private group."""
    entry = _entry(synced)
    blob = (variant_dir(entry.repo_id, entry.commit, CPU) / "__init__.py").resolve()
    if who == "everyone":
        blob.chmod(0o646)
    elif os.geteuid() != 0:
        pytest.skip("giving a file to another group needs root (chown)")
    else:
        os.chown(blob, -1, STRANGER)
        blob.chmod(0o664)
    assert check_variant(entry, CPU).ok  # records the new fingerprint (chmod changed the ctime)
    check = check_variant(entry, CPU)
    assert check.ok and check.hashed == 1


@as_root
def test_a_file_another_user_owns_is_hashed_on_every_check(synced) -> None:
    entry = _entry(synced)
    blob = (variant_dir(entry.repo_id, entry.commit, CPU) / "__init__.py").resolve()
    os.chown(blob, STRANGER, STRANGER)
    assert check_variant(entry, CPU).ok
    check = check_variant(entry, CPU)
    assert check.ok and check.hashed == 1


@as_root
def test_code_changed_through_a_shared_mapping_is_never_imported(synced, cli, tmp_path) -> None:
    """The attacker owns a blob of a shared cache: a mapping of it, dirtied before the last sync, changes
    its bytes afterwards with every field of the fingerprint as it was."""
    entry = _entry(synced)
    blob = (variant_dir(entry.repo_id, entry.commit, CPU) / "__init__.py").resolve()
    os.chown(blob, STRANGER, STRANGER)
    marker = tmp_path / "attacker-code-ran"
    original = blob.read_bytes()
    evil = f"open({str(marker)!r}, 'w').close()\n".encode()
    assert len(evil) < len(original)
    evil += b"#" * (len(original) - len(evil) - 1) + b"\n"
    with open(blob, "r+b") as f, mmap.mmap(f.fileno(), 0) as mapped:
        mapped[0:1] = original[0:1]  # the page is dirty now; later writes to it leave mtime and ctime alone
        assert cli("sync", "--project", str(synced), "--variant", CPU).exit_code == 0
        before = os.stat(blob)
        mapped[:] = evil
    after = os.stat(blob)
    assert blob.read_bytes() == evil
    if (after.st_mtime_ns, after.st_ctime_ns) != (before.st_mtime_ns, before.st_ctime_ns):
        pytest.skip(
            "this file system noticed the write through the mapping; the attack needs one that does not"
        )
    out = child(tmp_path)[0]
    assert out.startswith("VerificationError") and "__init__.py: content changed" in out
    assert not marker.exists()


def test_a_fifo_where_the_record_belongs_does_not_hang_a_load(synced, tmp_path) -> None:
    entry = _entry(synced)
    record = record_path(entry.repo_id, entry.commit, CPU)
    record.unlink()
    os.mkfifo(record)
    out = child(tmp_path)[0]  # a blocking read would never return: the child is killed at 120 s
    assert out.startswith("NotSyncedError"), out


@pytest.mark.parametrize("planted", ["optional", "optional/__pycache__"])
def test_a_planted_folder_is_refused_and_sync_removes_it(synced, cli, tmp_path, planted) -> None:
    """An empty folder, or one holding only bytecode, would import as a namespace package (`from . import
    optional` would succeed where the locked kernel has no such module)."""
    entry = _entry(synced)
    vdir = variant_dir(entry.repo_id, entry.commit, CPU)
    (vdir / planted).mkdir(parents=True)
    if planted.endswith("__pycache__"):
        (vdir / planted / "x.cpython-311.pyc").write_bytes(b"\0")
    out = child(tmp_path)[0]
    assert out.startswith("VerificationError") and "optional: extra folder" in out
    assert cli("sync", "--project", str(synced), "--variant", CPU).exit_code == 0
    assert not (vdir / "optional").exists()
    assert child(tmp_path) == [f"loaded {CPU}", "False"]
