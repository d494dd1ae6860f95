#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/dev/mutants/run.sh: the planted-bug benchmark (docs/mutants.md).
# Builds the --build-kernel tree once clean (the base) and once per patch
# in scripts/dev/mutants/*.patch (each switches off one protection the suite
# relies on), boots each image with run_tests.sh --kernel, and prints the
# kill table: per kernel, the failing case families and engines.
#
# The kernel source tree is shared: a patch is applied only for its build,
# and every file a patch touches is put back from a copy taken before the
# first patch (same bytes, same mtime) on every way out, checked by sha256.
# Builds go to their own tree (MUTANTS_KBUILD), never to build-kernel.sh's
# default one; the images to MUTANTS_IMAGES/<name>.bzImage.
#
# Exit: 0 base clean and every mutant killed, 1 otherwise, 2 bad input or
# a source tree that could not be restored.

set -u

PROG=mutants/run.sh
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd) || exit 2
ROOT=$(cd -- "$HERE/../../.." && pwd) || exit 2
CACHE=${PINCHECK_CACHE:-/var/cache/pincheck}
KSRC=${MUTANTS_KSRC:-$CACHE/src/linux-source-6.12}
KBUILD=${MUTANTS_KBUILD:-$CACHE/kbuild/mutants}
IMAGES=${MUTANTS_IMAGES:-$CACHE/mutants}
ORIG=$IMAGES/.orig
BUILD_CMD=${MUTANTS_BUILD_CMD:-$ROOT/scripts/kernels/build-kernel.sh}

opt_only=()
opt_tests=()
opt_family=0
opt_build=1
opt_run=1
opt_out=$ROOT/build/mutants
opt_wrap=()
opt_table=0
opt_base=1
opt_extra=()

warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { warn "$@"; exit 2; }
note() { printf '%s: %s\n' "$PROG" "$*" >&2; }

