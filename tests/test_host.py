import contextlib
import os

import pytest

from hostdev.errors import (
    CommandError,
    ConfigWriteError,
    HostEnvironmentError,
    OutsideRootError,
    SysfsWriteError,
    UsageError,
)
from hostdev.host import Host


def test_paths_join_under_the_root_never_by_prefix(tmp_path):
    host = Host(str(tmp_path))
    assert host.path("/sys/bus/pci") == os.path.join(str(tmp_path), "sys/bus/pci")
    assert host.path(str(tmp_path) + "/sys") == os.path.join(str(tmp_path), str(tmp_path).lstrip("/"), "sys")
    with pytest.raises(OutsideRootError):
        host.path("/sys/../../etc/shadow")


@pytest.mark.parametrize("links_read_once", [False, True])
def test_resolve_keeps_links_inside_the_root(tmp_path, links_read_once):
    (tmp_path / "sys/devices/pci0000:00/0000:00:01.0").mkdir(parents=True)
    (tmp_path / "sys/bus/pci/devices").mkdir(parents=True)
    os.symlink("../../../devices/pci0000:00/0000:00:01.0", tmp_path / "sys/bus/pci/devices/0000:00:01.0")
    os.symlink("/etc", tmp_path / "sys/absolute")                 # absolute: restarts at the root
    os.symlink("../../../../../../../../..", tmp_path / "sys/up")   # climbing stops at the root
    os.symlink("loop", tmp_path / "loop")
    (tmp_path / "sys/d1/d2").mkdir(parents=True)
    os.symlink("d1/d2", tmp_path / "sys/l2")
    os.symlink("l2/../x", tmp_path / "sys/odd")  # .. after a link goes up from where the link leads
    host = Host(str(tmp_path))
    with host.links_unchanged() if links_read_once else contextlib.nullcontext():
        for _ in range(2):  # the second time from what the first remembered
            assert host.resolve("/sys/bus/pci/devices/0000:00:01.0") == "/sys/devices/pci0000:00/0000:00:01.0"
            assert host.resolve("/sys/absolute/passwd") == "/etc/passwd"
            assert host.resolve("/sys/up/etc") == "/etc"
            assert host.resolve("/sys/odd") == "/sys/d1/x"
            with pytest.raises(OutsideRootError):
                host.resolve("/loop/x")


def test_a_scan_reads_each_shared_link_prefix_once(tmp_path, monkeypatch):
    from hostdev import host as host_module

    for name in ("0000:00:01.0", "0000:00:02.0"):
        (tmp_path / "sys/devices/pci0000:00" / name).mkdir(parents=True)
        (tmp_path / "sys/bus/pci/devices").mkdir(parents=True, exist_ok=True)
        os.symlink(f"../../../devices/pci0000:00/{name}", tmp_path / "sys/bus/pci/devices" / name)
    looked_up = []
    real_readlink = host_module._readlink
    monkeypatch.setattr(host_module, "_readlink", lambda p: looked_up.append(p) or real_readlink(p))
    host = Host(str(tmp_path))
    with host.links_unchanged():
        host.resolve("/sys/bus/pci/devices/0000:00:01.0")
        host.resolve("/sys/bus/pci/devices/0000:00:02.0")
    # first: sys bus pci devices 0000:00:01.0, then (after ../../..) sys/devices, pci0000:00,
    # 0000:00:01.0 = 8; second: only its own link and its own directory are new = 2
    assert len(looked_up) == 10 and len(set(looked_up)) == 10
    looked_up.clear()
    host.resolve("/sys/bus/pci/devices/0000:00:01.0")  # outside: nothing remembered
    assert len(looked_up) == 8


def test_scan_attrs_reads_values_links_and_entries(tmp_path):
    d = tmp_path / "sys/x"
    d.mkdir(parents=True)
    (d / "vendor").write_text("0x10de\n")
    os.symlink("../../bus/pci/drivers/vfio-pci", d / "driver")
    (d / "mdev_supported_types").mkdir()
    values, links, entries = Host(str(tmp_path)).scan_attrs("/sys/x", ["vendor", "missing"], ["driver", "nolink"],
                                                            ["mdev_supported_types", "nothing"])
    assert values == {"vendor": "0x10de", "missing": None}
    assert links == {"driver": "vfio-pci", "nolink": None}
    assert entries == {"mdev_supported_types": True, "nothing": False}


