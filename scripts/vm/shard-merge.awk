# SPDX-License-Identifier: GPL-2.0
#
# awk -v out=TAPLOG -f shard-merge.awk: the TAP 13 streams of the guests of
# one sharded run (scripts/vm/vm.sh run_sharded) as one stream on stdout
# and in TAPLOG.  Input: "K<TAB>LINE" for a line of shard K, in the order
# each shard wrote them, the shards' lines interleaved; "K<TAB>\001eof"
# when shard K is done.  A shard's lines are held until the result they
# lead to is complete (its YAML block ended), then written together, the
# result lines renumbered in the order they come out.  The version and the
# plan (every shard plans all cases) come out once, before any result.
# POSIX awk (mawk on Debian): no gawk extensions.

BEGIN {
	eof = sprintf("%c", 1) "eof"
	num = 0
	planned = 0
}

function emit(s) {
	print s
	print s >out
}

# Shard @k's held lines, its results numbered on; nothing before the plan.
function release(k,   n, i, l) {
	if (!planned || held[k] == "")
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
	if (!version++)
		emit(line)
	next
}

line ~ /^1\.\.[0-9]+/ {
	if (planned)
		next
	planned = 1
	emit(line)
	for (s in held)
		release(s)
	next
}

line ~ /^Bail out!/ || (!planned && line ~ /^#/ && held[k] == "") {
	emit(line)
	next
}

{
	held[k] = held[k] line "\n"
	if (line ~ /^ +\.\.\.$/)
		release(k)
}

END {
	planned = 1
	for (s in held)
		release(s)
}
