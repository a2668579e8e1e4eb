"""Usage errors and global options as users meet them (hostdev in a child process): one line,
exit 2, the JSON error object with -o json (docs/exit-codes.md); -o before the command."""
import json
import os
import subprocess
import sys

import pytest

from tests.fakesys import scenarios


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hostdev", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def intel(tmp_path_factory):
    return scenarios.intel_host_t4(str(tmp_path_factory.mktemp("intel") / "root"))


@pytest.mark.parametrize("args, text, where", [
    (["devicse"], "No such command 'devicse'. Did you mean 'devices'?", "hostdev"),
    (["devices", "--vendr", "10de"], "No such option '--vendr'. Did you mean '--vendor'?", "hostdev devices"),
    (["iommu", "groups", "-o", "xml"], "'xml' is not one of 'table', 'json', 'yaml'", "hostdev iommu groups"),
    (["check", "--per-vm", "x"], "'x' is not a valid integer", "hostdev check"),
    (["devices", "show"], "Missing argument 'ADDR'", "hostdev devices show"),
])
def test_a_usage_error_is_one_line_and_exit_2(intel, args, text, where):
    result = run("--root", intel.root, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hostdev: error: ") and text in lines[0]
    assert lines[0].endswith(f"(see '{where} -h')")
    assert lines[0].count("Did you mean") <= 1
    assert "╭" not in result.stderr and "Usage:" not in result.stderr


@pytest.mark.parametrize("args", [
    ["-o", "json", "devices", "--vendr", "10de"],
    ["devices", "--vendr", "10de", "-o", "json"],     # -o after the bad option: click never parsed it
    ["devices", "--output=json", "--vendr", "10de"],
    ["devices", "-ojson", "--vendr", "10de"],
])
def test_a_usage_error_with_o_json_is_the_error_object_too(intel, args):
    result = run("--root", intel.root, *args)
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "error": "UsageError", "message": "No such option '--vendr'. Did you mean '--vendor'?",
        "fix": "see 'hostdev devices -h'", "exit_code": 2}
    assert len(result.stderr.splitlines()) == 1


def test_bare_hostdev_still_prints_the_help(intel):
    result = run()
    assert result.returncode == 2
    assert "Commands" in result.stdout + result.stderr and "devices" in result.stdout + result.stderr


@pytest.mark.parametrize("before, after", [
    (["-o", "json"], []),
    (["--output", "json"], []),
    (["--output=json"], []),
    ([], ["-o", "json"]),
    (["-o", "yaml"], ["-o", "json"]),     # the command's own -o wins
])
def test_o_before_the_command_works_as_after_it(intel, before, after):
    result = run("--root", intel.root, *before, "devices", "--class", "gpu", *after)
    assert result.returncode == 0, result.stderr
    addresses = [d["address"] for d in json.loads(result.stdout)["devices"]]
    assert addresses == [intel.boot_vga, intel.a10, intel.t4]


def test_o_before_a_subgroup_command_and_for_commands_with_another_default(intel):
    groups = run("--root", intel.root, "-o", "json", "iommu", "groups")
    assert groups.returncode == 0, groups.stderr
    assert {"id": intel.groups["t4"], "devices": [intel.t4]} in json.loads(groups.stdout)["groups"]
    # inventory's own default is json: -o yaml before it gives YAML
    inventory = run("--root", intel.root, "-o", "yaml", "inventory", "--hostname", "node1")
    assert inventory.returncode == 0, inventory.stderr
    assert inventory.stdout.startswith("inventory_version: 1\nhostname: node1\n")
    # and an error of a command is JSON when -o json came before it
    bad = run("--root", intel.root, "-o", "json", "devices", "show", "0000:99:00.0")
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["error"] == "DeviceNotFoundError"


@pytest.fixture(scope="module")
def pci_ids(tmp_path_factory):
    from .test_pciids import VENDORS

    path = tmp_path_factory.mktemp("ids") / "pci.ids"
    path.write_bytes(VENDORS)
    return str(path)


