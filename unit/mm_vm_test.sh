#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/mm_vm_test.sh: the page-mover tests (numa_balancing, migrate_pinned,
# reclaim_pinned, ksm_pinned, thp_pinned) where they must run and where
# they must not (root).
#   - in a two-node debian:6.12 guest every numa_balancing and
#     migrate_pinned case of an engine present there executes and passes,
#     compaction included, with its evidence (counters, the unpinned
#     twin's move, the pageblock laid out for compaction) printed;
#   - the vfio engine (nvme) runs and passes in all five binaries;
#   - the controls of all five binaries (a mover that ignores the pin, a
#     FOLL_GET reference on a KSM page, compaction of the same pageblock
#     without the pin) pass, i.e. the checks caught the loss, in the guest;
#   - the guest put every knob the binaries changed back;
#   - on a one-node host the numa/migrate cases skip with "needs 2 NUMA
#     nodes" and leave the knobs as they were.
# Prints "ok N - ..." and ends with "N passed, N failed, N skipped".
# PINCHECK_VM_KERNEL picks the kernel to boot (default debian:6.12).

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
KERNEL=${PINCHECK_VM_KERNEL:-debian:6.12}
BINS=(numa_balancing migrate_pinned reclaim_pinned ksm_pinned thp_pinned)
NUMA_RE='^(numa_balancing|migrate_pinned)/'
MOVABLE_RE='^migrate_pinned/[^/]*movable/'

# shellcheck source=unit/vmtest-lib.sh
. "${BASH_SOURCE[0]%/*}/vmtest-lib.sh"
vt_init mm-vm-test
JSON=$tmp/vm.json VMOUT=$tmp/vm


# The ids of one engine's cases that all skipped for one reason: an engine
# this machine lacks (gup_test on Debian's kernels), not a failed mover.
# shellcheck disable=SC2016 # a jq program
ABSENT_ENGINES='
	[.results[] | select(.id | contains("/kernel-log/") | not)
	     | . + {engine: (.id | split("/")[3])}]
	| group_by(.engine)
	| map(select(all(.result == "skip") and
		     (map(.reason) | unique | length) == 1) | .[0].engine)'

knobs() {
	local p
	for p in /proc/sys/kernel/numa_balancing /sys/kernel/mm/ksm/run \
		 /sys/kernel/mm/ksm/sleep_millisecs /sys/kernel/mm/ksm/pages_to_scan; do
		[[ -r $p ]] && printf '%s=%s\n' "${p##*/}" "$(<"$p")"
	done
}

if ((EUID != 0)); then
	skip "page-mover VM tests" "need root"
	summary
	exit 0
fi
for b in "${BINS[@]}"; do
	[[ -x build/tests/$b ]] || { make -s >/dev/null 2>&1; break; }
done

# --- the host: one node -----------------------------------------------------

nodes=$(find /sys/devices/system/node -maxdepth 1 -name 'node[0-9]*' 2>/dev/null | wc -l)
if ((nodes <= 1)); then
	before=$(knobs)
	build/tests/numa_balancing >"$OUT" 2>"$ERR"
	RC=$?
	build/tests/migrate_pinned -t '*/move-pages/*' -t '*/mbind/*' \
		-t '*/migrate-pages/*' -t '*/control-mover-*' >>"$OUT" 2>>"$ERR"
	# Engines this host lacks skip with their own reason first; io_uring
	# is here, so its cases show the node check.
	((RC == 4 && $? == 4)) &&
		! grep -E '^(not )?ok ' "$OUT" | grep -v '/kernel-log' | grep -vq '# SKIP ' &&
		! grep -E '^ok .*/io_uring ' "$OUT" | grep -vq '# SKIP needs 2 NUMA nodes' &&
		grep -Eq '^ok .*/io_uring # SKIP needs 2 NUMA nodes' "$OUT"
	check "host ($nodes node): numa_balancing and migrate_pinned cases skip with 'needs 2 NUMA nodes'" \
		"$(grep -E '^(not )?ok ' "$OUT" | grep -v '/kernel-log' | grep -v '# SKIP ' | head -n 3; grep -E '^ok .*/io_uring ' "$OUT" | grep -v 'needs 2 NUMA nodes' | head -n 3)"
	[[ $(knobs) == "$before" ]]
	check "host: the NUMA and KSM knobs are as they were" "$(diff <(printf '%s\n' "$before") <(knobs))"
else
	skip "host skips the NUMA cases" "this machine has $nodes NUMA nodes"
	skip "host knobs unchanged" "this machine has $nodes NUMA nodes"
