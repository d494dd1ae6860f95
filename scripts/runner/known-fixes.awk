# SPDX-License-Identifier: GPL-2.0
#
# The known-fixes table (configs/known-fixes, docs/reporting.md) and the
# diagnostic kept for a failing result, as every pincheck script that
# writes result records uses them (tap-merge.awk while a binary runs,
# tap-records.awk after a guest died).  Given with -f after tap-result.awk.
# POSIX awk (mawk on Debian): no gawk extensions.

# A shell glob (*, ?, [...]) as an anchored regular expression.
function glob_re(g,   r, i, c) {
	r = "^"
	for (i = 1; i <= length(g); i++) {
		c = substr(g, i, 1)
		if (c == "*")
			r = r ".*"
		else if (c == "?")
			r = r "."
		else if (c == "[" || c == "]")
			r = r c
		else if (index("\\^$.|+(){}", c))
			r = r "\\" c
		else
			r = r c
	}
	return r "$"
}

# load_fixes FILE: read the known-fixes table (configs/known-fixes; "" for
# none) into fix_*[1..nfix]: fix_re and fix_why the id and reason patterns,
# fix_f the record's five fix fields, fix_what the line said before a
# failing result.
function load_fixes(fixf,   line, fl) {
	nfix = 0
	nofix = "\t\t\t\t"
	if (fixf == "")
		return
	while ((getline line < fixf) > 0) {
		sub(/\r$/, "", line)
		if (line ~ /^#/ || split(line, fl, "\t") < 3)
			continue
		nfix++
		fix_re[nfix] = glob_re(fl[1])
		fix_why[nfix] = fl[7] == "" ? "" : glob_re(fl[7])
		fix_kind[nfix] = fl[5] == "change" ? "change" : "fix"
		fix_f[nfix] = fix_kind[nfix] "\t" fl[2] "\t" fl[3] "\t" \
			fl[4] "\t" fl[6]
		if (fix_kind[nfix] == "change")
			fix_what[nfix] = "known behaviour change: " fl[2] " (" fl[3] ")"
		else
			fix_what[nfix] = "known bug, fixed by " fl[2] " (" fl[3] ")"
	}
	close(fixf)
}

# The known-fixes entry for a failing case @id that failed for @reason
# (its index), or 0: the first whose pattern matches the id and whose
# REASON glob, if it has one, matches the reason.
function known_fix(id, reason,   i) {
	for (i = 1; i <= nfix; i++)
		if (id ~ fix_re[i] && (fix_why[i] == "" || reason ~ fix_why[i]))
			return i
	return 0
}

# A comment line kept for the next failing result's diagnostic (bounded).
function keep_diag(s) {
	if (ndiag >= 60 || length(diag) > 8000)
		return
	gsub(/\t/, " ", s)
	diag = diag (ndiag ? "\037" : "") s
	ndiag++
}