usage() {
	cat <<'EOF'
Usage: scripts/dev/mutants/run.sh [options] [-- RUN_TESTS_OPTIONS]
Build the base kernel and one kernel per planted bug (scripts/dev/mutants/*.patch),
run the suite on each in a VM, print the kill table.  Options after -- go to
each run_tests.sh (e.g. --case-timeout 60).

      --only NAME    only this mutant (repeatable); --only base: the base only
      --no-base      do not build or run the base (the table reads its
                     earlier results from --out)
  -t, --test GLOB    run only these cases (repeatable; passed to run_tests.sh)
      --family       each mutant runs the globs of its patch's Tests: line,
                     the base all of them (instead of the full suite)
      --build-only   build the images, run nothing
      --no-build     run the images built before
      --table-only   print the table of the runs in --out again
      --out DIR      JSON, logs and table.md here (default build/mutants)
      --wrap CMD     run each VM run under CMD (e.g. a slot lock wrapper)
  -l, --list         list the mutants and what each breaks
  -h, --help         this help
Environment: MUTANTS_KSRC (kernel source, default $PINCHECK_CACHE/src/
linux-source-6.12), MUTANTS_KBUILD (build tree, default .../kbuild/mutants),
MUTANTS_IMAGES (images, default .../mutants), MUTANTS_BUILD_CMD (called as
CMD KSRC KBUILD, prints the image path last; default scripts/kernels/build-kernel.sh).
Exit: 0 base clean and every mutant killed, 1 otherwise, 2 bad input or a
source tree that could not be restored.
EOF
}

# field NAME PATCH: the value of header line "NAME: ..." of a patch.
field() { sed -n "s/^$1: //p;/^--- /q" "$2"; }

all_patches() { ls -- "$HERE"/*.patch 2>/dev/null; }

list_mutants() {
	local p

	for p in $(all_patches); do
		printf '%-28s %s\n  breaks: %s\n  tests:  %s\n' "$(basename "$p" .patch)" \
			"$(field Where "$p")" "$(field Breaks "$p")" "$(field Tests "$p")"
	done
}

parse_args() {
	while (($#)); do
		case $1 in
		--only) (($# >= 2)) || die "--only needs a name"
			[[ $2 == base || -f $HERE/$2.patch ]] || die "no mutant '$2' (see --list)"
			opt_only+=("$2"); shift ;;
		-t|--test) (($# >= 2)) || die "$1 needs a glob"
			opt_tests+=("$2"); shift ;;
		--family) opt_family=1 ;;
		--build-only) opt_run=0 ;;
		--no-build) opt_build=0 ;;
		--table-only) opt_table=1 ;;
		--no-base) opt_base=0 ;;
		--out) (($# >= 2)) || die "--out needs a directory"
			opt_out=$2; shift ;;
		--wrap) (($# >= 2)) || die "--wrap needs a command"
			read -r -a opt_wrap <<<"$2"; shift ;;
		-l|--list) list_mutants; exit 0 ;;
		--) shift; opt_extra=("$@"); break ;;
		-h|--help) usage; exit 0 ;;
		*) die "unknown option '$1' (see --help)" ;;
		esac
		shift
	done
	((opt_family == 0 || ${#opt_tests[@]} == 0)) || die "--family and -t exclude each other"
	((opt_build || opt_run)) || die "--build-only and --no-build exclude each other"
}

selected() {
	local p n

	for p in $(all_patches); do
		n=$(basename "$p" .patch)
		if ((${#opt_only[@]} == 0)) || [[ " ${opt_only[*]} " == *" $n "* ]]; then
			printf '%s\n' "$n"
		fi
	done
}

# selected_or_all: the selected mutants, or all of them when none is.
selected_or_all() {
	local names

	names=$(selected)
	[[ -n $names ]] || names=$(all_patches | xargs -n 1 basename | sed 's/\.patch$//')
	printf '%s\n' "$names"
}

# touched_files: every source file any patch changes (relative to KSRC).
touched_files() { sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$HERE"/*.patch | sort -u; }

# --- the shared source tree: copies, restore, check --------------------

save_sources() {
	local f

	if [[ -f $ORIG/APPLIED ]]; then
		note "a previous run left '$(cat "$ORIG/APPLIED")' applied: restoring the sources"
		restore_sources || return 1
	fi
	for f in $(touched_files); do
		[[ -f $KSRC/$f ]] || { warn "$KSRC/$f: no such file"; return 1; }
		mkdir -p -- "$ORIG/${f%/*}" && cp -p -- "$KSRC/$f" "$ORIG/$f" || return 1
	done
	touched_files | (cd -- "$KSRC" && xargs sha256sum) >"$ORIG/SHA256SUMS"
}

restore_sources() {
	local f

	for f in $(cd -- "$ORIG" && awk '{ print $2 }' SHA256SUMS); do
		cp -p -- "$ORIG/$f" "$KSRC/$f" || return 1
	done
	(cd -- "$KSRC" && sha256sum --quiet -c "$ORIG/SHA256SUMS") >&2 || {
		warn "the restored sources do not match $ORIG/SHA256SUMS"
		return 1
	}
	rm -f -- "$ORIG/APPLIED"
}

on_exit() {
	[[ -f $ORIG/APPLIED ]] || return 0
	if restore_sources; then
		note "sources restored"
	else
		warn "RESTORE FAILED: put back $ORIG/* into $KSRC by hand"
	fi
}

apply_patch() {
	local p=$1

	patch -d "$KSRC" -p1 --dry-run --batch -s <"$p" >/dev/null || return 1
	basename "$p" .patch >"$ORIG/APPLIED"
	patch -d "$KSRC" -p1 --forward --batch -s --no-backup-if-mismatch -r - <"$p"
}

# --- builds ------------------------------------------------------------

# prepare_kbuild: the build tree, copied from build-kernel.sh's default
# tree for KSRC when there is one (timestamps kept: stays incremental).
prepare_kbuild() {
	local def

	[[ -f $KBUILD/.config ]] && return 0
	def=$CACHE/kbuild/${KSRC##*/}-$(printf '%s' "$KSRC" | cksum | cut -d' ' -f1)
	if [[ -f $def/.config ]]; then
		note "copying $def to $KBUILD (once)"
		cp -a -- "$def" "$KBUILD" || return 1
	fi
}

# build_image NAME: build KBUILD from the sources as they are now (the
# objects of every patched file rebuilt: a restored file keeps its old
# mtime), copy the image to IMAGES/NAME.bzImage.
build_image() {
	local name=$1 f img start

	for f in $(touched_files); do
		rm -f -- "$KBUILD/${f%.c}.o"
	done
	start=$SECONDS
	img=$("$BUILD_CMD" "$KSRC" "$KBUILD" 2>"$opt_out/$name.build.err" | tail -n 1)
	cp -- "$KBUILD/build.log" "$opt_out/$name.build.log" 2>/dev/null
	[[ -n $img && -f $img ]] || return 1
	cp -- "$img" "$IMAGES/$name.bzImage" || return 1
	note "$name: built in $((SECONDS - start)) s"
}

build_all() {
	local name p

	save_sources || die "cannot copy the sources to patch to $ORIG"
	if ((opt_base)); then
		rm -f -- "$IMAGES/base.bzImage"
		build_image base || warn "base: the build failed (log: $opt_out/base.build.log)"
	fi
	for name in $(selected); do
		p=$HERE/$name.patch
		rm -f -- "$IMAGES/$name.bzImage"
		if ! apply_patch "$p"; then
			warn "$name: the patch does not apply to $KSRC"
			restore_sources || die "cannot restore $KSRC"
			continue
		fi
		build_image "$name" || warn "$name: the build failed (log: $opt_out/$name.build.log)"
		restore_sources || die "cannot restore $KSRC"
	done
}

# --- runs and the table -------------------------------------------------

