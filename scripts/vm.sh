#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/vm.sh: the VM half of `run_tests.sh --kernel SPEC`.  Called by
# run_tests.sh (which parsed and checked the options and built the binaries):
#
#   vm.sh --kernel SPEC [--modules DIR] [--profile P] [--vm-timeout S]
#         [--json F] [--junit F] [--out DIR] -- GUEST-OPTIONS...
#
# Resolves SPEC to a kernel image and its modules (Debian packages are
# fetched with apt-get download into the cache and unpacked once), builds a
# busybox initramfs per kernel (cached), boots QEMU with the profile's
# hardware, shares the host root read-only over 9p and runs the same
# run_tests.sh inside with GUEST-OPTIONS.  Streams the guest's TAP, keeps
# console.log, dmesg.txt, tap.log and the results in --out, and exits with
# the guest's status; a panic, hang or boot failure is a failed run (1).
# Exit 2: unknown SPEC, bad image or modules, no disk space, missing tools.
#
# Environment: PINCHECK_DEBIAN_ARCHIVE=1 (fetch Debian kernels from the
# archive over HTTP even where apt could), PINCHECK_DEBIAN_MIRROR,
# PINCHECK_CACHE (default /var/cache/pincheck), PINCHECK_ACCEL
# (kvm or tcg: skip the KVM probe), PINCHECK_QEMU (the QEMU binary).

set -u

PROG=run_tests.sh
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd) || exit 2
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
guest_args=()

parse_args() {
	while (($#)); do
		case $1 in
		--kernel) opt_kernel=$2; shift ;;
		--modules) opt_modules=$2; shift ;;
		--profile) opt_profile=$2; shift ;;
		--vm-timeout) opt_vm_timeout=$2; shift ;;
		--json) opt_json=$2; shift ;;
		--junit) opt_junit=$2; shift ;;
		--out) opt_out=$2; shift ;;
		--) shift; guest_args=("$@"); return ;;
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
	      [modules]='virtio_pci 9pnet_virtio 9p' [rdma]=none [vfio]=auto)
	read_profile "$1" 0
	[[ ${prof[memory_mb]} =~ ^[1-9][0-9]*$ && ${prof[numa_nodes]} =~ ^[1-9]$ ]] ||
		die "$f: memory_mb and numa_nodes must be positive numbers"
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

