# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# System state for the suite: what run_tests.sh changes itself (THP, mTHP,
# hugetlb pool, a zram swap device, the debugfs mount, a VFIO binding), each
# value written to the state file BEFORE the change, so that a run killed
# with SIGKILL is repaired by the next run.  What the tests change (KSM,
# NUMA balancing and its scanner, the per-cpu page lists, cgroups) has one
# registry, the C knob journal (lib/harness/knob.c): the binaries put it back after
# every case, and append each entry to the file PINCHECK_KNOB_JOURNAL before
# the change; what a killed binary leaves there is replayed here
# (knob_journal_replay): after that binary, at the end of the run and, the
# state file naming the journal, by the next run after a SIGKILL.
#
# Sourced by the suite core (scripts/runner/suite.sh) and by the guest's
# scripts/vm/hw.sh; uses only builtins on the hot path (each exec is
# expensive over 9p in a VM).  Messages go through the caller's `warn`;
# setup notes are printed as TAP comments ("# setup: ...").
#
# State file (tab separated, one change per line, undone last to first):
#   pid   <pid of the run that owns the file>
#   boot  <boot id: a file from before a reboot describes nothing live>
#   tmp   <work directory to remove>
#   knob  <sysfs/procfs path>  <value before the run>
#   zram  <device number>  <1 if hot-added by us, else 0>
#   mount <mount point we mounted (debugfs)>
#   journal <the tests' knob journal file (PINCHECK_KNOB_JOURNAL)>
#   module <module we loaded (vfio_pci, for --vfio-device)>
#   vfio  <PCI address>  <driver before, "" for none>  <driver_override before>
# An empty or missing file means: nothing to restore.

state_dir=${PINCHECK_STATE_DIR:-/run/pincheck}
state_file=$state_dir/state
# 1 while this run owns the state file (read by run_tests.sh)
# shellcheck disable=SC2034
state_owned=0

STATE_THP=/sys/kernel/mm/transparent_hugepage
STATE_HUGETLB=/sys/kernel/mm/hugepages
STATE_ZRAM_CTL=/sys/class/zram-control
STATE_SWAP_SIZE=256M

# knob_read PATH: the current value in REPLY ("[x]" choice lists give x).
knob_read() {
	local line=
	REPLY=
	{ IFS= read -r line || [[ -n $line ]]; } 2>/dev/null <"$1" || return 1
	if [[ $line =~ \[([^]]*)\] ]]; then
		REPLY=${BASH_REMATCH[1]}
	else
		REPLY=$line
	fi
}

# knob_write PATH VALUE
knob_write() {
	{ printf '%s\n' "$2" >"$1"; } 2>/dev/null
}

# Every knob the runner changes (setup_thp, setup_hugetlb), recorded and
# restored when it differs afterwards.  The tests' knobs are in their
# journal (lib/harness/knob.c), not here.
state_knobs() {
	local p
	STATE_KNOBS=()
	for p in "$STATE_THP"/enabled "$STATE_THP"/hugepages-*kB/enabled \
		 "$STATE_HUGETLB"/hugepages-*kB/nr_hugepages; do
		[[ -f $p ]] && STATE_KNOBS+=("$p")
	done
}

# swap_in_use [DEV]: true if /proc/swaps lists DEV (any device if omitted).
swap_in_use() {
	local name rest first=1
	while read -r name rest; do
		if ((first)); then
			first=0
			continue
		fi
		[[ -z ${1-} || $name == "$1" ]] && return 0
	done 2>/dev/null </proc/swaps
	return 1
}

# is_mounted DIR: true if DIR is a mount point (from /proc/self/mounts).
is_mounted() {
	local dev mnt rest
	while read -r dev mnt rest; do
		[[ $mnt == "$1" ]] && return 0
	done 2>/dev/null </proc/self/mounts
	return 1
}

# --- restore ---------------------------------------------------------------

# knob_restore PATH VALUE: write VALUE back if it differs now.
knob_restore() {
	[[ -e $1 ]] || return 0
	knob_read "$1" && [[ $REPLY == "$2" ]] && return 0
	knob_write "$1" "$2"
	knob_read "$1" && [[ $REPLY == "$2" ]] && return 0
	warn "could not restore $1 to '$2' (it is '$REPLY')"
	return 1
}

# journal_rmdir DIR: remove a directory a test made (a cgroup: busy
# until the killed case's processes are gone, 2 s at most).
journal_rmdir() {
	local i

	for ((i = 0; i < 40; i++)); do
		[[ -d $1 ]] || return 0
		rmdir -- "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	warn "could not remove $1"
	return 1
}

