"""hostdev: prepare Linux hosts for PCI and mediated-device passthrough to VMs."""

__version__ = "0.1.0"
