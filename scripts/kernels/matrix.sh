#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/kernels/matrix.sh: `run_tests.sh --matrix [FILE]`.  Called by run_tests.sh:
#
#   matrix.sh [--file FILE] [--out DIR] [--full] [--profile P]
#             [--vm-timeout S] [--jobs N] [--shards N] -- RUN-OPTIONS...
#   matrix.sh --merge [--out DIR] [--full] -- DIR...
#
# Runs run_tests.sh once per kernel listed in FILE (default configs/matrix;
# one --kernel SPEC a line, "host" for the running kernel) with RUN-OPTIONS,
# shows progress on stderr, and prints one table: rows are scenario groups
# (<binary>/<scenario>) or, with --full, case ids; columns are kernels;
# cells pass / FAIL / skip / timeout / xfail ("-": no such case there);
# each column is titled with the kernel's release and the run's time.
# Writes per kernel SPEC.json, SPEC.xml, SPEC.log and SPEC.run (spec,
# seconds, exit status), and the table as matrix.md and matrix.html, into
# --out (default build/matrix).  --merge builds the same tables from the
# SPEC.json (and SPEC.run) files saved in the DIRs (one CI job per kernel).
# Up to --jobs guests run at once (default: what the cores and the free
# memory allow, see default_jobs); the host column runs last, alone, so
# its timing-sensitive races do not share the cores with guests.
# Exit 0 all kernels passed, 1 a failure, 2 a kernel could not be run.

set -u

PROG=run_tests.sh
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd) || exit 2

warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { warn "$@"; exit 2; }

opt_file=$ROOT/configs/matrix
opt_out=$ROOT/build/matrix
opt_full=0
opt_merge=0
opt_jobs=
opt_profile=default
vm_args=()
run_args=()

while (($#)); do
	case $1 in
	--file) opt_file=$2; shift ;;
	--out) opt_out=$2; shift ;;
	--full) opt_full=1 ;;
	--merge) opt_merge=1 ;;
	--jobs) opt_jobs=$2; shift ;;
	--profile) opt_profile=$2; vm_args+=("$1" "$2"); shift ;;
	--vm-timeout|--shards) vm_args+=("$1" "$2"); shift ;;
	--) shift; run_args=("$@"); break ;;
	*) die "matrix.sh: unknown option '$1'" ;;
	esac
	shift
done

