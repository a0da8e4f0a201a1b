"""What `status`, `versions` and `tree` show: read-only views of the lock, the cache and the Hub.

May import every stage before it (`core`, `project`, `hub`, `lock`, `cache`).
"""
