# SPDX-License-Identifier: GPL-2.0
#
# scripts/kcidb.jq: run_tests.sh's --json results as a KCIDB report
# (schema v4): one checkout (the kernel), one build, one test per case.
# Arguments: $origin, $run (unique run id), $time (RFC 3339 start time),
# $arch, $compiler.  Statuses: pass PASS, fail FAIL, timeout FAIL (misc
# says timeout), xfail FAIL waived (a known bug reproduced), skip SKIP,
# error ERROR.

def kcidb_status:
	if . == "pass" then "PASS"
	elif . == "skip" then "SKIP"
	elif . == "error" then "ERROR"
	else "FAIL" end;

# "pin_fork/pin-only/anon/io_uring" -> "pincheck.pin_fork.pin-only.anon.io_uring"
def kcidb_path: "pincheck." + (gsub("\\."; "_") | gsub("/"; "."));

(map(.kernel) | map(select(. != null)) | first // "unknown") as $kernel
| ($origin + ":" + $run) as $id
| {
	version: {major: 4, minor: 1},
	checkouts: [{
		id: $id, origin: $origin, valid: true, start_time: $time,
		comment: ("Linux " + $kernel + " tested by pincheck"),
		misc: {kernel_release: $kernel}
	}],
	builds: [{
		id: $id, checkout_id: $id, origin: $origin, valid: true,
		start_time: $time, architecture: $arch, compiler: $compiler,
		misc: {kernel_release: $kernel}
	}],
	tests: [.[] | {
		id: ($id + ":" + .id), build_id: $id, origin: $origin,
		path: (.id | kcidb_path), status: (.result | kcidb_status),
		waived: (.result == "xfail"), start_time: $time,
		duration: ((.duration_ms // 0) / 1000),
		misc: {case_id: .id, result: .result, reason: (.reason // "")}
	}]
}
