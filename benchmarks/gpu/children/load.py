"""Fresh process: torch, then the kernel loaded verified (kernel_lock.get_kernel) or imported bare; prints its timings:
`load_s` is the call (or the bare import), `lib_import_s` the import of kernel_lock's loader before it.

python load.py verified|unverified VARIANT_DIR [REPO LOCKFILE]
"""

import json
import os
import sys
import time

t0 = time.perf_counter()
import torch  # noqa: E402 - its import is timed

torch.cuda.init()
t1 = time.perf_counter()
mode = sys.argv[1]
vdir = sys.argv[2]
if mode == "verified":
    t_lib = time.perf_counter()
    from kernel_lock import get_kernel

    t2 = time.perf_counter()
    k = get_kernel(sys.argv[3], lockfile=sys.argv[4])
else:
    import importlib.util

    t_lib = t2 = time.perf_counter()
    with open(os.path.join(vdir, "metadata.json")) as f:
        meta = json.load(f)
    spec = importlib.util.spec_from_file_location(
        meta["id"], os.path.join(vdir, "__init__.py"), submodule_search_locations=[vdir]
    )
    k = importlib.util.module_from_spec(spec)
    sys.modules[meta["id"]] = k
    spec.loader.exec_module(k)
t3 = time.perf_counter()
x = torch.randn(4096, 2 * 1024, device="cuda")
out = torch.empty(4096, 1024, device="cuda")
k.silu_and_mul(out, x)
torch.cuda.synchronize()
ok = torch.allclose(out, torch.nn.functional.silu(x[:, :1024]) * x[:, 1024:], atol=1e-5, rtol=1e-5)
print(
    json.dumps(
        {
            "load_s": t3 - t2,
            "lib_import_s": t2 - t_lib,
            "torch_import_s": t1 - t0,
            "ok": bool(ok),
            "variant": k.VARIANT,
        }
    )
)
