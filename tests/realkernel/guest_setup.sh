#!/bin/sh
# Guest-side setup steps of the real-kernel tests. Runs ONLY inside the throwaway QEMU guest
# (kernel command line has hostdev.testguest=1); refuses to do anything anywhere else.
#
#   guest_setup.sh coldplug        load drivers for the emulated PCI devices by modalias (no udevd)
#   guest_setup.sh libvirtd-start  modprobe vfio-pci, configure and start libvirtd (qemu:///system)
#   guest_setup.sh libvirtd-stop   stop that libvirtd
#
# cmd.sh runs "coldplug" before pytest; the session fixtures in fixtures.py run the others lazily.
set -u
HERE=$(dirname "$(readlink -f "$0")")

case " $(cat /proc/cmdline) " in
  *" hostdev.testguest=1 "*) ;;
  *) echo "guest_setup.sh: not inside the hostdev test guest (no hostdev.testguest=1 in /proc/cmdline); refusing" >&2
     exit 99 ;;
esac

coldplug() {
  cat /sys/bus/pci/devices/*/modalias | sort -u | xargs modprobe -a -q -b 2>/dev/null
  true
}

libvirtd_start() {
  # libvirt refuses PCI hostdevs ("host doesn't support passthrough") without /dev/vfio/vfio
  modprobe vfio-pci || { echo "modprobe vfio-pci failed" >&2; return 1; }
  mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt/qemu /var/cache/libvirt/qemu /var/log/libvirt/qemu
  cp "$HERE/guest/qemu.conf" /etc/libvirt/qemu.conf            # the guest's tmpfs-overlay /etc
  # libvirtd resolves its compiled-in default user (libvirt-qemu) before it reads qemu.conf; that
  # user only exists with libvirt-daemon-system. Add it (and swtpm) to the guest's overlay /etc.
  getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >> /etc/group
  getent passwd libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin' >> /etc/passwd
  getent group swtpm >/dev/null || echo 'swtpm:x:64056:' >> /etc/group
  getent passwd swtpm >/dev/null || echo 'swtpm:x:64056:64056::/var/lib/swtpm:/usr/sbin/nologin' >> /etc/passwd
  [ -S /run/libvirt/libvirt-sock ] && [ -f /run/libvirtd.pid ] && kill -0 "$(cat /run/libvirtd.pid)" 2>/dev/null && return 0
  log=/tmp/libvirtd.log; [ -d /run/vmout ] && log=/run/vmout/libvirtd.log
  LIBVIRT_LOG_OUTPUTS="3:file:$log" /usr/sbin/libvirtd --daemon --pid-file=/run/libvirtd.pid || return 1
  # how long to wait: $1 seconds, measured from the guest's speed by the caller (tests/realkernel/speed.py)
  wait_s=${1:-60}
  i=0
  while [ ! -S /run/libvirt/libvirt-sock ] && [ $i -lt $((wait_s * 2)) ]; do sleep 0.5; i=$((i+1)); done
  if [ ! -S /run/libvirt/libvirt-sock ]; then
    echo "libvirtd did not create /run/libvirt/libvirt-sock within $wait_s s; log $log:" >&2
    tail -20 "$log" >&2
    return 1
  fi
}

libvirtd_stop() {
  [ -f /run/libvirtd.pid ] || return 0
  pid=$(cat /run/libvirtd.pid)
  kill "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done
  kill -9 "$pid" 2>/dev/null
  rm -f /run/libvirtd.pid
  true
}

case "${1:-}" in
  coldplug) coldplug ;;
  libvirtd-start) libvirtd_start "${2:-60}" ;;
  libvirtd-stop) libvirtd_stop ;;
  *) echo "usage: $0 coldplug|libvirtd-start|libvirtd-stop" >&2; exit 2 ;;
esac
