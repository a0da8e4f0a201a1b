"""Shared pytest setup: the local Hub fixtures come from kernel_lock.testing."""

pytest_plugins = ["kernel_lock.testing.pytest_plugin"]
