"""`kernel-lock run`: enforcement in every Python process of a command, `--sync` once for many ranks, `--record`.

Real processes: `kernel-lock run` is started as a subprocess, its command starts Python children, and the
kernels come from a local Hub (stopped where the run must be offline).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from kernel_lock.testing import LocalHub
from kernel_lock.testing.transformers_kernels import (
    MARKER_ENV,
    kernel_repo_files,
)

pytestmark = [pytest.mark.torch, pytest.mark.kernels]
pytest.importorskip("torch")
pytest.importorskip("kernels")

DEPS = (
    '"kernels-community/activation" = 1',
    '"kernels-community/liger-kernels" = 3',
    '"kernels-community/rotary" = 2',
)
KERNEL_LOCK = [sys.executable, "-m", "kernel_lock"]


@pytest.fixture
def tf_hub(tf_hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalHub:
    """conftest's `tf_hub`, with subprocesses told where to note the kernels they import."""
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "imported.txt"))
    return tf_hub


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def run(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KERNEL_LOCK, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


LOAD_TWO = """
    import sys
    import kernels
    import kernel_lock
    act = kernels.get_kernel("kernels-community/activation", version=1)
    layer = kernels.LayerRepository("kernels-community/rotary", layer_name="apply_rotary_transformers", version=2)
    layer.load()
    print(kernel_lock.enforced(), act.VARIANT)
"""


def test_run_enforces_in_the_command_and_its_children_offline(tf_hub, make_project, cli, tmp_path) -> None:
    root = make_project(*DEPS)
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root)).exit_code == 0
    tf_hub.stop()
    child = script(tmp_path, "child.py", LOAD_TWO)
    parent = script(
        tmp_path,
        "parent.py",
        f"""
        import subprocess, sys
        import kernel_lock
        print("parent", kernel_lock.enforced())
        sys.exit(subprocess.call([sys.executable, {str(child)!r}]) + 40)
        """,
    )
    proc = run("run", "--", sys.executable, str(parent), cwd=root)
    assert proc.returncode == 40, proc.stderr  # the command's own exit status
    assert proc.stdout.split() == ["parent", "True", "True", "torch-cpu"]
    assert len((tmp_path / "imported.txt").read_text().split()) == 2


@pytest.fixture
def activation_only(tf_hub, make_project, cli) -> Path:
    """A project that locks and syncs only the activation kernel; the Hub is stopped after."""
    root = make_project(DEPS[0])
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root)).exit_code == 0
    tf_hub.stop()
    return root


def their_sitecustomize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    """The environment's own `sitecustomize`, on `PYTHONPATH` ahead of what is there (this tree, in the suite)."""
    site_dir = tmp_path / "their-site"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text(body + "\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(site_dir), *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    return site_dir / "sitecustomize.py"


def run_load_two(root: Path, tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    prog = script(tmp_path, "prog.py", LOAD_TWO)
    return run("run", *options, "--project", str(root), "--", sys.executable, str(prog), cwd=tmp_path)


def assert_rotary_refused(proc: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "NotLockedError" in proc.stderr
    assert "kernel-lock add kernels-community/rotary --version 2" in proc.stderr
    assert len((tmp_path / "imported.txt").read_text().split()) == 1  # activation only: rotary never ran


def test_run_refuses_what_is_not_locked_and_keeps_an_existing_sitecustomize(
    activation_only, tmp_path, monkeypatch
) -> None:
    their_sitecustomize(tmp_path, monkeypatch, f"open({str(tmp_path / 'theirs-ran')!r}, 'w').close()")
    proc = run_load_two(activation_only, tmp_path)
    assert_rotary_refused(proc, tmp_path)
    assert (tmp_path / "theirs-ran").exists()


@pytest.mark.parametrize(
    "inherited",
    [
        {"KERNEL_LOCK_RECORD": "record"},
        {"KERNEL_LOCK_STRICT": "0"},
        {"KERNEL_LOCK_RECORD": "r", "KERNEL_LOCK_STRICT": "off"},
    ],
    ids=["record", "not-strict", "both"],
)
def test_run_enforces_strictly_whatever_the_environment_says(
    activation_only, tmp_path, monkeypatch, inherited: dict[str, str]
) -> None:
    for name, value in inherited.items():
        monkeypatch.setenv(name, str(tmp_path / value) if name == "KERNEL_LOCK_RECORD" else value)
    assert_rotary_refused(run_load_two(activation_only, tmp_path), tmp_path)
    assert not any((tmp_path / name).exists() for name in ("record", "r"))  # nothing recorded


def test_run_no_strict_warns_and_lets_kernels_load_what_is_not_locked(
    tf_hub, make_project, cli, tmp_path
) -> None:
    root = make_project(DEPS[0])
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root)).exit_code == 0
    proc = run_load_two(root, tmp_path, "--no-strict")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "torch-cpu"]
    assert "kernels-community/rotary" in proc.stderr  # the warning names what it let through
    refused = run("run", "--record", "--no-strict", "--", sys.executable, "-c", "pass", cwd=root)
    assert refused.returncode == 2 and "--no-strict" in refused.stderr


