#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/runner/deps.sh [--build|--check]: make sure the Debian packages pincheck
# needs are installed, installing the missing ones with apt-get (as root).
#   --build  what `make` needs (the default)
#   --check  also what `make check` needs (jq; python3-jsonschema, xmllint
#            and Perl's TAP::Parser for the schema checks; the --vm packages)
#   --vm     what `run_tests.sh --kernel` needs (QEMU, busybox, kmod...)
#   --kbuild what `run_tests.sh --build-kernel` needs (flex, bison, ...)
# Silent when nothing is missing.  Exit 0 ready, 2 missing and not installed.
# Not a Debian system (no dpkg-query): nothing to check.

set -u

PROG=pincheck

build_pkgs=(gcc make libc6-dev pkg-config liburing-dev libibverbs-dev libnuma-dev)
check_pkgs=(jq python3-jsonschema libxml2-utils perl)
vm_pkgs=(qemu-system-x86 busybox-static kmod xz-utils zstd iproute2 ibverbs-providers
	 binutils jq curl debian-archive-keyring e2fsprogs xfsprogs)

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }

pkgs=("${build_pkgs[@]}")
case ${1---build} in
--build) ;;
--check) pkgs+=("${check_pkgs[@]}" "${vm_pkgs[@]}") ;;
--vm) pkgs=("${vm_pkgs[@]}") ;;
--kbuild) pkgs=(gcc make bc flex bison libelf-dev libssl-dev ccache) ;;
*) say "deps.sh: unknown option '$1' (use --build, --check, --vm or --kbuild)"; exit 2 ;;
esac

command -v dpkg-query >/dev/null || exit 0

# "name ii " for an installed package (second letter i: installed, also
# when held); unknown packages print nothing.
declare -A have=()
while read -r name status; do
	[[ ${status:1:1} == i ]] && have[$name]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${pkgs[@]}" 2>/dev/null)

missing=()
for p in "${pkgs[@]}"; do
	[[ -n ${have[$p]-} ]] || missing+=("$p")
done
((${#missing[@]})) || exit 0

if ! command -v apt-get >/dev/null; then
	say "missing Debian packages: ${missing[*]} (no apt-get: install them by hand)"
	exit 2
fi
if ((EUID != 0)); then
	say "missing Debian packages: ${missing[*]} (run as root to install them)"
	exit 2
fi

say "installing missing Debian packages: ${missing[*]}"
log=$(mktemp "${TMPDIR:-/tmp}/pincheck-apt.XXXXXX") || exit 2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq &&
       apt-get install -y -qq --no-install-recommends \
	       -o DPkg::Lock::Timeout=300 "${missing[@]}"; } >"$log" 2>&1 </dev/null; then
	tail -n 20 "$log" >&2
	say "could not install ${missing[*]} (log: $log)"
	exit 2
fi
rm -f -- "$log"
exit 0
