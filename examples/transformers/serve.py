"""A Llama served with transformers' own kernel loading (`use_kernels=True`): nothing here knows kernel-lock.

Started as `kernel-lock run -- python serve.py`, every kernel transformers asks the `kernels` library for is
answered from kernels.lock: the locked commit, hash-verified, offline. A kernel the lock does not hold, or a
changed file, stops the start-up with an error that says what to run.
"""

import os

import torch
import transformers

MODEL = os.environ.get("MODEL")  # a model id or path; without one, a tiny Llama built from a config
device = "cuda" if torch.cuda.is_available() else "cpu"
if MODEL:
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL, use_kernels=True).to(device).eval()
else:
    config = transformers.LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
    )
    model = transformers.LlamaForCausalLM(config).to(device).eval()
    model.set_use_kernels(True)

kernelized = sorted(
    {type(m).__name__ for m in model.modules() if getattr(m.forward, "__func__", None) is not type(m).forward}
)
print(f"on {device}; kernel forwards in: {', '.join(kernelized) or 'none'}")
with torch.no_grad():
    ids = torch.randint(0, model.config.vocab_size, (1, 8), device=device)
    print(model.generate(ids, max_new_tokens=8, do_sample=False).tolist())
