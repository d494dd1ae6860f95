# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# scripts/kernels/kernels-debian.sh: Debian's kernels for `--kernel debian:X.Y`,
# `--kernel debian:SUITE` and `--kernel list`; sourced by scripts/vm/vm.sh
# (which provides die, note, need_space, extract_vmlinux and CACHE).
#
# The series come from the archive's own indexes, never from a list here:
# each suite's InRelease is verified with gpgv and debian-archive-keyring,
# its main/binary-amd64/Packages.xz checked against the signed SHA256, and
# the kernel packages it lists are kept in $CACHE/index/SUITE.kernels (its
# first line the Packages.xz SHA256: an unchanged index is not downloaded).  The
# .debs come through apt where apt has that very version, else from the
# archive, checked against the signed SHA256.  Two layouts:
#   deb    linux-image-ABI-amd64-unsigned: boot/vmlinuz-VER, lib/modules/VER
#   split  linux-binary-unsigned-ABI (usr/lib/modules/VER/vmlinuz.unsigned),
#          linux-modules-ABI (no modules.dep: depmod), linux-base-ABI
# Unpacked kernels live in $CACHE/kernels/ID_VERSION with a meta file.
#
# Environment: PINCHECK_DEBIAN_MIRROR (default http://deb.debian.org),
# PINCHECK_DEBIAN_SUITES ("ARCHIVE/SUITE ..."), PINCHECK_DEBIAN_KEYRING,
# PINCHECK_INDEX_TTL (seconds an index is used without asking the archive,
# default 3600), PINCHECK_DEBIAN_ARCHIVE=1 (never apt).

