# SPDX-License-Identifier: GPL-2.0
#
# awk -f tap-result.awk -f known-fixes.awk -f tap-records.awk RECORDS TAP:
# the records (tap-merge.awk's format) of the results TAP shows and RECORDS
# lacks, for a guest that died: a guest keeps its records in its own memory
# (writing them to the host costs a 9p round trip per result), so the host
# rebuilds them from the TAP stream.  Their binary is the id's first part,
# their duration the YAML block's if it got out, their time now; a failing
# one gets the configs/known-fixes entry (PC_FIXES, as the guest looked it
# up) and the comment lines before it as its diagnostic.
# POSIX awk (mawk on Debian): no gawk extensions.

function emit() {
	if (pend)
		printf "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", pbin, pid, pres, pdur,
		       preason, now, pfix, pdiag
	pend = 0
}

BEGIN {
	srand()
	now = srand()
	load_fixes(ENVIRON["PC_FIXES"])
}

FILENAME == ARGV[1] {
	split($0, f, "\t")
	recorded[f[2]] = 1
	next
}

/^(not )?ok( |$)/ {
	emit()
	d = diag
	diag = ""
	ndiag = 0
	if (!tap_result($0, r) || (r["id"] in recorded) || r["id"] !~ /\//)
		next
	recorded[r["id"]] = 1
	pid = r["id"]
	pbin = pid
	sub(/\/.*/, "", pbin)
	pres = r["res"]
	preason = r["reason"]
	gsub(/\t/, " ", preason)
	pdur = 0
	fix = (pres == "fail" || pres == "timeout") ? known_fix(pid, preason) : 0
	pfix = fix ? fix_f[fix] : nofix
	pdiag = (pres == "fail" || pres == "timeout") ? d : ""
	pend = 1
	next
}

pend && /^ +duration_ms: *[0-9]+/ {
	sub(/^ +duration_ms: */, "")
	pdur = $0 + 0
	next
}

# the merger's own line before a known failure is not part of the case's
# diagnostic
/^# [^ ]+: known (bug, fixed by|behaviour change:) / { next }

/^#/ { keep_diag($0) }

END { emit() }
