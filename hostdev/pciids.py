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
        self._class_start = self._data.find(b"\nC ")
        if self._class_start < 0:
            self._class_start = len(self._data)

    def text(self) -> str:
        """The whole file as text (for lookups that scan every line, kubevirt.nvidia_plugin_text)."""
        if self._text is None:
            self._text = self._data[1:].decode("utf-8", "replace")
        return self._text

    @classmethod
    def empty(cls) -> PciIds:
        return cls(b"", None)

    def _vendor_block(self, vendor_id: str) -> Optional[Tuple[int, int]]:
        """(start of the vendor line, end of its block) in the vendor section."""
        if vendor_id in self._vendor_cache:
            return self._vendor_cache[vendor_id]
        key = b"\n" + vendor_id.lower().encode() + b"  "
        start = self._data.find(key, 0, self._class_start)
        block = None
        if start >= 0:
            # the block ends at the next line that does not start with a tab or '#' (one regex
            # search: Intel's block alone has thousands of lines)
            after = _BLOCK_END.search(self._data, start + 1, self._class_start)
            block = (start, after.start() if after else self._class_start)
        self._vendor_cache[vendor_id] = block
        return block

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
        section = self._data[:self._class_start].decode("utf-8", "replace")
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

    def class_name(self, class_id: str) -> Optional[str]:
        """Subclass name (``3D controller``) for a 6-digit class code; the class name as fallback."""
        key = ("c", class_id[:4])
        if key not in self._name_cache:
            self._name_cache[key] = self._class_name(class_id)
        return self._name_cache[key]

    def _class_name(self, class_id: str) -> Optional[str]:
        base, sub = class_id[:2].lower().encode(), class_id[2:4].lower().encode()
        start = self._data.find(b"\nC " + base + b"  ", self._class_start - 1)
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
