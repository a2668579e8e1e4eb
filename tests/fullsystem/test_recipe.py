"""The full-system VM's recipe and QEMU command line, without building or booting anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fullsystem import image, machine
from tests.realkernel import vm

PYPROJECT = '''[project]
name = "hostdev"
dependencies = [
    "typer>=0.9,<0.24",
    "PyYAML>=5.4",
]

[project.optional-dependencies]
test = ["pytest>=7"]
'''


def write_recipe(tmp_path: Path) -> list:
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "packages.txt").write_text("grub-pc\n")
    (recipe / "customize.sh").write_text("#!/bin/sh\n")
    return [recipe / "packages.txt", recipe / "customize.sh"]


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    monkeypatch.setattr(image, "REPO_ROOT", tmp_path)
    return write_recipe(tmp_path)


def test_the_key_changes_with_every_input_of_the_image(recipe):
    base = image.recipe_key("6.1.0-57-amd64", recipe, PYPROJECT)
    assert base == image.recipe_key("6.1.0-57-amd64", recipe, PYPROJECT)
    assert image.recipe_key("6.1.0-58-amd64", recipe, PYPROJECT) != base
    assert image.recipe_key("6.1.0-57-amd64", recipe, PYPROJECT.replace("PyYAML>=5.4", "PyYAML>=6")) != base
    recipe[0].write_text("grub-pc\nopenssh-server\n")
    changed = image.recipe_key("6.1.0-57-amd64", recipe, PYPROJECT)
    assert changed != base
    os.chmod(recipe[1], 0o755)  # a hook that becomes executable is another recipe
    assert image.recipe_key("6.1.0-57-amd64", recipe, PYPROJECT) != changed


def test_the_key_ignores_the_parts_of_pyproject_the_image_does_not_hold(recipe):
    # the test extra and the version are not in the image's venv (each run installs the checkout)
    base = image.recipe_key("6.1.0-57-amd64", recipe, PYPROJECT)
    other = PYPROJECT.replace('test = ["pytest>=7"]', 'test = ["pytest>=8", "ansible-core"]')
    assert image.recipe_key("6.1.0-57-amd64", recipe, other.replace('name = "hostdev"', 'version = "9"')) == base


def test_runtime_dependencies_is_the_dependencies_list_as_written():
    assert image.runtime_dependencies(PYPROJECT) == (
        'dependencies = [\n    "typer>=0.9,<0.24",\n    "PyYAML>=5.4",\n]')
    assert image.runtime_dependencies("[project]\nname = 'x'\n") == ""


def test_the_recipe_files_are_hashed_and_exist():
    names = {p.relative_to(image.REPO_ROOT).as_posix() for p in image.recipe_files()}
    assert {"tests/fullsystem/recipe/packages.txt", "tests/fullsystem/recipe/customize.sh",
            "tests/fullsystem/recipe/files/usr/local/sbin/hostdev-image-firstboot",
            "scripts/install.sh"} <= names


def test_the_image_has_debians_kernel_of_the_host_abi_grub_systemd_and_ssh():
    names = image.packages("6.1.0-57-amd64")
    assert names[-1] == "linux-image-6.1.0-57-amd64"
    assert {"grub-pc", "systemd-sysv", "openssh-server", "python3-venv", "mdevctl"} <= set(names)
    assert not any(name.startswith("#") or not name for name in names)


def test_apt_sources_are_the_hosts_debian_bookworm_files(tmp_path):
    listd = tmp_path / "sources.list.d"
    listd.mkdir()
    (listd / "debian.sources").write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    (listd / "nodesource.sources").write_text("Types: deb\nURIs: https://deb.example/node_20.x\nSuites: nodistro\n")
    (listd / "old.list.disabled").write_text("deb http://mirror.example/debian bookworm main\n")
    assert image.apt_sources({}, tmp_path) == [str(listd / "debian.sources")]
    assert image.apt_sources({image.SOURCES_ENV: "/a.sources /b.list"}, tmp_path) == ["/a.sources", "/b.list"]
    (listd / "debian.sources").unlink()
    with pytest.raises(vm.HarnessError, match="no apt source for Debian bookworm"):
        image.apt_sources({}, tmp_path)


def test_the_first_boot_runs_the_images_own_kernel_with_the_grub_installer_as_init(tmp_path):
    argv = image.firstboot_argv(tmp_path / "disk.raw", tmp_path / "root", "6.1.0-57-amd64", tmp_path / "c.log")
    assert argv[argv.index("-kernel") + 1] == str(tmp_path / "root/boot/vmlinuz-6.1.0-57-amd64")
    assert argv[argv.index("-initrd") + 1] == str(tmp_path / "root/boot/initrd.img-6.1.0-57-amd64")
    assert "init=/usr/local/sbin/hostdev-image-firstboot" in argv[argv.index("-append") + 1].split()
    assert "-no-reboot" in argv
    script = (image.RECIPE / "files/usr/local/sbin/hostdev-image-firstboot").read_text()
    assert "grub-install --target=i386-pc /dev/sda" in script and "update-grub" in script


def test_the_vm_boots_from_its_disk_with_the_real_kernel_guests_iommu_and_ssh_on_localhost_only(tmp_path):
    img = image.Image(tmp_path / "base.raw", "6.1.0-57-amd64", "k", None)
    machine_ = machine.FullSystemVM(img, tmp_path)
    machine_.port = 2222
    argv = machine_.qemu_argv()
    joined = " ".join(argv)
    assert "-kernel" not in argv and "-no-reboot" not in argv        # SeaBIOS → GRUB → kernel; reboots stay in QEMU
    assert "intel-iommu,intremap=on,caching-mode=on" in argv         # as tests/realkernel/vm.py
    assert f"file={tmp_path / 'disk.qcow2'},format=qcow2" in joined  # the overlay, never the base image
    netdev = argv[argv.index("-netdev") + 1]
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in netdev and "restrict=on" in netdev
    assert netdev.count("hostfwd") == 1
    assert "edu,addr=0x10" in argv and "e1000e,addr=0x11,romfile=" in argv   # no netdev: no route
    assert f"name=opt/hostdev/authorized_keys,file={tmp_path / 'id_ed25519'}.pub" in argv


def test_the_code_key_follows_what_a_wheel_of_the_checkout_holds(tmp_path):
    # the image records the code it was built from; a run from other code must reinstall it
    import subprocess

    repo = tmp_path / "repo"
    (repo / "hostdev").mkdir(parents=True)
    (repo / "tests").mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("*.pyc\n")
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / "hostdev" / "cli.py").write_text("print('a')\n")
    (repo / "tests" / "test_x.py").write_text("def test(): pass\n")
    first = image.code_key(repo)
    assert image.code_key(repo) == first
    (repo / "tests" / "test_x.py").write_text("def test(): assert 1\n")
    (repo / "hostdev" / "cli.cpython-311.pyc").write_bytes(b"ignored")
    assert image.code_key(repo) == first  # tests and ignored files are not in the wheel
    (repo / "hostdev" / "cli.py").write_text("print('b')\n")
    second = image.code_key(repo)
    assert second != first
    (repo / "hostdev" / "new.py").write_text("")  # untracked, not ignored: in the wheel
    assert image.code_key(repo) not in (first, second)
    (repo / "hostdev" / "new.py").unlink()
    (repo / "pyproject.toml").write_text(PYPROJECT + "\n# changed\n")
    assert image.code_key(repo) not in (first, second)
