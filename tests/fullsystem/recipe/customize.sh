#!/bin/sh
# mmdebstrap --customize-hook of the full-system test VM (tests/fullsystem/image.py). Runs inside
# mmdebstrap's own mount namespace; every change is made under ROOT, the tree that becomes the
# VM's disk. Usage: customize.sh ROOT RECIPE_DIR SOURCE_TAR WHEELHOUSE FS_UUID MTTY_KO KERNEL_VERSION CODE_KEY
set -eu
root=$1 recipe=$2 source_tar=$3 wheelhouse=$4 fs_uuid=$5 mtty_ko=$6 kver=$7 code=$8

cp -a "$recipe/files/." "$root/"
echo "UUID=$fs_uuid / ext4 errors=remount-ro 0 1" > "$root/etc/fstab"
echo hostdev-vm > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\thostdev-vm\n' > "$root/etc/hosts"
chroot "$root" systemctl enable systemd-networkd.service hostdev-test-authorized-keys.service
# nothing waits for the network (the VM reaches nothing); no timers that start apt or man-db
chroot "$root" systemctl mask systemd-networkd-wait-online.service apt-daily.timer \
  apt-daily-upgrade.timer man-db.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  dpkg-db-backup.timer 2>/dev/null || true
# root logs in with the run's key only (Debian's default PermitRootLogin prohibit-password)
chroot "$root" passwd -d root >/dev/null

# the mtty sample mdev driver (built on the host for this kernel by tests/realkernel/vm.py), installed
# like a vendor's driver: under updates/, loaded at every boot
install -D -m 0644 "$mtty_ko" "$root/lib/modules/$kver/updates/mtty.ko"
chroot "$root" depmod "$kver"
echo mtty > "$root/etc/modules-load.d/mtty.conf"

# the project, installed as scripts/install.sh installs it, offline: the VM reaches no index
mkdir -p "$root/tmp/hostdev-src" "$root/tmp/wheelhouse"
tar -xf "$source_tar" -C "$root/tmp/hostdev-src"
cp "$wheelhouse"/* "$root/tmp/wheelhouse/"
chroot "$root" env HOSTDEV_SKIP_APT=1 PIP_NO_INDEX=1 PIP_FIND_LINKS=/tmp/wheelhouse \
  PIP_DISABLE_PIP_VERSION_CHECK=1 /bin/bash /tmp/hostdev-src/scripts/install.sh
rm -rf "$root/tmp/hostdev-src" "$root/tmp/wheelhouse"
# which code that is (image.code_key): a run from the same code need not reinstall it
echo "$code" > "$root/opt/hostdev/.hostdev-code"
