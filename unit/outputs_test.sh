#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/outputs_test.sh: the reports CI tools read, validated against the
# schemas those tools use (schemas/): --json against schemas/results.json
# and --kcidb against kcidb-io's v4.3 schema (python3-jsonschema), --junit
# against Jenkins' junit-10.xsd (xmllint), the TAP stream with Perl's
# TAP::Parser; the failure classification (known bug, known behaviour
# change, unexplained) in the summary, JSON, KCIDB, JUnit and the matrix
# table; exit codes (4: all skipped, kselftest's runner); each validator
# shown to reject a broken file.  Fake test binaries (no kernel needed),
# then one short real run on the host and, with a cached kernel, a guest
# killed mid-run that keeps its streamed results.
# Prints "ok N - ..." and ends with "N passed, N failed, N skipped".

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
ROOT=$PWD
RUN=./run_tests.sh
KERNEL=${PINCHECK_VM_KERNEL:-debian:6.12}

# shellcheck source=unit/vmtest-lib.sh
. "${BASH_SOURCE[0]%/*}/vmtest-lib.sh"
vt_init outputs-test
fake=$tmp/bin
mkdir -p "$fake"
export PINCHECK_DMESG_CMD="cat $tmp/kmsg"
export PINCHECK_STATE_DIR=$tmp/state
: >"$tmp/kmsg"

jsonv() { schemas/validate.py "$@" >"$tmp/why" 2>&1; }
junitv() { xmllint --noout --schema schemas/junit-10.xsd "$1" >"$tmp/why" 2>&1; }
# tapv FILE: TAP::Parser reads it without a parse error and its plan holds
tapv() {
	perl -MTAP::Parser -e '
		open(my $f, "<", $ARGV[0]) or die "$ARGV[0]: $!";
		my $p = TAP::Parser->new({ tap => do { local $/; <$f> } });
		while (defined(my $r = $p->next)) { }
		my @e = $p->parse_errors;
		print "$_\n" for @e;
		exit(@e || !$p->is_good_plan ? 1 : 0)' "$1" >"$tmp/why" 2>&1
}
has() { grep -qxF -- "$2" "$1"; }

# fake NAME ID=BEHAVIOUR...: a TAP 13 test binary (pass fail mismatch skip
# xfail timeout crash)
fake() {
	local name=$1
	shift
	{
		printf '#!/usr/bin/env bash\n# pincheck-test-binary:1\ncases=('
		printf ' %q' "$@"
		printf ' )\n'
		cat <<'EOS'
if [[ ${1-} == -l ]]; then for c in "${cases[@]}"; do echo "${c%%=*}"; done; exit 0; fi
echo "TAP version 13"; echo "1..${#cases[@]}"
n=0
for c in "${cases[@]}"; do
	id=${c%%=*} n=$((n + 1))
	case ${c#*=} in
	pass) echo "ok $n $id" ;;
	fail) echo "not ok $n $id # CPU sees gen 2 <&>" ;;
	mismatch) printf '%s\n' "# MISMATCH $id: device read after fork" \
		"#   expected gen 2 (parent CPU write after fork)" "#   device:  gen 1 @0x0"
		echo "not ok $n $id # device sees gen 1" ;;
	skip) echo "ok $n $id # SKIP no swap" ;;
	xfail) echo "ok $n $id # XFAIL known" ;;
	timeout) echo "not ok $n $id # TIMEOUT 20s" ;;
	crash) exit 3 ;;
	esac
	printf '  ---\n  duration_ms: %d\n  ...\n' $((n * 10))
done
echo "# Totals: pass:0 fail:0"
exit 1
EOS
	} >"$fake/$name"
	chmod +x "$fake/$name"
}

fake alpha alpha/known/anon/x=mismatch alpha/change/anon/x=fail alpha/new/anon/x=fail \
	alpha/ok/anon/x=pass alpha/sk/anon/x=skip alpha/xf/anon/x=xfail alpha/slow/anon/x=timeout
