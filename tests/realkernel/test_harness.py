"""Host-side tests of the real-kernel harness's pure parts. Fast; they never boot QEMU."""

from __future__ import annotations

import fcntl
import gzip
import lzma
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from . import plugin, vm

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------- kernel discovery
def _fake_dpkg(stdout: str, rc: int = 0):
    calls = []

    def run(argv):
        calls.append(list(argv))
        return subprocess.CompletedProcess(argv, rc, stdout, "")
    run.calls = calls
    return run


def _kernel_tree(tmp_path: Path, *versions: str, modules: bool = True):
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    boot.mkdir()
    mods.mkdir()
    for version in versions:
        (boot / f"vmlinuz-{version}").write_bytes(b"kernel")
        if modules:
            (mods / version).mkdir()
            (mods / version / "modules.dep").write_text("")
    return boot, mods


@pytest.mark.parametrize("depends, expected", [
    ("linux-image-6.1.0-56-amd64 (= 6.1.192-2)", "6.1.0-56-amd64"),
    ("linux-image-6.12.38+deb13-amd64 (= 6.12.38-1)", "6.12.38+deb13-amd64"),
    ("linux-image-6.1.0-56-amd64 (= 6.1.192-2) | linux-image-6.1.0-55-amd64", "6.1.0-56-amd64"),
    ("", None),
    ("initramfs-tools | linux-initramfs-tool", None),
])
def test_kernel_version_from_dpkg_depends(depends, expected):
    assert vm.kernel_version_from_depends(depends) == expected


def test_find_kernel_prefers_the_version_linux_image_amd64_depends_on(tmp_path):
    boot, mods = _kernel_tree(tmp_path, "6.1.0-55-amd64", "6.1.0-56-amd64", "6.1.0-9-amd64")
    run = _fake_dpkg("linux-image-6.1.0-55-amd64 (= 6.1.190-1)")
    kernel = vm.find_kernel(run=run, boot_dir=boot, modules_root=mods)
    assert kernel.version == "6.1.0-55-amd64"
    assert kernel.image == boot / "vmlinuz-6.1.0-55-amd64"
    assert kernel.modules == mods / "6.1.0-55-amd64"
    assert run.calls == [["dpkg-query", "-W", "-f=${Depends}", "linux-image-amd64"]]


def test_find_kernel_falls_back_to_the_newest_image_with_modules(tmp_path):
    boot, mods = _kernel_tree(tmp_path, "6.1.0-9-amd64", "6.1.0-56-amd64")
    (boot / "vmlinuz-6.1.0-99-amd64").write_bytes(b"no modules for this one")
    kernel = vm.find_kernel(run=_fake_dpkg("", rc=1), boot_dir=boot, modules_root=mods)
    assert kernel.version == "6.1.0-56-amd64"  # numeric order, not string order; -99 has no modules


def test_find_kernel_without_dpkg(tmp_path):
    boot, mods = _kernel_tree(tmp_path, "6.8.0-1-generic")

    def no_dpkg(argv):
        raise FileNotFoundError(argv[0])
    assert vm.find_kernel(run=no_dpkg, boot_dir=boot, modules_root=mods).version == "6.8.0-1-generic"


def test_find_kernel_skips_a_dpkg_version_whose_image_is_missing(tmp_path):
    boot, mods = _kernel_tree(tmp_path, "6.1.0-55-amd64")
    run = _fake_dpkg("linux-image-6.1.0-56-amd64 (= 6.1.192-2)")
    assert vm.find_kernel(run=run, boot_dir=boot, modules_root=mods).version == "6.1.0-55-amd64"


def test_find_kernel_names_the_fix_when_there_is_none(tmp_path):
    boot, mods = _kernel_tree(tmp_path)
    with pytest.raises(vm.HarnessError) as info:
        vm.find_kernel(run=_fake_dpkg("", rc=1), boot_dir=boot, modules_root=mods)
    assert "apt-get install" in info.value.fix and "linux-image-amd64" in info.value.fix


# ---------------------------------------------------------------------------------------- QEMU argv
def _argv(**kw):
    return vm.qemu_argv(kernel_image=Path("/boot/vmlinuz-X"), initrd=Path("/c/initrd.gz"),
                        share=Path("/c/run/vmout"), console=Path("/c/run/console.log"), **kw)


