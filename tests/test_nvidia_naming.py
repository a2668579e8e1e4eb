"""Every --naming mode against a model of the NVIDIA kubevirt-gpu-device-plugin release(s) it
claims to reproduce, over every device of NVIDIA's block of a whole pci.ids.

The models below are written from the plugin's Go source (NVIDIA/kubevirt-gpu-device-plugin,
pkg/device_plugin/device_plugin.go, getDeviceName) independently of hostdev's code: one pass
over the file indexes where each 4-hex-digit string first appears, the character rules walk
characters one by one. Sources per mode (docs/kubevirt.md has the version table):

* nvidia (v1.2.2+, PR #72, commit 5b4613600c5f765809b275e19d351d8eadf48c05): locateVendor()
  finds the first line with prefix "10de"; then lines starting with "#" are skipped, a line not
  starting with TAB ends the search, the first with prefix TAB+id is the device; TrimPrefix,
  TrimSpace, ToUpper, "/" and "." to "_", \\s+ to "_", [^a-zA-Z0-9_.]+ removed.
* nvidia-v1.2.1 (v1.2.0..v1.2.1, after PR #53): every line TrimSpace'd; a line containing the id
  is split on it; 3+ parts: return "" (no name); a non-empty part before the id: next line;
  else the part after it, cleaned as above.
* nvidia-v1.1.2 (v1.1.1..v1.1.2): the same without the "part before" check (issue #42 shows its
  effect: 10de:1f08 advertised as nvidia.com/SAS_5_IR_INTEGRATED_RAID_CONTROLLER).
* nvidia-legacy (v1.0.x, before PR #33): that lookup; TrimSpace, \\s+ to "_", [^a-zA-Z0-9_]+
  removed (no upper-casing, "/" dropped, not "_").
The plugin uses the lower-case device id when the result is empty.

The pci.ids is a fixed snapshot shipped in tests/data (see its README): the older lookups
depend on every line of the file, so the test must not follow this machine's copy.
"""

import lzma
import re
from pathlib import Path

import pytest

from hostdev import kubevirt as kv
from hostdev.errors import UsageError
from hostdev.pciids import PciIds

SNAPSHOT = Path(__file__).parent / "data" / "pci.ids-2023.04.10.xz"

# Go: unicode.IsSpace (TrimSpace) and RE2's \s ([\t\n\f\r ]), spelled out by code point.
GO_IS_SPACE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
               0x202F, 0x205F, 0x3000}
RE2_SPACE = {"\t", "\n", "\f", "\r", " "}
ASCII_LETTERS_DIGITS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
# unicode.ToUpper's only non-ASCII runes whose upper case is ASCII (dotless i, long s)
GO_UPPER_TO_ASCII = {"\u0131": "I", "\u017f": "S"}


def go_trim_space(s):
    start, end = 0, len(s)
    while start < end and ord(s[start]) in GO_IS_SPACE:
        start += 1
    while end > start and ord(s[end - 1]) in GO_IS_SPACE:
        end -= 1
    return s[start:end]


def go_to_upper(s):
    out = []
    for c in s:
        if "a" <= c <= "z":
            out.append(chr(ord(c) - 32))
        elif c in GO_UPPER_TO_ASCII:
            out.append(GO_UPPER_TO_ASCII[c])
        else:
            out.append(c)  # non-ASCII upper case is dropped by the last step anyway
    return "".join(out)


def whitespace_runs_to_underscore(s):
    out, in_run = [], False
    for c in s:
        if c in RE2_SPACE:
            if not in_run:
                out.append("_")
            in_run = True
        else:
            out.append(c)
            in_run = False
    return "".join(out)


def clean_upper(text):
    s = go_to_upper(go_trim_space(text)).replace("/", "_").replace(".", "_")
    s = whitespace_runs_to_underscore(s)
    return "".join(c for c in s if c in ASCII_LETTERS_DIGITS or c in "_.")


def clean_legacy(text):
    s = whitespace_runs_to_underscore(go_trim_space(text))
    return "".join(c for c in s if c in ASCII_LETTERS_DIGITS or c == "_")