fake beta beta/a/anon/x=pass beta/b/anon/x=crash beta/c/anon/x=pass
fake gamma gamma/s/anon/x=skip gamma/t/anon/x=skip
printf '%s\n' '# test table' \
	$'alpha/known/*\tabc123def456\tv9.9\ta fix subject' \
	$'alpha/change/*\t0123456789ab 0123456789cd\tv7.2\tmm: a behaviour change\tchange\tfails: debian:7.2; passes: debian:6.12' \
	>"$tmp/fixes"

frun() {
	PINCHECK_FIXES=$tmp/fixes PINCHECK_TESTS_DIR=$fake runner --no-setup "$@"
}

# --- bad input, no root needed -----------------------------------------------

runner --kcidb "$tmp/k.json" --kcidb-origin MyLab
[[ $RC == 2 ]] && [[ $(wc -l <"$ERR") == 1 ]] && grep -q "lower-case letters, digits and _" "$ERR"
check "--kcidb-origin MyLab: exit 2 and one line (KCIDB origins are ^[a-z0-9_]+\$)"

PINCHECK_FIXES=$tmp/fixes runner -l --fixes
grep -qE '^alpha/change/\* +0123456789ab 0123456789cd +v7\.2 +change +mm: a behaviour change$' "$OUT" &&
	has "$OUT" "    evidence: fails: debian:7.2; passes: debian:6.12" &&
	grep -qE '^alpha/known/\* +abc123def456 +v9\.9 +fix +a fix subject$' "$OUT"
check "-l --fixes: kind (fix, change) and evidence per entry"

# --- two shards' TAP merged (scripts/vm/shard-merge.awk) -------------------

# shard 0 and 1 interleaved line by line, as two guests write them
printf '%s\n' $'0\t# guest: a' $'1\t# guest: b' $'0\tTAP version 13' \
	$'0\t# diag A1' $'1\tTAP version 13' $'0\tok 1 a/x/anon/e' \
	$'1\t# diag B1' $'0\t  ---' $'1\tnot ok 1 b/y/anon/e # bad' $'0\t  duration_ms: 5' \
	$'1\t  ---' $'0\t  ...' $'1\t  duration_ms: 7' $'1\t  ...' \
	$'0\tok 2 a/kernel-log/all/kmsg' $'1\tok 2 b/kernel-log/all/kmsg' $'0\t1..2' \
	$'0\t\001eof' $'1\t1..2' $'1\t\001eof' >"$tmp/shards.in"
printf '%s\n' '# guest: a' '# guest: b' 'TAP version 13' '# diag A1' \
	'ok 1 a/x/anon/e' '  ---' '  duration_ms: 5' '  ...' '# diag B1' \
	'not ok 2 b/y/anon/e # bad' '  ---' '  duration_ms: 7' '  ...' \
	'ok 3 a/kernel-log/all/kmsg' 'ok 4 b/kernel-log/all/kmsg' '1..4' >"$tmp/shards.want"
awk -v out="$tmp/shards.log" -f scripts/vm/shard-merge.awk "$tmp/shards.in" >"$tmp/shards.out"
# the control: the lines as they came (no merger) interleave the results
cut -f2- "$tmp/shards.in" | grep -v $'^\001' >"$tmp/shards.raw"
cmp -s "$tmp/shards.out" "$tmp/shards.want" && cmp -s "$tmp/shards.log" "$tmp/shards.want" &&
	! cmp -s "$tmp/shards.raw" "$tmp/shards.want"
check "shards' TAP merged: the version once and first, the plan once and last, each result with its comments and YAML, numbered on" \
	"$(diff "$tmp/shards.want" "$tmp/shards.out")"

if ((EUID != 0)); then
	skip "runs of fake binaries" "not root"
	summary
	exit 0
fi

# --- one run of the fakes: every output, validated ------------------------

chmod -x "$fake/gamma"
frun --json "$tmp/r.json" --junit "$tmp/r.xml" --kcidb "$tmp/k.json" --kcidb-origin lab_1
[[ $RC == 1 ]] &&
	has "$OUT" "# alpha/known/anon/x: known bug, fixed by abc123def456 (v9.9)" &&
	has "$OUT" "# alpha/change/anon/x: known behaviour change: 0123456789ab 0123456789cd (v7.2)" &&
	! grep -q "alpha/new/anon/x: known" "$OUT"
