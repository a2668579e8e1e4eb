"""docs/hostdev.1 is generated from the CLI (scripts/gen-man.py) and must not go stale."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_committed_man_page_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/gen-man.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_command_has_a_section():
    page = (ROOT / "docs/hostdev.1").read_text()
    for words in ("devices", "devices show", "check", "bind", "iommu enable", "iommu disable", "modules load",
                  "apply", "mdev create", "kubevirt permitted", "inventory", "vm test"):
        assert f".SS hostdev {words}" in page.replace("\\-", "-"), words


def _files_section():
    """The FILES entries of the committed page as regexes (ADDRESS, PARENT, UUID, NAME, FILE: one
    path component or more; ``*``: within one component)."""
    import re

    page = (ROOT / "docs/hostdev.1").read_text().replace("\\-", "-")
    section = page.split(".SH FILES", 1)[1].split(".SH ", 1)[0].splitlines()
    entries = [section[i + 1] for i, line in enumerate(section) if line == ".TP"]
    patterns = []
    for entry in entries:
        for path in entry.split(", "):
            rx = re.escape(path).replace(r"\*", "[^/]*")
            for word in ("ADDRESS", "PARENT", "UUID", "NAME"):
                rx = rx.replace(word, "[^/]+")
            patterns.append(re.compile("^" + rx.replace("FILE", "/.+") + "$"))
    return entries, patterns


def test_files_names_the_writes_of_bind_restore_modules_iommu_and_mdev(sim_of, monkeypatch):
    """Every path hostdev writes, removes or links while the mutating commands run on the simulated
    hosts is in FILES (the journal, the lock, bindings.d, the udev rule, the unit and its enable
    link, modules-load.d, modprobe.d, GRUB and its backup, the boot-args record, mdevctl.d)."""
    from hostdev import host as host_mod

    written = set()
    real = {name: getattr(host_mod.Host, name) for name in ("write_file", "write_bytes", "remove_file", "_open_lock")}

    def audit(name, index):
        def wrapper(self, *args, **kwargs):
            path = host_mod.LOCK_FILE if name == "_open_lock" else args[index]
            if name == "write_file" and kwargs.get("backup", True) and self.exists(path):
                written.add(path + host_mod.BACKUP_SUFFIX)
            written.add(path)
            return real[name](self, *args, **kwargs)
        return wrapper

    for name in real:
        monkeypatch.setattr(host_mod.Host, name, audit(name, 0))
    real_symlink = host_mod.Host.symlink
    monkeypatch.setattr(host_mod.Host, "symlink",
                        lambda self, target, path: written.add(path) or real_symlink(self, target, path))

    intel = sim_of("intel_host_t4")
    for argv in (["bind", "0000:17:00.0", "--persist"], ["modules", "load", "--persist", "--early", "0000:65:00.0"],
                 ["iommu", "enable", "--passthrough"], ["iommu", "disable"], ["restore", "--all"],
                 ["modules", "unpersist"]):
        code, out, err = intel.invoke(*argv)
        assert code == 0, (argv, out, err)
    amd = sim_of("amd_host")
    code, out, err = amd.invoke("mdev", "create", "--parent", "0000:41:00.0", "--type", "nvidia-222", "--persist")
    assert code == 0, (out, err)
    # the writes these commands are known to make (so that the audit itself is seen to work)
    for path in ("/var/lib/hostdev/bindings.json", "/etc/hostdev/bindings.d/pci-0000:17:00.0",
                 "/etc/udev/rules.d/60-hostdev.rules", "/etc/systemd/system/hostdev-bindings.service",
                 "/etc/modules-load.d/hostdev-vfio.conf", "/etc/modprobe.d/hostdev-vfio.conf",
                 "/var/lib/hostdev/boot-args.json", "/run/hostdev/lock"):
        assert path in written, (path, sorted(written))
    assert any(p.startswith("/etc/mdevctl.d/0000:41:00.0/") for p in written), sorted(written)
    _, patterns = _files_section()
    missing = sorted(p for p in written if not any(rx.match(p) for rx in patterns))
    assert not missing, f"written but not in the man page's FILES: {missing}"


def test_files_names_every_constant_path_a_write_uses():
    """A write whose path is a module constant (vm test's initramfs and kernel too, which need
    libvirt to run) is in FILES: an AST scan of hostdev/ for write_file, write_bytes, remove_file,
    add_file and symlink calls."""
    import ast
    import importlib

    calls = {"write_file": 0, "write_bytes": 0, "remove_file": 0, "add_file": 1, "symlink": 1}
    found = {}
    for source in sorted(p for p in (ROOT / "hostdev").rglob("*.py") if p.name != "__main__.py"):
        module = importlib.import_module(".".join(source.relative_to(ROOT).with_suffix("").parts))
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in calls:
                index = calls[node.func.attr]
                arg = node.args[index] if len(node.args) > index else None
                if isinstance(arg, ast.Name) and arg.id.isupper():
                    found[getattr(module, arg.id)] = f"{source.name}:{node.lineno}"
                elif isinstance(arg, ast.Attribute) and arg.attr.isupper() and isinstance(arg.value, ast.Name):
                    found[getattr(getattr(module, arg.value.id), arg.attr)] = f"{source.name}:{node.lineno}"
    for constant in ("/var/lib/libvirt/boot/hostdev-test-initrd.img", "/var/lib/hostdev/bindings.json",
                     "/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service"):
        assert constant in found, sorted(found)
    _, patterns = _files_section()
    missing = sorted(f"{path} ({where})" for path, where in found.items() if not any(rx.match(path) for rx in patterns))
    assert not missing, f"written but not in the man page's FILES: {missing}"


def test_exit_status_and_examples_sections():
    from hostdev import errors

    page = (ROOT / "docs/hostdev.1").read_text()
    status = page.split(".SH EXIT STATUS", 1)[1].split(".SH ", 1)[0]
    codes = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert codes == {0, 1, 2, 3, 4, 5, 70, 130}
    for code in codes:
        assert f"\\fB{code}\\fR" in status, code
    examples = page.split(".SH EXAMPLES", 1)[1].split(".SH ", 1)[0].replace("\\-", "-")
    for line in ("hostdev check", "sudo hostdev bind 0000:17:00.0 --persist", "hostdev kubevirt permitted"):
        assert line in examples, line
