"""Locking: resolve requirements to commits, hash every variant, check digests and signatures, write the lock.

May import `core`, `project` and `hub`.
"""
