#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# run_tests.sh: build pincheck if needed, prepare the system (THP, hugetlb,
# swap), run every test binary and print one TAP 13 stream ending with the
# line "N passed, N failed, N skipped".  See --help and README.
#
# The front door: it parses and checks the options, builds, and runs the
# suite core (scripts/runner/suite.sh) here, or hands over to a VM
# (scripts/vm/vm.sh), a kernel matrix or a kernel build (scripts/kernels/).
# docs/architecture.md describes the scripts/ layout.

set -u

ROOT=${BASH_SOURCE[0]%/*}
[[ $ROOT == "${BASH_SOURCE[0]}" ]] && ROOT=.
ROOT=$(cd -- "$ROOT" && pwd) || exit 2
# shellcheck source=scripts/runner/suite.sh
. "$ROOT/scripts/runner/suite.sh" || exit 2

# Bad input exits 2; under --bisect 128, which makes `git bisect run` stop
# (any status from 1 to 127 but 125 would mark the commit bad).
[[ " $* " == *" --bisect "* ]] && fatal_rc=128

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
"                          for: QEMU's nvme or edu) to vfio-pci for the VFIO" \
"                          engines;" \
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
"      --shards N          one kernel's test binaries over N guests at once," \
"                          each taking the next binary (default: one per core" \
"                          as the free memory allows, at most one per binary;" \
"                          1 in a matrix with --jobs)" \
"      --jobs N            kernels of the matrix at once, one guest each" \
"                          (default: one kernel at a time over --shards" \
"                          guests; the host column last)" \
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
"PINCHECK_OUTPUT_LIMIT (bytes, 16 MiB), PINCHECK_LOCK_WAIT (2 s), PINCHECK_RECORDS" \
"(write the result records there as they come); set by scripts/vm/vm.sh in" \
"its guest: PINCHECK_VM_HW, PINCHECK_LIST_CACHE, PINCHECK_LIST_SAVE (docs/vm.md)," \
"PINCHECK_SHARD, PINCHECK_SHARD_CLAIMS, PINCHECK_RECORDS_OUT (a --shards guest)" \
"and PINCHECK_RUN_* (the run's description in the reports: kernel spec, profile," \
"accel, commits)." \
"Exit: 0 no failure, 1 a failure, 4 every case skipped, 2 usage, dependency," \
"build or system-state error, 130/143 interrupted by SIGINT/SIGTERM (see" \
"docs/reporting.md; under kselftest's runner a missing root or dependency" \
"exits 4, a skip)."
}

# --- options ---------------------------------------------------------------

opt_build=1
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
opt_jobs=
opt_shards=
opt_fixes=0
opt_build_kernel=
opt_bisect=0

# Options that take a value (as "--opt VALUE", "--opt=VALUE" or "-tGLOB").
# A new option: a line in parse_args' case, and here if it takes a value.
opt_takes_value() {
	case $1 in
	-t|--test|--json|--junit|--timeout|--case-timeout|--vfio-device) return 0 ;;
	--kernel|--modules|--profile|--vm-timeout|--vm-out|--matrix-out|--jobs|--shards) return 0 ;;
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
		--jobs)		opt_jobs=$val ;;
		--shards)	opt_shards=$val ;;
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
	[[ -z $opt_jobs || $opt_jobs =~ ^[1-9][0-9]?$ ]] ||
		usage_error "--jobs needs a number of guests from 1 to 99, not '$opt_jobs'"
	[[ -z $opt_jobs ]] || ((opt_matrix)) ||
		usage_error "--jobs goes with --matrix"
	[[ -z $opt_shards || $opt_shards =~ ^[1-9]$ ]] ||
		usage_error "--shards needs a number of guests from 1 to 9, not '$opt_shards'"
	[[ -z $opt_shards || -n $opt_kernel ]] || ((opt_matrix || opt_bisect)) ||
		usage_error "--shards splits a --kernel run over guests: add --kernel (or --matrix, --bisect)"
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

# The options each kernel's run of a matrix gets (scripts/kernels/matrix.sh).
matrix_options() {
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

# write_run_env: the suite's options for a guest, as the shell assignments
# of its run.env (scripts/vm/vm.sh adds the guest's own; the guest's
# suite core reads them as they are, no option is parsed again).
write_run_env() {
	printf '# the suite options of run_tests.sh\nopt_filters=('
	((${#opt_filters[@]})) && printf ' %q' "${opt_filters[@]}"
	printf ' )\n'
	printf 'opt_setup=%d opt_verbose=%d opt_timeout=%q opt_case_timeout=%q\n' \
		"$opt_setup" "$opt_verbose" "$opt_timeout" "$opt_case_timeout"
}

# vm_args ARGS...: scripts/vm/vm.sh's options for this run, in REPLY_ARGS.
vm_args() {
	REPLY_ARGS=("$@")
	[[ -n $opt_modules ]] && REPLY_ARGS+=(--modules "$opt_modules")
	[[ -n $opt_profile ]] && REPLY_ARGS+=(--profile "$opt_profile")
	[[ -n $opt_vm_timeout ]] && REPLY_ARGS+=(--vm-timeout "$opt_vm_timeout")
	[[ -n $opt_vm_out ]] && REPLY_ARGS+=(--out "$opt_vm_out")
	[[ -n $opt_shards ]] && REPLY_ARGS+=(--shards "$opt_shards")
	return 0
}

# run_in_vm: hand over to scripts/vm/vm.sh (after the host build); the
# suite options go to the guest once, in the run.env it is given.
run_in_vm() {
	local rc

	vm_args --kernel "$opt_kernel"
	[[ -n $opt_json ]] && REPLY_ARGS+=(--json "$opt_json")
	[[ -n $opt_junit ]] && REPLY_ARGS+=(--junit "$opt_junit")
	[[ -n $opt_kcidb ]] ||
		exec "$ROOT/scripts/vm/vm.sh" "${REPLY_ARGS[@]}" --run-env <(write_run_env)
	"$ROOT/scripts/vm/vm.sh" "${REPLY_ARGS[@]}" --run-env <(write_run_env)
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
	img=$("$ROOT/scripts/kernels/build-kernel.sh" "$ksrc")
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
	vm_args --kernel "$img" --json "$json"
	"$ROOT/scripts/vm/vm.sh" "${REPLY_ARGS[@]}" --run-env <(write_run_env)
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
	exec "$ROOT/scripts/kernels/matrix.sh" "${args[@]}" -- "${opt_matrix_merge[@]}"
}

# run_matrix: hand over to scripts/kernels/matrix.sh.
run_matrix() {
	local -a args=()

	[[ -n $opt_matrix_file ]] && args+=(--file "$opt_matrix_file")
	[[ -n $opt_matrix_out ]] && args+=(--out "$opt_matrix_out")
	((opt_full)) && args+=(--full)
	[[ -n $opt_profile ]] && args+=(--profile "$opt_profile")
	[[ -n $opt_vm_timeout ]] && args+=(--vm-timeout "$opt_vm_timeout")
	# one kernel at a time over one guest per core (vm.sh --shards),
	# unless --jobs N kernels at once, one guest each
	args+=(--jobs "${opt_jobs:-1}")
	if [[ -n $opt_shards ]]; then
		args+=(--shards "$opt_shards")
	elif [[ -n $opt_jobs ]]; then
		args+=(--shards 1)
	fi
	matrix_options
	exec "$ROOT/scripts/kernels/matrix.sh" "${args[@]}" -- "${REPLY_ARGS[@]}"
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
	if ! "$ROOT/scripts/runner/deps.sh" --build; then
		[[ -n ${KSFT_TAP_LEVEL-} ]] && cannot_run "missing Debian packages (see above)"
		exit 2
	fi
	[[ -d $ROOT/build ]] || mkdir -p -- "$ROOT/build" || exit 2
	if ! make -s -C "$ROOT" >"$log" 2>&1 </dev/null; then
		die "build failed (log: $log)"
	fi
}

# --- main ------------------------------------------------------------------

main() {
	local f

	parse_args "$@"
	check_vm_hw
	if ((opt_help)); then
		usage
		exit 0
	fi
	((opt_fixes)) && list_fixes
	[[ $opt_kernel == list ]] && exec "$ROOT/scripts/vm/vm.sh" --kernel list
	((${#opt_matrix_merge[@]})) && run_matrix_merge
	# A run in a VM, a matrix, a bisect step or a kernel build changes
	# nothing here: it does not take the host's state file.
	if ((!opt_list)); then
		if [[ -n $opt_kernel || -n $opt_build_kernel ]] ||
		   ((opt_matrix || opt_bisect)); then
			suite_prepare 0
		else
			suite_prepare 1
		fi
	fi
	if [[ -n $opt_build_kernel ]]; then
		exec "$ROOT/scripts/kernels/build-kernel.sh" "$opt_build_kernel"
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
	suite_main
}

main "$@"
