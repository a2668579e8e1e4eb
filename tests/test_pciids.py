import os

import pytest

from hostdev import pciids
from hostdev.errors import UsageError
from hostdev.host import Host

SAMPLE = b"""#
# sample in the pci.ids format
#
1000  Broadcom / LSI
\t0001  53c810
10de  NVIDIA Corporation
\t1eb8  TU104GL [Tesla T4]
\t\t10de 12a2  Tesla T4
\t1eb8  A later duplicate line that must not win
\t25b6  GA107GL [A2 / A16]
10df  Emulex Corporation
\t1eb8  Not an NVIDIA device
# List of known device classes, subclasses and programming interfaces
C 02  Network controller
\t00  Ethernet controller
C 03  Display controller
\t00  VGA compatible controller
\t\t00  VGA controller
\t02  3D controller
C 0b  Processor
"""


def test_vendor_device_and_class_lookups():
    db = pciids.PciIds(SAMPLE, "sample")
    assert db.vendor("10de") == "NVIDIA Corporation"
    assert db.vendor("10DE") == "NVIDIA Corporation"
    assert db.device("10de", "1eb8") == "TU104GL [Tesla T4]"          # first line wins
    assert db.device("10de", "25b6") == "GA107GL [A2 / A16]"
    assert db.device("10df", "1eb8") == "Not an NVIDIA device"        # vendor blocks do not leak
    assert db.device("1000", "1eb8") is None
    assert db.device("10de", "ffff") is None
    assert db.vendor("abcd") is None
    assert db.class_name("030200") == "3D controller"
    assert db.class_name("020000") == "Ethernet controller"
    assert db.class_name("0b4000") == "Processor"                     # no subclass line: the class
    assert db.class_name("ff0000") is None


def test_empty_database_gives_no_names():
    db = pciids.PciIds.empty()
    assert db.vendor("10de") is None and db.device("10de", "1eb8") is None and db.class_name("030200") is None


def test_load_searches_hwdata_paths_under_the_root(tmp_path):
    target = tmp_path / "usr/share/misc/pci.ids"
    target.parent.mkdir(parents=True)
    target.write_bytes(SAMPLE)
    db = pciids.load(Host(str(tmp_path)))
    assert db.path == "/usr/share/misc/pci.ids"
    assert db.device("10de", "1eb8") == "TU104GL [Tesla T4]"
    assert pciids.load(Host(str(tmp_path / "nothing"))).path is None


def test_load_override_and_unreadable_override(tmp_path):
    f = tmp_path / "my.ids"
    f.write_bytes(SAMPLE)
    assert pciids.load(Host(str(tmp_path)), str(f)).vendor("10de") == "NVIDIA Corporation"
    with pytest.raises(UsageError, match="--pci-ids"):
        pciids.load(Host(str(tmp_path)), str(tmp_path / "missing.ids"))


@pytest.mark.skipif(not os.path.exists("/usr/share/misc/pci.ids"), reason="no system pci.ids")
def test_real_pci_ids_matches_a_full_parse_for_every_entry():
    """The lazy lookup agrees with a straightforward full parse of the real file."""
    data = open("/usr/share/misc/pci.ids", "rb").read()
    db = pciids.PciIds(data, "/usr/share/misc/pci.ids")
    vendors, devices, vendor = {}, {}, None
    for raw in data.decode("utf-8", "replace").splitlines():
        if raw.startswith("C "):
            break
        if not raw or raw.startswith("#"):
            continue
        if not raw.startswith("\t"):
            vendor, name = raw[:4], raw[6:].strip()
            vendors[vendor] = name
        elif not raw.startswith("\t\t") and vendor:
            devices.setdefault((vendor, raw[1:5]), raw[7:].strip())
    assert len(devices) > 10000
    for v, name in vendors.items():
        assert db.vendor(v) == name
    for (v, d), name in devices.items():
        assert db.device(v, d) == name, (v, d)


# Vendor lines as hwdata's pci.ids has them (2024 releases), AMD's three and NVIDIA's two.
VENDORS = b"""1002  Advanced Micro Devices, Inc. [AMD/ATI]
1022  Advanced Micro Devices, Inc. [AMD]
10de  NVIDIA Corporation
\t1eb8  TU104GL [Tesla T4]
12d2  NVidia / SGS Thomson (Joint Venture)
15b3  Mellanox Technologies
1dd8  AMD Pensando Systems
8086  Intel Corporation
C 03  Display controller
\t02  3D controller
"""


