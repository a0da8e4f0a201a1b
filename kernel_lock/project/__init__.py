"""A project's own files: its `[tool.kernels]` table, editing it in place, and where its lock is.

May import `core`.
"""
