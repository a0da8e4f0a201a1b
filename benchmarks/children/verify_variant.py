"""In-process verification cost and hashing throughput of one synced variant. Prints one JSON line.

python verify_variant.py REPO LOCKFILE VARIANT N_FAST N_FULL
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

t0 = time.perf_counter()
from kernel_lock.cache.verify import check_variant  # noqa: E402
from kernel_lock.core.cache_layout import (  # noqa: E402
    read_record,
    record_path,
    variant_dir,
)
from kernel_lock.core.hashing import hash_file  # noqa: E402
from kernel_lock.core.lockfile import read_lock  # noqa: E402

t1 = time.perf_counter()
repo, lockfile, variant = sys.argv[1], sys.argv[2], sys.argv[3]
n_fast, n_full = int(sys.argv[4]), int(sys.argv[5])
entry = read_lock(Path(lockfile)).find(repo)
out = {"import": t1 - t0}


def timed(fn, n):
    """(n wall times of fn(), its last result)."""
    values = []
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        values.append(time.perf_counter() - start)
    return values, result


start = time.perf_counter()
first = check_variant(entry, variant, mode="fast")
out["fast_first_call"] = time.perf_counter() - start
assert first.ok, first.problems
out["fast"], check = timed(lambda: check_variant(entry, variant, mode="fast"), n_fast)
assert check.ok and check.hashed == 0, (check.status, check.hashed)
out["fast_hashed_files"] = check.hashed
rpath = record_path(entry.repo_id, entry.commit, variant)
out["read_record"], _ = timed(lambda: read_record(rpath), n_fast)
out["full"], check = timed(lambda: check_variant(entry, variant, mode="full"), n_full)
assert check.ok, check.problems
out["full_hashed_files"] = check.hashed
vdir = variant_dir(entry.repo_id, entry.commit, variant)
record = read_record(rpath)
out["variant_bytes"] = sum(e.size for e in record.manifest)
out["variant_files"] = len(record.manifest)
big = max(record.manifest, key=lambda e: e.size)
out["so_bytes"] = big.size
out["hash_so"], _ = timed(lambda: hash_file(vdir / big.path), n_full)
buf = os.urandom(64 << 20)
out["raw_sha256_64MB"], _ = timed(lambda: hashlib.sha256(buf).hexdigest(), n_full)
print(json.dumps(out))
