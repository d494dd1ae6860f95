#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/dev/bench-odirect.sh [--runs N] [-t GLOB]... [--out DIR] [KERNEL...]
# Runs odirect_fork N times (default 1) per kernel (default: debian:6.1
# debian:6.12 host; "host" runs the binary here, without run_tests.sh's
# setup) and prints, per run and per kernel: cases, failed cases,
# iterations, how many had the request in flight across fork and the
# parent's write, iterations that lost data, and the time from a case's
# start to its first loss (the control-remap case, which must lose data
# everywhere, is left out of these numbers).  Root.  Guest logs go to --out (default a
# temporary directory, removed unless given).
# Environment: PINCHECK_ODF_HOLD, PINCHECK_ODF_ITERS,
# PINCHECK_ODF_DELAY_MS, PINCHECK_ODF_BUDGET_MS pass through to the
# binary (in the guest too: see docs/odirect_fork.md).

set -u

ROOT=${BASH_SOURCE[0]%/*}/../..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=../..
cd -- "$ROOT" || exit 2

runs=1
out=
globs=()
kernels=()
die() { printf 'bench-odirect: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--runs) [[ ${2-} =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number"
		runs=$2; shift ;;
	-t) [[ -n ${2-} ]] || die "-t needs a GLOB"; globs+=(-t "$2"); shift ;;
	--out) [[ -n ${2-} ]] || die "--out needs a directory"; out=$2; shift ;;
	-h|--help) sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown option '$1'" ;;
	*) kernels+=("$1") ;;
	esac
	shift
done
((${#kernels[@]})) || kernels=(debian:6.1 debian:6.12 host)
((${#globs[@]})) || globs=(-t 'odirect_fork/*')
((EUID == 0)) || die "needs root"
if [[ -z $out ]]; then
	out=$(mktemp -d "${TMPDIR:-/tmp}/pincheck-bench-odf.XXXXXX") || exit 2
	trap 'rm -rf -- "$out"' EXIT
fi
mkdir -p -- "$out" || die "cannot create $out"
make -s >/dev/null || die "build failed"

# summarize TAPLOG: one line of numbers
#   cases failed iters in_flight lost first_loss_max_ms case_ms
summarize() {
	awk '
		/^# odf-stats / {
			stats = $0
			next
		}
		/^(not )?ok [0-9]+ odirect_fork\/control-/ { stats = ""; next }
		stats != "" && /^(not )?ok [0-9]+ odirect_fork\// {
			n = split(stats, fld, " ")
			for (i = 3; i <= n; i++) { split(fld[i], kv, "="); v[kv[1]] = kv[2] }
			stats = ""
			iters += v["iters"]; fl += v["after_write"]
			lost += v["lost"] + v["lost_idle"]
			if (v["first_loss_ms"] > fmax) fmax = v["first_loss_ms"]
		}
		/^(not )?ok [0-9]+ odirect_fork\// {
			if ($0 ~ /\/kernel-log/) next
			cases++
			if ($0 ~ /^not ok/) failed++
			if ($0 ~ /# SKIP/) skipped++
			next
		}
		/^  duration_ms: / { ms += $2 }
		END { printf "%d %d %d %d %d %d %d %d\n", cases, failed, skipped,
			iters, fl, lost, fmax + 0, ms }' "$1"
}

# run_one KERNEL N: one run; a guest that produced no result at all (died
# while booting, or run_tests.sh refused to start) is tried twice more.
run_one() {
	local k=$1 i=$2 dir=$out/${1//[:\/]/-}-$2 _

	mkdir -p -- "$dir"
	for _ in 1 2 3; do
		if [[ $k == host ]]; then
			build/tests/odirect_fork "${globs[@]}" >"$dir/tap.log" 2>&1 </dev/null
		else
			./run_tests.sh --kernel "$k" --vm-out "$dir" "${globs[@]}" \
				>"$dir/run.log" 2>&1 </dev/null
		fi
		grep -q '^ok \|^not ok ' "$dir/tap.log" 2>/dev/null && break
		printf '# %s run %d: no result (%s); again\n' "$k" "$i" \
			"$(grep -m1 -h 'Bail out!\|run_tests.sh:' "$dir/run.log" 2>/dev/null | cut -c1-100)" >&2
		sleep 10
	done
	summarize "$dir/tap.log"
}

printf '%-12s %4s %6s %6s %5s %7s %17s %6s %14s %8s\n' kernel run cases failed skip iters \
	"in flight" lost "1st loss (ms)" "cases s"
for k in "${kernels[@]}"; do
	tot_runs=0 det=0 t_iters=0 t_fl=0 t_lost=0 t_fmax=0 t_failed=0
	for ((i = 1; i <= runs; i++)); do
		read -r cases failed skipped iters fl lost fmax ms < <(run_one "$k" "$i")
		pct=0
		((iters)) && pct=$((1000 * fl / iters))
		printf '%-12s %4d %6d %6d %5d %7d %9d (%3d.%d%%) %6d %14s %8d.%d\n' "$k" "$i" \
			"$cases" "$failed" "$skipped" "$iters" "$fl" $((pct / 10)) $((pct % 10)) \
			"$lost" "$( ((lost)) && echo "$fmax" || echo -)" $((ms / 1000)) $((ms % 1000 / 100))
		tot_runs=$((tot_runs + 1))
		((lost)) && det=$((det + 1))
		t_iters=$((t_iters + iters)) t_fl=$((t_fl + fl)) t_lost=$((t_lost + lost))
		t_failed=$((t_failed + failed))
		((fmax > t_fmax)) && t_fmax=$fmax
	done
	pct=0
	((t_iters)) && pct=$((1000 * t_fl / t_iters))
	printf '# %s: %d runs, data lost in %d/%d runs, %d failed cases in all, in flight %d/%d iterations (%d.%d%%), %d lost iterations, first loss at most %d ms after a case start\n' \
		"$k" "$tot_runs" "$det" "$tot_runs" "$t_failed" "$t_fl" "$t_iters" \
		$((pct / 10)) $((pct % 10)) "$t_lost" "$t_fmax"
done
