#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/robust_test.sh: run_tests.sh against a second run, foreign and
# misbehaving binaries, SIGKILL and bad input (issue 17).  Fake binaries
# (shell scripts carrying the harness's marker) in PINCHECK_TESTS_DIR, a
# private PINCHECK_STATE_DIR, a fake kernel log.  The runs that change
# system state need root and skip without it.
# Prints "ok N - ..." and ends with "N passed, N failed, N skipped".

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
RUN=$PWD/run_tests.sh

# shellcheck source=unit/vmtest-lib.sh
. unit/vmtest-lib.sh
vt_init robust-test
fake=$tmp/bin
state=$tmp/state
mkdir -p "$fake" "$state"
export PINCHECK_STATE_DIR=$state
export PINCHECK_DMESG_CMD="cat $tmp/kmsg"
: >"$tmp/kmsg"
bg=()

one_line_err() { [[ $(wc -l <"$ERR") == 1 ]] && grep -qE -- "$1" "$ERR"; }
last_is_summary() { tail -n 1 "$OUT" | grep -qE '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$'; }

# fake NAME BODY: a marked fake binary listing NAME/a/anon/x; BODY runs
# as its one case (after "ok 1"-style TAP is up to BODY).
fake() {
	{
		printf '#!/bin/bash\n# pincheck-test-binary:1\n'
		# shellcheck disable=SC2016 # the fake's own expansion
		printf 'if [[ ${1-} == -l ]]; then %s; exit 0; fi\n' "${3:-echo $1/a/anon/x}"
		printf 'echo "TAP version 13"; echo 1..1\n%s\n' "$2"
	} >"$fake/$1"
	chmod +x "$fake/$1"
}

