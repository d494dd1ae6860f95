#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/mutants_test.sh: shell tests of scripts/dev/mutants/run.sh without
# building or booting a kernel: the patches' headers, bad input, the kill
# table from fake results, and the build loop with a fake build command on
# a copy of the patched source files: each mutant's build sees its patch,
# the base none, and the sources come back byte- and mtime-identical after
# a clean run, a failed build and a SIGTERM in the middle of a build.
# The patches are dry-run against the real source tree when it is there.
# Prints TAP lines and "N passed, N failed, N skipped"; exit 0 if nothing
# failed.

set -u

ROOT=${BASH_SOURCE[0]%/*}/..
[[ ${BASH_SOURCE[0]} == */* ]] || ROOT=..
cd -- "$ROOT" || exit 2
ROOT=$PWD
RUN=$ROOT/scripts/dev/mutants/run.sh
CACHE=${PINCHECK_CACHE:-/var/cache/pincheck}
REAL_KSRC=${MUTANTS_KSRC:-$CACHE/src/linux-source-6.12}

# shellcheck source=unit/vmtest-lib.sh
. "$ROOT/unit/vmtest-lib.sh"
vt_init mutants-test
export MUTANTS_IMAGES=$tmp/images MUTANTS_KBUILD=$tmp/kbuild