class PluginModel:
    """Where each plugin lookup stops, for every 4-hex-digit string, from one pass over the file."""

    def __init__(self, text):
        lines = []
        for line in text.split("\n"):
            lines.append(line[:-1] if line.endswith("\r") else line)  # bufio.ScanLines
        self.lines = lines
        self.first_any, self.first_twice, self.first_leading = {}, {}, {}
        hex4 = re.compile(r"[0-9a-f]{4}")
        for i, line in enumerate(lines):
            trimmed = go_trim_space(line)
            for j in range(len(trimmed) - 3):
                w = trimmed[j:j + 4]
                if not hex4.fullmatch(w) or w in self.first_any and w in self.first_twice and w in self.first_leading:
                    continue
                self.first_any.setdefault(w, i)
                if len(trimmed.split(w)) != 2:
                    self.first_twice.setdefault(w, i)
                if j == 0:
                    self.first_leading.setdefault(w, i)
        self.nvidia_block = {}
        in_block = False
        for line in lines:
            if not in_block:
                in_block = line.startswith("10de")
                continue
            if line.startswith("#"):
                continue
            if not line.startswith("\t"):
                break
            if not line.startswith("\t\t"):  # subsystem lines never carry TAB+hex id
                self.nvidia_block.setdefault(line[1:5], line[5:])

    def after_id(self, index, device_id):
        return go_trim_space(self.lines[index]).split(device_id)[1]

    def anywhere(self, device_id):
        i = self.first_any.get(device_id)
        if i is None or self.first_twice.get(device_id) == i:
            return None
        return self.after_id(i, device_id)

    def line_start(self, device_id):
        lead = self.first_leading.get(device_id)
        twice = self.first_twice.get(device_id)
        if lead is None or (twice is not None and twice <= lead):
            return None
        return self.after_id(lead, device_id)

    def name(self, mode, device_id):
        if mode == "nvidia":
            text, clean = self.nvidia_block.get(device_id), clean_upper
        elif mode == "nvidia-v1.2.1":
            text, clean = self.line_start(device_id), clean_upper
        elif mode == "nvidia-v1.1.2":
            text, clean = self.anywhere(device_id), clean_upper
        else:
            text, clean = self.anywhere(device_id), clean_legacy
        return "nvidia.com/" + ((clean(text) if text is not None else "") or device_id)


@pytest.fixture(scope="module")
def snapshot():
    data = lzma.decompress(SNAPSHOT.read_bytes())
    return PciIds(data, str(SNAPSHOT)), PluginModel(data.decode("utf-8", "replace"))


MODES = ("nvidia", "nvidia-v1.2.1", "nvidia-v1.1.2", "nvidia-legacy")


def test_modes_are_the_plugin_releases():
    assert set(kv.NVIDIA_NAMINGS) == set(MODES)


@pytest.mark.parametrize("mode", MODES)
def test_every_nvidia_device_named_as_that_plugin_release(snapshot, mode):
    names, model = snapshot
    ids = sorted(model.nvidia_block)
    assert len(ids) > 1500  # the whole NVIDIA section (2023.04.10: 1,6xx device ids)
    wrong = {}
    for device_id in ids:
        got = kv.nvidia_plugin_name(mode, device_id, names.device("10de", device_id), names)
        want = model.name(mode, device_id)
        if got != want:
            wrong[device_id] = (got, want)
    assert not wrong, f"{len(wrong)} differ, e.g. {sorted(wrong.items())[:5]}"


def test_the_modes_really_differ_on_this_file(snapshot):
    """The older lookups name hundreds of NVIDIA devices after other vendors' lines: were the
    modes one and the same, the test above would prove little."""
    names, model = snapshot
    ids = sorted(model.nvidia_block)
    current = {d: model.name("nvidia", d) for d in ids}
    for mode in ("nvidia-v1.2.1", "nvidia-v1.1.2"):
        assert sum(model.name(mode, d) != current[d] for d in ids) > 100, mode
    assert sum(model.name("nvidia-legacy", d) != model.name("nvidia-v1.1.2", d).upper() for d in ids) > 0