check "a failing case names its known fix or known behaviour change before its not ok"
tail -n 3 "$OUT" >"$tmp/tail"
mapfile -t t <"$tmp/tail"
[[ ${t[0]} == "# failed: 1 known bug, 1 known change, 4 unexplained (2 test errors: a binary died)" &&
   ${t[1]} == "# Totals: pass:4 fail:4 xfail:1 xpass:0 skip:1 error:2" &&
   ${t[2]} == "5 passed, 6 failed, 1 skipped" ]]
check "summary: '# failed:' classification, '# Totals:' (kselftest), then the plain last line" \
	"$(cat "$tmp/tail")"
# what the host rebuilds from a dead guest's TAP: the same known fixes and
# diagnostics as the records written while the binaries ran
: >"$tmp/none"
PC_FIXES=$tmp/fixes awk -f scripts/runner/tap-result.awk -f scripts/runner/known-fixes.awk \
	-f scripts/runner/tap-records.awk "$tmp/none" "$OUT" >"$tmp/rebuilt"
awk -F '\t' '$2 == "alpha/known/anon/x" && $3 == "fail" && $7 == "fix" &&
		$8 == "abc123def456" && $12 ~ /^# MISMATCH alpha\/known\/anon\/x/ &&
		$12 !~ /known bug/ { k = 1 }
	$2 == "alpha/change/anon/x" && $7 == "change" { c = 1 }
	$2 == "alpha/new/anon/x" && $3 == "fail" && $7 == "" { n = 1 }
	$2 == "alpha/ok/anon/x" && $3 == "pass" && $4 == 40 && $12 == "" { p = 1 }
	END { exit !(k && c && n && p && NR == 12) }' "$tmp/rebuilt"
check "a dead guest's records rebuilt from its TAP: known fix or change, diagnostic, duration" \
	"$(cat "$tmp/rebuilt")"
tapv "$OUT"
check "TAP: TAP::Parser reads the stream, plan and results agree"
jsonv schemas/results.json "$tmp/r.json"
check "--json validates against schemas/results.json"
jq -e '.format == "pincheck-results" and .version == 2 and .run.complete and
	.run.counts == {passed: 5, failed: 6, skipped: 1, xfail: 1, timeouts: 1, errors: 2,
		known_bugs: 1, known_changes: 1, unexplained: 4} and
	(.run.start_time | test("Z$")) and (.run.pincheck_commit | length) == 40 and
	.run.kernel_spec == "host" and .run.kernel_release == "'"$(uname -r)"'"' "$tmp/r.json" >"$tmp/why"
check "--json run: format, version, times, commit, kernel, counts with the classification"
jq -e '[.results[] | select(.id == "alpha/known/anon/x")][0] |
	.binary == "alpha" and .scenario == "known" and .backing == "anon" and .engine == "x" and
	.known_fix == {kind: "fix", commits: ["abc123def456"], release: "v9.9",
		subject: "a fix subject", evidence: null} and .reason == "device sees gen 1" and
	(.diagnostic | test("^# MISMATCH alpha/known/anon/x: device read after fork\n#   expected gen 2"))' \
	"$tmp/r.json" >"$tmp/why" &&
jq -e '[.results[] | select(.id == "alpha/change/anon/x")][0].known_fix |
	.kind == "change" and .commits == ["0123456789ab", "0123456789cd"] and (.evidence | test("passes"))' \
	"$tmp/r.json" >"$tmp/why" &&
jq -e '[.results[] | select(.id == "beta/b/anon/x" or .id == "beta/c/anon/x") | .result] == ["error", "error"] and
	([.results[] | select(.id == "alpha/new/anon/x")][0].known_fix == null)' "$tmp/r.json" >"$tmp/why"
check "--json results: id parts, structured known_fix (fix, change), diagnostic block, a dead binary's cases are error"

