#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# unit/docs_test.sh: the documentation stays true to the tree.
#   - README.md is at most 8 KiB (a newcomer's front page; depth is in docs/);
#   - every relative Markdown link in README.md and docs/ names a file that
#     exists, and no link leaves the repository;
#   - every repository path written in backquotes (lib/..., tests/...,
#     scripts/..., unit/..., configs/..., schemas/..., docs/...) exists, so
#     a file moved without its docs is caught.
# Ends with "N passed, N failed, N skipped"; exit 0 if nothing failed.
# Takes well under a second, needs no root.

set -u

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd) || exit 2
cd -- "$ROOT" || exit 2
README_MAX=8192
n=0
nfail=0

ok() { n=$((n + 1)); printf 'ok %d - %s\n' "$n" "$1"; }
not_ok() {
	n=$((n + 1)) nfail=$((nfail + 1))
	printf 'not ok %d - %s\n' "$n" "$1"
}

# check_readme_size: README.md within README_MAX bytes
check_readme_size() {
	local size
	size=$(wc -c <README.md)
	if ((size <= README_MAX)); then
		ok "README.md is $size bytes (at most $README_MAX)"
	else
		not_ok "README.md is $size bytes, more than $README_MAX: move depth to docs/"
	fi
}

# md_files: README.md and every Markdown file under docs/
md_files() {
	printf '%s\n' README.md
	find docs -name '*.md' | sort
}

# link_targets FILE: the targets of its Markdown links, one per line
link_targets() {
	grep -oE '\]\([^)]+\)' -- "$1" | sed -E 's/^\]\(//; s/\)$//'
}

# check_links FILE: relative links resolve from FILE's folder; none leave
check_links() {
	local f=$1 dir t path bad=
	dir=$(dirname -- "$f")
	while IFS= read -r t; do
		case $t in
		http://* | https://* | mailto:*)
			bad+=" $t (outside the repository)"
			continue
			;;
		'#'*) continue ;;
		esac
		path=${t%%#*}
		[[ -e $dir/$path ]] || bad+=" $t"
	done < <(link_targets "$f")
	if [[ -z $bad ]]; then
		ok "$f: links resolve inside the repository"
	else
		not_ok "$f: bad links:$bad"
	fi
}

# code_paths FILE: repository paths written in backquotes, without globs,
# placeholders, options or a kernel package's lib/modules tree
code_paths() {
	# shellcheck disable=SC2016 # backquotes are literal here
	grep -oE '`(lib|tests|scripts|unit|configs|schemas|docs)/[^` ]+`' -- "$1" |
		tr -d '`' | grep -vE '[][*?<>{}$]|^lib/modules' | sed -E 's/[:,.]+$//' | sort -u
}

# check_paths FILE: every such path exists in the tree
check_paths() {
	local f=$1 p bad=
	while IFS= read -r p; do
		[[ -e $p ]] || bad+=" $p"
	done < <(code_paths "$f")
	if [[ -z $bad ]]; then
		ok "$f: the repository paths it names exist"
	else
		not_ok "$f: names paths that do not exist:$bad"
	fi
}

check_readme_size
while IFS= read -r f; do
	check_links "$f"
	check_paths "$f"
done < <(md_files)

printf '%d passed, %d failed, %d skipped\n' "$((n - nfail))" "$nfail" 0
((nfail == 0))
