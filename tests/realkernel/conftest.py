"""Guard: a realkernel test body must never run on the host itself.

With tests.realkernel.plugin loaded, realkernel items on the host are proxies that never run
fixtures, so this guard only fires when the plugin is missing (e.g. pytest started with
``-p no:...`` or before tests/conftest.py registers it).
"""

import pytest

from .guest import in_test_guest


@pytest.fixture(autouse=True)
def _realkernel_only_in_guest(request):
    if request.node.get_closest_marker("realkernel") is not None and not in_test_guest():
        pytest.fail("realkernel test reached the host: load the proxy plugin (pytest_plugins = "
                    "['tests.realkernel.plugin'] in tests/conftest.py, or -p tests.realkernel.plugin)",
                    pytrace=False)