jsonv schemas/kcidb-v4.3.json "$tmp/k.json"
check "--kcidb validates against kcidb-io's v4.3 schema"
jq -e '
	def t($id): [.tests[] | select(.misc.case_id == $id)][0];
	.version == {major: 4, minor: 3} and
	([.tests[] | has("waived")] | any | not) and
	t("beta/b/anon/x").status == "ERROR" and t("alpha/xf/anon/x").status == "FAIL" and
	(t("alpha/known/anon/x").log_excerpt | test("MISMATCH")) and
	([.tests[].start_time] | unique | length) > 1 and
	(.issues | length) == 2 and (.incidents | length) == 2 and
	([.incidents[].test_id] | sort) == ([t("alpha/known/anon/x").id, t("alpha/change/anon/x").id] | sort) and
	([.issues[].misc.kind] | sort) == ["change", "fix"] and
	(.builds[0].compiler | type) == "string"' "$tmp/k.json" >"$tmp/why"
check "--kcidb: no waived, ERROR for a dead binary, log_excerpt, start_time per test, known fixes as issues + incidents"

junitv "$tmp/r.xml"
check "--junit validates against Jenkins' junit-10.xsd"
grep -q '<testsuites [^>]*errors="2"' "$tmp/r.xml" && ! grep -q '<testsuites [^>]*skipped=' "$tmp/r.xml" &&
	grep -q '<testsuite name="alpha" [^>]*timestamp="[0-9T:-]*" hostname=' "$tmp/r.xml" &&
	grep -q '<skipped type="xfail" message="known"/>' "$tmp/r.xml" &&
	grep -q '<error type="error" message="binary exited with status 3 before this case">' "$tmp/r.xml" &&
	grep -q "classname=\"pincheck\.$(uname -r | tr -c 'A-Za-z0-9_+\n-' _)\.alpha\"" "$tmp/r.xml" &&
	python3 -c 'import sys, xml.dom.minidom as m
f = [e for e in m.parse(sys.argv[1]).getElementsByTagName("failure")
     if "MISMATCH" in e.firstChild.data and "known bug, fixed by abc123def456" in e.firstChild.data]
sys.exit(len(f) != 1)' "$tmp/r.xml"
check "--junit: errors counted, no skipped on <testsuites>, timestamp/hostname, xfail as <skipped type=xfail>, kernel in classname, diagnostic in the failure body"

PINCHECK_RUN_KGIT_COMMIT=0123456789abcdef0123456789abcdef01234567 \
PINCHECK_RUN_KGIT_URL=https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git \
PINCHECK_RUN_KGIT_BRANCH=master PINCHECK_RUN_KERNEL=/src/linux/arch/x86/boot/bzImage \
	frun -t 'alpha/ok/*' --json "$tmp/g.json" --kcidb "$tmp/gk.json"
jsonv schemas/results.json "$tmp/g.json" && jsonv schemas/kcidb-v4.3.json "$tmp/gk.json" &&
	jq -e '.checkouts[0] | .git_commit_hash == "0123456789abcdef0123456789abcdef01234567" and
		(.git_repository_url | endswith("/linux.git")) and .git_repository_branch == "master" and
		.misc.kernel_spec == "/src/linux/arch/x86/boot/bzImage"' "$tmp/gk.json" >"$tmp/why"
check "a kernel built from a git tree: the KCIDB checkout names its commit, repository and branch"

v='Linux version 6.12.118+deb12-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP'
printf 'b\tb/x/anon/e\tpass\t1\t\t0\n' >"$tmp/rec"
PC_KERNEL_VERSION=$v PC_JSON=$tmp/c.json awk -f scripts/runner/results.awk "$tmp/rec" >/dev/null
[[ $(jq -r .run.compiler "$tmp/c.json") == "x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0" ]]
check "the compiler comes from the tested kernel's /proc/version (a Debian guest's line)"

# --- the validators can fail ----------------------------------------------

