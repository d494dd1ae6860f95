#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/vm_test.sh: tests of `run_tests.sh --kernel` and `--matrix` (root).
# Bad input must give exit 2 and one line; a real Debian kernel boots under
# QEMU and runs a subset; a guest that panics or hangs is a failed run with
# the reason, not a hung command; the matrix prints its table.
# Prints "ok N - ..." and ends with "N passed, N failed, N skipped".
# PINCHECK_VM_KERNEL picks the kernel to boot (default debian:6.12).

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
RUN=./run_tests.sh
KERNEL=${PINCHECK_VM_KERNEL:-debian:6.12}
SUBSET=(-t 'pin_fork/pin-fork-alive-parent-writes/anon/*' -t 'madv_dontfork/*/thp-pmd/*'
	-t 'pin_fork/pin-fork-alive-parent-writes/swapped/io_uring'
	-t 'pin_fork/pin-fork-alive-parent-writes/hugetlb-2048kB/io_uring')

# shellcheck source=unit/vmtest-lib.sh
. "${BASH_SOURCE[0]%/*}/vmtest-lib.sh"
vt_init vm-test


err_is_one_line() { [[ $(wc -l <"$ERR") == 1 ]] && grep -qE -- "$1" "$ERR"; }
summary_last() { tail -n 1 "$OUT" | grep -qE '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$'; }
json_has() { jq -e "$2" "$1" >/dev/null 2>&1; }

if ((EUID != 0)); then
	skip "VM tests" "need root"
	summary
	exit 0
fi

# --- bad input: exit 2 and one line, before anything boots ----------------

runner --kernel nosuch:1
[[ $RC == 2 ]] && err_is_one_line 'unknown kernel'
check "an unknown --kernel SPEC: exit 2 and one line"

runner --kernel /nonexistent/bzImage
[[ $RC == 2 ]] && err_is_one_line 'no kernel image'
check "a missing kernel path: exit 2 and one line"

head -c 65536 /dev/urandom >"$tmp/bzImage"
runner --kernel "$tmp/bzImage"
[[ $RC == 2 ]] && err_is_one_line 'not a kernel image'
check "a corrupt kernel image: exit 2 and one line"

runner --modules /tmp
[[ $RC == 2 ]] && err_is_one_line 'needs --kernel'
check "--modules without --kernel: exit 2 and one line"

runner --kernel "$KERNEL" --profile nosuch
[[ $RC == 2 ]] && err_is_one_line 'no VM profile'
check "an unknown --profile: exit 2 and one line"

runner --matrix "$tmp/nosuch"
[[ $RC == 2 ]] && err_is_one_line 'no kernel list'
check "--matrix with a missing file: exit 2 and one line"

runner --matrix --jobs 0
[[ $RC == 2 ]] && err_is_one_line 'jobs needs a number'
runner --kernel "$KERNEL" --jobs 2
[[ $RC == 2 ]] && err_is_one_line 'jobs goes with --matrix'
check "--jobs 0, or --jobs without --matrix: exit 2 and one line"

runner --kernel "$KERNEL" --shards 0
[[ $RC == 2 ]] && err_is_one_line 'shards needs a number'
runner --shards 2
[[ $RC == 2 ]] && err_is_one_line 'shards splits a --kernel run'
check "--shards 0, or --shards without --kernel: exit 2 and one line"

# --- a real guest ----------------------------------------------------------

vmout=$tmp/vm
runner --kernel "$KERNEL" --shards 1 --vm-out "$vmout" --json "$tmp/vm.json" "${SUBSET[@]}"
[[ $RC == 0 ]] && summary_last && grep -q '^ok .*pin_fork/pin-fork-alive-parent-writes/anon/io_uring$' "$OUT"
check "$KERNEL: the subset passes in the guest, summary last"
json_has "$tmp/vm.json" '.run.kernel_release | test("^[0-9]") and . != "'"$(uname -r)"'"'
check "$KERNEL: --json carries the guest's kernel release"
[[ -s $vmout/console.log && -s $vmout/dmesg.txt && -s $vmout/tap.log ]]
check "$KERNEL: console log, guest dmesg and TAP kept in --vm-out"
grep -q 'pcrxe0' "$vmout/dmesg.txt" && grep -q 'intel_iommu=on' "$vmout/dmesg.txt" &&
	grep -qiE 'NUMA|node 1' "$vmout/dmesg.txt"
