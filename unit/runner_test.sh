#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/runner_test.sh: shell tests of run_tests.sh.  Most tests point the
# runner at small fake TAP-emitting binaries (PINCHECK_TESTS_DIR) and a
# fake kernel log (PINCHECK_DMESG_CMD); the state tests let it really set
# up and restore THP, hugetlb, swap and debugfs (root only) and compare snapshots;
# the last ones run the real binaries from build/tests when they exist.
# Prints "ok N - ..." / "not ok N - ..." and ends with
# "N passed, N failed, N skipped".  Exit 0 if nothing failed.

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
RUN=./run_tests.sh

n=0
npass=0
nfail=0
nskip=0
bg=()

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pincheck-runner-test.XXXXXX") || exit 2
fake=$tmp/bin
state=$tmp/state
mkdir -p "$fake" "$state"
export PINCHECK_STATE_DIR=$state
export FAKE_KMSG=$tmp/kmsg
export FAKE_PIDFILE=$tmp/hang.pid
export PINCHECK_DMESG_CMD="cat $FAKE_KMSG"

# --- reporting -------------------------------------------------------------

pass() { n=$((n + 1)) npass=$((npass + 1)); printf 'ok %d - %s\n' "$n" "$1"; }
skip() { n=$((n + 1)) nskip=$((nskip + 1)); printf 'ok %d - %s # SKIP %s\n' "$n" "$1" "$2"; }
fail() {
	n=$((n + 1)) nfail=$((nfail + 1))
	printf 'not ok %d - %s\n' "$n" "$1"
	shift
	(($#)) && printf '#   %s\n' "$@"
	return 0
}

# verdict DESC: pass if the previous command succeeded, else show the run.
verdict() {
	if (($? == 0)); then
		pass "$1"
	else
		fail "$1" "exit status $RC" "stdout:" "$(tail -n 8 "$OUT")" \
			"stderr:" "$(tail -n 4 "$ERR")"
	fi
}

# --- helpers ---------------------------------------------------------------

OUT=$tmp/out
ERR=$tmp/err
RC=0

# runner ARGS...: run the runner, no stdin; output in $OUT/$ERR, status $RC.
runner() {
	"$RUN" "$@" >"$OUT" 2>"$ERR" </dev/null
	RC=$?
}

# fake_runner ARGS...: the runner on the fake binaries, no system setup.
fake_runner() {
	PINCHECK_TESTS_DIR=$fake runner --no-setup "$@"
}

lines() { local -a l; mapfile -t l <"$1"; REPLY=${#l[@]}; }
last_line() {
	local -a l
	mapfile -t l <"$1"
	REPLY=
	((${#l[@]})) && REPLY=${l[${#l[@]} - 1]}
	return 0
}
has_line() { grep -qxF -- "$2" "$1"; }
has_match() { grep -qE -- "$2" "$1"; }
status_is() { [[ $RC == "$1" ]]; }
one_line_err() { lines "$ERR"; [[ $REPLY == 1 ]] && has_line "$ERR" "$1"; }
summary_is() { last_line "$OUT"; [[ $REPLY == "$1" ]]; }

# A fake test binary: gen NAME ID=BEHAVIOUR... (see the case list below).
gen() {
	local name=$1
	shift
	{
		printf '#!/usr/bin/env bash\n# pincheck-test-binary:1 (run_tests.sh runs marked files only)\ncases=('
		printf ' %q' "$@"
		printf ' )\n'
		cat <<'EOF'
list=0 filters=()
while getopts lt:T:h o; do
	case $o in l) list=1 ;; t) filters+=("$OPTARG") ;; T) ;; *) exit 2 ;; esac
done
sel=()
for c in "${cases[@]}"; do
	id=${c%%=*}
	if ((${#filters[@]})); then
		m=0
		for g in "${filters[@]}"; do [[ $id == $g ]] && m=1; done
		((m)) || continue
	fi
	sel+=("$c")
done
if ((list)); then for c in "${sel[@]}"; do echo "${c%%=*}"; done; exit 0; fi
((${#sel[@]})) || exit 2
echo "TAP version 13"; echo "1..${#sel[@]}"
n=0 fails=0
for c in "${sel[@]}"; do
	id=${c%%=*} b=${c#*=} n=$((n + 1))
	case $b in
	pass) echo "ok $n $id" ;;
	fail) printf 'not ok %d %s # CPU sees "gen 2"\\ at\tpage\0333\n' "$n" "$id"; fails=1 ;;
	skip) echo "ok $n $id # SKIP no swap" ;;
	noevent) echo "ok $n $id # SKIP no event: 0 of 5 rounds overlapped" ;;
	xfail) echo "ok $n $id # XFAIL known bug <6.5> & co" ;;
	timeout) echo "not ok $n $id # TIMEOUT 20s"; fails=1 ;;
	hang) echo $$ >"$FAKE_PIDFILE"; exec sleep 1000 ;;
	crash) exit 3 ;;
	warn) echo "[   99.000001] WARNING: CPU: 0 PID: 1 at mm/gup.c:1 fake" >>"$FAKE_KMSG"
	      echo "ok $n $id" ;;
	oom) printf '%s\n' "[   98.000001] t invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=-1000" \
		"[   98.000002] Call Trace:" "[   98.000003] Out of memory and no killable processes..." >>"$FAKE_KMSG"
	      echo "ok $n $id" ;;
	diag) echo "# a diagnostic"; echo "stray stderr" >&2; echo "ok $n $id" ;;
	fsize) if [[ $(ulimit -f) == unlimited ]]; then echo "ok $n $id"
	       else echo "not ok $n $id # file size limit $(ulimit -f)"; fails=1; fi ;;
	esac
	printf '  ---\n  duration_ms: %d\n  ...\n' "$n"