# read_kernels: the specs of --file into kernels[].
read_kernels() {
	local spec

	[[ -r $opt_file ]] || die "no kernel list '$opt_file'"
	kernels=()
	while read -r spec _; do
		[[ -z $spec || $spec == \#* ]] && continue
		kernels+=("$spec")
	done <"$opt_file"
	((${#kernels[@]})) || die "$opt_file lists no kernel"
}

# label SPEC: a file name for the kernel ("debian-6.1", "bzImage").
label() {
	local l=${1%/}

	l=${l##*/}
	REPLY=${l//:/-}
}

# progress NAME: count result lines of a run's TAP on stdin, say so on
# stderr every 250 results.
progress() {
	awk -v name="$1" '
		/^(not )?ok / {
			n++
			if (/^not ok / && !/# *TODO/) f++
			if (n % 250 == 0) {
				printf "#   %s: %d results, %d failed\n", name, n, f > "/dev/stderr"
				fflush("/dev/stderr")
			}
		}
		{ print }'
}

# run_kernel I SPEC: one run; its JSON in $opt_out/LABEL.json.
run_kernel() {
	local spec=$2 t0=$SECONDS rc summary
	local -a cmd=("$ROOT/run_tests.sh" --no-build)

	label "$spec"
	local name=$REPLY
	[[ $spec == host ]] || cmd+=(--kernel "$spec" "${vm_args[@]}")
	cmd+=(--json "$opt_out/$name.json" --junit "$opt_out/$name.xml" "${run_args[@]}")
	printf '[%d/%d] %s: running (log: %s)\n' "$1" "${#kernels[@]}" "$spec" \
		"$opt_out/$name.log" >&2
	rm -f -- "$opt_out/$name.json" "$opt_out/$name.run"
	"${cmd[@]}" </dev/null 2>&1 | progress "$spec" >"$opt_out/$name.log"
	rc=${PIPESTATUS[0]}
	printf '%s\t%d\t%d\n' "$spec" $((SECONDS - t0)) "$rc" >"$opt_out/$name.run"
	summary=$(tail -n 1 "$opt_out/$name.log")
	[[ $summary =~ ^[0-9]+\ passed ]] || summary=$(grep -m1 "^$PROG:" "$opt_out/$name.log")
	printf '[%d/%d] %s: %s (exit %d, %d s)\n' "$1" "${#kernels[@]}" "$spec" \
		"$summary" "$rc" $((SECONDS - t0)) >&2
	if [[ ! -s $opt_out/$name.json ]]; then
		jq -n --arg spec "$spec" --arg why "$summary" '{format: "pincheck-results",
			version: 2, run: {kernel_spec: $spec, complete: false,
			incomplete_reason: $why}, results: [{id: "run/run", binary: "run",
			scenario: "run", backing: null, engine: null, result: "error",
			reason: $why, duration_ms: 0, end_time: null, known_fix: null,
			diagnostic: null}]}' >"$opt_out/$name.json"
	fi
	return "$rc"
}

# results_of FILE COLUMN: a saved run's results (the results JSON,
# pincheck-results v2, or the bare array of older runs) as the table's
# input lines, scripts/kernels/matrix-tsv.jq's.
results_of() {
	jq 'if type == "array" then {results: .} else . end' -- "$1" |
		jq -r --arg k "$2" -f "$ROOT/scripts/kernels/matrix-tsv.jq"
}

# release_of FILE: the tested kernel's release a saved run names.
release_of() {
	jq -r '(if type == "array" then {results: .} else . end) |
		.run.kernel_release // (.results | map(.kernel // empty) | first) // ""' -- "$1"
}

# column_title JSON: "SPEC (RELEASE, N s)" of a saved run, in REPLY; the
# spec and the time come from the SPEC.run beside it.
column_title() {
	local spec secs release

	spec=${1##*/}
	spec=${spec%.json}
	secs=
	[[ -r ${1%.json}.run ]] && IFS=$'\t' read -r spec secs _ <"${1%.json}.run"
	release=$(release_of "$1" 2>/dev/null)
	REPLY="$spec (${release:-release unknown}${secs:+, $secs s})"
}

# make_table JSON...: the table of these saved runs, one column each, on
# stdout and as matrix.md and matrix.html in --out.
make_table() {
	local f label tsv=$opt_out/results.tsv headers='' sep=''
	local -a labels=()

	: >"$tsv" || die "cannot write $tsv"
	for f in "$@"; do
		label=${f##*/}
		label=${label%.json}
		labels+=("$label")
		column_title "$f"
		headers+=$sep$REPLY sep=$'\t'
		results_of "$f" "$label" 2>/dev/null >>"$tsv"
	done
	PC_FULL=$opt_full PC_KERNELS="${labels[*]}" PC_HEADERS=$headers \
	PC_MD=$opt_out/matrix.md PC_HTML=$opt_out/matrix.html \
		awk -f "$ROOT/scripts/kernels/matrix-table.awk" "$tsv"
	PC_FULL=binary PC_KERNELS="${labels[*]}" PC_HEADERS=$headers \
	PC_MD=$opt_out/matrix-binaries.md PC_HTML=/dev/null \
		awk -f "$ROOT/scripts/kernels/matrix-table.awk" "$tsv" >/dev/null
	printf '%s: table in %s/matrix.md and matrix.html (per binary: matrix-binaries.md)\n' \
		"$PROG" "$opt_out" >&2
}

# merge DIR...: the table of the runs saved in the DIRs (their *.json
# results), columns in version order, the host last.
merge() {
	local d f
	local -a files=()

	(($#)) || die "--matrix-merge needs a results directory"
	for d in "$@"; do
		[[ -d $d ]] || die "--matrix-merge: no directory '$d'"
		for f in "$d"/*.json; do
			[[ -e $f ]] || continue
			jq -e 'type == "array" or (type == "object" and has("results"))' \
				-- "$f" >/dev/null 2>&1 ||
				die "--matrix-merge: $f is not a pincheck results file"
			files+=("$f")
		done
	done
	((${#files[@]})) || die "--matrix-merge: no results (*.json) in $*"
	mapfile -t files < <(printf '%s\n' "${files[@]}" |
		awk -F/ '{ print ($NF == "host.json" ? 1 : 0) "\t" $NF "\t" $0 }' |
		sort -t $'\t' -k1,1n -k2,2V | cut -f3)
	make_table "${files[@]}"
}

# guest_memory_mb: the RAM of one guest of --profile (its memory_mb key,
# followed through base=), 2048 if the profile does not say.
guest_memory_mb() {
	local conf=$ROOT/configs/vm/$opt_profile.conf mb='' base='' i

	for i in 1 2 3; do
		[[ -r $conf ]] || break
		mb=$(sed -n 's/^memory_mb=\([0-9][0-9]*\)$/\1/p' -- "$conf" | tail -n 1)
		[[ -n $mb ]] && break
		base=$(sed -n 's/^base=\([A-Za-z0-9_-]*\)$/\1/p' -- "$conf" | tail -n 1)
		[[ -n $base ]] || break
		conf=$ROOT/configs/vm/$base.conf
	done
	printf '%s\n' "${mb:-2048}"
}

# default_jobs: guests at once: one per core, as many as the available
# memory holds (a guest's RAM plus 512 MiB for QEMU and its caches), at
# least one.
default_jobs() {
	local cores mem_kb by_mem jobs

	cores=$(nproc 2>/dev/null) || cores=1
	mem_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
	by_mem=$(((${mem_kb:-0} / 1024) / ($(guest_memory_mb) + 512)))
	jobs=$((cores < by_mem ? cores : by_mem))
	printf '%d\n' $((jobs > 0 ? jobs : 1))
}

# run_all: every kernel of the list: the guests up to --jobs at a time,
# then the host alone.  Each run's exit status lands in its .run file.
# stop_runs STATUS: interrupted: every kernel's run and what it started
# (its run_tests.sh/vm.sh stops its guests on SIGTERM), then exit.
# shellcheck disable=SC2317 # reached from traps
stop_runs() {
	local p

	trap '' INT TERM
	for p in $(jobs -p); do
		signal_tree "$p"
	done
	wait
	exit "$1"
}

# signal_tree PID: SIGTERM to PID and every process below it (a job's
# subshell alone would leave the kernel's run orphaned and going).
# shellcheck disable=SC2317 # reached from traps
signal_tree() {
	local c

	for c in $(pgrep -P "$1"); do
		signal_tree "$c"
	done
	kill -TERM "$1" 2>/dev/null
}

run_all() {
	local i running=0 host=

	trap 'stop_runs 143' TERM
	trap 'stop_runs 130' INT
	for i in "${!kernels[@]}"; do
		if [[ ${kernels[i]} == host ]]; then
			host=$i
			continue
		fi
		if ((running >= opt_jobs)); then
			wait -n
			running=$((running - 1))
		fi
		run_kernel $((i + 1)) "${kernels[i]}" &
		running=$((running + 1))
	done
	wait
	[[ -z $host ]] || run_kernel $((host + 1)) host
	trap - TERM INT
}

# matrix_status: 0 every kernel passed (or skipped all), 1 a failure,
# 2 a kernel could not be run (or left no exit status).
matrix_status() {
	local spec status=0 rc

	for spec in "${kernels[@]}"; do
		label "$spec"
		rc=2
		[[ -r $opt_out/$REPLY.run ]] && IFS=$'\t' read -r _ _ rc <"$opt_out/$REPLY.run"
		case $rc in
		0|4) ;;
		1) ((status)) || status=1 ;;
		*) status=2 ;;
		esac
	done
	printf '%d\n' "$status"
}

case $opt_jobs in
'') ;;
*[!0-9]* | 0) die "--jobs wants a number of guests at once (1 or more), not '$opt_jobs'" ;;
esac
mkdir -p -- "$opt_out" || die "cannot create $opt_out"
if ((opt_merge)); then
	merge "${run_args[@]}"
	exit 0
fi
read_kernels

"$ROOT/scripts/runner/deps.sh" --check >/dev/null || exit 2
[[ -z $opt_jobs ]] && opt_jobs=$(default_jobs)
t0=$SECONDS
run_all
status=$(matrix_status)
printf '%s: %d kernels in %d s (%d at a time)\n' "$PROG" "${#kernels[@]}" \
	$((SECONDS - t0)) "$opt_jobs" >&2

files=()
for spec in "${kernels[@]}"; do
	label "$spec"
	files+=("$opt_out/$REPLY.json")
done
make_table "${files[@]}"
exit "$status"
