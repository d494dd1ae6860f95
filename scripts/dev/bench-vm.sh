#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/dev/bench-vm.sh [-n RUNS] [--against REV] [KERNEL...] [-- RUN-OPTIONS]:
# how long a --kernel run takes, per kernel (default debian:6.1 debian:6.12).
# Runs each once to fill the caches, then measures RUNS more runs (default
# 3) and prints the median of each figure, in seconds:
#   boot    QEMU start to the guest's first line (kernel, initramfs, 9p)
#   first   QEMU start to the first test result
#   suite   the guest's run_tests.sh, start to end (guest clock; over
#           --shards guests, the run's default on a multi-core machine:
#           the longest one)
#   total   the whole command on the host
#   over    total - suite: what the VM costs beyond the tests
# and then, per kernel, the seconds of case time per engine and per binary
# (from the run's results.json) and the device transfers of the VFIO
# engines (their "# vfio: N DMAs by DRIVER BDF, X ms each" lines): the
# DMA count and the median of the per-open means, each a median over RUNS.
# RUN-OPTIONS default to the whole suite; e.g. -- -t 'pin_fork/*', or
# -- --profile smp1 for one CPU, -- --shards 1 for one guest.
# --against REV: the same for commit REV, built in a temporary worktree,
# its runs taking turns with this tree's (REV, this, REV, this...), so the
# two columns share the machine's swings; a row per tree and kernel.

set -u
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd) || exit 2

die() {
	echo "bench-vm.sh: $*" >&2
	exit 2
}

runs=3
against=
while (($#)); do
	case $1 in
	-n) [[ ${2-} =~ ^[1-9][0-9]*$ ]] || die "-n needs a count"
	    runs=$2 ;;
	--against) [[ -n ${2-} ]] || die "--against needs a commit"
		   against=$2 ;;
	*) break ;;
	esac
	shift 2