def test_vendor_by_name_in_devices(intel, pci_ids):
    result = run("--root", intel.root, "devices", "-o", "json", "--pci-ids", pci_ids, "--vendor", "Nvidia")
    assert result.returncode == 0, result.stderr
    assert [d["address"] for d in json.loads(result.stdout)["devices"]] == [intel.a10, intel.a10_audio, intel.t4]
    amd = run("--root", intel.root, "devices", "--pci-ids", pci_ids, "--vendor", "amd")
    assert amd.returncode == 2 and amd.stdout == ""
    assert amd.stderr.startswith("hostdev: error: --vendor 'amd' names 3 vendors in ")
    assert "1002 Advanced Micro Devices, Inc. [AMD/ATI]; 1022 " in amd.stderr and len(amd.stderr.splitlines()) == 1


def test_vendor_by_name_in_bind_and_kubevirt_uses_the_host_pci_ids(tmp_path):
    host = scenarios.intel_host_t4(str(tmp_path / "root"))
    from .test_pciids import VENDORS

    ids = tmp_path / "root" / "usr" / "share" / "misc" / "pci.ids"
    ids.parent.mkdir(parents=True, exist_ok=True)
    ids.write_bytes(VENDORS)
    bind = run("--root", host.root, "bind", "--vendor", "nvidia", "--dry-run", "-o", "json")
    assert bind.returncode == 0, bind.stderr
    assert [d["address"] for d in json.loads(bind.stdout)["devices"]] == [host.a10, host.a10_audio, host.t4]
    permitted = run("--root", host.root, "kubevirt", "permitted", "--vendor", "NVIDIA", "-o", "json")
    assert permitted.returncode == 0, permitted.stderr
    selectors = [e["pciVendorSelector"] for e in
                 json.loads(permitted.stdout)["document"]["spec"]["configuration"]["permittedHostDevices"]
                 ["pciHostDevices"]]
    assert sorted(selectors) == ["10DE:1AEF", "10DE:1EB8", "10DE:2236"]


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", [
    ["devices", "-o", "json"],                   # no pci.ids in the tree: the typer path
    ["devices"],                                 # its plain table
    ["devices", "--pci-ids", "IDS", "-o", "json"],   # the listing's fast path
    ["devices", "--pci-ids", "IDS", "--vendor", "10de"],  # a small table: all of it still buffered
    ["devices", "show", "0000:65:00.0", "-o", "json"],   # a command of the typer app
    ["check"],
    ["check", "-o", "json"],                     # the JSON error object cannot go to stdout either
    ["--version"],
    ["--help"],                                  # click writes the help
])
def test_standard_output_on_a_full_disk_is_one_line_and_exit_5(intel, tmp_path, args, buffered):
    """``hostdev … > file`` on a full disk (/dev/full answers every write with ENOSPC): one line
    on stderr and exit 5 (docs/exit-codes.md), not a traceback, "internal error" or exit 120 —
    whether the write fails at once or only at the last flush (a short output, buffered)."""
    ids = tmp_path / "pci.ids"
    ids.write_text("10de  NVIDIA Corporation\n\t1eb8  TU104GL [Tesla T4]\nC 03  Display controller\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    args = [str(ids) if a == "IDS" else a for a in args]
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "hostdev", "--root", intel.root, *args], stdout=full,
                                stderr=subprocess.PIPE, text=True, env=env)
    # (the tree has no pci.ids: the listing's note comes first)
    assert [line for line in result.stderr.splitlines() if not line.startswith(("note: no pci.ids", "WARN "))
            and "ready" not in line] == [
        "hostdev: error: cannot write standard output: No space left on device (free space where the output "
        "goes, or send it elsewhere, and run it again)"], result.stderr
    assert result.returncode == 5


def test_a_reader_that_goes_away_is_no_error(intel):
    """``hostdev … | head -1``: what could not be written is dropped silently, with the command's
    own exit code (not 120 and a traceback from the interpreter's last flush)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    for args in (["devices"], ["check"], ["--version"]):
        read, write = os.pipe()
        os.close(read)  # nobody reads: every write gets EPIPE
        with os.fdopen(write, "w") as gone:
            result = subprocess.run([sys.executable, "-m", "hostdev", "--root", intel.root, *args], stdout=gone,
                                    stderr=subprocess.PIPE, text=True, env=env)
        assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, (args, result.stderr)
        read = subprocess.run([sys.executable, "-m", "hostdev", "--root", intel.root, *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        assert result.returncode == read.returncode, args  # the command's own verdict
