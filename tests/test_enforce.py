"""`kernel_lock.enforce()`: the unchanged `kernels` library and transformers load only locked, verified kernels.

Real kernels 0.17.2 and transformers 5.22.2; a tiny Llama built from a config (no weights downloaded); the
kernels served by a local Hub that is stopped before anything loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import kernel_lock
import kernel_lock.enforcement as enforce_module
from kernel_lock.errors import (
    NotLockedError,
    NotSyncedError,
    OverrideRefused,
    UnsupportedKernelsVersion,
    VerificationError,
)
from kernel_lock.load import _registry as registry
from kernel_lock.testing import LocalHub
from kernel_lock.testing.transformers_kernels import MARKER_ENV
from kernel_lock.testing.upstream import kernels_module

pytestmark = [pytest.mark.torch, pytest.mark.kernels]
torch = pytest.importorskip("torch")
kernels = pytest.importorskip("kernels")
transformers = pytest.importorskip("transformers")
from transformers.integrations import hub_kernels  # noqa: E402 - transformers imports kernels names first

DEPS = (
    '"kernels-community/activation" = 1',
    '"kernels-community/liger-kernels" = 3',
    '"kernels-community/rotary" = 2',
    '"kernels-community/attention-test" = 1',
)


KERNEL_MODULES = ("_activation", "_liger", "_rotary", "_relu", "_attention")


@pytest.fixture(autouse=True)
def no_enforcement() -> Iterator[None]:
    """No enforcement after each test (conftest's `fresh_imports` forgets the kernels it imported)."""
    yield
    enforce_module.disable()


@pytest.fixture
def synced(tf_hub: LocalHub, make_project, cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The kernels locked and synced for this machine; the Hub stopped; a marker file for kernel imports."""
    root = make_project(*DEPS)
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root)).exit_code == 0
    monkeypatch.chdir(root)
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "imported.txt"))
    tf_hub.clear_log()
    tf_hub.stop()
    return root


def imported(tmp_path: Path) -> list[str]:
    """Ids of the fixture kernels whose code ran (each appends to the marker file when imported)."""
    marker = tmp_path / "imported.txt"
    return marker.read_text().split() if marker.exists() else []


def test_kernels_get_kernel_answers_from_the_lock_with_the_hub_stopped(synced, tf_hub, tmp_path) -> None:
    assert not kernel_lock.enforced()
    kernel_lock.enforce(synced / "kernels.lock")
    assert kernel_lock.enforced()
    activation = kernels.get_kernel("kernels-community/activation", version=1)
    assert activation.VARIANT == "torch-cpu"
    assert activation is kernel_lock.get_kernel("kernels-community/activation")
    assert kernels.get_kernel("kernels-community/activation", version=1) is activation
    assert imported(tmp_path) == [activation.KERNEL_ID]
    [loaded] = kernels.get_loaded_kernels()
    assert loaded.module is activation and loaded.repo_info.repo_id == "kernels-community/activation"
    assert kernels.has_kernel("kernels-community/rotary", version=2)
    assert tf_hub.requests == []


def test_transformers_imported_names_go_through_the_lock(synced, tf_hub, tmp_path) -> None:
    kernel_lock.enforce(synced / "kernels.lock")
    rotary = hub_kernels.get_kernel("kernels-community/rotary", version=2)
    assert rotary.VARIANT == "torch-cpu"
    with pytest.raises(NotLockedError, match="kernel-lock add kernels-community/deep-gemm --version 2"):
        hub_kernels.lazy_load_kernel("deep-gemm", mapping={})
    mapping: dict = {}
    hub_kernels._HUB_KERNEL_MAPPING["activation-test"] = {
        "repo_id": "kernels-community/activation",
        "version": 1,
    }
    try:
        assert hub_kernels.lazy_load_kernel("activation-test", mapping=mapping).VARIANT == "torch-cpu"
    finally:
        del hub_kernels._HUB_KERNEL_MAPPING["activation-test"]
    assert tf_hub.requests == []


def tiny_llama() -> transformers.LlamaForCausalLM:
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        hidden_act="silu",
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def test_kernelize_a_tiny_llama_with_locked_layers_on_cpu(synced, tf_hub, tmp_path) -> None:
    model = tiny_llama()
    ids = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        expected = model(ids).logits
    kernel_lock.enforce(synced / "kernels.lock")
    mapping = {
        "SiLU": {
            "cpu": kernels.LayerRepository("kernels-community/activation", layer_name="Silu", version=1)
        },
        "RMSNorm": {
            "cpu": kernels.LayerRepository(
                "kernels-community/liger-kernels", layer_name="LigerRMSNorm", version=3
            )
        },
    }
    with kernels.use_kernel_mapping(mapping, inherit_mapping=False):
        kernels.kernelize(model, device="cpu", mode=kernels.Mode.INFERENCE)
    act = model.model.layers[0].mlp.act_fn
    assert act.forward.__func__.__module__.endswith(".layers")
    assert model.model.norm.forward.__func__.__qualname__ == "LigerRMSNorm.forward"
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, expected)
    assert sorted(n.split("_")[1] for n in imported(tmp_path)) == ["activation", "liger"]
    assert tf_hub.requests == []


def test_a_tampered_file_is_refused_before_any_kernel_code_runs(synced, tmp_path) -> None:
    from kernel_lock.core.cache_layout import variant_dir
    from kernel_lock.core.lockfile import read_lock

    entry = read_lock(synced / "kernels.lock").find("kernels-community/activation")
    layers = variant_dir(entry.repo_id, entry.commit, "torch-cpu") / "layers.py"
    real = layers.resolve()
    real.chmod(0o644)
    real.write_text(real.read_text() + "\nimport os; os.system('echo pwned')\n")
    kernel_lock.enforce(synced / "kernels.lock")
    with pytest.raises(VerificationError, match=r"layers\.py: content changed"):
        kernels.get_kernel("kernels-community/activation", version=1)
    repo = kernels.LayerRepository("kernels-community/activation", layer_name="Silu", version=1)
    with pytest.raises(VerificationError):
        repo.load()
    assert imported(tmp_path) == []


def test_a_planted_bytecode_cache_is_never_run(synced, tmp_path) -> None:
    from kernel_lock.core.cache_layout import variant_dir
    from kernel_lock.core.lockfile import read_lock

    entry = read_lock(synced / "kernels.lock").find("kernels-community/rotary")
    vdir = variant_dir(entry.repo_id, entry.commit, "torch-cpu")
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(tmp_path / 'pwned')!r}, 'w').close()\n")
    import py_compile

    tag = sys.implementation.cache_tag
    py_compile.compile(str(evil), cfile=str(vdir / "__pycache__" / f"layers.{tag}.pyc"), dfile="layers.py")
    kernel_lock.enforce(synced / "kernels.lock")
    rotary = kernels.get_kernel("kernels-community/rotary", version=2)
    assert hasattr(rotary.layers, "apply_rotary_transformers")
    assert not (tmp_path / "pwned").exists()


def test_unlocked_repos_and_versions_are_refused_naming_the_add_command(synced, tmp_path) -> None:
    kernel_lock.enforce(synced / "kernels.lock")
    with pytest.raises(NotLockedError, match="kernel-lock add kernels-community/flash-attn2 --version 4"):
        kernels.get_kernel("kernels-community/flash-attn2", version=4)
    with pytest.raises(NotLockedError, match=r"holds version 1 \(commit [0-9a-f]{12}\)") as info:
        kernels.get_kernel("kernels-community/activation", version=2)
    assert "kernel-lock add kernels-community/activation --version 2" in str(info.value)
    with pytest.raises(NotLockedError, match="--revision main"):
        kernels.get_kernel("kernels-community/activation", revision="main")
    with pytest.raises(NotLockedError, match="--version 7"):
        kernels.LayerRepository(
            "kernels-community/rotary", layer_name="apply_rotary_transformers", version=7
        ).load()
    assert imported(tmp_path) == []


def test_not_strict_warns_and_lets_kernels_load_it(tf_hub, make_project, cli, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(
        constants, "HF_HUB_USER_AGENT_ORIGIN", "kernel-lock-tests"
    )  # kernels' agent is invalid
    root = make_project(*DEPS)
    assert cli("lock", "--project", str(root)).exit_code == 0
    kernel_lock.enforce(root / "kernels.lock", strict=False)
    tf_hub.clear_log()
    with pytest.warns(UserWarning, match="does not hold"):
        module = kernels.get_kernel("kernels-community/activation", revision="main")
    assert module.VARIANT == "torch-cpu"
    assert tf_hub.requests != []


def test_local_kernel_overrides_are_refused(synced, monkeypatch, tmp_path) -> None:
    kernel_lock.enforce(synced / "kernels.lock")
    from kernel_lock.core.cache_layout import repo_dir

    snapshot = next((repo_dir("kernels-community/activation") / "snapshots").iterdir())
    with pytest.raises(NotLockedError, match="local path"):
        kernels.get_local_kernel(snapshot)
    assert imported(tmp_path) == []


def test_a_missing_sync_names_the_sync_command(tf_hub, make_project, cli, monkeypatch) -> None:
    root = make_project(*DEPS)
    assert cli("lock", "--project", str(root)).exit_code == 0
    tf_hub.stop()
    kernel_lock.enforce(root / "kernels.lock")
    with pytest.raises(NotSyncedError, match="kernel-lock run --sync"):
        kernels.get_kernel("kernels-community/activation", version=1)


def test_an_unknown_kernels_version_fails_clearly(synced, monkeypatch) -> None:
    monkeypatch.setattr(kernels, "__version__", "0.20.0")
    with pytest.raises(
        UnsupportedKernelsVersion, match=r"0\.17\.x, 0\.18\.x, 0\.19\.x, but kernels 0\.20\.0 is installed"
    ):
        kernel_lock.enforce(synced / "kernels.lock")
    assert not kernel_lock.enforced()


@pytest.mark.parametrize("claimed", ["0.17.9", "0.18.9", "0.19.9"])
def test_a_release_that_is_not_what_its_version_says_is_refused(synced, monkeypatch, claimed) -> None:
    """Each adapter checks every place it hooks: another family's layout under its version number is refused."""
    installed = kernels.__version__.split(".")[:2]
    if claimed.split(".")[:2] == installed:
        pytest.skip("the installed release's own family")
    monkeypatch.setattr(kernels, "__version__", claimed)
    with pytest.raises(UnsupportedKernelsVersion, match=r"\(missing: ") as refused:
        kernel_lock.enforce(synced / "kernels.lock")
    assert refused.value.version == claimed and refused.value.missing
    assert not kernel_lock.enforced()
    assert kernels_module("resolver").HubResolver.resolve.__module__.startswith(
        "kernels"
    )  # nothing left patched


def test_enforce_before_kernels_is_imported_hooks_it_on_import(synced, tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import kernel_lock
        kernel_lock.enforce({str(synced / "kernels.lock")!r})
        assert "kernels" not in sys.modules
        from transformers.integrations.hub_kernels import get_kernel
        print(get_kernel("kernels-community/activation", version=1).VARIANT)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["torch-cpu"]


def test_kernel_dependencies_come_from_the_lock_too(hub_env, make_project, cli) -> None:
    root = make_project('"kernels-community/relu" = 2')
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root)).exit_code == 0
    hub_env.clear_log()
    hub_env.stop()
    kernel_lock.enforce(root / "kernels.lock")
    relu = kernels.get_kernel("kernels-community/relu", version=2)
    assert relu.VERSION == 2
    loaded = {k.repo_info.repo_id: k.module for k in kernels.get_loaded_kernels()}
    assert set(loaded) == {"kernels-community/relu", "kernels-community/activation"}
    ours = {key[0]: module for key, module in registry.loaded.items()}
    assert ours == loaded  # imported once each, by kernel-lock's verified loader
    assert hub_env.requests == []


@pytest.mark.gpu
def test_transformers_use_kernels_with_a_kernel_config_loads_from_the_lock(synced, tf_hub, tmp_path) -> None:
    """transformers maps layers to kernels only for accelerators (not `cpu`): this runs on the GPU machine."""
    model = tiny_llama().cuda()
    ids = torch.randint(0, 64, (2, 12), device="cuda")
    with torch.no_grad():
        expected = model(ids).logits
    model.save_pretrained(tmp_path / "tiny")
    kernel_lock.enforce(synced / "kernels.lock")
    config = transformers.KernelConfig(
        {
            "RMSNorm": ("kernels-community/liger-kernels:LigerRMSNorm", {"version": 3}),
            "SiLU": ("kernels-community/activation:Silu", {"version": 1}),
        }
    )
    loaded = transformers.LlamaForCausalLM.from_pretrained(
        tmp_path / "tiny", use_kernels=True, kernel_config=config, device_map="cuda"
    ).eval()
    assert loaded.model.norm.forward.__func__.__qualname__ == "LigerRMSNorm.forward"
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, expected)
    # kernel_config's layers, and rotary from transformers' own mapping (which kernel_config inherits)
    assert sorted(n.split("_")[1] for n in imported(tmp_path)) == ["activation", "liger", "rotary"]
    assert tf_hub.requests == []


