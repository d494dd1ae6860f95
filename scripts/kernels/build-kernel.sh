#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/kernels/build-kernel.sh KSRC [OUT]: `run_tests.sh --build-kernel KSRC`.
# Configures the kernel tree KSRC out of tree in OUT (default
# $PINCHECK_CACHE/kbuild/<name>-<hash>): x86_64 defconfig + kvm_guest.config
# + configs/pincheck.config, olddefconfig; builds the bzImage (and modules
# if the config has any) with ccache when present, incrementally on later
# calls; says which requested options the tree does not have; prints the
# image path as its last stdout line (feed it to --kernel).
# Exit 0 built, 1 the build failed (log named), 2 bad input or missing tools.

set -u

PROG=run_tests.sh
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd) || exit 2
CACHE=${PINCHECK_CACHE:-/var/cache/pincheck}
FRAGMENT=$ROOT/configs/pincheck.config

warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { warn "$@"; exit 2; }

(($# >= 1 && $# <= 2)) || die "usage: build-kernel.sh KSRC [OUT]"
ksrc=$1
[[ -f $ksrc/Makefile && -f $ksrc/Kconfig && -d $ksrc/arch/x86 ]] ||
	die "'$ksrc' is not a kernel source tree (no Makefile, Kconfig, arch/x86)"
ksrc=$(cd -- "$ksrc" && pwd)
if (($# == 2)); then
	out=$2
else
	out=$CACHE/kbuild/${ksrc##*/}-$(printf '%s' "$ksrc" | cksum | cut -d' ' -f1)
fi
mkdir -p -- "$out" || die "cannot create $out"
out=$(cd -- "$out" && pwd)
"$ROOT/scripts/runner/deps.sh" --kbuild || exit 2

jobs=$(nproc)
cc=gcc
command -v ccache >/dev/null && cc="ccache gcc"
log=$out/build.log
kmake() { make -C "$ksrc" O="$out" CC="$cc" HOSTCC="$cc" -j"$jobs" "$@"; }

# configure: when there is no config yet or the fragment changed since.
configure() {
	local stamp=$out/.pincheck-fragment

	if [[ -f $out/.config && -f $stamp ]] && cmp -s -- "$FRAGMENT" "$stamp"; then
		kmake olddefconfig >>"$log" 2>&1
		return
	fi
	printf '%s: configuring %s in %s\n' "$PROG" "$ksrc" "$out" >&2
	kmake x86_64_defconfig >>"$log" 2>&1 || return 1
	# merge_config.sh leaves its temporary files in the current directory.
	(cd -- "$out" && "$ksrc/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" \
		"$ksrc/kernel/configs/kvm_guest.config" "$FRAGMENT") >>"$log" 2>&1 || return 1
	kmake olddefconfig >>"$log" 2>&1 || return 1
	cp -- "$FRAGMENT" "$stamp"
}

# missing_options: the fragment's =y options this tree did not take.
missing_options() {
	local line opt

	while IFS= read -r line; do
		[[ $line =~ ^(CONFIG_[A-Z0-9_]+)=y$ ]] || continue
		opt=${BASH_REMATCH[1]}
		grep -qx "$opt=y" "$out/.config" || printf ' %s' "$opt"
	done <"$FRAGMENT"
}

: >"$log"
configure || { warn "configuring failed (log: $log)"; exit 1; }
missing=$(missing_options)
[[ -z $missing ]] ||
	warn "this tree lacks (the cases needing them will skip):$missing"
printf '%s: building bzImage with %d jobs (%s; log: %s)\n' "$PROG" "$jobs" "$cc" "$log" >&2
kmake bzImage >>"$log" 2>&1 || { warn "the kernel build failed (log: $log)"; exit 1; }
if grep -q '=m$' "$out/.config"; then
	if ! kmake modules >>"$log" 2>&1 ||
	   ! kmake INSTALL_MOD_PATH="$out/modules" modules_install >>"$log" 2>&1; then
		warn "the module build failed (log: $log)"
		exit 1
	fi
	printf '%s: modules in %s (pass --modules %s)\n' "$PROG" "$out/modules" "$out/modules" >&2
fi
printf '%s\n' "$out/arch/x86/boot/bzImage"