jq '.checkouts[0].origin = "MyLab"' "$tmp/k.json" >"$tmp/bad.json"
! jsonv schemas/kcidb-v4.3.json "$tmp/bad.json" && grep -q "MyLab" "$tmp/why"
check "the KCIDB schema rejects origin MyLab"
jq '.tests[0].path = "pincheck.vm.debian:6_12.run"' "$tmp/k.json" >"$tmp/bad.json"
! jsonv schemas/kcidb-v4.3.json "$tmp/bad.json"
check "the KCIDB schema rejects a test path with ':'"
jq '.results' "$tmp/r.json" >"$tmp/bad.json"
! jsonv schemas/results.json "$tmp/bad.json"
check "the results schema rejects the old bare array"
jq '.results[0].known_fix = "known bug, fixed by abc (v1)"' "$tmp/r.json" >"$tmp/bad.json"
! jsonv schemas/results.json "$tmp/bad.json"
check "the results schema rejects a free-text known fix"
sed 's/<testsuites /<testsuites skipped="1" /' "$tmp/r.xml" >"$tmp/bad.xml"
! junitv "$tmp/bad.xml"
check "junit-10.xsd rejects <testsuites skipped=...>"
printf 'TAP version 13\n1..3\nok 1 a\nnot ok 2 b\n' >"$tmp/bad.tap"
! tapv "$tmp/bad.tap"
check "TAP::Parser rejects a stream whose plan does not hold"

# --- exit codes -------------------------------------------------------------