fi

# --- a two-node guest --------------------------------------------------------

args=(--kernel "$KERNEL" --vm-out "$VMOUT" --json "$JSON")
for b in "${BINS[@]}"; do
	args+=(-t "$b/*")
done
t0=$SECONDS
./run_tests.sh "${args[@]}" >"$OUT" 2>"$ERR" </dev/null
RC=$?
secs=$((SECONDS - t0))
if [[ ! -s $JSON ]]; then
	fail "$KERNEL: the guest ran the page-mover binaries" "$(tail -n 5 "$OUT" "$ERR")"
	summary
	exit 1
fi
pass "$KERNEL: the guest ran the page-mover binaries (exit $RC, ${secs} s)"

# The ZONE_MOVABLE cases need movablecore= (the movable profile, below):
# here they skip saying so, and the checks that follow leave them out.
mvbad=$(jq -r --arg re "$MOVABLE_RE" '.results[] | select(.id | test($re))
	| select(.result != "skip" or (.reason | test("ZONE_MOVABLE|CONFIG_GUP_TEST|iommufd") | not))
	| "\(.id): \(.result) \(.reason)"' "$JSON")
[[ -z $mvbad ]]
check "$KERNEL: without movablecore= the ZONE_MOVABLE cases skip and say how to run them" "$mvbad"
jq --arg re "$MOVABLE_RE" '.results |= map(select(.id | test($re) | not))' "$JSON" >"$JSON.rest" &&
	mv -- "$JSON.rest" "$JSON"

absent=$(jq -c "$ABSENT_ENGINES" "$JSON")
printf '# engines absent in the guest (all their cases skipped for one reason): %s\n' "$absent"
jq -e --argjson absent "$absent" '[.results[] | select(.id | contains("/kernel-log/") | not)
	| select((.id | split("/")[3]) as $e | $absent | index($e) | not)] | length > 0' \
	"$JSON" >/dev/null
check "$KERNEL: at least one engine (io_uring) is present in the guest"

