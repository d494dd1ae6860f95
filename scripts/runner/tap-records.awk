# SPDX-License-Identifier: GPL-2.0
#
# awk -f tap-result.awk -f tap-records.awk RECORDS TAP: the records
# (tap-merge.awk's format) of the results TAP shows and RECORDS lacks, for
# a guest that died between printing a result and recording it.  Their
# binary is the id's first part, their duration the YAML block's if it got
# out, their time now; no known-fix lookup (fix fields empty).
# POSIX awk (mawk on Debian): no gawk extensions.

function emit() {
	if (pend)
		printf "%s\t%s\t%s\t%d\t%s\t%s\n", pbin, pid, pres, pdur, preason, now
	pend = 0
}

BEGIN {
	srand()
	now = srand()
}

FILENAME == ARGV[1] {
	split($0, f, "\t")
	recorded[f[2]] = 1
	next
}

/^(not )?ok( |$)/ {
	emit()
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
	pend = 1
	next
}

pend && /^ +duration_ms: *[0-9]+/ {
	sub(/^ +duration_ms: */, "")
	pdur = $0 + 0
}

END { emit() }