# knob_journal_replay FILE: undo what a test binary recorded in its knob
# journal (lib/harness/knob.c; lines "write PATH OLD", "undo PATH WRITE" (written
# once, as "-memory": not read back), "rmdir DIR", "umount DIR") and could
# not undo itself (killed), last entry first.  Empties FILE when everything
# was undone.
knob_journal_replay() {
	undo_entries "$1" journal_undo_entry || {
		warn "the knob journal $1 was not fully replayed; kept for the next run"
		return 1
	}
}

# journal_undo_entry KIND A B: undo one knob journal entry.
journal_undo_entry() {
	case $1 in
	write) knob_restore "$2" "$3" ;;
	undo)
		[[ ! -e $2 ]] || knob_write "$2" "$3" ||
			{ warn "could not write '$3' to $2"; return 1; }
		;;
	rmdir) journal_rmdir "$2" ;;
	umount)
		! is_mounted "$2" || umount -l "$2" 2>/dev/null ||
			{ warn "could not unmount $2"; return 1; }
		;;
	esac
}

# undo_entries FILE HANDLER: call HANDLER KIND A B for every line
# "KIND<tab>A<tab>B" of FILE, last line first (B keeps any further tabs).
# Empties FILE when every call succeeded; false (FILE kept) otherwise.
undo_entries() {
	local -a lines
	local i line kind a b fail=0

	[[ -s $1 ]] || return 0
	mapfile -t lines <"$1"
	for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
		line=${lines[i]}
		kind=${line%%$'\t'*}
		line=${line#"$kind"$'\t'}
		a=${line%%$'\t'*}
		b=${line#"$a"$'\t'}
		"$2" "$kind" "$a" "$b" || fail=1
	done
	((fail == 0)) || return 1
	: >"$1"
}

# zram_teardown N ADDED: swapoff, reset, and hot_remove if we added it.
zram_teardown() {
	local dev=/dev/zram$1 sys=/sys/block/zram$1
	if swap_in_use "$dev" && ! swapoff "$dev"; then
		warn "could not swapoff $dev"
		return 1
	fi
	[[ -e $sys/reset ]] && knob_write "$sys/reset" 1
	if [[ $2 == 1 && -e $sys ]] &&
	   ! knob_write "$STATE_ZRAM_CTL/hot_remove" "$1"; then
		warn "could not remove zram$1"
		return 1
	fi
	return 0
}

# state_undo_entry KIND A B: undo one change of the state file.
state_undo_entry() {
	case $1 in
	knob) knob_restore "$2" "$3" ;;
	zram) zram_teardown "$2" "$3" ;;
	tmp) [[ -d $2 ]] && rm -rf -- "$2"; return 0 ;;
	journal) knob_journal_replay "$2" ;;
	vfio) vfio_restore "$2" "${3%%$'\t'*}" "${3#*$'\t'}" ;;
	module)
		[[ ! -d /sys/module/$2 ]] || modprobe -r "$2" 2>/dev/null ||
			{ warn "could not unload module $2"; return 1; }
		;;
	mount)
		! is_mounted "$2" || umount "$2" 2>/dev/null ||
			{ warn "could not unmount $2"; return 1; }
		;;
	esac
}

# state_restore: undo everything in the state file, last change first.
# Idempotent; empties the file when everything was restored.
state_restore() {
	undo_entries "$state_file" state_undo_entry || {
		warn "system state not fully restored; kept $state_file for the next run"
		return 1
	}
	state_owned=0
}

boot_id() {
	{ IFS= read -r REPLY </proc/sys/kernel/random/boot_id; } 2>/dev/null
}

# state_recover: called before anything else by a run that will change
# system state.  Returns 1 when another live run owns the state file or
# the old state could not be restored.
state_recover() {
	local line pid='' boot=''
	local -a cmd

	[[ -s $state_file ]] || return 0
	while IFS= read -r line; do
		case $line in
		pid$'\t'*) pid=${line#pid$'\t'} ;;
		boot$'\t'*) boot=${line#boot$'\t'} ;;
		*) break ;;
		esac
	done <"$state_file"
	if [[ -n $boot ]] && boot_id && [[ $REPLY != "$boot" ]]; then
		warn "discarding $state_file: it is from before the last boot"
		: >"$state_file"
		return 0
	fi
	if [[ $pid =~ ^[0-9]+$ && $pid != "$$" ]] && kill -0 "$pid" 2>/dev/null &&
	   mapfile -d '' -t cmd 2>/dev/null <"/proc/$pid/cmdline" &&
	   [[ "${cmd[*]}" == *run_tests.sh* ]]; then
		warn "another run (pid $pid) owns $state_file; wait for it or use --no-setup"
		return 1
	fi
	warn "restoring system state left by an interrupted run"
	state_restore && return 0
	# Going on would record the unrestored values as the originals.
	warn "fix the above or remove $state_file, then run again"
	return 1
}

