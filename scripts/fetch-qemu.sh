#!/bin/bash
# Unpack QEMU 10 from Debian's bookworm-backports into .cache/qemu/root, BESIDE the system QEMU:
# nothing is installed and nothing under /etc or /var/lib/apt is touched (apt runs with its own
# sources list, lists, cache and an empty dpkg status, all under .cache/qemu/apt).
#
# Why: Debian 12's QEMU 7.2 has no SR-IOV device; QEMU 8.0 and later emulate the Intel 82576
# (igb) with SR-IOV, which the real-kernel guest needs for the `hostdev sriov` tests
# (tests/realkernel/vm.py find_qemu uses .cache/qemu/root when it is there). Other QEMU guests on
# the same machine keep the system QEMU.
#
# Idempotent: the packages are downloaded and unpacked again only when the backport's version
# changes (.cache/qemu/root/VERSION). Usage: scripts/fetch-qemu.sh [destination]
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$(realpath -m "${1:-.cache/qemu}")
suite=bookworm-backports
mirror=http://deb.debian.org/debian
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
# the emulator, its firmware and option ROMs (-L), its loadable modules, and the SeaBIOS it asks for
packages=(qemu-system-x86 qemu-system-data qemu-system-common seabios)

apt_dir=$dest/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/debs"
echo "deb [signed-by=$keyring] $mirror $suite main" > "$apt_dir/sources.list"
: > "$apt_dir/status"
apt_opts=(-q -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=/dev/null"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
          -o "Dir::Cache=$apt_dir" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
          -o APT::Sandbox::User="$(id -un)")
apt-get "${apt_opts[@]}" update >/dev/null

want=""
for package in "${packages[@]}"; do
  version=$(apt-cache "${apt_opts[@]}" policy "$package" | awk '/Candidate:/ {print $2}')
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    echo "fetch-qemu.sh: $package is not in $suite ($mirror)" >&2
    exit 1
  fi
  want+="$package=$version "
done
if [ -x "$dest/root/usr/bin/qemu-system-x86_64" ] && [ "$(cat "$dest/root/VERSION" 2>/dev/null)" = "$want" ]; then
  echo "fetch-qemu.sh: $dest/root is up to date ($want)" >&2
  exit 0
fi

rm -f "$apt_dir/debs"/*.deb
# shellcheck disable=SC2086
(cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download $want >/dev/null)
staging=$(mktemp -d "$dest/.root-XXXXXX")
for deb in "$apt_dir/debs"/*.deb; do
  dpkg-deb -x "$deb" "$staging"
done
"$staging/usr/bin/qemu-system-x86_64" --version | head -1 >&2
echo "$want" > "$staging/VERSION"
rm -rf "$dest/root"
mv "$staging" "$dest/root"
chmod 755 "$dest/root"
rm -f "$apt_dir/debs"/*.deb
echo "fetch-qemu.sh: unpacked $want into $dest/root" >&2
