# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/runner/suite.sh: the suite core, sourced by run_tests.sh on the
# host and by scripts/vm/guest.sh in pincheck's VM (no second option
# parser: the guest gets the parsed opt_* values in its run.env).  It
# lists the selected cases (plan_cases), prepares and restores the system
# (suite_prepare; scripts/runner/lib-state.sh, lib-guard.sh), runs every
# test binary merging its TAP (run_binary, scripts/runner/tap-merge.awk)
# and writes the summary and reports (scripts/runner/results.awk).
#
# Few processes per binary on purpose (over 9p in a VM each exec costs
# 0.1-0.3 s): `BIN -l`, `timeout BIN`, one awk merging its TAP, one dmesg.
#
# The caller sets ROOT (the checkout) and may change the opt_* defaults
# below; then suite_prepare STATE (unless listing) and suite_main.

PROG=run_tests.sh
fatal_rc=2

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

# The suite's options (run_tests.sh's parse_args sets them on the host,
# the guest's run.env in a VM).
opt_list=0
opt_filters=()
opt_json=
opt_junit=
opt_setup=1
opt_timeout=600
opt_case_timeout=
opt_verbose=0
opt_kcidb=
opt_kcidb_origin=pincheck
opt_vfio_device=
kcidb_json=
fixes_file=${PINCHECK_FIXES:-$ROOT/configs/known-fixes}

# write_kcidb: the --json results as a KCIDB report in --kcidb FILE (the
# run's start time, kernel, compiler and arch come from the JSON's run).
write_kcidb() {
	[[ -n $opt_kcidb && -s $opt_json ]] || return 0
	jq --arg origin "$opt_kcidb_origin" \
		--arg run "$(uname -n)-$(date -u +%Y%m%dT%H%M%S)-$$" \
		--arg time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--arg arch "$(uname -m)" \
		-f "$ROOT/scripts/runner/kcidb.jq" "$opt_json" >"$opt_kcidb" ||
		{ warn "could not write the KCIDB report $opt_kcidb"; return 2; }
	[[ -n $kcidb_json ]] && rm -f -- "$kcidb_json"
	return 0
}
# --- plan -----------------------------------------------------------------

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
	local b rc ok=1

	for b in "${bins[@]}"; do
		list_binary "$b" "$1" &
	done
	wait
	for b in "${bins[@]}"; do
		{ read -r rc <"$1/${b##*/}.rc"; } 2>/dev/null && ((rc == 0)) || ok=0
	done
	((ok)) && : >"$1/complete"
}

# list_binary BINARY DIR: its -l output into DIR/NAME, its exit status
# into DIR/NAME.rc; a file size limit (SIGXFSZ) bounds the list.
list_binary() {
	local g
	local -a lflags=(-l)

	for g in "${opt_filters[@]}"; do
		lflags+=(-t "$g")
	done
	# a subshell: the file size limit is for the list only
	( ulimit -f $(((output_limit + 1023) / 1024))
	  timeout -k 2 "$list_timeout" "$1" "${lflags[@]}" </dev/null >"$2/${1##*/}"
	  echo $? >"$2/${1##*/}.rc" ) 2>/dev/null
}

# listed_names: into the caller's listed[] the binaries the run's complete
# list cache (PINCHECK_LIST_CACHE, a VM's) has lists of.  Its key holds
# every binary's name, size and mtime, so each carried the marker when its
# list was made: one directory read instead of 20 reads of 8 kB over 9p
# (0.2 s before a TCG guest's first test).
listed_names() {
	local f

	[[ -n ${PINCHECK_LIST_CACHE-} && -e $PINCHECK_LIST_CACHE/complete ]] || return 0
	for f in "$PINCHECK_LIST_CACHE"/*.rc; do
		[[ -e $f ]] || continue
		f=${f##*/}
		listed[${f%.rc}]=1
	done
}