notpass=$(jq -r --argjson absent "$absent" --arg re "$NUMA_RE" '.results[]
	| select(.id | test($re)) | select((.id | split("/")[3]) as $e | $absent | index($e) | not)
	| select(.result != "pass")
	| "\(.id): \(.result) \(.reason)"' "$JSON")
ran=$(jq --argjson absent "$absent" --arg re "$NUMA_RE" '[.results[]
	| select(.id | test($re)) | select(.id | contains("/kernel-log/") | not)
	| select((.id | split("/")[3]) as $e | $absent | index($e) | not)] | length' "$JSON")
[[ -z $notpass ]] && ((ran > 0))
check "$KERNEL: all $ran numa_balancing and migrate_pinned cases execute and pass (compaction included)" "$notpass"

tap=$VMOUT/tap.log
nb=$(jq --argjson absent "$absent" '[.results[] | select(.id | test("^numa_balancing/balancing-rounds/"))
	| select((.id | split("/")[3]) as $e | $absent | index($e) | not)] | length' "$JSON")
((nb > 0)) &&
	(($(grep -c '^# counters: numa_pte_updates .* numa_hint_faults .* numa_pages_migrated .* mm->numa_scan_seq' "$tap") >= nb)) &&
	(($(grep -c '^# evidence: unpinned twin [0-9]*/[0-9]* pages on node 1 (all there by round' "$tap") >= nb))
check "$KERNEL: every numa_balancing case prints its counters before/after and the twin's move to node 1"

nm=$(jq '[.results[] | select(.id | test("^migrate_pinned/(move-pages|mbind|migrate-pages|compaction)/")) | select(.result == "pass")] | length' "$JSON")
# (a compaction case that skipped printed a twin with 0 moved)
(($(grep -c '^# unpinned twin after \(move-pages\|mbind\|migrate-pages\|compaction\):.* [1-9][0-9]* moved' "$tap") >= nm)) &&
	(($(grep -c '^# counters: pgmigrate_success' "$tap") >= nm))
check "$KERNEL: every migrate_pinned case prints its counters and a twin that moved"

# Compaction over a laid-out pageblock: the layout, the scanner's way over
# the pinned pages, and the unpinned control that must see its pages move.
nc=$(jq '[.results[] | select(.id | test("^migrate_pinned/compaction/")) | select(.result == "pass")] | length' "$JSON")
ncu=$(jq '[.results[] | select(.id | test("^migrate_pinned/control-compaction-unpinned/")) | select(.result == "pass")] | length' "$JSON")
((nc > 0 && ncu > 0)) &&
	(($(grep -c '^# layout: pageblock PFN .* pinned pages at PFN .* twin above them' "$tap") >= nc + ncu)) &&
	(($(grep -c "^# compaction's migrate scanner went over the pinned pages" "$tap") >= nc)) &&
	(($(grep -c '^# move detected as it must be: without the pin, compaction moved' "$tap") >= ncu))
check "$KERNEL: compaction passes over a laid-out pageblock ($nc cases) and moves the same pages without the pin ($ncu controls)"

# VFIO (nvme in the guest) takes part in every binary.  The one race
# (pin-pageout-race) may miss its window with the device's rounds under
# load: a "no event" skip there is honest; io_uring must hit it.
vbad=$(jq -r '.results[] | select(.id | endswith("/vfio")) | select(.result != "pass")
	| select(.result != "skip" or (.id | contains("/pin-pageout-race/") | not)
		 or (.reason | startswith("no event:") | not))
	| "\(.id): \(.result) \(.reason)"' "$JSON")
for b in "${BINS[@]}"; do
	jq -e --arg b "$b" 'any(.results[]; (.id | startswith($b + "/") and endswith("/vfio")) and .result == "pass")' \
		"$JSON" >/dev/null || vbad+=$'\n'"$b: no passing vfio case"
done
[[ -z ${vbad//$'\n'/} ]]
check "$KERNEL: every vfio case of the five binaries executes and passes, the race at least skips for no event" "$vbad"
jq -e '[.results[] | select(.id | test("^reclaim_pinned/pin-pageout-race/.*/io_uring$"))] | length > 0 and all(.result == "pass")' \
	"$JSON" >/dev/null
check "$KERNEL: the pin racing MADV_PAGEOUT overlapped an unmapping pass (io_uring)"

controls=$(jq -r '.results[] | select(.id | test("/control-")) | "\(.id) \(.result)"' "$JSON")
bad=$(jq -r --argjson absent "$absent" '.results[] | select(.id | test("/control-"))
	| select((.id | split("/")[3]) as $e | $absent | index($e) | not)
	| select(.result != "pass") | "\(.id): \(.result) \(.reason)"' "$JSON")
for b in "${BINS[@]}"; do
	grep -q "^$b/control-[^ ]* pass$" <<<"$controls" || bad+=$'\n'"$b: no passing control"
done
(($(grep -c 'detected as it must be' "$tap") > 0)) && [[ -z ${bad//$'\n'/} ]]
check "$KERNEL: every binary's control catches the loss (a mover ignoring the pin; a FOLL_GET ref on a KSM page)" "$bad"

others=$(jq -r --argjson absent "$absent" '.results[] | select(.id | test("^(reclaim|ksm|thp)_pinned/"))
	| select((.id | split("/")[3]) as $e | $absent | index($e) | not)
	| select(.result == "fail" or .result == "timeout") | "\(.id): \(.result) \(.reason)"' "$JSON")
[[ -z $others ]]
check "$KERNEL: reclaim_pinned, ksm_pinned and thp_pinned have no failure" "$others"

! grep -q '^# state: could not restore' "$tap" && ! grep -q 'could not restore' "$ERR"
check "$KERNEL: every knob the binaries changed was put back" "$(grep 'could not restore' "$tap" "$ERR" | head -n 3)"

# --- ZONE_MOVABLE: the movable profile (movablecore=50%) -----------------

./run_tests.sh --kernel "$KERNEL" --profile movable --vm-out "$VMOUT.movable" \
	--json "$JSON.movable" -t 'migrate_pinned/*movable/*' >"$OUT" 2>"$ERR" </dev/null
RC=$?
mbad=$(jq -r --argjson absent "$absent" '.results[] | select(.id | contains("/kernel-log/") | not)
	| select((.id | split("/")[3]) as $e | $absent | index($e) | not)
	| select(.result != "pass") | "\(.id): \(.result) \(.reason)"' "$JSON.movable" 2>&1)
((RC == 0)) && [[ -z $mbad ]] &&
	(($(grep -c '^# after the pin: 0 pages in ZONE_MOVABLE' "$VMOUT.movable/tap.log") >= 1)) &&
	grep -q '^# detected as it must be: [1-9][0-9]* page(s) still in ZONE_MOVABLE' "$VMOUT.movable/tap.log"
check "$KERNEL --profile movable: long-term pins migrate their pages out of ZONE_MOVABLE first; a FOLL_GET reference leaves them (control)" \
	"$mbad$(tail -n 3 "$OUT")"

summary
((nfail == 0))
