"""Shared test setup: the write guard, the real-kernel proxy plugin, and the ``machine``
fixture that runs one behaviour test against the simulated kernel and the real one."""

import pytest

pytest_plugins = ["tests.guard", "tests.strict", "tests.realkernel.plugin", "tests.phases"]


def pytest_configure(config):
    # hypothesis caches under ./.hypothesis by default: the checkout, where the write guard
    # (rightly) refuses writes. Its home goes to a temporary directory instead, for every module
    # with property tests. (The guest runs without the plugin: nothing to set there.)
    if config.pluginmanager.has_plugin("hypothesispytest"):
        import tempfile

        from hypothesis.configuration import set_hypothesis_home_dir

        config._hostdev_hypothesis_home = tempfile.mkdtemp(prefix="hostdev-hypothesis-")
        set_hypothesis_home_dir(config._hostdev_hypothesis_home)


def pytest_unconfigure(config):
    # the session's own hypothesis home, gone with it (every session left one in /tmp before)
    home = getattr(config, "_hostdev_hypothesis_home", None)
    if home:
        import shutil

        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def sim_of(tmp_path, monkeypatch):
    """``sim_of(scenario)``: a scenario of tests/fakesys (default the Intel host) behind the CLI
    with the simulated kernel. The result's ``invoke(*argv)`` runs hostdev in-process on that host
    and returns (exit code, stdout, stderr); ``.kernel`` logs writes and commands; ``.host`` is the
    simulated Host. Several hosts may live side by side (each invoke uses its own)."""
    from typer.testing import CliRunner

    from hostdev.cli import context
    from hostdev.cli.app import app
    from hostdev.host import Host
    from tests.fakesys import scenarios
    from tests.fakesys.simkernel import SimKernel

    runner = CliRunner()

    def make(scenario: str = "intel_host_t4"):
        info = getattr(scenarios, scenario)(str(tmp_path / scenario / "root"))
        info.kernel = SimKernel(info.root)
        info.host = Host(info.root, kernel=info.kernel)

        def invoke(*args):
            monkeypatch.setattr(context, "host_factory", lambda root: info.host)
            result = runner.invoke(app, list(args))
            return result.exit_code, result.stdout, result.stderr

        info.invoke = invoke
        monkeypatch.setattr(context, "host_factory", lambda root: info.host)
        return info

    return make


@pytest.fixture
def sim(sim_of):
    """The Intel host scenario behind the CLI (see ``sim_of``)."""
    return sim_of()
