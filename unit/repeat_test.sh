#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/repeat_test.sh: tests of scripts/dev/verdict-repeat.sh without running
# the suite: --compare on made-up --json files, and the run loop with a
# fake wrapper (--via) that writes the JSON itself and may leave a file in
# PINCHECK_TMPDIR.  Ends with "N passed, N failed, N skipped"; exit 0 if
# nothing failed.  Takes a second, needs jq, no root.

set -u

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd) || exit 2
REPEAT=$ROOT/scripts/dev/verdict-repeat.sh
n=0
nfail=0

ok() { n=$((n + 1)); printf 'ok %d - %s\n' "$n" "$1"; }
not_ok() { n=$((n + 1)) nfail=$((nfail + 1)); printf 'not ok %d - %s\n' "$n" "$1"; }
# check NAME COND-STATUS: ok when the condition held
check() { if (($2 == 0)); then ok "$1"; else not_ok "$1"; fi; }

command -v jq >/dev/null || {
	printf 'ok 1 - verdict-repeat.sh # SKIP needs jq\n0 passed, 0 failed, 1 skipped\n'
	exit 0
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pincheck-repeat-test.XXXXXX") || exit 2
trap 'rm -rf -- "$tmp"' EXIT

# run_json FILE ID=RESULT...: a --json file as run_tests.sh writes it
run_json() {
	local f=$1 sep='' kv
	shift
	{
		printf '['
		for kv in "$@"; do
			printf '%s\n  {"id": "%s", "result": "%s", "reason": "", "duration_ms": 1, "kernel": "x"}' \
				"$sep" "${kv%%=*}" "${kv#*=}"
			sep=,
		done
		printf '\n]\n'
	} >"$f"
}

same=$tmp/same
mkdir -p "$same"
for i in 1 2 3; do
	run_json "$same/run$i.json" a/x/anon/e=pass b/y/anon/e=skip
done
out=$("$REPEAT" --compare "$same" 2>&1)
check "identical runs: exit 0" $?
[[ $out == *"3 runs, 2 cases, 2 with the same verdict every run, 0 flipped"* ]]
check "identical runs: the summary says 0 flipped" $?

flip=$tmp/flip
mkdir -p "$flip"
run_json "$flip/run1.json" a/x/anon/e=pass b/y/anon/e=skip c/z/anon/e=pass
run_json "$flip/run2.json" a/x/anon/e=skip b/y/anon/e=skip
run_json "$flip/run3.json" a/x/anon/e=pass b/y/anon/e=skip
out=$("$REPEAT" --compare "$flip" 2>&1)
check "a flip: exit 1" $((! $?))
[[ $out == *"flip a/x/anon/e: pass=2 skip=1"* ]]
check "a flip: the case and its verdict counts" $?
[[ $out == *"flip c/z/anon/e: pass=1 missing=2"* ]]
check "a case missing from some runs counts as a flip" $?
[[ $out == *"3 cases, 1 with the same verdict every run, 2 flipped"* ]]
check "a flip: the summary counts it" $?

"$REPEAT" --compare "$tmp/none" >/dev/null 2>&1
check "no run files: exit 1" $(($? != 1))
"$REPEAT" -n 0 >/dev/null 2>&1
check "-n 0: exit 2" $(($? != 2))
"$REPEAT" --bogus >/dev/null 2>&1
check "unknown option: exit 2" $(($? != 2))

# The loop, with a wrapper standing in for flock + run_tests.sh: it writes
# the JSON named after --json and, when asked, leaves a file behind.
cat >"$tmp/fake-run" <<'EOF'
#!/usr/bin/env bash
shift	# run_tests.sh's path
while (($#)); do [[ $1 == --json ]] && json=$2; shift; done
printf '[\n  {"id": "a/x/anon/e", "result": "pass", "reason": "", "duration_ms": 1, "kernel": "x"}\n]\n' >"$json"
[[ -n ${FAKE_LEAK-} ]] && : >"$PINCHECK_TMPDIR/leak.$RANDOM"
echo "1 passed, 0 failed, 0 skipped"
EOF
chmod +x "$tmp/fake-run"
mkdir -p "$tmp/pctmp"
out=$(PINCHECK_TMPDIR=$tmp/pctmp "$REPEAT" -n 3 --via "$tmp/fake-run" --out "$tmp/loop" 2>&1)
check "3 clean runs: exit 0" $?
[[ $out == *"run 3/3: exit 0"* && $out == *"0 flipped"* && $out != *"new: "* ]]
check "3 clean runs: each run reported, nothing new in the tmp dirs" $?
out=$(FAKE_LEAK=1 PINCHECK_TMPDIR=$tmp/pctmp "$REPEAT" -n 2 --via "$tmp/fake-run" --out "$tmp/loop" 2>&1)
check "a run leaving a file: exit 1" $((! $?))
[[ $out == *"new: $tmp/pctmp/leak."* ]]
check "a run leaving a file: the file is named" $?

printf '%d passed, %d failed, 0 skipped\n' $((n - nfail)) "$nfail"
((nfail == 0))
