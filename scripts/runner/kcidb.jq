# SPDX-License-Identifier: GPL-2.0
#
# scripts/runner/kcidb.jq: run_tests.sh's --json report (format pincheck-results
# v2) as a KCIDB report, schema v4.3 (schemas/kcidb-v4.3.json): one
# checkout (the kernel), one build, one test per case, and for failing
# cases that match configs/known-fixes one issue per entry and an incident
# linking each such test to it (KCIDB's way to say "this failure is a known
# bug / a known behaviour change"; the test stays FAIL, not waived).
# Arguments: $origin, $run (unique run id), $time (fallback RFC 3339 start
# time), $arch (fallback architecture).  Statuses: pass PASS, fail FAIL,
# timeout FAIL (misc.result says timeout), xfail FAIL (misc.result xfail),
# skip SKIP, error ERROR (a binary died: a test fault, not a kernel verdict).

def kcidb_status:
	if . == "pass" then "PASS"
	elif . == "skip" then "SKIP"
	elif . == "error" then "ERROR"
	else "FAIL" end;

# "pin_fork/pin-only/anon/io_uring" -> "pincheck.pin_fork.pin-only.anon.io_uring";
# KCIDB paths take [.a-zA-Z0-9_-] only.
def kcidb_path: "pincheck." + (gsub("\\."; "_") | gsub("/"; ".") | gsub("[^.a-zA-Z0-9_-]"; "_"));

def issue_key: (.kind + "_" + (.commits[0] // "none")
	+ (if (.commits[0] // "") | test("^[0-9a-f]{7,40}$") then ""
	   else "_" + ((.subject // "")[0:40]) end))
	| gsub("[^a-zA-Z0-9_]"; "_");

def note: if .kind == "change"
	then "known behaviour change: " + (.commits | join(" ")) + " (" + .release + ")"
	else "known bug, fixed by " + (.commits | join(" ")) + " (" + .release + ")" end;

# The tree a run's kernel comes from: "debian" for Debian's packaged
# kernels, the repository's name for one built from a git tree, else null.
def tree_name:
	if (.kernel_spec // "") | startswith("debian:") then "debian"
	elif .kernel_git.url then (.kernel_git.url | sub("/+$"; "") | sub("\\.git$"; "") | sub(".*[/:]"; ""))
	else null end;

# start of a result: its end time less its duration
def start_of($fallback):
	if .end_time then
		((.end_time | fromdateiso8601) - ((.duration_ms // 0) / 1000) | floor | todateiso8601)
	else $fallback end;

.run as $r
| ($r.kernel_release // "unknown") as $kernel
| ($r.start_time // $time) as $start
| ($origin + ":" + $run) as $id
| [.results[] | select(.known_fix != null)] as $known
| {
	version: {major: 4, minor: 3},
	checkouts: [{
		id: $id, origin: $origin, valid: true, start_time: $start,
		comment: ("Linux " + $kernel + " tested by pincheck"),
		misc: ({kernel_release: $kernel, kernel_spec: $r.kernel_spec,
			kernel_version: $r.kernel_version}
			| with_entries(select(.value != null)))
	} + ($r.kernel_git // {} | {git_commit_hash: .commit,
		git_repository_url: (.url | if . != null and test("^(https|git)://") then . else null end),
		git_repository_branch: .branch}
		| with_entries(select(.value != null)))
	  + ($r | tree_name | if . then {tree_name: .} else {} end) ],
	builds: [{
		id: $id, checkout_id: $id, origin: $origin, valid: true,
		start_time: $start, architecture: ($r.arch // $arch),
		misc: {kernel_release: $kernel}
	} + (if $r.compiler then {compiler: $r.compiler} else {} end)],
	tests: [.results[] | {
		id: ($id + ":" + .id), build_id: $id, origin: $origin,
		path: (.id | kcidb_path), status: (.result | kcidb_status),
		start_time: start_of($start),
		duration: ((.duration_ms // 0) / 1000),
		environment: {comment: ("pincheck on " + ($r.hostname // "unknown")
			+ (if $r.accel then " (QEMU " + $r.accel + ", profile "
				+ ($r.profile // "default") + ")" else "" end))},
		misc: ({case_id: .id, result: .result, reason: (.reason // ""),
			binary: .binary, scenario: .scenario, backing: .backing,
			engine: .engine}
			+ (if .known_fix then {known_fix: (.known_fix | note)} else {} end)
			| with_entries(select(.value != null)))
	} + (if .result == "fail" or .result == "timeout" or .result == "error" then
		{log_excerpt: ([.reason, .diagnostic, (.known_fix | if . then note else null end)]
			| map(select(. != null and . != "")) | join("\n") | .[0:16384])}
	     else {} end)],
	issues: ($known | map(.known_fix) | unique_by(issue_key) | map({
		id: ($origin + ":" + issue_key), version: 1, origin: $origin,
		report_subject: .subject, comment: note,
		culprit: {code: true, tool: false, harness: false},
		misc: ({kind, commits, release, evidence}
			| with_entries(select(.value != null)))
	})),
	incidents: [$known[] | {
		id: ($id + ":" + .id), origin: $origin,
		issue_id: ($origin + ":" + (.known_fix | issue_key)), issue_version: 1,
		build_id: $id, test_id: ($id + ":" + .id), present: true,
		comment: (.known_fix | note)
	}]
}
