"""A tiny model whose SiluAndMul is kernelized from a LockedLayerRepository on CUDA; prints whether outputs agree.

python kernelize.py REPO LOCKFILE
"""

import json
import sys

import torch
from kernels import Mode, kernelize, use_kernel_forward_from_hub, use_kernel_mapping

from kernel_lock import LockedLayerRepository


@use_kernel_forward_from_hub("SiluAndMul")
class SiluAndMul(torch.nn.Module):
    def forward(self, x):
        d = x.shape[-1] // 2
        return torch.nn.functional.silu(x[..., :d]) * x[..., d:]


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(256, 1024)
        self.act = SiluAndMul()

    def forward(self, x):
        return self.act(self.linear(x))


model = Model().cuda()
x = torch.randn(64, 256, device="cuda")
expected = model(x)
repo = LockedLayerRepository(sys.argv[1], layer_name="SiluAndMul", lockfile=sys.argv[2])
with use_kernel_mapping({"SiluAndMul": {"cuda": repo}}, inherit_mapping=False):
    kernelize(model, mode=Mode.INFERENCE, device="cuda")
got = model(x)
torch.cuda.synchronize()
loaded = [m for m in sys.modules if m.startswith("_gpu_silu")]
print(
    json.dumps(
        {
            "ok": bool(torch.allclose(got, expected, atol=1e-5, rtol=1e-5)),
            "kernel_modules": sorted(loaded),
            "max_abs_err": float((got - expected).abs().max()),
        }
    )
)