def test_a_links_directory_is_worked_out_without_a_readlink_of_its_own(tmp_path):
    """Inside links_unchanged, _dir_path_unchecked answers a link's directory from the link's
    target alone (checked False: the caller opens it with O_NOFOLLOW), the listing's saving of one
    failing readlink a function; a directory that is no link is answered as checked."""
    (tmp_path / "sys/devices/pci0000:00/0000:00:01.0").mkdir(parents=True)
    (tmp_path / "top").mkdir()
    (tmp_path / "sys/bus").mkdir(parents=True)
    os.symlink("../devices/pci0000:00/0000:00:01.0", tmp_path / "sys/bus/fn")  # relative
    os.symlink("/sys/devices/pci0000:00", tmp_path / "sys/bus/abs")             # absolute: from the root
    os.symlink("../../top", tmp_path / "sys/bus/top")                          # a directory right under the root
    host = Host(str(tmp_path))
    root = str(tmp_path)
    with host.links_unchanged():
        for _ in range(2):  # worked out, then remembered
            assert host._dir_path_unchecked("/sys/bus/fn") == (f"{root}/sys/devices/pci0000:00/0000:00:01.0", False)
            assert host._dir_path_unchecked("/sys/bus/abs") == (f"{root}/sys/devices/pci0000:00", False)
            assert host._dir_path_unchecked("/sys/bus/top") == (f"{root}/top", False)
            assert host._dir_path_unchecked("/sys/devices/pci0000:00") == (f"{root}/sys/devices/pci0000:00", True)
    assert host._dir_path_unchecked("/sys/bus/fn") == (f"{root}/sys/devices/pci0000:00/0000:00:01.0", True)


def test_scan_dirs_answers_every_directory_in_order_a_missing_one_included(tmp_path):
    """A directory that is not there is None in its place; the ones after it are still read
    (a device that went away in the middle of a listing hides none of the others)."""
    for name, value in (("a", "1"), ("c", "3")):
        (tmp_path / "sys" / name).mkdir(parents=True)
        (tmp_path / "sys" / name / "value").write_text(value + "\n")
    host = Host(str(tmp_path))
    for scan in (host.scan_dirs, lambda *args: _inside_links_unchanged(host, *args)):
        assert scan(["/sys/a", "/sys/b", "/sys/c", "/sys/b"], ["value"]) == [["1"], None, ["3"], None]


def _inside_links_unchanged(host, *args):
    with host.links_unchanged():
        return host.scan_dirs(*args)


def test_scan_dirs_takes_descriptor_0_for_a_directory_when_stdin_is_closed(tmp_path):
    """With standard input closed (a daemon's child, ``<&-``) open() can give descriptor 0: a
    directory opened there is read, not taken for one that is not there."""
    (tmp_path / "sys/a").mkdir(parents=True)
    (tmp_path / "sys/a/value").write_text("1\n")
    os.symlink("a", tmp_path / "sys/link")  # inside links_unchanged: opened unchecked, O_NOFOLLOW
    host = Host(str(tmp_path))
    saved = os.dup(0)
    rows, leaked = [], []
    try:
        os.close(0)
        for path in ("/sys/a", "/sys/link"):
            rows.append(host.scan_dirs([path], ["value"]))
            with host.links_unchanged():
                rows.append(host.scan_dirs([path], ["value"]))
            try:  # closed again: no descriptor left open
                os.fstat(0)
                leaked.append(path)
                os.close(0)
            except OSError:
                pass
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    assert rows == [[["1"]]] * 4 and leaked == []


def test_the_scan_opens_each_links_own_directory_however_alike_the_links_are(tmp_path):
    """Inside links_unchanged, scan_dirs works out once the directory that links of one directory
    with targets that start alike lead into: links whose targets differ only before the name, or
    links alike in different directories, each reach their own ``X`` (all four are there, so a
    mix-up would read a neighbour's value, not fail and be retried)."""
    for where, value in (("t1/X", "1"), ("t2/X", "2"), ("h2/t1/X", "3"), ("t1/Y", "4")):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "value").write_text(value + "\n")
    (tmp_path / "h1").mkdir()
    os.symlink("../t1/X", tmp_path / "h1/a")   # → /t1/X
    os.symlink("../t2/X", tmp_path / "h1/b")   # same name, other directory → /t2/X
    os.symlink("../t1/Y", tmp_path / "h1/c")   # same directory as a, other name → /t1/Y
    (tmp_path / "h2/sub").mkdir(parents=True)
    os.symlink("../t1/X", tmp_path / "h2/sub/a")  # a's very target, from elsewhere → /h2/t1/X
    # the name is all that follows the target's last "/": t1/Yz, not t1/Y/z (there too)
    for where, value in (("t1/Yz", "5"), ("t1/Y/z", "6")):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "value").write_text(value + "\n")
    os.symlink("../t1/Yz", tmp_path / "h1/d")
    paths = ["/h1/a", "/h1/b", "/h1/c", "/h2/sub/a", "/h1/d"]
    expected = {"/h1/a": ["1"], "/h1/b": ["2"], "/h1/c": ["4"], "/h2/sub/a": ["3"], "/h1/d": ["5"]}
    host = Host(str(tmp_path))
    assert dict(zip(paths, host.scan_dirs(paths, ["value"]))) == expected  # each path walked
    for order in (paths, paths[::-1]):
        with host.links_unchanged():
            rows = host.scan_dirs(order, ["value"])
        assert dict(zip(order, rows)) == expected


