from hostdev import bootloader
from hostdev.host import Host


def test_shell_assignments_quotes_expansion_and_last_wins():
    text = (
        '# comment GRUB_CMDLINE_LINUX="ignored"\n'
        'GRUB_CMDLINE_LINUX="quiet"\r\n'
        "GRUB_CMDLINE_LINUX_DEFAULT='splash $NOT_EXPANDED'\n"
        'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX intel_iommu=on" # trailing comment\n'
        'export GRUB_TIMEOUT=5\n'
        'GRUB_X="a \\\n  b"\n'
        'if [ -x /bin/true ]; then :; fi\n'
    )
    values = bootloader.parse_shell_assignments(text)
    assert values["GRUB_CMDLINE_LINUX"] == "quiet intel_iommu=on"
    assert values["GRUB_CMDLINE_LINUX_DEFAULT"] == "splash $NOT_EXPANDED"
    assert values["GRUB_TIMEOUT"] == "5"
    assert values["GRUB_X"] == "a   b"


def test_grub_dropins_are_sourced_after_the_main_file(tmp_path):
    (tmp_path / "etc/default/grub.d").mkdir(parents=True)
    (tmp_path / "etc/default/grub").write_text('GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n')
    (tmp_path / "etc/default/grub.d/50-cloud.cfg").write_text('GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"\n')
    (tmp_path / "etc/default/grub.d/90-hostdev.cfg").write_text(
        'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX intel_iommu=on"\n')
    (tmp_path / "etc/default/grub.d/README").write_text('GRUB_CMDLINE_LINUX="not sourced"\n')
    boot = bootloader.read_boot_config(Host(str(tmp_path)))
    assert boot.source == "grub"
    assert boot.args == ("intel_iommu=on", "console=ttyS0")
    assert boot.files == ("/etc/default/grub", "/etc/default/grub.d/50-cloud.cfg",
                          "/etc/default/grub.d/90-hostdev.cfg")


def test_bls_entry_of_the_running_kernel_wins(tmp_path):
    entries = tmp_path / "boot/loader/entries"
    entries.mkdir(parents=True)
    (entries / "abc-5.14.0-1.el9.x86_64.conf").write_text("title old\noptions root=/dev/a ro\n")
    (entries / "abc-5.14.0-2.el9.x86_64.conf").write_text("title new\noptions root=/dev/a ro intel_iommu=on\n")
    (tmp_path / "etc/default").mkdir(parents=True)
    (tmp_path / "etc/default/grub").write_text('GRUB_CMDLINE_LINUX="ro"\n')
    boot = bootloader.read_boot_config(Host(str(tmp_path)), "5.14.0-2.el9.x86_64")
    assert boot.source == "bls" and "intel_iommu=on" in boot.args


def test_no_boot_configuration(tmp_path):
    boot = bootloader.read_boot_config(Host(str(tmp_path)))
    assert not boot.known and boot.args == ()


def test_a_backslash_crlf_continues_the_line_as_a_backslash_newline_does():
    # a file saved with CRLF line ends: its continuations are backslash-CR-LF, three characters
    text = ('GRUB_TIMEOUT=5\r\n'
            'GRUB_CMDLINE_LINUX="quiet \\\r\n  splash"\r\n'
            'GRUB_X=a\\\r\nb\r\n')
    values = bootloader.parse_shell_assignments(text)
    assert values == {"GRUB_TIMEOUT": "5", "GRUB_CMDLINE_LINUX": "quiet   splash", "GRUB_X": "ab"}