def _options(argv, name):
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def test_qemu_argv_has_the_intel_iommu_and_the_guest_token():
    argv = _argv()
    # aw-bits pinned to QEMU 7.2's default: QEMU >= 9.2 defaults to 48 (see vm.INTEL_IOMMU)
    assert "intel-iommu,intremap=on,caching-mode=on,aw-bits=39" in _options(argv, "-device")
    append = _options(argv, "-append")[0].split()
    assert "hostdev.testguest=1" in append
    assert "intel_iommu=on" in append
    assert "panic=-1" in append and "console=ttyS0" in append
    assert _options(argv, "-accel") == ["tcg,tb-size=256"]
    assert _options(argv, "-machine") == ["q35,kernel-irqchip=split"]
    assert {"-nodefaults", "-no-reboot"} <= set(argv)
    assert _options(argv, "-kernel") == ["/boot/vmlinuz-X"]


def test_qemu_argv_pins_the_vmlab_device_set():
    devices = _options(_argv(), "-device")
    for expected in ("edu,addr=0x10", "e1000e,addr=0x11,romfile=", "pci-testdev,addr=0x12",
                     "pcie-pci-bridge,id=br1,bus=pcie.0,addr=0x13", "edu,bus=br1,addr=0x1",
                     "e1000,bus=br1,addr=0x3,romfile="):
        assert expected in devices


def test_qemu_argv_cannot_reach_any_network():
    argv = _argv()
    assert not {"-netdev", "-nic", "-net"} & set(argv)
    for device in _options(argv, "-device"):
        assert "netdev=" not in device
    for spec in _options(argv, "-virtfs"):
        assert "security_model=none" in spec
    root = [s for s in _options(argv, "-virtfs") if "mount_tag=hostroot" in s]
    assert root and "readonly=on" in root[0]


def test_qemu_argv_adds_the_sriov_pf_behind_a_root_port_only_when_asked():
    assert not any(d.startswith(("igb,", "pcie-root-port,")) for d in _options(_argv(), "-device"))
    devices = _options(_argv(sriov=True), "-device")
    port = [d for d in devices if d.startswith("pcie-root-port,")]
    igb = [d for d in devices if d.startswith("igb,")]
    assert port == ["pcie-root-port,id=rp1,bus=pcie.0,addr=0x1c,chassis=1"]
    assert igb == ["igb,bus=rp1,addr=0x0,romfile="]          # no netdev: no network either
    assert devices.index(port[0]) < devices.index(igb[0])     # the bus exists before the device on it


def test_qemu_argv_puts_the_unpacked_firmware_first():
    argv = _argv(qemu="/c/qemu/usr/bin/qemu-system-x86_64",
                 data_dirs=(Path("/c/qemu/usr/share/qemu"), Path("/c/qemu/usr/share/seabios")))
    assert argv[:5] == ["/c/qemu/usr/bin/qemu-system-x86_64", "-L", "/c/qemu/usr/share/qemu",
                        "-L", "/c/qemu/usr/share/seabios"]


@pytest.mark.parametrize("text, expected", [
    ("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright (c) 2003-2025", (10, 0, 2)),
    ("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)", (7, 2, 22)),
    ("QEMU emulator version 8.0\n", (8, 0, 0)),
    ("qemu-system-x86_64: command not found", None),
])
def test_parse_qemu_version(text, expected):
    assert vm.parse_qemu_version(text) == expected


def _fake_qemu_tree(root: Path) -> Path:
    binary = root / "usr" / "bin" / "qemu-system-x86_64"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    return binary


def _versions(answers):
    calls = []

    def run(argv):
        calls.append(argv[0])
        out = answers.get(argv[0])
        return subprocess.CompletedProcess(argv, 0 if out else 1, out or "", "")
    return run, calls


def test_find_qemu_prefers_the_unpacked_backport_and_sees_its_sriov(tmp_path):
    binary = _fake_qemu_tree(tmp_path)
    run, calls = _versions({str(binary): "QEMU emulator version 10.0.2 (Debian)",
                            "/usr/bin/qemu-system-x86_64": "QEMU emulator version 7.2.22 (Debian)"})
    qemu = vm.find_qemu(tmp_path, which=lambda name: "/usr/bin/" + name, run=run, environ={})
    assert qemu.binary == binary and qemu.version == (10, 0, 2) and qemu.sriov is True
    assert qemu.data_dirs == (tmp_path / "usr/share/qemu", tmp_path / "usr/share/seabios")
    # its own modules, never the system QEMU's (those abort it: "Only modules from the same build")
    assert qemu.env == {"QEMU_MODULE_DIR": str(tmp_path / "usr/lib/x86_64-linux-gnu/qemu")}
    assert calls == [str(binary)]


