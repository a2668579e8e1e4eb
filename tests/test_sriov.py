"""hostdev sriov enable / disable against the simulated kernel (intel_host_t4 scenario).

The E810 PF 0000:31:00.0 (ice, sriov_totalvfs 8, First VF Offset 8, VF Stride 1) starts with two
VFs on iavf: routing IDs 8 and 9 on bus 0x31, i.e. 0000:31:01.0 and 0000:31:01.1. Four VFs are
therefore 0000:31:01.0 … 0000:31:01.3.
"""
import errno
import json
import os

import pytest

from hostdev import binding, journal, sriov
from hostdev.cli.app import app
from hostdev.errors import RefusedError, UsageError
from hostdev.host import Host
from hostdev.plan import OperationFailedError

PF = "0000:31:00.0"
NUMVFS = f"/sys/bus/pci/devices/{PF}/sriov_numvfs"
FOUR_VFS = ["0000:31:01.0", "0000:31:01.1", "0000:31:01.2", "0000:31:01.3"]
PLAN_KEYS = ["changed", "dry_run", "reboot_required", "pf", "num_vfs_before", "num_vfs_after", "vfs", "devices",
             "actions", "files_changed", "notes"]


def test_sriov_is_a_command_of_hostdev():
    import click
    import typer.main

    root = typer.main.get_command(app)
    assert "sriov" in root.list_commands(None)
    group = root.get_command(None, "sriov")  # loaded when looked up (cli/app.py)
    assert isinstance(group, click.Group) and {"enable", "disable"} <= set(group.list_commands(None))


def read_host(sim):
    return Host(sim.root)


def numvfs(sim) -> str:
    return read_host(sim).read_attr(NUMVFS)


def driver_of(sim, addr):
    return read_host(sim).link_name(f"/sys/bus/pci/devices/{addr}/driver")


def vm_takes(sim, vf) -> int:
    """A VM opens ``vf``: on vfio-pci first (a VM cannot open a VF on iavf), then held."""
    assert sim.invoke("bind", vf)[0] == 0 and driver_of(sim, vf) == "vfio-pci"
    del sim.kernel.writes[:]
    return sim.kernel.hold(vf)


def numvfs_writes(sim):
    return [value for path, value in sim.kernel.writes if path == NUMVFS]


def test_scenario_starts_with_two_vfs_on_iavf(sim):
    assert numvfs(sim) == "2"
    assert [sim.nic_vf0, sim.nic_vf1] == FOUR_VFS[:2]
    assert driver_of(sim, sim.nic_vf0) == "iavf"


