#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of pincheck's guest initramfs (busybox sh; built by scripts/vm/vm.sh).
#
# On the way to the first test only what the guest needs to start: the
# modules of /modules.order (the 9p stack), the host's root read-only over
# 9p (tag pcroot), the run's results directory writable (tag pcout),
# debugfs.  Then it runs scripts/vm/guest.sh with the run's $OUT/run.env
# (both named by vm.sh: $OUT/vm-dir is where the guest sees scripts/vm/)
# in a chroot of the host root, and reboots (QEMU runs with -no-reboot: it
# exits).
#
# Everything else comes up behind it, at nice 19 so that it takes the CPU
# the tests leave idle ("/init late", started in the background): the
# modules listed in the host directory named by /late (decompressed by
# vm.sh), a zram swap device, then scripts/vm/hw.sh (soft-RoCE, the DMA
# device's binding) in the chroot.  Progress goes to /run/pincheck-hw in the chroot:
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

# The background half: modules, swap, then the chroot's hw.sh.  It starts a
# second after the guest script: with one vCPU, module loading and the
# kernel threads it wakes (not niced) slowed the first test by 0.3 s.
late_setup() {
	sleep 1
	# on the first vCPU, with the tests that keep to it (PINCHECK_ONE_CPU):
	# TCG gives each busy vCPU an equal share of its one host thread,
	# so only there does nice 19 leave the first tests the CPU
	taskset -p 1 $$ >/dev/null 2>&1
	renice -n 19 -p $$ >/dev/null 2>&1
	read -r dir </late && load_modules "$H$dir"
	zram_swap
	echo ok >"$H$HW/modules"
	if read -r vmdir <"$H$OUT/vm-dir" && [ -f "$H$OUT/run.env" ]; then
		chroot "$H" /bin/bash "$vmdir/hw.sh" "$OUT/run.env"
	fi
	echo ok >"$H$HW/ready"
}

if [ "${1-}" = late ]; then
	late_setup
	exit 0
fi

# mounted DIR: is something mounted on DIR?
mounted() {
	while read -r _ dir _; do
		[ "$dir" = "$1" ] && return 0
	done </proc/mounts
	return 1
}

# Few processes: each exec costs here (under TCG), so the mounts go in two
# `mount -a` runs, around the directories the second one needs.
mount_all() {
	o9p=trans=virtio,version=9p2000.L,msize=262144
	cat >/fstab.boot <<-EOF
	proc /proc proc defaults 0 0
	sysfs /sys sysfs defaults 0 0
	devtmpfs /dev devtmpfs defaults 0 0
	pcroot $H 9p $o9p,ro,cache=loose 0 0
	run $H/run tmpfs mode=755 0 0
	devtmpfs $H/dev devtmpfs defaults 0 0
	EOF
	# the host's /tmp and /var/tmp stay visible under /run/pincheck-host
	# (a checkout there: scripts/vm/guest.sh binds it back in place)
	cat >/fstab.host <<-EOF
	pcout $H$OUT 9p $o9p 0 0
	$H/tmp $H/run/pincheck-host/tmp none bind 0 0
	$H/var/tmp $H/run/pincheck-host/var/tmp none bind 0 0
	tmp $H/tmp tmpfs mode=1777 0 0
	tmp $H/var/tmp tmpfs mode=1777 0 0
	proc $H/proc proc defaults 0 0
	sysfs $H/sys sysfs defaults 0 0
	debugfs $H/sys/kernel/debug debugfs defaults 0 0
	devpts $H/dev/pts devpts defaults 0 0
	shm $H/dev/shm tmpfs mode=1777 0 0
	EOF
	mount -a -T /fstab.boot 2>/dev/null
	mounted "$H" ||
		fail "cannot mount the host root over 9p (kernel without 9p/virtio?)"
	mounted "$H/run" || fail "cannot mount $H/run"
	mkdir -p "$H$OUT" "$H$HW" "$H/run/pincheck" "$H/dev/pts" "$H/dev/shm" \
		"$H/run/pincheck-host/tmp" "$H/run/pincheck-host/var/tmp"
	ln -s /proc/self/fd "$H/dev/fd"		# bash's process substitution
	mount -a -T /fstab.host 2>/dev/null
	mounted "$H$OUT" || fail "cannot mount the results directory over 9p"
	for d in tmp var/tmp proc sys dev/pts; do
		mounted "$H/$d" || fail "cannot mount $H/$d"
	done
}

load_modules /modules
mount_all

/bin/sh /init late &
read -r vmdir <"$H$OUT/vm-dir" || fail "no $OUT/vm-dir (written by vm.sh)"
say "running $vmdir/guest.sh"
chroot "$H" /bin/bash "$vmdir/guest.sh" "$OUT/run.env"
echo "$?" >"$H$OUT/rc"
read -r end _ </proc/uptime
read -r start <"$H$OUT/start-uptime" && echo "$start $end" >"$H$OUT/uptime"
dmesg >"$H$OUT/dmesg.txt"
stop
