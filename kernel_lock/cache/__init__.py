"""The synced kernels in the Hugging Face cache: fetch and verify them, prune what no lock uses.

May import `core`, `project`, `hub` and `lock` (a sync locks first when the lock is out of date).
"""
