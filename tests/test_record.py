"""hostdev record FILE and --root FILE: a host recorded into one archive answers as the host did;
a recording is read-only; a bad archive is one line and exit 2."""
import io
import json
import os
import tarfile

import pytest
from typer.testing import CliRunner

from hostdev import recording
from hostdev.cli.app import app
from tests.fakesys import sandbox

runner = CliRunner()


def hostdev(*args):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def box(tmp_path):
    """The sandbox's host (docs/getting-started.md: intel_host_t4 with the vGPU T4 and pci.ids)."""
    root = str(tmp_path / "box")
    sandbox.build_host(root)
    return root


READ_ONLY_COMMANDS = [["devices"], ["devices", "show", "0000:17:00.0"], ["check"], ["iommu", "groups"],
                      ["mdev", "types"], ["mdev", "list"], ["modules"], ["bindings"], ["kubevirt", "permitted"],
                      ["inventory", "-o", "json", "--hostname", "node1"], ["sriov"],
                      ["iommu", "enable", "--passthrough", "--dry-run"],
                      ["bind", "0000:17:00.0", "--dry-run", "-o", "json"]]


def test_a_recording_of_the_sandbox_answers_as_the_sandbox(box, tmp_path):
    archive = str(tmp_path / "box.tgz")
    code, out, err = hostdev("--root", box, "record", archive, "-o", "json")
    assert code == 0, err
    summary = json.loads(out)
    # intel_host_t4: 17 PCI functions (scenarios.py: 15 at boot + 2 E810 VFs)
    assert summary["functions"] == 17 and summary["file"] == archive and summary["bytes"] == os.path.getsize(archive)
    for argv in READ_ONLY_COMMANDS:
        expected = hostdev("--root", box, *argv)
        got = hostdev("--root", archive, *argv)
        assert got == expected, argv
    # what the recording holds: pci.ids (names), the GRUB file, the mdev types, the tools' presence
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    for member in ("hostdev-recording.json", "root/usr/share/misc/pci.ids", "root/etc/default/grub",
                   "root/proc/cmdline", "root/usr/sbin/update-grub",
                   "root/sys/bus/pci/devices/0000:65:00.0"):
        assert member in names, member
    assert not any("/config" == n[-7:] for n in names)  # never a PCI config space


def test_a_recording_is_read_only_and_dry_runs_still_plan(box, tmp_path):
    archive = str(tmp_path / "box.tgz")
    assert hostdev("--root", box, "record", archive)[0] == 0
    before = open(archive, "rb").read()
    code, out, err = hostdev("--root", archive, "bind", "0000:17:00.0")
    assert code == 2
    assert err.count("\n") == 1 and "is a recording, which hostdev only reads" in err and "--dry-run" in err
    for argv in (["iommu", "enable", "--passthrough"], ["modules", "load", "--persist"],
                 ["mdev", "create", "--parent", "0000:65:00.0", "--type", "nvidia-226"]):
        code, _, err = hostdev("--root", archive, *argv)
        assert code == 2 and "is a recording" in err, (argv, err)
    assert open(archive, "rb").read() == before
    code, out, _ = hostdev("--root", archive, "bind", "0000:17:00.0", "--dry-run", "-o", "json")
    assert code == 0 and json.loads(out)["dry_run"] is True


def test_record_refuses_an_existing_file_and_proc(box, tmp_path):
    existing = tmp_path / "x.tgz"
    existing.write_text("mine")
    code, _, err = hostdev("--root", box, "record", str(existing))
    assert code == 2 and "exists" in err and existing.read_text() == "mine"
    code, _, err = hostdev("--root", box, "record", "/proc/x.tgz")
    assert code == 2 and "refusing to write a recording into /proc" in err


def test_this_machine_recorded_read_only_opens_as_itself(tmp_path):
    """Reads this machine's /sys and /proc only (listdir, readlink, small reads)."""
    archive = str(tmp_path / "here.tgz")
    code, out, err = hostdev("record", archive, "-o", "json")
    assert code == 0, err
    live = json.loads(hostdev("devices", "-o", "json")[1])
    recorded = json.loads(hostdev("--root", archive, "devices", "-o", "json")[1])
    keys = ("address", "vendor_id", "device_id", "class_id", "driver", "iommu_group")

    def facts(data):
        return [{k: d.get(k) for k in keys} for d in data["devices"]]

    assert facts(recorded) == facts(live) and len(facts(live)) == json.loads(out)["functions"]
    assert hostdev("--root", archive, "check")[1] == hostdev("check")[1]


