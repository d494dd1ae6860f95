#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/bench-vm.sh [KERNEL...] [-- RUN-OPTIONS]: how long a --kernel run
# takes, per kernel (default debian:6.1 debian:6.12).  Runs each once to fill
# the caches, then measures a second run and prints, in seconds:
#   boot    QEMU start to the guest's first line (kernel, initramfs, 9p)
#   first   QEMU start to the first test result
#   suite   the guest's run_tests.sh, start to end (guest clock)
#   total   the whole command on the host
#   over    total - suite: what the VM costs beyond the tests
# RUN-OPTIONS default to the whole suite; e.g. -- -t 'pin_fork/*'.

set -u
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd) || exit 2

kernels=()
while (($#)) && [[ $1 != -- ]]; do
	kernels+=("$1")
	shift
done
(($#)) && shift
((${#kernels[@]})) || kernels=(debian:6.1 debian:6.12)

printf '%-14s %6s %6s %6s %6s %6s  %s\n' kernel boot first suite total over result
for k in "${kernels[@]}"; do
	out=$ROOT/build/bench/${k//:/-}
	"$ROOT/run_tests.sh" --kernel "$k" --vm-out "$out" "$@" >/dev/null 2>&1 </dev/null
	t0=$EPOCHREALTIME
	"$ROOT/run_tests.sh" --kernel "$k" --vm-out "$out" --no-build "$@" \
		>"$out.log" 2>&1 </dev/null
	t1=$EPOCHREALTIME
	declare -A t=()
	while read -r key val; do
		t[$key]=$val
	done <"$out/timing"
	read -r up end _ <"$out/uptime" 2>/dev/null || up=0 end=0
	awk -v k="$k" -v b="${t[guest_start]}" -v f="${t[first_result]}" \
	    -v s="$(awk -v a="$up" -v e="$end" 'BEGIN { print e - a }')" \
	    -v t0="$t0" -v t1="$t1" -v r="$(tail -n 1 "$out.log")" \
		'BEGIN { printf "%-14s %6.2f %6.2f %6.2f %6.2f %6.2f  %s\n",
			 k, b, f, s, t1 - t0, t1 - t0 - s, r }'
done
