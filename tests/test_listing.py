"""The listing's fast path (cli/listing.py, tried by cli/main.py before typer) against the ordinary
typer path: the same stdout, stderr and exit code, byte for byte, on a recorded tree and on the
fake Intel host; the lines it must leave to typer; and its options against the command index."""

import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostdev.cli import listing
from hostdev.cli.index import TREE
from tests.fakesys import scenarios

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "data" / "dev-vm-firecracker"  # the dev VM (tests/data/README.md)
SNAPSHOT = ROOT / "tests" / "data" / "pci.ids-2023.04.10.xz"

# cli/main.py's entry point, telling (in PROBE_OUT) whether typer was imported: the fast path never does
# (it leaves by os._exit, without atexit handlers: the probe is written there too)
FAST = ("import atexit, os, sys\n"
        "probe = lambda: open(os.environ['PROBE_OUT'], 'w').write(str('typer' in sys.modules))\n"
        "atexit.register(probe)\n"
        "leave = os._exit\n"
        "os._exit = lambda code: (probe(), leave(code))\n"
        "sys.argv[0] = 'hostdev'\n"
        "from hostdev.cli.main import main\n"
        "main()\n")
# the typer app alone, as before the fast path existed
ORDINARY = "import sys\nsys.argv[0] = 'hostdev'\nfrom hostdev.cli.app import main\nmain()\n"


@pytest.fixture(scope="module")
def pci_ids(tmp_path_factory):
    path = tmp_path_factory.mktemp("ids") / "pci.ids"
    path.write_bytes(lzma.decompress(SNAPSHOT.read_bytes()))
    return str(path)


@pytest.fixture(scope="module")
def intel(tmp_path_factory):
    return scenarios.intel_host_t4(str(tmp_path_factory.mktemp("intel") / "root"))


def both(args, tmp_path, env=None):
    """(fast path's (rc, stdout, stderr), whether it imported typer, the typer path's (rc, stdout, stderr))."""
    env = dict(os.environ, **(env or {}), PROBE_OUT=str(tmp_path / "probe"))
    fast = subprocess.run([sys.executable, "-c", FAST, *args], capture_output=True, cwd=ROOT, env=env)
    typer_loaded = (tmp_path / "probe").read_text() == "True"
    ordinary = subprocess.run([sys.executable, "-c", ORDINARY, *args], capture_output=True, cwd=ROOT, env=env)
    return ((fast.returncode, fast.stdout, fast.stderr), typer_loaded,
            (ordinary.returncode, ordinary.stdout, ordinary.stderr))


@pytest.mark.parametrize("args", [
    ["devices", "-o", "json"],
    ["devices"],                                   # the table, plain when piped
    ["devices", "--output=yaml"],
    ["-o", "json", "devices"],                     # -o before the command
    ["-o", "yaml", "devices", "-o", "json"],       # the command's own -o wins
    ["devices", "--class", "net", "-o", "json"],
    ["devices", "--vendor", "1af4", "--driver", "virtio-pci"],
    ["devices", "--device", "8086:0d57", "-o", "yaml"],
    ["devices", "--driver", "none"],
])
def test_the_fast_path_writes_what_typer_writes_on_a_recorded_tree(args, pci_ids, tmp_path):
    fast, typer_loaded, ordinary = both(["--root", str(RECORDED), *args, "--pci-ids", pci_ids], tmp_path)
    assert fast == ordinary and not typer_loaded
    assert fast[0] == 0 and fast[1]


@pytest.mark.parametrize("args", [
    ["devices", "-o", "json"],
    ["devices"],
    ["devices", "--iommu-group", "3", "-o", "json"],
    ["devices", "--class", "gpu"],
    ["devices", "--vendor", "nvidia", "-o", "json"],   # a vendor by its name in pci.ids
    ["devices", "--vendor", "nvidiax", "-o", "json"],  # no such vendor: the error object and exit 2
    ["devices", "--device", "10de", "-o", "json"],      # a bad ID: the same
])
def test_the_fast_path_writes_what_typer_writes_on_the_fake_intel_host(args, intel, pci_ids, tmp_path):
    fast, typer_loaded, ordinary = both([f"--root={intel.root}", *args, "--pci-ids", pci_ids], tmp_path)
    assert fast == ordinary and not typer_loaded
    if "nvidiax" in args or "10de" in args:
        assert fast[0] == 2 and b'"error": "UsageError"' in fast[1] and fast[2].startswith(b"hostdev: error: ")
    else:
        assert fast[0] == 0 and fast[1]


