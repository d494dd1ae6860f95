#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/vm/vm.sh: the VM half of `run_tests.sh --kernel SPEC`.  Called by
# run_tests.sh (which parsed and checked the options and built the binaries):
#
#   vm.sh --kernel SPEC [--modules DIR] [--profile P] [--vm-timeout S]
#         [--json F] [--junit F] [--out DIR] [--shards N] [--run-env FILE]
#
# Resolves SPEC to a kernel image and its modules (Debian's kernels come
# from the archive's verified indexes, fetched and unpacked into the cache
# once: scripts/kernels/kernels-debian.sh; SPEC list prints them), builds a
# busybox initramfs per kernel (cached), boots QEMU with the profile's
# hardware, shares the host root read-only over 9p and runs the suite core
# inside (scripts/vm/guest.sh, scripts/runner/suite.sh) with the options of
# FILE (run_tests.sh's write_run_env), which it copies into the guest's
# run.env with the guest's own settings.  Streams the guest's TAP, keeps
# console.log, dmesg.txt, tap.log and the results in --out, and exits with
# the guest's status; a panic, hang or boot failure is a failed run (1).
# With --shards N (more than 1) it runs N guests of the same kernel at once,
# each in OUT/shard-K (vm.sh --shard K/N --claims DIR: internal), which
# take the test binaries one by one (run_sharded); their TAP is merged
# into one stream (scripts/vm/shard-merge.awk), their records into one
# set of results.
# Exit 2: unknown SPEC, bad image or modules, no disk space, missing tools.
#
# Environment: PINCHECK_DEBIAN_* and PINCHECK_INDEX_TTL (Debian's kernels:
# scripts/kernels/kernels-debian.sh), PINCHECK_VM_RESOLVE_ONLY=1 (print the kernel's
# files, boot nothing: for the tests),
# PINCHECK_CACHE (default /var/cache/pincheck), PINCHECK_ACCEL
# (kvm or tcg: skip the KVM probe), PINCHECK_QEMU (the QEMU binary).

set -u

PROG=run_tests.sh
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd) || exit 2
CACHE=${PINCHECK_CACHE:-/var/cache/pincheck}
QEMU=${PINCHECK_QEMU:-qemu-system-x86_64}
QEMU_DATA=/usr/share/qemu	# Debian's qemu-system-data
GUEST_OUT=/run/pincheck-out	# where the guest sees the results directory

warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { warn "$@"; exit 2; }
note() { printf '%s: %s\n' "$PROG" "$*" >&2; }

opt_kernel=
opt_modules=
opt_profile=default
opt_vm_timeout=1800
opt_json=
opt_junit=
opt_out=
opt_shards=
opt_shard=		# K/N: this guest is shard K of N (run_sharded)
opt_claims=		# the shards' shared directory of taken binaries
vm_args=()		# the options as given, for the shards
DMA_NVME_IMG=	# the NVMe DMA device's disk (profile key dma_nvme)
run_env=

parse_args() {
	while (($#)); do
		case $1 in
		--kernel) opt_kernel=$2; vm_args+=("$1" "$2"); shift ;;
		--modules) opt_modules=$2; vm_args+=("$1" "$2"); shift ;;
		--profile) opt_profile=$2; vm_args+=("$1" "$2"); shift ;;
		--vm-timeout) opt_vm_timeout=$2; vm_args+=("$1" "$2"); shift ;;
		--json) opt_json=$2; shift ;;
		--junit) opt_junit=$2; shift ;;
		--out) opt_out=$2; shift ;;
		--shards) opt_shards=$2; shift ;;
		--shard) opt_shard=$2; shift ;;
		--claims) opt_claims=$2; shift ;;
		--run-env) run_env=$(<"$2") || die "cannot read $2"; shift ;;
		*) die "vm.sh: unknown option '$1'" ;;
		esac
		shift
	done
}

# --- the profile -------------------------------------------------------------

declare -A prof=()

