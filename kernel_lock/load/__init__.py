"""Verified loading: the locked `get_kernel` and `LockedLayerRepository`, and importing from checked bytes.

May import `core`, `project` and `cache` (a load may sync a variant locked but missing).
"""
