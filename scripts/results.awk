# SPDX-License-Identifier: GPL-2.0
#
# Summarise run_tests.sh's result records (binary TAB id TAB result TAB
# duration_ms TAB reason, see tap-merge.awk): write the JSON array (`json`)
# and the JUnit XML (`junit`) when asked, print the summary line
# "N passed, N failed, N skipped" (xfail counts as passed, timeout as
# failed), after a comment counting the skips whose reason starts with
# "no event:", and exit 1 if anything failed.  Environment: PC_JSON, PC_JUNIT
# (files to write, empty for none), PC_KERNEL (uname -r).
# POSIX awk (mawk on Debian): no gawk extensions.

BEGIN {
	FS = "\t"
	json = ENVIRON["PC_JSON"]
	junit = ENVIRON["PC_JUNIT"]
	kernel = ENVIRON["PC_KERNEL"]
	for (i = 1; i < 32; i++)
		ctl[sprintf("%c", i)] = i
	ctlre = "[" sprintf("%c", 1) "-" sprintf("%c", 31) "]"
	n = 0
}

{
	n++
	B[n] = $1; I[n] = $2; R[n] = $3; D[n] = $4 + 0; W[n] = $5
}

function json_str(s,   out, i, c, len) {
	if (!index(s, "\\") && !index(s, "\"") && s !~ ctlre)
		return "\"" s "\""
	out = ""
	len = length(s)
	for (i = 1; i <= len; i++) {
		c = substr(s, i, 1)
		if (c == "\\" || c == "\"")
			out = out "\\" c
		else if (c == "\n")
			out = out "\\n"
		else if (c == "\t")
			out = out "\\t"
		else if (c == "\r")
			out = out "\\r"
		else if (c in ctl)
			out = out sprintf("\\u%04x", ctl[c])
		else
			out = out c
	}
	return "\"" out "\""
}

# XML 1.0 allows no control characters but tab, newline and return.
function xml_str(s,   out, i, c, len) {
	if (s !~ /[&<>"']/ && s !~ ctlre)
		return s
	out = ""
	len = length(s)
	for (i = 1; i <= len; i++) {
		c = substr(s, i, 1)
		if (c == "&") out = out "&amp;"
		else if (c == "<") out = out "&lt;"
		else if (c == ">") out = out "&gt;"
		else if (c == "\"") out = out "&quot;"
		else if (c == "'") out = out "&apos;"
		else if ((c in ctl) && c != "\t" && c != "\n" && c != "\r")
			out = out "?"
		else
			out = out c
	}
	return out
}

function write_json(file,   i, sep) {
	printf "[" > file
	for (i = 1; i <= n; i++) {
		sep = (i < n) ? "," : ""
		printf "\n  {\"id\": %s, \"result\": %s, \"reason\": %s, " \
		       "\"duration_ms\": %d, \"kernel\": %s}%s", \
		       json_str(I[i]), json_str(R[i]), json_str(W[i]), D[i], \
		       json_str(kernel), sep > file
	}
	printf "\n]\n" > file
	close(file)
}

function secs(ms) {
	return sprintf("%.3f", ms / 1000)
}

function write_junit(file,   i, j, b, nb, order, t, f, s, ms, tt, tf, ts, tms) {
	nb = 0
	for (i = 1; i <= n; i++) {
		if (!(B[i] in seen)) {
			seen[B[i]] = 1
			order[++nb] = B[i]
		}
		b = B[i]
		cnt[b]++
		if (R[i] == "fail" || R[i] == "timeout") fails[b]++
		if (R[i] == "skip") skips[b]++
		msum[b] += D[i]
		tt++; tms += D[i]
	}
	tf = failed; ts = skipped
	print "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" > file
	printf "<testsuites name=\"pincheck\" tests=\"%d\" failures=\"%d\" " \
	       "errors=\"0\" skipped=\"%d\" time=\"%s\">\n", \
	       tt, tf, ts, secs(tms) > file
	for (j = 1; j <= nb; j++) {
		b = order[j]
		printf "  <testsuite name=\"%s\" tests=\"%d\" failures=\"%d\" " \
		       "errors=\"0\" skipped=\"%d\" time=\"%s\">\n", \
		       xml_str(b), cnt[b], fails[b] + 0, skips[b] + 0, \
		       secs(msum[b]) > file
		printf "    <properties><property name=\"kernel\" " \
		       "value=\"%s\"/></properties>\n", xml_str(kernel) > file
		for (i = 1; i <= n; i++) {
			if (B[i] != b)
				continue
			printf "    <testcase classname=\"%s\" name=\"%s\" " \
			       "time=\"%s\"", xml_str(b), xml_str(I[i]), \
			       secs(D[i]) > file
			if (R[i] == "pass") {
				print "/>" > file
				continue
			}
			print ">" > file
			if (R[i] == "fail" || R[i] == "timeout")
				printf "      <failure type=\"%s\" message=\"%s\">" \
				       "%s</failure>\n", R[i], xml_str(W[i]), \
				       xml_str(W[i]) > file
			else if (R[i] == "skip")
				printf "      <skipped message=\"%s\"/>\n", \
				       xml_str(W[i]) > file
			else
				printf "      <system-out>XFAIL: %s</system-out>\n", \
				       xml_str(W[i]) > file
			print "    </testcase>" > file
		}
		print "  </testsuite>" > file
	}
	print "</testsuites>" > file
	close(file)
}

END {
	passed = failed = skipped = noevent = 0
	for (i = 1; i <= n; i++) {
		if (R[i] == "pass" || R[i] == "xfail") passed++
		else if (R[i] == "skip") skipped++
		else failed++
		if (R[i] == "skip" && W[i] ~ /^no event:/) noevent++
	}
	if (json != "")
		write_json(json)
	if (junit != "")
		write_junit(junit)
	if (noevent)
		printf "# %d of the skips: no event (the event a case is about did not happen)\n", noevent
	printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped
	exit (failed > 0) ? 1 : 0
}