def test_find_qemu_falls_back_to_the_system_one_without_sriov(tmp_path):
    run, _ = _versions({"/usr/bin/qemu-system-x86_64": "QEMU emulator version 7.2.22 (Debian)"})
    qemu = vm.find_qemu(tmp_path / "absent", which=lambda name: "/usr/bin/" + name, run=run, environ={})
    assert qemu.binary == Path("/usr/bin/qemu-system-x86_64") and qemu.version == (7, 2, 22)
    assert qemu.sriov is False and qemu.data_dirs == () and qemu.env == {}
    # an unpacked tree whose binary does not run (a torn unpack) is passed over too
    binary = _fake_qemu_tree(tmp_path / "torn")
    assert vm.find_qemu(tmp_path / "torn", which=lambda name: "/usr/bin/" + name, run=run,
                        environ={}).binary == Path("/usr/bin/qemu-system-x86_64")
    assert binary.exists()


def test_find_qemu_system_knob_and_no_qemu_at_all(tmp_path):
    binary = _fake_qemu_tree(tmp_path)
    run, calls = _versions({str(binary): "QEMU emulator version 10.0.2",
                            "/usr/bin/qemu-system-x86_64": "QEMU emulator version 7.2.22"})
    qemu = vm.find_qemu(tmp_path, which=lambda name: "/usr/bin/" + name, run=run,
                        environ={vm.QEMU_ENV: "system"})
    assert qemu.version == (7, 2, 22) and calls == ["/usr/bin/qemu-system-x86_64"]
    assert vm.find_qemu(tmp_path / "absent", which=lambda name: None, run=run, environ={}) is None


def test_qemu_argv_knobs():
    argv = _argv(mem="3G", smp=1, append=["foo=1"])
    assert _options(argv, "-m") == ["3G"]
    assert _options(argv, "-smp") == ["1"]
    assert _options(argv, "-append")[0].endswith("hostdev.testguest=1 foo=1")


# ---------------------------------------------------------------------------------------- initramfs pieces
def _read_newc(data: bytes) -> dict:
    entries, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos:pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, body, fields[9], fields[10])


def test_cpio_writer_writes_newc_that_reads_back():
    cpio = vm.CpioWriter()
    cpio.directory("bin")
    cpio.chardev("dev/console", 5, 1)
    cpio.file("init", b"#!/bin/sh\necho hi\n", 0o755)
    entries = _read_newc(cpio.getvalue())
    assert entries["init"][1] == b"#!/bin/sh\necho hi\n"
    assert entries["init"][0] == 0o100755
    assert entries["bin"][0] == 0o40755
    assert entries["dev/console"][0] & 0o170000 == 0o020000 and entries["dev/console"][2:] == (5, 1)


def test_cpio_writer_output_is_accepted_by_cpio_tool(tmp_path):
    if not Path("/usr/bin/cpio").exists():
        pytest.skip("cpio not installed")
    cpio = vm.CpioWriter()
    cpio.directory("mods")
    cpio.file("mods/order", b"a\nbc\n")
    archive = tmp_path / "a.cpio"
    archive.write_bytes(cpio.getvalue())
    listing = subprocess.run(["cpio", "-t", "--quiet", "-F", str(archive)], capture_output=True, check=True)
    assert listing.stdout.decode().split() == ["mods", "mods/order"]