# --- a PCI device for the VFIO engines (run_tests.sh --vfio-device) --------

STATE_PCI=${PINCHECK_SYSFS_PCI:-/sys/bus/pci}
# vendor:device:name of the devices pincheck has a DMA driver for
# (lib/engines/vfio/), the preferred first: QEMU's NVMe controller (fast;
# its driver writes only to the serial NVME_DMA_SERIAL), QEMU's edu.
VFIO_DRIVERS=("0x1b36:0x0010:nvme" "0x1234:0x11e8:edu")
NVME_DMA_SERIAL=pincheck-dma

# vfio_find_dma: the PCI address of the first device of VFIO_DRIVERS that
# pincheck's VM has, in REPLY; false if there is none.  Builtins only (the
# VM runs it).
vfio_find_dma() {
	local d v id want

	for want in "${VFIO_DRIVERS[@]}"; do
		for d in "$STATE_PCI"/devices/*; do
			{ read -r v <"$d/vendor" && read -r id <"$d/device"; } 2>/dev/null || continue
			[[ $want == "$v:$id:"* ]] || continue
			REPLY=${d##*/}
			return 0
		done
	done
	return 1
}

# nvme_foreign DEV: true when DEV (a sysfs device dir) is an NVMe
# controller its nvme driver reports with another serial than ours
# (REPLY: that serial): never hand it over.
nvme_foreign() {
	local sn

	for sn in "$1"/nvme/nvme*/serial; do
		[[ -r $sn ]] || continue
		knob_read "$sn" || continue
		REPLY=${REPLY%"${REPLY##*[! ]}"}
		[[ $REPLY != "$NVME_DMA_SERIAL" ]] && return 0
	done
	return 1
}

