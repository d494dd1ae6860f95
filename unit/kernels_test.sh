#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/kernels_test.sh: the Debian kernel resolution of `--kernel debian:X.Y`,
# `debian:SUITE` and `--kernel list` (scripts/kernels/kernels-debian.sh) against a
# fake archive made here (a test key signs its InRelease files; both
# packagings; rc versions), without the network: newest version wins,
# tampered indexes and packages are refused with nothing left in the cache,
# offline runs reuse the cache; and the vmlinux extraction of a bzImage on a
# full cache filesystem, then a retry.  Last, when the real archive answers
# (or the kernel is cached), one split-packaged kernel (debian:sid) boots.
# Prints "ok N - ..." and ends with "N passed, N failed, N skipped".

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
ROOT=$PWD
RUN=./run_tests.sh

# shellcheck source=unit/vmtest-lib.sh
. "${BASH_SOURCE[0]%/*}/vmtest-lib.sh"
vt_init kernels-test

err_is_one_line() { [[ $(wc -l <"$ERR") == 1 ]] && grep -qE -- "$1" "$ERR"; }
# error_line RE: besides the "fetching" progress line, one line: RE.
error_line() {
	[[ $(grep -vc '^run_tests.sh: fetching ' "$ERR") == 1 ]] && tail -n 1 "$ERR" | grep -qE -- "$1"
}

# --- the fake archive ----------------------------------------------------

MIRROR=$tmp/mirror
export GNUPGHOME=$tmp/gnupg

# le32 N: N as 4 little-endian bytes.
le32() {
	local b

	for b in 0 8 16 24; do
		# shellcheck disable=SC2059 # the byte as an escape
		printf "\\x$(printf %02x $((($1 >> b) & 255)))"
	done
}

# make_elf OUT: a small ELF with a PVH (Xen type 0x12) note and 3 MiB of data.
make_elf() {
	printf '%s\n' '.section .note.Xen,"a",@note' '.balign 4' \
		'.long 4, 4, 0x12' '.asciz "Xen"' '.long 0' \
		'.data' '.fill 3145728, 1, 0x5a' '.text' '.globl _start' '_start: hlt' \
		>"$tmp/pvh.S"
	cc -nostdlib -static -Wl,--build-id=none -o "$1" "$tmp/pvh.S"
}

# make_bzimage ELF OUT: a bzImage-shaped file (HdrS, setup_sects 1,
# payload_offset 0, payload_length) holding ELF xz-compressed, size appended.
make_bzimage() {
	local len

	xz -c --check=crc32 "$1" >"$tmp/payload.xz" || return 1
	le32 "$(stat -c %s "$1")" >>"$tmp/payload.xz"
	len=$(stat -c %s "$tmp/payload.xz")
	head -c 1024 /dev/zero >"$2"
	printf '\001' | dd of="$2" bs=1 seek=497 conv=notrunc status=none
	printf 'HdrS' | dd of="$2" bs=1 seek=514 conv=notrunc status=none
	{ le32 0; le32 "$len"; } | dd of="$2" bs=1 seek=584 conv=notrunc status=none
	cat "$tmp/payload.xz" >>"$2"
}

# make_deb DIR NAME VERSION OUT: a .deb of DIR's tree.
make_deb() {
	mkdir -p -- "$1/DEBIAN"
	printf '%s\n' "Package: $2" "Version: $3" "Architecture: amd64" \
		"Maintainer: pincheck <t@example.invalid>" "Description: test" >"$1/DEBIAN/control"
	dpkg-deb -Zxz -b "$1" "$4" >/dev/null
}

# add_pkg SUITE NAME VERSION DEB: DEB into the pool and SUITE's Packages.
add_pkg() {
	local pool=pool/main/l/$2_$3_amd64.deb

	mkdir -p -- "$MIRROR/debian/pool/main/l"
	cp -- "$4" "$MIRROR/debian/$pool"
	printf '%s\n' "Package: $2" "Source: linux" "Version: $3" "Architecture: amd64" \
		"Filename: $pool" "Size: $(stat -c %s "$4")" \
		"SHA256: $(sha256sum "$4" | cut -d' ' -f1)" "" >>"$tmp/$1.Packages"
}

