"""Names from hwdata's pci.ids, looked up lazily.

The file (about 1.3 MB) is read once as bytes; a lookup is a ``bytes.find`` for the vendor's
line and then for the device's line inside that vendor's block, which costs well under a
millisecond, instead of a full parse (15-25 ms). We never ship a private copy: a stale or
missing file must be visible to the user (KubeVirt resource names depend on it).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from .errors import UsageError
from .host import Host, read_user_file

# Where distributions install it: Fedora/RHEL/Arch (hwdata), Debian/Ubuntu (pci.ids), Alpine.
_BLOCK_END = re.compile(rb"\n(?=[^\t#\n])")  # a newline before a line that starts a new vendor
_VENDOR_LINE = re.compile(r"^([0-9a-f]{4})  (.+)$", re.M)
_VENDOR_AT = re.compile(rb"\n[0-9a-f]{4}  ")  # the newline before a vendor's line
_NARROW = 16384  # _vendor_line searches this many bytes with one find (about 10 µs)
# Company-form words pci.ids vendor names end with ("NVIDIA Corporation"): a vendor is also known
# by its name without them, and tables leave them out so that the device's name shows sooner.
COMPANY_SUFFIXES = (" Corporation", " Corp.", " Co., Ltd.", " Co Ltd", " Co., Ltd", ", Inc.", " Inc.", " Ltd.",
                    " Limited")

SEARCH_PATHS = ("/usr/share/hwdata/pci.ids", "/usr/share/misc/pci.ids", "/usr/share/pci.ids")


class PciIds:
    """Lookups in one pci.ids text. ``path`` is None when no database was found."""

    def __init__(self, data: bytes, path: Optional[str]) -> None:
        self._data = b"\n" + data
        self.path = path
        self._text: Optional[str] = None
        self._vendor_cache: Dict[str, Optional[Tuple[int, int]]] = {}
        self._name_cache: Dict[Tuple[str, str], Optional[str]] = {}
        self._class_section: Optional[int] = None  # see _class_start
        self._kinds: Dict[Tuple[str, str, str], Tuple[Optional[str], Optional[str], Optional[str]]] = {}

    def text(self) -> str:
        """The whole file as text (for lookups that scan every line, kubevirt.nvidia_plugin_text)."""
        if self._text is None:
            self._text = self._data[1:].decode("utf-8", "replace")
        return self._text

    @classmethod
    def empty(cls) -> PciIds:
        return cls(b"", None)

    def _class_start(self) -> int:
        """Where the class section starts (the newline before its first ``C`` line), or the end of
        the file: a search through the whole file, made once and only where it is needed (a
        vendor's or a class's line is never found in the other section: vendor lines start with
        a hex digit, class lines with ``C``)."""
        if self._class_section is None:
            start = self._data.find(b"\nC ")
            self._class_section = len(self._data) if start < 0 else start
        return self._class_section

    def _vendor_block(self, vendor_id: str) -> Optional[Tuple[int, int]]:
        """(start of the vendor line, end of its block) in the vendor section."""
        if vendor_id in self._vendor_cache:
            return self._vendor_cache[vendor_id]
        start = self._vendor_line(vendor_id.lower().encode())
        block = None
        if start >= 0:
            # the block ends at the next line that does not start with a tab or '#' (one regex
            # search: Intel's block alone has thousands of lines); the class section's first line
            # ends the last vendor's
            after = _BLOCK_END.search(self._data, start + 1)
            block = (start, after.start() if after else len(self._data))
        self._vendor_cache[vendor_id] = block
        return block

    def _vendor_line(self, vendor_id: bytes) -> int:
        """Where the line of ``vendor_id`` (four lower-case hex digits) starts (its newline), or -1:
        searched in _vendor_window, and in the whole file when it is not there (a file out of order)."""
        key = b"\n" + vendor_id + b"  "
        low, high = self._vendor_window(vendor_id)
        start = self._data.find(key, low, high + len(key))
        return start if start >= 0 else self._data.find(key)

    def _vendor_window(self, vendor_id: bytes) -> Tuple[int, int]:
        """(low, high): where the newline before ``vendor_id``'s line is, if the file is in order.

        pci.ids keeps its vendors sorted by ID: a binary search over the bytes, each step looking
        at the first vendor line after the middle, narrows the search to _NARROW bytes or a found
        line's own position, instead of a pass over half the file for each vendor (~0.5 ms)."""
        data = self._data
        low, high = 0, len(data)
        while high - low > _NARROW:
            middle = (low + high) // 2
            probe = _VENDOR_AT.search(data, middle, high + 7)  # no further: a vendor's block can be long
            if probe is None or probe.start() >= high:
                high = middle
                continue
            at = probe.start()
            found = data[at + 1:at + 5]
            if found == vendor_id:
                return at, at
            if found < vendor_id:
                low = at + 1
            else:
                high = middle  # no vendor line starts in [middle, at): the one wanted is before
        return low, high

    @staticmethod
    def _line_text(data: bytes, start: int, prefix_len: int) -> str:
        nl = data.find(b"\n", start + 1)
        return data[start + 1 + prefix_len: nl if nl >= 0 else len(data)].decode("utf-8", "replace").strip()

    def vendor(self, vendor_id: str) -> Optional[str]:
        key = ("v", vendor_id)
        if key not in self._name_cache:
            block = self._vendor_block(vendor_id)
            self._name_cache[key] = self._line_text(self._data, block[0], 6) if block else None
        return self._name_cache[key]

    def vendors(self) -> List[Tuple[str, str]]:
        """Every (vendor ID, name) of the vendor section, in file order."""
        section = self._data[:self._class_start()].decode("utf-8", "replace")
        return [(m.group(1), m.group(2).strip()) for m in _VENDOR_LINE.finditer(section)]

    def device(self, vendor_id: str, device_id: str) -> Optional[str]:
        """The device's name: the first ``TAB dddd`` line inside the vendor's block."""
        key = (vendor_id, device_id)
        if key not in self._name_cache:
            self._name_cache[key] = self._device(vendor_id, device_id)
        return self._name_cache[key]

    def _device(self, vendor_id: str, device_id: str) -> Optional[str]:
        block = self._vendor_block(vendor_id)
        if not block:
            return None
        pos = self._data.find(b"\n\t" + device_id.lower().encode() + b"  ", block[0], block[1])
        return self._line_text(self._data, pos, 7) if pos >= 0 else None

    def names(self, vendor_id: str, device_id: str, class_id: str
              ) -> Tuple[Optional[str], Optional[str], Optional[str]]:
        """(vendor, device, class_name) at once, remembered: a listing asks for the same few kinds
        of function thousands of times."""
        key = (vendor_id, device_id, class_id)
        known = self._kinds.get(key)
        if known is None:
            known = self._kinds[key] = (self.vendor(vendor_id), self.device(vendor_id, device_id),
                                        self.class_name(class_id))
        return known

    def class_name(self, class_id: str) -> Optional[str]:
        """Subclass name (``3D controller``) for a 6-digit class code; the class name as fallback."""
        key = ("c", class_id[:4])
        if key not in self._name_cache:
            self._name_cache[key] = self._class_name(class_id)
        return self._name_cache[key]

    def _class_name(self, class_id: str) -> Optional[str]:
        base, sub = class_id[:2].lower().encode(), class_id[2:4].lower().encode()
        start = self._data.rfind(b"\nC " + base + b"  ")  # the class section is the file's last
        if start < 0:
            return None
        end = self._data.find(b"\nC ", start + 1)
        end = len(self._data) if end < 0 else end
        pos = self._data.find(b"\n\t" + sub + b"  ", start, end)
        if pos >= 0:
            return self._line_text(self._data, pos, 5)
        return self._line_text(self._data, start, 5)


