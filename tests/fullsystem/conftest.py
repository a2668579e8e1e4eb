"""Fixtures of the full-system tests (``@pytest.mark.fullsystem``): the cached Debian 12 image and
one booted VM per test, prepared like a host about to be handed to hostdev.

These tests run on the host: they build/boot the VM and drive it over SSH; every change happens
inside the VM's disk overlay. Each is marked ``fullsystem`` and ``realkernel`` (the fast loop
``-m "not realkernel"`` leaves them out); the realkernel plugin does not proxy them into its guest.
Missing tools skip them, or fail them under HOSTDEV_REQUIRE_REALKERNEL=1.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import guard
from tests.realkernel import vm
from tests.realkernel.guest import skip_or_fail

from . import image, machine

MARK = "fullsystem"
RUNS_KEPT = 3
TOOLS = {"mmdebstrap": "mmdebstrap", "sfdisk": "fdisk", "mkfs.ext4": "e2fsprogs", "qemu-img": "qemu-utils",
         vm.QEMU_BINARY: "qemu-system-x86", "ssh": "openssh-client", "ssh-keygen": "openssh-client"}


def pytest_collection_modifyitems(config, items):
    """Run fullsystem tests last: scripts/test.sh builds the image in the background meanwhile (the
    unit tests and the real-kernel guest overlap the build)."""
    ours = [item for item in items if item.get_closest_marker(MARK) is not None]
    for item in ours:
        if item.get_closest_marker("realkernel") is None:  # else -m "not realkernel" would boot the VM
            raise pytest.UsageError(f"{item.nodeid}: a fullsystem test must be marked realkernel too")
    if ours:
        # the scenario first: it gives the VM back as it found it, and the next test goes on in the
        # same VM (one boot less; see fullsystem_vm)
        ours.sort(key=lambda item: item.path.name != "test_reboot_scenario.py")
        items[:] = [item for item in items if item.get_closest_marker(MARK) is None] + ours


def _say(request, text: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(f"fullsystem: {text}")


@pytest.fixture(scope="session")
def fullsystem_image(request) -> image.Image:
    missing = [f"{tool} (apt-get install {package})" for tool, package in TOOLS.items() if not shutil.which(tool)]
    if missing:
        skip_or_fail("full-system VM unavailable: " + ", ".join(missing)
                     + "; sudo apt-get install --no-install-recommends $(grep -v '^#' scripts/apt-test-packages.txt)")
    guard.allow_root(str(image.CACHE_DIR))   # the image cache and the run directories
    guard.allow_root(str(vm.CACHE_DIR))      # the mtty module the image gets (tests/realkernel/vm.py)
    image.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    try:
        kernel = vm.find_kernel()
        _say(request, f"Debian 12 image for kernel {kernel.version} (built once per recipe, then cached) ...")
        found = image.ensure(kernel.version, log=lambda line: _say(request, line))
    except vm.HarnessError as exc:
        pytest.fail(f"the full-system image could not be built: {exc}", pytrace=False)
    _say(request, f"image {found.path.name}: " + ("cached" if found.build_s is None
                                                  else f"built in {found.build_s:.0f} s"))
    return found


@pytest.fixture(scope="session")
def hostdev_wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout: each run installs the code under test over the image's hostdev."""
    dest = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest),
                           str(image.REPO_ROOT)], capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("hostdev-*.whl"))
    if proc.returncode != 0 or not wheels:
        pytest.fail(f"pip wheel of the checkout failed: {proc.stdout}{proc.stderr}", pytrace=False)
    return wheels[0]


def _run_dir() -> Path:
    runs = image.CACHE_DIR / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    old = sorted(p for p in runs.iterdir() if p.is_dir())
    for stale in old[:max(0, len(old) - (RUNS_KEPT - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    path = runs / time.strftime("%Y%m%d-%H%M%S")
    suffix = 0
    while path.exists():
        suffix += 1
        path = runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{suffix}"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def fullsystem_vm(request, fullsystem_image):
    """The VM booted from a fresh overlay, with this checkout's hostdev installed over the image's
    (/opt/hostdev, as scripts/install.sh made it) unless the image was built from this very code
    (image.code_key: on CI the image is built in the same run). The image has the mtty driver.

    One VM for the session: a boot under TCG costs minutes, and the reboot scenario (run first)
    leaves the VM as it found it; the Ansible test goes on from there."""
    run_dir = _run_dir()
    _say(request, f"booting the VM (TCG: SeaBIOS, GRUB, Debian's kernel, systemd); run directory {run_dir}")
    vm_ = machine.FullSystemVM(fullsystem_image, run_dir)
    started = time.monotonic()
    with vm_:
        _say(request, f"SSH answered {vm_.boot_times[-1]:.0f} s after power-on")
        code = image.code_key()
        if vm_.ssh(f"cat {image.CODE_FILE} 2>/dev/null || true").stdout.strip() == code:
            _say(request, f"the image's hostdev is this checkout's code ({code[:12]}): not reinstalled")
        else:
            wheel = request.getfixturevalue("hostdev_wheel")
            vm_.copy_in(wheel, f"/root/{wheel.name}")
            vm_.ssh(f"/opt/hostdev/bin/pip install -q --no-index --no-deps --force-reinstall /root/{wheel.name}"
                    f" && echo {code} > {image.CODE_FILE}")
        vm_.ssh("hostdev --version")
        _say(request, f"VM prepared in {time.monotonic() - started:.0f} s")
        yield vm_
        (run_dir / "boot-times.txt").write_text("\n".join(f"{t:.1f}" for t in vm_.boot_times) + "\n")