def test_an_attention_kernel_named_in_attn_implementation_loads_from_the_lock(
    synced, tf_hub, tmp_path
) -> None:
    model = tiny_llama()
    ids = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        expected = model(ids).logits
    model.save_pretrained(tmp_path / "tiny")
    kernel_lock.enforce(synced / "kernels.lock")
    loaded = transformers.LlamaForCausalLM.from_pretrained(
        tmp_path / "tiny", attn_implementation="kernels-community/attention-test"
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, expected)
    assert [n.split("_")[1] for n in imported(tmp_path)] == ["attention"]
    with pytest.raises(ValueError, match="kernel-lock add kernels-community/flash-attn2 --version"):
        transformers.LlamaForCausalLM.from_pretrained(
            tmp_path / "tiny", attn_implementation="kernels-community/flash-attn2"
        )
    assert tf_hub.requests == []


def test_a_function_repository_loads_from_the_lock_offline(synced, tf_hub, tmp_path) -> None:
    kernel_lock.enforce(synced / "kernels.lock")
    func = kernels.FuncRepository(
        "kernels-community/attention-test", func_name="flash_attn_forward", version=1
    ).load()
    assert func.__name__ and imported(tmp_path) != []
    with pytest.raises(NotLockedError, match="kernel-lock add kernels-community/attention-test --version 2"):
        kernels.FuncRepository(
            "kernels-community/attention-test", func_name="flash_attn_forward", version=2
        ).load()
    assert tf_hub.requests == []


