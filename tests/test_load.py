"""Verified loading: the locked `get_kernel` and `LockedLayerRepository`, offline, against tampering."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from kernel_lock.core.cache_layout import variant_dir
from kernel_lock.core.lockfile import read_lock
from kernel_lock.errors import LockfileError, NotSyncedError, VerificationError
from kernel_lock.load.locked import LockedLayerRepository, get_kernel
from kernel_lock.testing.fixtures import CPU_VARIANT

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="test_load.py needs torch (marker `torch`)")

DEPS = ('"kernels-community/relu" = 1', '"kernels-community/old-relu" = 2')
KERNEL_MODULES = ("_relu", "_activation")


@pytest.fixture
def synced(hub_env, make_project, cli, monkeypatch) -> Path:
    """A project with relu v1 (and v2, through the old-relu redirect) locked and synced for this machine."""
    root = make_project(*DEPS)
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert (
        cli("sync", "--project", str(root), "--variant", CPU_VARIANT, "--variant", "torch-cpu").exit_code == 0
    )
    monkeypatch.chdir(root)
    return root


def kernel_ids() -> set[str]:
    """Kernel modules imported in this process (top-level packages only)."""
    return {n for n in sys.modules if n.startswith("_relu") and "." not in n}


def test_offline_load_with_the_hub_stopped(synced, hub_env, monkeypatch) -> None:
    hub_env.clear_log()
    hub_env.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    relu = get_kernel("kernels-community/relu", lockfile=synced / "kernels.lock")
    assert relu.VARIANT == CPU_VARIANT
    x = torch.randn(64, 32)
    out = torch.empty_like(x)
    relu.relu(out, x)
    torch.testing.assert_close(out, torch.relu(x))
    assert hub_env.requests == []
    assert get_kernel("kernels-community/relu", lockfile=synced / "kernels.lock") is relu
    v2 = get_kernel("kernels-community/old-relu", lockfile=synced / "kernels.lock")
    assert v2 is not relu and v2.VERSION == 2 and v2.__name__ != relu.__name__


def test_lock_discovery_order_and_not_found(synced, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERNEL_LOCK_FILE", str(synced / "kernels.lock"))
    assert get_kernel("kernels-community/relu").VARIANT == CPU_VARIANT
    monkeypatch.delenv("KERNEL_LOCK_FILE")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LockfileError) as info:
        get_kernel("kernels-community/relu")
    message = str(info.value)
    assert "lockfile argument" in message and "KERNEL_LOCK_FILE" in message and "calling package" in message
    with pytest.raises(LockfileError, match=r"not in kernels\.lock"):
        get_kernel("kernels-community/activation", lockfile=synced / "kernels.lock")


def test_lock_from_the_installed_metadata_of_the_calling_package(synced, tmp_path) -> None:
    pkg = synced
    (pkg / "myapp").mkdir()
    (pkg / "myapp" / "__init__.py").write_text(
        "from kernel_lock import get_kernel\n\ndef run():\n    return get_kernel('kernels-community/relu').VARIANT\n"
    )
    text = (pkg / "pyproject.toml").read_text().replace('name = "proj"', 'name = "myapp"')
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        + text
        + '\n[tool.setuptools]\npackages = ["myapp"]\n'
    )
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-build-isolation",
            "--no-deps",
            "-t",
            str(target),
            str(pkg),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [dist_info] = target.glob("myapp-*.dist-info")
    assert (dist_info / "kernels.lock").read_bytes() == (synced / "kernels.lock").read_bytes()
    env = dict(os.environ, PYTHONPATH=str(target), HF_HUB_OFFLINE="1")
    env.pop("KERNEL_LOCK_FILE", None)
    proc = subprocess.run(
        [sys.executable, "-c", "import myapp; print(myapp.run())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == CPU_VARIANT


def test_missing_variant_says_which_sync_to_run_or_downloads(hub_env, make_project, cli, monkeypatch) -> None:
    root = make_project(*DEPS)
    assert cli("lock", "--project", str(root)).exit_code == 0
    with pytest.raises(NotSyncedError, match=f"kernel-lock sync --variant {CPU_VARIANT}"):
        get_kernel("kernels-community/relu", lockfile=root / "kernels.lock")
    relu = get_kernel("kernels-community/relu", lockfile=root / "kernels.lock", download=True)
    assert relu.VARIANT == CPU_VARIANT


def test_target_selects_another_variant(synced) -> None:
    cuda = "torch213-cxx11-cu126-x86_64-linux"
    with pytest.raises(NotSyncedError, match=f"sync --variant {cuda}"):
        get_kernel("kernels-community/relu", lockfile=synced / "kernels.lock", target=cuda)
    relu = get_kernel("kernels-community/relu", lockfile=synced / "kernels.lock", target=cuda, download=True)
    assert cuda == relu.VARIANT


def test_loads_in_many_threads_import_once(synced) -> None:
    results: list[object] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        results.append(get_kernel("kernels-community/relu", lockfile=synced / "kernels.lock"))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len({id(m) for m in results}) == 1
    assert len(kernel_ids()) == 1


def test_planted_bytecode_is_never_executed(synced) -> None:
    lock = read_lock(synced / "kernels.lock")
    relu = lock.find("kernels-community/relu")
    vdir = variant_dir(relu.repo_id, relu.commit, CPU_VARIANT)
    cache = vdir / "__pycache__"
    cache.mkdir()
    import importlib.util

    evil = compile("raise SystemExit('planted bytecode ran')", str(vdir / "layers.py"), "exec")
    source = vdir / "layers.py"
    st = source.stat()
    header = (
        importlib.util.MAGIC_NUMBER
        + b"\0\0\0\0"
        + int(st.st_mtime).to_bytes(4, "little")
        + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    )
    import marshal

    (cache / importlib.util.cache_from_source(str(source)).rsplit("/", 1)[1]).write_bytes(
        header + marshal.dumps(evil)
    )
    kernel = get_kernel("kernels-community/relu", lockfile=synced / "kernels.lock")
    assert kernel.layers.ReLU is not None


# --- the threat model: every case refused in every mode, naming the file, importing nothing --------------


def _tamper_cases(
    vdir: Path, other_variant: Path, other_commit: Path, outside: Path
) -> dict[str, Callable[[], str]]:
    def change_byte() -> str:
        with open(vdir / "layers.py", "r+b") as f:  # through the symlink, into the blob
            first = f.read(1)
            f.seek(0)
            f.write(bytes([first[0] ^ 1]))
        return "layers.py"

    def change_byte_keep_mtime() -> str:
        st = os.stat(vdir / "_ops.py")
        with open(vdir / "_ops.py", "r+b") as f:
            f.seek(10)
            f.write(b"#")
        os.utime(vdir / "_ops.py", ns=(st.st_atime_ns, st.st_mtime_ns))
        return "_ops.py"

    def truncate() -> str:
        so = next(p for p in vdir.iterdir() if p.name.endswith(".so"))
        with open(so, "r+b") as f:
            f.truncate(100)
        return so.name

    def missing() -> str:
        (vdir / "_ops.py").unlink()
        return "_ops.py"

    def extra_py() -> str:
        (vdir / "evil.py").write_text("import os\n")
        return "evil.py"

    def symlink_elsewhere() -> str:
        copy = outside / "layers.py"
        copy.write_bytes((vdir / "layers.py").read_bytes())  # same bytes, wrong place
        (vdir / "layers.py").unlink()
        (vdir / "layers.py").symlink_to(copy)
        return "layers.py"

    def swap_variant() -> str:
        shutil.rmtree(vdir)
        shutil.copytree(other_variant, vdir, symlinks=True)
        return "metadata.json"

    def swap_commit() -> str:
        shutil.rmtree(vdir)
        shutil.copytree(other_commit, vdir, symlinks=True)
        return ".py"

    return {
        f.__name__: f
        for f in (
            change_byte,
            change_byte_keep_mtime,
            truncate,
            missing,
            extra_py,
            symlink_elsewhere,
            swap_variant,
            swap_commit,
        )
    }


CASES = [
    "change_byte",
    "change_byte_keep_mtime",
    "truncate",
    "missing",
    "extra_py",
    "symlink_elsewhere",
    "swap_variant",
    "swap_commit",
]


@pytest.mark.parametrize("mode", ["fast", "full"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("loader", ["get_kernel", "layer", "verify"])
def test_tampering_is_refused(synced, tmp_path, cli, monkeypatch, mode: str, case: str, loader: str) -> None:
    monkeypatch.setenv("KERNEL_LOCK_VERIFY", mode)
    lock = read_lock(synced / "kernels.lock")
    v1 = lock.find("kernels-community/relu")
    v2 = lock.find("kernels-community/old-relu")
    vdir = variant_dir(v1.repo_id, v1.commit, CPU_VARIANT)
    # one clean verified load first (records fingerprints), in a child process so nothing stays imported here
    assert cli("verify", "--project", str(synced)).exit_code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    cases = _tamper_cases(
        vdir,
        variant_dir(v1.repo_id, v1.commit, "torch-cpu"),
        variant_dir(v2.repo_id, v2.commit, CPU_VARIANT),
        outside,
    )
    named = cases[case]()
    if loader == "verify":
        run = cli("verify", "--project", str(synced), *(["--full"] if mode == "full" else []))
        assert run.exit_code == 4 and named in run.stdout
        return
    lockfile = synced / "kernels.lock"

    def load() -> object:
        if loader == "get_kernel":
            return get_kernel("kernels-community/relu", lockfile=lockfile)
        return LockedLayerRepository("kernels-community/relu", layer_name="ReLU", lockfile=lockfile).load()

    with pytest.raises(VerificationError) as info:
        load()
    message = str(info.value)
    assert "kernels-community/relu" in message and CPU_VARIANT in message and named in message
    assert kernel_ids() == set(), "no kernel code may run when verification fails"


# --- the kernels library's layer protocol --------------------------------------------------------------


def _model() -> torch.nn.Module:
    from kernels import use_kernel_forward_from_hub

    @use_kernel_forward_from_hub("SiluAndMul")
    class SiluAndMul(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            d = x.shape[-1] // 2
            return torch.nn.functional.silu(x[..., :d]) * x[..., d:]

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(16, 32)
            self.act = SiluAndMul()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.linear(x))

    return Model()


@pytest.mark.kernels
def test_kernelize_with_a_locked_layer(synced) -> None:
    from kernels import Mode, kernelize, use_kernel_mapping

    repo = LockedLayerRepository(
        "kernels-community/relu", layer_name="SiluAndMul", lockfile=synced / "kernels.lock"
    )
    same = LockedLayerRepository(
        "kernels-community/relu", layer_name="SiluAndMul", lockfile=synced / "kernels.lock"
    )
    assert repo == same and hash(repo) == hash(same) and "kernels-community/relu" in str(repo)
    model = _model()
    x = torch.randn(4, 16)
    expected = model(x)
    with use_kernel_mapping({"SiluAndMul": {"cpu": repo}}, inherit_mapping=False):
        kernelize(model, mode=Mode.INFERENCE, device="cpu")
    assert kernel_ids(), "the locked kernel was loaded"
    torch.testing.assert_close(model(x), expected)
    assert type(model.act).forward is not None


@pytest.mark.kernels
def test_kernelize_refuses_a_tampered_kernel(synced) -> None:
    from kernels import Mode, kernelize, use_kernel_mapping

    lock = read_lock(synced / "kernels.lock")
    v1 = lock.find("kernels-community/relu")
    with open(variant_dir(v1.repo_id, v1.commit, CPU_VARIANT) / "layers.py", "ab") as f:
        f.write(b"\nraise SystemExit('tampered kernel code ran')\n")
    repo = LockedLayerRepository(
        "kernels-community/relu", layer_name="SiluAndMul", lockfile=synced / "kernels.lock"
    )
    model = _model()
    with (
        use_kernel_mapping({"SiluAndMul": {"cpu": repo}}, inherit_mapping=False),
        pytest.raises(VerificationError, match=r"layers\.py: content changed"),
    ):
        kernelize(model, mode=Mode.INFERENCE, device="cpu")
    assert kernel_ids() == set()