done
kernels=()
while (($#)) && [[ $1 != -- ]]; do
	kernels+=("$1")
	shift
done
(($#)) && shift
((${#kernels[@]})) || kernels=(debian:6.1 debian:6.12)

# measure_once TREE KERNEL OUT: one run of TREE's suite; prints "boot
# first suite total".
measure_once() {
	local tree=$1 t0 t1 up end key val
	local -A t=()

	shift
	t0=$EPOCHREALTIME
	"$tree/run_tests.sh" --kernel "$1" --vm-out "$2" --no-build "${run_opts[@]}" \
		>"$2.log" 2>&1 </dev/null
	t1=$EPOCHREALTIME
	while read -r key val; do
		t[$key]=$val
	done <"$2/timing"
	read -r up end _ <"$2/uptime" 2>/dev/null || up=0 end=0
	awk -v b="${t[guest_start]}" -v f="${t[first_result]}" -v u="$up" \
	    -v e="$end" -v t0="$t0" -v t1="$t1" \
		'BEGIN { printf "%.2f %.2f %.2f %.2f\n", b, f, e - u, t1 - t0 }'
}

# split_figures OUT RUN: append "RUN kind key value" lines for the run just
# made in OUT to OUT.figures: seconds per engine and per binary, and the
# VFIO DMAs.
split_figures() {
	{
		jq -r --arg r "$2" '.results | (group_by(.engine)[] |
			"\($r) engine \(.[0].engine // "-") \((map(.duration_ms // 0) | add) / 1000)"),
			(group_by(.binary)[] |
			"\($r) binary \(.[0].binary // "-") \((map(.duration_ms // 0) | add) / 1000)")' \
			"$1/results.json"
		awk -v r="$2" '/^# vfio: [0-9]+ DMAs by / {
				ms = $0
				sub(/ ms each.*/, "", ms)
				sub(/.* /, "", ms)
				n += $3; drv = $6; print r, "dma-ms", drv, ms
			}
			END { if (n) print r, "dma-count", drv, n }' "$1/tap.log"
	} >>"$1.figures" 2>/dev/null
}

# median: of each column of the lines read.
median() {
	sort -n -k"$1" | awk -v c="$1" '{ v[NR] = $c }
		END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# print_figures KERNEL FIGURES: one line per kind, each key's median (the
# per-open DMA means: their median over every open of every run).
print_figures() {
	local kind key line

	while read -r kind; do
		printf -v line '%-24s %-9s' "$1" "$kind"
		while read -r key; do
			line+=" $key $(awk -v k="$kind" -v y="$key" '$2 == k && $3 == y { print $4 }' "$2" |
				median 1)"
		done < <(awk -v k="$kind" '$2 == k { print $3 }' "$2" | sort -u)
		printf '%s\n' "$line"
	done < <(awk '{ print $2 }' "$2" | sort -u)
}

# build_against REV: REV's tree, built, in a temporary worktree ($old_tree),
# removed on exit.
build_against() {
	old_tree=$(mktemp -d "${TMPDIR:-/tmp}/pincheck-bench.XXXXXX") || die "mktemp failed"
	trap 'git -C "$ROOT" worktree remove --force "$old_tree" >/dev/null 2>&1; rm -rf -- "$old_tree"' EXIT
	git -C "$ROOT" worktree add -q --detach "$old_tree" "$1" >/dev/null 2>&1 ||
		die "cannot check out $1 (git worktree add)"
	make -C "$old_tree" -s -j"$(nproc)" >"$old_tree.build.log" 2>&1 ||
		die "cannot build $1 (see $old_tree.build.log)"
	rm -f -- "$old_tree.build.log"
}

# row KERNEL LABEL ROWS OUT: the medians of ROWS as one line of the table.
row() {
	awk -v k="$1" -v l="$2" -v b="$(median 1 <<<"$3")" -v f="$(median 2 <<<"$3")" \
	    -v s="$(median 3 <<<"$3")" -v t="$(median 4 <<<"$3")" \
	    -v r="$(tail -n 1 "$4.log") (median of $runs)" \
		'BEGIN { printf "%-14s %-9s %6.2f %6.2f %6.2f %6.2f %6.2f  %s\n",
			 k, l, b, f, s, t, t - s, r }'
}

run_opts=("$@")
trees=("$ROOT")
labels=(this)
if [[ -n $against ]]; then
	build_against "$against"
	trees=("$old_tree" "$ROOT")
	labels=("$(git -C "$ROOT" rev-parse --short "$against")" this)
fi
printf '%-14s %-9s %6s %6s %6s %6s %6s  %s\n' kernel tree boot first suite total over result
for k in "${kernels[@]}"; do
	rows=()
	for j in "${!trees[@]}"; do
		out=$ROOT/build/bench/${k//:/-}-${labels[j]}
		# the first run fills the caches (and builds this tree)
		"${trees[j]}/run_tests.sh" --kernel "$k" --vm-out "$out" \
			"${run_opts[@]}" >/dev/null 2>&1 </dev/null
		rm -f -- "$out.figures"
		rows[j]=
	done
	for ((i = 0; i < runs; i++)); do
		for j in "${!trees[@]}"; do
			out=$ROOT/build/bench/${k//:/-}-${labels[j]}
			rows[j]+=$(measure_once "${trees[j]}" "$k" "$out")$'\n'
			split_figures "$out" "$i"
		done
	done
	for j in "${!trees[@]}"; do
		row "$k" "${labels[j]}" "${rows[j]%$'\n'}" "$ROOT/build/bench/${k//:/-}-${labels[j]}"
	done
done
printf '\nper kernel and tree, medians of the runs: seconds of case time per engine and\n'
printf 'per binary; VFIO transfers: DMAs per run and ms per DMA (the median of the\n'
printf 'per-open means)\n'
for k in "${kernels[@]}"; do
	for j in "${!trees[@]}"; do
		out=$ROOT/build/bench/${k//:/-}-${labels[j]}
		[[ -s $out.figures ]] && print_figures "$k ${labels[j]}" "$out.figures"
	done
done
