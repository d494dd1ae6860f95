#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# run_tests.sh: build pincheck if needed, prepare the system (THP, hugetlb,
# swap), run every test binary and print one TAP 13 stream ending with the
# line "N passed, N failed, N skipped".  See --help and README.
#
# Few processes per binary on purpose (over 9p in a VM each exec costs
# 0.1-0.3 s): `BIN -l`, `timeout BIN`, one awk merging its TAP, one dmesg.

set -u

PROG=run_tests.sh
ROOT=${BASH_SOURCE[0]%/*}
[[ $ROOT == "${BASH_SOURCE[0]}" ]] && ROOT=.
ROOT=$(cd -- "$ROOT" && pwd) || exit 2

# Bad input exits 2; under --bisect 128, which makes `git bisect run` stop
# (any status from 1 to 127 but 125 would mark the commit bad).
fatal_rc=2
[[ " $* " == *" --bisect "* ]] && fatal_rc=128

warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { warn "$@"; exit "$fatal_rc"; }
# cannot_run REASON: a missing root or dependency.  Exit 2; under
# kselftest's runner (it exports KSFT_TAP_LEVEL), which reads 2 as XFAIL,
# a KTAP "skip all" and exit 4 (KSFT_SKIP) instead.
cannot_run() {
	if [[ -n ${KSFT_TAP_LEVEL-} ]]; then
		printf 'TAP version 13\n1..0 # SKIP %s\n' "$1"
		exit 4
	fi
	warn "$1"
	exit "$fatal_rc"
}
usage_error() { printf "%s: %s (see --help)\n" "$PROG" "$1" >&2; exit "$fatal_rc"; }

usage() {
	printf '%s\n' \
"Usage: ./run_tests.sh [options]" \
"Run pincheck's test binaries on the running kernel; print one TAP 13 stream" \
"ending with \"N passed, N failed, N skipped\"." \
"" \
"  -l, --list              list the selected case ids and exit (no root needed)" \
"      --fixes             with -l: the known-fixes table (configs/known-fixes):" \
"                          failing cases it matches name the upstream fix" \
"  -t, --test GLOB         run only cases whose id matches GLOB (shell glob," \
"                          repeatable; ids are <binary>/<scenario>/<backing>/<engine>)" \
"      --json FILE         write the results as JSON (schemas/results.json)" \
"      --junit FILE        write the results as JUnit XML (junit-10.xsd)" \
"      --kcidb FILE        write the run as a KernelCI KCIDB report (schema v4.3)" \
"      --kcidb-origin NAME the KCIDB origin of its ids: a-z, 0-9, _ (default" \
"                          pincheck)" \
"      --no-setup          do not touch system state (THP, hugetlb, swap)" \
"      --no-build          do not check packages or run make" \
"      --timeout SECONDS   kill a test binary after SECONDS (default 600)" \
"      --case-timeout SEC  per-case watchdog of the binaries (their -T)" \
"      --vfio-device BDF   bind this PCI device (one pincheck has a DMA driver" \
"                          for: QEMU's edu) to vfio-pci for the VFIO engines;" \
"                          its driver is restored on exit (and by the next run" \
"                          after a SIGKILL).  Nothing else is ever unbound" \
"  -v, --verbose           also show each binary's own TAP header and totals," \
"                          its command line and the new kernel log lines" \
"  -h, --help              show this help" \
"" \
"Other kernels (in a QEMU VM with emulated DMA hardware; see docs/vm.md):" \
"      --kernel SPEC       debian:X.Y (a series: 5.10, 6.1, 6.12, 7.2...) or" \
"                          debian:SUITE (bullseye...sid, experimental): the" \
"                          newest Debian kernel, verified and cached; list (all" \
"                          of them); a bzImage/vmlinux path; or host" \
"      --modules DIR       the lib/modules tree of a --kernel path" \
"      --profile NAME      VM hardware: configs/vm/NAME.conf or a file (default)" \
"      --vm-timeout SEC    fail the run if the guest is not done (default 1800)" \
"      --vm-out DIR        keep the guest's logs here (default build/vm/SPEC)" \
"      --matrix [FILE]     run every kernel in FILE (default configs/matrix)" \
"                          and print one table; with the options above" \
"      --full              the matrix table per case id, not per scenario" \
"      --matrix-merge DIR... the matrix tables from saved per-kernel results" \
"                          (the JSON files of --matrix-out directories)" \
"" \
"Kernels from source (configs/pincheck.config; see docs/reporting.md):" \
"      --build-kernel KSRC configure and build KSRC out of tree, print the image" \
"      --bisect            for 'git bisect run': build the kernel tree in the" \
"                          current directory, boot it, run the -t cases; exit" \
"                          0 good, 1 bad, 125 skip (build or boot failure, or" \
"                          every selected case skipped)" \
"      --matrix-out DIR    the matrix's JSON/JUnit/Markdown/HTML (build/matrix)" \
"" \
"Environment: PINCHECK_VFIO_DEVICE (a device already bound to vfio-pci)," \
"PINCHECK_TESTS_DIR (binaries to run instead of build/tests;" \
"no build), PINCHECK_STATE_DIR (default /run/pincheck), PINCHECK_DMESG_CMD" \
"(command printing the kernel log, default dmesg), PINCHECK_LIST_TIMEOUT (60 s)," \
"PINCHECK_OUTPUT_LIMIT (bytes, 16 MiB), PINCHECK_LOCK_WAIT (2 s); set by scripts/vm.sh in" \
"its guest: PINCHECK_VM_HW, PINCHECK_LIST_CACHE, PINCHECK_LIST_SAVE (docs/vm.md)," \
"PINCHECK_RECORDS (stream the result records there) and PINCHECK_RUN_* (the" \
"run's description in the reports: kernel spec, profile, accel, commits)." \
"Exit: 0 no failure, 1 a failure, 4 every case skipped, 2 usage, dependency," \
"build or system-state error, 130/143 interrupted by SIGINT/SIGTERM (see" \
"docs/reporting.md; under kselftest's runner a missing root or dependency" \
"exits 4, a skip)."
}

# --- options ---------------------------------------------------------------

opt_list=0
opt_filters=()
opt_json=
opt_junit=
opt_setup=1
opt_build=1
opt_timeout=600
opt_case_timeout=
opt_verbose=0
opt_help=0
opt_kernel=
opt_modules=
opt_profile=
opt_vm_timeout=
opt_vm_out=
opt_matrix=
opt_matrix_file=
opt_full=0
opt_matrix_out=
opt_matrix_merge=()
opt_fixes=0
opt_kcidb=
opt_build_kernel=
opt_bisect=0
opt_kcidb_origin=pincheck
kcidb_json=
fixes_file=${PINCHECK_FIXES:-$ROOT/configs/known-fixes}
opt_vfio_device=

# Options that take a value (as "--opt VALUE", "--opt=VALUE" or "-tGLOB").
# A new option: a line in parse_args' case, and here if it takes a value.
opt_takes_value() {
	case $1 in
	-t|--test|--json|--junit|--timeout|--case-timeout|--vfio-device) return 0 ;;
	--kernel|--modules|--profile|--vm-timeout|--vm-out|--matrix-out) return 0 ;;
	--kcidb|--kcidb-origin|--build-kernel) return 0 ;;
	esac
	return 1
}

parse_args() {
	local arg val inline

	while (($#)); do
		arg=$1 val='' inline=0
		shift
		if [[ $arg == --*=* ]]; then
			val=${arg#*=} arg=${arg%%=*} inline=1
		elif [[ $arg == -t?* ]]; then
			val=${arg#-t} arg=-t inline=1
		fi
		if opt_takes_value "$arg" && ((!inline)); then
			(($#)) || usage_error "option '$arg' needs a value"
			val=$1
			shift
		fi
		case $arg in
		-l|--list)	opt_list=1 ;;
		-t|--test)	opt_filters+=("$val") ;;
		--json)		opt_json=$val ;;
		--junit)	opt_junit=$val ;;
		--no-setup)	opt_setup=0 ;;
		--no-build)	opt_build=0 ;;
		--timeout)	opt_timeout=$val ;;
		--case-timeout)	opt_case_timeout=$val ;;
		-v|--verbose)	opt_verbose=1 ;;
		-h|--help)	opt_help=1 ;;
		--kernel)	opt_kernel=$val ;;
		--modules)	opt_modules=$val ;;
		--profile)	opt_profile=$val ;;
		--vm-timeout)	opt_vm_timeout=$val ;;
		--vm-out)	opt_vm_out=$val ;;
		--matrix-out)	opt_matrix_out=$val ;;
		--vfio-device)	opt_vfio_device=$val ;;
		--full)		opt_full=1 ;;
		--fixes)	opt_fixes=1 ;;
		--kcidb)	opt_kcidb=$val ;;
		--build-kernel)	opt_build_kernel=$val ;;
		--bisect)	opt_bisect=1 ;;
		--kcidb-origin)	opt_kcidb_origin=$val ;;
		--matrix-merge)
			((!inline)) || usage_error "--matrix-merge takes directories: --matrix-merge DIR..."
			while (($#)) && [[ $1 != -* ]]; do
				opt_matrix_merge+=("$1")
				shift
			done
			((${#opt_matrix_merge[@]})) || usage_error "--matrix-merge needs a results directory"
			;;
		--matrix)
			opt_matrix=1
			if ((inline)); then
				opt_matrix_file=$val inline=0
			elif (($#)) && [[ $1 != -* ]]; then
				opt_matrix_file=$1
				shift
			fi
			;;
		-*)		usage_error "unknown option '$arg'" ;;
		*)		usage_error "unexpected argument '$arg'" ;;
		esac
		if ((inline)) && ! opt_takes_value "$arg"; then
			usage_error "option '$arg' takes no value"
		fi
	done
	[[ $opt_timeout =~ ^[1-9][0-9]*$ ]] ||
		usage_error "--timeout needs a whole number of seconds, not '$opt_timeout'"
	[[ -z $opt_case_timeout || ($opt_case_timeout =~ ^[1-9][0-9]{0,4}$ &&
	   opt_case_timeout -le 86400) ]] ||
		usage_error "--case-timeout needs whole seconds from 1 to 86400, not '$opt_case_timeout'"
	local g
	for g in "${opt_filters[@]}"; do
		[[ -n $g ]] || usage_error "option '-t' needs a non-empty glob"
	done
	# the binaries take at most 64 (lib/harness/harness.c)
	((${#opt_filters[@]} <= 64)) ||
		usage_error "at most 64 -t globs, not ${#opt_filters[@]}"
	check_inputs
	[[ -z $opt_vm_timeout || $opt_vm_timeout =~ ^[1-9][0-9]*$ ]] ||
		usage_error "--vm-timeout needs a whole number of seconds, not '$opt_vm_timeout'"
	[[ -z $opt_modules || -n $opt_kernel ]] ||
		usage_error "--modules needs --kernel PATH"
	if ((opt_matrix)) && [[ -n $opt_kernel ]]; then
		usage_error "--matrix and --kernel exclude each other"
	fi
	((opt_fixes && !opt_list)) && usage_error "--fixes goes with -l"
	if ((opt_bisect)); then
		((${#opt_filters[@]})) ||
			usage_error "--bisect needs -t GLOB: the cases that tell good from bad"
		[[ -z $opt_kernel && $opt_matrix == "" ]] ||
			usage_error "--bisect builds the kernel in the current directory: no --kernel or --matrix"
	fi
	[[ $opt_kcidb_origin =~ ^[a-z0-9_]+$ ]] ||
		usage_error "--kcidb-origin takes lower-case letters, digits and _ only (KCIDB's ^[a-z0-9_]+$), not '$opt_kcidb_origin'"
	if [[ -n $opt_kcidb ]] && ((opt_matrix)); then
		usage_error "--kcidb goes with one kernel, not --matrix (the matrix writes JSON per kernel)"
	fi
	[[ $opt_kernel == host ]] && opt_kernel=
	[[ -n $opt_vfio_device ]] && parse_vfio_device
	return 0
}

# env_number NAME MIN MAX: the variable NAME, if set, is a whole number
# from MIN to MAX, or the run stops with one line.
env_number() {
	local v=${!1-}

	[[ -z ${!1+set} ]] && return 0
	if [[ ! $v =~ ^[0-9]{1,9}$ ]] || ((10#$v < $2 || 10#$v > $3)); then
		usage_error "$1 needs a whole number from $2 to $3, not '$v'"
	fi
}

# same_file A B: both given and the same path or file.
same_file() {
	[[ -n $1 && -n $2 ]] && [[ $1 == "$2" || $1 -ef $2 ]]
}

# check_inputs: the environment and the option combinations that would
# otherwise fail late, or silently.
check_inputs() {
	env_number PINCHECK_CASE_TIMEOUT 1 86400
	env_number PINCHECK_VM_BOOT_RETRIES 0 10
	env_number PINCHECK_LIST_TIMEOUT 1 86400
	env_number PINCHECK_OUTPUT_LIMIT 1024 999999999
	env_number PINCHECK_LOCK_WAIT 0 3600
	env_number PINCHECK_ODF_ITERS 1 100000
	env_number PINCHECK_ODF_DELAY_MS 1 100000
	env_number PINCHECK_ODF_BUDGET_MS 1 1000000
	case ${PINCHECK_ODF_HOLD-auto} in
	auto|none|suspend|fuse|delay|"") ;;
	*) usage_error "PINCHECK_ODF_HOLD is auto, none, suspend, fuse or delay, not '$PINCHECK_ODF_HOLD'" ;;
	esac
	same_file "$opt_json" "$opt_junit" &&
		usage_error "--json and --junit name the same file '$opt_json'"
	same_file "$opt_kcidb" "$opt_json" || same_file "$opt_kcidb" "$opt_junit" &&
		usage_error "--kcidb names the same file as --json or --junit"
	if [[ -n $opt_profile && -z $opt_kernel ]] && ((!opt_matrix && !opt_bisect)); then
		usage_error "--profile describes a --kernel guest's hardware: add --kernel (or --matrix)"
	fi
	if [[ -n $opt_profile && -d $opt_profile ]]; then
		usage_error "--profile '$opt_profile' is a directory: name a profile (configs/vm/NAME.conf) or a file"
	fi
	return 0
}

# list_fixes: the known-fixes table, one line each, for -l --fixes: the
# pattern, commits, release, kind (fix or change), subject and, indented
# on the next line, the evidence when the entry has it.
list_fixes() {
	[[ -r $fixes_file ]] || die "cannot read $fixes_file"
	awk -F '\t' '!/^#/ && NF >= 3 {
		sub(/\r$/, "")
		printf "%-28s %-27s %-6s %-6s %s\n", $1, $2, $3,
			$5 == "change" ? "change" : "fix", $4
		if ($6 != "")
			printf "    evidence: %s\n", $6 }' "$fixes_file"
	exit 0
}

# --vfio-device: a PCI address of this machine, normalized to DDDD:BB:DD.F.
parse_vfio_device() {
	local re='^(([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([01][0-9a-fA-F])\.([0-7])$'

	[[ $opt_vfio_device =~ $re ]] ||
		usage_error "--vfio-device needs a PCI address like 0000:00:04.0, not '$opt_vfio_device'"
	opt_vfio_device=${BASH_REMATCH[2]:-0000}:${BASH_REMATCH[3]}:${BASH_REMATCH[4]}.${BASH_REMATCH[5]}
	opt_vfio_device=${opt_vfio_device,,}
	if [[ -n $opt_kernel ]] || ((opt_matrix)); then
		usage_error "--vfio-device names a device of this machine; a --kernel guest binds its edu device itself"
	fi
	((opt_setup)) ||
		usage_error "--vfio-device changes a driver binding (recorded and restored): drop --no-setup"
}

# The options a run inside a VM gets (the guest's run_tests.sh).
guest_options() {
	local g

	REPLY_ARGS=()
	for g in "${opt_filters[@]}"; do
		REPLY_ARGS+=(-t "$g")
	done
	((opt_setup)) || REPLY_ARGS+=(--no-setup)
	((opt_verbose)) && REPLY_ARGS+=(-v)
	REPLY_ARGS+=(--timeout "$opt_timeout")
	[[ -n $opt_case_timeout ]] && REPLY_ARGS+=(--case-timeout "$opt_case_timeout")
	return 0
}

# write_kcidb: the --json results as a KCIDB report in --kcidb FILE (the
# run's start time, kernel, compiler and arch come from the JSON's run).
write_kcidb() {
	[[ -n $opt_kcidb && -s $opt_json ]] || return 0
	jq --arg origin "$opt_kcidb_origin" \
		--arg run "$(uname -n)-$(date -u +%Y%m%dT%H%M%S)-$$" \
		--arg time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--arg arch "$(uname -m)" \
		-f "$ROOT/scripts/kcidb.jq" "$opt_json" >"$opt_kcidb" ||
		{ warn "could not write the KCIDB report $opt_kcidb"; return 2; }
	[[ -n $kcidb_json ]] && rm -f -- "$kcidb_json"
	return 0
}

# run_in_vm: hand over to scripts/vm.sh (after the host build).
run_in_vm() {
	local -a args=(--kernel "$opt_kernel")

	[[ -n $opt_modules ]] && args+=(--modules "$opt_modules")
	[[ -n $opt_profile ]] && args+=(--profile "$opt_profile")
	[[ -n $opt_vm_timeout ]] && args+=(--vm-timeout "$opt_vm_timeout")
	[[ -n $opt_vm_out ]] && args+=(--out "$opt_vm_out")
	[[ -n $opt_json ]] && args+=(--json "$opt_json")
	[[ -n $opt_junit ]] && args+=(--junit "$opt_junit")
	guest_options
	[[ -n $opt_kcidb ]] || exec "$ROOT/scripts/vm.sh" "${args[@]}" -- "${REPLY_ARGS[@]}"
	local rc
	"$ROOT/scripts/vm.sh" "${args[@]}" -- "${REPLY_ARGS[@]}"
	rc=$?
	write_kcidb || exit 2
	exit "$rc"
}

# run_bisect: one `git bisect run` step in the current kernel tree; exit
# 0 good, 1 bad, 125 skip.  Never exits above 127 (that aborts the bisect).
run_bisect() {
	local ksrc img json rc verdict

	ksrc=$(git rev-parse --show-toplevel 2>/dev/null) || ksrc=$PWD
	printf '%s: bisect step at %s\n' "$PROG" \
		"$(git -C "$ksrc" log -1 --format='%h %s' 2>/dev/null || echo "$ksrc")" >&2
	img=$("$ROOT/scripts/build-kernel.sh" "$ksrc")
	rc=$?
	img=${img##*$'\n'}
	if ((rc == 2)); then
		exit 128	# not a kernel tree, missing tools: stop the bisect
	elif ((rc != 0)) || [[ ! -f $img ]]; then
		warn "bisect: the build failed: skip this commit (125)"
		exit 125
	fi
	json=$(mktemp "${TMPDIR:-/tmp}/pincheck-bisect.XXXXXX") || exit 125
	opt_kernel=$img opt_json=$json opt_modules=
	[[ -d ${img%/arch/*}/modules ]] && opt_modules=${img%/arch/*}/modules
	local -a args=(--kernel "$img" --json "$json")
	[[ -n $opt_modules ]] && args+=(--modules "$opt_modules")
	[[ -n $opt_profile ]] && args+=(--profile "$opt_profile")
	[[ -n $opt_vm_timeout ]] && args+=(--vm-timeout "$opt_vm_timeout")
	[[ -n $opt_vm_out ]] && args+=(--out "$opt_vm_out")
	guest_options
	"$ROOT/scripts/vm.sh" "${args[@]}" -- "${REPLY_ARGS[@]}"
	rc=$?
	verdict=$(jq -r '
		[.results[] | select(.id | contains("/kernel-log/") | not)] as $c
		| if ($c | map(select(.id | startswith("vm/"))) | length) > 0 then
			(if ($c | length) > 1 then "bad" else "skip" end)
		  elif ($c | map(select(.result == "fail" or .result == "timeout" or .result == "error")) | length) > 0 then "bad"
		  elif ($c | map(select(.result == "pass")) | length) > 0 then "good"
		  else "skip" end' "$json" 2>/dev/null)
	rm -f -- "$json"
	case $verdict in
	good) warn "bisect: good (the selected cases pass)"; exit 0 ;;
	bad) warn "bisect: bad (a selected case failed)"; exit 1 ;;
	*) warn "bisect: skip (no selected case ran: boot failure or all skipped; run exit $rc)"
	   exit 125 ;;
	esac
}

# run_matrix_merge: the matrix tables from saved per-kernel results.
run_matrix_merge() {
	local -a args=(--merge)

	[[ -n $opt_matrix_out ]] && args+=(--out "$opt_matrix_out")
	((opt_full)) && args+=(--full)
	exec "$ROOT/scripts/matrix.sh" "${args[@]}" -- "${opt_matrix_merge[@]}"
}

# run_matrix: hand over to scripts/matrix.sh.
run_matrix() {
	local -a args=()

	[[ -n $opt_matrix_file ]] && args+=(--file "$opt_matrix_file")
	[[ -n $opt_matrix_out ]] && args+=(--out "$opt_matrix_out")
	((opt_full)) && args+=(--full)
	[[ -n $opt_profile ]] && args+=(--profile "$opt_profile")
	[[ -n $opt_vm_timeout ]] && args+=(--vm-timeout "$opt_vm_timeout")
	guest_options
	exec "$ROOT/scripts/matrix.sh" "${args[@]}" -- "${REPLY_ARGS[@]}"
}

# --- build and plan --------------------------------------------------------

build() {
	local log=$ROOT/build/make.log

	((opt_build)) && [[ -z ${PINCHECK_TESTS_DIR-} ]] || return 0
	if [[ -d $ROOT/build && ! -w $ROOT/build ]]; then
		if ((opt_list)) && [[ -d $ROOT/build/tests ]]; then
			warn "note: $ROOT/build is not writable by this user: listing the binaries as they were built"
			return 0
		fi
		die "cannot build: $ROOT/build is not writable by this user (built as root? run as root, or use --no-build)"
	fi
	if ! "$ROOT/scripts/deps.sh" --build; then
		[[ -n ${KSFT_TAP_LEVEL-} ]] && cannot_run "missing Debian packages (see above)"
		exit 2
	fi
	[[ -d $ROOT/build ]] || mkdir -p -- "$ROOT/build" || exit 2
	if ! make -s -C "$ROOT" >"$log" 2>&1 </dev/null; then
		die "build failed (log: $log)"
	fi
}

# selected ID: true if ID matches a -t glob (or there is none).
selected() {
	local g

	((${#opt_filters[@]})) || return 0
	for g in "${opt_filters[@]}"; do
		# shellcheck disable=SC2053 # glob matching is the point
		[[ $1 == $g ]] && return 0
	done
	return 1
}

# Every program the run starts is bounded: a test binary by --timeout, its
# listing by list_timeout; the output of either by output_limit bytes.
list_timeout=${PINCHECK_LIST_TIMEOUT:-60}
output_limit=${PINCHECK_OUTPUT_LIMIT:-16777216}

# is_pincheck_binary FILE: does FILE carry the harness's marker (the ELF
# note .note.pincheck of lib/harness/harness.c) in its first 8 KiB?  Read, not run:
# anything else in PINCHECK_TESTS_DIR is never executed.
is_pincheck_binary() {
	local LC_ALL=C head=

	IFS= read -r -d '' -N 8192 head 2>/dev/null <"$1"
	[[ $head == *pincheck-test-binary:1* ]]
}

# list_status RC: how a binary's -l ended, in REPLY.
list_status() {
	case $1 in
	124|137) REPLY="-l killed after ${list_timeout}s (PINCHECK_LIST_TIMEOUT)" ;;
	153) REPLY="-l killed: more than $output_limit bytes of output (PINCHECK_OUTPUT_LIMIT)" ;;
	*) REPLY="-l exited with status $1" ;;
	esac
}

# list_binaries DIR: every binary's -l output into DIR/NAME, its exit status
# into DIR/NAME.rc; DIR/complete if all of them listed.  The binaries filter
# their own lists (fnmatch: the same globs), which saves a shell loop over
# every id, and list in parallel: both matter in a TCG guest, where each
# exec costs 0.1 s.  A file size limit (SIGXFSZ) bounds each list.
list_binaries() {
	local b rc ok=1 g
	local -a lflags=(-l)

	for g in "${opt_filters[@]}"; do
		lflags+=(-t "$g")
	done
	for b in "${bins[@]}"; do
		{ ulimit -f $(((output_limit + 1023) / 1024))
		  timeout -k 2 "$list_timeout" "$b" "${lflags[@]}" </dev/null >"$1/${b##*/}"
		  echo $? >"$1/${b##*/}.rc"; } 2>/dev/null &
	done
	wait
	for b in "${bins[@]}"; do
		{ read -r rc <"$1/${b##*/}.rc"; } 2>/dev/null && ((rc == 0)) || ok=0
	done
	((ok)) && : >"$1/complete"
}

