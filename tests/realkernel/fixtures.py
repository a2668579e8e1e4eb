"""Session fixtures for realkernel tests; they work ONLY inside the QEMU test guest.

Loaded automatically with the plugin (``tests.realkernel.plugin`` lists this module in its
``pytest_plugins``). Each one calls ``require_guest`` first, so using one in a test that is not
marked ``realkernel`` fails on the host instead of touching it.

* ``guest_vfio``   -- ``modprobe vfio-pci`` (vfio, vfio_iommu_type1, vfio_pci_core come with it)
* ``mdev_samples`` -- ``modprobe mdev vfio_iommu_type1`` + insmod mtty/mdpy/mbochs (built on the host
                      into .cache/realkernel/mdev-<kernel>/); yields the loaded sample names
* ``libvirtd``     -- libvirtd started once (after vfio-pci), yields ``qemu:///system``, stopped at
                      session end
"""

from __future__ import annotations

import os

import pytest

from . import guest


@pytest.fixture(scope="session")
def guest_vfio() -> None:
    guest.require_guest("the guest_vfio fixture")
    guest.modprobe("vfio-pci")
    assert guest.module_loaded("vfio_pci"), "vfio_pci did not load"
    yield


@pytest.fixture(scope="session")
def mdev_samples() -> tuple:
    guest.require_guest("the mdev_samples fixture")
    modules = guest.mdev_modules()
    absent = [str(m) for m in modules if not m.is_file()]
    if absent:
        why = os.environ.get(guest.MDEV_ERROR_ENV) or "see .cache/realkernel/mdev-*.build.log"
        guest.skip_or_fail(f"sample mdev drivers not built ({', '.join(absent)} missing): {why}; the host "
                           "builds them from linux-source-6.1 and linux-headers-amd64")
    guest.modprobe("mdev", "vfio_iommu_type1")
    for module in modules:
        if not guest.module_loaded(module.stem):  # idempotent: a second use does not insmod again
            guest.insmod(module)
    names = tuple(m.stem for m in modules)
    for name in names:
        assert guest.module_loaded(name), f"{name} did not load"
    yield names


@pytest.fixture(scope="session")
def libvirtd(guest_vfio) -> str:
    guest.require_guest("the libvirtd fixture")
    guest.guest_setup("libvirtd-start")
    try:
        yield "qemu:///system"
    finally:
        guest.guest_setup("libvirtd-stop")
