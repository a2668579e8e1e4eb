"""Boot the full-system test VM (tests/fullsystem/image.py) and drive it over SSH.

QEMU under TCG: q35 with the emulated Intel IOMMU the real-kernel guest uses, SeaBIOS → GRUB
from the disk → Debian's kernel → systemd. The disk is a qcow2 overlay in the run directory over
the cached raw image, so the image stays pristine and a run's changes vanish with the run. The
guest reboots inside the same QEMU process (no -no-reboot): firmware, GRUB and the kernel run
again, and the overlay keeps what the guest wrote.

Devices, pinned like tests/realkernel/vm.py DEVICES:
  00:10.0 edu (1234:11e8, no driver)  00:11.0 e1000e (no netdev backend: a NIC without a route)
  00:14.0 virtio-net, the uplink: QEMU user-mode networking, only SSH forwarded from a free port on
          127.0.0.1 (the guest reaches nothing else; hostdev's route interlock guards it)
The SSH key is made per run; QEMU hands its public half to the guest by fw_cfg
(recipe/files/usr/local/sbin/hostdev-test-authorized-keys).

Every wait is derived from the speed measured on this machine (tests/realkernel/speed.py).
Only the standard library; every command runs with an argv list.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional, Sequence

from tests.realkernel import speed, vm

from .image import Image

UPLINK_MAC = "52:54:00:12:34:56"   # recipe/files/etc/systemd/network/10-uplink.network matches it
EDU = "0000:00:10.0"
E1000E = "0000:00:11.0"
UPLINK = "0000:00:14.0"
DEVICES = (
    "edu,addr=0x10",
    "e1000e,addr=0x11,romfile=",
    f"virtio-net-pci,netdev=uplink,mac={UPLINK_MAC},addr=0x14,romfile=",
)
MEM = "2G"
# idle durations in host units (speed.py): power-on or reboot until SSH answers (firmware, GRUB,
# kernel, initramfs, systemd; ~60-90 s idle under TCG), and one command over SSH (the longest:
# update-initramfs, ~120 s idle; a hang detector, not a speed requirement)
BOOT_HOST_UNITS = 4000.0
COMMAND_HOST_UNITS = 6000.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VMError(vm.HarnessError):
    pass


class FullSystemVM:
    """One running VM. ``with FullSystemVM(image, run_dir) as machine: machine.ssh("...")``."""

    def __init__(self, image: Image, run_dir: Path, mem: str = MEM) -> None:
        self.image = image
        self.run_dir = Path(run_dir)
        self.mem = mem
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.key = self.run_dir / "id_ed25519"
        self.known_hosts = self.run_dir / "known_hosts"
        self.console = self.run_dir / "console.log"
        self.overlay = self.run_dir / "disk.qcow2"
        self.boot_times: list = []   # seconds from power-on/reboot until SSH answered, per boot

    # ---- lifecycle
    def qemu_argv(self) -> list:
        argv = [
            vm.QEMU_BINARY, "-accel", "tcg,tb-size=256", "-machine", "q35,kernel-irqchip=split",
            "-cpu", "max", "-smp", str(vm.DEFAULT_SMP), "-m", self.mem,
            "-nodefaults", "-display", "none",
            "-chardev", f"file,id=con,path={self.console}", "-serial", "chardev:con",
            "-device", "intel-iommu,intremap=on,caching-mode=on",
            "-drive", f"file={self.overlay},format=qcow2,if=none,id=root,cache=unsafe",
            "-device", "ide-hd,drive=root,bus=ide.0,bootindex=0",
            "-netdev", f"user,id=uplink,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-fw_cfg", f"name=opt/hostdev/authorized_keys,file={self.key}.pub",
        ]
        for device in DEVICES:
            argv += ["-device", device]
        return argv

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for tool in ("qemu-img", "ssh", "ssh-keygen", vm.QEMU_BINARY):
            if not shutil_which(tool):
                raise VMError(f"{tool} not found", "sudo apt-get install --no-install-recommends "
                              "$(grep -v '^#' scripts/apt-test-packages.txt)")
        self.key.unlink(missing_ok=True)
        Path(f"{self.key}.pub").unlink(missing_ok=True)
        _check(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hostdev-fullsystem-test", "-f", str(self.key)])
        self.overlay.unlink(missing_ok=True)
        _check(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.image.path),
                str(self.overlay)])
        self.console.write_bytes(b"")
        self.port = free_port()
        argv = self.qemu_argv()
        (self.run_dir / "qemu.argv").write_text(shlex.join(argv) + "\n")
        self._stderr = open(self.run_dir / "qemu.stderr", "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=subprocess.STDOUT, preexec_fn=vm._die_with_parent)
        self.wait_for_ssh(time.monotonic())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_stderr", None):
            self._stderr.close()
        self.overlay.unlink(missing_ok=True)  # the run's changes go with it; the image stays

    def __enter__(self) -> FullSystemVM:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- SSH
    def ssh_argv(self, command: str, connect_timeout: int = 20) -> list:
        return ["ssh", "-i", str(self.key), "-p", str(self.port), "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR",
                "-o", f"ConnectTimeout={connect_timeout}", "-o", "ServerAliveInterval=15",
                "-o", "ServerAliveCountMax=8", "root@127.0.0.1", command]

    def ssh(self, command: str, check: bool = True, timeout: Optional[float] = None,
            stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
        """Run ``command`` (a shell line for the guest's root shell); text stdout/stderr/returncode.

        ``check``: raise VMError with the output when the exit code is not 0. The timeout is
        derived from this machine's speed unless given."""
        self._alive()
        if timeout is None:
            timeout = speed.allowance(COMMAND_HOST_UNITS)
        try:
            proc = subprocess.run(self.ssh_argv(command), input=stdin, capture_output=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise VMError(f"[vm] {command!r} did not finish within {timeout:.0f} s (console {self.console})")
        result = subprocess.CompletedProcess(proc.args, proc.returncode,
                                             proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
        with open(self.run_dir / "ssh.log", "a") as log:
            log.write(f"$ {command}\n[rc {result.returncode}]\n{result.stdout}{result.stderr}\n")
        if check and result.returncode != 0:
            raise VMError(f"[vm] {command!r} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def copy_in(self, local: Path, remote: str) -> None:
        """Copy a host file into the guest (over the SSH connection, as root)."""
        self.ssh(f"cat > {shlex.quote(remote)}", stdin=Path(local).read_bytes())

    def _alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise VMError(f"QEMU is not running (exit status {code}); console {self.console}:\n"
                          + self.console_tail())

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = vm.clean_console(self.console.read_bytes())
        except OSError:
            return ""
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])

    def boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def wait_for_ssh(self, since: float, not_boot_id: Optional[str] = None) -> str:
        """Wait until SSH answers (with a boot id other than ``not_boot_id``); the new boot id."""
        allowance = speed.allowance(BOOT_HOST_UNITS)
        deadline = since + allowance
        while True:
            self._alive()
            try:
                proc = subprocess.run(self.ssh_argv("cat /proc/sys/kernel/random/boot_id", connect_timeout=10),
                                      capture_output=True, text=True, timeout=60, check=False)
                boot = proc.stdout.strip() if proc.returncode == 0 else ""
            except subprocess.TimeoutExpired:
                boot = ""
            if boot and boot != not_boot_id:
                self.boot_times.append(time.monotonic() - since)
                return boot
            if time.monotonic() > deadline:
                raise VMError(f"the VM did not answer on SSH within {allowance:.0f} s (measured from this "
                              f"machine's speed, tests/realkernel/speed.py); console:\n{self.console_tail()}")
            time.sleep(2)

    def reboot(self) -> float:
        """Reboot the guest (systemctl reboot: firmware, GRUB, kernel, systemd again); seconds it took."""
        before = self.boot_id()
        started = time.monotonic()
        # detached, a second later: the SSH session returns before sshd is stopped
        self.ssh("nohup sh -c 'sleep 1; systemctl reboot' >/dev/null 2>&1 &")
        self.wait_for_ssh(started, not_boot_id=before)
        return self.boot_times[-1]


def shutil_which(name: str) -> Optional[str]:
    import shutil
    return shutil.which(name)


def _check(argv: Sequence[str]) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise VMError(f"{argv[0]} failed with rc {proc.returncode}: {(proc.stdout + proc.stderr).strip()}")


def env_flag(name: str) -> bool:
    return os.environ.get(name) == "1"
