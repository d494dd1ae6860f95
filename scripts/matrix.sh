#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/matrix.sh: `run_tests.sh --matrix [FILE]`.  Called by run_tests.sh:
#
#   matrix.sh [--file FILE] [--out DIR] [--full] [--profile P]
#             [--vm-timeout S] -- RUN-OPTIONS...
#
# Runs run_tests.sh once per kernel listed in FILE (default configs/matrix;
# one --kernel SPEC a line, "host" for the running kernel) with RUN-OPTIONS,
# shows progress on stderr, and prints one table: rows are scenario groups
# (<binary>/<scenario>) or, with --full, case ids; columns are kernels;
# cells pass / FAIL / skip / timeout / xfail ("-": no such case there).
# Writes per kernel SPEC.json, SPEC.xml and SPEC.log, and the table as
# matrix.md and matrix.html, into --out (default build/matrix).
# Exit 0 all kernels passed, 1 a failure, 2 a kernel could not be run.

set -u

PROG=run_tests.sh
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd) || exit 2

warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { warn "$@"; exit 2; }

opt_file=$ROOT/configs/matrix
opt_out=$ROOT/build/matrix
opt_full=0
vm_args=()
run_args=()

while (($#)); do
	case $1 in
	--file) opt_file=$2; shift ;;
	--out) opt_out=$2; shift ;;
	--full) opt_full=1 ;;
	--profile|--vm-timeout) vm_args+=("$1" "$2"); shift ;;
	--) shift; run_args=("$@"); break ;;
	*) die "matrix.sh: unknown option '$1'" ;;
	esac
	shift
done

[[ -r $opt_file ]] || die "no kernel list '$opt_file'"
kernels=()
while read -r spec _; do
	[[ -z $spec || $spec == \#* ]] && continue
	kernels+=("$spec")
done <"$opt_file"
((${#kernels[@]})) || die "$opt_file lists no kernel"
mkdir -p -- "$opt_out" || die "cannot create $opt_out"

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
	rm -f -- "$opt_out/$name.json"
	"${cmd[@]}" </dev/null 2>&1 | progress "$spec" >"$opt_out/$name.log"
	rc=${PIPESTATUS[0]}
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

status=0
"$ROOT/scripts/deps.sh" --check >/dev/null || exit 2
for i in "${!kernels[@]}"; do
	run_kernel $((i + 1)) "${kernels[i]}"
	case $? in
	0|4) ;;
	1) ((status)) || status=1 ;;
	*) status=2 ;;
	esac
done

# The table: scripts/matrix-tsv.jq's lines for every kernel, then awk.
tsv=$opt_out/results.tsv
: >"$tsv"
labels=()
for spec in "${kernels[@]}"; do
	label "$spec"
	labels+=("$spec")
	jq -r --arg k "$spec" -f "$ROOT/scripts/matrix-tsv.jq" \
		"$opt_out/$REPLY.json" >>"$tsv" 2>/dev/null
done

PC_FULL=$opt_full PC_KERNELS="${labels[*]}" PC_MD=$opt_out/matrix.md \
PC_HTML=$opt_out/matrix.html awk -f "$ROOT/scripts/matrix-table.awk" "$tsv"
printf '%s: table in %s/matrix.md and matrix.html\n' "$PROG" "$opt_out" >&2
exit "$status"
