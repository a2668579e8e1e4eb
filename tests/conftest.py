"""Shared test setup: the write guard, the real-kernel proxy plugin, and the ``machine``
fixture that runs one behaviour test against the simulated kernel and the real one."""

pytest_plugins = ["tests.guard", "tests.realkernel.plugin"]
