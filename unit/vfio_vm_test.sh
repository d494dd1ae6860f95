#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/vfio_vm_test.sh: the VFIO engines and their device handling (root).
#   host: every VFIO case skips with a reason; bad --vfio-device input is
#         one line and exit 2 with nothing changed; a binding left by a
#         killed run (a fake sysfs tree) is restored by the next run
#   debian:6.1 guest: R/O VFIO maps of zero pages FAIL with the zero-page
#         report (the suite must keep detecting the known 6.1 bug), the
#         anon control passes, an IOMMU fault is told apart from zeros
#   debian:6.12 guest, nvme bound by run_tests.sh --vfio-device (profile
#         vfio=runner): the same cases pass and the binding is undone
# Prints "ok N - ..." and ends with "N passed, N failed, N skipped".

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
RUN=./run_tests.sh
SUBSET=(-t 'vfio_ro_pin/ro-map-cpu-write/*/vfio'
	-t 'vfio_ro_pin/iommu-fault-control/-/vfio'
	-t 'vfio_ro_pin/rw-map-fork-child-writes/anon/vfio')
FIX=84209e87c696

# shellcheck source=unit/vmtest-lib.sh
. "${BASH_SOURCE[0]%/*}/vmtest-lib.sh"
vt_init vfio-test
# a private state file: the host's own is never touched
export PINCHECK_STATE_DIR=$tmp/state

finish() {
	summary
	((nfail == 0))
	exit
}

err_is_one_line() { [[ $(wc -l <"$ERR") == 1 ]] && grep -qE -- "$1" "$ERR"; }
# result ID: the TAP line of case ID in $OUT
result() { grep -E "^(not )?ok [0-9]+ $1( |$)" "$OUT"; }

if ((EUID != 0)); then
	skip "VFIO tests" "need root"
	finish
fi
make -s >/dev/null </dev/null || { RC=$?; fail "build"; finish; }

# --- host: no VFIO device named, so every VFIO case skips with a reason ----

