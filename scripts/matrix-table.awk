# SPDX-License-Identifier: GPL-2.0
#
# scripts/matrix-table.awk: the kernel matrix from "kernel \t id \t result"
# lines.  Environment: PC_KERNELS (the column order, space separated),
# PC_HEADERS (optional column titles, tab separated, in that order),
# PC_FULL (1: a row per case id, else per <binary>/<scenario>), PC_MD and
# PC_HTML (files to write the table to).  Prints the table as text.

function group(id,    n, p) {
	if (ENVIRON["PC_FULL"] == 1)
		return id
	n = split(id, p, "/")
	return n >= 4 ? p[1] "/" p[2] : id
}

# The cell of row @r in column @k.
function cell(r, k,    key, m, t) {
	key = r SUBSEP k
	m = total[key]
	if (!m)
		return "-"
	if (ENVIRON["PC_FULL"] == 1)
		return last[key] == "fail" ? "FAIL" : last[key]
	if (cnt[key, "fail"])
		return "FAIL " cnt[key, "fail"] "/" m
	if (cnt[key, "timeout"])
		return "timeout " cnt[key, "timeout"] "/" m
	if (cnt[key, "error"])
		return "error"
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
	return s
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
}

END {
	md = ENVIRON["PC_MD"]
	html = ENVIRON["PC_HTML"]
	w0 = length(ENVIRON["PC_FULL"] == 1 ? "case" : "scenario")
	for (i = 1; i <= nr; i++)
		if (length(rows[i]) > w0)
			w0 = length(rows[i])
	for (j = 1; j <= nk; j++) {
		w[j] = length(title(j))
		for (i = 1; i <= nr; i++)
			if (length(cell(rows[i], kernels[j])) > w[j])
				w[j] = length(cell(rows[i], kernels[j]))
	}
	head = ENVIRON["PC_FULL"] == 1 ? "case" : "scenario"
	printf "%-" w0 "s", head
	printf "| %s |", head > md
	print "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>pincheck kernel matrix</title>" > html
	print "<style>td,th{padding:2px 8px;font-family:monospace}.good{background:#cfc}.bad{background:#fbb}.other{background:#eee}</style></head><body>" > html
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
			printf "<td class=\"%s\">%s</td>", css(c), html_escape(c) > html
		}
		printf "\n"
		printf "\n" > md
		print "</tr>" > html
	}
	print "</table></body></html>" > html
}