def _archive(path, members, manifest=True):
    """A tar.gz of (name, kind, payload) members: file (bytes), dir, symlink (target), hardlink, fifo."""
    with tarfile.open(path, "w:gz") as tar:
        if manifest:
            info = tarfile.TarInfo(recording.MANIFEST)
            data = b'{"format": 1}\n'
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE, "chardev": tarfile.CHRTYPE}[kind]
            info.linkname = payload or ""
            tar.addfile(info)
    return path


BAD = {
    "dotdot": ([("root/../../etc/cron.d/x", "file", b"x")], "outside the recorded root"),
    "absolute": ([("/etc/cron.d/x", "file", b"x")], "outside the recorded root"),
    "not under root/": ([("etc/cron.d/x", "file", b"x")], "outside the recorded root"),
    "absolute link": ([("root/sys/x", "symlink", "/etc/shadow")], "only relative links are recorded"),
    "escaping link": ([("root/sys/x", "symlink", "../../../etc/shadow")], "points outside the recorded root"),
    "hard link": ([("root/sys/a", "file", b"a"), ("root/sys/x", "hardlink", "root/sys/a")], "is a hard link"),
    "fifo": ([("root/sys/x", "fifo", None)], "is a device or fifo"),
    "device": ([("root/dev/sda", "chardev", None)], "is a device or fifo"),
    "too large": ([("root/sys/big", "file", b"\0" * (recording.MAX_MEMBER_BYTES + 1))], "more than the 16777216 bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_archive_is_one_line_and_exit_2_and_unpacks_nothing(case, tmp_path, monkeypatch):
    members, why = BAD[case]
    archive = _archive(str(tmp_path / "bad.tgz"), members)
    unpacked = []
    real_mkdtemp = __import__("tempfile").mkdtemp

    def mkdtemp(**kwargs):
        unpacked.append(real_mkdtemp(dir=str(tmp_path), **kwargs))
        return unpacked[-1]

    monkeypatch.setattr("tempfile.mkdtemp", mkdtemp)
    code, out, err = hostdev("--root", archive, "devices")
    assert code == 2, (case, err)
    assert err.count("\n") == 1 and err.startswith(f"hostdev: error: --root {archive}: ") and why in err, err
    assert out == ""
    assert all(os.listdir(d) == [] for d in unpacked)  # refused before anything was written


def test_not_a_recording(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    code, _, err = hostdev("--root", str(text), "devices")
    assert code == 2 and "not a hostdev recording" in err and err.count("\n") == 1
    plain = _archive(str(tmp_path / "plain.tgz"), [("root/sys/x", "file", b"1")], manifest=False)
    code, _, err = hostdev("--root", plain, "devices")
    assert code == 2 and "no hostdev-recording.json" in err


def test_too_many_members_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "MAX_MEMBERS", 3)
    archive = _archive(str(tmp_path / "many.tgz"), [(f"root/sys/{i}", "file", b"1") for i in range(5)])
    code, _, err = hostdev("--root", archive, "devices")
    assert code == 2 and "more than 3 members" in err


def test_a_recording_keeps_existing_mdevs_and_the_amd_iommu(tmp_path):
    """amd_host: IVRS, the IOMMU's own PCI function in no group, a T4 vGPU parent with one vGPU
    on nvidia-vgpu-vfio in group 8 (scenarios.py) — the mdev instance's links are recorded too."""
    from tests.fakesys import scenarios

    info = scenarios.amd_host(str(tmp_path / "amd"))
    archive = str(tmp_path / "amd.tgz")
    assert hostdev("--root", info.root, "record", archive)[0] == 0
    for argv in (["mdev", "list", "-o", "json"], ["mdev", "types"], ["iommu", "groups"], ["check"],
                 ["kubevirt", "permitted"], ["devices", "show", "0000:41:00.0"]):
        # the same answer; only the pci.ids note (amd_host has none) names where it looked
        code, out, err = hostdev("--root", archive, *argv)
        assert (code, out) == hostdev("--root", info.root, *argv)[:2], argv
        assert "under --root" not in err and "/tmp/hostdev-recording-" not in err, argv
    note = hostdev("--root", archive, "iommu", "groups")[2]
    assert f"note: no pci.ids in the recording {archive} " in note and "--pci-ids FILE" in note
    mdevs = json.loads(hostdev("--root", archive, "mdev", "list", "-o", "json")[1])["mdevs"]
    assert [(m["uuid"], m["type_id"], m["iommu_group"], m["driver"]) for m in mdevs] == [
        (scenarios.EXISTING_VGPU_UUID, "nvidia-222", 8, "nvidia-vgpu-vfio")]


# ---------------------------------------------------------------- host.write_archive, host.unpack_archive
# The two archive primitives on their own: what the recording's unpacked tree holds (modes, links,
# the manifest), in what order members are written, what the bounded checks are told, and each
# error's text and fix (docs/json.md: Ansible reads both).
FIX = "give a file made by 'hostdev record', or a directory"


def _unpack(source, dest, totals=None, checked=None):
    """host.unpack_archive with the manifest as recording.MANIFEST and every other member under root/."""
    from hostdev.host import unpack_archive

    def check_member(name, kind, size, target):
        if checked is not None:
            checked.append((name, kind, size, target))
        return None if name == recording.MANIFEST else "/" + name.split("/", 1)[1]

    def check_totals(count, total):
        if totals is not None:
            totals.append((count, total))

    return unpack_archive(str(source), str(dest), check_member, check_totals, recording.MANIFEST)


def _usage_error(source, dest):
    from hostdev.errors import UsageError

    with pytest.raises(UsageError) as caught:
        _unpack(source, dest)
    return caught.value


def test_write_archive_writes_root_owned_pax_members_and_returns_its_size(tmp_path):
    from hostdev.host import write_archive

    path = tmp_path / "out.tgz"
    size = write_archive(str(path), [
        (recording.MANIFEST, recording.Member("file", b'{"format": 1}\n', mode=0o644)),
        ("root/sys", recording.Member("dir", mode=0o755)),
        ("root/sys/a", recording.Member("file", b"x" * 10, mode=0o600)),
        ("root/sys/l", recording.Member("link", target="a", mode=0o777)),
    ])
    assert size == path.stat().st_size > 0
    with open(path, "rb") as raw:
        assert raw.read(2) == b"\x1f\x8b"  # gzip
    with tarfile.open(path) as tar:
        assert tar.format == tarfile.PAX_FORMAT
        members = {m.name: m for m in tar.getmembers()}
        assert list(members) == [recording.MANIFEST, "root/sys", "root/sys/a", "root/sys/l"]
        # whoever records, the archive names no local user
        assert {(m.uname, m.gname, m.uid, m.gid) for m in members.values()} == {("root", "root", 0, 0)}
        assert members["root/sys"].isdir() and members["root/sys"].mode == 0o755
        assert members["root/sys/a"].isreg() and members["root/sys/a"].mode == 0o600
        assert tar.extractfile("root/sys/a").read() == b"x" * 10
        assert members["root/sys/l"].issym() and members["root/sys/l"].linkname == "a"


def test_write_archive_leaves_no_half_written_file_and_refuses_an_existing_one(tmp_path):
    from hostdev.host import write_archive

    def entries():
        yield "root/sys/a", recording.Member("file", b"1", mode=0o644)
        raise KeyboardInterrupt  # Ctrl-C half way

    path = tmp_path / "out.tgz"
    with pytest.raises(KeyboardInterrupt):
        write_archive(str(path), entries())
    assert not path.exists()
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        write_archive(str(path), [])
    assert path.read_bytes() == b"mine"


def test_unpack_archive_makes_the_tree_with_safe_modes_and_returns_the_manifest(tmp_path, monkeypatch):
    source = tmp_path / "rec.tar"
    with tarfile.open(source, "w") as tar:
        # a directory after what is in it (another tool's order), a name starting with X
        for name, kind, mode, data in [("root/sys/deep/a", "file", 0o4755, b"a"), ("root/sys", "dir", 0o700, None),
                                       ("root/sys/b", "file", 0o640, b"bb"), ("root/sys/c", "file", 0o777, b""),
                                       ("root/X", "dir", 0o755, None), ("root/X/XX", "file", 0o644, b"X"),
                                       (recording.MANIFEST, "file", 0o644, b'{"format": 1}\n')]:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    dest = tmp_path / "out"
    dest.mkdir()
    old_umask = os.umask(0)  # hostdev's own modes, whatever the caller's umask lets through
    try:
        assert _unpack(source, dest) == b'{"format": 1}\n'  # the manifest last in the archive is read too
    finally:
        os.umask(old_umask)

    def mode(rel):
        return (dest / rel).stat().st_mode & 0o7777

    # directories 0755 (the archive's 0700 is not taken); files keep their permission bits, never
    # set-id or group/other write: & 0755
    assert (mode("sys"), mode("sys/deep"), mode("sys/deep/a"), mode("sys/b"), mode("sys/c")) == (
        0o755, 0o755, 0o755, 0o640, 0o755)
    assert (dest / "sys/b").read_bytes() == b"bb" and (dest / "sys/deep/a").read_bytes() == b"a"
    assert (dest / "X/XX").read_bytes() == b"X"
    assert sorted(os.listdir(dest)) == ["X", "sys"]  # the manifest is returned, not unpacked


def test_unpack_archive_tells_the_checks_each_member_and_the_running_totals(tmp_path):
    source = _archive(str(tmp_path / "rec.tgz"), [("root/sys", "dir", None), ("root/sys/a", "file", b"123"),
                                                  ("root/sys/l", "symlink", "a"), ("root/sys/b", "file", b"45678")])
    dest = tmp_path / "out"
    dest.mkdir()
    checked, totals = [], []
    _unpack(source, dest, totals, checked)
    assert checked == [(recording.MANIFEST, "file", 14, ""), ("root/sys", "dir", 0, ""),
                       ("root/sys/a", "file", 3, ""), ("root/sys/l", "link", 0, "a"),
                       ("root/sys/b", "file", 5, "")]
    assert totals == [(1, 14), (2, 14), (3, 17), (4, 17), (5, 22)]
    assert os.readlink(dest / "sys/l") == "a" and (dest / "sys/l").read_bytes() == b"123"


def test_unpack_archive_makes_links_last_so_nothing_is_written_through_one(tmp_path):
    """A link first in the archive and a file under the link's name after it: written in archive
    order, the file would land in the link's target (root/sys/d/f). Links come last, so the file
    makes a real directory and the link then finds its name taken: refused, nothing in d."""
    source = _archive(str(tmp_path / "rec.tgz"), [("root/sys/d", "dir", None), ("root/sys/l", "symlink", "d"),
                                                  ("root/sys/l/f", "file", b"x")])
    dest = tmp_path / "out"
    dest.mkdir()
    error = _usage_error(source, dest)
    assert error.message == f"--root {source}: cannot unpack it (File exists)" and error.fix == FIX
    assert os.listdir(dest / "sys/d") == [] and not (dest / "sys/l").is_symlink()
    assert (dest / "sys/l/f").read_bytes() == b"x"


def test_unpack_archive_errors_name_the_file_and_what_is_wrong_with_one_fix(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    missing = tmp_path / "none.tgz"
    plain = _archive(str(tmp_path / "plain.tgz"), [("root/sys/x", "file", b"1")], manifest=False)
    good = _archive(str(tmp_path / "good.tgz"), [("root/sys/x", "file", b"1" * 4000)])
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(open(good, "rb").read()[:-30])
    cases = [
        (text, "not a hostdev recording (not a tar archive)"),
        (missing, "cannot read it (No such file or directory)"),
        (plain, f"not a hostdev recording (no {recording.MANIFEST})"),
    ]
    for source, problem in cases:
        error = _usage_error(source, dest)
        assert (error.message, error.fix, error.exit_code) == (f"--root {source}: {problem}", FIX, 2), source
    error = _usage_error(truncated, dest)
    assert error.message.startswith(f"--root {truncated}: a damaged archive (") and error.fix == FIX
    assert os.listdir(dest) == []  # every refusal comes before anything is written
    # an uncompressed archive cut inside its last member: refused while the headers are read
    cut = tmp_path / "cut.tar"
    with tarfile.open(cut, "w") as tar:
        for name, data in ((recording.MANIFEST, b"{}"), ("root/sys/x", b"1" * 4000)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cut.write_bytes(cut.read_bytes()[:512 * 4 + 100])
    error = _usage_error(cut, dest)
    assert error.message == f"--root {cut}: a damaged archive (unexpected end of data)" and error.fix == FIX
    exists = _archive(str(tmp_path / "twice.tgz"), [("root/sys/x", "file", b"1"), ("root/sys/x", "file", b"2")])
    error = _usage_error(exists, dest)
    assert error.message == f"--root {exists}: cannot unpack it (File exists)" and error.fix == FIX
