# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# One run at a time, and nothing of a killed run left running.  Sourced by
# the suite core (scripts/runner/suite.sh) after lib-state.sh (uses its
# state_dir, is_mounted and the caller's warn).
#
# The lock: flock on $state_dir/lock, taken before the build, the listing
# and any change; the state file is written and an interrupted run's state
# repaired under it.  A second run exits 2 naming the first one's pid.
#
# The process tracking: a cgroup v1 hierarchy without controllers
# (name=pincheck, mounted on /run/pincheck-cgroup; it changes no resource
# accounting and nothing the memcg tests see).  Each run moves itself into
# run.<pid>; everything it starts (test binaries and their children, QEMU,
# helpers) inherits it, even across setsid or a double fork.  A run finds
# the cgroups whose owner is gone and kills what is left in them first,
# then unmounts the file systems a killed odirect_fork left on
# /run/pincheck-*.<pid> (its loop devices detach themselves once unused).

# shellcheck disable=SC2154 # state_dir: set by scripts/runner/lib-state.sh
GUARD_CG=${PINCHECK_CGROUP_DIR:-/run/pincheck-cgroup}
guard_lock_fd=
guard_cg_dir=
guard_cg_home=

# pid_alive PID: running, not a zombie (killed orphans wait for a reaper).
pid_alive() {
	local stat

	kill -0 "$1" 2>/dev/null || return 1
	{ IFS= read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	[[ ${stat##*) } != Z* ]]
}

# guard_lock: take the run lock, or exit 2 naming the run that holds it.
guard_lock() {
	local lock=$state_dir/lock pid=

	if [[ ! -d $state_dir ]] && ! mkdir -p -- "$state_dir" 2>/dev/null; then
		die "cannot create $state_dir (PINCHECK_STATE_DIR)"
	fi
	command -v flock >/dev/null || die "flock not found (Debian: util-linux)"
	{ exec {guard_lock_fd}>>"$lock"; } 2>/dev/null || die "cannot open $lock"
	# an orphan of a SIGKILLed run may hold it for the moment it takes
	# to die after guard_sweep's SIGKILL
	if ! flock -w "${PINCHECK_LOCK_WAIT:-2}" "$guard_lock_fd"; then
		{ read -r pid <"$lock"; } 2>/dev/null
		if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
			die "another pincheck run (pid $pid) owns the machine state; wait for it to end"
		fi
		die "processes of an ended run hold $lock (see: fuser -v $lock)"
	fi
	printf '%s\n' "$$" >"$lock"
}

# guard_cg_mount: the tracking hierarchy's mount point, mounted if needed.
guard_cg_mount() {
	is_mounted "$GUARD_CG" && return 0
	mkdir -p -- "$GUARD_CG" 2>/dev/null &&
		mount -t cgroup -o none,name=pincheck pincheck "$GUARD_CG" 2>/dev/null
}

# guard_kill_cgroup DIR: SIGKILL everything in DIR until it is empty (5 s).
# Their number in REPLY.
guard_kill_cgroup() {
	local -a procs
	local i n=0

	for ((i = 0; i < 50; i++)); do
		mapfile -t procs 2>/dev/null <"$1/cgroup.procs" || break
		((${#procs[@]})) || break
		((i)) || n=${#procs[@]}
		kill -KILL "${procs[@]}" 2>/dev/null
		sleep 0.1
	done
	REPLY=$n
	rmdir -- "$1" 2>/dev/null
}

# guard_unmount_stale: file systems a killed binary mounted on
# /run/pincheck-TAG.PID/... while PID is gone (as lib/fixtures/blockdev.c reaps them).
guard_unmount_stale() {
	local dev mnt rest pid

	while read -r dev mnt rest; do
		[[ $mnt =~ ^/run/pincheck-[a-z_]+\.([0-9]+)/ ]] || continue
		pid=${BASH_REMATCH[1]}
		pid_alive "$pid" && continue
		umount -l -- "$mnt" 2>/dev/null &&
			warn "unmounted $mnt ($dev) left by a killed test binary"
	done 2>/dev/null </proc/self/mounts
}

# guard_sweep: end what runs whose owner died left behind.
guard_sweep() {
	local d owner

	for d in "$GUARD_CG"/run.*; do
		[[ -d $d ]] || continue
		owner=${d##*/run.}
		# a reused pid keeps a stale cgroup until it ends: never a
		# wrong kill
		pid_alive "$owner" && continue
		guard_kill_cgroup "$d"
		((REPLY)) &&
			warn "ended $REPLY process(es) left by an interrupted run (pid $owner)"
	done
	guard_unmount_stale
}

# guard_enter: sweep, then move this run into its own tracking cgroup.
# Without cgroup support the run goes on untracked (a note on stderr).
guard_enter() {
	local line

	if ! guard_cg_mount; then
		warn "note: no cgroup v1 named hierarchy ($GUARD_CG): processes of a SIGKILLed run are not ended by the next"
		guard_unmount_stale
		return 0
	fi
	guard_sweep
	while IFS= read -r line; do
		[[ $line == *:name=pincheck:* ]] && guard_cg_home=${line##*:name=pincheck:}
	done 2>/dev/null </proc/self/cgroup
	guard_cg_dir=$GUARD_CG/run.$$
	if ! mkdir -p -- "$guard_cg_dir" 2>/dev/null ||
	   ! { printf '%s\n' "$$" >"$guard_cg_dir/cgroup.procs"; } 2>/dev/null; then
		warn "note: cannot join $guard_cg_dir: this run's processes are not tracked"
		guard_cg_dir=
	fi
}

# guard_leave: end what the run left running (nothing, normally), leave
# and remove its cgroup.  Called on every exit path.
guard_leave() {
	local p
	local -a left=()

	[[ -n $guard_cg_dir && -d $guard_cg_dir ]] || return 0
	{ printf '%s\n' "$$" >"$GUARD_CG${guard_cg_home%/}/cgroup.procs"; } 2>/dev/null ||
		return 0
	while read -r p; do
		left+=("$p")
	done 2>/dev/null <"$guard_cg_dir/cgroup.procs"
	((${#left[@]})) && kill -KILL "${left[@]}" 2>/dev/null
	rmdir -- "$guard_cg_dir" 2>/dev/null
	guard_cg_dir=
}
