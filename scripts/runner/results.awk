# SPDX-License-Identifier: GPL-2.0
#
# Summarise run_tests.sh's result records (tab-separated: binary id result
# duration_ms reason end_epoch_s fix_kind fix_commits fix_release
# fix_subject fix_evidence diagnostic; see tap-merge.awk): write the JSON
# report (`json`, format "pincheck-results" version 2, schemas/results.json)
# and the JUnit XML (`junit`, junit-10.xsd) when asked, and print
#   # N of the skips: no event ...          (when some skips are "no event:")
#   # failed: N known bugs, N known changes, N unexplained   (when failed)
#   # Totals: pass:N fail:N xfail:N xpass:0 skip:N error:N    (kselftest)
#   N passed, N failed, N skipped
# (xfail counts as passed; fail, timeout and error as failed; the last
# line's format is fixed: CI reads it).  Exit 1 if anything failed, 4 if
# every case (kernel-log checks aside) skipped, else 0.
# Environment: PC_JSON, PC_JUNIT (files to write, empty for none) and the
# run's metadata: PC_KERNEL (uname -r), PC_KERNEL_VERSION (/proc/version),
# PC_KERNEL_SPEC (the --kernel SPEC, "host" on the running kernel),
# PC_ARCH, PC_HOSTNAME, PC_COMMIT (pincheck's git commit),
# PC_PROFILE, PC_ACCEL (a VM run), PC_START and PC_END (epoch seconds),
# PC_INCOMPLETE (non-empty: why the run ended early), PC_KGIT_COMMIT,
# PC_KGIT_URL, PC_KGIT_BRANCH (a kernel built from a git tree).
# POSIX awk (mawk on Debian): no gawk extensions.

BEGIN {
	FS = "\t"
	json = ENVIRON["PC_JSON"]
	junit = ENVIRON["PC_JUNIT"]
	kernel = ENVIRON["PC_KERNEL"]
	run_start = ENVIRON["PC_START"] + 0
	run_end = ENVIRON["PC_END"] + 0
	host = ENVIRON["PC_HOSTNAME"]
	compiler = compiler_of(ENVIRON["PC_KERNEL_VERSION"])
	for (i = 1; i < 32; i++)
		ctl[sprintf("%c", i)] = i
	ctlre = "[" sprintf("%c", 1) "-" sprintf("%c", 31) "]"
	us = sprintf("%c", 31)
	n = 0
}