DEBIAN_MIRROR=${PINCHECK_DEBIAN_MIRROR:-http://deb.debian.org}
DEBIAN_KEYRING=${PINCHECK_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
DEBIAN_INDEX_TTL=${PINCHECK_INDEX_TTL:-3600}
read -r -a DEBIAN_SUITES <<<"${PINCHECK_DEBIAN_SUITES:-debian/bullseye debian-security/bullseye-security debian/bookworm debian/bookworm-updates debian-security/bookworm-security debian/trixie debian/trixie-updates debian-security/trixie-security debian/sid debian/experimental}"
KIDX=$CACHE/index
KTMP=()
KOFFLINE=

# kdie MESSAGE: die, leaving none of this run's temporary files behind.
kdie() {
	((${#KTMP[@]})) && rm -rf -- "${KTMP[@]}"
	die "$@"
}

# fetch_url URL FILE [SECONDS]: bounded in time; false when unreachable.
fetch_url() {
	curl -fsSL --connect-timeout 20 --max-time "${3:-300}" -o "$2" -- "$1" 2>/dev/null
}

# packages_kernels BASE: the kernel packages of a Packages file on stdin as
# "kind package version source url sha256" (kind deb, split or part).
packages_kernels() {
	awk -v base="$1" '
		function flush(  kind) {
			if (p ~ /-(cloud|rt)-amd64/ || p == "")
				return
			if (p ~ /^linux-image-[0-9][^ ]*-amd64-unsigned$/)
				kind = "deb"
			else if (p ~ /^linux-binary-unsigned-[0-9][^ ]*-amd64$/)
				kind = "split"
			else if (p ~ /^linux-(modules|base)-[0-9][^ ]*-amd64$/)
				kind = "part"
			else
				return
			print kind, p, v, (s == "" ? p : s), base "/" f, h
		}
		/^Package:/ { p = $2 } /^Version:/ { v = $2 } /^Source:/ { s = $2 }
		/^Filename:/ { f = $2 } /^SHA256:/ { h = $2 }
		/^$/ { flush(); p = s = "" }
		END { flush() }'
}

# index_fetch ARCHIVE/SUITE DIR: the suite's verified kernel lines into
# DIR/SUITE.kernels; false when the archive cannot be reached.
index_fetch() {
	local base=$DEBIAN_MIRROR/${1%/*} dist=${1#*/} dir=$2 sum old

	fetch_url "$base/dists/$dist/InRelease" "$dir/$dist.InRelease" 60 || return 1
	gpgv --keyring "$DEBIAN_KEYRING" --output "$dir/$dist.Release" \
		"$dir/$dist.InRelease" >/dev/null 2>&1 ||
		kdie "the Debian archive's $dist/InRelease does not verify with $DEBIAN_KEYRING"
	sum=$(awk '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 }
		s && $3 == "main/binary-amd64/Packages.xz" { print $1 }' "$dir/$dist.Release")
	[[ $sum =~ ^[0-9a-f]{64}$ ]] ||
		kdie "the Debian archive's $dist/InRelease lists no main/binary-amd64/Packages.xz"
	old=$KIDX/$dist.kernels
	if [[ $(head -n 1 -- "$old" 2>/dev/null) == "# Packages.xz $sum" ]]; then
		cp -- "$old" "$dir/$dist.kernels"
		return 0
	fi
	fetch_url "$base/dists/$dist/main/binary-amd64/Packages.xz" "$dir/$dist.Packages.xz" || return 1
	sha256sum -c --status <<<"$sum  $dir/$dist.Packages.xz" ||
		kdie "the Debian archive's $dist Packages.xz does not match its signed SHA256"
	{ echo "# Packages.xz $sum"
	  xz -dc -- "$dir/$dist.Packages.xz" | packages_kernels "$base"; } >"$dir/$dist.kernels" ||
		kdie "cannot read $dist Packages.xz"
	rm -f -- "$dir/$dist.Packages.xz"
}

# index_age: the age of the cached indexes in seconds in REPLY (-1: none).
index_age() {
	local t

	REPLY=-1
	t=$(stat -c %Y -- "$KIDX/stamp" 2>/dev/null) || return 0
	REPLY=$((EPOCHSECONDS - t))
}

# age_words SECONDS: "5 min" / "3 h" / "2 days" in REPLY.
age_words() {
	if (($1 < 7200)); then REPLY="$(($1 / 60)) min"
	elif (($1 < 172800)); then REPLY="$(($1 / 3600)) h"
	else REPLY="$(($1 / 86400)) days"; fi
}

# index_update: fresh indexes in $KIDX (kept PINCHECK_INDEX_TTL seconds);
# offline, the cached ones (KOFFLINE says so); false when there are none.
index_update() {
	local s tmp ok=0 failed=() f

	[[ $DEBIAN_INDEX_TTL =~ ^[0-9]+$ ]] || kdie "PINCHECK_INDEX_TTL needs a whole number of seconds"
	index_age
	((REPLY >= 0 && REPLY < DEBIAN_INDEX_TTL)) && return 0
	if ! command -v curl >/dev/null || ! command -v gpgv >/dev/null; then
		kdie "curl and gpgv are needed to read the Debian archive (Debian: curl, gpgv)"
	fi
	[[ -r $DEBIAN_KEYRING ]] ||
		kdie "no $DEBIAN_KEYRING to check the Debian archive (install debian-archive-keyring)"
	mkdir -p -- "$KIDX" 2>/dev/null || kdie "cannot create $KIDX"
	tmp=$(mktemp -d "$KIDX/.new.XXXXXX") || kdie "cannot write $KIDX"
	KTMP+=("$tmp")
	for s in "${DEBIAN_SUITES[@]}"; do
		if index_fetch "$s" "$tmp"; then ok=$((ok + 1)); else failed+=("${s#*/}"); fi
	done
	if ((ok)); then
		for f in "$tmp"/*.kernels; do
			s=${f##*/}
			s=${s%.kernels}
			mv -f -- "$f" "$KIDX/$s.kernels" || kdie "cannot write $KIDX"
		done
		touch -- "$KIDX/stamp"
		((${#failed[@]})) && note "the Debian archive did not answer for ${failed[*]}: their last index is used"
	fi
	rm -rf -- "$tmp"
	KTMP=()
	((ok)) && return 0
	index_age
	((REPLY >= 0)) || return 1
	age_words "$REPLY"
	KOFFLINE="offline: $DEBIAN_MIRROR is unreachable; using the cached Debian indexes ($REPLY old)"
}

# kernel_series VERSION: "7.3" of "7.3~rc7-1~exp1", in REPLY.
kernel_series() {
	[[ $1 =~ ^([0-9]+\.[0-9]+) ]] && REPLY=${BASH_REMATCH[1]}
}

# index_kernels: every kernel of the cached indexes, one line each:
# "series version suite layout id package source".
index_kernels() {
	local s f dist kind pkg ver src

	for s in "${DEBIAN_SUITES[@]}"; do
		dist=${s#*/}
		f=$KIDX/$dist.kernels
		[[ -e $f ]] || continue
		while read -r kind pkg ver src _; do
			[[ $kind == "#" ]] && continue
			kernel_series "$ver" || continue
			case $kind in
			deb) echo "$REPLY $ver $dist deb $pkg $pkg $src" ;;
			split) echo "$REPLY $ver $dist split linux-image-${pkg#linux-binary-unsigned-} $pkg $src" ;;
			esac
		done <"$f"
	done
}

# cached_kernels: the kernels unpacked before, in index_kernels' format.
cached_kernels() {
	local m series ver dist layout id

	for m in "$CACHE"/kernels/*/meta; do
		[[ -e ${m%/meta}/ok ]] || continue
		read -r series ver dist layout id _ <"$m" && echo "$series $ver $dist $layout $id - linux"
	done
}

# newest: of "series version ..." lines on stdin, the one with the newest
# version (dpkg --compare-versions: 7.3~rc7-1~exp1 < 7.3-1).
newest() {
	local best='' bver='' line ver

	while read -r line; do
		ver=${line#* }
		ver=${ver%% *}
		if [[ -z $best ]] || dpkg --compare-versions "$ver" gt "$bver"; then
			best=$line bver=$ver
		fi
	done
	[[ -n $best ]] && echo "$best"
}

# suite_family SUITE: "bookworm" of bookworm-updates/-security, in REPLY.
suite_family() {
	REPLY=${1%%-*}
}

# select_kernel NAME CANDIDATES: the line NAME (a series such as 6.12 or a
# suite such as sid) picks: the newest of the series, or the newest of the
# suite's own kernel (source package "linux", not a backport).
select_kernel() {
	local name=$1 series ver dist layout id pkg src

	while read -r series ver dist layout id pkg src; do
		suite_family "$dist"
		if [[ $name == "$series" ]] || [[ $name == "$REPLY" && $src == linux ]]; then
			echo "$series $ver $dist $layout $id $pkg $src"
		fi
	done <<<"$2" | newest
}

# available_names CANDIDATES: "5.10, 6.1, ..., bullseye, ..." in REPLY.
available_names() {
	local series suites

	series=$(awk '{ print $1 }' <<<"$1" | sort -uV | paste -sd' ')
	suites=$(while read -r _ _ d _; do suite_family "$d"; echo "$REPLY"; done <<<"$1" |
		 awk '!seen[$0]++' | paste -sd' ')
	REPLY="${series// /, }; suites ${suites// /, }"
}

# kernel_candidates: the kernels to choose from (the archive's indexes, or
# offline the cache), in REPLY; dies when there are none.
kernel_candidates() {
	if index_update; then
		REPLY=$(index_kernels)
	else
		REPLY=$(cached_kernels)
		KOFFLINE="offline: $DEBIAN_MIRROR is unreachable and no index is cached; choosing among the kernels already unpacked"
	fi
	[[ -n $REPLY ]] ||
		kdie "no Debian kernel index: $DEBIAN_MIRROR is unreachable and nothing is cached in $CACHE"
}

# kernel_dir ID VERSION: the kernel's cache directory.
kernel_dir() {
	REPLY=$CACHE/kernels/${1}_${2}
}

# list_kernels: `--kernel list`: every series and suite name, its version
# and suite, and whether it is unpacked in the cache.
list_kernels() {
	local all names n line series ver dist id cached

	kernel_candidates
	all=$REPLY
	available_names "$all"
	names=$(tr -d ',;' <<<"${REPLY/suites /}")
	[[ -n $KOFFLINE ]] && printf '# %s\n' "$KOFFLINE"
	index_age
	if ((REPLY >= 0)); then
		age_words "$REPLY"
		printf '# Debian archive indexes %s old (%s)\n' "$REPLY" "$KIDX"
	fi
	printf '%-20s %-20s %-22s %s\n' SPEC SUITE VERSION CACHED
	for n in $names; do
		line=$(select_kernel "$n" "$all")
		[[ -n $line ]] || continue
		read -r series ver dist _ id _ <<<"$line"
		kernel_dir "$id" "$ver"
		cached=no
		[[ -e $REPLY/ok ]] && cached=yes
		printf '%-20s %-20s %-22s %s\n' "debian:$n" "$dist" "$ver" "$cached"
	done
	exit 0
}

# apt_has PACKAGE VERSION: apt can download exactly that version.
apt_has() {
	[[ -z ${PINCHECK_DEBIAN_ARCHIVE-} ]] && command -v apt-cache >/dev/null &&
		apt-cache show -- "$1=$2" >/dev/null 2>&1
}

# download_deb PACKAGE VERSION SUITE DIR: the .deb into DIR, through apt
# when it has that version (apt checks it), else from the archive against
# the signed SHA256 of the suite's index.
download_deb() {
	local pkg=$1 ver=$2 dist=$3 dir=$4 url sum

	if apt_has "$pkg" "$ver"; then
		(cd -- "$dir" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver") \
			>"$dir/apt.log" 2>&1 </dev/null ||
			kdie "apt-get download $pkg=$ver failed: $(tail -n 1 "$dir/apt.log")"
		rm -f -- "$dir/apt.log"
		return
	fi
	read -r url sum < <(awk -v p="$pkg" -v v="$ver" '$2 == p && $3 == v { print $5, $6; exit }' \
		"$KIDX/$dist.kernels")
	[[ -n $url ]] || kdie "$pkg $ver is not in the $dist index any more (run again to refresh it)"
	fetch_url "$url" "$dir/$pkg.deb" 900 || kdie "cannot download $url"
	sha256sum -c --status <<<"$sum  $dir/$pkg.deb" ||
		kdie "$url does not match its signed SHA256 (nothing was kept)"
}

# unpack_kernel LAYOUT PACKAGE VERSION SUITE TMP: the packages unpacked in
# TMP/root, depmod run; "kver image moddir" (relative to TMP) in REPLY.
unpack_kernel() {
	local layout=$1 pkg=$2 ver=$3 dist=$4 tmp=$5 abi p deb mods kver
	local -a dirs
	local -a pkgs=("$pkg")

	if [[ $layout == split ]]; then
		abi=${pkg#linux-binary-unsigned-}
		pkgs+=("linux-modules-$abi" "linux-base-$abi")
	fi
	mkdir -p -- "$tmp/deb" || kdie "cannot create $tmp"
	for p in "${pkgs[@]}"; do
		download_deb "$p" "$ver" "$dist" "$tmp/deb"
	done
	for deb in "$tmp"/deb/*.deb; do
		dpkg-deb -x "$deb" "$tmp/root" || kdie "cannot unpack $deb"
	done
	rm -rf -- "$tmp/deb"
	mods=root/lib/modules
	[[ -d $tmp/$mods ]] || mods=root/usr/lib/modules
	dirs=("$tmp/$mods"/*)
	kver=${dirs[0]##*/}
	[[ $kver != '*' ]] || kdie "$pkg $ver holds no lib/modules directory"
	depmod -b "$tmp/${mods%/lib/modules}" "$kver" || kdie "depmod failed for $pkg $ver"
	if [[ -e $tmp/root/boot/vmlinuz-$kver ]]; then
		REPLY="$kver root/boot/vmlinuz-$kver $mods/$kver"
	elif [[ -e $tmp/$mods/$kver/vmlinuz.unsigned ]]; then
		REPLY="$kver $mods/$kver/vmlinuz.unsigned $mods/$kver"
	else
		kdie "$pkg $ver holds no kernel image (boot/vmlinuz-$kver or vmlinuz.unsigned)"
	fi
}

# cached_vmlinux DIR IMAGE: DIR/vmlinux extracted from DIR/IMAGE (once;
# again after a failure such as a full disk); false without one.
cached_vmlinux() {
	[[ -e $1/no-pvh ]] && return 1
	extract_vmlinux "$1/$2" "$1/vmlinux"
	case $? in
	0) return 0 ;;
	1) : >"$1/no-pvh" ;;
	*) note "could not extract the vmlinux of $1/$2 (disk full?): booting the compressed image" ;;
	esac
	return 1
}

# shellcheck disable=SC2034 # K_* are scripts/vm/vm.sh's
# fetch_debian NAME: K_* for `--kernel debian:NAME` (a series or a suite),
# from the cache or downloaded, verified and unpacked into it.
fetch_debian() {
	local line series ver dist layout id pkg dir tmp kver image mods

	kernel_candidates
	line=$(select_kernel "$1" "$REPLY")
	if [[ -z $line ]]; then
		available_names "$REPLY"
		kdie "no Debian kernel '$1': series $REPLY (see --kernel list)"
	fi
	read -r series ver dist layout id pkg _ <<<"$line"
	kernel_dir "$id" "$ver"
	dir=$REPLY
	if [[ ! -e $dir/ok && -n $KOFFLINE ]]; then
		kdie "$KOFFLINE, and Debian $series $ver is not cached"
	fi
	[[ -n $KOFFLINE ]] && note "$KOFFLINE"
	if [[ ! -e $dir/ok ]]; then
		need_space "$CACHE" 1024
		note "fetching Debian $series kernel $ver ($dist, $layout packaging) into $dir"
		tmp=$dir.tmp$$
		rm -rf -- "$tmp"
		KTMP+=("$tmp")
		unpack_kernel "$layout" "$pkg" "$ver" "$dist" "$tmp"
		read -r kver image mods <<<"$REPLY"
		echo "$series $ver $dist $layout $id $kver $image $mods" >"$tmp/meta"
		: >"$tmp/ok"
		# a concurrent run may have won the race: keep its copy
		if ! mv -T -- "$tmp" "$dir" 2>/dev/null; then
			[[ -e $dir/ok ]] || kdie "cannot write $dir"
			rm -rf -- "$tmp"
		fi
		KTMP=()
	fi
	read -r _ _ _ _ _ kver image mods _ <"$dir/meta"
	K_VER=$kver
	K_IMAGE=$dir/$image
	cached_vmlinux "$dir" "$image" && K_IMAGE=$dir/vmlinux
	K_MODDIR=$dir/$mods
	K_NAME="Debian $ver ($dist, $K_VER)"
}
