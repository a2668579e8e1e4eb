#!/usr/bin/env python3
"""Write docs/commands/*.md: one page per command, with hostdev's REAL output.

Each example runs the real CLI against a fake host of tests/fakesys (an Intel server with a
Tesla T4, an A10 and its audio function, an E810 NIC, NVMe disks, a QAT card; an AMD host with a
T4 running vGPU) and the simulated kernel, so the pages show exactly what hostdev prints. The
hand-written explanations are in docs/commands.md; `--check` exits 1 when a page is stale.

    .venv/bin/python scripts/gen-command-docs.py [--check]
"""
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "commands"
PCI_IDS = ROOT / "tests" / "golden" / "kubevirt" / "pci.ids"
UUID = "5e1f3a7c-2b4d-4c6e-8f90-123456789abc"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

# page → (title, scenario, [argv, ...]); argv run in order on ONE fake host per page
PAGES = {
    "devices": ("hostdev devices", "intel", [["devices"], ["devices", "--class", "gpu", "-o", "json"],
                                              ["devices", "show", "0000:17:00.0"]]),
    "iommu-groups": ("hostdev iommu groups", "intel", [["iommu", "groups", "-o", "yaml"]]),
    "check": ("hostdev check", "intel", [["check"], ["check", "-o", "json"], ["check", "0000:65:00.0"]]),
    "iommu-enable": ("hostdev iommu enable / disable", "intel", [
        ["iommu", "enable", "--passthrough", "--dry-run"], ["iommu", "enable", "--passthrough", "-o", "json"],
        ["iommu", "enable", "--passthrough"], ["check"], ["iommu", "disable"]]),
    "modules": ("hostdev modules status / load / unpersist", "intel", [
        ["modules", "status"], ["modules", "load", "--persist", "--early", "0000:65:00.0", "--dry-run"],
        ["modules", "load", "--persist", "-o", "json"], ["modules", "status"],
        ["modules", "unpersist", "--dry-run"], ["modules", "unpersist", "-o", "json"], ["modules", "unpersist"]]),
    "bind": ("hostdev bind / unbind / restore / bindings", "intel", [
        ["bind", "0000:17:00.0", "--dry-run"], ["bind", "0000:17:00.0"], ["bind", "0000:17:00.0", "-o", "json"],
        ["bind", "0000:01:00.0"], ["bindings"], ["restore", "--all"]]),
    "mdev": ("hostdev mdev types / list / create / remove", "amd", [
        ["mdev", "types"], ["mdev", "list"],
        ["mdev", "create", "--parent", "0000:41:00.0", "--name", "GRID T4-1B", "--uuid", UUID, "--persist"],
        ["mdev", "list", "-o", "json"], ["mdev", "remove", UUID]]),
    "sriov": ("hostdev sriov enable / disable", "intel", [
        ["sriov", "enable", "0000:31:00.0", "--vfs", "4", "--bind", "vfio-pci", "--dry-run"],
        ["sriov", "enable", "0000:31:00.0", "--vfs", "4"], ["sriov", "disable", "0000:31:00.0", "-o", "json"]]),
    "kubevirt-permitted": ("hostdev kubevirt permitted", "intel", [
        ["bind", "0000:65:00.0"], ["kubevirt", "permitted"],
        ["kubevirt", "permitted", "--format", "json-patch", "--merge-with", "@kv"],
        ["kubevirt", "permitted", "--format", "patch", "--merge-with", "@kv", "--external"],
        ["kubevirt", "permitted", "--format", "json-patch", "--merge-with", "@kv", "-o", "json"],
        ["kubevirt", "permitted", "--format", "patch"],
        ["kubevirt", "permitted", "--device", "10de:1eb8", "--naming", "nvidia-legacy", "--format", "snippet"]]),
    "kubevirt-vgpu": ("hostdev kubevirt permitted (vGPU, mdev configuration)", "amd", [
        ["kubevirt", "permitted", "--format", "snippet", "--mdev-config"]]),
    "kubevirt-vmi": ("hostdev kubevirt vmi", "intel", [
        ["kubevirt", "vmi", "--gpu", "nvidia.com/TU104GL_TESLA_T4"],
        ["kubevirt", "vmi", "--gpu", "nvidia.com/TU104GL_TESLA_T4:gpu1", "--format", "vm", "--vm-name", "t4-vm"]]),
    "inventory": ("hostdev inventory", "intel", [
        ["inventory", "--hostname", "gpu-node-1", "--label", "pool=t4", "-o", "table"]]),
    "apply": ("hostdev apply", "intel", [["apply", "@profile", "--dry-run"], ["apply", "@profile", "-o", "json"],
                                         ["apply", "@profile"]]),
    "vm-test": ("hostdev vm test", "intel", [["bind", "0000:65:00.0"], ["vm", "test", "0000:65:00.0", "--dry-run"]]),
}

