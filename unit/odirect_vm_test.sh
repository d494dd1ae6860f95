#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/odirect_vm_test.sh: tests of odirect_fork (root).
# In a Debian 6.1 guest the O_DIRECT-read-across-fork cases must fail with
# the full report (lost in every in-flight iteration, PFN moved, the data
# in the child, the known-bug annotation) within 1 s of the case start; in
# a 6.12 guest the same cases must pass with every iteration in flight.
# On the host, the binary must leave no loop device, dm device, mount or
# directory behind: after a normal run, after SIGTERM, and after SIGKILL
# (the next run removes what the killed one left); the FUSE hold must hold
# every iteration, and without a hold no case may pass.
# Prints "ok N - ..." and ends with "N passed, N failed, N skipped".
# PINCHECK_ODF_OLD / PINCHECK_ODF_NEW pick the kernels (default debian:6.1
# and debian:6.12); the guests' logs stay in PINCHECK_ODF_VM_OUT (default
# /tmp/pincheck-odf-vm-test/{old,new}).  A guest that dies while booting
# (a TCG flake seen under heavy load) is booted once more.

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
RUN=./run_tests.sh
BIN=build/tests/odirect_fork
OLD=${PINCHECK_ODF_OLD:-debian:6.1}
NEW=${PINCHECK_ODF_NEW:-debian:6.12}
FIX=a7e689dd1c06
VMOUT=${PINCHECK_ODF_VM_OUT:-/tmp/pincheck-odf-vm-test}
CORE='odirect_fork/read-2k-alive-ext4/*'
SUBSET=(-t "$CORE" -t 'odirect_fork/read-2k-alive-xfs/anon/aio'
	-t 'odirect_fork/read-2k-exit-ext4/anon/io_uring'
	-t 'odirect_fork/write-2k-alive-ext4/anon/aio'
	-t 'odirect_fork/control-remap-read-2k-alive-ext4/anon/aio')

# shellcheck source=unit/vmtest-lib.sh
. "${BASH_SOURCE[0]%/*}/vmtest-lib.sh"
vt_init odf-test



# guest KERNEL NAME: run the subset in a guest, booting once more if the
# guest died before running anything.
guest() {
	runner --kernel "$1" --vm-out "$VMOUT/$2" --json "$tmp/$2.json" "${SUBSET[@]}"
	if grep -q '^Bail out!' "$OUT" && ! grep -q '^ok ' "$VMOUT/$2/tap.log" 2>/dev/null; then
		printf '# %s: %s; booting again\n' "$1" "$(grep -m1 '^Bail out!' "$OUT")"
		runner --kernel "$1" --vm-out "$VMOUT/$2" --json "$tmp/$2.json" "${SUBSET[@]}"
	fi
}
summary_last() { tail -n 1 "$OUT" | grep -qE '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$'; }
json_has() { jq -e "$2" "$1" >/dev/null 2>&1; }

# stats_all FILE GLOB JQ-ish: every odf-stats line of the cases matching
# the case-id regex RE satisfies the awk condition COND (fields by name).
stats_all() {
	awk -v re="$2" -v cond="$3" '
		/^# odf-stats / { line = $0; next }
		/^(not )?ok / {
			id = $0; sub(/^(not )?ok [0-9]+ /, "", id); sub(/ .*/, "", id)
			if (id ~ re) {
				seen++
				if (line == "") { bad++; next }
				split(line, f, " ")
				for (i in f) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
				ok = 1
				if (cond == "held") ok = v["after_write"] == v["iters"] && v["iters"] >= 4
				if (cond == "fast") ok = v["first_loss_ms"] >= 0 && v["first_loss_ms"] < 1000
				if (!ok) bad++
			}
			line = ""
		}
		END { exit !(seen > 0 && bad == 0) }' "$1"
}

# leftovers: what a run of odirect_fork may leave behind, one per line.
leftovers() {
	local f

	ls -d /run/pincheck-odf.* 2>/dev/null
	grep -h ' /run/pincheck-odf\.' /proc/self/mountinfo 2>/dev/null
	for f in /sys/block/loop*/loop/backing_file; do
		grep -H 'pincheck-odf\.' "$f" 2>/dev/null
	done
	for f in /sys/block/dm-*/dm/name; do
		grep -H '^pincheck-odf-' "$f" 2>/dev/null
	done
}

if ((EUID != 0)); then
	skip "odirect_fork tests" "need root"
	summary
	exit 0
fi

# --- the host: every way out leaves the machine as found ------------------

make -s >/dev/null 2>&1
before=$(leftovers)

"$BIN" -t 'odirect_fork/read-2k-alive-ext4/anon/aio' >"$OUT" 2>"$ERR" </dev/null
RC=$?
{ [[ $RC == 0 || $RC == 4 ]] && grep -q '^# device: ext4' "$OUT" &&
	[[ $(leftovers) == "$before" ]]; }
check "host: one case runs (pass or skip with counts) and leaves nothing behind"

