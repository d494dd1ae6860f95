#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of pincheck's guest initramfs (busybox sh; built by scripts/vm.sh).
#
# On the way to the first test only what the guest needs to start: the
# modules of /modules.order (the 9p stack), the host's root read-only over
# 9p (tag pcroot), the run's results directory writable (tag pcout),
# debugfs.  Then it runs the host-written $OUT/guest.sh in a chroot of the
# host root, and reboots (QEMU runs with -no-reboot: it exits).
#
# Everything else comes up behind it, at nice 19 so that it takes the CPU
# the tests leave idle ("/init late", started in the background): the
# modules listed in the host directory named by /late (decompressed by
# vm.sh), a zram swap device, then $OUT/hw.sh (soft-RoCE, the edu device's
# binding) in the chroot.  Progress goes to /run/pincheck-hw in the chroot:
# "modules" once the modules and swap are there, "ready" when all is done;
# a test that needs the hardware waits for "ready" (PINCHECK_VM_HW).
# Progress lines go to the console (ttyS0) prefixed "pincheck-init:".

PATH=/bin
export PATH
H=/host
OUT=/run/pincheck-out
HW=/run/pincheck-hw

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

# load_modules DIR: insmod every module of DIR/modules.order, in order.
load_modules() {
	while read -r m; do
		insmod "$1/$m" 2>/dev/null || say "insmod $m failed"
	done <"$1/modules.order"
}

# zram_swap: a 256 MiB zram swap device, as run_tests.sh sets one up.
zram_swap() {
	[ -e /sys/block/zram0/disksize ] || return 0
	if ! { echo 256M >/sys/block/zram0/disksize &&
	       mkswap /dev/zram0 >/dev/null 2>&1 && swapon /dev/zram0; }; then
		say "no zram swap"
	fi
}

# The background half: modules, swap, then the chroot's hw.sh.
late_setup() {
	renice -n 19 -p $$ >/dev/null 2>&1
	read -r dir </late && load_modules "$H$dir"
	zram_swap
	echo ok >"$H$HW/modules"
	if [ -f "$H$OUT/hw.sh" ]; then
		chroot "$H" /bin/bash "$OUT/hw.sh"
	fi
	echo ok >"$H$HW/ready"
}

if [ "${1-}" = late ]; then
	late_setup
	exit 0
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

load_modules /modules

opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts,ro,cache=loose" pcroot "$H" ||
	fail "cannot mount the host root over 9p (kernel without 9p/virtio?)"
mount -t tmpfs -o mode=755 run "$H/run" || fail "cannot mount $H/run"
mkdir -p "$H$OUT" "$H$HW" "$H/run/pincheck"
mount -t 9p -o "$opts" pcout "$H$OUT" ||
	fail "cannot mount the results directory over 9p"
for d in tmp var/tmp; do
	mount -t tmpfs -o mode=1777 tmp "$H/$d" || fail "cannot mount $H/$d"
done
mount -t proc proc "$H/proc"
mount -t sysfs sysfs "$H/sys"
mount -t debugfs debugfs "$H/sys/kernel/debug" 2>/dev/null
mount -t devtmpfs devtmpfs "$H/dev"
mkdir -p "$H/dev/pts" "$H/dev/shm"
ln -s /proc/self/fd "$H/dev/fd"		# bash's process substitution
mount -t devpts devpts "$H/dev/pts"
mount -t tmpfs -o mode=1777 shm "$H/dev/shm"

/bin/sh /init late &
say "running $OUT/guest.sh"
chroot "$H" /bin/bash "$OUT/guest.sh"
echo "$?" >"$H$OUT/rc"
read -r end _ </proc/uptime
read -r start <"$H$OUT/start-uptime" && echo "$start $end" >"$H$OUT/uptime"
dmesg >"$H$OUT/dmesg.txt"
stop