HOSTS = {"intel": "an Intel server: T4 0000:65:00.0, A10 0000:17:00.0 + audio, E810 0000:31:00.0, "
                  "root NVMe 0000:01:00.0",
         "amd": "an AMD host: T4 0000:41:00.0 running NVIDIA vGPU"}

# the cluster's CR as `kubectl get kubevirt -n kubevirt kubevirt -o yaml` gives it (shortened)
KUBEVIRT_CR = """apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt, namespace: kubevirt}
spec:
  configuration:
    developerConfiguration: {featureGates: [HostDevices]}
    permittedHostDevices:
      pciHostDevices:
      - {pciVendorSelector: "15B3:101E", resourceName: nvidia.com/cx7_vf}
"""

PROFILE = """iommu:
  passthrough: true
modules:
  persist: true
devices:
  - address: "0000:65:00.0"
    persist: true
"""


def _host(kind: str, where: str):
    from hostdev.host import Host
    from tests.fakesys import scenarios
    from tests.fakesys.simkernel import SimKernel

    info = (scenarios.intel_host_t4 if kind == "intel" else scenarios.amd_host)(os.path.join(where, "root"))
    os.makedirs(os.path.join(info.root, "usr/share/misc"), exist_ok=True)
    shutil.copy(PCI_IDS, os.path.join(info.root, "usr/share/misc/pci.ids"))
    return Host(info.root, kernel=SimKernel(info.root))


def render(name: str) -> str:
    from typer.testing import CliRunner

    from hostdev.cli import context
    from hostdev.cli.app import app

    title, kind, runs = PAGES[name]
    machine = HOSTS[kind]
    out = [f"# {title}", "",
           f"Real output of this version of hostdev on a fake host of the test suite ({machine}), generated by",
           "scripts/gen-command-docs.py (times shown as 2026-01-01T00:00:00Z). What each field means:",
           "[../commands.md](../commands.md), [../json.md](../json.md).", ""]
    with tempfile.TemporaryDirectory() as where:
        host = _host(kind, where)
        profile = os.path.join(where, "profile.yaml")
        Path(profile).write_text(PROFILE)
        kv = os.path.join(where, "kv.yaml")
        Path(kv).write_text(KUBEVIRT_CR)
        context.host_factory = lambda root: host
        runner = CliRunner()
        for argv in runs:
            real = [{"@profile": profile, "@kv": kv}.get(a, a) for a in argv]
            result = runner.invoke(app, real, env={"COLUMNS": "120", "NO_COLOR": "1"})
            shown = " ".join(f'"{a}"' if " " in a else a for a in argv)
            shown = shown.replace("@profile", "profile.yaml").replace("@kv", "kv.yaml")
            text = result.stdout + (result.stderr or "")
            text = TIMESTAMP.sub("2026-01-01T00:00:00Z", text.replace(where, "/tmp"))  # stable pages
            out += ["```console", f"$ hostdev {shown}" + (f"      # exit {result.exit_code}" if result.exit_code
                                                           else ""), text.rstrip("\n"), "```", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> int:
    from generated import sync

    files = {OUT / f"{name}.md": render(name) for name in PAGES}
    files[OUT / "README.md"] = ("# Commands, one page each\n\nReal output, generated by "
                                "scripts/gen-command-docs.py:\n\n"
                                + "".join(f"- [{PAGES[n][0]}]({n}.md)\n" for n in PAGES))
    return sync(files, "gen-command-docs.py")

if __name__ == "__main__":
    sys.exit(main())
