#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/dev/verdict-repeat.sh: does the suite give the same verdict every run?
#
#   scripts/dev/verdict-repeat.sh [-n RUNS] [--kernel SPEC] [--out DIR]
#                             [--via CMD] [-- RUN_TESTS-OPTIONS]
#   scripts/dev/verdict-repeat.sh --compare DIR
#
# Runs ./run_tests.sh RUNS times (default 20 on the host, 5 with --kernel),
# keeps each run's --json in DIR (default build/repeat/<host|SPEC>), then
# prints per case the verdicts seen when they differ, the number of cases
# that flipped, and what changed in /var/tmp and $PINCHECK_TMPDIR between
# before the first run and after the last.  Each host run is wrapped in
# `flock /run/lock/pincheck-host.lock` (taken per run, so others get the
# host in between); --via replaces that wrapper ("" for none; with
# --kernel the default is none).  --compare only compares the run*.json
# already in DIR.  Exit: 0 identical verdicts and nothing left behind,
# 1 a flip, a missing result or a leftover file, 2 bad usage.

set -u
PROG=verdict-repeat.sh
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd) || exit 2

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 2; }

runs=
kernel=
out=
compare_only=
via_set=
via=
run_args=()

while (($#)); do
	case $1 in
	-n) [[ ${2-} =~ ^[1-9][0-9]{0,3}$ ]] || die "-n needs a count (1-9999)"
	    runs=$2; shift 2 ;;
	--kernel) [[ -n ${2-} ]] || die "--kernel needs a SPEC"
	    kernel=$2; shift 2 ;;
	--out) [[ -n ${2-} ]] || die "--out needs a directory"
	    out=$2; shift 2 ;;
	--via) (($# >= 2)) || die "--via needs a command (\"\" for none)"
	    via=$2; via_set=1; shift 2 ;;
	--compare) [[ -n ${2-} ]] || die "--compare needs a directory"
	    out=$2; compare_only=1; shift 2 ;;
	-h|--help) sed -n '4,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	--) shift; run_args=("$@"); break ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done

command -v jq >/dev/null || die "needs jq (apt-get install jq)"
if [[ -n $kernel ]]; then
	runs=${runs:-5}
	[[ -n $via_set ]] || via=
	label=${kernel//[^A-Za-z0-9._-]/_}
else
	runs=${runs:-20}
	[[ -n $via_set ]] || via="flock /run/lock/pincheck-host.lock"
	label=host
fi
out=${out:-$ROOT/build/repeat/$label}

# results_of FILE: "id<TAB>verdict" lines of one run's --json.  The only
# place that knows the JSON's shape.
results_of() {
	jq -r '(if type == "array" then . else (.results // .tests // []) end)[]
		| "\(.id)\t\(.result)"' "$1"
}

# tmp_dirs: the directories a run must leave as it found them.
tmp_dirs() {
	printf '%s\n' /var/tmp
	[[ -n ${PINCHECK_TMPDIR-} && ${PINCHECK_TMPDIR%/} != /var/tmp ]] &&
		printf '%s\n' "$PINCHECK_TMPDIR"
}

# snapshot FILE: every entry of the tmp dirs (name, type, size), sorted.
snapshot() {
	local d
	while read -r d; do
		[[ -d $d ]] || continue
		find "$d" -mindepth 1 -maxdepth 1 -printf "$d/%f %y %s\n" 2>/dev/null
	done < <(tmp_dirs) | sort >"$1"
}

# compare DIR: print the comparison of DIR/run*.json; status 1 on a flip.
compare() {
	local dir=$1 files=() f
	for f in "$dir"/run*.json; do
		[[ -s $f ]] && files+=("$f")
	done
	((${#files[@]})) || { printf '%s: no run*.json in %s\n' "$PROG" "$dir"; return 1; }
	for f in "${files[@]}"; do
		results_of "$f" | awk -v run="${f##*/}" -F '\t' '{ print $1 "\t" $2 "\t" run }'
	done | awk -F '\t' -v nruns="${#files[@]}" -v order="pass fail xfail timeout skip" '
		{ key = $1 SUBSEP $2
		  if (!(key in seen)) { kinds[$1] = kinds[$1] " " $2 }
		  seen[key]++; runs_of[$1]++; ids[$1] = 1 }
		END {
			for (id in ids) {
				n++
				nk = split(order " " substr(kinds[id], 2), v, " ")
				line = ""
				for (k = 1; k <= nk; k++) {
					if (!(id SUBSEP v[k] in seen) || v[k] in shown)
						continue
					shown[v[k]] = 1
					line = line " " v[k] "=" seen[id SUBSEP v[k]]
				}
				split("", shown)
				if (index(substr(kinds[id], 2), " ") || runs_of[id] != nruns) {
					flips++
					if (runs_of[id] != nruns)
						line = line " missing=" nruns - runs_of[id]
					print "flip " id ":" line | "sort"
				}
			}
			close("sort")
			printf "%d runs, %d cases, %d with the same verdict every run, %d flipped\n",
				nruns, n, n - flips, flips
			exit flips > 0
		}'
}

# leftovers BEFORE AFTER: print what appeared or vanished; status 1 if any.
leftovers() {
	local added removed
	mapfile -t added < <(comm -13 <(cut -d' ' -f1 "$1") <(cut -d' ' -f1 "$2"))
	mapfile -t removed < <(comm -23 <(cut -d' ' -f1 "$1") <(cut -d' ' -f1 "$2"))
	printf 'temporary directories (%s): %s entries before, %s after\n' \
		"$(tmp_dirs | paste -sd' ')" "$(wc -l <"$1")" "$(wc -l <"$2")"
	((${#added[@]})) && printf 'new: %s\n' "${added[@]}"
	((${#removed[@]})) && printf 'gone: %s\n' "${removed[@]}"
	((${#added[@]} + ${#removed[@]} == 0))
}

if [[ -n $compare_only ]]; then
	compare "$out"
	exit
fi

mkdir -p -- "$out" || die "cannot create $out"
rm -f -- "$out"/run*.json "$out"/run*.log
snapshot "$out/tmp.before"
read -ra wrap <<<"$via"
for ((i = 1; i <= runs; i++)); do
	t0=$SECONDS
	cmd=("$ROOT/run_tests.sh" --json "$out/run$i.json")
	[[ -n $kernel ]] && cmd+=(--kernel "$kernel")
	((i > 1)) && [[ -z $kernel ]] && cmd+=(--no-build)
	"${wrap[@]}" "${cmd[@]}" "${run_args[@]}" >"$out/run$i.log" 2>&1 </dev/null
	rc=$?
	printf 'run %d/%d: exit %d, %d s: %s\n' "$i" "$runs" "$rc" $((SECONDS - t0)) \
		"$(tail -n 1 "$out/run$i.log")"
done
snapshot "$out/tmp.after"
status=0
compare "$out" || status=1
leftovers "$out/tmp.before" "$out/tmp.after" || status=1
exit "$status"