@pytest.mark.parametrize(
    "theirs",
    [
        "raise RuntimeError('their start-up failed')",
        "import kernels\nkernels.get_kernel('kernels-community/rotary', version=2)",
        "raise ImportError('looks like no sitecustomize', name='sitecustomize')",
    ],
    ids=["raises", "loads-an-unlocked-kernel", "import-error-python-ignores"],
)
def test_a_failing_sitecustomize_of_the_environment_leaves_enforcement_on(
    activation_only, tmp_path, monkeypatch, theirs: str
) -> None:
    path = their_sitecustomize(tmp_path, monkeypatch, theirs)
    proc = run_load_two(activation_only, tmp_path)
    assert f"warning: the environment's sitecustomize ({path}) failed" in proc.stderr
    assert_rotary_refused(proc, tmp_path)


def test_run_without_a_lock_fails_before_the_command(tmp_path, make_project) -> None:
    root = make_project(*DEPS)
    proc = run("run", "--", sys.executable, "-c", "print('ran')", cwd=root)
    assert proc.returncode == 1  # no kernels.lock: exit 1, as `sync --locked`
    assert "kernel-lock lock" in proc.stderr and "ran" not in proc.stdout


def test_run_refuses_a_lock_others_can_change(tf_hub, make_project, cli, tmp_path) -> None:
    """A project in a folder anyone may write: another user could swap its kernels.lock for one pinning their
    commits. `run` finds the lock as `get_kernel` does and refuses it before the command starts (it used to
    hand it to the command as KERNEL_LOCK_FILE, which is trusted as named)."""
    root = make_project(*DEPS)
    assert cli("lock", "--project", str(root)).exit_code == 0
    root.chmod(0o777)
    for frozen in ((), ("--frozen",)):
        proc = run("run", *frozen, "--", sys.executable, "-c", "print('ran')", cwd=root)
        assert proc.returncode != 0 and "ran" not in proc.stdout
        assert (
            f"{root / 'kernels.lock'}, but {root / 'kernels.lock'} can be changed by users other"
            in proc.stderr
        )