host_skips() {
	local b total=0 line rc

	for b in build/tests/*; do
		[[ -f $b && -x $b ]] || continue
		env -u PINCHECK_VFIO_DEVICE "$b" -t '*/vfio' -t '*/vfio_iommufd' \
			>"$OUT" 2>&1 </dev/null
		rc=$?
		# binaries without VFIO cases (no PC_CAP match) say so, exit 2
		((rc == 2)) && grep -q 'no case matches' "$OUT" && continue
		((rc == 4 || rc == 0)) || return 1
		while IFS= read -r line; do
			[[ $line =~ ^(not\ )?ok\ [0-9]+\ [^\ ]+/(vfio|vfio_iommufd)( |$) ]] || continue
			[[ $line =~ \#\ SKIP\ .{20,} ]] || { echo "$line" >"$ERR"; return 1; }
			total=$((total + 1))
		done <"$OUT"
	done
	echo "$total VFIO cases, all skipped" >"$ERR"
	((total > 100))
}
host_skips
check "host: every VFIO case (all binaries) skips with a reason"

env -u PINCHECK_VFIO_DEVICE build/tests/vfio_ro_pin -t '*/vfio' >"$OUT" 2>&1 </dev/null
grep -qE '# SKIP .*(--kernel debian:6.12|--vfio-device)' "$OUT"
check "host: the skip reason says what to do"

# --- host: bad --vfio-device input, nothing changed -------------------------

runner --vfio-device zz:zz -t nothing
[[ $RC == 2 ]] && err_is_one_line 'needs a PCI address'
check "--vfio-device with a malformed address: exit 2 and one line"

runner --vfio-device 00:01.0 --no-setup -t nothing
[[ $RC == 2 ]] && err_is_one_line 'drop --no-setup'
check "--vfio-device with --no-setup: exit 2 and one line"

runner --vfio-device 00:01.0 --kernel debian:6.1
[[ $RC == 2 ]] && err_is_one_line 'guest binds its edu device itself'
check "--vfio-device with --kernel: exit 2 and one line"

runner --vfio-device 00:1f.7 -t nothing
[[ $RC == 2 ]] && err_is_one_line 'no such PCI device'
check "--vfio-device naming no device: exit 2 and one line"

# a real device of this machine without a pincheck driver: refused unbound
for d in /sys/bus/pci/devices/*; do
	read -r v <"$d/vendor" && [[ $v != 0x1234 ]] && break
done
drv0=$(readlink "$d/driver" 2>/dev/null)
runner --vfio-device "${d##*/}" -t nothing
[[ $RC == 2 ]] && err_is_one_line 'has no pincheck DMA driver.*nothing was changed' &&
	[[ $(readlink "$d/driver" 2>/dev/null) == "$drv0" ]]
check "--vfio-device naming an unsupported device: exit 2, its binding untouched"

# an NVMe controller of QEMU's id whose nvme driver reports another serial
# (a fake sysfs tree): refused before anything is unbound
fake=$tmp/pci-nvme dev=$tmp/pci-nvme/devices/0000:00:05.0
mkdir -p "$fake/drivers/nvme" "$dev/nvme/nvme0" "$dev/iommu_group/devices"
echo 0x1b36 >"$dev/vendor"
echo 0x0010 >"$dev/device"
echo S4EWNX0R123456 >"$dev/nvme/nvme0/serial"
: >"$fake/drivers/nvme/unbind"
ln -s ../../drivers/nvme "$dev/driver"
PINCHECK_SYSFS_PCI=$fake runner --vfio-device 0000:00:05.0 -t nothing
[[ $RC == 2 ]] && err_is_one_line "serial 'S4EWNX0R123456'.*nothing was changed" &&
	[[ ! -s $fake/drivers/nvme/unbind && $(readlink "$dev/driver") == ../../drivers/nvme ]]
check "--vfio-device naming an NVMe controller with another serial: exit 2, not unbound"

# --- host: a binding left by a SIGKILLed run is restored by the next one ----

fake=$tmp/pci dev=$tmp/pci/devices/0000:00:04.0
mkdir -p "$PINCHECK_STATE_DIR" "$fake/drivers/vfio-pci" "$fake/drivers/fakedrv" "$dev"
: >"$fake/drivers/vfio-pci/unbind"
: >"$fake/drivers/fakedrv/bind"
echo vfio-pci >"$dev/driver_override"
ln -s ../../drivers/vfio-pci "$dev/driver"
read -r boot </proc/sys/kernel/random/boot_id
printf 'pid\t999999999\nboot\t%s\nvfio\t0000:00:04.0\tfakedrv\t\n' "$boot" \
	>"$PINCHECK_STATE_DIR/state"
PINCHECK_SYSFS_PCI=$fake runner -t nothing-matches
grep -q 'restoring system state left by an interrupted run' "$ERR" &&
	[[ $(<"$fake/drivers/vfio-pci/unbind") == 0000:00:04.0 ]] &&
	[[ -z $(<"$dev/driver_override") ]] &&
	[[ $(<"$fake/drivers/fakedrv/bind") == 0000:00:04.0 ]] &&
	[[ ! -s $PINCHECK_STATE_DIR/state ]]
check "a vfio binding left by a killed run: unbound, override cleared, old driver bound, state emptied"

# --- debian:6.1: the zero-page bug must be detected -------------------------

runner --kernel debian:6.1 --vm-out "$tmp/vm61" "${SUBSET[@]}"
id=vfio_ro_pin/ro-map-cpu-write
[[ $RC == 1 ]] &&
	result "$id/untouched/vfio" | grep -q "^not ok.*device reads the shared zero page.*$FIX" &&
	result "$id/zeropage/vfio" | grep -q "^not ok.*device reads the shared zero page.*$FIX" &&
	result "$id/huge-zeropage/vfio" | grep -q "^not ok.*device reads the huge zero page.*$FIX"
check "debian:6.1: R/O maps of zero pages FAIL with the zero-page report and the fix"
result "$id/anon/vfio" | grep -q '^ok' &&
	result vfio_ro_pin/rw-map-fork-child-writes/anon/vfio | grep -q '^ok'
check "debian:6.1: the anon R/O control and a R/W fork case pass"
result vfio_ro_pin/iommu-fault-control/-/vfio | grep -q '^ok' &&
	grep -q 'told apart: IOMMU fault.*DMAR' "$OUT"
check "debian:6.1: a device read of an unmapped IOVA is reported as an IOMMU fault"

# --- debian:6.12, nvme bound by run_tests.sh --vfio-device -------------------

sed 's/^vfio=.*/vfio=runner/' configs/vm/default.conf >"$tmp/runner.conf"
runner --kernel debian:6.12 --profile "$tmp/runner.conf" --vm-out "$tmp/vm612" \
	"${SUBSET[@]}"
[[ $RC == 0 ]] && [[ $(grep -cE "^ok [0-9]+ $id/[a-z-]+/vfio$" "$OUT") == 4 ]]
check "debian:6.12: the same R/O zero-page cases pass"
grep -qE '^# setup: 0000:[0-9a-f:.]+: no driver -> vfio-pci' "$OUT" &&
	grep -qE '^# guest: 0000:[0-9a-f:.]+ driver after the run: none' "$tmp/vm612/tap.log"
check "debian:6.12: --vfio-device bound the DMA device for the run and gave it back"

finish