check "$KERNEL: the guest has the veth for rxe, the IOMMU on and 2 NUMA nodes"
grep -qE '^ok [0-9]+ pin_fork/pin-fork-alive-parent-writes/swapped/io_uring$' "$OUT" &&
	grep -qE '^ok [0-9]+ pin_fork/pin-fork-alive-parent-writes/hugetlb-2048kB/io_uring$' "$OUT" &&
	grep -q 'hugetlb 2048kB nr_hugepages' "$vmout/hw.log"
check "$KERNEL: swap and the hugetlb pool come up behind the first tests; their cases wait and run"

# guest_list_cache DIR: the list cache a guest was given.
guest_list_cache() {
	sed -n 's/^export PINCHECK_LIST_CACHE=\([^ ]*\) .*/\1/p' "$1/run.env"
}
runner --kernel "$KERNEL" --shards 1 --vm-out "$tmp/vm2" "${SUBSET[@]}"
cache2=$(guest_list_cache "$tmp/vm2")
[[ $RC == 0 && -e $cache2/complete && ! -e $tmp/vm2/lists ]]
check "$KERNEL: a second run takes the case lists from the cache (the guest lists nothing)"
touch build/tests/pin_fork
runner --kernel "$KERNEL" --shards 1 --vm-out "$tmp/vm3" "${SUBSET[@]}"
cache3=$(guest_list_cache "$tmp/vm3")
[[ $RC == 0 && -n $cache3 && $cache3 != "$cache2" && -e $cache3/complete ]]
check "$KERNEL: a rebuilt binary makes the guest list again (new cache key)"

# --- one kernel over two guests ----------------------------------------------

# tap_numbered TAP [last]: one plan, first (or with "last", after the last
# result: a sharded run's), and the results numbered 1..plan
tap_numbered() {
	awk -v last="${2-}" '/^1\.\.[0-9]+$/ { plans++; plan = substr($0, 4) + 0; at = n; next }
		/^(not )?ok / { n++; split($0, w, " "); if (w[$1 == "not" ? 3 : 2] != n) bad = 1 }
		END { exit bad || plans != 1 || at != (last ? n : 0) || n != plan || !n }' "$1"
}
runner --kernel "$KERNEL" --shards 2 --vm-out "$tmp/sh" --json "$tmp/sh.json" "${SUBSET[@]}"
sh_bins=$(cut -f1 "$tmp/sh/shard-0/records" | sort -u; echo --; cut -f1 "$tmp/sh/shard-1/records" | sort -u)
[[ $RC == 0 ]] && summary_last && tap_numbered "$OUT" last && grep -q 'in 2 guests' "$ERR" &&
	[[ -s $tmp/sh/shard-0/console.log && -s $tmp/sh/shard-1/console.log ]] &&
	json_has "$tmp/sh.json" '(.results | length) == (.results | map(.id) | unique | length) and
		([.results[].binary] | unique) == ["madv_dontfork", "pin_fork"] and .run.complete' &&
	[[ -z $(comm -12 <(cut -f1 "$tmp/sh/shard-0/records" | sort -u) \
			 <(cut -f1 "$tmp/sh/shard-1/records" | sort -u)) ]] &&
	(($(grep -cE '^(not )?ok ' "$OUT") == $(jq '.results | length' "$tmp/sh.json")))
check "--shards 2: two guests take the binaries, each binary in one guest; one TAP stream numbered 1..plan, the plan last, one JSON" \
	"$sh_bins"
runner --kernel "$KERNEL" --shards 2 --vm-out "$tmp/nm" -t 'nomatch*'
[[ $RC == 2 ]] && [[ $(grep -c "no test matches 'nomatch\*' in " "$ERR") == 1 ]] &&
	! grep -qE '^(not )?ok ' "$OUT"
check "--shards 2, -t matching no case in the guest: exit 2 and one line that says so"

# --- a checkout under /tmp, a comma in its path ----------------------------

# the guest covers /tmp with tmpfs: the checkout must be bound back in place
clone=$(mktemp -d /tmp/pincheck-clone,XXXXXX)
tar -c --exclude=build/vm --exclude=build-clang --exclude=.git . | tar -x -C "$clone"
(cd "$clone" && ./run_tests.sh --kernel "$KERNEL" -t 'pin_fork/pin-only/anon/io_uring' \
	>"$OUT" 2>"$ERR" </dev/null)