done
echo "# Totals: pass:0 fail:$fails"
exit $fails
EOF
	} >"$fake/$name"
	chmod +x "$fake/$name"
}

# use_fakes NAME...: only these fake binaries are executable.
use_fakes() {
	local f
	chmod -x "$fake"/*
	for f in "$@"; do
		chmod +x "$fake/$f"
	done
}

# Everything the runner changes or restores, as text.
snapshot() {
	local -a files=(/sys/kernel/mm/transparent_hugepage/enabled
		/sys/kernel/mm/transparent_hugepage/hugepages-*kB/enabled
		/sys/kernel/mm/hugepages/hugepages-*kB/nr_hugepages
		/sys/kernel/mm/ksm/run /proc/swaps)
	local f
	for f in "${files[@]}"; do
		[[ -r $f ]] || continue
		if [[ $f == /proc/swaps ]]; then
			awk '{ print FILENAME ": " $1 }' "$f"
		else
			printf '%s: %s\n' "$f" "$(<"$f")"
		fi
	done
	printf '%s\n' /sys/block/zram*
	awk '$2 == "/sys/kernel/debug" { print "mounted: " $2 " " $3 }' /proc/self/mounts
}

state_clean() { [[ ! -s $state/state ]]; }

# start_bg GLOB: the runner (setup on) on the fakes matching GLOB, in the
# background with SIGINT not ignored; pid in BGPID.  Waits until the
# first result is out and the hanging fake has started.
start_bg() {
	local i
	rm -f "$FAKE_PIDFILE"
	PINCHECK_TESTS_DIR=$fake env --default-signal=INT \
		"$RUN" -t "$1" >"$OUT" 2>"$ERR" </dev/null &
	BGPID=$!
	bg+=("$BGPID")
	for ((i = 0; i < 100; i++)); do
		[[ -s $FAKE_PIDFILE ]] && grep -q '^ok 1 ' "$OUT" && return 0
		sleep 0.1
	done
	return 1
}

# stop_hang: end the fake binary left hanging by a killed runner.
stop_hang() {
	local pid
	[[ -s $FAKE_PIDFILE ]] || return 0
	read -r pid <"$FAKE_PIDFILE"
	kill "$pid" 2>/dev/null
	rm -f "$FAKE_PIDFILE"
}

cleanup() {
	local p
	for p in "${bg[@]}"; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	stop_hang
	if [[ -s $state/state ]]; then	# a test failed half-way: repair
		use_fakes alpha
		PINCHECK_TESTS_DIR=$fake "$RUN" -t 'alpha/one/*' \
			>/dev/null 2>&1 </dev/null
	fi
	rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gen alpha alpha/one/anon/x=pass alpha/two/anon/x=skip alpha/three/anon/x=diag
gen beta beta/one/anon/x=pass beta/two/thp/x=xfail
gen noev noev/one/anon/x=noevent noev/two/anon/x=skip
gen failer failer/a/anon/x=pass failer/b/anon/x=fail failer/c/anon/x=timeout
gen hanger hanger/a/anon/x=pass hanger/b/anon/x=hang hanger/c/anon/x=pass
gen crasher crasher/a/anon/x=pass crasher/b/anon/x=crash crasher/c/anon/x=pass
gen warner warner/a/anon/x=warn
gen oomer oomer/a/anon/x=oom oomer/b/anon/x=warn
gen sizer sizer/a/anon/x=fsize
printf 'not a test binary\n' >"$fake/README"
printf '[    1.000000] boot: WARNING: an old warning\n' >"$FAKE_KMSG"

# --- command line ----------------------------------------------------------

runner -h
status_is 0 && has_match "$OUT" "^Usage: ./run_tests.sh"
verdict "-h prints the usage and exits 0"

runner --bogus
status_is 2 && [[ ! -s $OUT ]] &&
	one_line_err "run_tests.sh: unknown option '--bogus' (see --help)"
verdict "an unknown option: exit 2 and exactly one line on stderr"

runner --json
status_is 2 && lines "$ERR" && [[ $REPLY == 1 ]]
verdict "an option without its value: exit 2 and one line"

runner --timeout=soon
status_is 2 && lines "$ERR" && [[ $REPLY == 1 ]]
verdict "--timeout must be a number of seconds"

# --- listing ---------------------------------------------------------------

use_fakes alpha beta failer
fake_runner -l
status_is 0 && lines "$OUT" && [[ $REPLY == 8 && -z $(sort "$OUT" | uniq -d) ]]
verdict "-l lists every case id once"

fake_runner -l -t 'beta/*'
status_is 0 && [[ $(<"$OUT") == $'beta/one/anon/x\nbeta/two/thp/x' ]]
verdict "-l -t GLOB lists only the matching cases"

fake_runner -l -t '*/two/*' -t 'failer/a/*'
status_is 0 && lines "$OUT" && [[ $REPLY == 3 ]]
verdict "-t is repeatable"

fake_runner -l -t 'nomatch*'
status_is 2 && [[ ! -s $OUT ]] &&
	one_line_err "run_tests.sh: no test matches 'nomatch*'"
verdict "-l -t matching nothing: exit 2 and one line"

lists=$tmp/lists
PINCHECK_LIST_SAVE=$lists fake_runner -l -t 'beta/*'
status_is 0 && [[ -e $lists/complete && $(<"$lists/beta") == $'beta/one/anon/x\nbeta/two/thp/x' ]]
verdict "PINCHECK_LIST_SAVE keeps each binary's list and marks them complete"
printf 'beta/one/anon/x\n' >"$lists/beta"
PINCHECK_LIST_CACHE=$lists fake_runner -l -t 'beta/*'
status_is 0 && [[ $(<"$OUT") == beta/one/anon/x ]]
verdict "PINCHECK_LIST_CACHE: the cached lists are used, the binaries not asked"
printf 'beta/one/anon/x\n\nbeta/two/thp/x\n\n' >"$lists/beta"
PINCHECK_LIST_CACHE=$lists fake_runner -l -t 'beta/*'
status_is 0 && [[ $(<"$OUT") == $'beta/one/anon/x\nbeta/two/thp/x' ]]
verdict "an empty line in a binary's list is no case"
rm -f -- "$lists/complete"
PINCHECK_LIST_CACHE=$lists fake_runner -l -t 'beta/*'
status_is 0 && lines "$OUT" && [[ $REPLY == 2 ]]
verdict "PINCHECK_LIST_CACHE without its complete mark: the binaries list again"
# the binaries a complete cache has lists of are not read for the marker
# (its key holds their sizes and mtimes); the others still are
touch "$lists/complete"
cp -a -- "$fake" "$tmp/unmarked"
sed -i 's/pincheck-test-binary:1/pincheck-test-binary:0/' "$tmp/unmarked/beta"
PINCHECK_TESTS_DIR=$tmp/unmarked PINCHECK_LIST_CACHE=$lists runner --no-setup -l -t 'beta/*'
status_is 0 && lines "$OUT" && [[ $REPLY == 2 ]] && ! grep -q 'not run' "$ERR"
verdict "PINCHECK_LIST_CACHE: a binary it lists is taken as marked, unread"
PINCHECK_TESTS_DIR=$tmp/unmarked runner --no-setup -l -t 'beta/*'
grep -q "not run: .*/beta is not a pincheck test binary" "$ERR"
verdict "without the cache the same unmarked binary is not run"
rm -rf -- "$tmp/unmarked"

# --- running the fakes -----------------------------------------------------

if ((EUID != 0)); then
	skip "runs of fake binaries" "not root"
else
	fake_runner -t 'nomatch*'
	status_is 2 && one_line_err "run_tests.sh: no test matches 'nomatch*'"
	verdict "a run with -t matching nothing: exit 2 and one line"

	use_fakes alpha beta
	fake_runner
	status_is 0
	verdict "all passing: exit 0"
	summary_is "6 passed, 0 failed, 1 skipped"
	verdict "all passing: the summary is the last line"
	awk '/^(not )?ok / { n++; if ($0 !~ "^(not )?ok " n " ") bad = 1 }
	     NR == 1 && $0 != "TAP version 13" { bad = 1 }
	     NR == 2 { plan = $0 }
	     END { exit bad || plan != "1.." n }' "$OUT"
	verdict "TAP: version, plan = number of results, numbered 1..N"
	has_line "$OUT" "# a diagnostic" && has_line "$OUT" "# stray stderr"
	verdict "diagnostics and stderr pass through as comments"

	! has_match "$OUT" "^(# )?1\.\.3" && [[ $(grep -c '^# Totals:' "$OUT") == 1 ]] &&
		has_line "$OUT" "# Totals: pass:5 fail:0 xfail:1 xpass:0 skip:1 error:0"
	verdict "the binaries' own plans and totals are dropped, the run's # Totals: line is kept"
	has_line "$OUT" "ok 4 alpha/kernel-log/all/kmsg" &&
		has_line "$OUT" "ok 7 beta/kernel-log/all/kmsg"
	verdict "a kernel-log case per binary"

	! has_match "$OUT" "no event \(the event"
	verdict "no 'no event' count when no case skipped for it"

	# a shard (vm.sh --shards): beta is another guest's claim already;
	# sizer fails if its list's file size limit reached its run
	use_fakes alpha beta sizer
	mkdir -p "$tmp/claims/beta"
	PINCHECK_SHARD=0/2 PINCHECK_SHARD_CLAIMS=$tmp/claims \
		PINCHECK_LIST_SAVE=$tmp/shard-lists fake_runner
	status_is 0 && [[ -e $tmp/claims/alpha && -s $tmp/shard-lists/alpha &&
		! -e $tmp/shard-lists/beta ]] &&
		awk '/^(not )?ok / { n++; if ($0 !~ "^(not )?ok " n " ") bad = 1 }
		     NR == 1 && $0 != "TAP version 13" { bad = 1 }
		     /^1\.\.[0-9]+$/ { plans++; plan = $0; at = n }
		     END { exit bad || plans != 1 || at != n || plan != "1.." n || n != 6 }' "$OUT"
	verdict "a shard lists only the binaries it claims, each as it starts it, and plans its 6 results last"

	use_fakes noev
	fake_runner
	status_is 4 && has_line "$OUT" "# 1 of the skips: no event (the event a case is about did not happen)" &&
		summary_is "1 passed, 0 failed, 2 skipped"
	verdict "skips whose reason starts with 'no event:' are counted before the summary; all skipped: exit 4"

	use_fakes alpha beta
	fake_runner -v
	has_match "$OUT" "^# run: .*/alpha$" &&
		has_line "$OUT" "# alpha: TAP version 13" &&
		summary_is "6 passed, 0 failed, 1 skipped"
	verdict "-v shows the command lines and the binaries' own TAP lines"

	use_fakes failer
	fake_runner
	status_is 1
	verdict "a failing case: exit 1"
	summary_is "2 passed, 2 failed, 0 skipped"
	verdict "a failing case: the summary counts fail and timeout as failed"
	has_line "$OUT" "not ok 3 failer/c/anon/x # TIMEOUT 20s"
	verdict "a binary's own TIMEOUT line is kept"
	printf '# test table\nfailer/b/*\tabc123def456\tv9.9\ta fix\n' >"$tmp/fixes"
	PINCHECK_FIXES=$tmp/fixes fake_runner --json "$tmp/fix.json"
	grep -B1 '^not ok 2 failer/b/' "$OUT" | head -n 1 |
		grep -qxF '# failer/b/anon/x: known bug, fixed by abc123def456 (v9.9)' &&
		! grep -q 'failer/c/anon/x: known bug' "$OUT" &&
		jq -e '[.results[] | select(.id == "failer/b/anon/x")][0] |
			.result == "fail" and .known_fix.kind == "fix" and
			.known_fix.commits == ["abc123def456"] and .known_fix.release == "v9.9"' \
			"$tmp/fix.json" >/dev/null
	verdict "known fixes: a matching failure names its fix, the verdict stays fail"
	PINCHECK_FIXES=$tmp/fixes fake_runner --kcidb "$tmp/kcidb.json" --kcidb-origin lab1
	jq -e '.version.major == 4 and (.checkouts | length) == 1 and
		(.builds[0].checkout_id == .checkouts[0].id) and
		([.tests[].build_id] | unique) == [.builds[0].id] and
		([.tests[].id | startswith("lab1:")] | all) and
		([.tests[] | select(.path == "pincheck.failer.b.anon.x")][0].status == "FAIL") and
		([.tests[] | select(.path == "pincheck.failer.a.anon.x")][0].status == "PASS") and
		([.tests[] | select(.path == "pincheck.failer.c.anon.x")][0] |
			.status == "FAIL" and .misc.result == "timeout")' \
		"$tmp/kcidb.json" >/dev/null
	verdict "--kcidb: a KCIDB v4 report, dotted paths, PASS/FAIL, origin in every id"
	runner --bisect
	status_is 128 && one_line_err "run_tests.sh: --bisect needs -t GLOB: the cases that tell good from bad (see --help)"
	verdict "--bisect without -t: exit 128 (stops git bisect run), one line"
	(cd "$tmp" && "$OLDPWD/$RUN" --bisect -t 'x/*' >"$OUT" 2>"$ERR" </dev/null)
	RC=$?
	status_is 128 && grep -q 'is not a kernel source tree' "$ERR"
	verdict "--bisect outside a kernel tree: exit 128, says so"
	runner -l --fixes
	status_is 0 && has_match "$OUT" '^pin_fork/\* +70e806e4e645 +v5\.9 '
	verdict "-l --fixes lists the known-fixes table"

	use_fakes hanger
	SECONDS=0
	fake_runner --timeout 2
	status_is 1 && ((SECONDS < 15)) &&
		has_line "$OUT" "not ok 2 hanger/b/anon/x # TIMEOUT binary killed after 2s" &&
		has_line "$OUT" "not ok 3 hanger/c/anon/x # TIMEOUT binary killed after 2s"
	verdict "--timeout: a hung binary is killed, its cases are TIMEOUT"
	summary_is "2 passed, 2 failed, 0 skipped"
	verdict "--timeout: the summary"

	use_fakes crasher
	fake_runner
	status_is 1 &&
		has_line "$OUT" "not ok 2 crasher/b/anon/x # binary exited with status 3 before this case"
	verdict "a crashed binary: its missing cases name the exit status"

	use_fakes alpha warner
	fake_runner
	has_line "$OUT" "not ok 6 warner/kernel-log/all/kmsg # [   99.000001] WARNING: CPU: 0 PID: 1 at mm/gup.c:1 fake"
	verdict "kernel log: a WARNING during a binary fails its kernel-log case"
	status_is 1 && has_line "$OUT" "ok 4 alpha/kernel-log/all/kmsg"
	verdict "kernel log: older lines and other binaries are not blamed"

	use_fakes oomer
	fake_runner
	has_line "$OUT" "# kernel log: 1 OOM report(s), their stack dumps not counted as kernel bugs" &&
		has_line "$OUT" "not ok 3 oomer/kernel-log/all/kmsg # [   99.000001] WARNING: CPU: 0 PID: 1 at mm/gup.c:1 fake"
	verdict "kernel log: an OOM report's stack dump is no bug, a WARNING after it is"

	use_fakes alpha
	PINCHECK_DMESG_CMD=false fake_runner
	status_is 0 &&
		has_line "$OUT" "ok 4 alpha/kernel-log/all/kmsg # SKIP dmesg not readable"
	verdict "kernel log unreadable: the kernel-log case is SKIP"

	# --- JSON and JUnit ----------------------------------------------------

	use_fakes alpha beta failer crasher
	fake_runner --json "$tmp/r.json" --junit "$tmp/r.xml"
	planned=$(sed -n 's/^1\.\.//p' "$OUT")
	if ! command -v jq >/dev/null; then
		skip "--json" "jq not installed"
	else
		jq -e --argjson n "$planned" '.results | length == $n' "$tmp/r.json" >/dev/null
		verdict "--json: valid JSON, one record per planned case"
		jq -e '.results | (map(.id) | length) == (map(.id) | unique | length)
		       and all(.[]; .result | IN("pass", "fail", "skip", "xfail", "timeout", "error"))
		       and all(.[]; (.duration_ms | type) == "number")' \
			"$tmp/r.json" >/dev/null
		verdict "--json: unique ids, results in the allowed set"
		[[ $(jq -r '.results | map(.result) | unique | join(",")' "$tmp/r.json") == \
		   error,fail,pass,skip,timeout,xfail ]]
		verdict "--json: every kind of result"
		[[ $(jq -r '.run.kernel_release' "$tmp/r.json") == "$(uname -r)" ]]
		verdict "--json: run.kernel_release is uname -r"
		want=$'CPU sees "gen 2"\\ at page\e3'
		[[ $(jq -r '.results[] | select(.id == "failer/b/anon/x") | .reason' \
			"$tmp/r.json") == "$want" ]]
		verdict "--json: reasons keep quotes, backslashes, control characters"
	fi
	if command -v python3 >/dev/null; then
		[[ $(python3 -c 'import sys, xml.dom.minidom as m
d = m.parse(sys.argv[1])
print(*(len(d.getElementsByTagName(t))
        for t in ("testsuite", "testcase", "failure", "error", "skipped")))' \
			"$tmp/r.xml") == "4 15 2 2 2" ]]
		verdict "--junit: well-formed, a testsuite per binary, a testcase per case"
	else
		head -n 1 "$tmp/r.xml" | grep -q '^<?xml' &&
			[[ $(grep -c '<testsuite ' "$tmp/r.xml") == 4 ]] &&
			[[ $(grep -c '<testcase ' "$tmp/r.xml") == 15 ]]
		verdict "--junit: XML sanity (no python3 to parse it)"
	fi
fi

# --- root check ------------------------------------------------------------

if ((EUID == 0)) && command -v setpriv >/dev/null; then
	nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	chmod 755 "$tmp"
	PINCHECK_TESTS_DIR=$fake "${nobody[@]}" "$RUN" --no-setup \
		>"$OUT" 2>"$ERR" </dev/null
	RC=$?
	status_is 2 && one_line_err "run_tests.sh: must run as root (pinning tests read /proc/self/pagemap and change sysfs knobs)"
	verdict "not root: a run refuses with exit 2 and one line"
	PINCHECK_TESTS_DIR=$fake "${nobody[@]}" "$RUN" -l \
		>"$OUT" 2>"$ERR" </dev/null
	RC=$?
	status_is 0 && [[ -s $OUT ]]
	verdict "not root: -l works"
	chmod 700 "$tmp"
else
	skip "the root check" "not root or no setpriv"
fi

# --- system state ----------------------------------------------------------

# ksm_as_a_test: start ksmd as a test binary does (lib/harness/knob.c): the old
# value into the run's knob journal first, then the change.
ksm_as_a_test() {
	local k=/sys/kernel/mm/ksm/run

	[[ -w $k ]] || return 0
	printf 'write\t%s\t%s\n' "$k" "$(<"$k")" >>"$state/knobs"
	echo 1 >"$k"
}

if ((EUID != 0)); then
	skip "system state restore" "not root"
else
	snapshot >"$tmp/snap0"

	use_fakes alpha
	PINCHECK_TESTS_DIR=$fake runner
	snapshot >"$tmp/snap1"
	status_is 0 && cmp -s "$tmp/snap0" "$tmp/snap1" && state_clean
	verdict "setup: a normal run restores THP, hugetlb, swap and KSM"

	use_fakes hanger
	if start_bg 'hanger/*'; then
		grep -q "^knob	/sys/kernel/mm/" "$state/state"
		verdict "setup: the state file records the knobs during a run"
		grep -q "^journal	$state/knobs$" "$state/state"
		verdict "setup: the state file names the tests' knob journal"
		ksm_as_a_test
		PINCHECK_TESTS_DIR=$fake "$RUN" >"$tmp/out2" 2>"$tmp/err2" </dev/null
		RC=$?
		status_is 2 && grep -q "another pincheck run (pid $BGPID) owns the machine state" "$tmp/err2"
		verdict "a second run refuses while another one owns the state"
		kill -INT "$BGPID"
		wait "$BGPID"
		RC=$?
		snapshot >"$tmp/snap1"
		status_is 130 && cmp -s "$tmp/snap0" "$tmp/snap1" && state_clean
		verdict "SIGINT: exit 130, state restored (KSM too, from the knob journal)"
		has_line "$OUT" "Bail out! interrupted by SIGINT" &&
			summary_is "1 passed, 0 failed, 0 skipped"
		verdict "SIGINT: Bail out! and the summary is still the last line"
	else
		fail "SIGINT: the runner did not start"
	fi

	if start_bg 'hanger/*'; then
		kill -TERM "$BGPID"
		wait "$BGPID"
		RC=$?
		snapshot >"$tmp/snap1"
		status_is 143 && cmp -s "$tmp/snap0" "$tmp/snap1" && state_clean
		verdict "SIGTERM: exit 143, state restored"
	else
		fail "SIGTERM: the runner did not start"
	fi

	if start_bg 'hanger/*'; then
		ksm_as_a_test
		kill -KILL "$BGPID"
		wait "$BGPID" 2>/dev/null
		stop_hang
		! state_clean
		verdict "SIGKILL: the state file is left behind"
		use_fakes alpha
		PINCHECK_TESTS_DIR=$fake runner -t 'alpha/one/*'
		snapshot >"$tmp/snap1"
		status_is 0 && cmp -s "$tmp/snap0" "$tmp/snap1" && state_clean &&
			has_line "$ERR" "run_tests.sh: restoring system state left by an interrupted run"
		verdict "SIGKILL: the next run restores the state first"
	else
		fail "SIGKILL: the runner did not start"
	fi
	if ! cmp -s "$tmp/snap0" "$tmp/snap1"; then
		printf '# state differs:\n'
		diff "$tmp/snap0" "$tmp/snap1" | sed 's/^/#   /'
	fi
fi

# --- the harness's own checks ----------------------------------------------

if [[ -x build/unit/verify ]]; then
	PINCHECK_UNIT_DUPLICATE_ID=1 build/unit/verify -l >"$OUT" 2>"$ERR" </dev/null
	RC=$?
	status_is 2 && grep -q 'duplicate case id unit_verify/pattern/roundtrip' "$ERR"
	verdict "harness: a repeated case id stops the binary (exit 2)"
else
	skip "harness: a repeated case id stops the binary" "build/unit/verify not built"
fi

# affinity_of ENV...: run unit_verify's affinity case with ENV; the CPUs
# it may use in GOT, and whether the header said it keeps to one CPU in
# KEPT (1) or not (0).
affinity_of() {
	env "$@" build/unit/verify -t 'unit_verify/harness/affinity/-/-' >"$OUT" 2>"$ERR" </dev/null
	RC=$?
	KEPT=0
	grep -q '^# unit_verify: its cases keep to CPU [0-9]* (PINCHECK_ONE_CPU)$' "$OUT" && KEPT=1
	GOT=$(sed -n 's/^# affinity: \([0-9]*\) CPU(s)$/\1/p' "$OUT")
}

cpus=$(nproc 2>/dev/null || echo 1)
if [[ ! -x build/unit/verify ]]; then
	skip "harness: PINCHECK_ONE_CPU" "build/unit/verify not built"
elif ((cpus < 2)); then
	skip "harness: PINCHECK_ONE_CPU" "one CPU here: nothing to keep to"
else
	affinity_of PINCHECK_ONE_CPU=1
	[[ $GOT == 1 && $KEPT == 1 ]]
	verdict "harness: PINCHECK_ONE_CPU=1 keeps a binary's cases to one CPU and says so"
	affinity_of PINCHECK_ONE_CPU=1 PINCHECK_UNIT_RACES=1
	[[ $GOT == "$cpus" && $KEPT == 0 ]]
	verdict "harness: a binary whose cases race keeps every CPU under PINCHECK_ONE_CPU=1"
	affinity_of PINCHECK_ONE_CPU=0
	[[ $GOT == "$cpus" && $KEPT == 0 ]]
	verdict "harness: without PINCHECK_ONE_CPU the cases may use every CPU"
fi

# held_knob_run ENV...: unit_verify with a knob (a file, 7) it holds at 0
# and a knob journal, both in $tmp/held.
held_knob_run() {
	rm -rf "$tmp/held" && mkdir "$tmp/held" && echo 7 >"$tmp/held/knob"
	env PINCHECK_UNIT_HELD_KNOB="$tmp/held/knob" PINCHECK_KNOB_JOURNAL="$tmp/held/journal" \
		"$@" >"$OUT" 2>"$ERR" </dev/null
	RC=$?
}

if [[ ! -x build/unit/verify ]]; then
	skip "harness: a knob held for the binary" "build/unit/verify not built"
else
	held_knob_run build/unit/verify -t 'unit_verify/harness/held-knob/*'
	status_is 0 && [[ $(<"$tmp/held/knob") == 7 && ! -s $tmp/held/journal ]] &&
		has_line "$OUT" "# unit_verify: a knob held for its cases ($tmp/held/knob 7 -> 0 until it ends)"
	verdict "harness: a held knob is written once, each case finds it (not what the case before wrote), the binary's end puts it back"
	{ held_knob_run timeout -s KILL 2 env PINCHECK_UNIT_HANG=1 build/unit/verify -t 'unit_verify/hang/pause/-/-'; } 2>/dev/null
	status_is 137 && [[ $(<"$tmp/held/knob") == 0 ]] &&
		has_line "$tmp/held/journal" "write	$tmp/held/knob	7"
	verdict "harness: after a SIGKILL of the binary its knob journal still holds the held knob's old value for the runner"
	# its case process, in a process group of its own, outlives it
	for p in $(pgrep -f 'unit_verify/hang/pause'); do
		grep -qzxF "PINCHECK_UNIT_HELD_KNOB=$tmp/held/knob" "/proc/$p/environ" 2>/dev/null &&
			kill -KILL "$p"
	done
fi

# --- the real binaries -----------------------------------------------------

real=(build/tests/*)
if [[ ! -x ${real[0]} ]]; then
	skip "the real binaries" "none in build/tests"
else
	runner -l --no-build
	status_is 0 && [[ -s $OUT && -z $(sort "$OUT" | uniq -d) ]]
	verdict "real binaries: -l ids are unique"
	awk -F/ 'NF != 4 || $1 == "" || $2 == "" || $3 == "" || $4 == "" { bad = 1 }
		 END { exit bad }' "$OUT"
	verdict "real binaries: ids are <binary>/<scenario>/<backing>/<engine>"
	if ((EUID != 0)); then
		skip "real binaries: a small run restores the state" "not root"
	else
		first=$(head -n 1 "$OUT")
		runner --no-build -t "$first"
		snapshot >"$tmp/snap1"
		last_line "$OUT"
		[[ $RC == [01] && $REPLY =~ ^[0-9]+\ passed,\ [0-9]+\ failed,\ [0-9]+\ skipped$ ]]
		verdict "real binaries: a one-case run ends with the summary"
		cmp -s "$tmp/snap0" "$tmp/snap1" && state_clean
		verdict "real binaries: the state is restored"
	fi
fi

printf '1..%d\n' "$n"
printf '%d passed, %d failed, %d skipped\n' "$npass" "$nfail" "$nskip"
((nfail == 0))
