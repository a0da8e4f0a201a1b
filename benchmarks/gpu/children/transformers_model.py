"""A tiny Llama from a config, with set_use_kernels(True): logits against the plain model, which kernels loaded.

Run in a project folder (under `kernel-lock run` or with kernels alone); BENCH_DEVICE is cuda or cpu.
"""

import json
import os
import sys
import time

t0 = time.perf_counter()
import torch  # noqa: E402 - its import is timed
import transformers  # noqa: E402 - its import is timed

device = os.environ["BENCH_DEVICE"]
if device == "cpu":  # transformers maps these layers for cuda only: the same mapping, for cpu
    import kernels

    kernels.register_kernel_mapping(
        {
            "SiLU": {
                "cpu": kernels.LayerRepository("kernels-community/activation", layer_name="Silu", version=1)
            },
            "RMSNorm": {
                "cpu": kernels.LayerRepository(
                    "kernels-community/liger-kernels", layer_name="LigerRMSNorm", version=3
                )
            },
            "rotary_pos_emb": {
                "cpu": kernels.LayerRepository(
                    "kernels-community/rotary", layer_name="apply_rotary_transformers", version=2
                )
            },
        }
    )
config = transformers.LlamaConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    hidden_act="silu",
)
torch.manual_seed(0)
model = transformers.LlamaForCausalLM(config).to(device).eval()
ids = torch.randint(0, 128, (2, 16), device=device)
with torch.no_grad():
    expected = model(ids).logits
result = {}
try:
    model.set_use_kernels(True)
except Exception as exc:
    result["error"] = f"{type(exc).__name__}: {exc}"[:1500]
else:
    with torch.no_grad():
        got = model(ids).logits
    act = model.model.layers[0].mlp.act_fn
    if not act.forward.__func__.__module__.endswith(".layers"):
        raise SystemExit(f"SiLU was not kernelized: {act.forward.__func__.__module__}")
    result["act_forward_module"] = act.forward.__func__.__module__
    result["norm_forward"] = model.model.norm.forward.__func__.__qualname__
    result["max_abs_err"] = float((got - expected).abs().max())
    result["ok"] = bool(torch.allclose(got, expected, atol=1e-4, rtol=1e-4))
    act_kernel = sys.modules[result["act_forward_module"].rsplit(".", 1)[0]]
    result["cuda_kernel_calls"] = act_kernel.CALLS[0] if hasattr(act_kernel, "CALLS") else None
    result["variant"] = act_kernel.VARIANT
try:
    import kernel_lock

    result["enforced"] = kernel_lock.enforced()
except ImportError:
    result["enforced"] = None
result["kernel_modules"] = sorted(
    m for m in sys.modules if m.startswith(("_activation", "_liger", "_rotary")) and "." not in m
)
result["seconds"] = time.perf_counter() - t0
print(json.dumps(result))