@pytest.mark.parametrize("text, expected", [
    ("nvidia", ["10de"]),                     # NVIDIA Corporation without "Corporation"; 12d2 only has the word
    ("NVIDIA Corporation", ["10de"]),
    ("Intel", ["8086"]),
    ("mellanox", ["15b3"]),                   # a word of "Mellanox Technologies"
    ("sgs thomson", ["12d2"]),                # words in a row
    ("amd", ["1002", "1022", "1dd8"]),        # ambiguous: every candidate
    ("3d controller", []),                    # class names are not vendors
    ("thomson sgs", []),
    ("", []),
])
def test_vendor_ids_named(text, expected):
    db = pciids.PciIds(VENDORS, "sample")
    assert [i for i, _ in pciids.vendor_ids_named(db, text)] == expected


def test_parse_vendor_by_id_or_name_and_refusals():
    from hostdev.pci import parse_vendor

    db = pciids.PciIds(VENDORS, "/usr/share/misc/pci.ids")
    assert parse_vendor("0x10DE") == "10de"
    assert parse_vendor("NVIDIA", db) == "10de"
    with pytest.raises(UsageError) as amd:
        parse_vendor("amd", db)
    assert str(amd.value) == ("--vendor 'amd' names 3 vendors in /usr/share/misc/pci.ids: 1002 Advanced Micro "
                              "Devices, Inc. [AMD/ATI]; 1022 Advanced Micro Devices, Inc. [AMD]; 1dd8 AMD Pensando "
                              "Systems (give the vendor ID or a longer name)")
    with pytest.raises(UsageError, match="no vendor named 'acme' in /usr/share/misc/pci.ids"):
        parse_vendor("acme", db)
    with pytest.raises(UsageError, match="vendor names need a pci.ids"):
        parse_vendor("nvidia", pciids.PciIds.empty())
    with pytest.raises(UsageError, match="vendor names need a pci.ids"):
        parse_vendor("nvidia")


def _big_ids(order):
    """A pci.ids of 3,000 vendors (about 200 KB: far more than one narrowed search) in ``order``,
    each vendor XXXX with two devices, one of them a device line that reads like vendor 0001's."""
    blocks = [f"{v:04x}  Vendor {v:04x}\n\t0001  Device one of {v:04x}\n\t{v:04x}  Same ID as its vendor\n"
              for v in order]
    return ("# vendors\n" + "".join(blocks) + "\n# classes\nC 02  Network controller\n\t00  Ethernet controller\n"
            ).encode()


@pytest.mark.parametrize("shuffled", [False, True], ids=["sorted", "out-of-order"])
def test_vendor_lookups_in_a_large_file_sorted_or_not(shuffled):
    """Vendors are found by a binary search over a sorted file; a file out of order is searched
    whole, so every vendor is still found, and an absent one is absent either way."""
    import random

    order = list(range(0x1000, 0x1000 + 6000, 2))  # even IDs only: the odd ones are absent
    if shuffled:
        random.Random(7).shuffle(order)
    db = pciids.PciIds(_big_ids(order), "big")
    assert len(db.text()) > 10 * pciids._NARROW
    for v in order[::7] + [order[0], order[-1], 0x1000, 0x1000 + 5998]:
        assert db.vendor(f"{v:04x}") == f"Vendor {v:04x}"
        assert db.device(f"{v:04x}", "0001") == f"Device one of {v:04x}"
        assert db.device(f"{v:04x}", f"{v:04x}") == "Same ID as its vendor"
    for absent in ("0fff", "1001", "2001", "1777", "ffff", "0000"):
        assert db.vendor(absent) is None and db.device(absent, "0001") is None
    assert db.class_name("020000") == "Ethernet controller"
    assert [v for v, _ in db.vendors()] == [f"{v:04x}" for v in order]
    if not shuffled:  # found in the narrowed window, not by the whole-file search behind it
        for v in order[::5]:
            low, high = db._vendor_window(f"{v:04x}".encode())
            assert high - low <= pciids._NARROW
            assert low <= db._data.find(f"\n{v:04x}  ".encode()) <= high