# profile_path NAME|PATH: the profile's file in REPLY.
profile_path() {
	REPLY=$1
	[[ $REPLY == */* || $REPLY == *.conf ]] || REPLY=$ROOT/configs/vm/$REPLY.conf
	[[ -r $REPLY ]] || die "no VM profile '$1' (looked for $REPLY)"
}

# read_profile NAME|PATH DEPTH: its KEY=VALUE lines into prof[]; a line
# base=NAME takes that profile's keys at that point (later lines override).
read_profile() {
	local f line key

	profile_path "$1"
	f=$REPLY
	(($2 < 4)) || die "$f: base= nested too deep"
	while IFS= read -r line || [[ -n $line ]]; do
		[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
		[[ $line =~ ^([a-z_]+)=(.*)$ ]] ||
			die "$f: not KEY=VALUE: $line"
		key=${BASH_REMATCH[1]}
		if [[ $key == base ]]; then
			read_profile "${BASH_REMATCH[2]}" $(($2 + 1))
			continue
		fi
		[[ -v prof[$key] ]] || die "$f: unknown key '$key'"
		prof[$key]=${BASH_REMATCH[2]}
	done <"$f"
}

# load_profile NAME|PATH: the profile into prof[], checked.
load_profile() {
	local f

	profile_path "$1"
	f=$REPLY
	prof=([memory_mb]=2048 [numa_nodes]=1 [devices]='' [cmdline]=''
	      [modules]='virtio_pci 9pnet_virtio 9p' [rdma]=none [vfio]=auto
	      [dma_nvme]=0)
	read_profile "$1" 0
	[[ ${prof[memory_mb]} =~ ^[1-9][0-9]*$ && ${prof[numa_nodes]} =~ ^[1-9]$ ]] ||
		die "$f: memory_mb and numa_nodes must be positive numbers"
	[[ ${prof[dma_nvme]} =~ ^(0|[1-9][0-9]{0,3})$ ]] ||
		die "$f: dma_nvme must be a size in MiB below 10000, or 0"
	[[ ${prof[vfio]} =~ ^(auto|runner|none)$ ]] ||
		die "$f: vfio must be auto, runner or none"
}

# --- kernels -----------------------------------------------------------------

# need_space DIR MIB: die unless DIR's filesystem has MIB free.
need_space() {
	local avail

	mkdir -p -- "$1" 2>/dev/null || die "cannot create $1"
	avail=$(df -Pk -- "$1" | awk 'NR == 2 { print int($4 / 1024) }')
	if [[ ! $avail =~ ^[0-9]+$ ]] || ((avail < $2)); then
		die "not enough disk space in $1: ${avail:-?} MiB free, need $2 MiB"
	fi
}

# is_kernel_image FILE: an ELF vmlinux or a bzImage ("HdrS" at 0x202).
is_kernel_image() {
	local magic

	magic=$(od -An -c -N 4 -- "$1" 2>/dev/null | tr -d ' ')
	[[ $magic == 177ELF ]] && return 0
	magic=$(od -An -c -j 514 -N 4 -- "$1" 2>/dev/null | tr -d ' ')
	[[ $magic == HdrS ]]
}

# has_pvh_note ELF: QEMU can boot it directly (CONFIG_PVH).
has_pvh_note() {
	readelf -n -- "$1" 2>/dev/null | grep -q 'Xen.*0x00000012'
}

# elf_complete FILE: an ELF file holding all its segments and section
# headers (a truncated vmlinux does not).
elf_complete() {
	local size need=0 off len

	[[ -s $1 && $(od -An -c -N 4 -- "$1" 2>/dev/null | tr -d ' ') == 177ELF ]] || return 1
	size=$(stat -c %s -- "$1") || return 1
	# "offset length" of the section header table and of each segment
	while read -r off len; do
		[[ $off =~ ^(0x[0-9a-f]+|[0-9]+)$ && $len =~ ^(0x[0-9a-f]+|[0-9]+)$ ]] || return 1
		((off + len > need)) && need=$((off + len))
	done < <(LC_ALL=C readelf -hlW -- "$1" 2>/dev/null | awk '
		/Start of section headers:/ { sh = $5 }
		/Size of section headers:/ { ss = $5 }
		/Number of section headers:/ { sn = $5 }
		$1 == "LOAD" || $1 == "NOTE" { print $2, $5 }
		END { print sh + 0, ss * sn }')
	((need > 0 && need <= size))
}

# bzimage_payload BZIMAGE: "start length" of its compressed kernel (boot
# protocol: setup_sects at 0x1f1, payload_offset/_length at 0x248) in REPLY.
bzimage_payload() {
	local sects off len

	sects=$(od -An -tu1 -j 497 -N 1 -- "$1" 2>/dev/null | tr -d ' ')
	read -r off len < <(od -An -tu4 -j 584 -N 8 -- "$1" 2>/dev/null)
	[[ $sects =~ ^[0-9]+$ && $off =~ ^[0-9]+$ && $len =~ ^[0-9]+$ ]] && ((len > 8)) || return 1
	((sects)) || sects=4
	REPLY="$(((sects + 1) * 512 + off)) $len"
}

# bzimage_truncated BZIMAGE: its payload ends past the end of the file.
bzimage_truncated() {
	local start len

	bzimage_payload "$1" || return 1
	read -r start len <<<"$REPLY"
	((start + len > $(stat -c %s -- "$1")))
}

# decompress_payload BZIMAGE START LENGTH OUT: the payload decompressed into
# OUT; false unless the decompressor succeeded and OUT has the size the
# payload's last 4 bytes announce.
decompress_payload() {
	local in=$1 start=$2 len=$3 out=$4 magic tool want rc

	magic=$(od -An -tx1 -j "$start" -N 4 -- "$in" | tr -d ' \n')
	case $magic in
	fd377a58) tool=xz len=$((len - 4)) ;;
	28b52ffd) tool=zstd len=$((len - 4)) ;;
	1f8b08*) tool=gzip ;;
	*) return 1 ;;
	esac
	command -v "$tool" >/dev/null || return 1
	want=$(od -An -tu4 -j $((start + $3 - 4)) -N 4 -- "$in" | tr -d ' ')
	tail -c +$((start + 1)) -- "$in" | head -c "$len" | "$tool" -dc >"$out" 2>/dev/null
	rc=${PIPESTATUS[2]}
	((rc == 0)) && [[ $(stat -c %s -- "$out") == "$want" ]]
}

# extract_vmlinux BZIMAGE OUT: the ELF kernel inside a bzImage, for QEMU's
# PVH entry (1-3 s faster to boot under TCG than the bzImage).  Written to a
# temporary name and renamed once complete: a full disk leaves no truncated
# vmlinux behind, and a cached one that is not complete is not used.
# Status 1: no PVH entry in that kernel; 2: it could not be extracted.
extract_vmlinux() {
	local in=$1 out=$2 tmp=$2.tmp$$ start len rc=2

	[[ -e $out ]] && elf_complete "$out" && return 0
	bzimage_payload "$in" || return 1
	read -r start len <<<"$REPLY"
	if decompress_payload "$in" "$start" "$len" "$tmp" && elf_complete "$tmp"; then
		has_pvh_note "$tmp" || rc=1
		((rc == 2)) && mv -f -- "$tmp" "$out" && return 0
	fi
	rm -f -- "$tmp" "$out"
	return "$rc"
}

# kernel_version_of IMAGE: "6.12.1" from a bzImage header or an ELF string.
kernel_version_of() {
	local ptr

	if [[ $(od -An -c -N 4 -- "$1" | tr -d ' ') == 177ELF ]]; then
		LC_ALL=C grep -aom1 'Linux version [^ ]*' -- "$1" | awk '{ print $3 }'
		return
	fi
	ptr=$(od -An -tu2 -j 526 -N 2 -- "$1" | tr -d ' ')
	[[ $ptr =~ ^[0-9]+$ ]] || return
	dd if="$1" bs=1 skip=$((ptr + 512)) count=128 2>/dev/null |
		tr '\0' '\n' | head -n 1 | awk '{ print $1 }'
}

# Debian's kernels: fetch_debian, list_kernels (scripts/kernels/kernels-debian.sh).
# shellcheck source=scripts/kernels/kernels-debian.sh
. "$ROOT/scripts/kernels/kernels-debian.sh"

# use_image PATH [MODULES]: K_* for a self-built kernel.
use_image() {
	local img=$1 key dir

	[[ -f $img && -r $img ]] || die "no kernel image at '$img'"
	is_kernel_image "$img" || die "'$img' is not a kernel image (bzImage or vmlinux)"
	K_VER=$(kernel_version_of "$img")
	K_IMAGE=$img
	if [[ $(od -An -c -N 4 -- "$img" | tr -d ' ') == 177ELF ]]; then
		elf_complete "$img" || die "'$img' is a truncated or damaged ELF kernel"
		has_pvh_note "$img" || die "'$img' is an ELF kernel without a PVH entry (CONFIG_PVH): pass the bzImage"
	else
		bzimage_truncated "$img" && die "'$img' is a truncated bzImage (its payload ends past the file)"
		key=$(printf '%s %s' "$(realpath -- "$img")" "$(stat -c '%s %Y' -- "$img")" | cksum | cut -d' ' -f1)
		dir=$CACHE/images/$key
		mkdir -p -- "$dir" || die "cannot create $dir"
		if [[ ! -e $dir/no-pvh ]]; then
			extract_vmlinux "$img" "$dir/vmlinux"
			case $? in
			0) K_IMAGE=$dir/vmlinux ;;
			1) : >"$dir/no-pvh" ;;
			*) note "could not extract the vmlinux of $img into $dir (disk full?): booting the bzImage" ;;
			esac
		fi
	fi
	K_MODDIR=
	if [[ -n $opt_modules ]]; then
		local m=$opt_modules
		[[ -e $m/lib/modules/$K_VER ]] && m=$m/lib/modules/$K_VER
		[[ -e $m/$K_VER/modules.dep ]] && m=$m/$K_VER
		[[ -e $m/modules.dep ]] ||
			die "--modules '$opt_modules': no modules.dep for $K_VER (a lib/modules tree after 'make modules_install' or depmod)"
		K_MODDIR=$m
	fi
	K_NAME="$img (${K_VER:-unknown version})"
}

resolve_kernel() {
	case $opt_kernel in
	debian:?*)
		[[ -z $opt_modules ]] || die "--modules is for a kernel image path, not $opt_kernel"
		[[ ${opt_kernel#debian:} =~ ^[a-z0-9.-]+$ ]] ||
			die "unknown kernel '$opt_kernel' (debian:X.Y or debian:SUITE: see --kernel list)"
		fetch_debian "${opt_kernel#debian:}" ;;
	*/*|*.img|*bzImage*|*vmlinu*)
		use_image "$opt_kernel" ;;
	*)
		die "unknown kernel '$opt_kernel' (debian:X.Y, debian:SUITE, list, host, or a path to a bzImage/vmlinux)" ;;
	esac
}

