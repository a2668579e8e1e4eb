"""completions/ in the real shells: bash (with bash-completion), zsh (compinit, the script found
on $fpath by its #compdef line) and fish, each started on a pseudo-terminal, a line typed with a
TAB in it, then Enter. On $PATH, ``hostdev`` is a stand-in that answers a TAB with this checkout's
hostdev and otherwise prints the words it was run with: the completed line is what it prints.

Nothing waits a fixed time: every step waits for its marker (the prompt, the printed words) with a
generous deadline, so a loaded machine is slower, not flaky.
"""

import os
import pathlib
import pty
import re
import select
import shutil
import subprocess
import sys
import time

import pytest

from tests.fakesys import scenarios

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
DEADLINE = 90.0  # seconds for one step; a step takes well under a second on an idle machine
PROMPT = "READY>"
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>]")


class Shell:
    """One interactive shell on a pseudo-terminal (200×50, so that no list is paged)."""

    def __init__(self, argv, env, cwd) -> None:
        import fcntl
        import struct
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        def controlling_terminal():  # job control (fish insists) needs the pty as the session's terminal
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     preexec_fn=controlling_terminal)
        os.close(slave)
        self.seen = ""

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: str) -> re.Match:
        """Read until ``pattern`` (a regex) matches the output so far, escapes removed; the match
        and everything before it are consumed."""
        regex = re.compile(pattern)
        end = time.monotonic() + DEADLINE
        while True:
            found = regex.search(self.seen)
            if found:
                self.seen = self.seen[found.end():]
                return found
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"no {pattern!r} from {self.proc.args[0]} within {DEADLINE} s; "
                                     f"output so far: {self.seen[-2000:]!r}")
            ready, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if ready:
                try:
                    chunk = os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:  # EIO: the shell has gone
                    continue
                self.seen += ESCAPES.sub("", chunk).replace("\r", "")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.master)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    base = tmp_path_factory.mktemp("hosts")
    return {"intel": scenarios.intel_host_t4(str(base / "intel")), "amd": scenarios.amd_host(str(base / "amd"))}


@pytest.fixture
def shell(tmp_path, hosts):
    """``shell(name, root=host)``: a started shell with completions/ loaded, HOSTDEV_ROOT=root,
    its working directory holding a file ``gfile`` and ``profile.yaml`` (files that must not be
    offered where a value is asked for)."""
    started = []
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "hostdev"
    stand_in.write_text("#!/bin/sh\n"
                        'if [ -n "$_HOSTDEV_COMPLETE" ]; then exec "$HOSTDEV_PYTHON" -m hostdev "$@"; fi\n'
                        "printf 'ARGV[%s]\\n' \"$*\"\n")
    stand_in.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "gfile").write_text("")
    (work / "profile.yaml").write_text("")
    home = tmp_path / "home"
    home.mkdir()

    def start(name: str, root: str) -> Shell:
        exe = shutil.which(name)
        assert exe, f"{name} is not installed (scripts/apt-test-packages.txt lists it)"
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "TERM": "xterm", "LANG": "C.UTF-8",
               "HOSTDEV_PYTHON": sys.executable, "PYTHONPATH": str(ROOT), "HOSTDEV_ROOT": root,
               "ZDOTDIR": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
               "XDG_DATA_HOME": str(home / ".local/share")}
        if name == "bash":
            assert os.path.exists(BASH_COMPLETION), "bash-completion is not installed (scripts/apt-test-packages.txt)"
            argv = [exe, "--norc", "--noprofile", "-i"]
            setup = (f"PS1='{PROMPT} '; source {BASH_COMPLETION}; source {ROOT}/completions/hostdev.bash; "
                     "bind 'set bell-style none'")
        elif name == "zsh":
            argv = [exe, "-f", "-i"]
            # the script is found on $fpath by its first line, as an installed _hostdev is
            setup = (f"PS1='{PROMPT} '; unsetopt beep; fpath=({ROOT}/completions $fpath); "
                     "autoload -Uz compinit; compinit -u -D")
        else:
            argv = [exe, "--no-config", "-i"]
            setup = (f"function fish_prompt; echo -n '{PROMPT} '; end; set -g fish_greeting; "
                     f"source {ROOT}/completions/hostdev.fish")
        sh = Shell(argv, env, str(work))
        started.append(sh)
        sh.send(setup + "; echo SET''UP-DONE\n")
        sh.expect(r"SETUP-DONE\n")
        return sh

    yield start
    for sh in started:
        sh.close()


def completed(sh: Shell, typed: str) -> str:
    """Type ``typed`` (TABs included) and Enter; the words hostdev was then run with."""
    sh.expect(re.escape(PROMPT))
    sh.send(typed + "\r")
    return sh.expect(r"ARGV\[(.*)\]\n").group(1)


SHELLS = ["bash", "zsh", "fish"]


@pytest.mark.parametrize("name", SHELLS)
def test_tab_completes_an_address_after_the_colon(shell, hosts, name):
    sh = shell(name, hosts["intel"].root)
    # the T4 is the only function on bus 65 (the old bash script made this 0000:0000:65:00.0)
    assert completed(sh, "hostdev bind 0000:65\t") == "bind 0000:65:00.0"


@pytest.mark.parametrize("name", SHELLS)
def test_tab_honours_root_on_the_line(shell, hosts, name):
    sh = shell(name, hosts["amd"].root)
    # bus 64 exists on the Intel host only (the T4's root port), HOSTDEV_ROOT is the AMD host
    assert completed(sh, f"hostdev --root {hosts['intel'].root} bind 0000:64\t") == (
        f"--root {hosts['intel'].root} bind 0000:64:02.0")


@pytest.mark.parametrize("name", SHELLS)
def test_tab_completes_commands_options_and_mdev_values(shell, hosts, name):
    amd = hosts["amd"]
    sh = shell(name, amd.root)
    assert completed(sh, "hostdev mdev rem\t\t") == f"mdev remove {amd.mdevs['existing']}"
    assert completed(sh, "hostdev mdev create --par\t\t") == f"mdev create --parent {amd.t4}"
    assert completed(sh, "hostdev devi\t--ven\t") == "devices --vendor"


@pytest.mark.parametrize("name", SHELLS)
def test_class_offers_values_and_apply_offers_files(shell, hosts, name):
    sh = shell(name, hosts["intel"].root)
    # "gfile" is in the working directory: a value, not a file name, completes
    assert completed(sh, "hostdev devices --class g\t") == "devices --class gpu"
    assert completed(sh, "hostdev apply pro\t") == "apply profile.yaml"


def test_bash_tab_tab_lists_addresses_and_leaves_the_line_alone(shell, hosts):
    sh = shell("bash", hosts["intel"].root)
    # the first TAB adds 0000:, common to every address; the second has nothing to add (the old
    # script turned the line into "hostdev bind 0000:00:0000:00:0" here)
    assert completed(sh, "hostdev bind \t\t") == "bind 0000:"
    sh.expect(re.escape(PROMPT))
    # TAB TAB after the colon lists what may follow it, and the line stays as typed
    sh.send("hostdev bind 0000:\t\t")
    listing = sh.expect(r"(?s)0000:\n(.*?65:00\.0.*?)\n.*hostdev bind 0000:").group(1)
    assert "17:00.1" in listing and "/" not in listing  # the A10's audio function; no file names
    sh.send("\r")
    assert sh.expect(r"ARGV\[(.*)\]\n").group(1) == "bind 0000:"