def test_initramfs_modules_are_ordered_dependencies_first(tmp_path):
    (tmp_path / "modules.dep").write_text(textwrap.dedent("""\
        kernel/fs/overlayfs/overlay.ko.xz:
        kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/fscache/fscache.ko.xz kernel/fs/netfs/netfs.ko.xz
        kernel/fs/fscache/fscache.ko.xz: kernel/fs/netfs/netfs.ko.xz
        kernel/fs/netfs/netfs.ko.xz:
        kernel/net/9p/9pnet.ko.xz:
        kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
        kernel/drivers/virtio/virtio_ring.ko.xz:
        """))
    (tmp_path / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")
    kernel = vm.Kernel("x", tmp_path / "vmlinuz", tmp_path)
    order = [vm._module_name(p) for p in vm.initramfs_modules(kernel)]
    assert order.index("netfs") < order.index("fscache") < order.index("9p")
    assert order.index("9pnet") < order.index("9p") and order.index("9pnet") < order.index("9pnet_virtio")
    assert "virtio_pci" not in order  # built in
    assert len(order) == len(set(order))
    with pytest.raises(vm.HarnessError):
        vm.initramfs_modules(kernel, wanted=["no_such_module"])


def test_module_vermagic(tmp_path):
    ko = tmp_path / "mtty.ko"
    ko.write_bytes(b"\x7fELF....\0license=GPL v2\0vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \0x")
    assert vm.module_vermagic(ko).split()[0] == "6.1.0-56-amd64"
    assert vm.module_vermagic(tmp_path / "absent.ko") is None


def test_is_static_elf():
    assert not vm.is_static_elf(Path(sys.executable).resolve())  # a dynamically linked python
    assert not vm.is_static_elf(Path(__file__))


def test_cmd_script_runs_coldplug_then_the_commands(tmp_path):
    script = tmp_path / "cmd.sh"
    vm.write_cmd_script(script, ["echo one", "exit 3"])
    lines = script.read_text().splitlines()
    assert any("guest_setup.sh" in line and line.endswith("coldplug") for line in lines)
    assert lines[-2:] == ["echo one", "exit 3"]
    vm.write_cmd_script(script, ["true"], coldplug=False)
    assert "coldplug" not in script.read_text()


@pytest.mark.parametrize("cmdline, refused", [
    ("console=ttyS0 quiet intel_iommu=on hostdev.testguest=1\n", False),
    ("BOOT_IMAGE=/vmlinuz root=/dev/vda ro\n", True),
    ("hostdev.testguest=10 x\n", True),
])
def test_guest_setup_script_refuses_outside_the_guest(tmp_path, cmdline, refused):
    # A neutralised copy (reads a fake cmdline, echoes instead of acting): the real script is
    # never run on the host.
    fake_cmdline = tmp_path / "cmdline"
    fake_cmdline.write_text(cmdline)
    script = vm.GUEST_SETUP.read_text()
    assert script.count("$(cat /proc/cmdline)") == 1
    script = script.replace("$(cat /proc/cmdline)", f"$(cat {fake_cmdline})")
    coldplug = script.index("coldplug() {")
    script = (script[:coldplug] + "coldplug() { echo WOULD-COLDPLUG; }\n"
              + script[coldplug:].replace("coldplug() {", "_real_coldplug() {", 1))
    copy = tmp_path / "guest_setup.sh"
    copy.write_text(script)
    proc = subprocess.run(["/bin/sh", str(copy), "coldplug"], capture_output=True, text=True, check=False)
    if refused:
        assert proc.returncode == 99 and "refusing" in proc.stderr and "WOULD" not in proc.stdout
    else:
        assert proc.returncode == 0 and proc.stdout.strip() == "WOULD-COLDPLUG"


def test_markers_and_console_cleaning():
    console = vm.clean_console(b"\x1b[0mboot\r\n@@hostdev-vm cmd-start=4.5\r\nx\n"
                               b"@@hostdev-vm pytest-end=9 pytest-rc=1\n")
    assert "\r" not in console and "\x1b" not in console
    assert vm.parse_markers(console) == {"cmd-start": "4.5", "pytest-end": "9", "pytest-rc": "1"}


# ---------------------------------------------------------------------------------------- report
def _rep(when, outcome, longrepr=None, **extra):
    return SimpleNamespace(when=when, outcome=outcome, longrepr=longrepr, duration=0.5,
                           longreprtext=str(longrepr or ""), **extra)


@pytest.mark.parametrize("reports, outcome, when, message", [
    ([_rep("setup", "passed"), _rep("call", "passed"), _rep("teardown", "passed")], "passed", "call", ""),
    ([_rep("setup", "passed"), _rep("call", "failed", "assert 1 == 2"), _rep("teardown", "passed")],
     "failed", "call", "assert 1 == 2"),
    ([_rep("setup", "failed", "fixture boom"), _rep("teardown", "passed")], "error", "setup", "fixture boom"),
    ([_rep("setup", "passed"), _rep("call", "passed"), _rep("teardown", "failed", "td boom")],
     "error", "teardown", "td boom"),
    ([_rep("setup", "skipped", ("t.py", 3, "Skipped: no mtty")), _rep("teardown", "passed")],
     "skipped", "setup", "no mtty"),
    ([_rep("setup", "passed"), _rep("call", "skipped", ("t.py", 3, "x"), wasxfail="known bug")],
     "xfailed", "call", "known bug"),
    ([_rep("setup", "passed"), _rep("call", "passed", wasxfail="known bug")], "xpassed", "call", "known bug"),
])
def test_summarize_phases(reports, outcome, when, message):
    entry = plugin.summarize_phases(reports)
    assert (entry["outcome"], entry["when"], entry["message"]) == (outcome, when, message)


def test_guest_reporter_writes_json_lines_and_parse_report_reads_them(tmp_path):
    path = tmp_path / "report.jsonl"
    reporter = plugin.GuestReporter(str(path))
    for rep in (_rep("setup", "passed"), _rep("call", "failed", "E  boom"), _rep("teardown", "passed")):
        rep.nodeid = "t.py::test_a"
        reporter.pytest_runtest_logreport(rep)
    reporter.pytest_runtest_logfinish("t.py::test_a", None)
    reporter.pytest_collectreport(SimpleNamespace(failed=True, nodeid="t_broken.py", longrepr="ImportError: x"))
    with open(path, "a") as handle:
        handle.write('{"nodeid": "t.py::torn", "outc')  # the guest died mid-write
    results, collect_errors = plugin.parse_report(path.read_text())
    assert list(results) == ["t.py::test_a"]
    assert results["t.py::test_a"]["outcome"] == "failed"
    assert results["t.py::test_a"]["message"] == "E  boom"
    assert results["t.py::test_a"]["duration"] == pytest.approx(1.5)
    assert collect_errors[0]["nodeid"] == "t_broken.py"


# ---------------------------------------------------------------------------------------- verdicts
def test_entry_verdicts():
    v = plugin.entry_verdict
    assert v({"outcome": "passed"}).kind == "pass"
    assert v({"outcome": "xpassed"}).kind == "pass"
    failed = v({"outcome": "failed", "when": "call", "message": "assert 0"})
    assert (failed.phase, failed.kind) == ("call", "fail") and "assert 0" in failed.message
    error = v({"outcome": "error", "when": "teardown", "message": "boom"})
    assert (error.phase, error.kind) == ("teardown", "fail")
    skipped = v({"outcome": "skipped", "when": "setup", "message": "no mtty"})
    assert (skipped.phase, skipped.kind, skipped.message) == ("setup", "skip", "[guest] no mtty")
    assert v({"outcome": "xfailed", "message": "bug"}).kind == "xfail"


def test_unreported_test_fails_and_collection_errors_are_attributed():
    missing = plugin.entry_verdict(None, nodeid="t.py::test_x", fallback="guest pytest exited with rc 2")
    assert missing.kind == "fail" and "not reported" in missing.message and "rc 2" in missing.message
    errors = [{"nodeid": "tests/realkernel/test_a.py", "message": "ImportError: libvirt"}]
    attributed = plugin.entry_verdict(None, errors, nodeid="tests/realkernel/test_a.py::test_x")
    assert attributed.kind == "fail" and "ImportError: libvirt" in attributed.message
    other = plugin.entry_verdict(None, errors, nodeid="tests/realkernel/test_ab.py::test_x")
    assert "not reported" in other.message


def test_missing_prerequisites_skip_unless_realkernel_is_required():
    missing = [vm.Missing("qemu-system-x86_64 not found on PATH", "sudo apt-get install qemu-system-x86")]
    skip = plugin.unavailable_verdict(missing, require=False)
    assert (skip.phase, skip.kind) == ("setup", "skip")
    assert "qemu-system-x86_64" in skip.message and "apt-get install qemu-system-x86" in skip.message
    fail = plugin.unavailable_verdict(missing, require=True)
    assert (fail.phase, fail.kind) == ("call", "fail")
    assert "apt-get install qemu-system-x86" in fail.message and "HOSTDEV_REQUIRE_REALKERNEL=1" in fail.message


def test_require_and_knob_parsing():
    assert plugin.require_realkernel({"HOSTDEV_REQUIRE_REALKERNEL": "1"})
    assert not plugin.require_realkernel({"HOSTDEV_REQUIRE_REALKERNEL": "0"})
    assert not plugin.require_realkernel({})
    assert plugin.vm_timeout({}) is None  # no cap: the calibrated watchdog alone
    assert plugin.vm_timeout({"HOSTDEV_VM_TIMEOUT": "90"}) == 90
    assert plugin.vm_mem({}) == "2G"
    assert plugin.vm_mem({"HOSTDEV_VM_MEM": "3072M"}) == "3072M"
    for bad in ({"HOSTDEV_VM_TIMEOUT": "soon"}, {"HOSTDEV_VM_TIMEOUT": "-1"}):
        with pytest.raises(pytest.UsageError):
            plugin.vm_timeout(bad)
    with pytest.raises(pytest.UsageError):
        plugin.vm_mem({"HOSTDEV_VM_MEM": "2 GB; rm -rf /"})
    assert plugin.vm_append({}) == []
    assert plugin.vm_append({"HOSTDEV_VM_APPEND": "loglevel=7 ignore_loglevel"}) == ["loglevel=7", "ignore_loglevel"]
    with pytest.raises(pytest.UsageError):
        plugin.vm_append({"HOSTDEV_VM_APPEND": "hostdev.testguest=0"})


def test_guest_pytest_command():
    argv = plugin.guest_pytest_argv("/v/bin/python", ["tests/realkernel/test_a.py::test_x[a b]"],
                                    rootdir="/work/main", tbstyle="short")
    assert argv[:3] == ["/v/bin/python", "-m", "pytest"]
    assert {"-p", "no:cacheprovider", "tests.realkernel.plugin", "-m", "realkernel", "--tb=short"} <= set(argv)
    assert argv[-1] == "tests/realkernel/test_a.py::test_x[a b]"
    assert any(a.startswith("--basetemp=/tmp/") for a in argv)
    lines = plugin.guest_commands(argv, rootdir="/work/main", env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert lines[0].startswith("cd /work/main")
    assert "export PYTHONDONTWRITEBYTECODE=1" in lines
    assert "'tests/realkernel/test_a.py::test_x[a b]'" in "\n".join(lines)
    assert lines[-1] == "exit $rc"


# ---------------------------------------------------------------------------------------- the proxy, end to end
FAKE_CONFTEST = '''
import json, os
from pathlib import Path
import tests.realkernel.vm as vm

pytest_plugins = ["tests.realkernel.plugin"]
SCENARIO = os.environ["FAKE_SCENARIO"]
vm.CACHE_DIR = Path(os.environ["FAKE_CACHE"])

def fake_check_prerequisites():
    if SCENARIO == "missing":
        return None, [vm.Missing("qemu-system-x86_64 not found on PATH", "sudo apt-get install qemu-system-x86")]
    return vm.Kernel("6.1.0-test", Path("/boot/vmlinuz-test"), Path("/lib/modules/test")), []

def fake_boot(commands, outdir, timeout, **kw):
    Path(os.environ["FAKE_CACHE"], "commands.txt").write_text("\\n".join(commands))
    share = outdir / "vmout"
    share.mkdir(parents=True, exist_ok=True)
    if SCENARIO == "bug":
        raise RuntimeError("harness bug")
    if SCENARIO == "timeout":
        return vm.BootResult(rc=None, console="Booting...\\nstuck", wall=5.0, timed_out=True,
                             error="the guest did not finish within 5 s", outdir=outdir)
    lines = [
        {"nodeid": "test_t.py::test_pass", "outcome": "passed", "when": "call", "message": ""},
        {"nodeid": "test_t.py::test_fail", "outcome": "failed", "when": "call",
         "message": "E   assert 'guest' == 'host'"},
        {"nodeid": "test_t.py::test_skip", "outcome": "skipped", "when": "setup", "message": "no mtty"},
        {"nodeid": "test_t.py::test_xfail", "outcome": "xfailed", "when": "call", "message": "known"},
        {"nodeid": "test_t.py::test_error", "outcome": "error", "when": "setup", "message": "fixture exploded"},
        {"nodeid": "test_t.py::test_td", "outcome": "error", "when": "teardown", "message": "restore failed"},
    ]
    (share / "report.jsonl").write_text("".join(json.dumps(l) + "\\n" for l in lines))
    return vm.BootResult(rc=1, console="@@hostdev-vm cmd-start=4.0\\nguest output", wall=3.0, outdir=outdir,
                         markers={"cmd-start": "4.0"})

vm.check_prerequisites = fake_check_prerequisites
vm.build_initramfs = lambda kernel: Path("/dev/null")
vm.boot = fake_boot
'''

FAKE_TESTS = '''
import os, pytest

def _ran():
    open(os.environ["FAKE_CACHE"] + "/BODY_RAN", "a").write("x")

@pytest.fixture
def host_danger():
    open(os.environ["FAKE_CACHE"] + "/FIXTURE_RAN", "a").write("x")

@pytest.mark.realkernel
def test_pass(host_danger): _ran()
@pytest.mark.realkernel
def test_fail(): _ran()
@pytest.mark.realkernel
@pytest.mark.skipif(True, reason="the host must not evaluate this")
def test_skip(): _ran()
@pytest.mark.realkernel
def test_xfail(): _ran()
@pytest.mark.realkernel
def test_error(): _ran()
@pytest.mark.realkernel
def test_td(): _ran()
@pytest.mark.realkernel
def test_lost(): _ran()

def test_unit():
    pass
'''


def _run_inner(tmp_path, scenario, *args, require=False):
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(FAKE_CONFTEST)
    (project / "test_t.py").write_text(FAKE_TESTS)
    (project / "pytest.ini").write_text("[pytest]\naddopts = -ra -p no:cacheprovider\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOSTDEV_", "PYTEST_"))}
    env.update(FAKE_SCENARIO=scenario, FAKE_CACHE=str(cache), PYTHONPATH=str(REPO),
               PYTHONDONTWRITEBYTECODE="1")
    if require:
        env["HOSTDEV_REQUIRE_REALKERNEL"] = "1"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-rA", "--junitxml", str(tmp_path / "j.xml"), *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)
    return proc, cache


