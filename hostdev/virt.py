"""Thin adapter around libvirt-python, imported only by the commands that need it.

libvirt-python is the optional extra ``hostdev[vm]``: it needs libvirt's C library and headers
to build, which a host that only binds devices does not want.
"""

from __future__ import annotations

from .errors import HostEnvironmentError


def import_libvirt():
    """The ``libvirt`` module. Raises HostEnvironmentError (exit 4) naming what to install."""
    try:
        import libvirt  # lazy on purpose: start-up time, and an optional extra
    except ImportError:
        raise HostEnvironmentError(
            "libvirt-python is not installed",
            fix="pip install 'hostdev[vm]' (needs libvirt-dev and pkg-config), or apt install python3-libvirt",
        ) from None
    return libvirt


def open_connection(uri: str):
    """A libvirt connection to ``uri``. Raises HostEnvironmentError when libvirt refuses."""
    libvirt = import_libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise HostEnvironmentError(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}",
                                   fix="is libvirtd (or virtqemud) running? systemctl start libvirtd") from None