# cached_lists: a directory with every binary's list from an earlier run
# with the same inputs (a VM run: scripts/vm/vm.sh keys it), in REPLY; it
# holds a list of each of plan_cases' bins[] (its listed[]).
cached_lists() {
	local b

	REPLY=${PINCHECK_LIST_CACHE-}
	[[ -n $REPLY && -e $REPLY/complete ]] || return 1
	for b in "${bins[@]}"; do
		[[ -n ${listed[${b##*/}]-} ]] || return 1
	done
}

# drop_empty_ids FIRST: the empty lines of the list just read into
# plan_ids from index FIRST on (the binaries print none: a bash loop over
# every id costs seconds in a TCG guest, so it runs only if one is there).
drop_empty_ids() {
	local i IFS=' '
	local -a kept=()

	[[ " ${plan_ids[*]:$1} " == *"  "* ]] || return 0
	for ((i = $1; i < ${#plan_ids[@]}; i++)); do
		[[ -n ${plan_ids[i]} ]] && kept+=("${plan_ids[i]}")
	done
	plan_ids=("${plan_ids[@]:0:$1}" "${kept[@]}")
}

# known_lists: where this run's lists are, in REPLY: the cached lists
# (status 0), else the directory PINCHECK_LIST_SAVE names, made now
# (status 1), else nothing (status 1, REPLY empty).
known_lists() {
	cached_lists && return 0
	REPLY=${PINCHECK_LIST_SAVE-}
	[[ -n $REPLY ]] && mkdir -p -- "$REPLY" 2>/dev/null || REPLY=
	return 1
}

# append_ids LIST: the ids of one binary's list file onto plan_ids; the
# index of its first in REPLY.
append_ids() {
	REPLY=${#plan_ids[@]}
	mapfile -t -O "$REPLY" plan_ids <"$1"
	drop_empty_ids "$REPLY"
}

# report_broken_list NAME RC: a binary whose -l failed, as its runner case.
report_broken_list() {
	num=$((num + 1))
	list_status "$2"
	printf 'not ok %d %s/list/all/runner # %s %s\n' "$num" "$1" "$1" "$REPLY"
	record "$1/list/all/runner" fail "$1 $REPLY"
}

# Every test binary's selected ids: plan_ids (flat), and per binary run
# bin_path, bin_name, bin_first, bin_count; binaries whose -l fails in
# broken_name/broken_rc.
plan_cases() {
	local dir=${PINCHECK_TESTS_DIR:-$ROOT/build/tests}
	local b rc first lists tmp=
	local -a bins=()
	local -A listed=()

	plan_ids=() bin_path=() bin_name=() bin_first=() bin_count=()
	broken_name=() broken_rc=()
	listed_names
	for b in "$dir"/*; do
		[[ -f $b && -x $b ]] || continue
		if [[ -n ${listed[${b##*/}]-} ]] || is_pincheck_binary "$b"; then
			bins+=("$b")
		else
			warn "note: not run: $b is not a pincheck test binary"
		fi
	done
	((${#bins[@]})) || die "no test binaries in $dir"
	if [[ -n ${PINCHECK_SHARD-} ]] && ((!opt_list)); then
		plan_shard "${bins[@]}"
		return
	fi
	if known_lists; then
		lists=$REPLY
	else
		if [[ -z $REPLY ]]; then
			REPLY=$(mktemp -d "${TMPDIR:-/tmp}/pincheck-list.XXXXXX") ||
				die "cannot create a temporary directory"
			tmp=$REPLY
		fi
		lists=$REPLY
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
		append_ids "$lists/${b##*/}"
		first=$REPLY
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

# plan_shard BINARY...: a shard of a --kernel run (scripts/vm/vm.sh
# --shards) lists a binary only when it claims it (plan_binary): the guest
# starts its first case without waiting for 20 lists (3 s under TCG when
# they are not cached), never lists what the other guests run, and gives
# its plan, the number of its results, at the end (TAP 13 allows either
# place; scripts/vm/shard-merge.awk writes the run's plan last, counting).
plan_shard() {
	lazy_plan=1
	known_lists
	lazy_lists=$REPLY	# empty: the run's work directory, once there is one
	bin_path=("$@")
	bin_name=("${@##*/}")
}

# plan_binary I: the I-th binary's ids in a shard, listed now (or read
# from the cached lists), into plan_ids, bin_first and bin_count.  Status
# 1 if there is nothing to run: its list is empty, or -l failed (reported
# here as the binary's runner case, as plan_cases' callers do).
plan_binary() {
	local b=${bin_path[$1]} name=${bin_name[$1]} rc=1

	if [[ -z $lazy_lists ]]; then
		lazy_lists=$work/lists
		mkdir -p -- "$lazy_lists"
	fi
	[[ -e $lazy_lists/$name.rc ]] || list_binary "$b" "$lazy_lists"
	{ read -r rc <"$lazy_lists/$name.rc"; } 2>/dev/null
	if ((rc != 0)); then
		selected "$name/list/all/runner" && report_broken_list "$name" "$rc"
		return 1
	fi
	append_ids "$lazy_lists/$name"
	bin_first[$1]=$REPLY
	bin_count[$1]=$((${#plan_ids[@]} - REPLY))
	((bin_count[$1] > 0))
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
knob_journal=
records=
overflowed=0
run_start=0
tpid=
apid=
fd3=0
num=0
lazy_plan=0	# a shard: each binary listed as it is claimed (plan_shard)
lazy_lists=
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
# see its header), once per run.  In a guest scripts/vm/vm.sh passes the
# kernel spec, profile, accelerator and pincheck commit as PINCHECK_RUN_*.
run_metadata() {
	PC_KERNEL='' PC_KERNEL_VERSION=''
	{ IFS= read -r PC_KERNEL </proc/sys/kernel/osrelease; } 2>/dev/null ||
		PC_KERNEL=$(uname -r)
	{ IFS= read -r PC_KERNEL_VERSION </proc/version; } 2>/dev/null
	{ IFS= read -r PC_ARCH </proc/sys/kernel/arch; } 2>/dev/null ||
		PC_ARCH=$(uname -m)
	PC_HOSTNAME=${PINCHECK_RUN_HOSTNAME:-$(uname -n)}
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
		awk -f "$ROOT/scripts/runner/results.awk" "$records"
}

# restore_state: put back what the run changed (the state file, which
# names the knob journal) or, in a run without a state file, what a killed
# binary left in its knob journal.
# shellcheck disable=SC2317 # reached from traps
restore_state() {
	if ((state_owned)); then
		state_restore
	elif [[ -n $knob_journal ]]; then
		knob_journal_replay "$knob_journal"
	fi
}

# shellcheck disable=SC2317 # reached from traps
on_signal() {
	local code=$((128 + $2)) summary=

	trap '' INT TERM HUP
	stop_children
	printf 'Bail out! interrupted by SIG%s\n' "$1"
	[[ -n $records && -f $records ]] && summary=$(summarize "" "")
	restore_state
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
	restore_state
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
	local first=${bin_first[$1]-} count=${bin_count[$1]-}
	local -a cmd=(timeout -k 10 "$opt_timeout" "$b")
	local g rc t0 timedout=0 knext_ok=0 tmp

	if ((lazy_plan)); then
		plan_binary "$1" || return 0
		first=${bin_first[$1]} count=${bin_count[$1]}
	fi
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
			"${merge_awk[@]}" -f "$ROOT/scripts/runner/tap-result.awk" \
			-f "$ROOT/scripts/runner/known-fixes.awk" \
			-f "$ROOT/scripts/runner/tap-merge.awk")
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
	# a killed binary could not undo its knobs: the runner does
	[[ -s $knob_journal ]] && knob_journal_replay "$knob_journal"
	num=$((num + count + 1))
	tmp=$kprev kprev=$knext knext=$tmp
	kok_prev=$knext_ok
}

# run_claimed: a shard's binaries.  The guests of one kernel
# (scripts/vm/vm.sh --shards) share the directory PINCHECK_SHARD_CLAIMS;
# each takes the next binary no guest has taken yet (the mkdir of its
# name is the claim), in the host's order (its file "order": the slowest
# first), then any binary the order lacks, the most cases first.
run_claimed() {
	local i
	local -a order
	local -A idx=()

	for i in "${!bin_name[@]}"; do
		idx[${bin_name[i]}]=$i
	done
	{ mapfile -t order <"$PINCHECK_SHARD_CLAIMS/order"; } 2>/dev/null
	claim_in_order "${order[@]}"
	((${#idx[@]})) || return 0
	mapfile -t order < <(for i in "${idx[@]}"; do
		printf '%s %s\n' "${bin_count[i]-0}" "${bin_name[i]}"
	done | sort -rn | cut -d' ' -f2)
	claim_in_order "${order[@]}"
}

# claim_in_order NAME...: run_claimed's loop over the binaries of idx.
claim_in_order() {
	local name i

	for name; do
		i=${idx[$name]-}
		[[ -n $i ]] || continue
		unset "idx[$name]"
		mkdir -- "$PINCHECK_SHARD_CLAIMS/$name" 2>/dev/null || continue
		run_binary "$i"
	done
}

# make_work_dir: the run's private directory, in work.  In pincheck's VM
# (no other user, a fresh tmpfs) a mkdir saves mktemp's exec (0.15 s under
# TCG).
make_work_dir() {
	if [[ -n ${PINCHECK_VM_HW-} ]]; then
		work=${TMPDIR:-/tmp}/pincheck.$$
		mkdir -m 700 -- "$work" 2>/dev/null && return 0
	fi
	work=$(mktemp -d "${TMPDIR:-/tmp}/pincheck.XXXXXX")
}

run_suite() {
	local total i rc summary restore_rc=0

	trap 'on_signal INT 2' INT
	trap 'on_signal TERM 15' TERM
	trap 'on_signal HUP 1' HUP
	trap : PIPE
	trap on_output_limit USR1
	trap on_exit EXIT
	make_work_dir || die "cannot create a work directory"
	records=${PINCHECK_RECORDS:-$work/results}
	run_start=$EPOCHSECONDS
	run_metadata
	kprev=$work/kmsg.0
	knext=$work/kmsg.1
	: >"$records"

	printf 'TAP version 13\n'
	if ((!lazy_plan)); then
		total=$((${#plan_ids[@]} + ${#bin_path[@]} + ${#broken_name[@]}))
		printf '1..%d\n' "$total"
	fi
	if ((opt_setup)) && [[ -n ${PINCHECK_VM_HW-} && -z $opt_vfio_device ]]; then
		state_setup_disposable	# in pincheck's VM: nothing to restore
	elif ((opt_setup)); then
		state_setup "$work" || exit 2
	fi
	if [[ -n $opt_vfio_device ]]; then
		vfio_bind "$opt_vfio_device" || exit 2
		export PINCHECK_VFIO_DEVICE=$opt_vfio_device
	fi
	# the tests' knob journal (lib/harness/knob.c): in the state file's directory
	# when the run owns it (the next run replays it after a SIGKILL)
	knob_journal=$work/knobs
	((state_owned)) && knob_journal=$STATE_JOURNAL
	export PINCHECK_KNOB_JOURNAL=$knob_journal

	# a shard (scripts/vm/vm.sh --shards): the first reports them
	[[ ${PINCHECK_SHARD:-0/} == 0/* ]] || broken_name=()
	for i in "${!broken_name[@]}"; do
		report_broken_list "${broken_name[i]}" "${broken_rc[i]}"
	done

	read_kmsg "$kprev" && kok_prev=1
	if [[ -n ${PINCHECK_SHARD-} ]]; then
		run_claimed
	else
		for i in "${!bin_path[@]}"; do
			run_binary "$i"
		done
	fi

	((lazy_plan)) && printf '1..%d\n' "$num"
	summary=$(summarize "$opt_json" "$opt_junit")
	rc=$?
	# a shard's results are summed up by the host (vm.sh finish_shards)
	if [[ -n ${PINCHECK_RECORDS_OUT-} ]]; then
		cp -- "$records" "$PINCHECK_RECORDS_OUT" || rc=2
		summary=
	fi
	write_kcidb || rc=2
	restore_state || restore_rc=2
	cleanup_work
	guard_leave
	trap - EXIT INT TERM HUP
	[[ -n $summary ]] && printf '%s\n' "$summary"
	((rc == 4 && !restore_rc)) && exit 4
	((rc > 1 || restore_rc)) && exit 2
	exit "$rc"
}

# check_tmpdir_space: a full PINCHECK_TMPDIR would turn every file-backed
# case into a failure; it is this machine's setup, not a kernel verdict.
check_tmpdir_space() {
	local dir=${PINCHECK_TMPDIR:-/var/tmp} need_kb=8192 free_kb

	[[ -d $dir ]] || return 0	# the binaries fall back and say so
	[[ -n ${PINCHECK_VM_HW-} ]] && return 0	# the VM's fresh tmpfs (vm-init.sh)
	free_kb=$(df -Pk -- "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }')
	[[ $free_kb =~ ^[0-9]+$ ]] || return 0
	((free_kb >= need_kb)) ||
		cannot_run "PINCHECK_TMPDIR $dir has $free_kb kB free, the file backings need $need_kb: free space there or set PINCHECK_TMPDIR to another directory"
}

# check_vm_hw: PINCHECK_VM_HW (changes without records, for a guest that is
# thrown away) counts only in pincheck's VM, whose PID 1 is the initramfs's
# /init (scripts/vm/vm-init.sh) and which made the directory it names.
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
# suite_prepare STATE: before the build, for a run (not a listing): root,
# the output files, the run lock and process tracking; STATE 1: this run
# changes this machine (an interrupted run's state is restored first), 0:
# it hands over to a VM, a matrix or a kernel build.
suite_prepare() {
	local f

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
	# shellcheck source=scripts/runner/lib-state.sh
	. "$ROOT/scripts/runner/lib-state.sh"
	# shellcheck source=scripts/runner/lib-guard.sh
	. "$ROOT/scripts/runner/lib-guard.sh"
	trap on_early_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	# pincheck's VM is thrown away after its one run
	[[ -n ${PINCHECK_VM_HW-} ]] || guard_enter
	if (($1 == 0)); then
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
}

# suite_main: list the selected cases (-l) or run them; exits.
suite_main() {
	plan_cases
	if ((opt_list)); then
		list_cases
		exit
	fi
	check_tmpdir_space
	run_suite
}