# debian_regex SERIES: package names of SERIES (not -cloud, not -rt).
debian_regex() {
	local ser=${1//./\\.}

	REPLY="^linux-image-${ser}(\\.[0-9]+)*(-[0-9]+|\\+deb[0-9]+)-amd64-unsigned\$"
}

# newest_debian_package SERIES: the newest linux-image-SERIES*-amd64-unsigned.
newest_debian_package() {
	debian_regex "$1"
	apt-cache search --names-only "$REPLY" 2>/dev/null |
		awk '{ print $1 }' | sort -V | tail -n 1
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

# extract_vmlinux BZIMAGE OUT: the ELF kernel inside a bzImage, for QEMU's
# PVH entry (1-3 s faster to boot under TCG than the bzImage).
extract_vmlinux() {
	local in=$1 out=$2 off magic tool

	for magic in '\xfd7zXZ\x00:xz' '\x28\xb5\x2f\xfd:zstd' '\x1f\x8b\x08:gzip'; do
		tool=${magic##*:}
		command -v "$tool" >/dev/null || continue
		for off in $(LC_ALL=C grep -obUaP "${magic%:*}" -- "$in" 2>/dev/null |
			     cut -d: -f1 | head -n 3); do
			tail -c +$((off + 1)) -- "$in" | "$tool" -dc >"$out" 2>/dev/null
			[[ $(od -An -c -N 4 -- "$out" | tr -d ' ') == 177ELF ]] &&
				has_pvh_note "$out" && return 0
		done
	done
	rm -f -- "$out"
	return 1
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

# Without Debian's apt sources (an Ubuntu CI runner, say) the package comes
# straight from the Debian archive, checked against the signed index:
# InRelease (gpgv with debian-archive-keyring) -> Packages.xz (SHA256) ->
# the .deb (SHA256).
DEBIAN_MIRROR=${PINCHECK_DEBIAN_MIRROR:-http://deb.debian.org}
DEBIAN_SUITES=("debian bookworm" "debian-security bookworm-security" "debian bookworm-updates")

# archive_index DIR: Packages of every suite, as "name version url sha256".
archive_index() {
	local dir=$1 suite base dist rel sum keyring=/usr/share/keyrings/debian-archive-keyring.gpg

	[[ -r $keyring ]] || die "no $keyring to check the Debian archive (install debian-archive-keyring)"
	for suite in "${DEBIAN_SUITES[@]}"; do
		base=$DEBIAN_MIRROR/${suite% *}
		dist=${suite#* }
		rel=$dir/$dist.InRelease
		curl -fsS -o "$rel" "$base/dists/$dist/InRelease" || continue
		gpgv --keyring "$keyring" "$rel" >/dev/null 2>&1 ||
			die "the Debian archive's $dist/InRelease does not verify"
		sum=$(awk '/^SHA256:/ { s = 1; next } /^[A-Z]/ { s = 0 }
			s && $3 == "main/binary-amd64/Packages.xz" { print $1 }' "$rel")
		curl -fsS -o "$dir/$dist.Packages.xz" \
			"$base/dists/$dist/main/binary-amd64/Packages.xz" || continue
		if [[ -z $sum ]] || ! sha256sum -c --status <<<"$sum  $dir/$dist.Packages.xz"; then
			die "$dist Packages.xz does not match its signed checksum"
		fi
		xz -dc "$dir/$dist.Packages.xz" | awk -v base="$base" '
			/^Package:/ { p = $2 } /^Version:/ { v = $2 }
			/^Filename:/ { f = $2 } /^SHA256:/ { h = $2 }
			/^$/ { if (p != "") print p, v, base "/" f, h; p = "" }'
	done
}

# archive_newest SERIES: "name version url sha256" of the newest package
# of SERIES in the Debian archive, or nothing.
archive_newest() {
	local tmp

	command -v curl >/dev/null && command -v gpgv >/dev/null || return 0
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/pincheck-archive.XXXXXX") || return 0
	debian_regex "$1"
	archive_index "$tmp" | awk -v re="$REPLY" '$1 ~ re' | sort -V -k1,1 | tail -n 1
	rm -rf -- "$tmp"
}

# download_deb PKG ARCHIVE-LINE DIR: the package's .deb into DIR, with apt
# when it knows the package, else from the archive (checksum checked).
download_deb() {
	local url sum

	if [[ -z $2 ]]; then
		(cd "$3" && apt-get download -q -o APT::Sandbox::User=root "$1") \
			>"$3/../apt.log" 2>&1 </dev/null ||
			die "apt-get download $1 failed (log: $3/../apt.log)"
		return
	fi
	read -r _ _ url sum <<<"$2"
	curl -fsS -o "$3/$1.deb" "$url" || die "cannot download $url"
	sha256sum -c --status <<<"$sum  $3/$1.deb" ||
		die "$url does not match its signed checksum"
}

# fetch_debian SERIES: K_* for the newest Debian kernel of SERIES, from the
# cache or downloaded and unpacked into it.
fetch_debian() {
	local pkg='' dir tmp deb

	local line=''

	[[ -n ${PINCHECK_DEBIAN_ARCHIVE-} ]] || pkg=$(newest_debian_package "$1")
	if [[ -z $pkg ]]; then
		# no Debian apt sources here: ask the archive itself
		line=$(archive_newest "$1")
		pkg=${line%% *}
	fi
	if [[ -z $pkg ]]; then
		# offline: the newest one unpacked before
		pkg=$(find "$CACHE/kernels" -mindepth 2 -maxdepth 2 -name ok \
			-path "*/linux-image-$1[.-]*" 2>/dev/null |
		      awk -F/ '{ print $(NF - 1) }' | sort -V | tail -n 1)
		[[ -n $pkg && -e $CACHE/kernels/$pkg/ok ]] ||
			die "no Debian kernel package for '$1' (apt-cache search linux-image-$1: run apt-get update?)"
	fi
	dir=$CACHE/kernels/$pkg
	if [[ ! -e $dir/ok ]]; then
		need_space "$CACHE" 1024
		note "fetching $pkg (${line:+the Debian archive}${line:-apt-get download}) into $dir"
		tmp=$dir.tmp$$
		rm -rf -- "$tmp"
		mkdir -p -- "$tmp/deb" || die "cannot create $tmp"
		download_deb "$pkg" "$line" "$tmp/deb"
		deb=$(ls "$tmp"/deb/*.deb)
		dpkg-deb -x "$deb" "$tmp/root" || die "cannot unpack $deb"
		rm -f -- "$deb"
		K_VER=$(ls "$tmp/root/lib/modules")
		depmod -b "$tmp/root" "$K_VER" || die "depmod failed for $pkg"
		if ! extract_vmlinux "$tmp/root/boot/vmlinuz-$K_VER" "$tmp/vmlinux"; then
			note "no PVH vmlinux in $pkg: booting the bzImage"
		fi
		: >"$tmp/ok"
		# a concurrent run may have won the race: keep its copy
		if ! mv -T -- "$tmp" "$dir" 2>/dev/null; then
			[[ -e $dir/ok ]] || die "cannot write $dir"
			rm -rf -- "$tmp"
		fi
	fi
	K_VER=$(ls "$dir/root/lib/modules")
	K_IMAGE=$dir/vmlinux
	[[ -e $K_IMAGE ]] || K_IMAGE=$dir/root/boot/vmlinuz-$K_VER
	K_MODDIR=$dir/root/lib/modules/$K_VER
	K_NAME="$pkg ($K_VER)"
}

# use_image PATH [MODULES]: K_* for a self-built kernel.
use_image() {
	local img=$1 key dir

	[[ -f $img && -r $img ]] || die "no kernel image at '$img'"
	is_kernel_image "$img" || die "'$img' is not a kernel image (bzImage or vmlinux)"
	K_VER=$(kernel_version_of "$img")
	K_IMAGE=$img
	if [[ $(od -An -c -N 4 -- "$img" | tr -d ' ') == 177ELF ]]; then
		has_pvh_note "$img" || die "'$img' is an ELF kernel without a PVH entry (CONFIG_PVH): pass the bzImage"
	else
		key=$(printf '%s %s' "$(realpath -- "$img")" "$(stat -c '%s %Y' -- "$img")" | cksum | cut -d' ' -f1)
		dir=$CACHE/images/$key
		mkdir -p -- "$dir" || die "cannot create $dir"
		[[ -e $dir/vmlinux ]] || extract_vmlinux "$img" "$dir/vmlinux" || : >"$dir/no-pvh"
		[[ -e $dir/vmlinux ]] && K_IMAGE=$dir/vmlinux
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
	debian:[0-9]*.[0-9]*)
		[[ -z $opt_modules ]] || die "--modules is for a kernel image path, not $opt_kernel"
		fetch_debian "${opt_kernel#debian:}" ;;
	*/*|*.img|*bzImage*|*vmlinu*)
		use_image "$opt_kernel" ;;
	*)
		die "unknown kernel '$opt_kernel' (debian:6.1, debian:6.12, host, or a path to a bzImage/vmlinux)" ;;
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
# started (scripts/vm-init.sh).
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
	mkdir -p -- "$tmp"/{bin,dev,proc,sys,host,modules,run}
	cp -- "$BUSYBOX" "$tmp/bin/busybox" || die "cannot copy $BUSYBOX"
	for applet in $("$BUSYBOX" --list); do
		[[ $applet == busybox ]] || ln -s busybox "$tmp/bin/$applet"
	done
	mknod -m 600 "$tmp/dev/console" c 5 1 2>/dev/null
	cp -- "$ROOT/scripts/vm-init.sh" "$tmp/init" && chmod 755 "$tmp/init"
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
}

# initramfs: K_INITRD, cached per kernel, module list and /init.
initramfs() {
	local key dir

	BUSYBOX=$(command -v busybox) || die "busybox not found (Debian: busybox-static)"
	key=$({ printf '%s\n' "$K_MODDIR" "${prof[modules]}"
		cat -- "$ROOT/scripts/vm-init.sh"
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

	key=$({ printf '%s\n' "$K_IMAGE" "$ACCEL" "${guest_args[@]}"
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

# --- the guest run -----------------------------------------------------------

kvm_works() {
	case ${PINCHECK_ACCEL-} in
	kvm) return 0 ;;
	tcg) return 1 ;;
	esac
	[[ -r /dev/kvm && -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo
}

# write_find_edu: script lines that find QEMU's edu DMA device (1234:11e8)
# for the VFIO engines, in vfio_dev.  Builtins only: each exec costs ~0.1 s.
# shellcheck disable=SC2016 # the script's own expansions
write_find_edu() {
	printf '%s\n' \
		'vfio_dev=' \
		'for d in /sys/bus/pci/devices/*; do' \
		'	{ read -r v <"$d/vendor" && read -r id <"$d/device"; } 2>/dev/null || continue' \
		'	[[ $v == 0x1234 && $id == 0x11e8 ]] && vfio_dev=${d##*/} && break' \
		'done'
}

# write_hw_script: the guest's hardware setup, run in the background by
# /init once the profile's modules are in (scripts/vm-init.sh); tests that
# need it wait for /run/pincheck-hw/ready.  The hugetlb pool as run_tests.sh
# fills it (scripts/lib-state.sh), soft-RoCE over a veth pair (MTU
# 9000 gives rxe 4096-byte packets: RDMA under TCG 2-3x faster), its state
# in /run/pincheck-hw/rdma; profile key vfio=auto binds the edu device to
# vfio-pci (driver_override + drivers_probe; the guest is thrown away,
# nothing to restore), its state in /run/pincheck-hw/vfio.
# shellcheck disable=SC2016 # the script's own expansions
write_hw_script() {
	{
		printf '%s\n' '#!/bin/bash' '# written by scripts/vm.sh: the guest'"'"'s hardware setup'
		printf 'exec >%s/hw.log 2>&1\n' "$GUEST_OUT"
		printf '%s\n' 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
		printf '%s\n' 'warn() { printf "hw.sh: %s\n" "$*"; }'
		printf '. %q\n' "$ROOT/scripts/lib-state.sh"
		printf '%s\n' 'PINCHECK_VM_HW= setup_hugetlb'
		[[ ${prof[rdma]} == rxe ]] && printf '%s\n' \
			'# no duplicate address detection: the link-local GID is usable at' \
			'# once (a tentative one made an RC connect time out in RTR)' \
			'no_dad() { for i; do echo 0 >"/proc/sys/net/ipv6/conf/$i/accept_dad"; done 2>/dev/null; return 0; }' \
			'if ip link add pcrxe0 mtu 9000 type veth peer name pcrxe1 mtu 9000 &&' \
			'   no_dad pcrxe0 pcrxe1 &&' \
			'   ip link set pcrxe0 up && ip link set pcrxe1 up &&' \
			'   rdma link add rxe0 type rxe netdev pcrxe0; then' \
			'	echo "rxe0 pcrxe0" >/run/pincheck-hw/rdma' \
			'else' \
			'	echo "none: rdma_rxe, veth or the rdma tool missing" >/run/pincheck-hw/rdma' \
			'fi'
		if [[ ${prof[vfio]} == auto ]]; then
			write_find_edu
			printf '%s\n' \
				'if [[ -n $vfio_dev ]]; then' \
				'	{ echo vfio-pci >"/sys/bus/pci/devices/$vfio_dev/driver_override" &&' \
				'	  echo "$vfio_dev" >/sys/bus/pci/drivers_probe; } 2>/dev/null' \
				'	if [[ -e /sys/bus/pci/drivers/vfio-pci/$vfio_dev ]]; then' \
				'		echo "$vfio_dev vfio-pci" >/run/pincheck-hw/vfio' \
				'	else' \
				'		echo "none: could not bind edu $vfio_dev to vfio-pci" >/run/pincheck-hw/vfio' \
				'	fi' \
				'fi'
		fi
		printf 'exit 0\n'
	} >"$opt_out/hw.sh"
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

# write_run_meta: the guest script's lines that describe the run for the
# results (run_tests.sh's run_metadata) and stream every result record to
# the host (records: what report_failed_run keeps if the guest dies).
write_run_meta() {
	printf 'export PINCHECK_RECORDS=%q PINCHECK_RUN_KERNEL=%q PINCHECK_RUN_HOSTNAME=%q\n' \
		"$GUEST_OUT/records" "$opt_kernel" "$(uname -n)"
	printf 'export PINCHECK_RUN_PROFILE=%q PINCHECK_RUN_ACCEL=%q PINCHECK_RUN_COMMIT=%q\n' \
		"${opt_profile##*/}" "$ACCEL" "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)"
	printf 'cat /proc/version >%s/kernel-version 2>/dev/null\n' "$GUEST_OUT"
	kernel_git
	printf 'export PINCHECK_RUN_KGIT_COMMIT=%q PINCHECK_RUN_KGIT_URL=%q PINCHECK_RUN_KGIT_BRANCH=%q\n' \
		"$KGIT_COMMIT" "$KGIT_URL" "$KGIT_BRANCH"
}

# write_guest_script: what the guest runs in the chroot of the host root.
# PINCHECK_VM_HW tells run_tests.sh and the tests that the hardware comes
# up in the background (/init made the swap and mounted debugfs).
# shellcheck disable=SC2016 # the script's own expansions
write_guest_script() {
	local -a args=(--no-build "${guest_args[@]}" --json "$GUEST_OUT/results.json")
	local v

	[[ -n $opt_junit ]] && args+=(--junit "$GUEST_OUT/results.xml")
	{
		printf '%s\n' '#!/bin/bash' '# written by scripts/vm.sh for one guest run'
		printf 'exec >%s/tap.log 2>&1\n' "$GUEST_OUT"
		printf '%s\n' 'read -r up _ </proc/uptime'
		printf 'echo "$up" >%s/start-uptime\n' "$GUEST_OUT"
		printf '%s\n' 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
		printf 'cd %q || exit 2\n' "$ROOT"
		# odirect_fork's knobs (docs/odirect_fork.md) reach the guest's binaries too
		for v in "${!PINCHECK_ODF_@}"; do
			printf 'export %s=%q\n' "$v" "${!v}"
		done
		printf '%s\n' 'read -r kver </proc/sys/kernel/osrelease' \
			'printf "# guest: kernel %s, /init after %s s\n" "$kver" "$up"' \
			'export PINCHECK_VM_HW=/run/pincheck-hw'
		printf 'export PINCHECK_LIST_CACHE=%q PINCHECK_LIST_SAVE=%q\n' \
			"$LIST_CACHE" "$GUEST_OUT/lists"
		write_run_meta
		[[ ${prof[vfio]} != none ]] && write_find_edu
		[[ ${prof[vfio]} == auto ]] &&
			printf '%s\n' '[[ -n $vfio_dev ]] && export PINCHECK_VFIO_DEVICE=$vfio_dev'
		if [[ ${prof[vfio]} == runner ]]; then
			# run_tests.sh --vfio-device needs vfio_pci loaded
			printf '%s\n' 'until [[ -e /run/pincheck-hw/modules ]]; do sleep 0.1; done'
			printf './run_tests.sh'
			printf ' %q' "${args[@]}"
			printf ' %s\n' '${vfio_dev:+--vfio-device "$vfio_dev"}'
			printf '%s\n' 'rc=$?' \
				'if [[ -n $vfio_dev ]]; then' \
				'	drv=$(cd -P "/sys/bus/pci/devices/$vfio_dev/driver" 2>/dev/null && echo "${PWD##*/}")' \
				'	printf "# guest: %s driver after the run: %s\n" "$vfio_dev" "${drv:-none}"' \
				'fi' \
				'exit "$rc"'
		else
			# sourced, not run: one bash start less (0.1 s under TCG);
			# it ends this script with its exit status
			printf '%s\n' 'unset up kver d v id'
			printf '. ./run_tests.sh'
			printf ' %q' "${args[@]}"
			printf '\n'
		fi
	} >"$opt_out/guest.sh"
	write_hw_script
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
		QCMD+=(-accel tcg,thread=single -cpu max)
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
	QCMD+=("${devices[@]}"
	       -kernel "$K_IMAGE" -initrd "$K_INITRD"
	       -append "console=ttyS0 loglevel=5 panic=-1 ${prof[cmdline]}"
	       -fsdev local,id=pcroot,path=/,security_model=none,readonly=on,multidevs=remap
	       -device virtio-9p-pci,fsdev=pcroot,mount_tag=pcroot
	       -fsdev "local,id=pcout,path=$opt_out,security_model=none"
	       -device virtio-9p-pci,fsdev=pcout,mount_tag=pcout
	       -serial "file:$opt_out/console.log" -pidfile "$opt_out/qemu.pid")
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
# results the guest streamed (records) plus the failure "vm/run" as JSON,
# JUnit and the summary lines (results.awk, as a finished run writes them).
report_failed_run() {
	local line='' records=$opt_out/records

	printf 'Bail out! %s: %s\n' "$opt_kernel" "$1"
	tail -n 15 "$opt_out/console.log" 2>/dev/null | tr -d '\r' |
		sed 's/^/# console: /'
	[[ -f $records ]] || : >"$records"
	printf 'vm\tvm/run\t%s\t0\t%s\t%s\n' "$2" "${1//$'\t'/ }" "$EPOCHSECONDS" >>"$records"
	{ IFS= read -r line <"$opt_out/kernel-version"; } 2>/dev/null
	PC_JSON=$opt_json PC_JUNIT=$opt_junit PC_START=${3%.*} PC_END=$EPOCHSECONDS \
	PC_KERNEL=$K_VER PC_KERNEL_VERSION=$line \
	PC_KERNEL_SPEC=$opt_kernel PC_ARCH=$(uname -m) PC_HOSTNAME=$(uname -n) \
	PC_COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) \
	PC_PROFILE=${opt_profile##*/} PC_ACCEL=$ACCEL PC_INCOMPLETE=$1 \
	PC_KGIT_COMMIT=$KGIT_COMMIT PC_KGIT_URL=$KGIT_URL PC_KGIT_BRANCH=$KGIT_BRANCH \
		awk -f "$ROOT/scripts/results.awk" "$records"
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
	trap 'on_signal INT 2' INT
	trap 'on_signal TERM 15' TERM
	t0=$EPOCHREALTIME
	boot_t0=$t0
	timeout -k 5 "$opt_vm_timeout" "${QCMD[@]}" </dev/null >"$opt_out/qemu.log" 2>&1 &
	qpid=$!
	tail -n +1 -s 0.2 -f --pid="$qpid" -- "$opt_out/tap.log" | stream_timed "$t0"
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
	write_guest_script
	note "booting $K_NAME under QEMU ($ACCEL, profile ${opt_profile##*/}); logs in $opt_out"
	printf '%q ' "${QCMD[@]}" >"$opt_out/qemu.cmd"
	while :; do
		boot_once
		qrc=$REPLY
		if [[ -s $opt_out/rc ]] && read -r rc <"$opt_out/rc" && [[ $rc =~ ^[0-9]+$ ]]; then
			keep_lists
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

main() {
	parse_args "$@"
	[[ $opt_vm_timeout =~ ^[1-9][0-9]*$ ]] || die "--vm-timeout needs a whole number of seconds"
	"$ROOT/scripts/deps.sh" --vm || exit 2
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
	run_guest
}

main "$@"