# one_deb SUITE ABI VERSION: a linux-image-ABI-amd64-unsigned (one .deb).
one_deb() {
	local d=$tmp/src/$2 kver=$2-amd64

	mkdir -p -- "$d/boot" "$d/lib/modules/$kver/kernel"
	cp -- "$tmp/bzImage" "$d/boot/vmlinuz-$kver"
	make_deb "$d" "linux-image-$kver-unsigned" "$3" "$tmp/$2.deb"
	add_pkg "$1" "linux-image-$kver-unsigned" "$3" "$tmp/$2.deb"
}

# split SUITE ABI VERSION: linux-binary-unsigned, -modules and -base of ABI.
split() {
	local d=$tmp/src/split-$2-$3 kver=$2-amd64 part

	mkdir -p -- "$d"/{bin,mod,base}/usr/lib/modules/"$kver"
	cp -- "$tmp/bzImage" "$d/bin/usr/lib/modules/$kver/vmlinuz.unsigned"
	mkdir -p -- "$d/mod/usr/lib/modules/$kver/kernel"
	: >"$d/base/usr/lib/modules/$kver/modules.builtin"
	: >"$d/base/usr/lib/modules/$kver/modules.order"
	for part in bin:linux-binary-unsigned mod:linux-modules base:linux-base; do
		make_deb "$d/${part%%:*}" "${part#*:}-$kver" "$3" "$tmp/${part#*:}-$2-$3.deb"
		add_pkg "$1" "${part#*:}-$kver" "$3" "$tmp/${part#*:}-$2-$3.deb"
	done
}

# publish SUITE: its Packages.xz and a signed InRelease.
publish() {
	local d=$MIRROR/debian/dists/$1

	mkdir -p -- "$d/main/binary-amd64"
	xz -c "$tmp/$1.Packages" >"$d/main/binary-amd64/Packages.xz"
	printf '%s\n' "Suite: $1" "SHA256:" \
		" $(sha256sum "$d/main/binary-amd64/Packages.xz" | cut -d' ' -f1) $(stat -c %s "$d/main/binary-amd64/Packages.xz") main/binary-amd64/Packages.xz" \
		>"$tmp/$1.Release"
	gpg --batch -q --yes --clearsign -o "$d/InRelease" "$tmp/$1.Release"
}

make_archive() {
	mkdir -m 700 "$GNUPGHOME"
	gpg --batch -q --pinentry-mode loopback --passphrase '' \
		--quick-gen-key 'pincheck test <t@example.invalid>' ed25519 sign never 2>/dev/null &&
		gpg --batch -q --export >"$tmp/keyring.gpg" || return 1
	make_elf "$tmp/vmlinux.elf" && make_bzimage "$tmp/vmlinux.elf" "$tmp/bzImage" || return 1
	one_deb bookworm 6.98.0-3 6.98.4-1
	one_deb bookworm 6.98.0-4 6.98.10-1
	split sid 7.9.1+deb14 7.9.1-1
	split experimental 7.9 '7.9~rc7-1~exp1'
	split experimental 8.0 '8.0~rc2-1~exp1'
	publish bookworm && publish sid && publish experimental
}

export PINCHECK_DEBIAN_MIRROR=file://$MIRROR PINCHECK_DEBIAN_KEYRING=$tmp/keyring.gpg
export PINCHECK_DEBIAN_SUITES="debian/bookworm debian/sid debian/experimental"
export PINCHECK_DEBIAN_ARCHIVE=1 PINCHECK_INDEX_TTL=0 PINCHECK_CACHE=$tmp/cache

# resolve SPEC: the kernel's files as scripts/vm/vm.sh finds them (nothing booted).
resolve() {
	PINCHECK_VM_RESOLVE_ONLY=1 scripts/vm/vm.sh --kernel "$1" >"$OUT" 2>"$ERR" </dev/null
	RC=$?
}

if ! command -v gpg >/dev/null || ! command -v cc >/dev/null; then
	skip "the fake Debian archive" "needs gpg and cc (Debian: gnupg, gcc)"
	summary
	exit 0
fi
make_archive
check "a fake archive: signed InRelease, Packages.xz, one-.deb and split kernels" || true

# --- listing and choosing ----------------------------------------------------

scripts/vm/vm.sh --kernel list >"$OUT" 2>"$ERR" </dev/null
RC=$?
((RC == 0)) && grep -qE '^debian:6\.98 +bookworm +6\.98\.10-1 +no$' "$OUT" &&
	grep -qE '^debian:7\.9 +sid +7\.9\.1-1 +no$' "$OUT" &&
	grep -qE '^debian:8\.0 +experimental +8\.0~rc2-1~exp1 +no$' "$OUT" &&
	grep -qE '^debian:experimental +experimental +8\.0~rc2-1~exp1 ' "$OUT" &&
	grep -qE '^debian:sid +sid +7\.9\.1-1 ' "$OUT"