@pytest.mark.parametrize("variable", ["LOCAL_KERNELS", "UNSTABLE_KERNELS_ALL_LATEST"])
def test_kernels_variables_that_bypass_the_lock_are_refused_naming_them(
    synced, tmp_path, monkeypatch, variable
) -> None:
    from kernel_lock.enforcement._adapters import adapter_for

    kernel_lock.enforce(synced / "kernels.lock")
    if variable not in adapter_for(kernels).overrides:
        pytest.skip(f"kernels {kernels.__version__} does not read {variable}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    value = f"kernels-community/activation={elsewhere}" if variable == "LOCAL_KERNELS" else "1"
    monkeypatch.setenv(variable, value)
    for load in (
        lambda: kernels.get_kernel("kernels-community/activation", version=1),
        lambda: kernels.LayerRepository("kernels-community/activation", layer_name="Silu", version=1).load(),
        lambda: kernels.has_kernel("kernels-community/rotary", version=2),
    ):
        with pytest.raises(OverrideRefused, match=variable) as refused:
            load()
        assert refused.value.variable == variable
    assert imported(tmp_path) == []


def test_downloading_every_variant_is_refused(synced, tf_hub) -> None:
    kernel_lock.enforce(synced / "kernels.lock")
    install = kernels_module("install")
    with pytest.raises(NotSyncedError, match="kernel-lock sync --all-variants"):
        install.install_kernel_all_variants("kernels-community/activation", version=1)
    assert tf_hub.requests == []


def test_kernels_private_import_step_refuses_a_folder_the_lock_did_not_verify(synced, tmp_path) -> None:
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "__init__.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w').close()\n")
    (planted / "metadata.json").write_text(
        '{"id": "_planted_0", "name": "planted", "version": 1, "license": "MIT", "python-depends": [], "backend": {"type": "cpu"}}'
    )
    kernel_lock.enforce(synced / "kernels.lock")
    for module in ("importer", "deps"):
        with pytest.raises(VerificationError, match=r"not resolved through kernels\.lock"):
            kernels_module(module)._import_from_path(planted, {})
    assert not (tmp_path / "pwned").exists()


def test_recording_notes_what_the_program_asked_for_not_the_kernels_it_depends_on(hub_env, tmp_path) -> None:
    log = tmp_path / "requests.jsonl"
    script = textwrap.dedent(
        f"""
        import kernel_lock.enforcement, kernels
        kernel_lock.enforcement.record({str(log)!r})
        print(kernels.get_kernel("kernels-community/relu", version=2, trust_remote_code=True).VERSION)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2"]
    noted = [json.loads(line)["repo_id"] for line in log.read_text().splitlines()]
    assert noted == ["kernels-community/relu"]  # not kernels-community/activation, which relu v2 depends on


def test_a_verified_metadata_json_kernels_cannot_read_is_our_error(tmp_path) -> None:
    """A lock made before duplicate keys were refused may vouch for one: the load stops with our error."""
    from kernel_lock.enforcement._adapters import _metadata

    (tmp_path / "metadata.json").write_text(
        '{"id": "_relu_1", "id": "_relu_2", "name": "relu", "version": 1, "license": "MIT",'
        ' "python-depends": [], "backend": {"type": "cpu"}}'
    )
    with pytest.raises(VerificationError, match=r"cannot read it .*nothing was imported"):
        _metadata(tmp_path)