# globs_of NAME: the -t globs a kernel runs with.
globs_of() {
	local n

	if ((${#opt_tests[@]})); then
		printf '%s\n' "${opt_tests[@]}"
	elif ((opt_family)); then
		if [[ $1 == base ]]; then
			for n in $(selected_or_all); do field Tests "$HERE/$n.patch" | tr ' ' '\n'; done | sort -u
		else
			field Tests "$HERE/$1.patch" | tr ' ' '\n'
		fi
	fi
}

run_one() {
	local name=$1 img=$IMAGES/$1.bzImage g
	local -a args=()

	[[ -f $img ]] || { warn "$name: no image $img (build it first)"; return; }
	while IFS= read -r g; do
		[[ -n $g ]] && args+=(-t "$g")
	done < <(globs_of "$name")
	rm -f -- "$opt_out/$name.json"
	note "$name: running ${args[*]:-the full suite}"
	"${opt_wrap[@]}" "$ROOT/run_tests.sh" --kernel "$img" --json "$opt_out/$name.json" \
		--vm-out "$opt_out/vm-$name" "${args[@]}" "${opt_extra[@]}" >"$opt_out/$name.log" 2>&1
	printf '%s\n' "$?" >"$opt_out/$name.rc"
	printf '%s\n' "${args[*]:-full suite}" >"$opt_out/$name.narrowed"
}

# The results array of a run_tests.sh --json file (pincheck-results v2, or
# the bare array of older runs), as a jq prefix.
JQ_RESULTS='(if type == "array" then . else .results end) | '

# table_row NAME: one line of the kill table from NAME.json.
table_row() {
	local name=$1 json=$opt_out/$1.json verdict counts fams engines total pass skip fail

	if [[ ! -s $json ]]; then
		printf '| %s | NO RESULT (run_tests.sh exit %s) | | | | |\n' "$name" \
			"$(cat "$opt_out/$name.rc" 2>/dev/null || echo -)"
		return
	fi
	counts=$(jq -r "$JQ_RESULTS"'[length, ([.[] | select(.result == "pass")] | length),
		([.[] | select(.result == "skip")] | length)] | @tsv' "$json")
	read -r total pass skip <<<"$counts"
	fail=$((total - pass - skip))
	fams=$(jq -r "$JQ_RESULTS"'[.[] | select(.result != "pass" and .result != "skip") | .id
		| split("/") | "\(.[0])/\(.[1])"] | unique | join(", ")' "$json")
	engines=$(jq -r "$JQ_RESULTS"'[.[] | select(.result != "pass" and .result != "skip") | .id
		| split("/") | .[-1]] | unique | join(", ")' "$json")
	if [[ $name == base ]]; then
		((fail == 0)) && verdict=clean || verdict="NOT CLEAN"
	else
		((fail > 0)) && verdict=KILLED || verdict=SURVIVED
	fi
	printf '| %s | %s | %d / %d / %d | %s | %s | %s |\n' "$name" "$verdict" \
		"$fail" "$pass" "$skip" "${fams:--}" "${engines:--}" \
		"$(cat "$opt_out/$name.narrowed" 2>/dev/null)"
}

print_table() {
	local name kernel

	kernel=$(jq -r 'if type == "array" then first(.[].kernel // empty)
		else .run.kernel_release end // "?"' "$opt_out/base.json" 2>/dev/null)
	printf 'Kill table, %s; base kernel %s (%s)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" \
		"${kernel:-?}" "$KSRC"
	printf '| kernel | verdict | failed / passed / skipped | failing families | engines | cases run |\n'
	printf '|---|---|---|---|---|---|\n'
	for name in base $(selected); do table_row "$name"; done
}

# finish_table: print and keep the table; status 1 unless the base is
# clean and every mutant killed.
finish_table() {
	print_table | tee "$opt_out/table.md"
	! grep -qE '^\| [^|]* \| (NOT CLEAN|SURVIVED|NO RESULT)' "$opt_out/table.md"
}

main() {
	local name

	parse_args "$@"
	command -v jq >/dev/null || die "jq is needed for the table"
	if ((opt_table)); then
		[[ -d $opt_out ]] || die "no results in '$opt_out'"
		finish_table
		return
	fi
	[[ -f $KSRC/Makefile && -d $KSRC/mm ]] || die "'$KSRC' is not a kernel source tree (MUTANTS_KSRC)"
	command -v patch >/dev/null || die "patch is needed"
	[[ -n $(all_patches) ]] || die "no patches in $HERE"
	mkdir -p -- "$opt_out" "$IMAGES" "$ORIG" || die "cannot create $opt_out or $IMAGES"
	opt_out=$(cd -- "$opt_out" && pwd)
	trap 'exit 130' INT
	trap 'exit 143' TERM
	if ((opt_build)); then
		exec {lockfd}>"$IMAGES/.lock"
		flock -n "$lockfd" || die "another mutants build holds $IMAGES/.lock"
		trap on_exit EXIT
		prepare_kbuild || die "cannot prepare $KBUILD"
		build_all
	fi
	((opt_run)) || return 0
	((opt_base)) && run_one base
	for name in $(selected); do run_one "$name"; done
	finish_table
}

main "$@"
