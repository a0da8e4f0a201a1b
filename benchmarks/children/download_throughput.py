"""A raw GET loop against the server, with huggingface_hub's own HTTP session. Prints one JSON line.

python download_throughput.py URL WORKERS ROUNDS PATH ...
"""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from huggingface_hub.utils import get_session

url, workers, rounds, paths = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
session = get_session()


def get(path: str) -> int:
    n = 0
    with session.stream("GET", url + path) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(1 << 20):
            n += len(chunk)
    return n


get(paths[0])  # warm the connection
start = time.perf_counter()
with ThreadPoolExecutor(max_workers=workers) as pool:
    total = sum(pool.map(get, paths * rounds))
wall = time.perf_counter() - start
print(json.dumps({"bytes": total, "wall": wall, "requests": len(paths) * rounds}))