# Small files with the shapes of the plugin issues, expectations reasoned by hand.
TINY = (
    "#\tVersion: 2023.04.10\n"
    "1028  Dell\n"
    "\t0015  PERC 5/e Adapter RAID Controller\n"
    "\t\t1028 1f08  SAS 5/iR Integrated RAID Controller\n"
    "1186  D-Link System Inc\n"
    "\t\t1186 3a1a  WNA-2330 802.11bg Wireless CardBus Adapter\n"
    "8086  Intel Corporation\n"
    "\t2330  DH89xxCC SMBus Controller\n"
    "\t1eb8  has 1eb8 twice\n"
    "10de  NVIDIA Corporation\n"
    "\t1eb8  TU104GL [Tesla T4]\n"
    "\t1f08  TU106 [GeForce RTX 2060 Rev. A]\n"
    "\t2330  GH100 [H100 SXM5 80GB]\n"
    "\t25b6  GA107GL [A2 / A16]\n"
)


@pytest.mark.parametrize("mode, device_id, expected", [
    # issue #42 (a v1.1.x image): the subsystem line of a Dell RAID card comes first
    ("nvidia-v1.1.2", "1f08", "nvidia.com/SAS_5_IR_INTEGRATED_RAID_CONTROLLER"),
    ("nvidia-v1.2.1", "1f08", "nvidia.com/TU106_GEFORCE_RTX_2060_REV__A"),
    ("nvidia", "1f08", "nvidia.com/TU106_GEFORCE_RTX_2060_REV__A"),
    # issue #106: "WNA-2330 802.11bg ..." is the first line holding 2330
    ("nvidia-v1.1.2", "2330", "nvidia.com/802_11BG_WIRELESS_CARDBUS_ADAPTER"),
    ("nvidia-legacy", "2330", "nvidia.com/80211bg_Wireless_CardBus_Adapter"),
    # v1.2.1 skips it but stops at Intel's own 2330 line, before NVIDIA's
    ("nvidia-v1.2.1", "2330", "nvidia.com/DH89XXCC_SMBUS_CONTROLLER"),
    ("nvidia", "2330", "nvidia.com/GH100_H100_SXM5_80GB"),
    # a line holding the id twice ends the older lookups with no name: the id
    ("nvidia-v1.2.1", "1eb8", "nvidia.com/1eb8"),
    ("nvidia-legacy", "1eb8", "nvidia.com/1eb8"),
    ("nvidia", "1eb8", "nvidia.com/TU104GL_TESLA_T4"),
    ("nvidia-legacy", "25b6", "nvidia.com/GA107GL_A2__A16"),
    ("nvidia-v1.1.2", "25b6", "nvidia.com/GA107GL_A2___A16"),
    ("nvidia-v1.2.1", "9999", "nvidia.com/9999"),
])
def test_plugin_issue_shapes(mode, device_id, expected):
    names = PciIds(TINY.encode(), "tiny")
    assert kv.nvidia_plugin_name(mode, device_id, names.device("10de", device_id), names) == expected


@pytest.mark.parametrize("mode", ["nvidia-v1.2.1", "nvidia-v1.1.2", "nvidia-legacy"])
def test_whole_file_modes_need_the_whole_file(mode):
    """An inventory carries names, not the file those releases scanned: refused, with the fix."""
    inventory = {"inventory_version": 1, "hostname": "n1", "labels": {}, "pci_ids": {"path": None},
                 "devices": [{"address": "0000:65:00.0", "vendor_id": "10de", "device_id": "1eb8",
                              "class_id": "030200", "driver": "vfio-pci", "device_name": "TU104GL [Tesla T4]",
                              "iommu_group": None}], "iommu_groups": [], "mdev_types": [], "mdevs": []}
    with pytest.raises(UsageError, match=f"--naming {mode} reads the whole pci.ids") as caught:
        kv.build([inventory], kv.Selection(), kv.Options(naming=mode, external=True))
    assert "--pci-ids" in caught.value.fix
    names = PciIds(TINY.encode(), "plugin-pci.ids")
    result = kv.build([inventory], kv.Selection(), kv.Options(naming=mode, external=True), names,
                      {"path": "plugin-pci.ids"})
    # TINY's Intel line holds 1eb8 twice: those releases stop there and use the id
    assert result.permitted["pciHostDevices"][0]["resourceName"] == "nvidia.com/1eb8"