# --- initramfs ---------------------------------------------------------------

declare -A mod_path=() mod_deps=() mod_seen=()
mod_order=()

# read_modules_dep DIR: name -> path and path -> dependencies.
read_modules_dep() {
	local line path base name

	while IFS= read -r line; do
		path=${line%%:*}
		base=${path##*/}
		name=${base%%.ko*}
		mod_path[${name//-/_}]=$path
		mod_deps[$path]=${line#*:}
	done <"$1/modules.dep"
}

# add_module PATH: its dependencies first, then itself.
add_module() {
	local d

	[[ -n ${mod_seen[$1]-} ]] && return
	mod_seen[$1]=1
	for d in ${mod_deps[$1]}; do
		add_module "$d"
	done
	mod_order+=("$1")
}

# copy_module SRC DEST: uncompressed (busybox insmod reads plain .ko).
copy_module() {
	case $1 in
	*.ko.xz) xz -dc -- "$1" >"$2" ;;
	*.ko.zst) zstd -qdc -- "$1" >"$2" ;;
	*.ko.gz) gzip -dc -- "$1" >"$2" ;;
	*) cp -- "$1" "$2" ;;
	esac
}

# The modules the guest needs before it can reach the host's root; the
# profile's other modules load in the background after the first test
# started (scripts/vm/vm-init.sh).
BOOT_MODULES=(virtio_pci 9pnet_virtio 9p)

