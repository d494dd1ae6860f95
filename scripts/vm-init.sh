#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of pincheck's guest initramfs (busybox sh; built by scripts/vm.sh).
# Loads the modules listed in /modules.order, mounts the host's root
# read-only over 9p (tag pcroot) and the run's results directory writable
# (tag pcout), then runs the host-written /run/pincheck-out/guest.sh in a
# chroot of the host root, and reboots (QEMU runs with -no-reboot: it exits).
# Progress lines go to the console (ttyS0) prefixed "pincheck-init:".

PATH=/bin
export PATH
H=/host
OUT=/run/pincheck-out

say() { echo "pincheck-init: $*" >/dev/console; }

stop() {
	sync
	umount "$H$OUT" 2>/dev/null
	reboot -f
	sleep 10
}

fail() {
	say "FAILED: $*"
	stop
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r m; do
	insmod "/modules/$m" 2>/dev/null || say "insmod $m failed"
done </modules.order

opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts,ro,cache=loose" pcroot "$H" ||
	fail "cannot mount the host root over 9p (kernel without 9p/virtio?)"
mount -t tmpfs -o mode=755 run "$H/run" || fail "cannot mount $H/run"
mkdir -p "$H$OUT"
mount -t 9p -o "$opts" pcout "$H$OUT" ||
	fail "cannot mount the results directory over 9p"
for d in tmp var/tmp; do
	mount -t tmpfs -o mode=1777 tmp "$H/$d" || fail "cannot mount $H/$d"
done
mount -t proc proc "$H/proc"
mount -t sysfs sysfs "$H/sys"
mount -t devtmpfs devtmpfs "$H/dev"
mkdir -p "$H/dev/pts" "$H/dev/shm"
mount -t devpts devpts "$H/dev/pts"
mount -t tmpfs -o mode=1777 shm "$H/dev/shm"

say "running $OUT/guest.sh"
chroot "$H" /bin/bash "$OUT/guest.sh"
echo "$?" >"$H$OUT/rc"
dmesg >"$H$OUT/dmesg.txt"
stop
