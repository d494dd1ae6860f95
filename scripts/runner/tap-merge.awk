# SPDX-License-Identifier: GPL-2.0
#
# Merge one test binary's TAP 13 into run_tests.sh's global stream, while
# it runs: renumber its result lines from `start`, pass diagnostics and YAML
# blocks through, drop (or, verbose, comment) its own version/plan/totals.
# After the binary, run_tests.sh writes one marker line (see below); then
# this program reports the planned cases the binary never reported and the
# synthetic case "<bin>/kernel-log/all/kmsg" from the kernel log read before and
# after the binary.  Every result is also appended (and flushed) to `recf`,
# one line of tab-separated fields (a guest keeps them in its memory; the
# host rebuilds them from the TAP of a guest that died: tap-records.awk):
#   binary id result duration_ms reason end_epoch_s fix_kind fix_commits
#   fix_release fix_subject fix_evidence diagnostic
# with result one of pass fail skip xfail timeout error (a binary that
# died before the case: a test fault), end_epoch_s the time the result was
# read, fix_* the configs/known-fixes entry of a failing case (kind "fix"
# or "change"; empty if none) and diagnostic the comment lines before a
# failing result (the mismatch report), joined by \037.
#
# Environment (strings pass through ENVIRON, not -v, to keep backslashes):
# PC_BIN, PC_START (number of the first result), PC_PLAN (file of planned
# ids, one a line), PC_RECORDS, PC_VERBOSE, PC_TIMEOUT (--timeout seconds),
# PC_KPREV and PC_KNEXT (kernel log files before and after the binary),
# PC_FIXES (the known-fixes table: a failing case it matches gets a "known
# bug, fixed by ..." line and reason suffix; the verdict stays FAIL).
# Markers: "\001end RC KOK TIMEDOUT DESCRIPTION" where RC is the binary's
# exit status, KOK 1 if both kernel logs could be read, TIMEDOUT 1 if the
# binary was killed by the --timeout, DESCRIPTION how it ended; or
# "\001abort" (the run is interrupted: report nothing more).
# PC_OUTPUT_LIMIT: past this many bytes of the binary's output the rest is
# dropped and run_tests.sh (pid PC_RUNNER) is sent SIGUSR1 to stop it.
# POSIX awk (mawk on Debian): no gawk extensions.

BEGIN {
	bin = ENVIRON["PC_BIN"]
	start = ENVIRON["PC_START"] + 0
	planf = ENVIRON["PC_PLAN"]
	recf = ENVIRON["PC_RECORDS"]
	verbose = ENVIRON["PC_VERBOSE"] + 0
	timeout_s = ENVIRON["PC_TIMEOUT"]
	kprev = ENVIRON["PC_KPREV"]
	knext = ENVIRON["PC_KNEXT"]
	marker = sprintf("%c", 1) "end "
	abort = sprintf("%c", 1) "abort"
	kre = "WARNING:|BUG:|Oops|general protection|Call Trace|" \
	      "list_del corruption|refcount_t:"
	np = 0
	while ((getline line < planf) > 0)
		if (line != "" && !(line in planned))
			planned[line] = ++np
	close(planf)
	load_fixes(ENVIRON["PC_FIXES"])
	num = start - 1
	pend = 0
	obuf = ""
	inyaml = 0
	ended = 0
	limit = ENVIRON["PC_OUTPUT_LIMIT"] + 0
	nbytes = 0
	over = 0
}

# The time in whole seconds since the epoch (POSIX awk has no clock:
# srand() seeds with it and the next srand() returns that seed).
function now() {
	srand()
	return srand()
}

# A line for the stream, kept until the result it belongs to is complete
# (its YAML block ended; a skip: the next other result) or the binary is
# done, then written in one write:
# in a guest tap.log is a 9p file, and each write a round trip to QEMU of
# ~4 ms under TCG (stdout is unbuffered: mawk -W interactive).
function out(s) {
	obuf = obuf s "\n"
}

function flush_out() {
	if (obuf == "")
		return
	printf "%s", obuf
	obuf = ""
}

