import os
import pathlib
import subprocess
import sys

from tests.fakesys import scenarios

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_committed_completions_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/gen-completions.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def complete(words, cword, env_root):
    env = dict(os.environ, COMP_WORDS=words, COMP_CWORD=str(cword), _HOSTDEV_COMPLETE="complete_bash",
               HOSTDEV_ROOT=env_root)
    out = subprocess.run([sys.executable, "-m", "hostdev"], env=env, capture_output=True, text=True).stdout
    return out.split()


def test_bash_completion_offers_commands_options_and_the_hosts_addresses(tmp_path):
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    assert "bind" in complete("hostdev b", 1, info.root)
    assert "--vendor" in complete("hostdev devices --v", 2, info.root)
    addresses = complete("hostdev bind 0000:65", 2, info.root)
    assert addresses == [info.t4]
    assert info.a10 in complete("hostdev devices show 0000:17", 3, info.root)
