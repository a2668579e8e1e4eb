#!/bin/bash
# Install hostdev for use on this host (Debian/Ubuntu): the system packages it reads
# (pci.ids for device names) and a virtual environment at /opt/hostdev with the hostdev
# command linked into /usr/local/bin. Idempotent.
#
# Usage: sudo ./scripts/install.sh [--vm]
#   --vm   also the vm extra (libvirt-python, for 'hostdev vm test'); it is built against
#          libvirt's headers, so libvirt-dev, pkg-config, gcc and python3-dev are installed too.
#          The same as HOSTDEV_EXTRAS=vm. Run it again with --vm to add it to an installation.
# Environment: HOSTDEV_PREFIX (the venv, /opt/hostdev), HOSTDEV_BIN_DIR (where the command is
# linked, /usr/local/bin), PYTHON (the interpreter that makes the venv, python3).
# HOSTDEV_SKIP_APT=1: the packages are there already (an offline machine, e.g. the full-system
# test VM of tests/fullsystem, which installs from a wheelhouse: PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${HOSTDEV_EXTRAS:-}
for arg in "$@"; do
  case "$arg" in
    --vm) EXTRAS=vm ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (use --vm, or --help)" >&2; exit 2 ;;
  esac
done
case "$EXTRAS" in
  ""|vm) ;;
  *) echo "install.sh: HOSTDEV_EXTRAS=$EXTRAS is not known (use vm, or leave it unset)" >&2; exit 2 ;;
esac
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
PREFIX=${HOSTDEV_PREFIX:-/opt/hostdev}
BIN_DIR=${HOSTDEV_BIN_DIR:-/usr/local/bin}
PACKAGES=(python3 python3-venv pci.ids)
[ "$EXTRAS" = vm ] && PACKAGES+=(libvirt-dev pkg-config gcc python3-dev)
if command -v apt-get >/dev/null && [ "${HOSTDEV_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi
PY=${PYTHON:-python3}
[ -x "$PREFIX/bin/python" ] || $SUDO "$PY" -m venv "$PREFIX"
SPEC="."; [ "$EXTRAS" = vm ] && SPEC=".[vm]"
$SUDO "$PREFIX/bin/pip" install -q --upgrade "$SPEC"
$SUDO ln -sf "$PREFIX/bin/hostdev" "$BIN_DIR/hostdev"
echo "installed: $("$BIN_DIR/hostdev" --version)${EXTRAS:+ with the $EXTRAS extra}" >&2