patches=("$ROOT"/scripts/dev/mutants/*.patch)
names=()
for p in "${patches[@]}"; do names+=("$(basename "$p" .patch)"); done
mapfile -t files < <(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "${patches[@]}" | sort -u)

test_headers() {
	local p bad=

	for p in "${patches[@]}"; do
		[[ $(sed -n 's/^Mutant: //p' "$p") == "$(basename "$p" .patch)" ]] || bad+=" $p(Mutant)"
		grep -q '^Breaks: .' "$p" || bad+=" $p(Breaks)"
		grep -q '^Where: .' "$p" || bad+=" $p(Where)"
		grep -q '^Tests: [a-z_]*/' "$p" || bad+=" $p(Tests)"
	done
	if ((${#patches[@]} >= 8)) && [[ -z $bad ]] &&
	   (($("$RUN" --list | grep -c '^[a-z]') == ${#patches[@]})); then
		pass "${#patches[@]} mutants, each with Mutant/Breaks/Where/Tests, all listed"
	else
		fail "mutant headers" "${#patches[@]} patches; bad:$bad"
	fi
}

test_bad_input() {
	local args out rc ok=1

	for args in "--bogus" "--only no-such-mutant" "--family -t x/*" "--build-only --no-build"; do
		# shellcheck disable=SC2086 # the words of one test's arguments
		out=$("$RUN" $args 2>&1 </dev/null)
		rc=$?
		if ((rc != 2)) || (($(wc -l <<<"$out") != 1)); then
			ok=0
			break
		fi
	done
	if ((ok)); then pass "bad input: one line, exit 2"; else fail "bad input '$args'" "exit $rc: $out"; fi
}

# fake_json FILE RESULT...: a run_tests.sh --json array, one case a result.
fake_json() {
	local f=$1 r i=0 sep=

	shift
	{
		printf '['
		for r in "$@"; do
			i=$((i + 1))
			printf '%s\n {"id": "bin%d/scen/anon/eng%d", "result": "%s", "kernel": "6.12.0-fake"}' \
				"$sep" "$i" "$i" "$r"
			sep=,
		done
		printf '\n]\n'
	} >"$f"
}

test_table() {
	local out=$tmp/table a=${names[0]} b=${names[1]} c=${names[2]} rc

	mkdir -p "$out"
	fake_json "$out/base.json" pass skip pass
	fake_json "$out/$a.json" pass fail timeout
	fake_json "$out/$b.json" pass pass skip
	"$RUN" --table-only --out "$out" --only "$a" --only "$b" --only "$c" >"$tmp/t.out" 2>&1
	rc=$?
	if ((rc == 1)) && grep -q '^| base | clean | 0 / 2 / 1 |' "$tmp/t.out" &&
	   grep -q "^| $a | KILLED | 2 / 1 / 0 | bin2/scen, bin3/scen | eng2, eng3 |" "$tmp/t.out" &&
	   grep -q "^| $b | SURVIVED | 0 / 2 / 1 |" "$tmp/t.out" &&
	   grep -q "^| $c | NO RESULT" "$tmp/t.out" && grep -q '6.12.0-fake' "$tmp/t.out"; then
		pass "kill table: base clean, KILLED with families and engines, SURVIVED, NO RESULT; exit 1"
	else
		fail "kill table" "exit $rc"$'\n'"$(cat "$tmp/t.out")"
	fi
	rm -f "$out/$b.json" "$out/$c.json"
	fake_json "$out/base.json" pass fail
	"$RUN" --table-only --out "$out" --only "$a" >"$tmp/t.out" 2>&1
	rc=$?
	fake_json "$out/base.json" pass
	if ((rc == 1)) && grep -q '^| base | NOT CLEAN |' "$tmp/t.out" &&
	   "$RUN" --table-only --out "$out" --only "$a" >/dev/null 2>&1; then
		pass "kill table: a failing base is NOT CLEAN (exit 1); all killed and base clean: exit 0"
	else
		fail "kill table exit status" "$(cat "$tmp/t.out")"
	fi
}

test_dry_run() {
	local p bad=

	if [[ ! -f $REAL_KSRC/Makefile ]]; then
		skip "patches apply to $REAL_KSRC" "no kernel source (scripts/runner/deps.sh --kbuild, or set MUTANTS_KSRC)"
		return
	fi
	if [[ -f $CACHE/mutants/.orig/APPLIED ]]; then
		skip "patches apply to $REAL_KSRC" "a mutants run is building now (retry later)"
		return
	fi
	for p in "${patches[@]}"; do
		patch -d "$REAL_KSRC" -p1 --dry-run --batch -s <"$p" >/dev/null 2>&1 || bad+=" $p"
	done
	if [[ -z $bad ]]; then pass "every patch applies to $REAL_KSRC (dry run)"; else fail "patches that do not apply:$bad"; fi
}

# make_fake_tree: KSRC with the patched files copied from the real tree.
make_fake_tree() {
	local f

	rm -rf "$tmp/ksrc" "$MUTANTS_IMAGES" "$MUTANTS_KBUILD"
	mkdir -p "$tmp/ksrc/mm" "$MUTANTS_KBUILD" && : >"$tmp/ksrc/Makefile" && : >"$MUTANTS_KBUILD/.config"
	for f in "${files[@]}"; do
		mkdir -p "$tmp/ksrc/${f%/*}" && cp -p "$REAL_KSRC/$f" "$tmp/ksrc/$f" || return 1
	done
	(cd "$tmp/ksrc" && sha256sum "${files[@]}" && stat -c '%n %y' "${files[@]}") >"$tmp/pristine"
	cat >"$tmp/fakebuild" <<'EOF'
#!/bin/bash
# the fake build: records whether the tree is pristine, may fail or kill
cd "$1" || exit 2
if sha256sum --quiet -c "$FAKE_DIR/pristine" >/dev/null 2>&1; then s=pristine; else s=patched; fi
echo "$s" >>"$FAKE_DIR/builds"
[[ $s == patched && -n ${FAKE_FAIL:-} ]] && exit 1
[[ $s == patched && -n ${FAKE_KILL:-} ]] && { kill -TERM "$(cat "$FAKE_DIR/run.pid")"; sleep 1; }
echo image >"$2/bzImage" && echo "$2/bzImage"
EOF
	chmod +x "$tmp/fakebuild"
}

# restored: the fake tree's files have their first bytes and mtimes.
restored() {
	[[ $(cd "$tmp/ksrc" && sha256sum "${files[@]}" && stat -c '%n %y' "${files[@]}") == "$(cat "$tmp/pristine")" ]]
}

fake_run() {
	: >"$tmp/builds"
	MUTANTS_KSRC=$tmp/ksrc MUTANTS_BUILD_CMD=$tmp/fakebuild FAKE_DIR=$tmp \
		"$RUN" --build-only --out "$tmp/bout" --only "${names[0]}" --only "${names[1]}" \
		>"$tmp/b.out" 2>&1 &
	echo $! >"$tmp/run.pid"
	wait "$!"
}

test_build_loop() {
	local rc

	if [[ ! -f $REAL_KSRC/Makefile ]] || ! make_fake_tree; then
		skip "build loop on a copy of the sources" "no kernel source at $REAL_KSRC"
		return
	fi
	export FAKE_FAIL='' FAKE_KILL=
	fake_run
	rc=$?
	if ((rc == 0)) && restored && [[ $(tr '\n' ' ' <"$tmp/builds") == "pristine patched patched " ]] &&
	   [[ -f $MUTANTS_IMAGES/base.bzImage && -f $MUTANTS_IMAGES/${names[1]}.bzImage ]]; then
		pass "build loop: base pristine, each mutant patched, images kept, sources restored (bytes, mtime)"
	else
		fail "build loop" "exit $rc, builds: $(tr '\n' ' ' <"$tmp/builds")"$'\n'"$(cat "$tmp/b.out")"
	fi
	FAKE_FAIL=1 fake_run
	rc=$?
	if ((rc == 0)) && restored && [[ ! -f $MUTANTS_IMAGES/${names[0]}.bzImage ]] &&
	   grep -q 'build failed' "$tmp/b.out"; then
		pass "a failed mutant build: no image, sources restored, the loop goes on"
	else
		fail "failed build" "exit $rc"$'\n'"$(cat "$tmp/b.out")"
	fi
	FAKE_KILL=1 fake_run
	rc=$?
	if ((rc == 143)) && restored && [[ ! -f $MUTANTS_IMAGES/.orig/APPLIED ]]; then
		pass "SIGTERM during a mutant build: exit 143, sources restored"
	else
		fail "SIGTERM during a build" "exit $rc"$'\n'"$(cat "$tmp/b.out")"
	fi
}

test_headers
test_bad_input
test_table
test_dry_run
test_build_loop
summary
((nfail == 0))