check "--kernel list: series and suites from the indexes; 6.98.10 over 6.98.4, 7.9.1 over 7.9~rc7, 8.0~rc2 newest of experimental"

resolve debian:6.98
dir=$PINCHECK_CACHE/kernels/linux-image-6.98.0-4-amd64-unsigned_6.98.10-1
[[ $RC == 0 ]] && grep -qx "image $dir/vmlinux" "$OUT" &&
	grep -qx "moddir $dir/root/lib/modules/6.98.0-4-amd64" "$OUT" &&
	[[ -s $dir/root/lib/modules/6.98.0-4-amd64/modules.dep || -e $dir/root/lib/modules/6.98.0-4-amd64/modules.dep ]]
check "debian:6.98 (one .deb): unpacked, depmod run, the PVH vmlinux extracted"

resolve debian:sid
dir=$PINCHECK_CACHE/kernels/linux-image-7.9.1+deb14-amd64_7.9.1-1
[[ $RC == 0 ]] && grep -qx "image $dir/vmlinux" "$OUT" &&
	grep -qx "moddir $dir/root/usr/lib/modules/7.9.1+deb14-amd64" "$OUT" &&
	[[ -e $dir/root/usr/lib/modules/7.9.1+deb14-amd64/modules.dep &&
	   -e $dir/root/usr/lib/modules/7.9.1+deb14-amd64/modules.builtin ]]
check "debian:sid (split: binary-unsigned, modules, base): unpacked, depmod run"

resolve debian:7.9
[[ $RC == 0 ]] && grep -q "7.9.1+deb14-amd64_7.9.1-1/vmlinux" "$OUT"
check "debian:7.9 is the released 7.9.1 of sid, not experimental's 7.9~rc7"

# --- bad input -----------------------------------------------------------------

resolve debian:9.9
[[ $RC == 2 ]] && err_is_one_line "no Debian kernel '9.9': series 6.98, 7.9, 8.0; suites bookworm, sid, experimental"
check "an unknown series: exit 2, one line naming the series and suites"

resolve debian:buster
[[ $RC == 2 ]] && err_is_one_line "no Debian kernel 'buster'"
check "an unknown suite: exit 2 and one line"

resolve 'debian:../x'
[[ $RC == 2 ]] && err_is_one_line "unknown kernel"
check "a malformed debian: name: exit 2 and one line"

# tamper ARCHIVE-FILE: flip one of its bytes (kept in FILE.orig).
tamper() {
	cp -- "$1" "$1.orig"
	printf 'X' | dd of="$1" bs=1 seek=$(($(stat -c %s "$1") / 2)) conv=notrunc status=none
}
untamper() { mv -f -- "$1.orig" "$1"; }

# cache_has_no NAME: nothing of NAME (temporary or not) in the cache.
cache_has_no() { ! compgen -G "$PINCHECK_CACHE/kernels/$1*" >/dev/null; }

deb=$MIRROR/debian/pool/main/l/linux-modules-8.0-amd64_8.0~rc2-1~exp1_amd64.deb
tamper "$deb"
resolve debian:experimental
[[ $RC == 2 ]] && error_line 'does not match its signed SHA256' &&
	cache_has_no linux-image-8.0-amd64
check "a tampered .deb: exit 2, one line, nothing left in the cache"
untamper "$deb"

rel=$MIRROR/debian/dists/sid/InRelease
cp -- "$rel" "$rel.orig"
sed -i 's/^Suite: sid/Suite: sad/' "$rel"
cp -a -- "$PINCHECK_CACHE/index" "$tmp/index.before"
resolve debian:sid
[[ $RC == 2 ]] && err_is_one_line 'InRelease does not verify' &&
	diff -r "$tmp/index.before" "$PINCHECK_CACHE/index" >/dev/null &&
	! compgen -G "$PINCHECK_CACHE/index/.new*" >/dev/null
check "an InRelease whose signature fails: exit 2, one line, the index cache unchanged"
untamper "$rel"

