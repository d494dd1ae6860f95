/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Self-describing patterns and the verification report.
 *
 * Every 8-byte word of a pattern encodes who wrote it (the generation) and
 * where it belongs (its byte offset in the region, divided by 8):
 *
 *   bits 63..48  PC_MAGIC
 *   bits 47..40  generation (1..255)
 *   bits 39..0   word index within the region
 *
 * Generation 0 is special: the all-zero word (memory never written, or a
 * zero page).  Tests name their generations, so a report can say "device
 * sees generation 1 (written before fork)".
 */
#ifndef PINCHECK_PATTERN_H
#define PINCHECK_PATTERN_H

#include <stddef.h>
#include <stdint.h>

struct pc_region;

#define PC_MAGIC 0x5043ULL		/* "PC" */
#define PC_GEN_MAX 256

/* Generations shared by the tests; a test may rename or add its own. */
enum {
	PC_GEN_ZERO = 0,	/* zero-filled, never written */
	PC_GEN_INIT = 1,	/* written before fork / before the event */
	PC_GEN_PARENT = 2,	/* parent CPU write after fork */
	PC_GEN_DEVICE = 3,	/* device write after fork */
	PC_GEN_CHILD = 4,	/* child CPU write after fork */
	PC_GEN_CPU_LATE = 5,	/* parent CPU write after the device write */
	PC_GEN_OTHER = 6,	/* CPU write to a page the device never pinned */
	PC_GEN_DEVICE_LATE = 7,	/* second device write */
};

/*
 * What a sampling engine (see pc_engine.sample) leaves in a dev_read
 * buffer for the words its device did not transfer.  Not a pattern word,
 * never zero: a check that forgets the sample fails on it.
 */
#define PC_WORD_UNSAMPLED 0x2d2d6e6f2d2d7e7eULL

/* The word that generation @gen puts at byte offset @off of a region. */
uint64_t pc_word(unsigned int gen, size_t off);

/* Fill @len bytes at @dst, which stands for region offset @off, with @gen. */
void pc_fill(void *dst, size_t off, size_t len, unsigned int gen);

/*
 * Decode a word.  Returns 1 and sets *gen and *off for a pattern word,
 * 0 for the zero word (gen 0), -1 for anything else (foreign data).
 */
int pc_decode(uint64_t word, unsigned int *gen, size_t *off);

/* Name generation @gen ("written before fork"); @name must stay valid. */
void pc_gen_name(unsigned int gen, const char *name);
const char *pc_gen_describe(unsigned int gen);

/* Describe a word: "gen 1 (written before fork) @0x1000", "zeros", ... */
void pc_word_describe(uint64_t word, char *buf, size_t len);

enum pc_side {
	PC_CHECK_DEVICE,	/* the device's view must hold @gen */
	PC_CHECK_CPU,		/* the CPU's view must hold @gen */
	PC_CHECK_CHILD,		/* the child's CPU view must hold @gen */
	PC_CHECK_FILE,		/* the file's content (in .cpu) must hold @gen */
};

struct pc_check {
	const char *what;		/* "device read after parent CPU write" */
	const struct pc_region *r;	/* for PFNs and page size; may be NULL */
	size_t off;			/* range checked, relative to the region */
	size_t len;
	unsigned int gen;		/* expected generation */
	enum pc_side side;		/* whose view is judged */
	const void *dev;		/* device view of the range, or NULL */
	const void *cpu;		/* CPU view of the range, or NULL */
	/*
	 * NULL: judge every word.  Else a bitmap over the region's words
	 * (bit i: region bytes [8i, 8i + 8)), e.g. the engine's sample:
	 * only those words are judged, and at least one must be in range.
	 */
	const uint64_t *sample;
};

/*
 * Compare the judged view with the expected pattern.  Returns the number of
 * bad bytes (0: match).  On a mismatch it prints the report as TAP
 * diagnostics and keeps a one-line summary for pc_mismatch_summary().
 */
size_t pc_verify(const struct pc_check *chk);

/* One line: "device read after ...: device sees gen 1 (...) at page 0 ...". */
const char *pc_mismatch_summary(void);

/* Verify and, on a mismatch, fail the case with the summary. */
void pc_verify_or_fail(const struct pc_check *chk);

#endif