# only NAME...: only these fakes are executable.
only() {
	local f
	chmod -x "$fake"/*
	for f in "$@"; do
		chmod +x "$fake/$f"
	done
}

# alive PID: running, not a zombie waiting for its reaper.
alive() {
	local stat
	{ IFS= read -r stat <"/proc/$1/stat"; } 2>/dev/null && [[ ${stat##*) } != Z* ]]
}

fakerun() { PINCHECK_TESTS_DIR=$fake runner "$@"; }

# Everything the runner changes, as text.
snapshot() {
	local f
	for f in /sys/kernel/mm/transparent_hugepage/enabled \
		 /sys/kernel/mm/transparent_hugepage/hugepages-*kB/enabled \
		 /sys/kernel/mm/hugepages/hugepages-*kB/nr_hugepages \
		 /sys/kernel/mm/ksm/{run,pages_to_scan}; do
		[[ -r $f ]] && printf '%s: %s\n' "$f" "$(<"$f")"
	done
	awk 'NR > 1 { print "swap: " $1 }' /proc/swaps
	awk '$2 == "/sys/kernel/debug" { print "mounted: " $2 }' /proc/self/mounts
}

cleanup() {
	local p
	for p in "${bg[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	for p in "$tmp"/*.pid; do
		[[ -s $p ]] && kill -KILL "$(<"$p")" 2>/dev/null
	done
	grep -q " $tmp/full " /proc/self/mounts && umount -l "$tmp/full"
	if [[ -s $tmp/hang.pid ]]; then
		p=/run/pincheck-fake.$(<"$tmp/hang.pid")
		umount -l "$p/mnt" 2>/dev/null
		rmdir "$p/mnt" "$p" 2>/dev/null
	fi
	if [[ -s $state/state ]]; then	# a test failed half-way: repair
		only ok
		PINCHECK_TESTS_DIR=$fake "$RUN" >/dev/null 2>&1 </dev/null
	fi
	rm -rf -- "$tmp"
}
trap cleanup EXIT

# a knob write as lib/harness/knob.c makes it: the old value into the journal first
# shellcheck disable=SC2016 # the fake's own expansions
KSM_JOURNAL_WRITE='k=/sys/kernel/mm/ksm/pages_to_scan
	[[ -w $k ]] && printf "write\t%s\t%s\n" $k "$(<$k)" >>"$PINCHECK_KNOB_JOURNAL" && echo 4321 >$k'
fake ok 'echo "ok 1 ok/a/anon/x"'
fake slow 'sleep 2; echo "ok 1 slow/a/anon/x"'
fake printer 'while :; do echo "# chatter chatter chatter chatter chatter"; done'
fake noline 'while :; do printf "# chatter without a newline "; done'
fake listhang 'echo "ok 1 listhang/a/anon/x"' 'exec sleep 1000'
fake listflood 'echo "ok 1 listflood/a/anon/x"' 'while :; do echo listflood/a/anon/x; done'
# a killed run's children: one in the binary's group, one that left it,
# a mount as odirect_fork makes them (/run/pincheck-TAG.PID/...)
# (and a knob changed as lib/harness/knob.c does it: journal line first)
fake orphans "setsid sleep 1000 & echo \$! >$tmp/escaped.pid
	$KSM_JOURNAL_WRITE
	mkdir -p /run/pincheck-fake.\$\$/mnt && mount -t tmpfs none /run/pincheck-fake.\$\$/mnt
	echo \$\$ >$tmp/hang.pid; echo 'ok 1 orphans/a/anon/x'; exec sleep 1000"
# knobkill: the real ksm_pinned (lib/harness/knob.c journals its KSM knobs in
# PINCHECK_KNOB_JOURNAL), SIGKILLed with its case once ksmd runs
fake knobkill "$PWD/build/tests/ksm_pinned -t 'ksm_pinned/pinned-not-merged/anon/io_uring' >/dev/null 2>&1 &
	b=\$!
	for i in {1..300}; do
		grep -q '^write	/sys/kernel/mm/ksm/run	' \"\$PINCHECK_KNOB_JOURNAL\" 2>/dev/null &&
			[[ \$(</sys/kernel/mm/ksm/run) == 1 ]] && break
		sleep 0.1
	done
	cp \"\$PINCHECK_KNOB_JOURNAL\" $tmp/knobs.seen
	kill -KILL \$(ps -o pid= --ppid \$b) \$b; wait"
printf '#!/bin/sh\ntouch %q\necho foreign/a/anon/x\n' "$tmp/foreign-ran" >"$fake/foreign"
chmod +x "$fake/foreign"

# --- bad input: one line, exit 2 --------------------------------------------

bad() {
	local want=$1
	shift
	runner "$@"
	[[ $RC == 2 ]] && one_line_err "$want"
	check "bad input ($*): exit 2, one line"
}
bad 'from 1 to 86400' --case-timeout 86401
PINCHECK_CASE_TIMEOUT=abc bad 'PINCHECK_CASE_TIMEOUT needs a whole number' -t 'pin_fork/*'
PINCHECK_VM_BOOT_RETRIES=x bad 'PINCHECK_VM_BOOT_RETRIES needs' --kernel debian:6.12
PINCHECK_ODF_HOLD=bogus bad 'PINCHECK_ODF_HOLD is auto, none' -l
PINCHECK_OUTPUT_LIMIT=-1 bad 'PINCHECK_OUTPUT_LIMIT needs' -l
globs=()
for i in {1..65}; do globs+=(-t "x$i/*"); done
bad 'at most 64 -t globs' -l "${globs[@]}"
bad 'name the same file' --json "$tmp/r" --junit "$tmp/r"
bad 'add --kernel' --profile default
bad 'is a directory' --kernel debian:6.12 --profile "$tmp"

# --- only pincheck binaries run, bounded ------------------------------------

only ok foreign
fakerun -l --no-setup
[[ $RC == 0 && ! -e $tmp/foreign-ran && $(<"$OUT") == ok/a/anon/x ]] &&
	grep -q "not run: .*/foreign is not a pincheck test binary" "$ERR"
check "-l: a foreign executable in PINCHECK_TESTS_DIR is never run (noted on stderr)"

only listhang ok
SECONDS=0
PINCHECK_LIST_TIMEOUT=2 fakerun -l
[[ $RC == 1 && $SECONDS -lt 10 ]] &&
	grep -q 'listhang -l killed after 2s (PINCHECK_LIST_TIMEOUT)' "$ERR"
check "-l: a binary whose listing hangs is killed after PINCHECK_LIST_TIMEOUT, named"

only listflood ok
PINCHECK_OUTPUT_LIMIT=65536 fakerun -l
[[ $RC == 1 ]] &&
	grep -q 'listflood -l killed: more than 65536 bytes of output (PINCHECK_OUTPUT_LIMIT)' "$ERR"
check "-l: a binary listing without end is cut at PINCHECK_OUTPUT_LIMIT, named"

if ((EUID != 0)); then
	skip "runs of the fakes" "not root"
else
	only ok foreign
	fakerun --no-setup
	[[ $RC == 0 && ! -e $tmp/foreign-ran ]] && last_is_summary
	check "a run: the foreign executable is never run"

	only printer ok
	SECONDS=0
	PINCHECK_OUTPUT_LIMIT=65536 fakerun --no-setup --timeout 60
	[[ $RC == 1 && $SECONDS -lt 20 ]] && last_is_summary &&
		grep -q '^ok 1 ok/a/anon/x$' "$OUT" &&
		grep -q '^not ok 3 printer/a/anon/x # binary stopped after more than 65536 bytes of output (PINCHECK_OUTPUT_LIMIT)' "$OUT" &&
		(($(wc -c <"$OUT") < 80000))
	check "a binary printing without end is stopped at PINCHECK_OUTPUT_LIMIT: FAIL naming it, the run goes on" \
		"took ${SECONDS}s"
	only noline ok
	SECONDS=0
	PINCHECK_OUTPUT_LIMIT=65536 fakerun --no-setup --timeout 60
	[[ $RC == 1 && $SECONDS -lt 20 ]] && last_is_summary &&
		grep -q '^not ok 3 noline/a/anon/x # binary stopped after more than 65536 bytes of output (PINCHECK_OUTPUT_LIMIT)' "$OUT" &&
		(($(wc -c <"$OUT") < 200000))
	check "one endless line without a newline is stopped at PINCHECK_OUTPUT_LIMIT too" \
		"took ${SECONDS}s, $(wc -c <"$OUT") bytes; $(grep -a 'noline' "$OUT" | cut -c1-200 | tail -n 3)"

	only listhang
	PINCHECK_LIST_TIMEOUT=1 fakerun --no-setup
	[[ $RC == 1 ]] && grep -q '^not ok 1 listhang/list/all/runner # listhang -l killed after 1s' "$OUT"
	check "a run: the hung listing is a FAIL naming the limit"

	# a shard (vm.sh --shards) lists a binary when it claims it
	only listhang ok
	mkdir -p "$tmp/claims-lh"
	PINCHECK_SHARD=0/2 PINCHECK_SHARD_CLAIMS=$tmp/claims-lh PINCHECK_LIST_TIMEOUT=1 \
		fakerun --no-setup
	[[ $RC == 1 ]] && last_is_summary &&
		grep -qE '^not ok [0-9]+ listhang/list/all/runner # listhang -l killed after 1s' "$OUT" &&
		grep -qE '^ok [0-9]+ ok/a/anon/x$' "$OUT" &&
		[[ $(grep -E '^(not )?ok |^1\.\.' "$OUT" | tail -n 1) == "1..3" ]]
	check "a shard: the hung listing of a binary it claims is a FAIL naming the limit, the others run, the plan counts them last"

	# --- two runs started together --------------------------------------

	snapshot >"$tmp/snap0"
	only slow
	PINCHECK_LOCK_WAIT=0 PINCHECK_TESTS_DIR=$fake "$RUN" >"$tmp/a.out" 2>"$tmp/a.err" </dev/null &
	pa=$!
	PINCHECK_LOCK_WAIT=0 PINCHECK_TESTS_DIR=$fake "$RUN" >"$tmp/b.out" 2>"$tmp/b.err" </dev/null &
	pb=$!
	wait "$pa"
	ra=$?
	wait "$pb"
	rb=$?
	snapshot >"$tmp/snap1"
	if ((ra == 2)); then
		loser=$tmp/a.err winner=$pb rwin=$rb
	else
		loser=$tmp/b.err winner=$pa rwin=$ra
	fi
	[[ $(wc -l <"$loser") == 1 ]] &&
		grep -q "another pincheck run (pid $winner) owns the machine state" "$loser" &&
		((rwin == 0)) && cmp -s "$tmp/snap0" "$tmp/snap1" && [[ ! -s $state/state ]]
	check "two runs started together: one runs, the other exits 2 naming it; the state is restored exactly" \
		"exit $ra and $rb; $(cat "$tmp/a.err" "$tmp/b.err"; diff "$tmp/snap0" "$tmp/snap1")"

	# --- SIGKILL, then a new run -----------------------------------------

	only orphans
	rm -f "$tmp/hang.pid" "$tmp/escaped.pid"
	PINCHECK_TESTS_DIR=$fake "$RUN" >"$OUT" 2>"$ERR" </dev/null &
	pk=$!
	bg+=("$pk")
	for ((i = 0; i < 100; i++)); do
		[[ -s $tmp/hang.pid && -s $tmp/escaped.pid ]] && break
		sleep 0.1
	done
	kill -KILL "$pk"
	wait "$pk" 2>/dev/null
	hang=$(<"$tmp/hang.pid") escaped=$(<"$tmp/escaped.pid")
	alive "$hang" && alive "$escaped"
	check "SIGKILL of a run: its binary and a setsid child live on (the case to handle)"
	only ok
	fakerun
	[[ $RC == 0 ]] && ! alive "$hang" && ! alive "$escaped" &&
		! grep -q " /run/pincheck-fake.$hang/mnt " /proc/self/mounts &&
		grep -q "ended [0-9]* process(es) left by an interrupted run (pid $pk)" "$ERR" &&
		cmp -s "$tmp/snap0" <(snapshot) && [[ ! -s $state/state ]]
	check "the next run ends every process of the killed one, unmounts its file system, restores the state" "$(ps -o pid,stat,cmd -p "$hang,$escaped"; grep pincheck-fake /proc/self/mounts; diff "$tmp/snap0" <(snapshot); cat "$state/state")"

	# --- the knob journal: a SIGKILLed binary's knobs ---------------------

	if [[ -w /sys/kernel/mm/ksm/run && -x build/tests/ksm_pinned ]]; then
		only knobkill
		fakerun
		[[ $RC == 1 && ! -s $state/knobs ]] &&
			grep -q "^write	/sys/kernel/mm/ksm/run	$(</sys/kernel/mm/ksm/run)$" "$tmp/knobs.seen" &&
			grep -q '^not ok 1 knobkill/a/anon/x # ' "$OUT" &&
			cmp -s "$tmp/snap0" <(snapshot) && [[ ! -s $state/state ]]
		check "a binary SIGKILLed after it started ksmd: the runner replays its knob journal (ksm run, sleep, pages_to_scan back)" \
			"exit $RC; $(diff "$tmp/snap0" <(snapshot); cat "$tmp/knobs.seen" "$state/knobs" "$ERR")"
	else
		skip "a SIGKILLed binary's knob journal replayed" "no KSM or no build/tests/ksm_pinned"
	fi

	# --- leaks and foreign settings --------------------------------------

	mkdir -p "$tmp/t"
	only ok
	TMPDIR=$tmp/t fakerun --no-setup --kcidb /proc/nonexistent/kcidb.json
	[[ $RC == 2 && -z $(ls -A "$tmp/t") ]]
	check "--kcidb to an unwritable file: exit 2, no temporary file left"

	PINCHECK_VM_HW=/run PINCHECK_TESTS_DIR=$fake runner
	[[ $RC == 0 ]] && grep -q 'PINCHECK_VM_HW ignored' "$ERR" &&
		cmp -s "$tmp/snap0" <(snapshot) && [[ ! -s $state/state ]]
	check "PINCHECK_VM_HW on the host: ignored with a note, the state recorded and restored"

	# --- a full PINCHECK_TMPDIR: a setup error, not kernel failures -------

	full=$tmp/full
	mkdir -p "$full" && mount -t tmpfs -o size=256k pincheck-full "$full" &&
		{ dd if=/dev/zero of="$full/fill" bs=4k 2>/dev/null; :; }
	only ok
	PINCHECK_TMPDIR=$full fakerun
	[[ $RC == 2 ]] && one_line_err "PINCHECK_TMPDIR $full has 0 kB free" &&
		cmp -s "$tmp/snap0" <(snapshot) && [[ ! -s $state/state ]]
	check "a full PINCHECK_TMPDIR: exit 2, one line naming it, the state restored"
	PINCHECK_TMPDIR=$full timeout 60 build/tests/pin_fork \
		-t 'pin_fork/pin-only/file-*/io_uring' >"$OUT" 2>&1 </dev/null
	[[ $(grep -c "^ok [12] .* # SKIP setup: pwrite of the backing's content: No space left on device ($full is full" "$OUT") == 2 ]]
	check "a file backing in a full directory: its cases SKIP naming the directory" "$(grep -E '^(not )?ok' "$OUT")"
	umount "$full"
fi

summary
((nfail == 0))