pk=$MIRROR/debian/dists/sid/main/binary-amd64/Packages.xz
cp -- "$pk" "$pk.orig"
printf '%s\n' "Package: linux-image-9.9.0-1-amd64-unsigned" "Version: 9.9.0-1" "" | xz -c >"$pk"
PINCHECK_CACHE=$tmp/fresh resolve debian:sid
[[ $RC == 2 ]] && err_is_one_line 'sid Packages.xz does not match its signed SHA256' &&
	! compgen -G "$tmp/fresh/index/*" >/dev/null
check "a Packages.xz not matching the signed InRelease: exit 2, one line, no index kept"
untamper "$pk"

# --- offline -------------------------------------------------------------------

mv -- "$MIRROR" "$MIRROR.away"
resolve debian:sid
[[ $RC == 0 ]] && grep -q "7.9.1+deb14-amd64_7.9.1-1/vmlinux" "$OUT" &&
	err_is_one_line '^run_tests.sh: offline: .* using the cached Debian indexes \([0-9]+ min old\)$'
check "offline: the cached kernel is reused, one line says so"

resolve debian:experimental
[[ $RC == 2 ]] && err_is_one_line '^run_tests.sh: offline: .*, and Debian 8.0 8.0~rc2-1~exp1 is not cached$'
check "offline, that kernel not cached: exit 2 and one line"

PINCHECK_CACHE=$tmp/empty resolve debian:sid
[[ $RC == 2 ]] && err_is_one_line 'unreachable and nothing is cached'
check "offline with nothing cached: exit 2 and one line"
mv -- "$MIRROR.away" "$MIRROR"

# --- the vmlinux of a bzImage: a full cache filesystem, then a retry --------

if ((EUID == 0)) && mkdir -p "$tmp/small" && mount -t tmpfs -o size=2m pincheck-test "$tmp/small" 2>/dev/null; then
	PINCHECK_CACHE=$tmp/small resolve "$tmp/bzImage"
	[[ $RC == 0 ]] && grep -qx "image $tmp/bzImage" "$OUT" &&
		grep -q 'could not extract the vmlinux' "$ERR" &&
		! compgen -G "$tmp/small/images/*/vmlinux*" >/dev/null
	check "a full cache filesystem: no (truncated) vmlinux left, the bzImage is booted"
	mount -o remount,size=16m "$tmp/small"
	PINCHECK_CACHE=$tmp/small resolve "$tmp/bzImage"
	[[ $RC == 0 ]] && grep -q "image $tmp/small/images/.*/vmlinux" "$OUT" &&
		cmp -s "$tmp/vmlinux.elf" "$tmp"/small/images/*/vmlinux
	check "the retry with space extracts the complete vmlinux"
	v=$(compgen -G "$tmp/small/images/*/vmlinux")
	head -c 100000 "$tmp/vmlinux.elf" >"$v"
	PINCHECK_CACHE=$tmp/small resolve "$tmp/bzImage"
	[[ $RC == 0 ]] && grep -qx "image $v" "$OUT" && cmp -s "$tmp/vmlinux.elf" "$v"
	check "a truncated vmlinux in the cache (older runs) is extracted again, not booted"
	mkdir -p "$tmp/t" &&
		{ dd if=/dev/zero of="$tmp/small/fill" bs=64k 2>/dev/null; :; }
	TMPDIR=$tmp/t PINCHECK_CACHE=$tmp/small PINCHECK_VM_RESOLVE_ONLY=initramfs \
		scripts/vm/vm.sh --kernel "$tmp/bzImage" >"$OUT" 2>"$ERR" </dev/null
	RC=$?
	[[ $RC == 2 && $(wc -l <"$ERR") == 1 ]] && grep -q 'cannot write .*/initramfs/' "$ERR" &&
		[[ -z $(ls -A "$tmp/t") ]] && ! compgen -G "$tmp/small/initramfs/*.cpio*" >/dev/null
	check "a failed initramfs build (full cache): exit 2, one line, no temporary directory or partial archive left"
	rm -f "$tmp/small/fill"
	TMPDIR=$tmp/t PINCHECK_CACHE=$tmp/small PINCHECK_VM_RESOLVE_ONLY=initramfs \
		scripts/vm/vm.sh --kernel "$tmp/bzImage" >"$OUT" 2>"$ERR" </dev/null
	RC=$?
	[[ $RC == 0 ]] && grep -q "^initrd $tmp/small/initramfs/.*\.cpio$" "$OUT" &&
		[[ -z $(ls -A "$tmp/t") ]]
	check "the retry with space builds the initramfs"
	umount "$tmp/small"
