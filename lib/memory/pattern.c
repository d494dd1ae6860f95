// SPDX-License-Identifier: GPL-2.0
/*
 * Self-describing patterns and the mismatch report.
 */
#include <stdio.h>
#include <string.h>

#include "report.h"
#include "pattern.h"
#include "region.h"
#include "sysprobe.h"

#define PC_GEN_SHIFT 40
#define PC_MAGIC_SHIFT 48
#define PC_INDEX_MASK ((1ULL << PC_GEN_SHIFT) - 1)

static const char *gen_names[PC_GEN_MAX] = {
	[PC_GEN_ZERO] = "zero-filled, never written",
	[PC_GEN_INIT] = "written before fork",
	[PC_GEN_PARENT] = "parent CPU write after fork",
	[PC_GEN_DEVICE] = "device write after fork",
	[PC_GEN_CHILD] = "child CPU write after fork",
	[PC_GEN_CPU_LATE] = "parent CPU write after the device write",
	[PC_GEN_OTHER] = "CPU write to a page the device never pinned",
	[PC_GEN_DEVICE_LATE] = "second device write",
};

static char summary[PC_REASON_MAX];

uint64_t pc_word(unsigned int gen, size_t off)
{
	if (!gen)
		return 0;
	return PC_MAGIC << PC_MAGIC_SHIFT |
	       (uint64_t)(gen & 0xff) << PC_GEN_SHIFT |
	       ((off / 8) & PC_INDEX_MASK);
}

/*
 * Consecutive words of one generation differ by one in their index (the
 * index field never carries: it counts 8-byte words up to 8 TiB), so the
 * fill and the check step a word instead of composing each: a third of
 * the instructions, which is what a TCG guest pays for.
 */
static uint64_t word_step(unsigned int gen)
{
	return gen ? 1 : 0;
}

void pc_fill(void *dst, size_t off, size_t len, unsigned int gen)
{
	uint64_t *w = dst, word = pc_word(gen, off), step = word_step(gen);
	size_t i, n = len / 8;

	for (i = 0; i < n; i++, word += step)
		w[i] = word;
}

/* Do all @len bytes at @view hold generation @gen of region offset @off? */
static int all_words_match(const uint64_t *view, unsigned int gen,
			   size_t off, size_t len)
{
	uint64_t word = pc_word(gen, off), step = word_step(gen), diff = 0;
	size_t i, n = len / 8;

	for (i = 0; i < n; i++, word += step)
		diff |= view[i] ^ word;
	return !diff;
}

int pc_decode(uint64_t word, unsigned int *gen, size_t *off)
{
	if (!word) {
		*gen = PC_GEN_ZERO;
		*off = 0;
		return 0;
	}
	if (word >> PC_MAGIC_SHIFT != PC_MAGIC)
		return -1;
	*gen = (word >> PC_GEN_SHIFT) & 0xff;
	*off = (word & PC_INDEX_MASK) * 8;
	return *gen ? 1 : -1;
}

void pc_gen_name(unsigned int gen, const char *name)
{
	if (gen < PC_GEN_MAX)
		gen_names[gen] = name;
}

const char *pc_gen_describe(unsigned int gen)
{
	if (gen < PC_GEN_MAX && gen_names[gen])
		return gen_names[gen];
	return "unnamed generation";
}

void pc_word_describe(uint64_t word, char *buf, size_t len)
{
	unsigned int gen;
	size_t off;

	if (word == PC_WORD_UNSAMPLED) {
		snprintf(buf, len, "not transferred (outside the device's sample)");
		return;
	}
	switch (pc_decode(word, &gen, &off)) {
	case 0:
		snprintf(buf, len, "zeros");
		break;
	case 1:
		snprintf(buf, len, "gen %u (%s) @0x%zx", gen,
			 pc_gen_describe(gen), off);
		break;
	default:
		snprintf(buf, len, "foreign data 0x%016llx",
			 (unsigned long long)word);
	}
}

static const char *side_name(enum pc_side side)
{
	switch (side) {
	case PC_CHECK_DEVICE:
		return "device";
	case PC_CHECK_CHILD:
		return "child";
	case PC_CHECK_FILE:
		return "file";
	default:
		return "CPU";
	}
}

static const uint64_t *judged_view(const struct pc_check *chk)
{
	return chk->side == PC_CHECK_DEVICE ? chk->dev : chk->cpu;
}

struct pc_mismatch {
	size_t first;		/* byte offset within the checked range */
	size_t bad_bytes;
	size_t bad_pages;
	size_t judged;		/* bytes judged (all, or the sampled ones) */
};

/* Is the word at region offset @off judged by @chk? */
static int word_judged(const struct pc_check *chk, size_t off)
{
	size_t w = off / 8;

	return !chk->sample || (chk->sample[w / 64] >> (w % 64) & 1);
}