chmod -x "$fake"/*
chmod +x "$fake/gamma"
frun --json "$tmp/s.json"
[[ $RC == 4 ]] && tail -n 1 "$OUT" | grep -qx '0 passed, 0 failed, 2 skipped' &&
	has "$OUT" "ok 3 gamma/kernel-log/all/kmsg" && jsonv schemas/results.json "$tmp/s.json"
check "every case skipped: exit 4 (kselftest's KSFT_SKIP)" "$(tail -n 2 "$OUT")"
if command -v setpriv >/dev/null; then
	chmod 755 "$tmp"
	KSFT_TAP_LEVEL=1 PINCHECK_TESTS_DIR=$fake setpriv --reuid=65534 --regid=65534 \
		--clear-groups "$RUN" --no-setup >"$OUT" 2>"$ERR" </dev/null
	RC=$?
	chmod 700 "$tmp"
	[[ $RC == 4 ]] && has "$OUT" "1..0 # SKIP must run as root (pinning tests read /proc/self/pagemap and change sysfs knobs)" &&
		tapv "$OUT"
	check "under kselftest's runner (KSFT_TAP_LEVEL) not root is a skip: 1..0 # SKIP, exit 4"
else
	skip "not root under kselftest's runner" "no setpriv"
fi

# --- the matrix table on fake results ---------------------------------------

jq '.results |= map(if .id == "alpha/new/anon/x" then .result = "pass" else . end)' \
	"$tmp/r.json" >"$tmp/r2.json"
for k in a b; do
	f=$tmp/r.json
	[[ $k == b ]] && f=$tmp/r2.json
	jq -r --arg k "kern-$k" -f scripts/kernels/matrix-tsv.jq "$f"
done >"$tmp/m.tsv"
PC_KERNELS="kern-a kern-b" PC_MD=$tmp/m.md PC_HTML=$tmp/m.html \
	awk -f scripts/kernels/matrix-table.awk "$tmp/m.tsv" >"$tmp/m.txt"
grep -qE '^alpha/new +FAIL 1/1 NEW +pass 1 *$' "$tmp/m.txt" &&
	grep -qE '^alpha/known +FAIL 1/1 +FAIL 1/1 *$' "$tmp/m.txt" &&
	grep -qE '^alpha/change +FAIL 1/1 +FAIL 1/1 *$' "$tmp/m.txt" &&
	grep -qE '^beta/b +error 1/1 NEW +error 1/1 NEW *$' "$tmp/m.txt" &&
	grep -qxF '| alpha/new | FAIL 1/1 NEW | pass 1 |' "$tmp/m.md" &&
	[[ $(grep -c '^| ' "$tmp/m.md") == $(($(wc -l <"$tmp/m.txt") + 1)) ]]
check "matrix text/Markdown: one line per scenario group, unexplained failures marked NEW" "$(cat "$tmp/m.txt")"
python3 - "$tmp/m.html" >"$tmp/why" 2>&1 <<'PY'
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(s):
        super().__init__(); s.stack = []; s.bad = 0
    def handle_starttag(s, t, a):
        if t not in ("meta", "br"): s.stack.append(t)
    def handle_endtag(s, t):
        if not s.stack or s.stack.pop() != t: s.bad += 1
doc = open(sys.argv[1]).read()
p = P(); p.feed(doc)
need = ["Legend:", "<details><summary>FAIL 1/1 NEW</summary>",
        "<code>alpha/new/anon/x</code> fail: CPU sees gen 2 &lt;&amp;&gt; <strong>[unexplained]</strong>",
        "<code>alpha/known/anon/x</code> fail: device sees gen 1 <em>[known bug, fixed by abc123def456 (v9.9)]</em>",
        "<em>[known behaviour change: 0123456789ab 0123456789cd (v7.2)]</em>"]
miss = [n for n in need if n not in doc]
print("unbalanced tags:", p.bad, p.stack) if p.bad or p.stack else None
print("missing:", miss) if miss else None
sys.exit(1 if p.bad or p.stack or miss else 0)
PY
check "matrix HTML: balanced, a legend, failing cells open to case ids, reasons and known-fix notes"

# --- one real short run on the host ----------------------------------------

real=$("$RUN" -l --no-build -t 'pin_fork/pin-only/anon/*' 2>/dev/null | head -n 1)
if [[ -z $real ]]; then
	skip "a real host run" "no built binaries (make)"
else
	"$RUN" --no-build -t 'pin_fork/pin-only/anon/*' \
		--json "$tmp/h.json" --junit "$tmp/h.xml" --kcidb "$tmp/hk.json" \
		>"$OUT" 2>"$ERR" </dev/null
	RC=$?
	[[ $RC == 0 || $RC == 1 || $RC == 4 ]] && tapv "$OUT" &&
		jsonv schemas/results.json "$tmp/h.json" &&
		jsonv schemas/kcidb-v4.3.json "$tmp/hk.json" && junitv "$tmp/h.xml"
	check "a real host run (pin_fork/pin-only/anon/*): TAP, JSON, KCIDB and JUnit validate"
fi

# --- a guest killed mid-run keeps what it streamed --------------------------

# complete_results TAP: its result lines, complete lines only (a guest
# killed, or still writing, may have cut the last one short).
complete_results() {
	[[ -f $1 ]] || { echo 0; return; }
	head -n "$(wc -l <"$1")" -- "$1" | grep -cE '^(not )?ok '
}

if [[ -n ${PINCHECK_OUTPUTS_NO_VM-} ]]; then
	skip "a killed guest" "PINCHECK_OUTPUTS_NO_VM set"
elif ! command -v qemu-system-x86_64 >/dev/null; then
	skip "a killed guest" "no QEMU"
else
	vmout=$ROOT/build/vm/outputs-test
	rm -rf -- "$vmout"
	# 420 cases: the guest is still far from done when it is killed
	# after its third result, however fast the cases run.
	"$RUN" --no-build --kernel "$KERNEL" --vm-out "$vmout" -t 'pin_fork/*/*/io_uring' \
		--json "$tmp/v.json" --junit "$tmp/v.xml" >"$OUT" 2>"$ERR" </dev/null &
	bg=$!
	for ((i = 0; i < 3000; i++)); do
		(($(complete_results "$vmout/tap.log") >= 3)) && break
		kill -0 "$bg" 2>/dev/null || break
		sleep 0.1
	done
	read -r qpid <"$vmout/qemu.pid" 2>/dev/null && kill -TERM "$qpid" 2>/dev/null
	wait "$bg"
	RC=$?
	streamed=$(complete_results "$vmout/tap.log")
	[[ $RC == 1 ]] && grep -q '^Bail out! ' "$OUT" &&
		tail -n 1 "$OUT" | grep -qE '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' &&
		jsonv schemas/results.json "$tmp/v.json" && junitv "$tmp/v.xml" &&
		jq -e --argjson n "$streamed" '.run.complete == false and
			(.results | length) == $n + 1 and $n >= 3 and .results[-1].id == "vm/run/all/qemu" and
			.run.kernel_spec == "'"$KERNEL"'" and (.run.accel | IN("KVM", "TCG"))' "$tmp/v.json" >"$tmp/why"
	check "a guest killed after 3 results: exit 1, JSON/JUnit keep the $streamed streamed results and add vm/run"
	rm -rf -- "$vmout"
fi

summary
((nfail == 0))