{
	n++
	B[n] = $1; I[n] = $2; R[n] = $3; D[n] = $4 + 0; W[n] = $5
	T[n] = $6 + 0; FK[n] = $7; FC[n] = $8; FR[n] = $9; FS_[n] = $10
	FE[n] = $11; G[n] = $12
	gsub(us, "\n", G[n])
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

# A JSON string, or null when empty.
function json_opt(s) {
	return s == "" ? "null" : json_str(s)
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

# Epoch seconds as RFC 3339 UTC ("2026-12-05T12:00:00Z"); "" for 0.
function iso(t,   d, s, y, m, doy, era, yoe, mp) {
	if (t <= 0)
		return ""
	d = int(t / 86400)
	s = t - d * 86400
	d += 719468			# days from 0000-03-01
	era = int(d / 146097)
	doy = d - era * 146097		# day of era
	yoe = int((doy - int(doy / 1460) + int(doy / 36524) - int(doy / 146096)) / 365)
	y = yoe + era * 400
	doy = doy - (365 * yoe + int(yoe / 4) - int(yoe / 100))
	mp = int((5 * doy + 2) / 153)
	m = mp < 10 ? mp + 3 : mp - 9
	if (m <= 2)
		y++
	return sprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", y, m,
		       doy - int((153 * mp + 2) / 5) + 1,
		       int(s / 3600), int(s % 3600 / 60), s % 60)
}

# The compiler named by a /proc/version line: the first parenthesized
# part after the builder naming gcc or clang ("Linux version 6.12.1 (u@h)
# (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld ...) ...").
function compiler_of(v) {
	if (!match(v, /\) \([^,]*(gcc|clang)[^,]*,/))
		return ""
	return substr(v, RSTART + 3, RLENGTH - 4)
}

function failing(r) {
	return r == "fail" || r == "timeout" || r == "error"
}

# The JSON array of a whitespace-separated commit list.
function json_commits(s,   a, k, nn, out) {
	nn = split(s, a, " ")
	out = ""
	for (k = 1; k <= nn; k++)
		out = out (k > 1 ? ", " : "") json_str(a[k])
	return "[" out "]"
}

function json_fix(i) {
	if (FK[i] == "")
		return "null"
	return "{\"kind\": " json_str(FK[i]) ", \"commits\": " \
	       json_commits(FC[i]) ", \"release\": " json_str(FR[i]) \
	       ", \"subject\": " json_str(FS_[i]) ", \"evidence\": " \
	       json_opt(FE[i]) "}"
}

function json_run(file,   e) {
	printf "  \"run\": {\n" > file
	printf "    \"start_time\": %s, \"end_time\": %s,\n", \
	       json_opt(iso(run_start)), json_opt(iso(run_end)) > file
	printf "    \"complete\": %s, \"incomplete_reason\": %s,\n", \
	       ENVIRON["PC_INCOMPLETE"] == "" ? "true" : "false", \
	       json_opt(ENVIRON["PC_INCOMPLETE"]) > file
	printf "    \"pincheck_commit\": %s,\n", json_opt(ENVIRON["PC_COMMIT"]) > file
	printf "    \"kernel_spec\": %s, \"kernel_release\": %s,\n", \
	       json_str(ENVIRON["PC_KERNEL_SPEC"] == "" ? "host" : ENVIRON["PC_KERNEL_SPEC"]), \
	       json_opt(kernel) > file
	printf "    \"kernel_version\": %s, \"compiler\": %s,\n", \
	       json_opt(ENVIRON["PC_KERNEL_VERSION"]), \
	       json_opt(compiler) > file
	printf "    \"kernel_git\": %s,\n", ENVIRON["PC_KGIT_COMMIT"] == "" ? "null" : \
	       "{\"commit\": " json_str(ENVIRON["PC_KGIT_COMMIT"]) ", \"url\": " \
	       json_opt(ENVIRON["PC_KGIT_URL"]) ", \"branch\": " \
	       json_opt(ENVIRON["PC_KGIT_BRANCH"]) "}" > file
	printf "    \"arch\": %s, \"hostname\": %s, \"profile\": %s, \"accel\": %s,\n", \
	       json_opt(ENVIRON["PC_ARCH"]), json_opt(host), \
	       json_opt(ENVIRON["PC_PROFILE"]), json_opt(ENVIRON["PC_ACCEL"]) > file
	printf "    \"counts\": {\"passed\": %d, \"failed\": %d, \"skipped\": %d, " \
	       "\"xfail\": %d, \"timeouts\": %d, \"errors\": %d, " \
	       "\"known_bugs\": %d, \"known_changes\": %d, \"unexplained\": %d}\n", \
	       passed, failed, skipped, nxfail, ntimeout, nerror, \
	       nknown, nchange, nnew > file
	printf "  },\n" > file
}

function write_json(file,   i, sep, p, np) {
	printf "{\n  \"format\": \"pincheck-results\",\n  \"version\": 2,\n" > file
	json_run(file)
	printf "  \"results\": [" > file
	for (i = 1; i <= n; i++) {
		sep = (i < n) ? "," : ""
		np = split(I[i], p, "/")
		printf "\n    {\"id\": %s, \"binary\": %s, \"scenario\": %s, " \
		       "\"backing\": %s, \"engine\": %s, \"result\": %s, " \
		       "\"reason\": %s, \"duration_ms\": %d, \"end_time\": %s, " \
		       "\"known_fix\": %s, \"diagnostic\": %s}%s", \
		       json_str(I[i]), json_str(B[i]), json_opt(np >= 2 ? p[2] : ""), \
		       json_opt(np >= 4 ? p[3] : ""), json_opt(np >= 4 ? p[4] : ""), \
		       json_str(R[i]), json_str(W[i]), D[i], json_opt(iso(T[i])), \
		       json_fix(i), json_opt(G[i]), sep > file
	}
	printf "\n  ]\n}\n" > file
	close(file)
}

function secs(ms) {
	return sprintf("%.3f", ms / 1000)
}

# "known bug, fixed by C (R)" / "known behaviour change: C (R)" / "".
function fix_note(i) {
	if (FK[i] == "change")
		return "known behaviour change: " FC[i] " (" FR[i] ")"
	if (FK[i] == "fix")
		return "known bug, fixed by " FC[i] " (" FR[i] ")"
	return ""
}

# One <testcase>.  The classname carries the kernel: JUnit files of
# several kernels (the matrix) merge without collisions.
function junit_case(file, i, cls,   note, body) {
	printf "    <testcase classname=\"%s\" name=\"%s\" time=\"%s\"", \
	       xml_str(cls), xml_str(I[i]), secs(D[i]) > file
	if (R[i] == "pass") {
		print "/>" > file
		return
	}
	print ">" > file
	note = fix_note(i)
	body = W[i] (G[i] != "" ? "\n" G[i] : "") (note != "" ? "\n" note : "")
	if (R[i] == "fail" || R[i] == "timeout")
		printf "      <failure type=\"%s\" message=\"%s\">%s</failure>\n", \
		       R[i], xml_str(W[i] (note != "" ? " [" note "]" : "")), \
		       xml_str(body) > file
	else if (R[i] == "error")
		printf "      <error type=\"error\" message=\"%s\">%s</error>\n", \
		       xml_str(W[i]), xml_str(body) > file
	else if (R[i] == "skip")
		printf "      <skipped message=\"%s\"/>\n", xml_str(W[i]) > file
	else
		printf "      <skipped type=\"xfail\" message=\"%s\"/>\n", \
		       xml_str(W[i]) > file
	print "    </testcase>" > file
}

function write_junit(file,   i, j, b, nb, order, tms, cls, ts) {
	nb = 0
	for (i = 1; i <= n; i++) {
		if (!(B[i] in seen)) {
			seen[B[i]] = 1
			order[++nb] = B[i]
		}
		b = B[i]
		cnt[b]++
		if (R[i] == "fail" || R[i] == "timeout") fails[b]++
		if (R[i] == "error") errs[b]++
		if (R[i] == "skip" || R[i] == "xfail") skips[b]++
		msum[b] += D[i]
		tms += D[i]
	}
	ts = iso(run_start)
	sub(/Z$/, "", ts)	# xs:dateTime without zone, as Ant writes it
	print "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" > file
	printf "<testsuites name=\"pincheck\" tests=\"%d\" failures=\"%d\" " \
	       "errors=\"%d\" time=\"%s\">\n", \
	       n, failed - nerror, nerror, secs(tms) > file
	for (j = 1; j <= nb; j++) {
		b = order[j]
		cls = kernel != "" ? kernel : "unknown"
		gsub(/[^A-Za-z0-9_+-]/, "_", cls)
		cls = "pincheck." cls "." b
		printf "  <testsuite name=\"%s\" tests=\"%d\" failures=\"%d\" " \
		       "errors=\"%d\" skipped=\"%d\" time=\"%s\" id=\"%d\"%s%s>\n", \
		       xml_str(b), cnt[b], fails[b] + 0, errs[b] + 0, \
		       skips[b] + 0, secs(msum[b]), j - 1, \
		       ts != "" ? " timestamp=\"" ts "\"" : "", \
		       host != "" ? " hostname=\"" xml_str(host) "\"" : "" > file
		printf "    <properties><property name=\"kernel\" " \
		       "value=\"%s\"/></properties>\n", xml_str(kernel) > file
		for (i = 1; i <= n; i++)
			if (B[i] == b)
				junit_case(file, i, cls)
		print "  </testsuite>" > file
	}
	print "</testsuites>" > file
	close(file)
}

function plural(k, one, many) {
	return k " " (k == 1 ? one : many)
}

END {
	passed = failed = skipped = noevent = 0
	nxfail = ntimeout = nerror = nknown = nchange = nnew = 0
	ran = skipped_cases = 0
	for (i = 1; i <= n; i++) {
		if (R[i] == "pass" || R[i] == "xfail") passed++
		else if (R[i] == "skip") skipped++
		else failed++
		if (R[i] == "xfail") nxfail++
		if (R[i] == "timeout") ntimeout++
		if (R[i] == "error") nerror++
		if (failing(R[i])) {
			if (FK[i] == "fix") nknown++
			else if (FK[i] == "change") nchange++
			else nnew++
		}
		if (R[i] == "skip" && W[i] ~ /^no event:/) noevent++
		if (I[i] !~ /\/kernel-log\//) {
			if (R[i] == "skip") skipped_cases++
			else ran++
		}
	}
	if (json != "")
		write_json(json)
	if (junit != "")
		write_junit(junit)
	if (noevent)
		printf "# %d of the skips: no event (the event a case is about did not happen)\n", noevent
	if (failed)
		printf "# failed: %s, %s, %s%s\n", \
		       plural(nknown, "known bug", "known bugs"), \
		       plural(nchange, "known change", "known changes"), \
		       nnew " unexplained", \
		       nerror ? " (" plural(nerror, "test error", "test errors") ": a binary died)" : ""
	printf "# Totals: pass:%d fail:%d xfail:%d xpass:0 skip:%d error:%d\n", \
	       passed - nxfail, failed - nerror, nxfail, skipped, nerror
	printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped
	if (failed > 0)
		exit 1
	exit (ran == 0 && skipped_cases > 0) ? 4 : 0
}
