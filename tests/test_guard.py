"""The write guard refuses changes outside the temporary directory BEFORE they happen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

from tests import guard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable

guard.install()  # idempotent; the plugin normally does it in pytest_configure


def _outside_dir() -> str:
    """A directory outside every allowed root: the repository, unless the checkout itself lies
    under the temporary directory (a CI clone in /tmp), then /var/tmp or the home directory."""
    tmp = os.path.realpath(tempfile.gettempdir()).rstrip("/") + "/"
    for candidate in (REPO, "/var/tmp", os.path.expanduser("~")):
        real = os.path.realpath(candidate)
        if os.path.isdir(real) and not (real + "/").startswith(tmp):
            return real
    pytest.fail("no directory outside the temporary directory to probe (neither the checkout, "
                "/var/tmp nor the home directory)", pytrace=False)


def _outside(name: str) -> str:
    """A harmless path outside every allowed root (nothing is ever written there)."""
    path = os.path.join(_outside_dir(), f".hostdev-guard-probe-{os.getpid()}-{name}")
    assert not os.path.lexists(path)
    return path


@pytest.fixture
def guarded():
    with guard.active(), guard.expected_violations() as found:
        yield found


def test_open_for_write_outside_tmp_is_blocked_before_it_happens(guarded):
    target = _outside("open")
    with pytest.raises(guard.GuardViolation) as exc:
        with open(target, "w") as handle:
            handle.write("x")
    assert not os.path.lexists(target)
    assert target in str(exc.value)
    assert any(target in v for v in guarded)


def test_etc_probe_is_blocked(guarded):
    target = "/etc/hostdev-guard-probe"
    with pytest.raises(PermissionError):
        open(target, "a").close()
    assert not os.path.lexists(target)


@pytest.mark.parametrize("flags", [os.O_WRONLY | os.O_CREAT, os.O_RDWR | os.O_CREAT,
                                   os.O_CREAT | os.O_APPEND | os.O_WRONLY])
def test_os_open_write_flags_are_blocked(guarded, flags):
    target = _outside(f"osopen{flags}")
    with pytest.raises(guard.GuardViolation):
        os.close(os.open(target, flags, 0o644))
    assert not os.path.lexists(target)


def test_read_outside_tmp_is_allowed(guarded):
    with open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8") as handle:
        assert "hostdev" in handle.read()
    fd = os.open("/proc/cmdline", os.O_RDONLY)
    os.close(fd)
    assert guarded == []


def test_dir_fd_relative_open_is_resolved(guarded, tmp_path, monkeypatch):
    # cwd is the allowed tmp dir, the dir_fd is the repository: the dir_fd must decide
    monkeypatch.chdir(tmp_path)
    outside = _outside_dir()
    repo_fd = os.open(outside, os.O_RDONLY | os.O_DIRECTORY)
    name = f".hostdev-guard-probe-{os.getpid()}-dirfd"
    try:
        with pytest.raises(guard.GuardViolation):
            os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=repo_fd)
    finally:
        os.close(repo_fd)
    assert not os.path.lexists(os.path.join(outside, name))
    assert len(guarded) == 1 and name in guarded[0]
    # and the other way round: cwd is outside, the dir_fd is tmp → allowed
    monkeypatch.chdir(outside)
    tmp_fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(os.open("ok", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=tmp_fd))
        os.mkdir("sub", dir_fd=tmp_fd)
    finally:
        os.close(tmp_fd)
    assert (tmp_path / "ok").exists() and (tmp_path / "sub").is_dir()
    assert len(guarded) == 1


def test_metadata_changes_outside_tmp_are_blocked(tmp_path):
    """Guarded calls aimed at existing files outside the allowed roots (chmod, truncate, rmtree
    …). The files are a sacrificial copy: a child session whose temporary directory is a sibling
    of them, so the test is the same wherever the checkout lies (a CI clone in /tmp too) and a
    guard bug would only damage the copy."""
    outside = tmp_path / "outside"
    (outside / "hostdev").mkdir(parents=True)
    (outside / "pyproject.toml").write_text("[project]\nname = 'sacrificial'\n")
    (outside / "hostdev" / "__init__.py").write_text("")
    (outside / "pyproject.toml").chmod(0o644)
    before = os.stat(outside / "pyproject.toml")
    result = _run_child_pytest(tmp_path, f"""
        import os, shutil
        import pytest
        from tests import guard

        OUTSIDE = {str(outside)!r}

        def test_metadata(tmp_path):
            pyproject = os.path.join(OUTSIDE, "pyproject.toml")
            new = os.path.join(OUTSIDE, "new")
            inside = tmp_path / "file"
            inside.write_text("x")
            calls = [
                lambda: os.mkdir(new),
                lambda: os.symlink("/etc/passwd", new),
                lambda: os.link(str(inside), new),
                lambda: os.rename(str(inside), new),
                lambda: os.replace(str(inside), new),
                lambda: shutil.copyfile(str(inside), new),
                lambda: os.chmod(pyproject, 0o600),
                lambda: os.utime(pyproject),
                lambda: os.truncate(pyproject, 0),
                lambda: os.remove(pyproject),
                lambda: os.rmdir(os.path.join(OUTSIDE, "hostdev")),
                lambda: shutil.rmtree(os.path.join(OUTSIDE, "hostdev")),
            ]
            with guard.expected_violations() as found:
                for call in calls:
                    with pytest.raises(guard.GuardViolation):
                        call()
            assert len(found) == len(calls)
            assert inside.read_text() == "x"
    """, tmpdir=tmp_path / "childtmp")
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "1 passed" in out, out
    after = os.stat(outside / "pyproject.toml")
    assert (before.st_mode, before.st_size, before.st_mtime_ns) == (after.st_mode, after.st_size, after.st_mtime_ns)
    assert (outside / "hostdev" / "__init__.py").is_file()
    assert sorted(os.listdir(outside)) == ["hostdev", "pyproject.toml"]


def test_symlink_in_tmp_pointing_outside_is_followed(guarded, tmp_path):
    target = _outside("vialink")
    link = tmp_path / "link"
    os.symlink(target, link)
    with pytest.raises(guard.GuardViolation):
        link.write_text("x")
    assert not os.path.lexists(target)


def test_removing_a_link_in_tmp_that_points_outside_is_allowed(guarded, tmp_path):
    link = tmp_path / "fd"
    os.symlink("/dev/vfio/5", link)   # like /proc/PID/fd/N in a fake root
    os.remove(link)
    os.symlink("/etc", tmp_path / "etc")
    os.rename(tmp_path / "etc", tmp_path / "etc2")
    os.unlink(tmp_path / "etc2")
    assert guarded == [] and os.path.isdir("/etc")


def test_tmp_path_and_dev_null_writes_are_allowed(guarded, tmp_path):
    (tmp_path / "a").write_text("hello")
    os.makedirs(tmp_path / "b" / "c")
    os.symlink("a", tmp_path / "l")
    os.rename(tmp_path / "a", tmp_path / "b" / "a")
    shutil.rmtree(tmp_path / "b")
    with open(os.devnull, "w") as handle:
        handle.write("x")
    assert guarded == []


@pytest.mark.parametrize("argv", [["modprobe", "--version"], ["/sbin/modprobe", "--version"],
                                  ["update-grub"], ["grub2-mkconfig", "-o", "/dev/null"],
                                  ["sh", "-c", "modprobe --version"], ["mdevctl", "list"]])
def test_machine_changing_programs_are_refused(guarded, argv):
    with pytest.raises(guard.GuardViolation) as exc:
        subprocess.run(argv, capture_output=True, check=False)
    name = os.path.basename(argv[0]) if argv[0] != "sh" else "modprobe"
    assert name in str(exc.value)
    assert len(guarded) == 1


def test_os_system_is_checked(guarded):
    with pytest.raises(guard.GuardViolation):
        os.system("modprobe --version >/dev/null 2>&1")


def test_harmless_programs_run(guarded):
    result = subprocess.run([PYTHON, "-c", "import os; print(os.environ.get('HOSTDEV_TEST_GUARD'))"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1"
    assert guarded == []


def test_live_host_write_is_refused_by_hostdev_itself(tmp_path):
    """A child process has no audit hook: hostdev.host must refuse on its own. The child also
    installs a hook that raises if anything opens a file for writing, so even a Host bug
    could not reach /sys; the expected failure is HostEnvironmentError, not the hook."""
    script = textwrap.dedent("""
        import os, sys
        def hook(event, args):
            if event == "open" and args[0] is not None and not str(args[0]).endswith(".pyc"):
                mode, flags = args[1], args[2]
                if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                        mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)):
                    raise RuntimeError("CHILD-HOOK-WRITE " + str(args[0]))
        sys.addaudithook(hook)
        from hostdev.errors import HostEnvironmentError
        from hostdev.host import Host
        try:
            Host("/").write_attr("/sys/bus/pci/drivers_probe", "x")
        except HostEnvironmentError as exc:
            print("REFUSED", exc)
            sys.exit(3)
        print("NOT REFUSED")
    """)
    env = dict(os.environ, HOSTDEV_TEST_GUARD="1", PYTHONPATH=REPO, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "REFUSED" in result.stdout
    assert "CHILD-HOOK-WRITE" not in result.stdout + result.stderr


def _run_child_pytest(tmp_path, body: str, tmpdir=None) -> subprocess.CompletedProcess:
    """A pytest session in a child process with its own base directory under ``tmp_path`` (the
    default one would first clean up old runs in /tmp/pytest-of-USER: 30–60 s); ``tmpdir``
    narrows the child's temporary directory (TMPDIR) to a part of ``tmp_path``."""
    test_file = tmp_path / "test_child.py"
    test_file.write_text(textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONDONTWRITEBYTECODE="1")
    env.pop("HOSTDEV_TEST_GUARD", None)
    temp = tmp_path if tmpdir is None else tmpdir
    if tmpdir is not None:
        tmpdir.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "tests.guard", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), f"--basetemp={temp / 'basetemp'}", "-o", "addopts=", str(test_file)],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120)


