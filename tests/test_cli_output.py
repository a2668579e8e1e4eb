"""Human output on a terminal (a pseudo-terminal, as a user's shell gives hostdev) and in pipes:
tables that fit the width without cutting what one copies, the same headers everywhere, the
status column coloured unless NO_COLOR (https://no-color.org), and no colour codes in pipes."""
import os
import pty
import re
import select
import subprocess
import sys

import pytest

from tests.fakesys import scenarios

from .test_pciids import SAMPLE

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_tty(*args, columns=80, env=None):
    """hostdev with stdout and stderr on two pseudo-terminals COLUMNS wide: (rc, stdout, stderr),
    colour codes kept, line ends as a program writes them."""
    ptys = [pty.openpty(), pty.openpty()]
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    environ.update({"TERM": "xterm-256color", "COLUMNS": str(columns)})
    environ.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "hostdev", *args], stdin=subprocess.DEVNULL,
                            stdout=ptys[0][1], stderr=ptys[1][1], env=environ)
    for _, follower in ptys:
        os.close(follower)
    data = {leader: b"" for leader, _ in ptys}
    waiting = set(data)
    while waiting:
        ready, _, _ = select.select(list(waiting), [], [], 60)
        assert ready, "hostdev wrote nothing for 60 s"
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:     # EIO: the child closed its end
                chunk = b""
            if chunk:
                data[fd] += chunk
            else:
                waiting.discard(fd)
                os.close(fd)
    proc.wait(timeout=60)
    out, err = (data[leader].decode().replace("\r\n", "\n") for leader, _ in ptys)
    return proc.returncode, out, err


