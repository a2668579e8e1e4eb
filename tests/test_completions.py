"""Shell completion answered by hostdev/cli/complete.py (the real shells drive it in
tests/test_completion_shells.py), the generated index and scripts, and `hostdev --help` built
without importing the command modules."""

import io
import os
import pathlib
import subprocess
import sys

import pytest

from hostdev.cli import complete
from tests.fakesys import scenarios

ROOT = pathlib.Path(__file__).resolve().parent.parent
BREAKS = "\"'><=;|&(:"  # bash's default COMP_WORDBREAKS


def test_committed_completions_and_index_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/gen-completions.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    base = tmp_path_factory.mktemp("hosts")
    return {"intel": scenarios.intel_host_t4(str(base / "intel")), "amd": scenarios.amd_host(str(base / "amd"))}


def tab(shell, line, root=None, **env):
    """hostdev's answer to a TAB at the end of ``line`` (bash: the line as COMP_LINE; zsh and fish:
    its words), as the list of lines it prints."""
    env = dict(env, HOSTDEV_ROOT=root or "/nonexistent")
    if shell == "bash":
        env.update(COMP_LINE=line, COMP_POINT=str(len(line)), COMP_WORDBREAKS=BREAKS)
        argv = []
    else:
        argv = line.split(" ")[1:]
    out = io.StringIO()
    assert complete.answer(f"complete_{shell}", argv, env, out) == 0
    return out.getvalue().splitlines()


def test_bash_gets_the_address_after_the_colon_already_typed(hosts):
    intel = hosts["intel"].root
    # bash replaces only what follows the last ":" of the word: the rest of the address
    assert tab("bash", "hostdev bind 0000:65", intel) == ["plain", "65:00.0"]
    assert tab("bash", "hostdev bind 0000:65:", intel) == ["plain", "00.0"]
    listed = tab("bash", "hostdev bind 0000:", intel)
    assert listed[0] == "plain" and "65:00.0" in listed and "17:00.1" in listed
    assert not [v for v in listed[1:] if v.startswith("0000")]
    # without the domain, as the CLI accepts it (65:00.0 means 0000:65:00.0)
    assert tab("bash", "hostdev bind 65:", intel) == ["plain", "00.0"]


def test_zsh_and_fish_get_whole_addresses(hosts):
    intel = hosts["intel"].root
    assert tab("zsh", "hostdev bind 0000:65", intel) == ["plain", "0000\\:65\\:00.0"]
    assert tab("fish", "hostdev bind 0000:65", intel) == ["plain", "0000:65:00.0"]
    assert tab("fish", "hostdev devices show 65", intel) == ["plain", "65:00.0"]


def test_root_given_on_the_line_wins_over_hostdev_root(hosts):
    intel, amd = hosts["intel"].root, hosts["amd"].root
    # 0000:64:02.0 is the T4's root port on the Intel host; the AMD host has no bus 64
    assert tab("fish", "hostdev bind 0000:64", amd) == ["plain"]
    assert tab("fish", f"hostdev --root {intel} bind 0000:64", amd) == ["plain", "0000:64:02.0"]
    assert tab("fish", f"hostdev --root={intel} bind 0000:64", amd) == ["plain", "0000:64:02.0"]
    assert tab("bash", f"hostdev --root {intel} bind 0000:64", amd) == ["plain", "64:02.0"]


def test_parent_offers_the_mdev_parents_only(hosts):
    amd = hosts["amd"]
    # the AMD host has ten functions; only the T4 running vGPU is on the mdev bus
    assert tab("fish", "hostdev mdev create --parent ", amd.root) == ["plain", amd.t4 + "\tmdev parent"]
    assert tab("fish", "hostdev mdev types ", amd.root) == ["plain", amd.t4 + "\tmdev parent"]
    assert tab("fish", "hostdev mdev create --parent ", hosts["intel"].root) == ["plain"]


def test_mdev_remove_and_vm_test_complete_the_mdev_uuids(hosts):
    amd = hosts["amd"]
    uuid = amd.mdevs["existing"]
    assert tab("fish", "hostdev mdev remove ", amd.root) == ["plain", f"{uuid}\tnvidia-222 on {amd.t4}"]
    assert tab("bash", "hostdev mdev remove ", amd.root) == ["plain", uuid]
    assert tab("bash", "hostdev vm test --mdev ", amd.root) == ["plain", uuid]


def test_type_offers_the_types_of_the_parent_given(hosts):
    amd = hosts["amd"]
    line = f"hostdev mdev create --parent {amd.t4} --type "
    assert [v.split("\t")[0] for v in tab("fish", line, amd.root)[1:]] == sorted(amd.extra["types"])


def test_sriov_offers_physical_functions_only(hosts):
    intel = hosts["intel"]
    # the E810 (2 VFs enabled) and the QAT are the Intel host's PFs; the VFs and the rest are not
    values = [v.split("\t")[0] for v in tab("fish", "hostdev sriov enable ", intel.root)[1:]]
    assert values == [intel.nic_pf, intel.qat]


def test_class_and_output_offer_their_values_not_files(hosts):
    assert [v.split("\t")[0] for v in tab("fish", "hostdev devices --class ")[1:]] == [
        "gpu", "net", "storage", "accel", "usb"]
    assert tab("bash", "hostdev devices --class g") == ["plain", "gpu"]
    assert tab("bash", "hostdev devices -o ") == ["plain", "table", "json", "yaml"]
    assert tab("bash", "hostdev devices --output=y") == ["plain", "yaml"]
    assert tab("bash", "hostdev check --stack l") == ["plain", "libvirt"]