def test_proxy_replays_the_guest_outcomes_without_running_anything_on_the_host(tmp_path):
    proc, cache = _run_inner(tmp_path, "report")
    out = proc.stdout
    assert not (cache / "BODY_RAN").exists() and not (cache / "FIXTURE_RAN").exists(), out
    assert "PASSED test_t.py::test_pass" in out
    assert "FAILED test_t.py::test_fail" in out and "assert 'guest' == 'host'" in out
    assert "SKIPPED [1] test_t.py" in out and "no mtty" in out
    assert "XFAIL test_t.py::test_xfail" in out
    assert "ERROR test_t.py::test_error" in out and "fixture exploded" in out
    assert "ERROR at teardown of test_td" in out and "restore failed" in out
    assert "FAILED test_t.py::test_lost" in out and "not reported by the guest" in out
    assert "PASSED test_t.py::test_unit" in out
    final = out.strip().splitlines()[-1]
    assert "2 failed" in final and "3 passed" in final and "2 errors" in final, final
    assert "realkernel guest" in out and "guest| guest output" in out
    commands = (cache / "commands.txt").read_text()
    assert "-m realkernel" in commands and "-p no:cacheprovider" in commands
    assert "test_t.py::test_lost" in commands and "test_t.py::test_unit" not in commands
    assert "PYTHONDONTWRITEBYTECODE=1" in commands
    assert proc.returncode == 1


