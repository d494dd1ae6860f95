#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/dev/demo-bisect.sh [KTREE]: prove `run_tests.sh --bisect` on a real
# kernel.  KTREE (default /var/tmp/pincheck-src/linux-source-6.12) is made a
# git tree of Debian's linux-source-6.12 when it is not one (the package is
# installed if missing).  On a branch from its first commit (good) the demo
# plants a regression (mm/gup.c stops unsharing possibly-shared anonymous
# pages before a R/O pin, reverting in effect a7f226604170's check in the
# slow GUP path) and adds an unrelated commit after it, then:
#   1. checks the exit codes: good commit 0, bad commit 1, a case that skips
#      125;
#   2. runs `git bisect run run_tests.sh --bisect -t CASE` between them and
#      checks that it names the planted commit.
# Prints one line per check and "N passed, N failed"; exit 0 if all passed.
# Takes a full kernel build the first time (the build is cached).

set -u

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd) || exit 2
KTREE=${1:-/var/tmp/pincheck-src/linux-source-6.12}
CASE='ro_pin/shared-write/anon/gup_test'
SKIP_CASE='pin_fork/pin-only/swapped/io_uring'
RUN=$ROOT/run_tests.sh
npass=0 nfail=0

say() { printf 'demo-bisect: %s\n' "$*" >&2; }
check() {
	if [[ $2 == "$3" ]]; then
		npass=$((npass + 1)); printf 'ok - %s (%s)\n' "$1" "$2"
	else
		nfail=$((nfail + 1)); printf 'not ok - %s (got %s, want %s)\n' "$1" "$2" "$3"
	fi
}
g() { git -C "$KTREE" -c user.name=pincheck -c user.email=pincheck@localhost "$@"; }

# make_tree: Debian's linux-source-6.12 unpacked and committed as is.
make_tree() {
	local tarball=/usr/src/linux-source-6.12.tar.xz

	[[ -d $KTREE/.git ]] && return
	if [[ ! -f $tarball ]]; then
		say "installing linux-source-6.12 (apt-get)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-source-6.12 \
			>/dev/null </dev/null || { say "cannot install linux-source-6.12"; exit 2; }
	fi
	mkdir -p -- "${KTREE%/*}" || exit 2
	say "unpacking $tarball"
	tar -C "${KTREE%/*}" -xf "$tarball" || exit 2
	# Debian's .gitignore ignores the whole top level: drop that part
	sed -i '/^# Debian packaging/,$d' "$KTREE/.gitignore"
	g init -q && g add -A && g commit -qm "linux-source-6.12 (Debian)" || exit 2
}

# plant: branch pincheck-demo = base, + the regression, + an unrelated commit.
plant() {
	base=$(g rev-list --max-parents=0 HEAD | tail -n 1)
	g checkout -q -B pincheck-demo "$base" || exit 2
	# drop the R/O-pin unshare check in follow_page_pte()
	perl -0pi -e 's/\tif \(!pte_write\(pte\) && gup_must_unshare\(vma, flags, page\)\) \{\n\t\tpage = ERR_PTR\(-EMLINK\);\n\t\tgoto out;\n\t\}\n//' \
		"$KTREE/mm/gup.c"
	g diff --quiet && { say "could not plant the regression in mm/gup.c"; exit 2; }
	g commit -qam "demo: R/O pins no longer unshare possibly-shared anon pages (planted regression)"
	bad=$(g rev-parse HEAD)
	printf '\npincheck bisect demo\n' >>"$KTREE/README"
	g commit -qam "demo: an unrelated change"
	tip=$(g rev-parse HEAD)
}

# step COMMIT GLOB [OPTS]: the --bisect exit status at COMMIT.
step() {
	local rc

	g checkout -q "$1" || exit 2
	(cd "$KTREE" && "$RUN" --bisect -t "$2" "${@:3}" </dev/null >/dev/null 2>&1)
	rc=$?
	printf '%s' "$rc"
}

make_tree
plant
check "the good commit: exit 0" "$(step "$base" "$CASE")" 0
check "the planted regression: exit 1" "$(step "$bad" "$CASE")" 1
check "a selected case that skips: exit 125" "$(step "$base" "$SKIP_CASE" --no-setup)" 125

g checkout -q "$tip"
g bisect reset -q >/dev/null 2>&1
g bisect start "$tip" "$base" >/dev/null
log=$ROOT/build/demo-bisect.log
mkdir -p -- "$ROOT/build"
(cd "$KTREE" && git bisect run "$RUN" --bisect -t "$CASE") >"$log" 2>&1
found=$(grep -m1 -oE '^[0-9a-f]{40} is the first bad commit' "$log" | cut -d' ' -f1)
g bisect reset -q >/dev/null 2>&1
check "git bisect run names the planted commit" "${found:-none}" "$bad"
say "bisect log: $log"
printf '%d passed, %d failed\n' "$npass" "$nfail"
((nfail == 0))