def test_class_lookups_never_read_a_vendor_line_and_the_last_vendor_ends_at_the_classes():
    data = b"0c03  Vendor whose ID reads like a class\n\t0300  Device\nffff  Last vendor\n\t0001  Its device\n" \
           b"C 03  Display controller\n\t00  VGA compatible controller\nC 0c  Serial bus controller\n"
    db = pciids.PciIds(data, "x")
    assert db.class_name("030000") == "VGA compatible controller"
    assert db.class_name("0c0300") == "Serial bus controller"  # no subclass 03 line: the class
    assert db.device("ffff", "0001") == "Its device"
    assert db.device("ffff", "0300") is None                   # the class section is no vendor's block
    assert db.vendors() == [("0c03", "Vendor whose ID reads like a class"), ("ffff", "Last vendor")]


def test_names_at_once_are_the_three_lookups_for_each_kind_of_function():
    db = pciids.PciIds(SAMPLE, "sample")
    kinds = [("10de", "1eb8", "030200"), ("10de", "1eb8", "030000"), ("10df", "1eb8", "030200"),
             ("10de", "25b6", "020000"), ("abcd", "0001", "ff0000")]
    for _ in range(2):  # asked again: remembered, the same
        for vendor, device, class_id in kinds:
            assert db.names(vendor, device, class_id) == (db.vendor(vendor), db.device(vendor, device),
                                                          db.class_name(class_id))
    assert db.names("10de", "1eb8", "030000") == ("NVIDIA Corporation", "TU104GL [Tesla T4]",
                                                  "VGA compatible controller")
    assert db.names("abcd", "0001", "ff0000") == (None, None, None)


def test_names_with_bytes_that_are_not_utf8_are_read_with_replacement_characters():
    data = b"10de  NVIDIA \xe9 Corporation\n\t1eb8  TU104GL \xff\n" \
           b"C 03  Display \xfe controller\n\t02  3D \xfd controller\n"
    db = pciids.PciIds(data, "latin")
    assert db.vendor("10de") == "NVIDIA \ufffd Corporation"
    assert db.device("10de", "1eb8") == "TU104GL \ufffd"
    assert db.class_name("030200") == "3D \ufffd controller" and db.class_name("030000") == "Display \ufffd controller"
    assert db.vendors() == [("10de", "NVIDIA \ufffd Corporation")]
    assert db.text() == data.decode("utf-8", "replace")


def test_a_file_that_starts_with_a_vendor_and_ends_without_a_newline_or_classes():
    db = pciids.PciIds(b"10de  NVIDIA Corporation\n\t1eb8  TU104GL [Tesla T4]\n\t25b6  GA107GL", "short")
    assert db.vendor("10de") == "NVIDIA Corporation"
    assert db.device("10de", "1eb8") == "TU104GL [Tesla T4]"
    assert db.device("10de", "25b6") == "GA107GL"          # the last line, no newline after it
    assert db.class_name("030200") is None and db.vendors() == [("10de", "NVIDIA Corporation")]
    classes = pciids.PciIds(b"C 03  Display controller\n\t00  VGA compatible controller", "classes only")
    assert classes.class_name("030000") == "VGA compatible controller"  # the file's first and last lines
    assert classes.class_name("038000") == "Display controller" and classes.vendor("0003") is None


def test_a_class_name_comes_from_its_own_class_block():
    """A subclass missing from its class is not taken from a later class's block; subclasses
    with hex letters are found; prog-if lines (two tabs) are no subclasses."""
    db = pciids.PciIds(b"C 06  Bridge\n\t04  PCI bridge\n\t\t00  Normal decode\n\t0a  InfiniBand to PCI host bridge\n"
                       b"C 0c  Serial bus controller\n\t03  USB controller\n\t\t30  XHCI\n"
                       b"C 0d  Wireless controller\n\t30  Not a USB controller\n\t11  Bluetooth\n"
                       b"C 12  Processing accelerators\n", "classes")
    assert db.class_name("060a00") == "InfiniBand to PCI host bridge"
    assert db.class_name("060400") == "PCI bridge"
    assert db.class_name("060000") == "Bridge"              # "\t\t00" is a prog-if of 0604, not subclass 00
    assert db.class_name("0c1100") == "Serial bus controller"  # 0d has an 11, 0c has none
    assert db.class_name("0c3000") == "Serial bus controller"
    assert db.class_name("0d1100") == "Bluetooth" and db.class_name("120000") == "Processing accelerators"


def test_the_empty_database_has_no_text_and_no_vendors():
    db = pciids.PciIds.empty()
    assert db.text() == "" and db.vendors() == [] and db.path is None
