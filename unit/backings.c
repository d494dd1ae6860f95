// SPDX-License-Identifier: GPL-2.0
/*
 * unit_backings: every backing this kernel offers is created (or skips
 * with a reason), holds exactly the pattern it was filled with, can be
 * snapshotted, and is destroyed without leaving anything behind.
 */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "pincheck.h"

/* Every word of the region is generation r->gen at its own offset. */
static void expect_pattern(const struct pc_region *r)
{
	const uint64_t *w = (const uint64_t *)r->mem;
	size_t i, off;
	unsigned int gen;
	char seen[128];

	for (i = 0; i < r->len / sizeof(*w); i++) {
		if (pc_decode(w[i], &gen, &off) >= 0 && gen == r->gen &&
		    (gen == PC_GEN_ZERO || off == i * sizeof(*w)))
			continue;
		pc_word_describe(w[i], seen, sizeof(seen));
		pc_fail("%s: word at offset %#zx (page %zu) holds %s, expected gen %u",
			r->bk->name, i * sizeof(*w),
			i * sizeof(*w) / pc_page_size, seen, r->gen);
	}
}

/*
 * The snapshot agrees with pc_pfn(), and every page of a populated
 * backing has a PFN (when PFNs are readable at all).
 */
static void expect_snapshot(struct pc_region *r)
{
	size_t i, n = r->len / pc_page_size;
	int populated = strcmp(r->bk->name, "untouched") &&
			strcmp(r->bk->name, "swapped");
	uint64_t pfn;

	pc_region_snap(r, "unit test");
	if (!r->pfn_before || strcmp(r->snap_event, "unit test"))
		pc_fail("%s: pc_region_snap recorded nothing", r->bk->name);
	if (!pc_pfn_readable())
		return;
	for (i = 0; i < n; i++) {
		pfn = pc_pfn(r->mem + i * pc_page_size);
		if (r->pfn_before[i] != pfn)
			pc_fail("%s: snapshot PFN %#llx for page %zu, pc_pfn says %#llx",
				r->bk->name,
				(unsigned long long)r->pfn_before[i], i,
				(unsigned long long)pfn);
		if (populated && !pfn)
			pc_fail("%s: no PFN for page %zu", r->bk->name, i);
	}
}

/* Destroy, then check the file is gone and a second destroy is harmless. */
static void destroy_and_check(struct pc_region *r)
{
	char path[sizeof(r->path)];

	memcpy(path, r->path, sizeof(path));
	pc_region_destroy(r);
	if (r->mem || r->map || r->fd != -1 || r->pfn_before)
		pc_fail("pc_region_destroy left state behind");
	if (path[0] && !access(path, F_OK))
		pc_fail("pc_region_destroy left %s behind", path);
	pc_region_destroy(r);
}

static void create_case(const struct pc_case *c)
{
	const struct pc_backing *bk = c->backing;
	unsigned int gen = bk->flags & PC_BK_ZERO ? PC_GEN_ZERO : PC_GEN_INIT;
	struct pc_region r;

	pc_region_create_or_skip(&r, bk, gen);
	if (r.bk != bk || r.gen != gen || !r.mem || !r.len ||
	    r.len % pc_page_size)
		pc_fail("%s: region not set up (gen %u, len %zu)", bk->name,
			r.gen, r.len);
	if (bk->flags & PC_BK_FILE && r.fd < 0)
		pc_fail("%s: file backing without an fd", bk->name);
	/* swapped: snapshot before the content check faults pages back in */
	expect_snapshot(&r);
	expect_pattern(&r);
	destroy_and_check(&r);
	pc_pass();
}

/* pc_backing_next() walks a list, passing over names it does not know. */
static void expect_backing_list(void)
{
	const char *list = "  no-such anon no-such-either  thp-pmd ";
	const struct pc_backing *a = pc_backing_next(&list);
	const struct pc_backing *b = pc_backing_next(&list);

	if (a != pc_backing_find("anon") || b != pc_backing_find("thp-pmd"))
		pc_fail("pc_backing_next: %s, %s from \"no-such anon no-such-either thp-pmd\", expected anon, thp-pmd",
			a ? a->name : "NULL", b ? b->name : "NULL");
	if (pc_backing_next(&list) || *list)
		pc_fail("pc_backing_next: more after the last name (\"%s\" left)",
			list);
}

/* Names are unique and pc_backing_find() returns each one. */
static void table_case(const struct pc_case *c)
{
	const struct pc_backing *const *list;
	size_t i, j, n = pc_backings(&list);

	(void)c;
	for (i = 0; i < n; i++) {
		if (pc_backing_find(list[i]->name) != list[i])
			pc_fail("pc_backing_find(\"%s\") misses it",
				list[i]->name);
		for (j = 0; j < i; j++)
			if (!strcmp(list[i]->name, list[j]->name))
				pc_fail("backing name %s twice", list[i]->name);
	}
	if (pc_backing_find("no-such-backing"))
		pc_fail("pc_backing_find found an unknown name");
	expect_backing_list();
	pc_pass();
}

/* A zeroed region (never created) can be destroyed. */
static void destroy_zeroed_case(const struct pc_case *c)
{
	int stdin_open = fcntl(0, F_GETFD) >= 0;
	struct pc_region r;

	(void)c;
	memset(&r, 0, sizeof(r));
	pc_region_destroy(&r);
	if (stdin_open && fcntl(0, F_GETFD) < 0)
		pc_fail("destroying a zeroed region closed fd 0");
	pc_pass();
}

static void add_cases(void)
{
	const struct pc_backing *const *list;
	size_t i, n = pc_backings(&list);

	pc_add_case(table_case, NULL, NULL, NULL, "%s/table", pc_binary());
	pc_add_case(destroy_zeroed_case, NULL, NULL, NULL,
		    "%s/destroy/zeroed", pc_binary());
	for (i = 0; i < n; i++)
		pc_add_case(create_case, NULL, list[i], NULL, "%s/create/%s",
			    pc_binary(), list[i]->name);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "unit_backings", add_cases);
}