def run_pipe(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hostdev", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def intel(tmp_path_factory):
    return scenarios.intel_host_t4(str(tmp_path_factory.mktemp("intel") / "root"))


@pytest.fixture(scope="module")
def pci_ids(tmp_path_factory):
    path = tmp_path_factory.mktemp("ids") / "pci.ids"
    path.write_bytes(SAMPLE)
    return str(path)


def rows(text):
    """Table lines without colour codes and trailing padding."""
    return [ANSI.sub("", line).rstrip() for line in text.splitlines() if line.strip()]


# The intel scenario's GPUs, with the names tests/test_pciids.SAMPLE gives them.
T4_NAME = "NVIDIA TU104GL [Tesla T4]"  # "Corporation" left out of the table


@pytest.mark.parametrize("columns", [80, 100, 64])
def test_devices_fits_the_terminal_cutting_names_never_addresses(intel, pci_ids, columns):
    rc, out, err = run_tty("--root", intel.root, "devices", "--class", "gpu", "--pci-ids", pci_ids, columns=columns)
    assert rc == 0, err
    lines = rows(out)
    assert lines[0].split()[:2] == ["ADDRESS", "ID"]
    body = lines[1:]
    # one line per device: NAME never wraps onto a second line
    assert [ln.split()[0] for ln in body] == [intel.boot_vga, intel.a10, intel.t4]
    t4 = body[2]
    assert "10de:1eb8" in t4
    if columns >= 80:
        assert all(len(ln) <= columns for ln in lines), lines
    if columns == 100:      # room for the T4's whole name
        assert f"  {T4_NAME}  " in t4       # whole (the class column gave up its width first)
    else:                   # cut with an ellipsis, the start of the name kept
        assert T4_NAME not in t4 and re.search(r"  NVIDIA TU[^ ]*( [^ ]+)*…  ", t4), t4


@pytest.mark.parametrize("columns", [80, 50])
def test_mdev_list_never_cuts_a_uuid(tmp_path, columns):
    host = scenarios.amd_host(str(tmp_path / "root"))
    uuids = sorted(host.mdevs.values())
    assert uuids, "the scenario has mdevs"
    rc, out, err = run_tty("--root", host.root, "mdev", "list", columns=columns)
    assert rc == 0, err
    lines = rows(out)
    assert lines[0].split()[0] == "UUID"
    found = [ln.split()[0] for ln in lines[1:]]
    assert sorted(found) == uuids       # whole: 36 characters each
    assert all(len(u) == 36 for u in found)


def test_headers_are_upper_case_on_a_terminal_and_in_a_pipe(intel):
    rc, out, _ = run_tty("--root", intel.root, "iommu", "groups")
    piped = run_pipe("--root", intel.root, "iommu", "groups")
    assert rc == 0 and piped.returncode == 0
    assert rows(out)[0].split() == rows(piped.stdout)[0].split() == ["GROUP", "ADDRESS", "ID", "CLASS", "DRIVER"]


def test_check_status_column_is_coloured_on_a_terminal_and_hints_as_visible(tmp_path):
    # a VM without a virtual IOMMU: FAIL rows and FAIL hints
    host = scenarios.vm_guest_no_iommu(str(tmp_path / "root"))
    rc, out, err = run_tty("--root", host.root, "check")
    assert rc == 1
    fail_rows = [ln for ln in out.splitlines() if "FAIL" in ln]
    assert fail_rows and all(re.search(r"\x1b\[[0-9;]*31m\s*FAIL", ln) for ln in fail_rows), out
    pass_rows = [ln for ln in out.splitlines() if "PASS" in ln]
    assert all(re.search(r"\x1b\[[0-9;]*32mPASS", ln) for ln in pass_rows), out
    hints = [ln for ln in err.splitlines() if "FAIL " in ln]
    assert hints and all(re.match(r"\x1b\[[0-9;]*31mFAIL ", ln) for ln in hints), err


def test_warn_rows_are_yellow(intel):
    rc, out, err = run_tty("--root", intel.root, "check")     # vfio-pci not loaded: WARN
    warn_rows = [ln for ln in out.splitlines() if "WARN" in ln]
    assert warn_rows and all(re.search(r"\x1b\[33mWARN", ln) for ln in warn_rows), out
    assert re.search(r"\x1b\[33mWARN vfio: ", err)


@pytest.mark.parametrize("value, coloured", [("1", False), ("", True)])
def test_no_color_turns_colour_off_when_set_and_not_empty(tmp_path, value, coloured):
    host = scenarios.vm_guest_no_iommu(str(tmp_path / "root"))
    rc, out, err = run_tty("--root", host.root, "check", env={"NO_COLOR": value})
    assert rc == 1
    colours = re.compile(r"\x1b\[[0-9;]*3[0-7]m")
    assert bool(colours.search(out)) is coloured
    assert bool(colours.search(err)) is coloured
    assert "FAIL" in out


def test_no_colour_codes_in_a_pipe(tmp_path):
    host = scenarios.vm_guest_no_iommu(str(tmp_path / "root"))
    result = run_pipe("--root", host.root, "check")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "FAIL" in result.stderr
    assert "\x1b[" not in result.stdout + result.stderr


@pytest.mark.parametrize("args", [["devices"], ["devices", "show", "0000:65:00.0"], ["iommu", "groups"],
                                  ["-o", "json", "devices"]])
def test_a_root_without_pci_ids_says_once_why_names_are_hex(intel, args):
    result = run_pipe("--root", intel.root, *args)
    assert result.returncode == 0, result.stderr
    notes = [ln for ln in result.stderr.splitlines() if "pci.ids" in ln]
    assert len(notes) == 1, result.stderr
    assert notes[0].startswith(f"note: no pci.ids under --root {intel.root} (")
    assert f"{intel.root}/usr/share/misc/pci.ids or pass --pci-ids FILE" in notes[0]


def test_no_note_once_names_are_found(intel, pci_ids):
    result = run_pipe("--root", intel.root, "devices", "--pci-ids", pci_ids)
    assert result.returncode == 0 and result.stderr == ""


def test_iommu_groups_shows_class_names(intel, pci_ids):
    result = run_pipe("--root", intel.root, "iommu", "groups", "--pci-ids", pci_ids)
    assert result.returncode == 0, result.stderr
    by_address = {ln.split()[1]: ln for ln in result.stdout.splitlines()[1:]}
    # the T4 is class 0302 (3D controller), the A10 0300; SAMPLE has no class 04: the audio
    # function keeps its hex class
    assert "  3D controller  " in by_address[intel.t4]
    assert "  VGA compatible controller  " in by_address[intel.a10]
    assert by_address[intel.a10_audio].split()[3] == "040300"
    # without names: the hex class, as before
    bare = run_pipe("--root", intel.root, "iommu", "groups")
    t4 = next(ln for ln in bare.stdout.splitlines() if intel.t4 in ln)
    assert t4.split()[3] == "030200"


def test_a_large_table_on_a_terminal_is_fitted_too(monkeypatch):
    # over RICH_TABLE_MAX_ROWS rows the table is drawn without rich, and must fit all the same
    import io

    from hostdev import render

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("COLUMNS", "60")
    rows = [[f"0000:31:{i // 8:02x}.{i % 8}", "8086:1889", "Ethernet controller",
             "Intel Ethernet Adaptive Virtual Function", "iavf", 100 + i, "VF of 0000:31:00.0"]
            for i in range(render.RICH_TABLE_MAX_ROWS + 1)]
    out = Terminal()
    render.table(["address", "id", "class", "name", "driver", "group", "sr-iov"], rows, out)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(rows) + 1
    assert lines[0].split() == ["ADDRESS", "ID", "NAME", "DRIVER", "GROUP", "SR-IOV"]     # CLASS left out
    # 12 + 9 + 10 (name, the minimum) + 6 + 5 + 18 and five gaps of 2 = 70: wider than 60, but no
    # address is cut; the name is, to MIN_FLEX_WIDTH with its ellipsis
    assert lines[1] == "0000:31:00.0  8086:1889  Intel Eth…  iavf    100    VF of 0000:31:00.0"
    assert [ln.split()[0] for ln in lines[1:]] == [r[0] for r in rows]