RC=$?
[[ $RC == 0 ]] && grep -q '^ok 1 pin_fork/pin-only/anon/io_uring$' "$OUT" && summary_last
check "$KERNEL: a checkout under /tmp with a comma in its path runs in the guest"
rm -rf -- "$clone"

# --- guests that fail ------------------------------------------------------

sed 's/^cmdline=.*/cmdline=rdinit=\/nonexistent root=\/dev\/nothing/' \
	configs/vm/default.conf >"$tmp/panic.conf"
runner --kernel "$KERNEL" --shards 1 --profile "$tmp/panic.conf" --vm-out "$tmp/panic" \
	--json "$tmp/panic.json" "${SUBSET[@]}"
[[ $RC == 1 ]] && grep -q '^Bail out! .*guest kernel panic' "$OUT" && summary_last &&
	grep -q 'died before any test ran .*booting again' "$ERR" &&
	[[ -s $tmp/panic/console.log.boot-1 ]] &&
	json_has "$tmp/panic.json" '.results[-1] | .id == "vm/run/all/qemu" and .result == "fail"'
check "a guest kernel panic: booted again once (PINCHECK_VM_BOOT_RETRIES), then exit 1, the reason, console lines, summary"

t0=$SECONDS
runner --kernel "$KERNEL" --shards 1 --vm-timeout 2 --vm-out "$tmp/hang" \
	--json "$tmp/hang.json" "${SUBSET[@]}"
[[ $RC == 1 ]] && grep -q '^Bail out! .*timeout' "$OUT" && summary_last &&
	json_has "$tmp/hang.json" '.results[-1] | .id == "vm/run/all/qemu" and .result == "timeout"' && ((SECONDS - t0 < 30))
check "a guest past --vm-timeout: killed, exit 1, reason timeout"

# --- the matrix ------------------------------------------------------------

printf '# test\nhost\n%s\n' "$KERNEL" >"$tmp/matrix"
runner --matrix "$tmp/matrix" --matrix-out "$tmp/m" -t 'pin_fork/pin-only/anon/io_uring'
[[ $RC == 0 ]] && grep -qE "^scenario +host \([^,]+, [0-9]+ s\) +$KERNEL \([^,]+, [0-9]+ s\)" "$OUT" &&
	grep -qE '^pin_fork/pin-only +pass 1 +pass 1' "$OUT" &&
	[[ -s $tmp/m/matrix.md && -s $tmp/m/matrix.html ]] &&
	grep -q "\[2/2\] $KERNEL: 2 passed" "$ERR"
check "--matrix: progress, one table (text, Markdown, HTML), columns titled with release and time"

# two guests at once: the second starts before the first ends; the host
# column waits for both and runs alone
KERNEL2=${PINCHECK_VM_KERNEL2:-debian:6.1}
printf 'host\n%s\n%s\n' "$KERNEL" "$KERNEL2" >"$tmp/matrix2"
runner --matrix "$tmp/matrix2" --jobs 2 --matrix-out "$tmp/m2" -t 'pin_fork/pin-only/anon/io_uring'
first_end=$(grep -nm1 -E '^\[[23]/3\] .*: [0-9]+ passed' "$ERR" | cut -d: -f1)
second_start=$(grep -nE '^\[[23]/3\] .*: running' "$ERR" | sed -n 2p | cut -d: -f1)
host_start=$(grep -n '^\[1/3\] host: running' "$ERR" | cut -d: -f1)
last_guest_end=$(grep -nE '^\[[23]/3\] .*: [0-9]+ passed' "$ERR" | tail -n 1 | cut -d: -f1)
[[ $RC == 0 && -n $first_end && -n $second_start && -n $host_start ]] &&
	((second_start < first_end && host_start > last_guest_end)) &&
	grep -qE '^pin_fork/pin-only +pass 1 +pass 1 +pass 1' "$OUT" &&
	grep -q '3 kernels in [0-9]* s (2 at a time)' "$ERR"
check "--matrix --jobs 2: two guests at once, the host alone after them, one table"

summary
((nfail == 0))
