#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/scenarios_vm_test.sh: the scenario binaries added for S4, S13, S14,
# S16, S17/S18, S20 and S21 in one debian:6.12 guest (root), where the rdma
# and vfio engines exist: no case fails, every binary executes its cases
# with the engines that can see its event (no skip for a missing engine),
# and every control catches its loss (a control passes only by reporting
# the mismatch, so "pass" with its detection line in the TAP is the proof).
# Prints "ok N - ..." and ends with "N passed, N failed, N skipped".
# PINCHECK_SCEN_KERNEL: the kernel to boot (default debian:6.12).

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
RUN=./run_tests.sh
KERNEL=${PINCHECK_SCEN_KERNEL:-debian:6.12}

# "binary engine..." lines: each engine must pass a case of the binary
NEED=("cow_baseline io_uring rdma vfio" "maybe_pinned io_uring rdma vfio"
      "uffd_pinned io_uring rdma vfio" "foll_force procmem rdma vfio"
      "file_pin io_uring odirect rdma vfio" "gupfast_race io_uring rdma vmsplice"
      "memcg_fork io_uring rdma vfio")
SUBSET=(-t 'cow_baseline/*/anon/*' -t 'cow_baseline/control-*/thp-pmd/*'
	-t 'maybe_pinned/*/anon/*' -t 'uffd_pinned/*/anon/*'
	-t 'foll_force/*' -t 'file_pin/*' -t 'gupfast_race/*/anon/*'
	-t 'memcg_fork/*/anon/*')

# shellcheck source=unit/vmtest-lib.sh disable=SC2034 # RUN is vmtest-lib's
. "${BASH_SOURCE[0]%/*}/vmtest-lib.sh"
vt_init scenarios-vm-test

# jq_none JSON FILTER: the lines FILTER prints go to $tmp/why; true if none.
jq_none() {
	jq -r "$2" "$1" >"$tmp/why" 2>&1 && [[ ! -s $tmp/why ]]
}

if ((EUID != 0)); then
	skip "scenario binaries in a guest" "need root"
	summary
	exit 0
fi
: >"$tmp/why"

t0=$SECONDS
runner --kernel "$KERNEL" --vm-out "$tmp/vm" --json "$tmp/r.json" "${SUBSET[@]}"
[[ $RC == 0 || $RC == 1 ]] && [[ -s $tmp/r.json ]]
check "$KERNEL: the guest ran the new scenario binaries in $((SECONDS - t0)) s"
json=$tmp/r.json
tap=$tmp/vm/tap.log
[[ -s $json ]] || { summary; exit 1; }

jq_none "$json" '.results[] | select(.result == "fail" or .result == "timeout") | .id + ": " + .reason'
check "$KERNEL: no case fails"

for need in "${NEED[@]}"; do
	read -r bin engines <<<"$need"
	for eng in $engines; do
		jq -e --arg b "$bin" --arg e "$eng" \
			'[.results[] | select((.id | startswith($b + "/")) and (.id | endswith("/" + $e)) and .result == "pass")] | length > 0' \
			"$json" >/dev/null
		check "$KERNEL: $bin passes cases with the $eng engine"
	done
	jq -e --arg b "$bin" \
		'[.results[] | select((.id | startswith($b + "/control-")) and .result == "pass")] | length > 0' \
		"$json" >/dev/null
	check "$KERNEL: $bin has a control that caught its loss"
done

grep -q '^# MISMATCH uffd_pinned/control-mremap-fresh/anon/vfio' "$tap" &&
	grep -q '^# MISMATCH gupfast_race/control-pin-vs-remap-lost/anon/rdma' "$tap"
check "$KERNEL: the controls' mismatch reports are in the TAP (vfio, rdma)"

summary
((nfail == 0))
