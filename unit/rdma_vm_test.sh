#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/rdma_vm_test.sh: the RDMA engine where it can run and where it cannot
# (root).  On the host (no RDMA device) every RDMA case must skip with a
# reason that says what to do.  In a Debian guest with soft-RoCE every RDMA
# case of a representative subset must execute (no skip, no timeout), the
# no-fork controls must pass, and the remap controls must pass by detecting
# the lost write (the parent maps a fresh page over the MR range: the
# device keeps the registered page, and the engine must say so).
# Prints "ok N - ..." and ends with "N passed, N failed, N skipped".
# PINCHECK_RDMA_KERNELS: the kernels to boot (default "debian:6.12 debian:6.1";
# the second one runs a smaller subset to stay within ~3 minutes).

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
RUN=./run_tests.sh
read -r -a KERNELS <<<"${PINCHECK_RDMA_KERNELS:-debian:6.12 debian:6.1}"

# The 2 GiB guest has no 1 GiB hugetlb pages: those backings are left out.
FULL=(-t 'rdma_fork/*/anon/rdma' -t 'rdma_fork/*/thp-pmd/rdma'
      -t 'rdma_fork/*/hugetlb-2048kB/rdma'
      -t 'pin_fork/*/anon/rdma' -t 'madv_dontfork/*/anon/rdma' -t 'ro_pin/*/anon/rdma')
for c in pin-only control-remap; do
	FULL+=(-t "pin_fork/$c/[!h]*/rdma" -t "pin_fork/$c/huge-zeropage/rdma"
	       -t "pin_fork/$c/hugetlb-2048kB/rdma")
done
SMALL=(-t 'rdma_fork/*/anon/rdma' -t 'rdma_fork/*/hugetlb-2048kB/rdma'
       -t 'rdma_fork/control-remap-after-fork/thp-*/rdma'
       -t 'pin_fork/pin-only/anon/rdma' -t 'pin_fork/control-remap/anon/rdma'
       -t 'ro_pin/*/anon/rdma')

# shellcheck source=unit/vmtest-lib.sh
. "${BASH_SOURCE[0]%/*}/vmtest-lib.sh"
vt_init rdma-vm-test



# jq_why JSON FILTER: the ids FILTER selects go to $tmp/why; true if none.
jq_none() {
	jq -r "$2" "$1" >"$tmp/why" 2>&1 && [[ ! -s $tmp/why ]]
}

RDMA='select(.id | endswith("/rdma"))'

if ((EUID != 0)); then
	skip "RDMA VM tests" "need root"
	summary
	exit 0
fi
: >"$tmp/why"

# --- the host: no RDMA device, every case skips with what to do ------------

t0=$SECONDS
runner --no-setup -t '*/rdma' --json "$tmp/host.json"
printf '# host run: %d s\n' "$((SECONDS - t0))"
[[ $RC == 0 || $RC == 4 ]] && jq -e "[.results[] | $RDMA] | length > 100" "$tmp/host.json" >/dev/null &&
	jq_none "$tmp/host.json" ".results[] | $RDMA | select(.result != \"skip\") | .id + \": \" + .result"
check "host: every RDMA case skips"
jq_none "$tmp/host.json" \
	".results[] | $RDMA | select(.reason | test(\"RDMA|ibverbs\") and test(\"modprobe|apt-get|PINCHECK_RDMA_DEVICE|--kernel\") | not) | .id + \": \" + .reason"
check "host: each skip reason names RDMA and what to do"

# --- guests with soft-RoCE ------------------------------------------------

# guest_run KERNEL TAG SUBSET...: boot KERNEL, run the subset.
guest_run() {
	local kernel=$1 tag=$2
	shift 2
	local t0=$SECONDS
	runner --kernel "$kernel" --vm-out "$tmp/$tag" --json "$tmp/$tag.json" "$@"
	[[ $RC == 0 || $RC == 1 ]] && [[ -s $tmp/$tag.json ]]
	check "$kernel: the guest ran the RDMA subset in $((SECONDS - t0)) s (exit 0 or 1, results kept)"
}

guest_checks() {
	local kernel=$1 json=$tmp/$2.json tap=$tmp/$2/tap.log

	jq -e "[.results[] | $RDMA] | length >= 20" "$json" >/dev/null &&
		jq_none "$json" ".results[] | $RDMA | select(.result == \"skip\" or .result == \"timeout\") | .id + \": \" + .result + \" \" + .reason"
	check "$kernel: every RDMA case executes (no skip, no timeout)"
	jq_none "$json" ".results[] | $RDMA | select(.result == \"fail\" and (.reason | length) < 20) | .id"
	check "$kernel: every RDMA failure comes with a report"
	jq_none "$json" ".results[] | select(.id | test(\"/pin-only/\")) | select(.result != \"pass\") | .id + \": \" + .reason"
	check "$kernel: the no-fork controls pass"
	jq -e '[.results[] | select(.id | test("/control-remap"))] | length > 0 and all(.result == "pass")' \
		"$json" >/dev/null &&
		grep -q '^# MISMATCH rdma_fork/control-remap-after-fork/anon/rdma: device read after the parent remapped' "$tap" &&
		grep -q '^# MISMATCH pin_fork/control-remap/anon/rdma: device read after MAP_FIXED remap' "$tap"
	check "$kernel: the remap controls report the lost write (the engine sees a loss)"
	jq -e '[.results[] | select(.id == "rdma_fork/fork-status/anon/rdma")] | .[0].result == "pass"' \
		"$json" >/dev/null && grep -q '^# ibv_is_fork_initialized(): IBV_FORK_' "$tap"
	check "$kernel: ibv_is_fork_initialized() reported and consistent"
}

for i in "${!KERNELS[@]}"; do
	k=${KERNELS[i]}
	tag=guest$i
	if ((i == 0)); then
		guest_run "$k" "$tag" "${FULL[@]}"
	else
		guest_run "$k" "$tag" "${SMALL[@]}"
	fi
	[[ -s $tmp/$tag.json ]] && guest_checks "$k" "$tag"
done

summary
((nfail == 0))