# The FUSE hold (the host's, without device-mapper): every iteration held
# and seen at the device, the control still catching its loss; without a
# hold nothing passes, whatever happened to be in flight.
if [[ -c /dev/fuse ]]; then
	# anon only: hugetlb and THP depend on run_tests.sh's setup
	PINCHECK_ODF_HOLD=fuse "$BIN" -t 'odirect_fork/read-2k-alive-ext4/anon/*' \
		-t 'odirect_fork/read-2k-alive-xfs/anon/aio' \
		-t 'odirect_fork/read-512-alive-blk/anon/aio' \
		-t 'odirect_fork/write-2k-alive-ext4/anon/aio' \
		-t 'odirect_fork/control-remap-read-2k-alive-ext4/anon/aio' >"$OUT" 2>"$ERR" </dev/null
	RC=$?
	{ ((RC == 0)) && grep -q 'hold fuse' "$OUT" &&
		stats_all "$OUT" '/anon/' held &&
		! grep '^# odf-stats' "$OUT" | grep -vE 'iters=([0-9]+) issued=\1 at_device=\1 ' | grep -q . &&
		[[ $(grep -c '^ok [0-9]* odirect_fork/[^#]*$' "$OUT") == 7 ]] &&
		[[ $(leftovers) == "$before" ]]; }
	check "host, PINCHECK_ODF_HOLD=fuse: 6 anon cases (ext4, xfs, raw; read, write) and the control pass, every iteration held at the device"
else
	skip "host, PINCHECK_ODF_HOLD=fuse" "no /dev/fuse"
fi
PINCHECK_ODF_HOLD=none "$BIN" -t 'odirect_fork/read-2k-alive-ext4/anon/*' >"$OUT" 2>"$ERR" </dev/null
{ [[ $(grep -c '^ok [0-9]* odirect_fork/.*# SKIP no event: nothing holds the request' "$OUT") == 3 ]]; }
check "host, PINCHECK_ODF_HOLD=none: no case passes (SKIP: nothing holds the request)"

"$BIN" -t 'odirect_fork/read-2k-*' >"$OUT" 2>"$ERR" </dev/null &
pid=$!
for _ in $(seq 600); do grep -q '^ok 1 ' "$OUT" && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
RC=$?
{ ((RC == 143)) && [[ $(leftovers) == "$before" ]]; }
check "host: SIGTERM mid-run: killed by it, devices and mounts removed"

# Killed once its first result is out and its devices exist (however
# slow mkfs is on a loaded machine): the next run has something to remove.
setsid "$BIN" -t 'odirect_fork/read-2k-*' >"$OUT" 2>"$ERR" </dev/null &
pid=$!
disown "$pid"		# no "Killed" job notice
for _ in $(seq 600); do
	grep -q '^ok 1 ' "$OUT" && [[ $(leftovers) != "$before" ]] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
kill -KILL -- "-$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
sleep 0.5
left=$(leftovers)
"$BIN" -t 'odirect_fork/read-512-alive-blk/anon/aio' >"$OUT" 2>"$ERR" </dev/null
RC=$?
{ [[ -n $left && $left != "$before" ]] && [[ $(leftovers) == "$before" ]]; }
check "host: after SIGKILL the next run removes what the killed one left"

# --- the old kernel: the bug is found every time, with its report ---------

guest "$OLD" old
log=$VMOUT/old/tap.log
if [[ ! -s $log ]] || grep -q '^Bail out!' "$OUT"; then
	fail "$OLD: the guest ran the subset"
else
	[[ $RC == 1 ]] && summary_last &&
		json_has "$tmp/old.json" '[.results[] | select(.id | test("/read-2k-alive-ext4/")) | .result] | length == 9 and all(. == "fail")'
	check "$OLD: all 9 read-2k-alive-ext4 cases (3 submitters x anon, THP, hugetlb) fail"
	json_has "$tmp/old.json" '[.results[] | select(.id | test("/read-2k-alive-ext4/")) | .reason] | all(test("lost in 8/8 in-flight iterations") and test("child.s page got the data in 8/8") and test("known bug.*'"$FIX"'"))'
	check "$OLD: each says lost in 8/8 in-flight iterations, the data in the child, known bug fixed by $FIX"
	grep -A5 '^# MISMATCH odirect_fork/read-2k-alive-ext4/anon/aio' "$log" | grep -q 'CPU page PFN 0x[0-9a-f]* before fork, 0x[0-9a-f]* now (moved)'
	check "$OLD: the report names the PFN before fork and after the parent's write (moved)"
	stats_all "$log" '/read-2k-alive-ext4/' held && stats_all "$log" '/read-2k-alive-ext4/' fast
	check "$OLD: every iteration held in flight; first loss within 1 s of the case start"
	json_has "$tmp/old.json" '[.results[] | select(.id | test("/read-2k-alive-xfs/anon/aio$|/read-2k-exit-ext4/anon/io_uring$")) | .result] | length == 2 and all(. == "fail")'
	check "$OLD: xfs and the child-exits variant lose the data too"
	json_has "$tmp/old.json" '[.results[] | select(.id | test("/write-2k-alive-ext4/anon/aio$|/control-remap-")) | .result] | length == 2 and all(. == "pass")'
	check "$OLD: the write direction passes (the device gets the pre-fork data); the control catches a remap"
fi

# --- the new kernel: the same cases pass, really in flight ----------------

guest "$NEW" new
log=$VMOUT/new/tap.log
[[ $RC == 0 ]] && summary_last &&
	json_has "$tmp/new.json" '[.results[] | select(.id | test("^odirect_fork/[^/]+/") and (contains("/kernel-log/") | not)) | .result] | length == 13 and all(. == "pass")'
check "$NEW: all 13 cases pass"
[[ -s $log ]] && stats_all "$log" '^odirect_fork/(read|write)-' held
check "$NEW: every iteration of every case had the request in flight across fork and the write"

summary
((nfail == 0))