static void scan_mismatch(const struct pc_check *chk, struct pc_mismatch *m)
{
	const uint64_t *view = judged_view(chk);
	size_t page = pc_page_size, i, last_page = (size_t)-1;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < chk->len / 8; i++) {
		size_t off = chk->off + i * 8;

		if (!word_judged(chk, off))
			continue;
		m->judged += 8;
		if (view[i] == pc_word(chk->gen, off))
			continue;
		if (!m->bad_bytes)
			m->first = i * 8;
		m->bad_bytes += 8;
		if (off / page != last_page) {
			last_page = off / page;
			m->bad_pages++;
		}
	}
}

/* "PFN 0x1a2b3 before fork, 0x1a2b3 now (unchanged)" or why unknown. */
static void describe_pfns(const struct pc_check *chk, size_t off, char *buf,
			  size_t len)
{
	const struct pc_region *r = chk->r;
	size_t idx = off / pc_page_size;
	uint64_t now, before = 0;
	const char *zero;

	if (!r) {
		snprintf(buf, len, "PFN unknown (the check names no region)");
		return;
	}
	if (!pc_pfn_readable()) {
		snprintf(buf, len, "PFN unknown (pagemap hides PFNs: run as root)");
		return;
	}
	now = pc_pfn(r->mem + idx * pc_page_size);
	if (r->pfn_before)
		before = r->pfn_before[idx];
	if (!r->pfn_before || !before)
		snprintf(buf, len, "CPU page PFN 0x%llx now",
			 (unsigned long long)now);
	else {
		zero = pc_zero_page_name(before, NULL);
		snprintf(buf, len, "CPU page PFN 0x%llx%s%s%s before %s, 0x%llx now%s",
			 (unsigned long long)before, zero ? " (" : "",
			 zero ? zero : "", zero ? ")" : "",
			 r->snap_event ? r->snap_event : "the event",
			 (unsigned long long)now,
			 before == now ? " (unchanged)" : " (moved)");
	}
}

static void print_view(const char *who, const void *view, size_t idx)
{
	char desc[160];

	if (!view)
		return;
	pc_word_describe(((const uint64_t *)view)[idx], desc, sizeof(desc));
	pc_diag("  %-8s %s", who, desc);
}

static void report_mismatch(const struct pc_check *chk,
			    const struct pc_mismatch *m)
{
	const struct pc_case *c = pc_current();
	size_t off = chk->off + m->first, idx = m->first / 8;
	char seen[160], pfns[160];

	pc_word_describe(judged_view(chk)[idx], seen, sizeof(seen));
	describe_pfns(chk, off, pfns, sizeof(pfns));
	pc_diag("MISMATCH %s: %s", c ? c->id : "-", chk->what);
	if (chk->sample)
		pc_diag("  first bad offset 0x%zx (page %zu); %zu bad bytes in %zu page(s) of the 0x%zx bytes the device sampled in 0x%zx",
			off, off / pc_page_size, m->bad_bytes, m->bad_pages,
			m->judged, chk->len);
	else
		pc_diag("  first bad offset 0x%zx (page %zu); %zu bad bytes in %zu page(s) of 0x%zx checked",
			off, off / pc_page_size, m->bad_bytes, m->bad_pages,
			chk->len);
	pc_diag("  expected gen %u (%s)", chk->gen, pc_gen_describe(chk->gen));
	print_view("device:", chk->dev, idx);
	print_view(chk->side == PC_CHECK_CHILD ? "child:" :
		   chk->side == PC_CHECK_FILE ? "file:" : "CPU:", chk->cpu, idx);
	pc_diag("  %s", pfns);
	snprintf(summary, sizeof(summary),
		 "%s: %s sees %s at page %zu, expected gen %u (%s); %zu bad bytes; %s",
		 chk->what, side_name(chk->side), seen, off / pc_page_size,
		 chk->gen, pc_gen_describe(chk->gen), m->bad_bytes, pfns);
}

size_t pc_verify(const struct pc_check *chk)
{
	struct pc_mismatch m;

	if (!judged_view(chk)) {
		snprintf(summary, sizeof(summary), "%s: no %s view to check",
			 chk->what, side_name(chk->side));
		pc_diag("%s", summary);
		return chk->len ? chk->len : 1;
	}
	if (!chk->sample && all_words_match(judged_view(chk), chk->gen,
					    chk->off, chk->len))
		return 0;
	scan_mismatch(chk, &m);
	if (!m.judged && chk->len) {
		snprintf(summary, sizeof(summary),
			 "%s: none of the 0x%zx bytes at 0x%zx is in the device's sample: nothing judged",
			 chk->what, chk->len, chk->off);
		pc_diag("%s", summary);
		return chk->len;
	}
	if (m.bad_bytes)
		report_mismatch(chk, &m);
	return m.bad_bytes;
}

const char *pc_mismatch_summary(void)
{
	return summary;
}

void pc_verify_or_fail(const struct pc_check *chk)
{
	if (pc_verify(chk))
		pc_fail("%s", summary);
}
