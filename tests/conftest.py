"""Shared test setup: the write guard, the real-kernel proxy plugin, and the ``machine``
fixture that runs one behaviour test against the simulated kernel and the real one."""

import pytest

pytest_plugins = ["tests.guard", "tests.realkernel.plugin"]


@pytest.fixture
def sim(tmp_path, monkeypatch):
    """The Intel host scenario behind the CLI, with the simulated kernel: ``sim.invoke(*argv)``
    runs hostdev in-process and returns (exit code, stdout, stderr); ``sim.kernel`` logs writes;
    ``sim.host`` is the simulated Host the CLI uses."""
    from typer.testing import CliRunner

    from hostdev.cli import context
    from hostdev.cli.app import app
    from hostdev.host import Host
    from tests.fakesys import scenarios
    from tests.fakesys.simkernel import SimKernel

    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    kernel = SimKernel(info.root)
    info.host = Host(info.root, kernel=kernel)
    monkeypatch.setattr(context, "host_factory", lambda root: info.host)
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    info.invoke = invoke
    info.kernel = kernel
    return info
