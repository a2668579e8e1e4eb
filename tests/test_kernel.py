from hostdev import kernel


def test_split_cmdline_like_the_kernel():
    text = 'BOOT_IMAGE=/vmlinuz root=UUID=1 ro quiet intel_iommu=on dyndbg="file x.c +p" -- init-arg\n'
    assert kernel.split_cmdline(text) == ["BOOT_IMAGE=/vmlinuz", "root=UUID=1", "ro", "quiet",
                                          "intel_iommu=on", 'dyndbg="file x.c +p"']


def test_arg_value_last_wins_and_dashes_equal_underscores():
    args = ["intel_iommu=off", "vfio-pci.ids=10de:1eb8", "intel_iommu=on", "iommu=pt", "quiet"]
    assert kernel.arg_value(args, "intel_iommu") == "on"
    assert kernel.arg_value(args, "vfio_pci.ids") == "10de:1eb8"
    assert kernel.arg_value(args, "quiet") == ""
    assert kernel.arg_value(args, "amd_iommu") is None


def test_parse_cpuinfo():
    info = kernel.parse_cpuinfo("processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx hypervisor\n"
                                "processor\t: 1\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx hypervisor\n")
    assert info.vendor == "intel" and info.virtualization == "vmx" and info.is_guest
    amd = kernel.parse_cpuinfo("vendor_id : AuthenticAMD\nflags : fpu svm\n")
    assert amd.vendor == "amd" and amd.virtualization == "svm" and not amd.is_guest
    assert kernel.parse_cpuinfo("").virtualization is None


def test_module_names_from_modules_dep_and_builtin():
    names = kernel._module_names("kernel/drivers/vfio/pci/vfio-pci.ko.xz: kernel/drivers/vfio/vfio.ko.xz\n"
                                 "kernel/drivers/vfio/vfio.ko.zst:\nkernel/drivers/pci/pci-stub.ko\n")
    assert names == {"vfio_pci", "vfio", "pci_stub"}
