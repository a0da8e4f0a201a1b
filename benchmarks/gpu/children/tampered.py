"""get_kernel on a tampered variant: prints whether it was refused and that no kernel module was imported.

python tampered.py REPO LOCKFILE
"""

import json
import sys

from kernel_lock import get_kernel
from kernel_lock.errors import VerificationError

try:
    get_kernel(sys.argv[1], lockfile=sys.argv[2])
except VerificationError as exc:
    loaded = [m for m in sys.modules if m.startswith("_gpu_silu")]
    print(json.dumps({"refused": True, "error": str(exc), "kernel_modules": loaded}))
else:
    print(json.dumps({"refused": False}))