def test_swallowed_violation_still_fails_the_test(tmp_path):
    target = _outside("child")
    result = _run_child_pytest(tmp_path, f"""
        import os, subprocess
        def test_swallows_write():
            try:
                open({target!r}, "w").close()
            except OSError:
                pass
        def test_swallows_modprobe():
            try:
                subprocess.run(["modprobe", "--version"], capture_output=True)
            except OSError:
                pass
        def test_clean(tmp_path):
            (tmp_path / "x").write_text("ok")
            assert os.environ["HOSTDEV_TEST_GUARD"] == "1"
    """)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "2 failed, 1 passed" in out, out
    assert "hostdev test guard blocked" in out
    assert target in out
    assert "'modprobe'" in out
    assert not os.path.lexists(target)


def test_violation_in_fixture_teardown_fails(tmp_path):
    target = _outside("teardown")
    result = _run_child_pytest(tmp_path, f"""
        import pytest
        @pytest.fixture
        def leaky():
            yield
            try:
                open({target!r}, "w").close()
            except OSError:
                pass
        def test_uses_leaky(leaky):
            pass
    """)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "hostdev test guard blocked" in out and target in out
    assert not os.path.lexists(target)


def test_pipes_to_child_processes_are_allowed():
    import subprocess

    result = subprocess.run(["cat"], input="through a pipe", capture_output=True, text=True)
    assert result.stdout == "through a pipe"
