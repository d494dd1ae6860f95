// SPDX-License-Identifier: GPL-2.0
/* Shared scenario building blocks: the case matrix and coherence checks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pattern.h"
#include "scenario.h"
#include "sysprobe.h"
#include "util.h"

/* The upstream fix for R/O long-term pins of the zero page (S15). */
#define ZERO_PAGE_PIN_FIX \
	"84209e87c696 (\"mm/gup: reliable R/O long-term pinning in COW mappings\", v6.2)"

void pc_add_matrix(pc_case_fn run, const void *scenario, const char *name,
		   unsigned int need, unsigned int refuse)
{
	const struct pc_backing *const *bks;
	const struct pc_engine_ops *const *engs;
	size_t nb = pc_backings(&bks), ne = pc_engines(&engs), b, e;

	for (b = 0; b < nb; b++) {
		for (e = 0; e < ne; e++) {
			if (!pc_engine_joins(engs[e], need, refuse))
				continue;
			pc_add_case(run, scenario, bks[b], engs[e],
				    "%s/%s/%s/%s", pc_binary(), name,
				    bks[b]->name, engs[e]->name);
		}
	}
}

void pc_add_matrix_on(pc_case_fn run, const void *scenario, const char *name,
		      const char *backings, unsigned int need,
		      unsigned int refuse, unsigned int timeout_s)
{
	const struct pc_engine_ops *const *engs;
	size_t ne = pc_engines(&engs), e;
	const struct pc_backing *bk;

	while ((bk = pc_backing_next(&backings))) {
		for (e = 0; e < ne; e++) {
			if (!pc_engine_joins(engs[e], need, refuse))
				continue;
			pc_add_case(run, scenario, bk, engs[e], "%s/%s/%s/%s",
				    pc_binary(), name, bk->name,
				    engs[e]->name)->timeout_s = timeout_s;
		}
	}
}

/* Errors by which a kernel refuses a pin of this kind of memory. */
static int is_policy_refusal(int rc)
{
	return rc == -EFAULT || rc == -EOPNOTSUPP || rc == -EINVAL;
}

void pc_pin_region_or_skip(struct pc_engine *e, struct pc_region *r,
			   unsigned int flags)
{
	int rc = pc_engine_pin(e, r->mem, r->len, flags);

	if (!rc)
		return;
	/* The 6.5 policy is about writable pins; a refused R/O pin fails. */
	if ((r->bk->flags & PC_BK_FILE) && (flags & PC_PIN_RW) &&
	    is_policy_refusal(rc))
		pc_skip("not applicable: kernel refuses a R/W %s pin of %s memory (%s); expected since 6.5 for file mappings that need dirty tracking",
			e->ops->name, r->bk->name, strerror(-rc));
	pc_fail("pin %s: %s", r->bk->name, e->err[0] ? e->err : strerror(-rc));
}

void pc_expect_device_sees(struct pc_engine *e, struct pc_region *r,
			   unsigned int gen, const char *what)
{
	struct pc_check chk = {
		.what = what, .r = r, .off = 0, .len = r->len, .gen = gen,
		.side = PC_CHECK_DEVICE, .cpu = r->mem,
	};
	void *dev;

	if (!pc_engine_can(e->ops, PC_CAP_DEV_READ))
		return;
	dev = pc_dev_read_alloc(e, 0, r->len);
	chk.dev = dev;
	chk.sample = e->sample;
	pc_verify_or_fail(&chk);
	free(dev);
}

/*
 * What the R/O pin of page @i took, when the CPU has left that page since
 * and a known bug explains it: the shared or huge zero page (its first PFN
 * in *zero_pfn), or a page-cache page of a private file mapping.  NULL
 * otherwise.
 */
static const char *pinned_cow_page(const struct pc_region *r, size_t i,
				   uint64_t *zero_pfn)
{
	uint64_t pinned = r->pfn_before[i], flags;
	const char *zero;

	if (!pinned || pc_pfn(r->mem + i * pc_page_size) == pinned)
		return NULL;
	zero = pc_zero_page_name(pinned, zero_pfn);
	if (zero)
		return zero;
	*zero_pfn = 0;
	if ((r->bk->flags & PC_BK_FILE) && !(r->bk->flags & PC_BK_SHARED) &&
	    !pc_kpageflags(pinned, &flags) && !(flags >> PC_KPF_ANON & 1))
		return "a page-cache page of the private file mapping";
	return NULL;
}

/* First page whose pin pinned_cow_page() explains, or -1. */
static ssize_t first_cow_pinned(const struct pc_region *r)
{
	uint64_t dummy;
	size_t i;

	if (!r->pfn_before)
		return -1;
	for (i = 0; i < r->len / pc_page_size; i++)
		if (pinned_cow_page(r, i, &dummy))
			return i;
	return -1;
}