# pci_driver DIR: the driver bound to the PCI device at DIR in REPLY ("").
pci_driver() {
	local t

	REPLY=
	t=$(readlink -- "$1/driver" 2>/dev/null) || return 0
	REPLY=${t##*/}
}

# vfio_device_check BDF: may BDF be handed to vfio-pci?  Changes nothing;
# on refusal the reason is in REPLY and the status is 1.
vfio_device_check() {
	local bdf=$1 dev=$STATE_PCI/devices/$1 v='' d='' id ok='' grp other

	if [[ ! -d $dev ]]; then
		REPLY="--vfio-device $bdf: no such PCI device"
		return 1
	fi
	knob_read "$dev/vendor" && v=$REPLY
	knob_read "$dev/device" && d=$REPLY
	for id in "${VFIO_DRIVERS[@]}"; do
		[[ $id == "$v:$d:"* ]] && ok=${id##*:}
	done
	if [[ -z $ok ]]; then
		REPLY="--vfio-device $bdf: device $v:$d has no pincheck DMA driver (supported: nvme 0x1b36:0x0010 with serial $NVME_DMA_SERIAL, edu 0x1234:0x11e8); nothing was changed"
		return 1
	fi
	if [[ $ok == nvme ]] && nvme_foreign "$dev"; then
		REPLY="--vfio-device $bdf: NVMe controller with serial '$REPLY': pincheck writes only to the one with serial $NVME_DMA_SERIAL; nothing was changed"
		return 1
	fi
	if ! grp=$(readlink -- "$dev/iommu_group" 2>/dev/null); then
		REPLY="--vfio-device $bdf: no IOMMU group (boot with intel_iommu=on or amd_iommu=on); nothing was changed"
		return 1
	fi
	for other in "$dev/iommu_group/devices/"*; do
		[[ ${other##*/} == "$bdf" ]] && continue
		pci_driver "$other"
		[[ -z $REPLY || $REPLY == vfio-pci ]] && continue
		REPLY="--vfio-device $bdf: IOMMU group ${grp##*/} also holds ${other##*/} (driver $REPLY), and only the named device is ever unbound; nothing was changed"
		return 1
	done
	return 0
}

# vfio_bind BDF: bind BDF to vfio-pci for the run, recorded first.
vfio_bind() {
	local bdf=$1 dev=$STATE_PCI/devices/$1 drv override=''

	pci_driver "$dev"
	drv=$REPLY
	if [[ $drv == vfio-pci ]]; then
		printf '# setup: %s already bound to vfio-pci\n' "$bdf"
		return 0
	fi
	knob_read "$dev/driver_override" && override=$REPLY
	[[ $override == "(null)" ]] && override=
	if [[ ! -d $STATE_PCI/drivers/vfio-pci && ! -d /sys/module/vfio_pci ]]; then
		state_note module vfio_pci
		if ! modprobe vfio_pci 2>/dev/null; then
			warn "--vfio-device $bdf: cannot load vfio_pci (kernel without VFIO?)"
			return 1
		fi
	fi
	state_note vfio "$bdf" "$drv" "$override"
	if ! knob_write "$dev/driver_override" vfio-pci ||
	   { [[ -n $drv ]] && ! knob_write "$dev/driver/unbind" "$bdf"; } ||
	   ! knob_write "$STATE_PCI/drivers_probe" "$bdf"; then
		warn "--vfio-device $bdf: could not rebind it to vfio-pci"
		return 1
	fi
	pci_driver "$dev"
	if [[ $REPLY != vfio-pci ]]; then
		warn "--vfio-device $bdf: vfio-pci did not take it (driver now: ${REPLY:-none})"
		return 1
	fi
	printf '# setup: %s: %s -> vfio-pci (restored afterwards)\n' "$bdf" "${drv:-no driver}"
}

# vfio_restore BDF DRIVER OVERRIDE: give BDF back to DRIVER ("": none).
vfio_restore() {
	local bdf=$1 dev=$STATE_PCI/devices/$1

	[[ -d $dev ]] || return 0
	pci_driver "$dev"
	if [[ -n $REPLY && $REPLY != "$2" ]] &&
	   ! knob_write "$dev/driver/unbind" "$bdf"; then
		warn "could not unbind $bdf from $REPLY"
		return 1
	fi
	# an empty line clears driver_override
	if ! knob_write "$dev/driver_override" "$3"; then
		warn "could not restore the driver_override of $bdf"
		return 1
	fi
	[[ -n $2 ]] || return 0
	pci_driver "$dev"
	[[ $REPLY == "$2" ]] && return 0
	if ! knob_write "$STATE_PCI/drivers/$2/bind" "$bdf"; then
		warn "could not bind $bdf back to $2"
		return 1
	fi
}

# --- setup -----------------------------------------------------------------

# state_begin [WORKDIR]: record every knob before any change.
state_begin() {
	local -a lines=("pid"$'\t'"$$")
	local p

	boot_id && lines+=("boot"$'\t'"$REPLY")

	if [[ ! -d $state_dir ]] && ! mkdir -p -- "$state_dir"; then
		warn "cannot create $state_dir"
		return 1
	fi
	[[ -n ${1-} ]] && lines+=("tmp"$'\t'"$1")
	state_knobs
	for p in "${STATE_KNOBS[@]}"; do
		knob_read "$p" && lines+=("knob"$'\t'"$p"$'\t'"$REPLY")
	done
	if ! printf '%s\n' "${lines[@]}" >"$state_file"; then
		warn "cannot write $state_file"
		return 1
	fi
	# shellcheck disable=SC2034
	state_owned=1
}

# state_note LINE...: append a record before the change it describes.
state_note() {
	local IFS=$'\t'
	printf '%s\n' "$*" >>"$state_file"
}

# THP: the top level and every mTHP size set to "never" become "madvise".
setup_thp() {
	local f size
	local -a changed=()	# indexed by size in kB: listed in order

	if knob_read "$STATE_THP/enabled" && [[ $REPLY == never ]]; then
		knob_write "$STATE_THP/enabled" madvise &&
			printf '# setup: THP enabled never -> madvise\n'
	fi
	for f in "$STATE_THP"/hugepages-*kB/enabled; do
		knob_read "$f" || continue
		[[ $REPLY == never ]] || continue
		size=${f%kB/enabled}
		size=${size##*hugepages-}
		knob_write "$f" madvise && changed[size]=${size}kB
	done
	((${#changed[@]})) &&
		printf '# setup: mTHP %s never -> madvise\n' "${changed[*]}"
	return 0
}

# hugetlb: 64 free 2 MiB pages (up to 128 MiB per size, none of 1 GiB+).
# In pincheck's VM the guest's hardware setup fills the pool in the
# background (its pages are zeroed when allocated: 0.5 s under TCG).
setup_hugetlb() {
	local d kb want nr free resv avail

	if [[ -n ${PINCHECK_VM_HW-} ]]; then
		printf '# setup: hugetlb pool: filled by the VM in the background\n'
		return 0
	fi
	for d in "$STATE_HUGETLB"/hugepages-*kB; do
		[[ -d $d ]] || continue
		kb=${d##*hugepages-}
		kb=${kb%kB}
		((kb < 1048576)) || continue
		want=$((131072 / kb))
		((want > 64)) && want=64
		((want > 0)) || continue
		knob_read "$d/nr_hugepages" || continue
		nr=$REPLY
		knob_read "$d/free_hugepages" || continue
		free=$REPLY
		knob_read "$d/resv_hugepages" && resv=$REPLY || resv=0
		avail=$((free - resv))
		((avail < want)) || continue
		knob_write "$d/nr_hugepages" $((nr + want - avail))
		knob_read "$d/nr_hugepages"
		printf '# setup: hugetlb %skB nr_hugepages %s -> %s' "$kb" "$nr" "$REPLY"
		knob_read "$d/free_hugepages" && free=$REPLY
		if ((free - resv < want)); then
			printf ' (only %s free, wanted %s)' $((free - resv)) "$want"
		fi
		printf '\n'
	done
}

# A zram device with no disksize (unused), or a hot-added one: N in REPLY,
# zram_added=1 when hot-added.
zram_pick() {
	local s ds

	for s in /sys/block/zram*; do
		knob_read "$s/disksize" || continue
		ds=$REPLY
		[[ $ds == 0 ]] || continue
		REPLY=${s##*/zram}
		zram_added=0
		state_note zram "$REPLY" 0
		return 0
	done
	[[ -w $STATE_ZRAM_CTL/hot_add ]] || return 1
	IFS= read -r REPLY 2>/dev/null <"$STATE_ZRAM_CTL/hot_add" || return 1
	[[ $REPLY =~ ^[0-9]+$ ]] || return 1
	zram_added=1
	state_note zram "$REPLY" 1
}

# swap: none configured -> a 256 MiB zram swap device.
setup_swap() {
	local n dev log

	swap_in_use && return 0
	if [[ -n ${PINCHECK_VM_HW-} ]]; then
		printf '# setup: swap: zram from the VM init, in the background\n'
		return 0
	fi
	if [[ ! -e $STATE_ZRAM_CTL && ! -e /sys/block/zram0 ]]; then
		printf '# setup: no swap and no zram: swap-backed cases will skip\n'
		return 0
	fi
	if ! command -v mkswap >/dev/null || ! command -v swapon >/dev/null; then
		printf '# setup: no swap: mkswap/swapon not found (Debian: util-linux)\n'
		return 0
	fi
	if ! zram_pick; then
		printf '# setup: no swap: no free zram device\n'
		return 0
	fi
	n=$REPLY
	dev=/dev/zram$n
	log=$state_dir/mkswap.log
	if knob_write "/sys/block/zram$n/disksize" "$STATE_SWAP_SIZE" &&
	   mkswap "$dev" >"$log" 2>&1 && swapon "$dev" >>"$log" 2>&1; then
		printf '# setup: swap: %s zram on %s\n' "$STATE_SWAP_SIZE" "$dev"
		return 0
	fi
	printf '# setup: no swap: could not set up %s (see %s)\n' "$dev" "$log"
	zram_teardown "$n" "$zram_added"
}

# debugfs: the gup_test engine lives there; mounted for the run if it is not.
setup_debugfs() {
	local dir=/sys/kernel/debug
	[[ -d $dir ]] && ! is_mounted "$dir" || return 0
	command -v mount >/dev/null || return 0
	state_note mount "$dir"
	if mount -t debugfs none "$dir" 2>/dev/null; then
		printf '# setup: mounted debugfs on %s (unmounted afterwards)\n' "$dir"
	else
		printf '# setup: could not mount debugfs on %s: gup_test cases will skip\n' "$dir"
	fi
}

# The tests' knob journal of a run that owns the state file; noted last, so
# that it is replayed first (before debugfs, where some of its knobs live,
# is unmounted).
STATE_JOURNAL=$state_dir/knobs
state_note_journal() {
	: >"$STATE_JOURNAL" 2>/dev/null || {
		warn "cannot write $STATE_JOURNAL"
		return 1
	}
	state_note journal "$STATE_JOURNAL"
}

# state_setup_disposable: the changes without a record, for pincheck's VM
# (PINCHECK_VM_HW), a guest thrown away after the run; its init fills the
# hugetlb pool and makes the swap and the debugfs mount in the background.
state_setup_disposable() {
	setup_thp
	setup_hugetlb
	setup_swap
}

# state_setup WORKDIR: record, then change.  Returns 1 if recording failed.
state_setup() {
	state_begin "$1" || return 1
	setup_thp
	setup_hugetlb
	setup_swap
	setup_debugfs
	state_note_journal
}
