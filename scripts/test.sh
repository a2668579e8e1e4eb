#!/bin/bash
# Install everything the tests need on a fresh Debian 12 machine (system packages included:
# QEMU, a kernel image and headers, libvirt, mdevctl …) and run the whole test suite:
# lint (ruff, Python 3.9 target; vermin), unit tests, and the real-kernel tests in a QEMU
# guest, which must run (never skip) here. Usage: sudo ./scripts/test.sh [pytest args]
# pytest's summary ends with the time each phase took ("phase times", tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export HOSTDEV_PHASE_TIMES=""
phase_name=""
phase_start=$SECONDS
phase() {  # end the running phase (if any), start the next one
  [ -z "$phase_name" ] || HOSTDEV_PHASE_TIMES+="$phase_name=$((SECONDS - phase_start));"
  phase_name=$1; phase_start=$SECONDS
  echo "== $1" >&2
}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null && [ "${HOSTDEV_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  phase "apt packages"
  $SUDO apt-get update -q >/dev/null
  # shellcheck disable=SC2046
  $SUDO apt-get install -y -q --no-install-recommends $(grep -v '^#' scripts/apt-test-packages.txt) >/dev/null
  # QEMU 10 (igb, SR-IOV) for the real-kernel guest, unpacked into .cache/qemu beside the system
  # QEMU 7.2, never installed (docs/testing.md, "SR-IOV")
  phase "QEMU 10 from bookworm-backports (unpacked into .cache/qemu)"
  ./scripts/fetch-qemu.sh
fi
PY=${PYTHON:-python3}
phase "virtual environment .venv ($("$PY" --version))"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q -e '.[vm,test]'
if [ "$#" = 0 ]; then
  # the whole suite: the full-system VM's disk image (tests/fullsystem/image.py; cached under
  # .cache/fullsystem, rebuilt when its recipe changes) builds in the background from here on (not
  # niced: the full-system session below waits for it, and it is the longest path of the run)
  mkdir -p .cache/fullsystem
  .venv/bin/python -m tests.fullsystem.image >.cache/fullsystem/background-build.log 2>&1 &
fi
phase "lint: ruff (py39 target), vermin (Python 3.9)"
.venv/bin/ruff check hostdev tests bench scripts
.venv/bin/vermin -q --no-tips --violations --eval-annotations --target=3.9- hostdev
# nothing may skip or xfail (tests/strict.py) except the node ids in scripts/allowed-skips.txt;
# a skip that is not expected by name fails the run
export HOSTDEV_REQUIRE_REALKERNEL=1
export HOSTDEV_ALLOWED_SKIPS="$PWD/scripts/allowed-skips.txt"
if [ "$#" != 0 ]; then
  phase "pytest $*"
  export HOSTDEV_PYTEST_PHASE="pytest $*"
  exec .venv/bin/python -m pytest "$@"
fi
# The whole suite as two pytest sessions side by side, each about a third of the run when idle:
# the unit tests then the real-kernel guest (one QEMU), and the full-system VM (another QEMU, after
# its image). One after the other they took 27.5 min on an idle 2-core machine; side by side the
# run fits 30 min with one core kept busy by another job (docs/testing.md, "Timings measured").
# The full-system session's output is kept in a file and printed after the other's.
phase "tests: unit + real kernel | full system, side by side"
fs_log=.cache/fullsystem/session.log
fs_times=.cache/fullsystem/session.rc
rm -f "$fs_times"
(
  started=$(date +%s)
  rc=0
  HOSTDEV_PYTEST_PHASE="pytest -m fullsystem (beside the other session)" \
    .venv/bin/python -m pytest -p no:cacheprovider -m fullsystem >"$fs_log" 2>&1 || rc=$?
  echo "$rc $(( $(date +%s) - started ))" >"$fs_times"
) &
fs_pid=$!
started=$(date +%s)
rc_unit=0
HOSTDEV_PYTEST_PHASE="pytest -m 'not fullsystem' (beside the other session)" \
  .venv/bin/python -m pytest -m "not fullsystem" || rc_unit=$?
unit_s=$(( $(date +%s) - started ))
echo "== waiting for the full-system session (its output: $fs_log)" >&2
wait "$fs_pid" || true
read -r rc_fs fs_s <"$fs_times" || { rc_fs=99; fs_s=0; }
echo
echo "==================== the full-system session ($fs_log) ===================="
cat "$fs_log"
phase "end"
.venv/bin/python -m tests.phases --part "pytest -m 'not fullsystem'=$unit_s" --part "pytest -m fullsystem=$fs_s"
echo "exit status: pytest -m 'not fullsystem' $rc_unit, pytest -m fullsystem $rc_fs"
[ "$rc_unit" = 0 ] && [ "$rc_fs" = 0 ]