def test_write_file_is_atomic_keeps_a_backup_and_skips_unchanged(tmp_path):
    host = Host(str(tmp_path))
    (tmp_path / "etc/default").mkdir(parents=True)
    grub = tmp_path / "etc/default/grub"
    grub.write_text("OLD\n")
    os.chmod(grub, 0o600)
    assert host.write_file("/etc/default/grub", "NEW\n") is True
    assert grub.read_text() == "NEW\n"
    assert (tmp_path / "etc/default/grub.hostdev.bak").read_text() == "OLD\n"
    assert oct(grub.stat().st_mode & 0o777) == "0o600"
    assert host.write_file("/etc/default/grub", "NEW\n") is False
    assert sorted(os.listdir(tmp_path / "etc/default")) == ["grub", "grub.hostdev.bak"]   # no temp files left


def test_write_bytes_writes_once_with_mode_0644_into_new_or_existing_directories(tmp_path):
    """Host.write_bytes (the guest's initramfs and kernel, vm test): a new file is 0644 (chmod'ed,
    umask aside), the same bytes again are not written (False, the same inode), a directory that
    exists already is used, and a failure is a ConfigWriteError naming the host path and the
    reason."""
    host = Host(str(tmp_path))
    data = bytes(range(256))
    assert host.write_bytes("/var/lib/hostdev/vmtest/initrd", data) is True
    blob = tmp_path / "var/lib/hostdev/vmtest/initrd"
    assert blob.read_bytes() == data and blob.stat().st_mode & 0o7777 == 0o644
    inode = blob.stat().st_ino
    assert host.write_bytes("/var/lib/hostdev/vmtest/initrd", data) is False
    assert blob.stat().st_ino == inode
    assert host.write_bytes("/var/lib/hostdev/vmtest/kernel", b"\x7fELF", mode=0o600) is True
    assert (tmp_path / "var/lib/hostdev/vmtest/kernel").stat().st_mode & 0o7777 == 0o600
    (tmp_path / "var/lib/file").write_text("not a directory\n")
    with pytest.raises(ConfigWriteError) as info:
        host.write_bytes("/var/lib/file/initrd", data)
    assert info.value.message == "cannot write /var/lib/file/initrd: File exists"  # makedirs on the file
    assert info.value.path == "/var/lib/file/initrd"


def test_write_bytes_to_a_recording_is_refused_naming_what_it_would_write(tmp_path):
    host = Host(str(tmp_path))
    host.recording = "/srv/host1.hostdev.tar.gz"
    with pytest.raises(UsageError) as info:
        host.write_bytes("/var/lib/hostdev/vmtest/initrd", b"x")
    assert str(info.value).startswith("writing /var/lib/hostdev/vmtest/initrd: --root /srv/host1.hostdev.tar.gz "
                                      "is a recording")
    assert not (tmp_path / "var").exists()


def test_a_host_shows_its_root_and_whether_its_kernel_is_simulated(tmp_path):
    assert repr(Host(str(tmp_path))) == f"Host(root={str(tmp_path)!r})"
    assert repr(Host(str(tmp_path), kernel=object())) == f"Host(root={str(tmp_path)!r}, simulated)"


def test_write_attr_reports_path_value_and_errno(tmp_path):
    host = Host(str(tmp_path))
    with pytest.raises(SysfsWriteError) as info:
        host.write_attr("/sys/bus/pci/drivers/vfio-pci/bind", "0000:00:10.0")
    assert info.value.errno == 2 and info.value.path == "/sys/bus/pci/drivers/vfio-pci/bind"
    assert "ENOENT" in str(info.value) and "0000:00:10.0" in str(info.value)