def load(host: Host, override: Optional[str] = None) -> PciIds:
    """The host's pci.ids, or ``override`` (a path on this machine, not under the root).

    Raises UsageError when ``override`` cannot be read. Returns an empty database when the
    host has none (names are then null).
    """
    if override:
        try:
            return PciIds(read_user_file(override), override)
        except OSError as exc:
            raise UsageError(f"cannot read --pci-ids {override}: {exc.strerror}",
                             fix="pass a readable pci.ids file") from None
    for path in SEARCH_PATHS:
        data = host.read_bytes(path)
        if data is not None:
            return PciIds(data, path)
    return PciIds.empty()


def missing_note(host: Host) -> str:
    """Why devices are named by hex IDs when ``load`` found no pci.ids, and how to fix it."""
    where = ", ".join(SEARCH_PATHS)
    if host.is_live:
        return (f"no pci.ids on this host ({where}): devices are named by their hex IDs; install pciutils "
                "(Debian, Ubuntu) or hwdata (Fedora, RHEL, Arch), or pass --pci-ids FILE")
    if host.recording is not None:
        return (f"no pci.ids in the recording {host.recording} ({where}): devices are named by their hex IDs; "
                "pass --pci-ids FILE, or record the host again after installing pci.ids there")
    return (f"no pci.ids under --root {host.root} ({where}): devices are named by their hex IDs; copy this "
            f"machine's pci.ids to {host.root.rstrip('/')}/usr/share/misc/pci.ids or pass --pci-ids FILE")


def short_vendor(name: str) -> str:
    """``NVIDIA Corporation`` → ``NVIDIA``: the name without a COMPANY_SUFFIXES ending."""
    for suffix in COMPANY_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _words(text: str) -> List[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def vendor_ids_named(names: PciIds, text: str) -> List[Tuple[str, str]]:
    """The vendors ``text`` names, case-insensitively: those whose name, or short name (short_vendor),
    is ``text``; else those whose name has ``text``'s words in a row ("mellanox" → Mellanox
    Technologies; "amd" → three vendors). [(ID, name)], empty when none."""
    wanted = text.strip().lower()
    vendors = names.vendors()
    exact = [(i, n) for i, n in vendors if wanted in (n.lower(), short_vendor(n).lower())]
    if exact:
        return exact
    words = _words(wanted)
    if not words:
        return []
    found = []
    for vendor_id, name in vendors:
        have = _words(name)
        if any(have[k:k + len(words)] == words for k in range(len(have) - len(words) + 1)):
            found.append((vendor_id, name))
    return found
