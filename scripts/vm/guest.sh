#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/vm/guest.sh RUN-ENV: the guest's run, started by /init
# (scripts/vm/vm-init.sh) in a chroot of the host root.  RUN-ENV is the
# run.env scripts/vm/vm.sh wrote into the results directory: the suite
# options as run_tests.sh parsed them (opt_*), the checkout (vm_root), the
# profile's hardware (vm_vfio) and the PINCHECK_* variables of the run.
# It sources the suite core (scripts/runner/suite.sh) and runs it: no
# option is parsed again.  PINCHECK_VM_HW tells the suite and the tests
# that the hardware comes up in the background (scripts/vm/hw.sh).
# Builtins only where it can: each exec costs ~0.1 s under TCG.

GUEST_OUT=/run/pincheck-out	# the results directory (vm.sh's GUEST_OUT)

exec >"$GUEST_OUT/tap.log" 2>&1
read -r up _ </proc/uptime
echo "$up" >"$GUEST_OUT/start-uptime"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

vm_root=
vm_vfio=none
# shellcheck source=/dev/null # written by vm.sh
. "$1" || exit 2
[[ -n $vm_root ]] || exit 2
# a checkout under /tmp or /var/tmp, which the guest covers with tmpfs:
# bound back in place from the host's view (vm-init.sh)
if [[ $vm_root == /tmp/* || $vm_root == /var/tmp/* ]]; then
	mkdir -p "$vm_root" && mount --bind "/run/pincheck-host$vm_root" "$vm_root" || exit 2
fi
cd "$vm_root" || exit 2
ROOT=$vm_root
# a shard (vm.sh --shards): the directory all guests of the run share
if [[ -n ${PINCHECK_SHARD_CLAIMS-} ]]; then
	if ! mkdir -p "$PINCHECK_SHARD_CLAIMS" ||
	   ! mount -t 9p -o trans=virtio,version=9p2000.L pcclaims "$PINCHECK_SHARD_CLAIMS"; then
		echo "Bail out! cannot mount the shards' claims directory (9p tag pcclaims)"
		exit 2
	fi
fi

read -r kver </proc/sys/kernel/osrelease
printf '# guest: kernel %s, /init after %s s\n' "$kver" "$up"
{ IFS= read -r line </proc/version && printf '%s\n' "$line" >"$GUEST_OUT/kernel-version"; } 2>/dev/null

# shellcheck source=scripts/runner/suite.sh
. scripts/runner/suite.sh || exit 2
# the options, again over the suite's defaults
# shellcheck source=/dev/null
. "$1" || exit 2
# shellcheck source=scripts/runner/lib-state.sh
. scripts/runner/lib-state.sh || exit 2
vfio_dev=
if [[ $vm_vfio != none ]] && vfio_find_dma; then
	vfio_dev=$REPLY
fi
unset up kver line

# profile vfio=auto: hw.sh binds the DMA device, the VFIO engines use it
if [[ $vm_vfio != runner ]]; then
	[[ -n $vfio_dev ]] && export PINCHECK_VFIO_DEVICE=$vfio_dev
	check_vm_hw
	suite_prepare 1
	suite_main
fi

# profile vfio=runner: the suite binds it (--vfio-device), which needs
# vfio_pci loaded, and gives it back afterwards
until [[ -e /run/pincheck-hw/modules ]]; do sleep 0.1; done
opt_vfio_device=$vfio_dev
(check_vm_hw; suite_prepare 1; suite_main)
rc=$?
if [[ -n $vfio_dev ]]; then
	drv=$(cd -P "/sys/bus/pci/devices/$vfio_dev/driver" 2>/dev/null && echo "${PWD##*/}")
	printf '# guest: %s driver after the run: %s\n' "$vfio_dev" "${drv:-none}"
fi
exit "$rc"
