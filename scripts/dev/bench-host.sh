#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/dev/bench-host.sh [-n RUNS] [-- RUN-OPTIONS]: how long the suite takes
# on the running kernel (root).  Runs it once to build and warm up, then
# RUNS more times (default 3) and prints, as medians in seconds: the wall
# time of the whole run, and per binary the sum of its cases' durations
# (from --json), slowest first; then the counts of the last run, with the
# skips for "no event".  The target is the whole run within 60 s.

set -u
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd) || exit 2

runs=3
if [[ ${1-} == -n ]]; then
	[[ ${2-} =~ ^[1-9][0-9]*$ ]] || { echo "bench-host.sh: -n needs a count" >&2; exit 2; }
	runs=$2
	shift 2
fi
[[ ${1-} == -- ]] && shift
command -v jq >/dev/null || { echo "bench-host.sh: needs jq (apt-get install jq)" >&2; exit 2; }
out=$ROOT/build/bench/host
mkdir -p -- "$out" || exit 2

"$ROOT/run_tests.sh" "$@" >"$out/warm.log" 2>&1 </dev/null

# median: of the numbers read, one a line.
median() {
	sort -n | awk '{ v[NR] = $1 }
		END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

for ((i = 0; i < runs; i++)); do
	t0=$EPOCHREALTIME
	"$ROOT/run_tests.sh" --no-build --json "$out/run$i.json" "$@" \
		>"$out/run$i.log" 2>&1 </dev/null
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f\n", b - a }' >>"$out/wall"
	jq -r '.results | group_by(.id | split("/")[0])[] |
		"\(.[0].id | split("/")[0]) \((map(.duration_ms // 0) | add) / 1000)"' \
		"$out/run$i.json" >>"$out/binaries"
done

printf 'host suite (%s), median of %d runs: %s s wall\n' "$(uname -r)" "$runs" \
	"$(tail -n "$runs" "$out/wall" | median)"
for b in $(tail -n +1 "$out/binaries" | awk '{ print $1 }' | sort -u); do
	printf '%s %s\n' "$(awk -v b="$b" '$1 == b { print $2 }' "$out/binaries" | median)" "$b"
done | sort -rn | awk '{ printf "  %-16s %6.2f s\n", $2, $1 }'
last=$out/run$((runs - 1)).log
grep -E '^# [0-9]+ of the skips: no event' "$last"
tail -n 1 "$last"
rm -f -- "$out/wall" "$out/binaries"
