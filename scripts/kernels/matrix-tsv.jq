# SPDX-License-Identifier: GPL-2.0
#
# scripts/kernels/matrix-tsv.jq: one kernel's --json report (pincheck-results v2)
# as the matrix table's input lines (scripts/kernels/matrix-table.awk):
#   kernel TAB id TAB result TAB class TAB reason TAB note
# class: known-bug, known-change or new for a failing case (fail, timeout,
# error), empty otherwise; note: the known-fix note.  Argument: $k, the
# column (kernel) name.  Tabs and newlines in reasons become spaces.

def clean: gsub("[\t\n\r]"; " ");

.results[]
| (.result == "fail" or .result == "timeout" or .result == "error") as $bad
| [$k, .id, .result,
   (if $bad | not then ""
    elif .known_fix == null then "new"
    elif .known_fix.kind == "change" then "known-change"
    else "known-bug" end),
   ((.reason // "") | clean),
   (if .known_fix == null then ""
    elif .known_fix.kind == "change" then
	"known behaviour change: " + (.known_fix.commits | join(" ")) + " (" + .known_fix.release + ")"
    else "known bug, fixed by " + (.known_fix.commits | join(" ")) + " (" + .known_fix.release + ")" end
    | clean)]
| @tsv