def test_unit_tests_alone_never_boot(tmp_path):
    proc, cache = _run_inner(tmp_path, "report", "-m", "not realkernel")
    assert proc.returncode == 0, proc.stdout
    assert not (cache / "commands.txt").exists()
    assert "realkernel guest" not in proc.stdout


def test_missing_qemu_skips_with_the_install_command(tmp_path):
    proc, cache = _run_inner(tmp_path, "missing", "-m", "realkernel")
    assert proc.returncode == 0, proc.stdout
    assert "7 skipped" in proc.stdout
    assert "apt-get install qemu-system-x86" in proc.stdout
    assert not (cache / "commands.txt").exists()


def test_missing_qemu_fails_when_realkernel_is_required(tmp_path):
    proc, _ = _run_inner(tmp_path, "missing", "-m", "realkernel", require=True)
    assert proc.returncode == 1
    final = proc.stdout.strip().splitlines()[-1]       # "==== 7 failed, 1 deselected in 0.04s ===="
    assert "7 failed" in final and "skipped" not in final
    assert "HOSTDEV_REQUIRE_REALKERNEL=1" in proc.stdout


def test_a_hung_guest_fails_every_realkernel_test_with_the_console_tail(tmp_path):
    proc, _ = _run_inner(tmp_path, "timeout", "-m", "realkernel")
    assert proc.returncode == 1
    assert "7 failed" in proc.stdout
    assert "did not finish within" in proc.stdout and "stuck" in proc.stdout


