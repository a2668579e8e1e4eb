"""scripts/install.sh (run with stand-ins for apt-get, sudo and the interpreter, so nothing on
this machine is installed) and what `vm test` says when libvirt-python is missing: the command
that installs it where this hostdev runs."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hostdev import virt

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install.sh"


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def stubs(tmp_path):
    """A PATH with apt-get and sudo that log their arguments, and a PYTHON whose ``-m venv DIR``
    makes DIR/bin/{python,pip,hostdev} stand-ins (pip logs too)."""
    bin_dir = tmp_path / "stubs"
    bin_dir.mkdir()
    log = tmp_path / "log"
    _stub(bin_dir / "apt-get", f'echo "apt-get $*" >> {log}\n')
    _stub(bin_dir / "sudo", 'exec "$@"\n')
    _stub(bin_dir / "python3", f'''[ "$1 $2" = "-m venv" ] || exit 9
mkdir -p "$3/bin"
printf '#!/bin/bash\\necho "pip $*" >> {log}\\n' > "$3/bin/pip"
printf '#!/bin/bash\\necho "hostdev 0.0-test"\\n' > "$3/bin/hostdev"
printf '#!/bin/bash\\n' > "$3/bin/python"
chmod +x "$3/bin/pip" "$3/bin/hostdev" "$3/bin/python"
''')
    links = tmp_path / "links"
    links.mkdir()

    def run(*args, extras=None):
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOSTDEV_PREFIX": str(tmp_path / "venv"),
               "HOSTDEV_BIN_DIR": str(links), "PYTHON": str(bin_dir / "python3"), "HOME": str(tmp_path)}
        if extras is not None:
            env["HOSTDEV_EXTRAS"] = extras
        result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env)
        lines = log.read_text().splitlines() if log.exists() else []
        if log.exists():
            log.unlink()
        return result, lines

    run.links = links
    return run


def test_plain_install_has_no_libvirt(stubs):
    result, lines = stubs()
    assert result.returncode == 0, result.stderr
    [install] = [ln for ln in lines if ln.startswith("apt-get install")]
    assert install.split()[-3:] == ["python3", "python3-venv", "pci.ids"]
    assert "pip install -q --upgrade ." in lines
    assert os.readlink(stubs.links / "hostdev").endswith("/venv/bin/hostdev")
    assert result.stderr.strip() == "installed: hostdev 0.0-test"


@pytest.mark.parametrize("args, extras", [(["--vm"], None), ([], "vm")])
def test_vm_option_or_env_installs_the_extra_and_its_build_dependencies(stubs, args, extras):
    result, lines = stubs(*args, extras=extras)
    assert result.returncode == 0, result.stderr
    [install] = [ln for ln in lines if ln.startswith("apt-get install")]
    assert install.split()[-7:] == ["python3", "python3-venv", "pci.ids", "libvirt-dev", "pkg-config", "gcc",
                                    "python3-dev"]
    assert "pip install -q --upgrade .[vm]" in lines
    assert result.stderr.strip() == "installed: hostdev 0.0-test with the vm extra"


@pytest.mark.parametrize("args, extras, text", [
    (["--libvirt"], None, "install.sh: unknown option --libvirt (use --vm, or --help)"),
    ([], "kvm", "install.sh: HOSTDEV_EXTRAS=kvm is not known (use vm, or leave it unset)"),
])
def test_unknown_options_install_nothing(stubs, args, extras, text):
    result, lines = stubs(*args, extras=extras)
    assert result.returncode == 2 and result.stderr.strip() == text
    assert lines == []


def test_missing_libvirt_in_a_venv_names_install_sh_and_the_venvs_pip():
    err = virt.missing_libvirt_error("/opt/hostdev", "/usr", writable=False)
    assert err.exit_code == 4
    assert err.message == "libvirt-python is not installed in hostdev's virtual environment /opt/hostdev"
    assert err.fix.startswith("sudo ./scripts/install.sh --vm in hostdev's source tree")
    assert err.fix.endswith("sudo /opt/hostdev/bin/pip install 'libvirt-python>=7.0'")
    assert "python3-libvirt" not in str(err)     # the venv cannot see the system's package


def test_missing_libvirt_outside_a_venv_names_the_distribution_package():
    err = virt.missing_libvirt_error("/usr", "/usr", writable=True)
    assert err.message == "libvirt-python is not installed"
    assert err.fix.startswith("apt install python3-libvirt ")


def test_vm_test_without_libvirt_python_says_the_command(sim, monkeypatch):
    monkeypatch.setitem(sys.modules, "libvirt", None)      # import libvirt → ImportError
    monkeypatch.setattr(sys, "prefix", "/opt/hostdev")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    code, _, err = sim.invoke("bind", "0000:65:00.0")
    assert code == 0, err
    code, out, err = sim.invoke("vm", "test", "0000:65:00.0", "-c", "test:///default")
    assert code == 4 and out == ""
    assert err.startswith("hostdev: error: libvirt-python is not installed in hostdev's virtual environment "
                          "/opt/hostdev (")
    assert "./scripts/install.sh --vm" in err and len(err.splitlines()) == 1