def test_commands_for_a_fake_root_are_refused_without_a_simulated_kernel(tmp_path):
    with pytest.raises(HostEnvironmentError, match="would act on this machine"):
        Host(str(tmp_path)).run(["modprobe", "vfio-pci"])


def test_live_host_mutation_is_refused_under_the_test_suite(monkeypatch):
    monkeypatch.setenv("HOSTDEV_TEST_GUARD", "1")
    live = Host("/")
    assert live.is_live
    with pytest.raises(HostEnvironmentError, match="test suite"):
        live.write_attr("/sys/bus/pci/drivers_probe", "0000:00:00.0")
    with pytest.raises(HostEnvironmentError):
        live.write_file("/etc/hostdev-should-never-exist", "x")
    assert not os.path.exists("/etc/hostdev-should-never-exist")


def test_live_host_mutation_needs_root(monkeypatch):
    monkeypatch.delenv("HOSTDEV_TEST_GUARD", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(HostEnvironmentError, match="needs root") as info:
        Host("/").require_mutable("hostdev bind")
    assert info.value.exit_code == 4


def test_read_only_commands_report_missing_programs_and_failures(tmp_path):
    host = Host(str(tmp_path))
    with pytest.raises(CommandError) as info:
        host.run(["hostdev-no-such-program"], mutating=False)
    assert info.value.rc is None and info.value.exit_code == 4
    with pytest.raises(CommandError) as info:
        host.run(["sh", "-c", "echo oops >&2; exit 3"], mutating=False)
    assert info.value.rc == 3 and info.value.stderr == "oops\n" and "exited 3: oops" in str(info.value)
    assert host.run(["sh", "-c", "echo $LC_ALL"], mutating=False).stdout == "C\n"


def test_lock_excludes_a_second_holder_and_is_released(tmp_path):
    import subprocess
    import sys

    host = Host(str(tmp_path))
    with host.lock():
        assert (tmp_path / "run/hostdev/lock").read_text() == f"{os.getpid():>10}\n"
        # another process (flock is per open file) cannot take it
        code = ("from hostdev.host import Host; from hostdev.errors import HostEnvironmentError\n"
                f"try:\n    Host({str(tmp_path)!r}).lock(timeout=0.3).__enter__()\n"
                "except HostEnvironmentError as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        assert "another hostdev is changing this host" in out
    with host.lock(timeout=0.3):
        pass


def test_plan_reports_each_step_before_it_runs(tmp_path):
    from hostdev.plan import Plan

    ran, seen = [], []
    plan = Plan()
    for name in ("a", "b", "c"):
        plan.add(name, lambda h, n=name: ran.append(n))
    plan.apply(Host(str(tmp_path)), lambda i, total, action: seen.append((i, total, action.description, list(ran))))
    assert seen == [(0, 3, "a", []), (1, 3, "b", ["a"]), (2, 3, "c", ["a", "b"])]


def test_commands_find_sbin_tools_even_from_a_narrow_path(monkeypatch):
    # Ansible's shell: or sudo's secure_path may drop /usr/sbin (update-grub, grubby, modprobe)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    out = Host("/").run(["sh", "-c", 'printf %s "$PATH"'], mutating=False).stdout
    assert out.split(":")[:2] == ["/usr/bin", "/bin"] and "/usr/sbin" in out.split(":") and "/sbin" in out.split(":")


def test_the_directories_a_write_makes_are_0755_whatever_the_umask(tmp_path):
    """write_file, write_bytes and symlink make the missing directories above the file, every
    one 0755 (os.makedirs made all but the last 0777, world-writable under a umask of 0)."""
    root = tmp_path / "root"
    root.mkdir()
    host = Host(str(root))
    old_umask = os.umask(0)
    try:
        host.write_file("/etc/a/b/c.conf", "x\n")
        host.write_bytes("/var/lib/d/e/f.bin", b"x")
        host.symlink("/dev/null", "/etc/g/h/i.service")
    finally:
        os.umask(old_umask)
    for directory in ("etc", "etc/a", "etc/a/b", "var", "var/lib", "var/lib/d", "var/lib/d/e", "etc/g", "etc/g/h"):
        assert (root / directory).stat().st_mode & 0o7777 == 0o755, directory
    assert (root / "etc/a/b/c.conf").read_text() == "x\n" and os.readlink(root / "etc/g/h/i.service") == "/dev/null"