def test_initramfs_is_built_once_and_keyed_by_the_init_script(tmp_path, monkeypatch):
    if vm.find_busybox() is None:
        pytest.skip("no static busybox on this machine")
    mods = tmp_path / "lib"
    (mods / "kernel").mkdir(parents=True)
    (mods / "modules.dep").write_text("kernel/a.ko.xz: kernel/b.ko\nkernel/b.ko:\n")
    (mods / "kernel" / "a.ko.xz").write_bytes(lzma.compress(b"module a"))
    (mods / "kernel" / "b.ko").write_bytes(b"module b")
    kernel = vm.Kernel("9.9.9-test", tmp_path / "vmlinuz", mods)
    monkeypatch.setattr(vm, "INITRAMFS_MODULES", ("a",))
    monkeypatch.setattr(vm, "initramfs_modules",
                        lambda k, wanted=("a",), _orig=vm.initramfs_modules: _orig(k, wanted))
    cache = tmp_path / "cache"
    first = vm.build_initramfs(kernel, cache)
    assert vm.build_initramfs(kernel, cache) == first  # cached
    entries = _read_newc(gzip.decompress(first.read_bytes()))
    assert entries["mods/order"][1] == b"b\na\n"
    assert entries["mods/a.ko"][1] == b"module a"  # decompressed for busybox insmod
    assert entries["init"][1].decode() == vm.INIT_SCRIPT
    assert entries["bin/busybox"][0] == 0o100755
    monkeypatch.setattr(vm, "INIT_SCRIPT", vm.INIT_SCRIPT + "# changed\n")
    second = vm.build_initramfs(kernel, cache)
    assert second != first and second.is_file() and not first.exists()


