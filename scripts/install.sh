#!/bin/bash
# Install hostdev for use on this host (Debian/Ubuntu): the system packages it reads
# (pci.ids for device names) and a virtual environment at /opt/hostdev with the hostdev
# command linked into /usr/local/bin. Idempotent. Usage: sudo ./scripts/install.sh
# HOSTDEV_SKIP_APT=1: the packages are there already (an offline machine, e.g. the full-system
# test VM of tests/fullsystem, which installs from a wheelhouse: PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
PREFIX=${HOSTDEV_PREFIX:-/opt/hostdev}
if command -v apt-get >/dev/null && [ "${HOSTDEV_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends python3 python3-venv pci.ids >/dev/null
fi
PY=${PYTHON:-python3}
[ -x "$PREFIX/bin/python" ] || $SUDO "$PY" -m venv "$PREFIX"
$SUDO "$PREFIX/bin/pip" install -q --upgrade .
$SUDO ln -sf "$PREFIX/bin/hostdev" /usr/local/bin/hostdev
echo "installed: $(/usr/local/bin/hostdev --version)" >&2
