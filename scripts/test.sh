#!/bin/bash
# Install everything the tests need on a fresh Debian 12 machine (system packages included:
# QEMU, a kernel image and headers, libvirt, mdevctl …) and run the whole test suite:
# lint (ruff, Python 3.9 target; vermin), unit tests, and the real-kernel tests in a QEMU
# guest, which must run (never skip) here. Usage: sudo ./scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null && [ "${HOSTDEV_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  echo "== apt packages" >&2
  $SUDO apt-get update -q >/dev/null
  # shellcheck disable=SC2046
  $SUDO apt-get install -y -q --no-install-recommends $(grep -v '^#' scripts/apt-test-packages.txt) >/dev/null
fi
PY=${PYTHON:-python3}
echo "== virtual environment .venv ($("$PY" --version))" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q -e '.[vm,test]'
echo "== lint: ruff (py39 target), vermin (Python 3.9)" >&2
.venv/bin/ruff check hostdev tests bench scripts
.venv/bin/vermin -q --no-tips --violations --eval-annotations --target=3.9- hostdev
echo "== tests (unit + real kernel)" >&2
export HOSTDEV_REQUIRE_REALKERNEL=1
exec .venv/bin/python -m pytest "$@"