def test_record_finds_two_kernels_adds_them_and_locks(tf_hub, make_project, tmp_path) -> None:
    root = make_project('"kernels-community/liger-kernels" = 3   # keep this comment')
    prog = script(tmp_path, "prog.py", LOAD_TWO)
    proc = run("run", "--record", "--", sys.executable, str(prog), cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "added kernels-community/activation (version 1)" in proc.stdout
    assert "added kernels-community/rotary (version 2)" in proc.stdout
    pyproject = (root / "pyproject.toml").read_text()
    assert '"kernels-community/liger-kernels" = 3   # keep this comment' in pyproject
    assert '"kernels-community/activation" = 1' in pyproject and '"kernels-community/rotary" = 2' in pyproject
    lock = (root / "kernels.lock").read_text()
    assert all(repo in lock for repo in ("activation", "liger-kernels", "rotary"))
    again = run("run", "--record", "--", sys.executable, str(prog), cwd=root)
    assert again.returncode == 0 and "added" not in again.stdout


def test_eight_ranks_started_together_download_each_file_once(tf_hub, make_project, cli, tmp_path) -> None:
    root = make_project(*DEPS)
    assert cli("lock", "--project", str(root)).exit_code == 0
    tf_hub.clear_log()
    prog = script(tmp_path, "rank.py", LOAD_TWO)
    env = dict(os.environ)
    ranks = [
        subprocess.Popen(
            [*KERNEL_LOCK, "run", "--sync", "--", sys.executable, str(prog)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [rank.communicate(timeout=300) for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0] * 8, [err for _, err in outputs]
    assert all(out.split() == ["True", "torch-cpu"] for out, _ in outputs)
    gets = Counter(r.path for r in tf_hub.requests if r.method == "GET" and "/resolve/" in r.path)
    assert gets and set(gets.values()) == {1}, gets
    assert (
        len(gets) == 3 * 2
    )  # __init__.py, layers.py of each kernel's torch-cpu (metadata.json: read at lock)


@pytest.fixture(scope="module")
def installed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site-packages folder holding kernel-lock as its wheel installs it (built from a copy of this tree)."""
    root = Path(__file__).resolve().parents[1]
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "kernel_lock-enforce.pth"):
        (src / name).write_bytes((root / name).read_bytes())
    shutil.copytree(root / "kernel_lock", src / "kernel_lock", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(src / "dist"), str(src)], check=True
    )
    [wheel] = (src / "dist").glob("*.whl")
    site_dir = tmp_path_factory.mktemp("site-packages")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site_dir), str(wheel)], check=True)
    return site_dir


def test_the_installed_package_enforces_from_the_environment_alone(
    installed_site, tf_hub, make_project, cli, tmp_path
) -> None:
    root = make_project(DEPS[0])
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root)).exit_code == 0
    tf_hub.stop()
    assert (installed_site / "kernel_lock-enforce.pth").is_file()
    # site.addsitedir is what the interpreter does with site-packages at start-up: it runs the .pth files.
    prog = f"import site; site.addsitedir({str(installed_site)!r})\n" + textwrap.dedent(LOAD_TWO)
    env = {**os.environ, "KERNEL_LOCK_ENFORCE": "1", "KERNEL_LOCK_FILE": str(root / "kernels.lock")}
    proc = subprocess.run([sys.executable, "-c", prog], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "kernel-lock add kernels-community/rotary --version 2" in proc.stderr
    assert len((tmp_path / "imported.txt").read_text().split()) == 1  # activation, locked; rotary refused

    quiet = "import site, sys; site.addsitedir(sys.argv[1]); print('kernel_lock' in sys.modules)"
    env.pop("KERNEL_LOCK_ENFORCE")
    unset = subprocess.run(
        [sys.executable, "-c", quiet, str(installed_site)], env=env, capture_output=True, text=True
    )
    assert unset.stdout.split() == ["False"]  # without the variable the hook imports nothing


@pytest.mark.skipif(
    shutil.which("unshare") is None, reason="needs unshare(1) to start a command with no network"
)
def test_run_loads_fully_offline_with_sigstore_installed_and_no_route_out(
    tf_hub, make_project, cli, tmp_path, monkeypatch
) -> None:
    """No Hub, no Sigstore trust root (an empty TUF cache), no network namespace route: the run still loads."""
    pytest.importorskip("sigstore")
    root = make_project(*DEPS)
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root)).exit_code == 0
    tf_hub.stop()
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare --net is not permitted here")
    home = tmp_path / "home"
    for name in ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        path = home / name.lower()
        path.mkdir(parents=True)
        monkeypatch.setenv(name, str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    prog = script(tmp_path, "prog.py", LOAD_TWO)
    proc = subprocess.run(
        ["unshare", "--net", "--", *KERNEL_LOCK, "run", "--", sys.executable, str(prog)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "torch-cpu"]
    assert "signature" not in proc.stderr.lower() and "digest" not in proc.stderr.lower()
    written = [p for p in home.rglob("*") if p.is_file()]
    assert written == []  # nothing fetched or cached for Sigstore (TUF) or by kernels' receipts


def test_record_says_when_the_branch_moved_between_the_run_and_the_lock(
    tf_hub, make_project, tmp_path
) -> None:
    root = make_project()
    loaded, go = tmp_path / "loaded", tmp_path / "go"
    prog = script(
        tmp_path,
        "prog.py",
        f"""
        import pathlib, time
        import kernels
        kernels.get_kernel("kernels-community/activation", version=1)
        pathlib.Path({str(loaded)!r}).touch()
        while not pathlib.Path({str(go)!r}).exists():  # the test moves the branch meanwhile
            time.sleep(0.05)
        """,
    )
    proc = subprocess.Popen(
        [*KERNEL_LOCK, "run", "--record", "--", sys.executable, str(prog)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not loaded.exists() and proc.poll() is None:
            time.sleep(0.05)
        files = kernel_repo_files("kernels-community/activation")
        files["README.md"] = b"# activation\n\nA newer build on the same branch.\n"
        moved = tf_hub.repo("kernels-community/activation").commit(files, branch="v1", message="Rebuild")
        go.touch()
        _, stderr = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "kernels-community/activation version 1: the run loaded commit" in stderr
    assert f"but kernels.lock holds {moved[:12]}: the branch moved between the run and the lock" in stderr