def test_the_root_from_the_environment_and_an_unreadable_pci_ids(intel, tmp_path):
    fast, typer_loaded, ordinary = both(["devices", "-o", "json", "--pci-ids", str(tmp_path / "none")], tmp_path,
                                        {"HOSTDEV_ROOT": intel.root})
    assert fast == ordinary and not typer_loaded
    assert fast[0] == 2 and b"cannot read --pci-ids" in fast[2]


@pytest.mark.parametrize("args", [
    ["devices", "--help"],
    ["devices", "-ojson"],                 # click's attached short value: typer's to parse
    ["devices", "-o", "JSON"],             # case-insensitive choice: typer's
    ["devices", "--colour"],               # unknown option: typer's usage error
    ["devices", "--iommu-group", "x"],     # not an integer: typer's usage error
    ["devices", "--vendor"],               # no value
    ["devices", "show", "0000:00:00.0"],
    ["devices", "--", "x"],
])
def test_other_lines_go_to_typer(args, pci_ids, tmp_path):
    fast, typer_loaded, ordinary = both(["--root", str(RECORDED), *args], tmp_path)
    assert fast == ordinary and typer_loaded


def test_a_root_without_pci_ids_goes_to_typer_for_its_note(tmp_path):
    fast, typer_loaded, ordinary = both(["--root", str(RECORDED), "devices", "-o", "json"], tmp_path)
    assert fast == ordinary and typer_loaded
    assert fast[2].startswith(b"note: no pci.ids under --root")


def test_parse_reads_only_the_plain_forms():
    assert listing.parse(["devices"]) == {"output": "table"}
    assert listing.parse(["--root", "/r", "-o", "yaml", "devices", "--iommu-group=12", "--vendor", "10de"]) == {
        "root": "/r", "output": "yaml", "iommu_group": 12, "vendor": "10de"}
    assert listing.parse(["-o", "yaml", "devices", "--output", "json"])["output"] == "json"
    for line in (["iommu"], ["devices", "-o=json"], ["devices", "--root", "/r"], ["--vendor", "x", "devices"],
                 ["devices", "--iommu-group", "-1"], ["devices", "--iommu-group", "²"], ["--root", "devices"],
                 ["devices", "devices"], ["--version", "devices"]):
        assert listing.parse(line) is None, line


def test_the_fast_path_knows_every_option_that_takes_a_value():
    """A new option of ``devices`` (or of the app) must be taught to the fast path, or the fast path
    would hand such lines to typer without anyone noticing: compare with the command index."""
    def valued(node):
        return {name for option in node["options"] if option["value"] for name in option["names"]}

    assert valued(TREE) == set(listing.GLOBAL_OPTIONS)
    assert valued(TREE["commands"]["devices"]) == set(listing.DEVICES_OPTIONS)


@pytest.mark.parametrize("collecting", [True, False])
def test_the_fast_path_leaves_the_garbage_collector_as_it_found_it(collecting, pci_ids, capsys):
    """The listing pauses the cyclic collector (a speed measure, docs/benchmarks.md); a caller in
    the same process (a test, an embedding) gets it back as it was, after a success or an error."""
    import gc

    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        assert listing.fast_main(["--root", str(RECORDED), "devices", "-o", "json", "--pci-ids", pci_ids]) == 0
        assert gc.isenabled() is collecting
        assert listing.fast_main(["--root", str(RECORDED), "devices", "--vendor", "nvidiax", "--pci-ids",
                                  pci_ids]) == 2
        assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()
    assert '{"devices":[{"address":"0000:00:00.0",' in capsys.readouterr().out