# module_closure NAME...: the modules and their dependencies, in load order,
# in mod_order (modules already taken are not taken again).
module_closure() {
	local m p

	mod_order=()
	for m in "$@"; do
		p=${mod_path[${m//-/_}]-}
		[[ -n $p ]] && add_module "$p"
	done
}

# copy_modules DIR: mod_order's modules, uncompressed, into DIR, and their
# names in load order into DIR/modules.order.
copy_modules() {
	local p name

	mkdir -p -- "$1" || die "cannot create $1"
	: >"$1/modules.order"
	for p in "${mod_order[@]}"; do
		name=${p##*/}
		name=${name%%.ko*}.ko
		copy_module "$K_MODDIR/$p" "$1/$name" || die "cannot copy module $p"
		printf '%s\n' "$name" >>"$1/modules.order"
	done
}

# build_initramfs OUT LATE: busybox, /init and the boot modules into the
# cpio archive OUT (not compressed: unpacking costs more than reading it
# under TCG); the profile's other modules into the directory LATE, which the
# guest reads over 9p.
build_initramfs() {
	local out=$1 late=$2 tmp applet

	tmp=$(mktemp -d "${TMPDIR:-/tmp}/pincheck-initramfs.XXXXXX") || die "mktemp failed"
	# removed on every way out (a failed step dies)
	# shellcheck disable=SC2064 # expanded now: $tmp is local
	trap "rm -rf -- $(printf %q "$tmp") $(printf %q "$out.$$")" EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	mkdir -p -- "$tmp"/{bin,dev,proc,sys,host,modules,run}
	cp -- "$BUSYBOX" "$tmp/bin/busybox" || die "cannot copy $BUSYBOX"
	for applet in $("$BUSYBOX" --list); do
		[[ $applet == busybox ]] || ln -s busybox "$tmp/bin/$applet"
	done
	mknod -m 600 "$tmp/dev/console" c 5 1 2>/dev/null
	cp -- "$ROOT/scripts/vm/vm-init.sh" "$tmp/init" && chmod 755 "$tmp/init"
	: >"$tmp/modules/modules.order"
	rm -rf -- "$late"
	if [[ -n $K_MODDIR ]]; then
		read_modules_dep "$K_MODDIR"
		module_closure "${BOOT_MODULES[@]}"
		copy_modules "$tmp/modules"
		# shellcheck disable=SC2086 # a word list
		module_closure ${prof[modules]}
		copy_modules "$late.$$"
		mv -- "$late.$$" "$late" || die "cannot write $late"
		printf '%s\n' "$late" >"$tmp/late"
	fi
	if ! (cd "$tmp" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null) \
		>"$out.$$"; then
		die "cannot write $out.$$"
	fi
	mv -- "$out.$$" "$out" || die "cannot write $out"
	rm -rf -- "$tmp"
	trap - EXIT INT TERM
}

# initramfs: K_INITRD, cached per kernel, module list and /init.
initramfs() {
	local key dir

	BUSYBOX=$(command -v busybox) || die "busybox not found (Debian: busybox-static)"
	key=$({ printf '%s\n' "$K_MODDIR" "${prof[modules]}"
		cat -- "$ROOT/scripts/vm/vm-init.sh"
		[[ -n $K_MODDIR ]] && stat -c '%s %Y' -- "$K_MODDIR/modules.dep"
		stat -c '%s %Y' -- "$BUSYBOX"; } | cksum | cut -d' ' -f1)
	dir=$CACHE/initramfs
	K_INITRD=$dir/$key.cpio
	[[ -s $K_INITRD ]] && return
	mkdir -p -- "$dir" || die "cannot create $dir"
	build_initramfs "$K_INITRD" "$dir/$key.late"
}

# --- the case lists ----------------------------------------------------------

# The guest's case lists depend on the binaries, the kernel (its hugetlb
# and mTHP sizes), the emulated hardware and the -t globs; listing costs
# the guest one exec per binary (~0.1 s each under TCG), so the lists of a
# run are kept and handed to the next guest with the same inputs
# (run_tests.sh: PINCHECK_LIST_CACHE, PINCHECK_LIST_SAVE).
list_cache() {
	local key k

	key=$({ printf '%s\n' "$K_IMAGE" "$ACCEL" "$run_env"
		for k in "${!prof[@]}"; do
			printf '%s=%s\n' "$k" "${prof[$k]}"
		done | sort
		stat -c '%s %Y' -- "$K_IMAGE"
		stat -c '%n %s %Y' -- "$ROOT"/build/tests/*; } 2>/dev/null |
		cksum | cut -d' ' -f1)
	LIST_CACHE=$CACHE/lists/$key
}

# keep_lists: a run's complete lists into the cache (the last 32 kept).
keep_lists() {
	local old

	[[ -e $opt_out/lists/complete && ! -e $LIST_CACHE ]] || return 0
	mkdir -p -- "${LIST_CACHE%/*}" 2>/dev/null &&
		mv -- "$opt_out/lists" "$LIST_CACHE" 2>/dev/null || return 0
	while read -r _ old; do
		rm -rf -- "${old:?}"
	done < <(find "${LIST_CACHE%/*}" -mindepth 1 -maxdepth 1 -printf '%T@ %p\n' |
		 sort -rn | tail -n +33)
}

# run_env_filters: the run's -t globs (run_tests.sh's opt_filters, as
# run_env holds them) into the caller's opt_filters.
run_env_filters() {
	eval "$(grep '^opt_filters=' <<<"$run_env")"
}

# no_case_matched: the shards ran nothing: the -t globs matched no case in
# this kernel (a guest lists a binary only when it claims it, so no guest
# could tell alone).
no_case_matched() {
	local globs
	local -a opt_filters=()

	run_env_filters
	globs=$(printf "'%s' or " "${opt_filters[@]}")
	die "no test matches ${globs% or } in $K_NAME"
}

# merge_shard_lists: the lists the shards made (each of the binaries it
# claimed: suite.sh plan_shard) as one directory, OUT/lists, complete if
# every claimed binary listed.
merge_shard_lists() {
	local dir=$opt_out/lists f name rc

	rm -rf -- "$dir"
	[[ -e $LIST_CACHE ]] && return 1
	mkdir -p -- "$dir" || return 1
	for f in "$opt_out"/shard-*/lists/*; do
		[[ -f $f && ${f##*/} != complete ]] && cp -- "$f" "$dir/"
	done
	for name in "$opt_out"/claims/*/; do
		name=${name%/}
		rc=1
		{ read -r rc <"$dir/${name##*/}.rc"; } 2>/dev/null
		((rc == 0)) || return 1
	done
	: >"$dir/complete"
}

# --- the guest run -----------------------------------------------------------

kvm_works() {
	case ${PINCHECK_ACCEL-} in
	kvm) return 0 ;;
	tcg) return 1 ;;
	esac
	[[ -r /dev/kvm && -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo
}

# kernel_git: for a kernel built from a git tree (--build-kernel, --bisect:
# an image under <build dir>/arch/, whose "source" link or the build dir
# itself is the tree), its commit, origin URL and branch in KGIT_*.
kernel_git() {
	local top=${opt_kernel%/arch/*} t

	KGIT_COMMIT='' KGIT_URL='' KGIT_BRANCH=''
	[[ $opt_kernel == */arch/*/boot/* ]] || return 0
	for t in "$top/source" "$top"; do
		KGIT_COMMIT=$(git -C "$t" rev-parse --verify -q HEAD 2>/dev/null) || continue
		KGIT_URL=$(git -C "$t" remote get-url origin 2>/dev/null)
		KGIT_BRANCH=$(git -C "$t" symbolic-ref --short -q HEAD 2>/dev/null)
		return 0
	done
	KGIT_COMMIT=''
}

# write_run_meta: the run.env lines that describe the run for the results
# (suite.sh's run_metadata).  The guest keeps its result records in its
# own memory: if it dies, report_failed_run rebuilds them from tap.log.
write_run_meta() {
	printf 'export PINCHECK_RUN_KERNEL=%q PINCHECK_RUN_HOSTNAME=%q\n' \
		"$opt_kernel" "$(uname -n)"
	printf 'export PINCHECK_RUN_PROFILE=%q PINCHECK_RUN_ACCEL=%q PINCHECK_RUN_COMMIT=%q\n' \
		"${opt_profile##*/}" "$ACCEL" "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)"
	kernel_git
	printf 'export PINCHECK_RUN_KGIT_COMMIT=%q PINCHECK_RUN_KGIT_URL=%q PINCHECK_RUN_KGIT_BRANCH=%q\n' \
		"$KGIT_COMMIT" "$KGIT_URL" "$KGIT_BRANCH"
}

# write_run_env: the guest's run.env, sourced by the static scripts/vm/
# guest.sh and hw.sh: run_tests.sh's suite options (--run-env) as they are,
# the guest's result files, the checkout, the profile's hardware and the
# run's PINCHECK_* variables; and vm-dir, where /init finds those scripts
# (a checkout under /tmp is seen under /run/pincheck-host: vm-init.sh).
write_run_env() {
	local v

	{
		printf '# written by scripts/vm/vm.sh for one guest run\n%s\n' "$run_env"
		printf 'opt_json=%q opt_junit=%q\n' "$GUEST_OUT/results.json" \
			"${opt_junit:+$GUEST_OUT/results.xml}"
		printf 'vm_root=%q vm_rdma=%q vm_vfio=%q\n' "$ROOT" "${prof[rdma]}" "${prof[vfio]}"
		printf 'export PINCHECK_VM_HW=/run/pincheck-hw\n'
		printf 'export PINCHECK_LIST_CACHE=%q PINCHECK_LIST_SAVE=%q\n' \
			"$LIST_CACHE" "$GUEST_OUT/lists"
		write_run_meta
		# TCG runs every vCPU on one host thread: a binary keeps its
		# cases to one vCPU unless they race across CPUs (the harness,
		# pc_cases_race_across_cpus; docs/vm.md)
		[[ $ACCEL == TCG || -n ${PINCHECK_ONE_CPU-} ]] &&
			printf 'export PINCHECK_ONE_CPU=%q\n' "${PINCHECK_ONE_CPU:-1}"
		# a shard takes binaries through the claims directory (tag
		# pcclaims, mounted by guest.sh) and leaves its records
		[[ -n $opt_shard ]] &&
			printf 'export PINCHECK_SHARD=%q PINCHECK_SHARD_CLAIMS=/run/pincheck-claims PINCHECK_RECORDS_OUT=%q\n' \
				"$opt_shard" "$GUEST_OUT/records"
		# odirect_fork's knobs (docs/odirect_fork.md) reach the guest's binaries too
		for v in "${!PINCHECK_ODF_@}" ${PINCHECK_FIXES+PINCHECK_FIXES}; do
			printf 'export %s=%q\n' "$v" "${!v}"
		done
	} >"$opt_out/run.env"
	v=$ROOT/scripts/vm
	[[ $v == /tmp/* || $v == /var/tmp/* ]] && v=/run/pincheck-host$v
	printf '%s\n' "$v" >"$opt_out/vm-dir"
}

# shellcheck disable=SC2054 # commas inside QEMU option values
qemu_command() {
	local nodes=${prof[numa_nodes]} per n machine=q35
	local -a devices

	per=$((prof[memory_mb] / nodes))
	QCMD=("$QEMU" -nodefaults -no-user-config -display none -no-reboot)
	if kvm_works; then
		QCMD+=(-accel kvm -cpu host)
		machine=q35,kernel-irqchip=split
		ACCEL=KVM
	else
		# one host thread for all vCPUs: with thread=multi a full
		# 6.12 run oopsed once in two ("Oops: int3" in __schedule, a
		# text-patching site executed stale: vCPUs running translated
		# code another vCPU had just rewritten); about 25% slower
		# without ERMS: TCG runs "rep movsb/stosb" a byte per step,
		# and the kernel clears and copies pages with them when the
		# CPU has it (rep stosq/movsq then: a guest run ~20% faster,
		# docs/vm.md)
		QCMD+=(-accel tcg,thread=single -cpu max,-erms)
		# qboot instead of SeaBIOS: 0.1-0.2 s less to the kernel under
		# TCG (it passes QEMU's ACPI tables: NUMA, DMAR)
		[[ -r $QEMU_DATA/qboot.rom ]] && QCMD+=(-bios qboot.rom)
		ACCEL=TCG
	fi
	QCMD+=(-machine "$machine" -m "$((per * nodes))M"
	       -smp "$nodes,sockets=$nodes,cores=1,threads=1")
	if ((nodes > 1)); then
		for ((n = 0; n < nodes; n++)); do
			QCMD+=(-object "memory-backend-ram,id=m$n,size=${per}M"
			       -numa "node,nodeid=$n,cpus=$n,memdev=m$n")
		done
	fi
	read -r -a devices <<<"${prof[devices]}"
	if ((prof[dma_nvme])); then
		# the VFIO engines' DMA device (lib/engines/vfio/nvme.c drives
		# only this serial); its disk is made afresh for each boot
		devices+=(-drive "file=${DMA_NVME_IMG//,/,,},if=none,id=pcdma,format=raw,cache=unsafe"
			  -device nvme,serial=pincheck-dma,drive=pcdma)
	fi
	QCMD+=("${devices[@]}"
	       -kernel "$K_IMAGE" -initrd "$K_INITRD"
	       -append "console=ttyS0 loglevel=5 panic=-1 ${prof[cmdline]}"
	       -fsdev local,id=pcroot,path=/,security_model=none,readonly=on,multidevs=remap
	       -device virtio-9p-pci,fsdev=pcroot,mount_tag=pcroot
	       -fsdev "local,id=pcout,path=${opt_out//,/,,},security_model=none"
	       -device virtio-9p-pci,fsdev=pcout,mount_tag=pcout
	       -serial "file:$opt_out/console.log" -pidfile "$opt_out/qemu.pid")
	[[ -n $opt_claims ]] &&
		QCMD+=(-fsdev "local,id=pcclaims,path=${opt_claims//,/,,},security_model=none"
		       -device virtio-9p-pci,fsdev=pcclaims,mount_tag=pcclaims)
	return 0
}

qpid=
boot_t0=0

# shellcheck disable=SC2317 # reached from traps
on_signal() {
	trap '' INT TERM
	[[ -n $qpid ]] && kill -TERM "$qpid" 2>/dev/null
	printf 'Bail out! interrupted by SIG%s\n' "$1"
	exit $((128 + $2))
}

# why_failed QEMU-STATUS: the reason a guest left no result, in REPLY.
why_failed() {
	local line

	if (($1 == 124 || $1 == 137)); then
		REPLY="timeout: the guest did not finish within ${opt_vm_timeout}s (--vm-timeout)"
	elif line=$(grep -m1 -a 'Kernel panic' "$opt_out/console.log" 2>/dev/null); then
		REPLY="guest kernel panic: ${line//$'\r'/}"
	elif line=$(grep -m1 -a 'pincheck-init: FAILED' "$opt_out/console.log" 2>/dev/null); then
		REPLY="guest setup failed: ${line#*FAILED: }"
		REPLY=${REPLY//$'\r'/}
	elif (($1 != 0)) && [[ -s $opt_out/qemu.log ]]; then
		REPLY="qemu exited with status $1: $(head -n 1 "$opt_out/qemu.log")"
	else
		REPLY="the guest stopped without a result (see $opt_out/console.log)"
	fi
}

# report_failed_run REASON RESULT T0: Bail out, console tail, then the
# results the guest streamed (rebuilt from tap.log: tap-records.awk) plus
# the failure "vm/run/all/qemu" as JSON, JUnit and the summary lines
# (results.awk, as a finished run writes them).
report_failed_run() {
	local records=$opt_out/records

	printf 'Bail out! %s: %s\n' "$opt_kernel" "$1"
	tail -n 15 "$opt_out/console.log" 2>/dev/null | tr -d '\r' |
		sed 's/^/# console: /'
	: >"$records"
	# complete lines only: the last may be cut short
	head -n "$(wc -l <"$opt_out/tap.log")" "$opt_out/tap.log" 2>/dev/null |
		PC_FIXES=${PINCHECK_FIXES:-$ROOT/configs/known-fixes} \
		awk -f "$ROOT/scripts/runner/tap-result.awk" \
		    -f "$ROOT/scripts/runner/known-fixes.awk" \
		    -f "$ROOT/scripts/runner/tap-records.awk" "$records" - >"$records.tap"
	cat -- "$records.tap" >>"$records"
	rm -f -- "$records.tap"
	printf 'vm\tvm/run/all/qemu\t%s\t0\t%s\t%s\n' "$2" "${1//$'\t'/ }" "$EPOCHSECONDS" >>"$records"
	write_results "$records" "$3" "$1" "$opt_out/kernel-version"
}

# write_results RECORDS T0 INCOMPLETE KERNEL-VERSION: the run's JSON, JUnit
# and summary lines from RECORDS (results.awk, as a finished run writes
# them); INCOMPLETE: why the run ended early, or empty.
write_results() {
	local line=''

	{ IFS= read -r line <"$4"; } 2>/dev/null
	PC_JSON=$opt_json PC_JUNIT=$opt_junit PC_START=${2%.*} PC_END=$EPOCHSECONDS \
	PC_KERNEL=$K_VER PC_KERNEL_VERSION=$line \
	PC_KERNEL_SPEC=$opt_kernel PC_ARCH=$(uname -m) PC_HOSTNAME=$(uname -n) \
	PC_COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) \
	PC_PROFILE=${opt_profile##*/} PC_ACCEL=$ACCEL PC_INCOMPLETE=$3 \
	PC_KGIT_COMMIT=$KGIT_COMMIT PC_KGIT_URL=$KGIT_URL PC_KGIT_BRANCH=$KGIT_BRANCH \
		awk -f "$ROOT/scripts/runner/results.awk" "$1"
}

# stream_timed T0: copy the guest's TAP to stdout; write to timing the
# seconds from QEMU's start to the guest's first line, to its first result
# and to the end.
stream_timed() {
	local line first='' result=''

	while IFS= read -r line; do
		printf '%s\n' "$line"
		[[ -n $first ]] || first=$EPOCHREALTIME
		if [[ -z $result && $line =~ ^(not\ )?ok\  ]]; then
			result=$EPOCHREALTIME
		fi
	done
	awk -v t0="$1" -v a="${first:-0}" -v b="${result:-0}" -v c="$EPOCHREALTIME" \
		'BEGIN { printf "guest_start %.2f\nfirst_result %.2f\nend %.2f\n",
			 a ? a - t0 : -1, b ? b - t0 : -1, c - t0 }' >"$opt_out/timing"
}

# boot_once: one guest run; QEMU's exit status in REPLY.
boot_once() {
	local t0

	rm -rf -- "$opt_out"/{rc,tap.log,console.log,dmesg.txt,results.json,results.xml,qemu.log,records,kernel-version} \
		"$opt_out"/{hw.log,start-uptime,uptime,lists}
	: >"$opt_out/tap.log"
	if ((prof[dma_nvme])); then
		rm -f -- "$DMA_NVME_IMG"
		truncate -s "${prof[dma_nvme]}M" -- "$DMA_NVME_IMG" ||
			die "cannot create $DMA_NVME_IMG"
	fi
	trap 'on_signal INT 2' INT
	trap 'on_signal TERM 15' TERM
	t0=$EPOCHREALTIME
	boot_t0=$t0
	timeout -k 5 "$opt_vm_timeout" "${QCMD[@]}" </dev/null >"$opt_out/qemu.log" 2>&1 &
	qpid=$!
	# in the background: a foreground pipeline would hold off the
	# INT/TERM traps until QEMU is done
	tail -n +1 -s 0.2 -f --pid="$qpid" -- "$opt_out/tap.log" | stream_timed "$t0" &
	wait "$!"
	wait "$qpid"
	REPLY=$?
	qpid=
	trap - INT TERM
}

# A guest that dies before any test result (under TCG on a loaded machine
# a boot sometimes panics in early timer setup) is booted again, up to
# PINCHECK_VM_BOOT_RETRIES times (default 1); its console log is kept as
# console.log.boot-N.  A death after a result is never retried.
run_guest() {
	local qrc rc result tries=${PINCHECK_VM_BOOT_RETRIES:-1} n=0

	qemu_command
	list_cache
	write_run_env
	[[ -n $opt_shard ]] ||
		note "booting $K_NAME under QEMU ($ACCEL, profile ${opt_profile##*/}); logs in $opt_out"
	printf '%q ' "${QCMD[@]}" >"$opt_out/qemu.cmd"
	while :; do
		boot_once
		qrc=$REPLY
		if [[ -s $opt_out/rc ]] && read -r rc <"$opt_out/rc" && [[ $rc =~ ^[0-9]+$ ]]; then
			[[ -n $opt_shard ]] || keep_lists
			[[ -n $opt_json && -s $opt_out/results.json ]] && cp -- "$opt_out/results.json" "$opt_json"
			[[ -n $opt_junit && -s $opt_out/results.xml ]] && cp -- "$opt_out/results.xml" "$opt_junit"
			exit "$rc"
		fi
		why_failed "$qrc"
		if [[ $REPLY == timeout:* ]] || ((n >= tries)) ||
		   grep -qE '^(not )?ok ' "$opt_out/tap.log"; then
			break
		fi
		n=$((n + 1))
		cp -- "$opt_out/console.log" "$opt_out/console.log.boot-$n" 2>/dev/null
		note "the guest died before any test ran ($REPLY): booting again (console.log.boot-$n)"
	done
	result=fail
	[[ $REPLY == timeout:* ]] && result=timeout
	report_failed_run "$REPLY" "$result" "$boot_t0"
	exit 1
}

# --- one kernel over several guests ------------------------------------------

# auto_shards: --shards by default: one guest per core, as many as
# MemAvailable holds at the profile's memory_mb plus 512 MiB each, and no
# more than the run has test binaries (run_tests.sh -l with its -t globs).
auto_shards() {
	local cores mem_kb by_mem bins n
	local -a opt_filters=() tflags=()

	cores=$(nproc 2>/dev/null) || cores=1
	mem_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
	by_mem=$((${mem_kb:-0} / ((prof[memory_mb] + 512) * 1024)))
	run_env_filters
	for n in "${opt_filters[@]}"; do
		tflags+=(-t "$n")
	done
	bins=$("$ROOT/run_tests.sh" -l --no-build "${tflags[@]}" 2>/dev/null </dev/null |
		cut -d/ -f1 | sort -u | wc -l)
	n=$((cores < by_mem ? cores : by_mem))
	n=$((bins < n ? bins : n))
	opt_shards=$((n > 1 ? (n > 9 ? 9 : n) : 1))
}

# shard_order: the binaries, slowest first, for the shards to take in that
# order: by their time in the last run kept here (results.json), else
# configs/vm/shard-order.
shard_order() {
	if [[ -s $opt_out/results.json ]] && command -v jq >/dev/null &&
	   jq -r '.results | group_by(.binary) |
		map({b: .[0].binary, t: (map(.duration_ms // 0) | add)}) |
		sort_by(-.t) | .[].b' "$opt_out/results.json" 2>/dev/null; then
		return 0
	fi
	grep -v '^#' "$ROOT/configs/vm/shard-order" 2>/dev/null
	return 0
}

# start_shards N: the N guests (this script again, --shard K/N), in the
# background, their pids in shard_pids; their TAP goes to
# OUT/shard-K/tap.log, what they print to OUT/shard-K/stdout, their notes
# (a guest booted again) to stderr.
start_shards() {
	local k dir

	shard_pids=()
	for ((k = 0; k < $1; k++)); do
		dir=$opt_out/shard-$k
		mkdir -p -- "$dir" || die "cannot create $dir"
		: >"$dir/tap.log"
		"$0" "${vm_args[@]}" --out "$dir" --shard "$k/$1" --claims "$opt_out/claims" \
			--run-env "$opt_out/run-env.in" >"$dir/stdout" </dev/null &
		shard_pids+=($!)
	done
}

# stream_shards N: the shards' TAP as they write it, one line at a time
# tagged with the shard's number, merged into one stream (renumbered,
# a result with its comments and YAML together) on stdout and in tap.log.
# The taggers share one pipe: each line goes in one write (print would
# write the line and its newline apart, and another tagger's line could
# come between), at most 4 KiB (PIPE_BUF: a write the pipe keeps whole).
stream_shards() {
	local k
	local -a tag=(awk)

	# mawk fills its input buffer before it handles a line unless told
	command -v mawk >/dev/null && tag=(mawk -W interactive)
	for ((k = 0; k < $1; k++)); do
		# shellcheck disable=SC2016 # awk's own $0
		tail -n +1 -s 0.2 -F --pid="${shard_pids[k]}" -- "$opt_out/shard-$k/tap.log" 2>/dev/null |
			"${tag[@]}" -v k="$k" '{ printf "%s", k "\t" substr($0, 1, 4000) "\n" }
				END { printf "%s", k "\t" sprintf("%c", 1) "eof\n" }' &
	done | "${tag[@]}" -v out="$opt_out/tap.log" -f "$ROOT/scripts/vm/shard-merge.awk"
}

# finish_shards N T0: wait for the shards; their records (or for one that
# failed: its Bail out and console lines, and the records it rebuilt) make
# the run's results.  Exits with results.awk's status, 2 if a shard could
# not run at all or ended with another status than 0, 1 or 4.
finish_shards() {
	local k rc status=0 dir end start suite=0

	: >"$opt_out/records"
	for ((k = 0; k < $1; k++)); do
		dir=$opt_out/shard-$k
		wait "${shard_pids[k]}"
		rc=$?
		case $rc in
		0|1|4) ;;
		*) status=2 ;;	# an error in the guest's run, or interrupted
		esac
		# a shard whose claims held no selected case: its plan is 1..0
		[[ ! -s $dir/records && $rc =~ ^[04]$ ]] && grep -qx '1\.\.0' "$dir/tap.log" 2>/dev/null &&
			continue
		if [[ ! -s $dir/records ]]; then
			printf 'Bail out! shard %d exited with status %d (its error is on stderr)\n' "$k" "$rc"
			printf 'vm\tvm/run/shard-%d/qemu\tfail\t0\tshard %d exited with status %d\t%s\n' \
				"$k" "$k" "$rc" "$EPOCHSECONDS" >>"$opt_out/records"
			status=2
			continue
		fi
		# a shard that died: its Bail out and console lines, its
		# vm/run result named after it
		[[ -s $dir/rc ]] ||
			sed -n "s/^Bail out! /&shard $k: /p; /^# console: /p" "$dir/stdout"
		awk -v k="$k" 'BEGIN { FS = OFS = "\t" }
			$2 == "vm/run/all/qemu" { $2 = "vm/run/shard-" k "/qemu" } 1' \
			"$dir/records" >>"$opt_out/records"
		{ read -r start end <"$dir/uptime"; } 2>/dev/null &&
			suite=$(awk -v a="$start" -v b="$end" -v s="$suite" \
				'BEGIN { print (b - a > s) ? b - a : s }')
	done
	printf '0 %s\n' "$suite" >"$opt_out/uptime"
	cp -- "$opt_out/shard-0/kernel-version" "$opt_out/" 2>/dev/null
	merge_shard_lists && keep_lists
	((status)) || [[ -s $opt_out/records ]] || no_case_matched
	# kept beside the shards as a single guest's run keeps them (the next
	# run's shard_order reads results.json), then copied where asked
	opt_json=$opt_out/results.json opt_junit=${opt_junit:+$opt_out/results.xml} \
		write_results "$opt_out/records" "$2" "" "$opt_out/kernel-version"
	rc=$?
	[[ -n $opt_json ]] && cp -- "$opt_out/results.json" "$opt_json"
	[[ -n $opt_junit ]] && cp -- "$opt_out/results.xml" "$opt_junit"
	((status)) && exit "$status"
	exit "$rc"
}

# stop_shards SIG STATUS: interrupted: each shard stops its guest.
# shellcheck disable=SC2317 # reached from traps
stop_shards() {
	trap '' INT TERM
	kill -TERM "${shard_pids[@]}" 2>/dev/null
	wait
	printf 'Bail out! interrupted by SIG%s\n' "$1"
	exit "$2"
}

# run_sharded N: the run over N guests of this kernel.  Each guest takes
# the next binary no other has taken (guest side: suite.sh run_claimed;
# the claims are directories in OUT/claims, a 9p share of all of them),
# the slowest first; a binary runs in one guest, whole.
run_sharded() {
	local t0

	rm -rf -- "$opt_out"/shard-* "$opt_out/claims"
	mkdir -p -- "$opt_out/claims" || die "cannot create $opt_out/claims"
	shard_order >"$opt_out/claims/order"
	rm -f -- "$opt_out"/{rc,tap.log,results.json,results.xml,records,timing,uptime,kernel-version}
	printf '%s\n' "$run_env" >"$opt_out/run-env.in"
	kvm_works && ACCEL=KVM || ACCEL=TCG
	list_cache
	kernel_git
	note "booting $K_NAME under QEMU ($ACCEL, profile ${opt_profile##*/}) in $1 guests; logs in $opt_out/shard-*"
	trap 'stop_shards INT 130' INT
	trap 'stop_shards TERM 143' TERM
	t0=$EPOCHREALTIME
	start_shards "$1"
	# in the background: the traps run at once, not after the stream
	stream_shards "$1" | stream_timed "$t0" &
	wait "$!"
	finish_shards "$1" "$t0"
}

main() {
	parse_args "$@"
	[[ -n $opt_shard ]] && PROG="run_tests.sh (shard ${opt_shard%/*})"
	[[ $opt_kernel == list ]] && list_kernels
	if [[ -n ${PINCHECK_VM_RESOLVE_ONLY-} ]]; then
		# for the tests: the kernel's files (=initramfs: and the
		# initramfs), nothing booted
		[[ $PINCHECK_VM_RESOLVE_ONLY == initramfs ]] && load_profile "$opt_profile"
		resolve_kernel
		printf 'image %s\nmoddir %s\nversion %s\n' "$K_IMAGE" "$K_MODDIR" "$K_VER"
		[[ $PINCHECK_VM_RESOLVE_ONLY == initramfs ]] && initramfs &&
			printf 'initrd %s\n' "$K_INITRD"
		exit 0
	fi
	[[ $opt_vm_timeout =~ ^[1-9][0-9]*$ ]] || die "--vm-timeout needs a whole number of seconds"
	"$ROOT/scripts/runner/deps.sh" --vm || exit 2
	command -v "$QEMU" >/dev/null || die "$QEMU not found (Debian: qemu-system-x86)"
	load_profile "$opt_profile"
	resolve_kernel
	initramfs
	if [[ -z $opt_out ]]; then
		opt_out=${opt_kernel%/}
		opt_out=$ROOT/build/vm/${opt_out##*/}
		opt_out=${opt_out//:/-}
	fi
	mkdir -p -- "$opt_out" || die "cannot create $opt_out"
	opt_out=$(cd -- "$opt_out" && pwd)
	DMA_NVME_IMG=$opt_out/dma-nvme.img
	if [[ -z $opt_shard ]]; then
		[[ -z $opt_shards ]] && auto_shards
		((opt_shards > 1)) && run_sharded "$opt_shards"
		rm -rf -- "$opt_out"/shard-* "$opt_out/claims"	# an earlier sharded run's
	fi
	run_guest
}

main "$@"