else
	skip "a full cache filesystem" "needs root (a 2 MiB tmpfs)"
	skip "the retry after a full cache filesystem" "needs root"
fi

head -c 1000000 "$tmp/vmlinux.elf" >"$tmp/vmlinux"
resolve "$tmp/vmlinux"
[[ $RC == 2 ]] && err_is_one_line 'truncated or damaged ELF kernel'
check "a truncated vmlinux: exit 2, one line saying so"

head -c 1100 "$tmp/bzImage" >"$tmp/bzImage.cut"
resolve "$tmp/bzImage.cut"
[[ $RC == 2 ]] && err_is_one_line 'truncated bzImage'
check "a truncated bzImage: exit 2, one line saying so"

# --- --matrix-merge: the table from saved per-kernel results -----------------

mkdir -p "$tmp/m/a" "$tmp/m/b"
printf '%s\n' '[{"id":"pin_fork/s1/anon/io_uring","result":"pass","kernel":"7.2.13+deb14-amd64"},' \
	'{"id":"pin_fork/s1/anon/vmsplice","result":"fail","kernel":"7.2.13+deb14-amd64"}]' \
	>"$tmp/m/a/debian-7.2.json"
printf 'debian:7.2\t403\t1\n' >"$tmp/m/a/debian-7.2.run"
printf '%s\n' '{"format":"pincheck-results","version":2,"run":{},"results":' \
	'[{"id":"pin_fork/s1/anon/io_uring","result":"pass","kernel":"5.10.0-46-amd64"}]}' \
	>"$tmp/m/b/debian-5.10.json"
printf '[{"id":"pin_fork/s1/anon/io_uring","result":"skip","kernel":"6.18.0"}]\n' >"$tmp/m/b/host.json"
runner --matrix-merge "$tmp/m/a" "$tmp/m/b" --matrix-out "$tmp/m/out"
[[ $RC == 0 ]] &&
	grep -qE '^scenario +debian-5\.10 \(5\.10\.0-46-amd64\) +debian:7\.2 \(7\.2\.13\+deb14-amd64, 403 s\) +host \(6\.18\.0\)$' "$OUT" &&
	grep -qE '^pin_fork/s1 +pass 1 +FAIL 1/2 NEW +skip *$' "$OUT" &&
	grep -qF '| pin_fork/s1 | pass 1 | FAIL 1/2 NEW | skip |' "$tmp/m/out/matrix.md" &&
	grep -qF '<th>debian:7.2 (7.2.13+deb14-amd64, 403 s)</th>' "$tmp/m/out/matrix.html"
check "--matrix-merge: one table from two directories (array and {results} files), titled, ordered, host last"
grep -qF '| pin_fork | 1/0/0 | 1/1/0 NEW | 0/0/1 |' "$tmp/m/out/matrix-binaries.md"
check "--matrix-merge: the per-binary table counts passed/failed/skipped" "$(cat "$tmp/m/out/matrix-binaries.md")"

runner --matrix-merge "$tmp/nosuch"
[[ $RC == 2 ]] && err_is_one_line "no directory"
check "--matrix-merge of a missing directory: exit 2 and one line"

echo garbage >"$tmp/m/b/x.json"
runner --matrix-merge "$tmp/m/b"
[[ $RC == 2 ]] && err_is_one_line "not a pincheck results file"
check "--matrix-merge of a file that is not results: exit 2 and one line"

# --- the real archive: a split-packaged kernel boots --------------------------

unset PINCHECK_DEBIAN_MIRROR PINCHECK_DEBIAN_KEYRING PINCHECK_DEBIAN_SUITES
unset PINCHECK_DEBIAN_ARCHIVE PINCHECK_INDEX_TTL PINCHECK_CACHE
if ((EUID != 0)); then
	skip "debian:sid boots" "needs root"
elif ! resolve debian:sid || ! grep -q '/usr/lib/modules/' "$OUT"; then
	skip "debian:sid boots" "the Debian archive is unreachable and debian:sid is not cached ($(head -n 1 "$ERR"))"
else
	runner --kernel debian:sid --vm-out "$tmp/vm-sid" -t 'pin_fork/pin-only/anon/io_uring'
	[[ $RC == 0 ]] && grep -q '^# guest: kernel [0-9.]*+deb[0-9]*-amd64' "$OUT" &&
		grep -q '^ok .* pin_fork/pin-only/anon/io_uring' "$OUT"
	check "debian:sid (split packaging) boots and runs a case"
fi

summary
((nfail == 0))
