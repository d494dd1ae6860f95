# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/vmtest-lib.sh: what the unit/*_vm_test.sh scripts share (sourced).
# vt_init NAME makes $tmp (removed on exit), $OUT/$ERR/$RC for runner, and
# the counters; pass/skip/fail/check print "ok N - ..." lines; a failure
# shows the last run's exit status and output tails, its DETAIL argument
# and $tmp/why (which check empties).

vt_init() {
	n=0 npass=0 nfail=0 nskip=0
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/pincheck-$1.XXXXXX") || exit 2
	trap 'rm -rf -- "$tmp"' EXIT
	OUT=$tmp/out ERR=$tmp/err RC=0
}

pass() { n=$((n + 1)) npass=$((npass + 1)); printf 'ok %d - %s\n' "$n" "$1"; }
skip() { n=$((n + 1)) nskip=$((nskip + 1)); printf 'ok %d - %s # SKIP %s\n' "$n" "$1" "$2"; }

# fail WHAT [DETAIL]
fail() {
	n=$((n + 1)) nfail=$((nfail + 1))
	printf 'not ok %d - %s\n' "$n" "$1"
	[[ -n ${2-} ]] && printf '%s\n' "$2" | sed 's/^/#   /'
	if [[ -s $OUT || -s $ERR ]]; then
		printf '#   exit %s; stdout tail:\n' "$RC"
		tail -n 8 "$OUT" 2>/dev/null | cut -c1-300 | sed 's/^/#     /'
		printf '#   stderr tail:\n'
		tail -n 4 "$ERR" 2>/dev/null | sed 's/^/#     /'
	fi
	[[ -s $tmp/why ]] && sed 's/^/#   /' "$tmp/why"
	return 0
}

# check WHAT [DETAIL]: pass if the last command succeeded.
check() {
	if (($? == 0)); then pass "$1"; else fail "$1" "${2-}"; fi
	: >"$tmp/why"
}

# runner ARGS...: the runner, no stdin; output in $OUT/$ERR, status $RC.
runner() {
	"$RUN" "$@" >"$OUT" 2>"$ERR" </dev/null
	RC=$?
}

summary() { printf '%d passed, %d failed, %d skipped\n' "$npass" "$nfail" "$nskip"; }
