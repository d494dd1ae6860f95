# SPDX-License-Identifier: GPL-2.0
#
# One TAP 13 result line, parsed the way every pincheck script reads it
# (tap-merge.awk while a binary runs, tap-records.awk after a guest died).
# POSIX awk (mawk on Debian): no gawk extensions.

# tap_result("not ok 4 id # reason", r): 1 for a result line, 0 if it is
# not one; r["id"], r["rest"] (the line after its number), r["res"] (pass
# fail skip xfail timeout) and r["reason"] (the directive's text).
function tap_result(line, r,   isok, rest, i, dir, kw) {
	if (line !~ /^(not )?ok( |$)/)
		return 0
	isok = (line ~ /^ok/)
	rest = line
	sub(/^(not )?ok */, "", rest)
	sub(/^[0-9]+ */, "", rest)
	sub(/^- */, "", rest)
	i = index(rest, " ")
	r["id"] = i ? substr(rest, 1, i - 1) : rest
	r["rest"] = rest
	dir = ""
	i = index(rest, "#")
	if (i) {
		dir = substr(rest, i + 1)
		sub(/^ +/, "", dir)
	}
	kw = toupper(dir)
	sub(/ .*/, "", kw)
	r["reason"] = dir
	if (kw == "SKIP" || kw == "XFAIL" || kw == "TODO" || kw == "TIMEOUT") {
		r["reason"] = substr(dir, length(kw) + 1)
		sub(/^[ :]+/, "", r["reason"])
	}
	if (isok)
		r["res"] = (kw == "SKIP") ? "skip" : (kw == "XFAIL" || kw == "TODO") ? "xfail" : "pass"
	else
		r["res"] = (kw == "TIMEOUT") ? "timeout" : (kw == "TODO") ? "xfail" : "fail"
	return 1
}