function comment(s) {
	if (s ~ /^#/)
		out(s)
	else
		out("# " s)
}

function flush_rec() {
	if (!pend)
		return
	print bin "\t" pid "\t" pres "\t" pdur "\t" preason "\t" pend_t \
		"\t" pfix "\t" pdiag >> recf
	fflush(recf)
	pend = 0
}

# rec ID RESULT DURATION REASON FIX: a result; FIX is a known-fixes index
# or 0.  Written when its YAML block (its duration) has been read.
function rec(id, res, dur, reason, fix) {
	flush_rec()
	gsub(/\t/, " ", reason)
	pid = id; pres = res; pdur = dur; preason = reason
	pfix = fix ? fix_f[fix] : nofix
	pdiag = (res == "fail" || res == "timeout" || res == "error") ? diag : ""
	diag = ""
	ndiag = 0
	pend_t = now()
	pend = 1
}

# "ok 3 id # SKIP reason", "not ok 4 id # reason", "ok 5 - id" ...
# (tap_result: scripts/runner/tap-result.awk, given before this file)
function result(line,   r, id, res, reason, fix) {
	tap_result(line, r)
	id = r["id"]
	res = r["res"]
	reason = r["reason"]
	if (!(id in planned) || (id in seen)) {
		out("# unplanned result from " bin ": " line)
		return
	}
	seen[id] = 1
	fix = 0
	if (res == "fail" || res == "timeout") {
		fix = known_fix(id, reason)	# said before the result: YAML follows it
		if (fix)
			out("# " id ": " fix_what[fix])
	}
	num++
	out((line ~ /^ok/ ? "ok " : "not ok ") num " " r["rest"])
	rec(id, res, 0, reason, fix)
	inyaml = 0
	lastres = 1
}

limit > 0 && index($0, marker) != 1 && $0 != abort {
	nbytes += length($0) + 1
	if (over)
		next
	if (nbytes > limit) {
		over = 1
		out("# " bin ": more than " limit " bytes of output: stopped (PINCHECK_OUTPUT_LIMIT)")
		if (ENVIRON["PC_RUNNER"] != "")
			system("kill -USR1 " ENVIRON["PC_RUNNER"])
		next
	}
}

index($0, marker) == 1 {
	split(substr($0, length(marker) + 1), f, " ")
	rc = f[1]; kok = f[2]; timedout = f[3]
	desc = substr($0, length(marker) + 1)
	sub(/^[^ ]+ [^ ]+ [^ ]+ ?/, "", desc)
	ended = 1
	exit
}

$0 == abort { exit }

/^(not )?ok( |$)/ {
	result($0)
	next
}

inyaml {
	if ($0 ~ /^ +duration_ms: *[0-9]+/ && pend) {
		pdur = $0
		sub(/^ +duration_ms: */, "", pdur)
		pdur += 0
	}
	out($0)
	if ($0 ~ /^ +\.\.\.$/) {
		inyaml = 0
		if (pres != "skip")	# skips come in bursts: with the next
			flush_out()	# result that took time
		flush_rec()
	}
	next
}

lastres && /^ +---$/ {
	inyaml = 1
	lastres = 0
	out($0)
	next
}

{ lastres = 0 }

/^TAP version / || /^1\.\.[0-9]+/ || /^# *Totals:/ {
	if (verbose)
		out("# " bin ": " $0)
	next
}

/^#/ { keep_diag($0); out($0); next }
/^[ \t]*$/ { next }
{ keep_diag("# " $0); comment($0) }

# Read a kernel log file into k[1..kn]; return 0 if unreadable.
function readlog(file, k,   n, line) {
	n = 0
	while ((getline line < file) > 0)
		k[++n] = line
	close(file)
	return n
}

function kernel_log(   pn, nn, i, s, bad, plast, inoom, noom, klid) {
	klid = bin "/kernel-log/all/kmsg"
	if (!kok) {
		num++
		out("ok " num " " klid " # SKIP dmesg not readable")
		rec(klid, "skip", 0, "dmesg not readable", 0)
		return
	}
	pn = readlog(kprev, kp)
	nn = readlog(knext, kn)
	s = 1
	if (pn > 0) {
		plast = kp[pn]
		if (pn <= nn && kn[pn] == plast) {
			s = pn + 1
		} else {
			for (i = nn; i >= 1; i--)
				if (kn[i] == plast)
					break
			s = i + 1
		}
	}
	bad = ""
	inoom = 0
	noom = 0
	for (i = s; i <= nn; i++) {
		if (verbose)
			out("# kmsg: " kn[i])
		# An OOM report (a test that runs a memory cgroup out of
		# memory on purpose) dumps a stack: not a kernel bug.
		if (kn[i] ~ /invoked oom-killer:/) {
			inoom = 1
			noom++
		}
		if (!inoom && bad == "" && kn[i] ~ kre)
			bad = kn[i]
		if (kn[i] ~ /Out of memory and no killable processes|oom-kill:/)
			inoom = 0
	}
	if (noom)
		out("# kernel log: " noom " OOM report(s), their stack dumps not counted as kernel bugs")
	num++
	if (bad == "") {
		out("ok " num " " klid)
		rec(klid, "pass", 0, "", 0)
		return
	}
	sub(/^ +/, "", bad)
	out("not ok " num " " klid " # " bad)
	diag = ""
	ndiag = 0
	keep_diag("# kernel log: " bad)
	rec(klid, "fail", 0, bad, 0)
}

END {
	if (!ended) {		# the run was interrupted: report nothing more
		flush_rec()
		flush_out()
		exit 0
	}
	for (id in planned)
		byno[planned[id]] = id
	for (i = 1; i <= np; i++) {
		id = byno[i]
		if (id in seen)
			continue
		num++
		if (timedout) {
			why = "binary killed after " timeout_s "s"
			out("not ok " num " " id " # TIMEOUT " why)
			rec(id, "timeout", 0, why, 0)
		} else {
			why = desc " before this case"
			out("not ok " num " " id " # " why)
			rec(id, "error", 0, why, 0)
		}
	}
	kernel_log()
	flush_rec()
	flush_out()
}
