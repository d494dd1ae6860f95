/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Building blocks the scenario tests share: the case matrix (scenario x
 * backing x engine) and the coherence checks every scenario ends with.
 */
#ifndef PINCHECK_SCENARIO_H
#define PINCHECK_SCENARIO_H

#include "backing.h"
#include "engine.h"
#include "report.h"
#include "util.h"

/* Does the engine have every capability in @caps? */
static inline int pc_engine_can(const struct pc_engine_ops *ops,
				unsigned int caps)
{
	return (ops->caps & caps) == caps;
}

/*
 * Does the engine belong in a matrix of @need and @refuse: it has all of
 * @need and none of @refuse, and a forced-access engine (PC_CAP_FORCED)
 * only when @need asks for it.
 */
static inline int pc_engine_joins(const struct pc_engine_ops *ops,
				  unsigned int need, unsigned int refuse)
{
	if ((ops->caps & PC_CAP_FORCED) && !(need & PC_CAP_FORCED))
		return 0;
	return pc_engine_can(ops, need) && !(ops->caps & refuse);
}

/*
 * Add "<binary>/<scenario>/<backing>/<engine>" for every backing and every
 * engine that joins (pc_engine_joins()).
 */
void pc_add_matrix(pc_case_fn run, const void *scenario, const char *name,
		   unsigned int need, unsigned int refuse);

/*
 * pc_add_matrix() on the backings named in @backings only (space
 * separated; names this kernel does not offer are left out), for the
 * slow scenarios where every backing would cost too much; @timeout_s is
 * each case's watchdog (0: the binary's default).
 */
void pc_add_matrix_on(pc_case_fn run, const void *scenario, const char *name,
		      const char *backings, unsigned int need,
		      unsigned int refuse, unsigned int timeout_s);

/*
 * Pin the whole region.  A kernel that refuses this kind of pin for this
 * kind of memory (a documented policy: no writable FOLL_LONGTERM pin of
 * file mappings that need dirty tracking) makes the case SKIP with that
 * reason; any other error, and any refused R/O pin, fails it.
 */
void pc_pin_region_or_skip(struct pc_engine *e, struct pc_region *r,
			   unsigned int flags);

/* The device reads the whole region: it must see @gen.  No-op if it can't. */
void pc_expect_device_sees(struct pc_engine *e, struct pc_region *r,
			   unsigned int gen, const char *what);

/*
 * The same after a R/O pin, with the region's PFN snapshot taken right
 * after the pin (pc_region_snap): when the device misses the CPU's data
 * and the page it pinned is the shared or huge zero page, or a page-cache
 * page of a private file mapping, that the CPU has since replaced, the
 * failure says so and names the upstream fix.
 */
void pc_expect_device_sees_ro_pinned(struct pc_engine *e, struct pc_region *r,
				     unsigned int gen, const char *what);

/* The CPU reads the whole region: it must see @gen. */
void pc_expect_cpu_sees(struct pc_region *r, unsigned int gen,
			const char *what);

/*
 * The device writes @gen over the whole region and the CPU must see it.
 * Returns 0, or -1 when the engine cannot write (nothing checked).
 */
int pc_device_write_then_cpu_sees(struct pc_engine *e, struct pc_region *r,
				  unsigned int gen, const char *what);

/*
 * The parent's closing round, which every pin scenario ends with:
 * device read of what the CPU holds (@model), device write seen by the
 * CPU, CPU write seen by the device.  Returns the generation now held.
 */
unsigned int pc_coherence_round(struct pc_engine *e, struct pc_region *r,
				unsigned int model, const char *when);

/* Fork a child that exits at once, and reap it (a "previous fork"). */
void pc_fork_and_reap(void);

/*
 * In the parent after fork: a child that lives on (@alive) must say it is
 * ready; any other must have ended with status 0.  Fails the case if not.
 */
void pc_child_wait_ready(struct pc_child *ch, int alive);

/*
 * In a forked child: verify @chk; on a mismatch send its summary to the
 * parent and exit 1.  Returns when the memory matched.
 */
void pc_child_verify_or_exit(struct pc_child *ch, const struct pc_check *chk);

/*
 * In the parent: send the child @token, collect the mismatch summary it
 * may send back ("" if none) and reap it.  Returns its wait status.
 */
int pc_child_collect(struct pc_child *ch, char token, char *summary,
		     size_t len);

#endif
