"""Mediated devices: the types parents offer, the mdevs that exist, create and remove.

sysfs ABI: Documentation/driver-api/vfio-mediated-device.rst. A parent appears under
/sys/class/mdev_bus/NAME (a PCI address, or a name such as ``mtty`` for the sample drivers);
``mdev_supported_types/TYPE/create`` takes a UUID; ``/sys/bus/mdev/devices/UUID/remove``
takes ``1``.
"""

from __future__ import annotations

import uuid as _uuid
from typing import List, Optional

from .errors import RefusedError, SysfsWriteError, UsageError
from .host import Host
from .model import Mdev, MdevType

MDEV_BUS = "/sys/class/mdev_bus"
MDEV_DEVICES = "/sys/bus/mdev/devices"


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parents(host: Host) -> List[str]:
    return host.listdir(MDEV_BUS)


def types(host: Host, parent: str) -> List[MdevType]:
    base = f"{MDEV_BUS}/{parent}/mdev_supported_types"
    found = []
    for type_id in host.listdir(base):
        values, _, _ = host.scan_attrs(f"{base}/{type_id}", ("name", "available_instances", "device_api",
                                                              "description"))
        found.append(MdevType(parent, type_id, values["name"], _int(values["available_instances"]),
                              values["device_api"], values["description"]))
    return found


def list_mdevs(host: Host) -> List[Mdev]:
    found = []
    for name in host.listdir(MDEV_DEVICES):
        real = host.resolve(f"{MDEV_DEVICES}/{name}")
        type_id = host.link_name(f"{MDEV_DEVICES}/{name}/mdev_type")
        type_name = host.read_attr(f"{MDEV_DEVICES}/{name}/mdev_type/name")
        group = host.link_name(f"{MDEV_DEVICES}/{name}/iommu_group")
        found.append(Mdev(name, real.rsplit("/", 2)[-2], type_id, type_name,
                          int(group) if group and group.isdigit() else None,
                          host.link_name(f"{MDEV_DEVICES}/{name}/driver")))
    return found


def _find_type(host: Host, parent: str, type_id: str) -> MdevType:
    if parent not in parents(host):
        raise UsageError(f"{parent} is not an mdev parent on this host",
                         fix=f"parents here: {', '.join(parents(host)) or 'none'}")
    for t in types(host, parent):
        if t.id == type_id:
            return t
    raise UsageError(f"{parent} has no mdev type {type_id}",
                     fix=f"types of {parent}: {', '.join(t.id for t in types(host, parent))}")


def create(host: Host, parent: str, type_id: str, uuid: Optional[str] = None) -> Mdev:
    """Create one mdev; returns it as sysfs shows it afterwards. Raises UsageError, RefusedError,
    SysfsWriteError."""
    mtype = _find_type(host, parent, type_id)
    try:
        value = str(_uuid.UUID(uuid)) if uuid else str(_uuid.uuid4())
    except ValueError:
        raise UsageError(f"invalid UUID {uuid!r}", fix="use the 8-4-4-4-12 hex form, or omit --uuid") from None
    if host.exists(f"{MDEV_DEVICES}/{value}"):
        raise UsageError(f"an mdev with UUID {value} already exists", fix="pick another UUID or omit --uuid")
    if mtype.available_instances == 0:
        raise RefusedError(f"{parent} has no {type_id} instance left (available_instances 0)",
                           fix="remove an mdev of this parent, or use another parent")
    host.require_mutable("creating an mdev")
    host.write_attr(f"{MDEV_BUS}/{parent}/mdev_supported_types/{type_id}/create", value)
    for mdev in list_mdevs(host):
        if mdev.uuid == value:
            return mdev
    raise SysfsWriteError(f"{MDEV_BUS}/{parent}/mdev_supported_types/{type_id}/create", value, 5,
                          "the kernel accepted the write but no mdev appeared")


def remove(host: Host, uuid: str) -> None:
    """Remove one mdev. Raises UsageError (no such mdev), RefusedError (in use)."""
    from .binding import vfio_group_holders

    if not host.exists(f"{MDEV_DEVICES}/{uuid}"):
        raise UsageError(f"no mdev {uuid} on this host", fix="run 'hostdev mdev list'")
    group = host.link_name(f"{MDEV_DEVICES}/{uuid}/iommu_group")
    holders = vfio_group_holders(host, int(group)) if group and group.isdigit() else []
    if holders:
        raise RefusedError(f"mdev {uuid} is in use: /dev/vfio/{group} is held by {', '.join(holders)}",
                           fix="stop the VM using it first")
    host.require_mutable("removing an mdev")
    try:
        host.write_attr(f"{MDEV_DEVICES}/{uuid}/remove", "1")
    except SysfsWriteError as exc:
        if exc.errno == 16:  # EBUSY: the vendor driver refuses while the device is open
            raise RefusedError(f"mdev {uuid} is in use (the kernel answered EBUSY)",
                               fix="stop the VM or process that has it open") from None
        raise
