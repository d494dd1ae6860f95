#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/dev/check.sh: what `make check` runs.
#   1. the Debian packages for building and checking (scripts/runner/deps.sh --check)
#   2. make -s
#   3. every unit binary in build/unit (harness binaries: exit 0 or 4)
#   4. unit/runner_test.sh (shell tests of run_tests.sh),
#      unit/robust_test.sh (a second run, foreign and runaway binaries,
#      SIGKILL, bad input), unit/outputs_test.sh (the reports against
#      their schemas), unit/mutants_test.sh (scripts/dev/mutants/run.sh
#      without a kernel build), unit/repeat_test.sh (scripts/dev/verdict-repeat.sh on
#      made-up results), unit/docs_test.sh (README <= 8 KiB, links and
#      the repository paths named in README and docs/ exist)
#   5. unit/vm_test.sh (--kernel and --matrix: boots a Debian kernel) and
#      unit/kernels_test.sh (Debian kernel resolution against a fake archive)
#   6. unit/vfio_vm_test.sh (VFIO: host skips, --vfio-device, the 6.1
#      zero-page failure must be detected, 6.12 passes)
#   7. unit/mm_vm_test.sh (the page-mover tests: two-node guest and host)
#   8. unit/rdma_vm_test.sh (the RDMA engine in soft-RoCE guests, skips here)
#   9. unit/odirect_vm_test.sh (odirect_fork: 6.1 loses the data, 6.12 not)
#  10. unit/scenarios_vm_test.sh (the S4, S13, S14, S16-S18, S20, S21 binaries
#      with rdma and vfio in a 6.12 guest, their controls catching the loss)
#  11. the host suite: ./run_tests.sh --json build/check-suite.json
# Ends with "N passed, N failed, N skipped" summed over 3-11; exit 0 only if
# nothing failed.  Never reads stdin (CI runs it with none).

set -u

ROOT=${BASH_SOURCE[0]%/*}/../..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=../..
cd -- "$ROOT" || exit 2

passed=0
failed=0
skipped=0
counts=
failures=$(mktemp "${TMPDIR:-/tmp}/pincheck-fails.XXXXXX") || exit 2

# mawk reads whole buffers unless interactive: stream the output live.
stream_awk=(awk)
command -v mawk >/dev/null && stream_awk=(mawk -W interactive)

say() { printf '# check: %s\n' "$*"; }

# finish: the failures again (a CI log keeps only its tail), then the
# summary line.
finish() {
	if ((failed)) && [[ -s $failures ]]; then
		say "what failed ($(wc -l <"$failures") lines, at most 40 shown):"
		head -n 40 -- "$failures"
	fi
	rm -f -- "$failures"
	[[ -n $counts ]] && rm -f -- "$counts"
	printf '%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
	((failed == 0))
	exit
}

# count_run OKCODES CMD...: run CMD with its output streamed, and add its
# counts: from its "N passed, N failed, N skipped" line when it prints one,
# else from its TAP result lines.  An exit status not in OKCODES (a space
# separated list) counts as one more failure if no failure was counted.
count_run() {
	local okcodes=" $1 " rc p f s
	shift
	# shellcheck disable=SC2016 # an awk program
	"$@" </dev/null 2>&1 | "${stream_awk[@]}" -v cf="$counts" -v ff="$failures" -v who="$1" '
		{ print; fflush() }
		/^ok / {
			if (toupper($0) ~ /# *SKIP/) s++; else p++
			next
		}
		/^not ok / {
			if (toupper($0) ~ /# *TODO/) p++
			else { f++; print who ": " $0 >> ff }
			next
		}
		/^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$/ {
			sp = $1 + 0; sf = $3 + 0; ss = $5 + 0; have = 1
		}
		END {
			if (have) print sp, sf, ss > cf
			else print p + 0, f + 0, s + 0 > cf
		}'
	rc=${PIPESTATUS[0]}
	read -r p f s <"$counts" || p=0 f=0 s=0
	if [[ $okcodes != *" $rc "* ]]; then
		printf '# check: %s exited with status %d\n' "$*" "$rc"
		printf '%s: exited with status %d\n' "$1" "$rc" >>"$failures"
		((f)) || f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
}

say "packages"
if ! scripts/runner/deps.sh --check </dev/null; then
	failed=$((failed + 1))
	finish
fi

say "build"
if ! make -s </dev/null; then
	say "build failed"
	failed=$((failed + 1))
	finish
fi
counts=$(mktemp "${TMPDIR:-/tmp}/pincheck-check.XXXXXX") || exit 2

for b in build/unit/*; do
	[[ -f $b && -x $b ]] || continue
	say "unit binary $b"
	count_run "0 4" "$b"
done

say "runner tests"
count_run 0 unit/runner_test.sh

say "runner robustness tests (lock, process tracking, limits, bad input)"
count_run 0 unit/robust_test.sh

say "reports against their schemas (JSON, KCIDB, JUnit, TAP; a killed guest)"
count_run 0 unit/outputs_test.sh

say "planted-bug script tests (scripts/dev/mutants/run.sh, no kernel build)"
count_run 0 unit/mutants_test.sh

say "verdict-repeat.sh (the comparison of repeated runs, on made-up results)"
count_run 0 unit/repeat_test.sh

say "docs: README size, links and the repository paths they name"
count_run 0 unit/docs_test.sh

say "VM tests (run_tests.sh --kernel, --matrix)"
count_run 0 unit/vm_test.sh

say "Debian kernels: fake archive (both packagings, bad input, offline), full cache fs, debian:sid boot"
count_run 0 unit/kernels_test.sh

say "VFIO tests (nvme in debian:6.1 and 6.12 guests, --vfio-device)"
count_run 0 unit/vfio_vm_test.sh

say "page-mover tests in a two-node guest and on the host"
count_run 0 unit/mm_vm_test.sh

say "RDMA VM tests (soft-RoCE guests, skips on the host)"
count_run 0 unit/rdma_vm_test.sh

say "odirect_fork in Debian 6.1 and 6.12 guests"
count_run 0 unit/odirect_vm_test.sh

say "scenario binaries S4, S13, S14, S16-S18, S20, S21 in a debian:6.12 guest"
count_run 0 unit/scenarios_vm_test.sh

say "host suite"
json=build/check-suite.json
rm -f -- "$json"
count_run 0 ./run_tests.sh --json "$json"
if ! jq -e '.format == "pincheck-results" and (.results | length) > 0' "$json" >/dev/null 2>&1 ||
   ! schemas/validate.py schemas/results.json "$json"; then
	say "$json is missing, has no results or does not match schemas/results.json"
	failed=$((failed + 1))
fi

finish
