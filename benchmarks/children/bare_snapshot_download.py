"""Bare huggingface_hub download of exactly the selected variants, one after another or all at once.

python bare_snapshot_download.py sequential|concurrent REPO:COMMIT:VARIANT ...
"""

import sys
from concurrent.futures import ThreadPoolExecutor

from huggingface_hub import snapshot_download
from huggingface_hub.utils import disable_progress_bars

disable_progress_bars()
mode, jobs = sys.argv[1], [arg.split(":") for arg in sys.argv[2:]]


def one(job: list[str]) -> str:
    repo, commit, variant = job
    return snapshot_download(repo, repo_type="kernel", revision=commit, allow_patterns=[f"build/{variant}/*"])


if mode == "sequential":
    for job in jobs:
        one(job)
else:
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        list(pool.map(one, jobs))