def test_enable_changes_two_to_four_writing_zero_first(sim):
    code, out, err = sim.invoke("sriov", "enable", PF, "--vfs", "4", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == PLAN_KEYS
    assert data["changed"] is True and data["dry_run"] is False and data["reboot_required"] is False
    assert data["pf"] == PF and data["num_vfs_before"] == 2 and data["num_vfs_after"] == 4
    assert data["vfs"] == FOUR_VFS
    assert data["devices"] == []
    assert [a["action"].split(" ")[:2] for a in data["actions"][:2]] == [["write", "0"], ["write", "4"]]
    # the kernel refuses 2 -> 4 directly (EBUSY): 0 must come first, and nothing else is written
    assert sim.kernel.writes == [(NUMVFS, "0"), (NUMVFS, "4")]
    h = read_host(sim)
    assert numvfs(sim) == "4"
    for index, vf in enumerate(FOUR_VFS):
        assert h.link_name(f"/sys/bus/pci/devices/{PF}/virtfn{index}") == vf
        assert h.link_name(f"/sys/bus/pci/devices/{vf}/physfn") == PF
        assert driver_of(sim, vf) == "iavf"        # autoprobe bound the VF driver
    groups = {h.link_name(f"/sys/bus/pci/devices/{vf}/iommu_group") for vf in FOUR_VFS}
    assert len(groups) == 4                        # each VF in its own group


def test_enable_again_is_idempotent(sim):
    assert sim.invoke("sriov", "enable", PF, "--vfs", "4")[0] == 0
    writes = list(sim.kernel.writes)
    code, out, err = sim.invoke("sriov", "enable", "31:00.0", "--vfs", "4", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["changed"] is False and data["actions"] == []
    assert data["num_vfs_before"] == data["num_vfs_after"] == 4 and data["vfs"] == FOUR_VFS
    assert sim.kernel.writes == writes


def test_enable_from_zero_writes_only_the_count(sim):
    assert sim.invoke("sriov", "disable", PF)[0] == 0
    del sim.kernel.writes[:]
    code, out, err = sim.invoke("sriov", "enable", PF, "--vfs", "3", "-o", "json")
    assert code == 0, err
    assert sim.kernel.writes == [(NUMVFS, "3")]
    assert json.loads(out)["vfs"] == FOUR_VFS[:3]


@pytest.mark.parametrize("count, words", [("9", ["8"]), ("0", ["1 to 8"]), ("-1", ["1 to 8"])])
def test_count_out_of_range_is_exit_2_naming_the_limit(sim, count, words):
    code, out, err = sim.invoke("sriov", "enable", PF, "--vfs", count)
    assert code == 2
    assert out == ""
    assert err.startswith("hostdev: error: ") and all(w in err for w in words), err
    assert "sriov_totalvfs 8" in err
    assert sim.kernel.writes == []


def test_not_a_pf_is_exit_2(sim):
    code, out, err = sim.invoke("sriov", "enable", sim.t4, "--vfs", "1")
    assert code == 2 and sim.t4 in err and "sriov_totalvfs" in err
    code, _, err = sim.invoke("sriov", "disable", sim.nic_vf0)
    assert code == 2 and f"a VF of {PF}" in err
    assert sim.kernel.writes == []


def test_pf_without_driver_is_refused_with_exit_3(sim):
    sim.host.write_attr("/sys/bus/pci/drivers/4xxx/unbind", sim.qat)
    assert driver_of(sim, sim.qat) is None
    writes = list(sim.kernel.writes)
    code, out, err = sim.invoke("sriov", "enable", sim.qat, "--vfs", "2", "-o", "json")
    assert code == 3
    assert json.loads(out)["error"] == "RefusedError"
    assert "bind the PF to its driver first" in err
    assert sim.kernel.writes == writes


def test_qat_pf_takes_sixteen_vfs(sim):
    code, out, err = sim.invoke("sriov", "enable", sim.qat, "--vfs", "16", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    # First VF Offset 1, Stride 1 from 0000:6b:00.0: routing IDs 1..16 → 6b:00.1 … 6b:02.0
    assert data["vfs"][0] == "0000:6b:00.1" and data["vfs"][-1] == "0000:6b:02.0" and len(data["vfs"]) == 16


def test_disable_removes_every_vf_and_is_idempotent(sim):
    code, out, err = sim.invoke("sriov", "disable", PF, "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == PLAN_KEYS
    assert data["changed"] is True and data["num_vfs_before"] == 2 and data["num_vfs_after"] == 0
    assert data["vfs"] == []
    assert sim.kernel.writes == [(NUMVFS, "0")]
    h = read_host(sim)
    assert numvfs(sim) == "0"
    assert not h.exists(f"/sys/bus/pci/devices/{sim.nic_vf0}") and not h.exists(f"/sys/bus/pci/devices/{sim.nic_vf1}")
    assert [n for n in h.listdir(f"/sys/bus/pci/devices/{PF}") if n.startswith("virtfn")] == []
    code, out, _ = sim.invoke("sriov", "disable", PF, "-o", "json")
    assert code == 0 and json.loads(out)["changed"] is False and json.loads(out)["actions"] == []
    assert sim.kernel.writes == [(NUMVFS, "0")]


def test_disable_is_refused_while_a_vm_holds_a_vf(sim):
    pid = vm_takes(sim, sim.nic_vf1)
    code, out, err = sim.invoke("sriov", "disable", PF)
    assert code == 3
    assert sim.nic_vf1 in err and f"pid {pid}" in err and "qemu-system-x86" in err
    assert sim.kernel.writes == []
    assert numvfs(sim) == "2" and driver_of(sim, sim.nic_vf1) == "vfio-pci"
    # changing the count removes the VFs too: refused the same way
    code, _, err = sim.invoke("sriov", "enable", PF, "--vfs", "4")
    assert code == 3 and sim.kernel.writes == []
    sim.kernel.release(sim.nic_vf1)
    assert sim.invoke("sriov", "disable", PF)[0] == 0 and numvfs(sim) == "0"


def test_enable_with_bind_and_restore_all(sim):
    code, out, err = sim.invoke("sriov", "enable", PF, "--vfs", "4", "--bind", "vfio-pci", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["changed"] is True and data["vfs"] == FOUR_VFS
    assert [(d["address"], d["from_driver"], d["to_driver"], d["action"]) for d in data["devices"]] == \
        [(vf, "iavf", "vfio-pci", "bind") for vf in FOUR_VFS]
    h = read_host(sim)
    for vf in FOUR_VFS:
        assert driver_of(sim, vf) == "vfio-pci"
        group = h.link_name(f"/sys/bus/pci/devices/{vf}/iommu_group")
        assert h.exists(f"/dev/vfio/{group}")
    assert sorted(journal.Journal.load(h).devices) == FOUR_VFS
    # idempotent with --bind too
    code, out, _ = sim.invoke("sriov", "enable", PF, "--vfs", "4", "--bind", "vfio-pci", "-o", "json")
    assert code == 0 and json.loads(out)["changed"] is False
    code, out, err = sim.invoke("restore", "--all", "-o", "json")
    assert code == 0, err
    assert [d["address"] for d in json.loads(out)["devices"]] == FOUR_VFS
    assert [driver_of(sim, vf) for vf in FOUR_VFS] == ["iavf"] * 4
    assert journal.Journal.load(h).devices == {}


def test_disable_forgets_bound_vfs_so_restore_all_still_works(sim):
    assert sim.invoke("sriov", "enable", PF, "--vfs", "4", "--bind", "vfio-pci")[0] == 0
    code, out, err = sim.invoke("sriov", "disable", PF, "-o", "json")
    assert code == 0, err
    assert any("bindings.json" in a["action"] for a in json.loads(out)["actions"])
    assert journal.Journal.load(read_host(sim)).devices == {}
    code, out, err = sim.invoke("restore", "--all", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["devices"] == []


def test_bind_failure_rolls_the_pf_back(sim):
    # the vfio-pci probe of the last new VF fails: the bind plan undoes its binds, then the
    # enable is undone: back to 2 VFs on iavf, nothing left in the journal
    sim.kernel.fail_probe(FOUR_VFS[3], "vfio-pci", errno.EIO)
    code, out, err = sim.invoke("sriov", "enable", PF, "--vfs", "4", "--bind", "vfio-pci", "-o", "json")
    assert code == 5, err
    assert json.loads(out)["error"] == "OperationFailedError"
    assert "ROLLBACK INCOMPLETE" not in err
    h = read_host(sim)
    assert numvfs(sim) == "2"
    assert sriov.vf_addresses(h, PF) == FOUR_VFS[:2]
    assert [driver_of(sim, vf) for vf in FOUR_VFS[:2]] == ["iavf", "iavf"]
    assert not h.exists(f"/sys/bus/pci/devices/{FOUR_VFS[2]}")
    assert journal.Journal.load(h).devices == {}
    assert numvfs_writes(sim) == ["0", "4", "0", "2"]


@pytest.mark.parametrize("args", [["enable", PF, "--vfs", "4", "--bind", "vfio-pci"], ["disable", PF],
                                  ["enable", PF, "--vfs", "6"]])
def test_dry_run_changes_nothing(sim, args):
    code, out, err = sim.invoke("sriov", *args, "--dry-run", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["dry_run"] is True and data["changed"] is True
    assert data["vfs"] == [] and data["devices"] == []
    assert sim.kernel.writes == [] and sim.kernel.commands == []
    assert numvfs(sim) == "2"
    if "--bind" in args:
        assert data["actions"][-1]["action"].startswith("bind every VF of 0000:31:00.0 to vfio-pci")


def test_table_output_goes_to_stdout_and_notes_to_stderr(sim):
    code, out, err = sim.invoke("sriov", "enable", PF, "--vfs", "3", "--dry-run")
    assert code == 0
    assert out.splitlines()[0].split() == ["DEVICE", "ROLE", "FROM", "TO", "CHANGED"]
    assert PF in out and "2 VFs" in out and "3 VFs" in out
    assert "would: write 0 to" in err and "note: " in err
    assert "would:" not in out


# ---------------------------------------------------------------- domain
def test_domain_plan_enable_and_disable(sim):
    h = sim.host
    with pytest.raises(UsageError, match="supports 1 to 8"):
        sriov.plan_enable(h, PF, 9)
    plan = sriov.plan_enable(h, PF, 1)
    assert [a["action"].split(" ")[:2] for a in plan.plan.describe()][:2] == [["write", "0"], ["write", "1"]]
    plan.apply(h)
    assert plan.vfs == FOUR_VFS[:1] and sriov.read_num_vfs(h, PF) == 1
    vm_takes(sim, FOUR_VFS[0])
    with pytest.raises(RefusedError, match="in use"):
        sriov.plan_disable(h, PF)


def test_wait_for_vfs_gives_up_after_its_timeout(sim):
    wait = sriov._wait_for_vfs(PF, 3, timeout=0.2)
    with pytest.raises(binding.VerifyError, match="sriov_numvfs reads 2 and 2 virtfn"):
        wait(sim.host)
    sriov._wait_for_vfs(PF, 2, timeout=0)(sim.host)


def test_a_failed_count_write_rolls_back_to_the_old_count(sim, monkeypatch):
    # a PF driver that refuses the new count (ice: -ENOSPC without MSI-X vectors): 0 was already
    # written, so the rollback must give back the 2 VFs
    real_write = sim.kernel.write

    def refuse_four(path, value):
        if path == NUMVFS and value == "4":
            sim.kernel.writes.append((path, value))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(path, value)

    monkeypatch.setattr(sim.kernel, "write", refuse_four)
    with pytest.raises(OperationFailedError, match="ENOSPC"):
        sriov.plan_enable(sim.host, PF, 4).apply(sim.host)
    assert numvfs_writes(sim) == ["0", "4", "2"]
    assert sriov.vf_addresses(sim.host, PF) == FOUR_VFS[:2]