def test_a_cache_build_waits_while_another_session_holds_the_build_lock(tmp_path):
    # scripts/test.sh runs sessions side by side: the full-system image build takes the mdev samples
    # the real-kernel guest loads; neither may look at (or replace) a build the other is writing
    kernel = vm.Kernel("9.9.9-test", tmp_path / "vmlinuz", tmp_path / "lib")
    cache = tmp_path / "cache"
    dest = vm.mdev_dir(kernel.version, cache)
    dest.mkdir(parents=True)
    for module in vm.MDEV_SAMPLES:
        (dest / f"{module}.ko").write_bytes(b"\0vermagic=9.9.9-test SMP mod_unload modversions \0")
    done, result = threading.Event(), []
    with open(cache / ".build.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        thread = threading.Thread(target=lambda: (result.append(vm.build_mdev_samples(kernel, cache)), done.set()))
        thread.start()
        assert not done.wait(0.5), "build_mdev_samples did not wait for the lock"
        assert not result
    assert done.wait(30)
    thread.join()
    assert result[0].ok and result[0].detail == "cached"


def test_a_harness_bug_fails_the_realkernel_tests_instead_of_crashing_the_session(tmp_path):
    proc, _ = _run_inner(tmp_path, "bug")
    assert proc.returncode == 1
    assert "INTERNALERROR" not in proc.stdout
    assert "7 failed" in proc.stdout and "1 passed" in proc.stdout  # test_unit still ran
    assert "internal error of the realkernel harness" in proc.stdout and "RuntimeError: harness bug" in proc.stdout


def test_a_fullsystem_test_runs_on_the_host_and_is_not_sent_to_the_guest(tmp_path):
    # tests/fullsystem: marked realkernel (so "-m 'not realkernel'" leaves them out) and fullsystem
    # (they boot their own VM from the host): the plugin must not proxy them into the guest
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(FAKE_CONFTEST)
    (project / "test_vm.py").write_text(
        "import os, pytest\n"
        "@pytest.mark.fullsystem\n@pytest.mark.realkernel\n"
        "def test_on_the_host():\n    open(os.environ['FAKE_CACHE'] + '/BODY_RAN', 'a').write('x')\n")
    (project / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\nmarkers =\n  realkernel\n"
                                        "  fullsystem\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOSTDEV_", "PYTEST_"))}
    env.update(FAKE_SCENARIO="report", FAKE_CACHE=str(cache), PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "realkernel"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert (cache / "BODY_RAN").read_text() == "x"
    assert not (cache / "commands.txt").exists()  # no guest was booted for it
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "not realkernel"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 5 and (cache / "BODY_RAN").read_text() == "x", proc.stdout  # deselected
