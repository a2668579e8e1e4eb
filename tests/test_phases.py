"""tests/phases.py: scripts/test.sh's phase times at the end of pytest's summary."""
import os
import subprocess
import sys
from pathlib import Path

from tests.phases import parse_phases

REPO = Path(__file__).resolve().parent.parent


def test_parse_phases_reads_the_pairs_test_sh_writes():
    raw = "apt packages=95;virtual environment .venv (Python 3.11.7)=31;lint: ruff (py39 target), vermin=4;"
    assert parse_phases(raw) == [("apt packages", 95), ("virtual environment .venv (Python 3.11.7)", 31),
                                 ("lint: ruff (py39 target), vermin", 4)]
    assert parse_phases("") == []
    assert parse_phases("broken;x=;=5;y=1.5;ok=2") == [("ok", 2)]


def test_summary_ends_with_the_phases_and_their_total(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_ok():\n    pass\n")
    env = dict(os.environ, HOSTDEV_PHASE_TIMES="apt packages=95;lint=4;", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.phases", "-p", "no:cacheprovider",
                           str(tmp_path / "test_one.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    section = proc.stdout.split("phase times", 1)[1].splitlines()
    rows = [line.split() for line in section if line.strip() and not line.strip().startswith("=")]
    assert rows[0][:2] == ["apt", "packages"] and rows[0][-2:] == ["95", "s"]
    assert rows[1][0] == "lint" and rows[1][-2:] == ["4", "s"]
    assert rows[2][0] == "pytest" and rows[3][0] == "total"
    assert int(rows[3][-2]) == 95 + 4 + int(rows[2][-2])


def test_no_section_outside_test_sh(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_ok():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "HOSTDEV_PHASE_TIMES"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.phases", "-p", "no:cacheprovider",
                           str(tmp_path / "test_one.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "phase times" not in proc.stdout


def test_the_whole_run_table_shows_the_side_by_side_sessions_as_parts_of_the_last_phase():
    # scripts/test.sh's last word: the sessions overlap, so they are shown under their phase and
    # the total is the phases' sum (wall clock), not the sessions'
    env = dict(os.environ, HOSTDEV_PHASE_TIMES="apt packages=95;lint=4;tests side by side=1200;",
               PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "tests.phases", "--part", "pytest -m 'not fullsystem'=700",
                           "--part", "pytest -m fullsystem=1150"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line.rsplit(None, 2) for line in proc.stdout.splitlines()[1:]]
    assert [(name, int(seconds)) for name, seconds, _ in rows] == [
        ("apt packages", 95), ("lint", 4), ("tests side by side", 1200),
        ("  pytest -m 'not fullsystem'", 700), ("  pytest -m fullsystem", 1150), ("total", 1299)]
    bad = subprocess.run([sys.executable, "-m", "tests.phases", "--part", "no seconds"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "NAME=SECONDS" in bad.stderr


def test_a_session_names_itself_in_its_table(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_ok():\n    pass\n")
    env = dict(os.environ, HOSTDEV_PHASE_TIMES="lint=4;", HOSTDEV_PYTEST_PHASE="pytest -m fullsystem",
               PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.phases", "-p", "no:cacheprovider",
                           str(tmp_path / "test_one.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    section = proc.stdout.split("phase times", 1)[1].splitlines()
    assert any(line.startswith("pytest -m fullsystem ") for line in section), section
