"""The resolve of a lock in a fresh interpreter (its own GIL, like the CLI), timed after the imports.
Prints one JSON line.

    python resolve_in_process.py PROJECT_DIR HUB_URL
"""

import json
import sys
import time
from pathlib import Path

t0 = time.perf_counter()
from kernel_lock.hub.client import Hub  # noqa: E402
from kernel_lock.lock.resolve import LockRequest, lock_dependencies  # noqa: E402
from kernel_lock.project.config import load_project  # noqa: E402 - the import is timed

t1 = time.perf_counter()
project = load_project(Path(sys.argv[1]))
deps, request = project.dependencies, LockRequest(signing=project.signing())
url = sys.argv[2]
t2 = time.perf_counter()
hub = Hub(url)
t3 = time.perf_counter()
c3 = time.process_time()
lock = lock_dependencies(deps, hub=hub, request=request)
t4 = time.perf_counter()
c4 = time.process_time()
m4 = time.monotonic()  # same clock as the server's request log
lock2 = lock_dependencies(deps, hub=hub, request=request)
t5 = time.perf_counter()
assert lock == lock2
print(
    json.dumps(
        {
            "imports": t1 - t0,
            "hub_init": t3 - t2,
            "resolve": t4 - t3,
            "hub_and_resolve": t4 - t2,
            "warm_resolve": t5 - t4,
            "resolve_cpu": c4 - c3,
            "kernels": len(lock.kernel),
            "variants": sum(len(k.variants) for k in lock.kernel),
            "mono_cold_end": m4,
        }
    )
)
