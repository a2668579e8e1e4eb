"""Thin adapter around pyudev, imported lazily: PCI names from udev's hardware database.

systemd builds the hwdb (``/usr/lib/udev/hwdb.bin``) from its own copy of pci.ids, often
newer than the distribution's pci.ids file (Debian 12: hwdb knows 10de:2335 "GH100 [H200 SXM
141GB]", pci.ids 2023.04.10 does not); ``lspci`` reads both. pyudev (0.24) has no hwdb class,
so this goes through the libudev functions pyudev binds (udev_hwdb_new,
udev_hwdb_get_properties_list_entry) on pyudev's own Context. Read-only.
"""

from __future__ import annotations

from typing import Callable, Optional

PciNameLookup = Callable[[str, str], Optional[str]]


class _Hwdb:
    def __init__(self) -> None:
        import pyudev
        from pyudev._util import udev_list_iterate

        self._context = pyudev.Context()
        self._lib = self._context._libudev
        self._iterate = udev_list_iterate
        self._hwdb = self._lib.udev_hwdb_new(self._context)
        if not self._hwdb:
            raise OSError("udev_hwdb_new failed (no hwdb.bin)")

    def __call__(self, vendor_id: str, device_id: str) -> Optional[str]:
        # the modalias prefix of 20-pci-vendor-model.hwdb: pci:v0000VVVVd0000DDDD*
        key = f"pci:v0000{vendor_id.upper()}d0000{device_id.upper()}".encode()
        entry = self._lib.udev_hwdb_get_properties_list_entry(self._hwdb, key, 0)
        for name, value in self._iterate(self._lib, entry):
            if name == b"ID_MODEL_FROM_DATABASE" and value:
                return value.decode("utf-8", "replace").strip() or None
        return None

    def __del__(self) -> None:
        if getattr(self, "_hwdb", None):
            self._lib.udev_hwdb_unref(self._hwdb)


def hwdb_pci_names() -> Optional[PciNameLookup]:
    """A lookup (vendor_id, device_id) → model name from this machine's hwdb, or None when
    pyudev, libudev or the hwdb is not available (names then come from pci.ids alone)."""
    try:
        return _Hwdb()
    except (ImportError, OSError, AttributeError):
        return None