/* The device's first judged word that is not @gen, described into @buf. */
static void first_bad_device_word(const struct pc_check *chk, char *buf,
				  size_t len)
{
	const uint64_t *dev = chk->dev;
	size_t i;

	snprintf(buf, len, "no bad word");
	for (i = 0; i < chk->len / 8; i++) {
		if (chk->sample && !(chk->sample[i / 64] >> (i % 64) & 1))
			continue;
		if (dev[i] != pc_word(chk->gen, i * 8)) {
			pc_word_describe(dev[i], buf, len);
			return;
		}
	}
}

void pc_expect_device_sees_ro_pinned(struct pc_engine *e, struct pc_region *r,
				     unsigned int gen, const char *what)
{
	struct pc_check chk = {
		.what = what, .r = r, .off = 0, .len = r->len, .gen = gen,
		.side = PC_CHECK_DEVICE, .cpu = r->mem, .sample = e->sample,
	};
	uint64_t pinned, zero_pfn = 0;
	char seen[160], where[96] = "";
	const char *kind;
	size_t bad;
	ssize_t page;
	void *dev;

	if (!pc_engine_can(e->ops, PC_CAP_DEV_READ))
		return;
	dev = pc_dev_read_alloc(e, 0, r->len);
	chk.dev = dev;
	bad = pc_verify(&chk);
	if (!bad) {
		free(dev);
		return;
	}
	page = first_cow_pinned(r);
	if (page < 0)
		pc_fail("%s", pc_mismatch_summary());
	pinned = r->pfn_before[page];
	kind = pinned_cow_page(r, page, &zero_pfn);
	if (zero_pfn)
		snprintf(where, sizeof(where), " (%s starts at PFN 0x%llx)",
			 kind, (unsigned long long)zero_pfn);
	first_bad_device_word(&chk, seen, sizeof(seen));
	pc_fail("device reads %s: the R/O pin took PFN 0x%llx at page %zd%s, the CPU wrote to PFN 0x%llx; %s: device sees %s, expected gen %u (%s), %zu bad bytes; known kernel bug, fixed upstream by %s",
		kind, (unsigned long long)pinned, page, where,
		(unsigned long long)pc_pfn(r->mem + page * pc_page_size), what,
		seen, gen, pc_gen_describe(gen), bad, ZERO_PAGE_PIN_FIX);
}

void pc_expect_cpu_sees(struct pc_region *r, unsigned int gen,
			const char *what)
{
	struct pc_check chk = {
		.what = what, .r = r, .off = 0, .len = r->len, .gen = gen,
		.side = PC_CHECK_CPU, .cpu = r->mem,
	};

	pc_verify_or_fail(&chk);
}

int pc_device_write_then_cpu_sees(struct pc_engine *e, struct pc_region *r,
				  unsigned int gen, const char *what)
{
	struct pc_check chk = {
		.what = what, .r = r, .off = 0, .len = r->len, .gen = gen,
		.side = PC_CHECK_CPU, .cpu = r->mem,
	};

	if (!pc_engine_can(e->ops, PC_CAP_DEV_WRITE))
		return -1;
	pc_dev_write_gen(e, 0, r->len, gen);
	/* A sampling device wrote only its sample: judge those words. */
	chk.sample = e->sample;
	pc_verify_or_fail(&chk);
	return 0;
}

unsigned int pc_coherence_round(struct pc_engine *e, struct pc_region *r,
				unsigned int model, const char *when)
{
	char what[160];

	snprintf(what, sizeof(what), "device read %s", when);
	pc_expect_device_sees(e, r, model, what);
	snprintf(what, sizeof(what), "CPU read of a device write %s", when);
	if (!pc_device_write_then_cpu_sees(e, r, PC_GEN_DEVICE, what))
		model = PC_GEN_DEVICE;
	pc_region_cpu_write(r, 0, r->len, PC_GEN_CPU_LATE);
	snprintf(what, sizeof(what), "device read of a CPU write %s", when);
	pc_expect_device_sees(e, r, PC_GEN_CPU_LATE, what);
	return PC_GEN_CPU_LATE;
}

void pc_fork_and_reap(void)
{
	struct pc_child ch;
	char how[64];
	int status;

	if (!pc_child_fork(&ch))
		_exit(0);
	status = pc_child_reap(&ch);
	if (status != 0)
		pc_fail("earlier fork: child %s",
			pc_wait_describe(status, how, sizeof(how)));
}

void pc_child_wait_ready(struct pc_child *ch, int alive)
{
	char how[64];
	int status;

	if (alive) {
		if (pc_child_await(ch->to_parent, NULL))
			pc_fail("child died before the parent's checks");
		return;
	}
	status = pc_child_reap(ch);
	if (status != 0)
		pc_fail("child %s", pc_wait_describe(status, how, sizeof(how)));
}

void pc_child_verify_or_exit(struct pc_child *ch, const struct pc_check *chk)
{
	if (pc_verify(chk)) {
		dprintf(ch->to_parent, "%s", pc_mismatch_summary());
		_exit(1);
	}
}

int pc_child_collect(struct pc_child *ch, char token, char *summary,
		     size_t len)
{
	ssize_t n;

	pc_child_tell(ch->to_child, token);
	n = read(ch->to_parent, summary, len - 1);
	summary[n > 0 ? n : 0] = '\0';
	return pc_child_reap(ch);
}
