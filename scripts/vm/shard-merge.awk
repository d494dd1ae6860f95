# SPDX-License-Identifier: GPL-2.0
#
# awk -v out=TAPLOG -f shard-merge.awk: the TAP 13 streams of the guests of
# one sharded run (scripts/vm/vm.sh run_sharded) as one stream on stdout
# and in TAPLOG.  Input: "K<TAB>LINE" for a line of shard K, in the order
# each shard wrote them, the shards' lines interleaved; "K<TAB>\001eof"
# when shard K is done.  A shard's lines are held until the result they
# lead to is complete (its YAML block ended), then written together, the
# result lines renumbered in the order they come out.  The version comes
# out once, first; the plan last, as the number of results written (a
# shard lists a binary only when it claims it and plans its own results at
# its end: scripts/runner/suite.sh plan_shard; TAP 13 allows a plan there).
# POSIX awk (mawk on Debian): no gawk extensions.

BEGIN {
	eof = sprintf("%c", 1) "eof"
	num = 0
}

function emit(s) {
	print s
	print s >out
}

# Shard @k's held lines, its results numbered on.
function release(k,   n, i, l) {
	if (held[k] == "")
		return
	n = split(held[k], l, "\n")
	for (i = 1; i < n; i++) {
		if (l[i] ~ /^(not )?ok [0-9]+/) {
			num++
			sub(/ok [0-9]+/, "ok " num, l[i])
		}
		emit(l[i])
	}
	held[k] = ""
	fflush()
	fflush(out)
}

{
	k = $0
	sub(/\t.*/, "", k)
	line = substr($0, length(k) + 2)
}

line == eof {
	done[k] = 1
	release(k)
	next
}

line ~ /^TAP version / {
	started[k] = 1
	if (!version++)
		emit(line)
	next
}

line ~ /^1\.\.[0-9]+/ {
	next
}

# a guest's own lines before its TAP starts (scripts/vm/guest.sh) at once
line ~ /^Bail out!/ || (!started[k] && line ~ /^#/ && held[k] == "") {
	emit(line)
	next
}

{
	held[k] = held[k] line "\n"
	if (line ~ /^ +\.\.\.$/)
		release(k)
}

END {
	for (s in held)
		release(s)
	emit("1.." num)
}