def test_commands_and_options(hosts):
    assert tab("bash", "hostdev b") == ["plain", "bind", "bindings"]
    assert tab("bash", "hostdev mdev r") == ["plain", "remove"]
    assert tab("bash", "hostdev devices --v") == ["plain", "--vendor"]
    assert tab("bash", "hostdev devices s") == ["plain", "show"]
    assert tab("bash", "hostdev --r") == ["plain", "--root"]
    top = tab("fish", "hostdev ")
    assert "bind\tBind devices to vfio-pci (driver_override, unbind, probe, verify), whole IOMMU groups" in top
    assert not [v for v in top[1:] if v.startswith("-")]  # options only once a "-" is typed


def test_files_and_directories_are_left_to_the_shell(hosts):
    assert tab("bash", "hostdev apply ") == ["file"]
    assert tab("bash", "hostdev devices --pci-ids ") == ["file"]
    assert tab("zsh", "hostdev --root ") == ["dir"]
    # free text: nothing offered, not even file names
    assert tab("bash", "hostdev sriov enable 0000:31:00.0 --vfs ") == ["plain"]


def test_every_value_of_the_cli_has_a_completion_decided():
    """A new option's metavar must be given a kind (complete.KINDS) or be declared free text."""
    from hostdev.cli.index import TREE

    undecided = []

    def walk(node, path):
        params = [p for p in node["options"] if p["value"]] + node["args"]
        for param in params:
            bare = complete._bare(param.get("metavar"))
            if not param.get("choices") and bare not in complete.KINDS and bare not in complete.FREE_TEXT:
                undecided.append(f"{path} {param.get('names', ['<arg>'])[0]} {param.get('metavar')}")
        for name, sub in node["commands"].items():
            walk(sub, f"{path} {name}")

    walk(TREE, "hostdev")
    assert undecided == []


def test_a_tab_imports_neither_typer_click_rich_nor_a_command_module(hosts):
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: sys.stderr.write('LOADED ' + ' '.join(sorted(m for m in sys.modules\n"
             "    if m.split('.')[0] in ('typer', 'click', 'rich') or m.startswith('hostdev.cli.')))))\n"
             "sys.argv[0] = 'hostdev'\n"
             "from hostdev.cli.main import main\n"
             "main()\n")
    line = "hostdev bind 0000:65"
    env = dict(os.environ, _HOSTDEV_COMPLETE="complete_bash", COMP_LINE=line, COMP_POINT=str(len(line)),
               HOSTDEV_ROOT=hosts["intel"].root)
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "plain\n65:00.0\n"
    loaded = result.stderr.rsplit("LOADED", 1)[1].split()
    assert loaded == ["hostdev.cli.complete", "hostdev.cli.index", "hostdev.cli.main"]


def test_the_zsh_script_starts_with_compdef():
    # compinit reads the tag on the first line only: a blank line before it makes zsh ignore the file
    assert (ROOT / "completions" / "_hostdev").read_text().splitlines()[0] == "#compdef hostdev"


def test_show_completion_gives_the_committed_scripts():
    for shell, name in (("bash", "hostdev.bash"), ("zsh", "_hostdev"), ("fish", "hostdev.fish")):
        env = dict(os.environ, _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
        result = subprocess.run([sys.executable, "-m", "hostdev", "--show-completion", shell], env=env,
                                capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == (ROOT / "completions" / name).read_text().strip()
        env = dict(os.environ, _HOSTDEV_COMPLETE=f"source_{shell}")
        result = subprocess.run([sys.executable, "-m", "hostdev"], env=env, capture_output=True, text=True, cwd=ROOT)
        assert result.stdout == (ROOT / "completions" / name).read_text()


def test_help_lists_the_commands_without_loading_them_and_as_loaded_ones_would(monkeypatch):
    """`hostdev --help` draws the command list from the index; loading every command first
    (what the app did before) draws the very same screen."""
    from typer.testing import CliRunner

    from hostdev.cli import app as app_module

    runner = CliRunner()
    lazy = runner.invoke(app_module.app, ["--help"], terminal_width=100)
    original = app_module.LazyGroup.format_help
    loaded = []

    def eager(self, ctx, formatter):
        for name in list(self.commands):
            loaded.append(self.get_command(ctx, name))
        return original(self, ctx, formatter)

    monkeypatch.setattr(app_module.LazyGroup, "format_help", eager)
    full = runner.invoke(app_module.app, ["--help"], terminal_width=100)
    assert lazy.exit_code == full.exit_code == 0
    assert not [c for c in loaded if getattr(c, "lazy", False)]  # really the commands themselves
    assert lazy.stdout == full.stdout
    assert "devices" in lazy.stdout and "List PCI functions" in lazy.stdout


def test_help_of_a_command_loads_only_that_command():
    probe = ("import sys\n"
             "sys.argv = ['hostdev', 'mdev', '--help']\n"
             "from hostdev.cli.main import main\n"
             "try:\n    main()\n"
             "except SystemExit:\n    pass\n"
             "print('LOADED', sorted(m for m in sys.modules if m.startswith('hostdev.cli.')))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    loaded = result.stdout.rsplit("LOADED", 1)[1]
    assert "hostdev.cli.mdev" in loaded and "Mediated devices (vGPUs)" in result.stdout
    assert not [m for m in ("binding", "devices", "kubevirt", "vm", "sriov") if f"hostdev.cli.{m}'" in loaded]