# cached_lists: a directory with every binary's list from an earlier run
# with the same inputs (a VM run: scripts/vm.sh keys it), in REPLY.
cached_lists() {
	local b

	REPLY=${PINCHECK_LIST_CACHE-}
	[[ -n $REPLY && -e $REPLY/complete ]] || return 1
	for b in "${bins[@]}"; do
		[[ -e $REPLY/${b##*/}.rc ]] || return 1
	done
}

# Every test binary's selected ids: plan_ids (flat), and per binary run
# bin_path, bin_name, bin_first, bin_count; binaries whose -l fails in
# broken_name/broken_rc.
plan_cases() {
	local dir=${PINCHECK_TESTS_DIR:-$ROOT/build/tests}
	local b rc id first lists tmp=
	local -a ids bins=()

	plan_ids=() bin_path=() bin_name=() bin_first=() bin_count=()
	broken_name=() broken_rc=()
	for b in "$dir"/*; do
		[[ -f $b && -x $b ]] || continue
		if is_pincheck_binary "$b"; then
			bins+=("$b")
		else
			warn "note: not run: $b is not a pincheck test binary"
		fi
	done
	((${#bins[@]})) || die "no test binaries in $dir"
	if cached_lists; then
		lists=$REPLY
	elif [[ -n ${PINCHECK_LIST_SAVE-} ]] && mkdir -p -- "$PINCHECK_LIST_SAVE" 2>/dev/null; then
		lists=$PINCHECK_LIST_SAVE
		list_binaries "$lists"
	else
		tmp=$(mktemp -d "${TMPDIR:-/tmp}/pincheck-list.XXXXXX") ||
			die "cannot create a temporary directory"
		lists=$tmp
		list_binaries "$lists"
	fi
	for b in "${bins[@]}"; do
		rc=1
		{ read -r rc <"$lists/${b##*/}.rc"; } 2>/dev/null
		if ((rc != 0)); then
			selected "${b##*/}/list/all/runner" || continue
			broken_name+=("${b##*/}")
			broken_rc+=("$rc")
			continue
		fi
		first=${#plan_ids[@]}
		mapfile -t ids <"$lists/${b##*/}"
		for id in "${ids[@]}"; do
			[[ -n $id ]] && plan_ids+=("$id")
		done
		((${#plan_ids[@]} > first)) || continue
		bin_path+=("$b")
		bin_name+=("${b##*/}")
		bin_first+=("$first")
		bin_count+=($((${#plan_ids[@]} - first)))
	done
	[[ -n $tmp ]] && rm -rf -- "$tmp"
	if ((${#bin_path[@]} + ${#broken_name[@]} == 0)); then
		local globs
		globs=$(printf "'%s' or " "${opt_filters[@]}")
		die "no test matches ${globs% or }"
	fi
}

list_cases() {
	local i

	((${#plan_ids[@]})) && printf '%s\n' "${plan_ids[@]}"
	for i in "${!broken_name[@]}"; do
		list_status "${broken_rc[i]}"
		warn "${broken_name[i]} $REPLY"
	done
	((${#broken_name[@]} == 0))
}

# --- running ---------------------------------------------------------------

work=
records=
overflowed=0
run_start=0
tpid=
apid=
fd3=0
num=0
kprev=
knext=
kok_prev=0
dmesg_cmd=(dmesg)
# mawk fills its whole input buffer before it handles a line unless told
# otherwise: the merger must see each result line as soon as it is written.
merge_awk=(awk)
command -v mawk >/dev/null && merge_awk=(mawk -W interactive)
[[ -n ${PINCHECK_DMESG_CMD-} ]] && read -r -a dmesg_cmd <<<"$PINCHECK_DMESG_CMD"

# read_kmsg FILE: the kernel log into FILE; false if it cannot be read.
read_kmsg() {
	"${dmesg_cmd[@]}" >"$1" 2>/dev/null </dev/null
}

# Stop a running binary and its TAP merger (on a signal or an early exit).
# shellcheck disable=SC2317 # reached from traps
stop_children() {
	if [[ -n $tpid ]]; then
		kill -TERM "$tpid" 2>/dev/null
		wait "$tpid" 2>/dev/null
		tpid=
	fi
	if [[ -n $apid ]]; then
		if ((fd3)); then
			printf '\001abort\n' >&3 2>/dev/null
			exec 3>&-
			fd3=0
		fi
		wait "$apid" 2>/dev/null
		apid=
	fi
}

cleanup_work() {
	[[ -n $work && -d $work ]] && rm -rf -- "$work"
	work=
	[[ -n $kcidb_json ]] && rm -f -- "$kcidb_json"
	kcidb_json=
}

# on_early_exit: an exit before the run (bad input, a build failure).
# shellcheck disable=SC2317 # reached from a trap
on_early_exit() {
	cleanup_work
	guard_leave
}

# run_metadata: the run's description for results.awk (PC_* variables;
# see its header), once per run.  In a guest scripts/vm.sh passes the
# kernel spec, profile, accelerator and pincheck commit as PINCHECK_RUN_*.
run_metadata() {
	PC_KERNEL='' PC_KERNEL_VERSION=''
	{ IFS= read -r PC_KERNEL </proc/sys/kernel/osrelease; } 2>/dev/null ||
		PC_KERNEL=$(uname -r)
	{ IFS= read -r PC_KERNEL_VERSION </proc/version; } 2>/dev/null
	PC_ARCH=$(uname -m) PC_HOSTNAME=${PINCHECK_RUN_HOSTNAME:-$(uname -n)}
	PC_COMMIT=${PINCHECK_RUN_COMMIT-}
	[[ -n ${PINCHECK_RUN_COMMIT+set} ]] ||
		PC_COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)
	PC_KERNEL_SPEC=${PINCHECK_RUN_KERNEL:-host}
	PC_PROFILE=${PINCHECK_RUN_PROFILE-} PC_ACCEL=${PINCHECK_RUN_ACCEL-}
	PC_KGIT_COMMIT=${PINCHECK_RUN_KGIT_COMMIT-} PC_KGIT_URL=${PINCHECK_RUN_KGIT_URL-}
	PC_KGIT_BRANCH=${PINCHECK_RUN_KGIT_BRANCH-}
	export PC_KERNEL PC_KERNEL_VERSION PC_ARCH PC_HOSTNAME \
		PC_COMMIT PC_KERNEL_SPEC PC_PROFILE PC_ACCEL PC_KGIT_COMMIT \
		PC_KGIT_URL PC_KGIT_BRANCH
}

# summarize: print the summary lines, write --json/--junit; status 1 on a
# failure, 4 if every case skipped.
summarize() {
	PC_JSON=$1 PC_JUNIT=$2 PC_START=$run_start PC_END=$EPOCHSECONDS \
		awk -f "$ROOT/scripts/results.awk" "$records"
}

# shellcheck disable=SC2317 # reached from traps
on_signal() {
	local code=$((128 + $2)) summary=

	trap '' INT TERM HUP
	stop_children
	printf 'Bail out! interrupted by SIG%s\n' "$1"
	[[ -n $records && -f $records ]] && summary=$(summarize "" "")
	if ((state_owned)); then
		state_restore
	fi
	cleanup_work
	guard_leave
	trap - EXIT
	[[ -n $summary ]] && printf '%s\n' "$summary"
	exit "$code"
}

# shellcheck disable=SC2317 # reached from traps
on_exit() {
	trap '' INT TERM HUP
	stop_children
	if ((state_owned)); then
		state_restore
	fi
	cleanup_work
	guard_leave
}

# record ID RESULT REASON: a result the runner itself reports.
record() {
	printf '%s\t%s\t%s\t0\t%s\t%s\n' "${1%%/*}" "$1" "$2" "$3" "$EPOCHSECONDS" >>"$records"
}

# exit_description RC: how a binary ended, for the cases it never reported.
exit_description() {
	local sig

	if (($1 > 128)) && sig=$(kill -l $(($1 - 128)) 2>/dev/null); then
		REPLY="binary exited with status $1 (SIG$sig)"
	else
		REPLY="binary exited with status $1"
	fi
}

# merge_lost STATUS NAME NUM: a TAP merger that failed lost the binary's
# results: one failure in their place, never a quiet run.
merge_lost() {
	(($1 == 0)) && return 0
	printf 'not ok %d %s/results/all/runner # the TAP merger exited with status %d: the results of %s are lost\n' \
		"$3" "$2" "$1" "$2"
	record "$2/results/all/runner" fail "the TAP merger exited with status $1"
}

# on_output_limit: the merger saw more than output_limit bytes from the
# running binary: stop it (timeout forwards SIGTERM, then SIGKILLs).
# shellcheck disable=SC2317 # reached from a trap
on_output_limit() {
	overflowed=1
	[[ -n $tpid ]] && kill -TERM "$tpid" 2>/dev/null
}

# run_binary I: run the I-th selected binary, merging its TAP.
run_binary() {
	local b=${bin_path[$1]} name=${bin_name[$1]}
	local first=${bin_first[$1]} count=${bin_count[$1]}
	local -a cmd=(timeout -k 10 "$opt_timeout" "$b")
	local g rc t0 timedout=0 knext_ok=0 tmp

	[[ -n $opt_case_timeout ]] && cmd+=(-T "$opt_case_timeout")
	for g in "${opt_filters[@]}"; do
		cmd+=(-t "$g")
	done
	printf '%s\n' "${plan_ids[@]:first:count}" >"$work/plan"
	((opt_verbose)) && printf '# run: %s\n' "${cmd[*]:4}"

	# the merger reads fd 3 through a pipe (no FIFO: one exec less);
	# fold cuts lines at 64 KiB, so that a binary printing without a
	# newline meets the byte limit too instead of growing awk's buffer
	exec 3> >(stdbuf -oL fold -b -w 65536 | PC_BIN=$name PC_START=$((num + 1)) PC_PLAN=$work/plan \
		  PC_RECORDS=$records PC_VERBOSE=$opt_verbose \
		  PC_TIMEOUT=$opt_timeout PC_KPREV=$kprev PC_KNEXT=$knext \
		  PC_FIXES=$fixes_file PC_OUTPUT_LIMIT=$output_limit PC_RUNNER=$$ \
			"${merge_awk[@]}" -f "$ROOT/scripts/tap-merge.awk")
	apid=$!
	fd3=1
	t0=$SECONDS
	overflowed=0
	"${cmd[@]}" >&3 2>&3 3>&- </dev/null &
	tpid=$!
	wait "$tpid" 2>/dev/null
	rc=$?
	# SIGUSR1 from the merger (output limit) interrupts the wait
	while ((overflowed && rc == 138)) && kill -0 "$tpid" 2>/dev/null; do
		wait "$tpid" 2>/dev/null
		rc=$?
	done
	tpid=
	if ((rc == 124 || (rc == 137 && SECONDS - t0 >= opt_timeout))); then
		timedout=1
	fi
	exit_description "$rc"
	((overflowed)) &&
		REPLY="binary stopped after more than $output_limit bytes of output (PINCHECK_OUTPUT_LIMIT)" timedout=0
	read_kmsg "$knext" && knext_ok=1
	printf '\001end %d %d %d %s\n' "$rc" $((kok_prev && knext_ok)) \
		"$timedout" "$REPLY" >&3 2>/dev/null
	exec 3>&-
	fd3=0
	wait "$apid"
	merge_lost "$?" "$name" $((num + count + 1))
	apid=
	num=$((num + count + 1))
	tmp=$kprev kprev=$knext knext=$tmp
	kok_prev=$knext_ok
}

run_suite() {
	local total i rc summary restore_rc=0

	trap 'on_signal INT 2' INT
	trap 'on_signal TERM 15' TERM
	trap 'on_signal HUP 1' HUP
	trap : PIPE
	trap on_output_limit USR1
	trap on_exit EXIT
	work=$(mktemp -d "${TMPDIR:-/tmp}/pincheck.XXXXXX") ||
		die "cannot create a work directory"
	records=${PINCHECK_RECORDS:-$work/results}
	run_start=$EPOCHSECONDS
	run_metadata
	kprev=$work/kmsg.0
	knext=$work/kmsg.1
	: >"$records"

	total=$((${#plan_ids[@]} + ${#bin_path[@]} + ${#broken_name[@]}))
	printf 'TAP version 13\n1..%d\n' "$total"
	if ((opt_setup)) && [[ -n ${PINCHECK_VM_HW-} && -z $opt_vfio_device ]]; then
		state_setup_disposable	# in pincheck's VM: nothing to restore
	elif ((opt_setup)); then
		state_setup "$work" || exit 2
	fi
	if [[ -n $opt_vfio_device ]]; then
		vfio_bind "$opt_vfio_device" || exit 2
		export PINCHECK_VFIO_DEVICE=$opt_vfio_device
	fi

	for i in "${!broken_name[@]}"; do
		num=$((num + 1))
		list_status "${broken_rc[i]}"
		printf 'not ok %d %s/list/all/runner # %s %s\n' \
			"$num" "${broken_name[i]}" "${broken_name[i]}" "$REPLY"
		record "${broken_name[i]}/list/all/runner" fail "${broken_name[i]} $REPLY"
	done

	read_kmsg "$kprev" && kok_prev=1
	for i in "${!bin_path[@]}"; do
		run_binary "$i"
	done

	summary=$(summarize "$opt_json" "$opt_junit")
	rc=$?
	write_kcidb || rc=2
	if ((state_owned)); then
		state_restore || restore_rc=2
	fi
	cleanup_work
	guard_leave
	trap - EXIT INT TERM HUP
	printf '%s\n' "$summary"
	((rc == 4 && !restore_rc)) && exit 4
	((rc > 1 || restore_rc)) && exit 2
	exit "$rc"
}

# --- main ------------------------------------------------------------------

# check_tmpdir_space: a full PINCHECK_TMPDIR would turn every file-backed
# case into a failure; it is this machine's setup, not a kernel verdict.
check_tmpdir_space() {
	local dir=${PINCHECK_TMPDIR:-/var/tmp} need_kb=8192 free_kb

	[[ -d $dir ]] || return 0	# the binaries fall back and say so
	free_kb=$(df -Pk -- "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }')
	[[ $free_kb =~ ^[0-9]+$ ]] || return 0
	((free_kb >= need_kb)) ||
		cannot_run "PINCHECK_TMPDIR $dir has $free_kb kB free, the file backings need $need_kb: free space there or set PINCHECK_TMPDIR to another directory"
}

# check_vm_hw: PINCHECK_VM_HW (changes without records, for a guest that is
# thrown away) counts only in pincheck's VM, whose PID 1 is the initramfs's
# /init (scripts/vm-init.sh) and which made the directory it names.
check_vm_hw() {
	local a
	local -a cmd=()

	[[ -n ${PINCHECK_VM_HW-} ]] || return 0
	mapfile -d '' -t cmd 2>/dev/null </proc/1/cmdline
	for a in "${cmd[@]}"; do
		[[ $a == /init && -d $PINCHECK_VM_HW ]] && return 0
	done
	warn "note: PINCHECK_VM_HW ignored: this is not pincheck's VM (PID 1 is not its /init)"
	unset PINCHECK_VM_HW
}

main() {
	local f

	parse_args "$@"
	check_vm_hw
	if ((opt_help)); then
		usage
		exit 0
	fi
	((opt_fixes)) && list_fixes
	[[ $opt_kernel == list ]] && exec "$ROOT/scripts/vm.sh" --kernel list
	((${#opt_matrix_merge[@]})) && run_matrix_merge
	if ((!opt_list)); then
		((EUID == 0)) ||
			cannot_run "must run as root (pinning tests read /proc/self/pagemap and change sysfs knobs)"
		for f in "$opt_json" "$opt_junit" "$opt_kcidb"; do
			[[ -z $f ]] || { : >"$f"; } 2>/dev/null ||
				die "cannot write $f"
		done
		if [[ -n $opt_kcidb && -z $opt_json ]]; then
			kcidb_json=$(mktemp "${TMPDIR:-/tmp}/pincheck-kcidb.XXXXXX") ||
				die "cannot create a temporary file"
			opt_json=$kcidb_json
		fi
		# shellcheck source=scripts/lib-state.sh
		. "$ROOT/scripts/lib-state.sh"
		# shellcheck source=scripts/lib-guard.sh
		. "$ROOT/scripts/lib-guard.sh"
		trap on_early_exit EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
		trap 'exit 129' HUP
		# pincheck's VM is thrown away after its one run
		[[ -n ${PINCHECK_VM_HW-} ]] || guard_enter
		# A run in a VM, a matrix, a bisect step or a kernel build
		# changes nothing here: it does not take the host's state file.
		if [[ -n $opt_kernel || -n $opt_build_kernel ]] ||
		   ((opt_matrix || opt_bisect)); then
			:
		elif ((opt_setup)); then
			[[ -n ${PINCHECK_VM_HW-} ]] || guard_lock
			state_recover || exit 2
		elif [[ -z ${PINCHECK_VM_HW-} ]] && guard_lock &&
		     [[ -s $state_file ]]; then
			warn "note: an interrupted run left system changes (run without --no-setup to restore them)"
		fi
		if [[ -n $opt_vfio_device ]] && ! vfio_device_check "$opt_vfio_device"; then
			warn "$REPLY"
			exit 2
		fi
	fi
	if [[ -n $opt_build_kernel ]]; then
		exec "$ROOT/scripts/build-kernel.sh" "$opt_build_kernel"
	fi
	if ((opt_bisect)); then
		build >&2 || exit 125
		run_bisect
	fi
	build
	if ((!opt_list)) && ((opt_matrix)); then
		run_matrix
	fi
	if ((!opt_list)) && [[ -n $opt_kernel ]]; then
		run_in_vm
	fi
	plan_cases
	if ((opt_list)); then
		list_cases
		exit
	fi
	check_tmpdir_space
	run_suite
}

main "$@"
