#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/vm/hw.sh RUN-ENV: the guest's hardware setup, run in the
# background by /init once the profile's modules are in (vm-init.sh), with
# the run.env scripts/vm/vm.sh wrote (vm_rdma, vm_vfio: the profile's keys).
# Tests that need it wait for /run/pincheck-hw/ready.  The hugetlb pool as
# run_tests.sh fills it (scripts/runner/lib-state.sh); profile rdma=rxe:
# soft-RoCE over a veth pair (MTU 9000 gives rxe 4096-byte packets: RDMA
# under TCG 2-3x faster), its state in /run/pincheck-hw/rdma; vfio=auto:
# the DMA device (QEMU's NVMe controller, else edu) bound to vfio-pci
# (driver_override + drivers_probe; the guest is thrown away, nothing to
# restore), its state in /run/pincheck-hw/vfio.

GUEST_OUT=/run/pincheck-out	# the results directory (vm.sh's GUEST_OUT)
HW=/run/pincheck-hw

exec >"$GUEST_OUT/hw.log" 2>&1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# shellcheck disable=SC2317 # called by lib-state.sh
warn() { printf 'hw.sh: %s\n' "$*"; }

vm_rdma=none
vm_vfio=none
# shellcheck source=/dev/null # written by vm.sh
. "$1" || exit 2
# shellcheck source=scripts/runner/lib-state.sh
. "${BASH_SOURCE[0]%/*}/../runner/lib-state.sh" || exit 2

# no duplicate address detection: the link-local GID is usable at once (a
# tentative one made an RC connect time out in RTR)
no_dad() {
	local i

	for i; do
		echo 0 >"/proc/sys/net/ipv6/conf/$i/accept_dad"
	done 2>/dev/null
	return 0
}

setup_rxe() {
	if ip link add pcrxe0 mtu 9000 type veth peer name pcrxe1 mtu 9000 &&
	   no_dad pcrxe0 pcrxe1 &&
	   ip link set pcrxe0 up && ip link set pcrxe1 up &&
	   rdma link add rxe0 type rxe netdev pcrxe0; then
		echo "rxe0 pcrxe0" >"$HW/rdma"
	else
		echo "none: rdma_rxe, veth or the rdma tool missing" >"$HW/rdma"
	fi
}

# The DMA device this VM has (NVMe, else edu) to vfio-pci: the devices
# vm.sh added are ours, so a driver the guest bound first (nvme) lets go.
bind_dma() {
	local dev sys

	vfio_find_dma || return 0
	dev=$REPLY
	sys=/sys/bus/pci/devices/$dev
	{ echo vfio-pci >"$sys/driver_override" &&
	  { [[ ! -e $sys/driver ]] || echo "$dev" >"$sys/driver/unbind"; } &&
	  echo "$dev" >/sys/bus/pci/drivers_probe; } 2>/dev/null
	if [[ -e /sys/bus/pci/drivers/vfio-pci/$dev ]]; then
		# no reset at each open and close of the device (vfio-pci
		# resets a function on both; an FLR waits 100 ms, 0.23 s per
		# case): the drivers reset the controller themselves.  The
		# kernels before 5.15 have no reset_method: they stay slower.
		{ echo >"$sys/reset_method"; } 2>/dev/null
		echo "$dev vfio-pci" >"$HW/vfio"
	else
		echo "none: could not bind $dev to vfio-pci" >"$HW/vfio"
	fi
}

PINCHECK_VM_HW='' setup_hugetlb
[[ $vm_rdma == rxe ]] && setup_rxe
[[ $vm_vfio == auto ]] && bind_dma
exit 0
