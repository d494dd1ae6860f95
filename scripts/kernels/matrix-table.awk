# SPDX-License-Identifier: GPL-2.0
#
# scripts/kernels/matrix-table.awk: the kernel matrix from scripts/kernels/matrix-tsv.jq's
# lines (kernel, id, result, class, reason, known-fix note; class is
# known-bug, known-change or new for a failing case).  Environment:
# PC_KERNELS (the column order, space separated), PC_HEADERS (optional
# column titles, tab separated, in that order), PC_FULL (1: a row per case
# id; binary: a row per binary, cells passed/failed/skipped; else a row per
# <binary>/<scenario>), PC_MD and PC_HTML (files to write the
# table to).  Prints the table as text, one line per row.  A cell with a
# failure that no configs/known-fixes entry explains ends in " NEW"; in the
# HTML every failing cell opens to its case ids, reasons and known-fix notes.

function group(id,    n, p) {
	if (ENVIRON["PC_FULL"] == 1)
		return id
	n = split(id, p, "/")
	if (ENVIRON["PC_FULL"] == "binary")
		return p[1]
	return n >= 4 ? p[1] "/" p[2] : id
}

# A binary's cell: passed/failed/skipped (xfail counts as passed; timeouts
# and test faults as failed).
function binary_cell(key) {
	return (cnt[key, "pass"] + cnt[key, "xfail"]) "/" \
	       (cnt[key, "fail"] + cnt[key, "timeout"] + cnt[key, "error"]) "/" \
	       (cnt[key, "skip"] + 0) new_mark(key)
}

# The cell of row @r in column @k.
function cell(r, k,    key, m, t) {
	key = r SUBSEP k
	m = total[key]
	if (!m)
		return "-"
	if (ENVIRON["PC_FULL"] == 1)
		return (last[key] == "fail" ? "FAIL" : last[key]) new_mark(key)
	if (ENVIRON["PC_FULL"] == "binary")
		return binary_cell(key)
	if (cnt[key, "fail"])
		return "FAIL " cnt[key, "fail"] "/" m new_mark(key)
	if (cnt[key, "timeout"])
		return "timeout " cnt[key, "timeout"] "/" m new_mark(key)
	if (cnt[key, "error"])
		return "error " cnt[key, "error"] "/" m new_mark(key)
	if (cnt[key, "pass"]) {
		t = "pass " cnt[key, "pass"]
		if (cnt[key, "xfail"])
			t = t " +" cnt[key, "xfail"] " xfail"
		return t
	}
	if (cnt[key, "xfail"])
		return "xfail " cnt[key, "xfail"]
	return "skip"
}

# " NEW" when a failure in the cell has no known-fixes entry.
function new_mark(key) {
	return nnew[key] ? " NEW" : ""
}

function css(text) {
	if (text ~ /^(FAIL|timeout|error)/)
		return "bad"
	if (text ~ /^pass/)
		return "good"
	return "other"
}

function html_escape(s) {
	gsub(/&/, "\\&amp;", s)
	gsub(/</, "\\&lt;", s)
	gsub(/>/, "\\&gt;", s)
	gsub(/"/, "\\&quot;", s)
	return s
}

# The HTML of a cell: failing cells open to their cases.
function html_cell(r, k, c,   key, out, i) {
	key = r SUBSEP k
	if (!nbad[key])
		return "<td class=\"" css(c) "\">" html_escape(c) "</td>"
	out = "<td class=\"" css(c) (nnew[key] ? " new" : "") "\"><details><summary>" \
	      html_escape(c) "</summary><ul>"
	for (i = 1; i <= nbad[key]; i++)
		out = out "<li>" bad[key, i] "</li>"
	return out "</ul></details></td>"
}

BEGIN {
	FS = "\t"
	nk = split(ENVIRON["PC_KERNELS"], kernels, " ")
	split(ENVIRON["PC_HEADERS"], headers, "\t")
}

# The title of column @j.
function title(j) {
	return headers[j] != "" ? headers[j] : kernels[j]
}

{
	r = group($2)
	if (!(r in seen)) {
		seen[r] = 1
		rows[++nr] = r
	}
	total[r, $1]++
	cnt[r, $1, $3]++
	last[r, $1] = $3
	if ($4 != "") {
		if ($4 == "new")
			nnew[r, $1]++
		bad[r, $1, ++nbad[r, $1]] = "<code>" html_escape($2) "</code> " \
			html_escape($3) ": " html_escape($5) \
			($6 != "" ? " <em>[" html_escape($6) "]</em>" : " <strong>[unexplained]</strong>")
	}
}

END {
	md = ENVIRON["PC_MD"]
	html = ENVIRON["PC_HTML"]
	head = ENVIRON["PC_FULL"] == 1 ? "case" : "scenario"
	if (ENVIRON["PC_FULL"] == "binary")
		head = "binary: passed/failed/skipped"
	w0 = length(head)
	for (i = 1; i <= nr; i++)
		if (length(rows[i]) > w0)
			w0 = length(rows[i])
	for (j = 1; j <= nk; j++) {
		w[j] = length(title(j))
		for (i = 1; i <= nr; i++)
			if (length(cell(rows[i], kernels[j])) > w[j])
				w[j] = length(cell(rows[i], kernels[j]))
	}
	printf "%-" w0 "s", head
	printf "| %s |", head > md
	print "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>pincheck kernel matrix</title>" > html
	print "<style>td,th{padding:2px 8px;font-family:monospace;vertical-align:top}.good{background:#cfc}.bad{background:#fbb}.new{outline:2px solid #c00}.other{background:#eee}summary{cursor:pointer}li{white-space:normal}</style></head><body>" > html
	print "<p>Legend: <span class=\"good\">pass N</span> every case passed (+N xfail: expected failures);" \
	      " <span class=\"bad\">FAIL n/m</span> n of the m cases failed (timeout n/m, error n/m: timed out, or the" \
	      " binary died: a test fault); NEW: a failure that no configs/known-fixes entry explains (neither a known" \
	      " bug with its fix nor a known behaviour change); <span class=\"other\">skip</span> every case skipped;" \
	      " - no such case there.  Click a failing cell for its case ids, reasons and known-fix notes.</p>" > html
	printf "<table><tr><th>%s</th>", head > html
	for (j = 1; j <= nk; j++) {
		printf "  %-" w[j] "s", title(j)
		printf " %s |", title(j) > md
		printf "<th>%s</th>", html_escape(title(j)) > html
	}
	printf "\n"
	printf "\n|---|" > md
	print "</tr>" > html
	for (j = 1; j <= nk; j++)
		printf "---|" > md
	printf "\n" > md
	for (i = 1; i <= nr; i++) {
		printf "%-" w0 "s", rows[i]
		printf "| %s |", rows[i] > md
		printf "<tr><td>%s</td>", html_escape(rows[i]) > html
		for (j = 1; j <= nk; j++) {
			c = cell(rows[i], kernels[j])
			printf "  %-" w[j] "s", c
			printf " %s |", c > md
			printf "%s", html_cell(rows[i], kernels[j], c) > html
		}
		printf "\n"
		printf "\n" > md
		print "</tr>" > html
	}
	print "</table></body></html>" > html
}
