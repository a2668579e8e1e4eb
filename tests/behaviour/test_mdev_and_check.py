"""mdev lifecycle and the check verdict on a host with an IOMMU, simulated and real."""
import pytest

from hostdev import checks, mdev
from hostdev.errors import RefusedError, UsageError

UUID = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"


def test_mtty_types_are_listed(machine):
    machine.load_mdev_samples()
    assert "mtty" in mdev.parents(machine.host)
    by_id = {t.id: t for t in mdev.types(machine.host, "mtty")}
    assert by_id["mtty-1"].name == "Single port serial"
    assert by_id["mtty-2"].name == "Dual port serial"
    assert by_id["mtty-1"].device_api == "vfio-pci"
    assert by_id["mtty-1"].available_instances > 0


def test_mdev_create_and_remove(machine):
    machine.load_mdev_samples()
    before = {t.id: t.available_instances for t in mdev.types(machine.host, "mtty")}["mtty-2"]
    created = mdev.create(machine.host, "mtty", "mtty-2", UUID)
    try:
        assert created.uuid == UUID and created.parent == "mtty" and created.type_id == "mtty-2"
        assert created.type_name == "Dual port serial"
        assert created.iommu_group is not None
        assert machine.host.exists(f"/dev/vfio/{created.iommu_group}")
        after = {t.id: t.available_instances for t in mdev.types(machine.host, "mtty")}["mtty-2"]
        assert after == before - 1
        with pytest.raises(UsageError, match="already exists"):
            mdev.create(machine.host, "mtty", "mtty-2", UUID)
    finally:
        mdev.remove(machine.host, UUID)
    assert UUID not in [m.uuid for m in mdev.list_mdevs(machine.host)]


def test_busy_mdev_is_not_removed(machine):
    machine.load_mdev_samples()
    created = mdev.create(machine.host, "mtty", "mtty-1", UUID)
    try:
        with machine.hold_vfio_group(created.iommu_group):
            with pytest.raises(RefusedError, match="in use"):
                mdev.remove(machine.host, UUID)
            assert machine.host.exists(f"/sys/bus/mdev/devices/{UUID}")
    finally:
        mdev.remove(machine.host, UUID)


def test_bad_mdev_requests_are_usage_errors(machine):
    machine.load_mdev_samples()
    with pytest.raises(UsageError, match="no mdev type"):
        mdev.create(machine.host, "mtty", "mtty-9")
    with pytest.raises(UsageError, match="not an mdev parent"):
        mdev.create(machine.host, "nosuchparent", "mtty-1")
    with pytest.raises(UsageError, match="invalid UUID"):
        mdev.create(machine.host, "mtty", "mtty-1", "not-a-uuid")


def test_check_on_a_host_with_an_iommu(machine):
    report = {c.id: c for c in checks.run_checks(machine.host).checks}
    assert report["iommu"].status == "pass"
    assert "intel_iommu=on" in report["kernel-args"].detail
    assert report["vfio"].status in ("pass", "warn")     # loaded, or available as a module
    assert "vfio-pci is" in report["vfio"].detail
