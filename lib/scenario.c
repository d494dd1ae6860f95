// SPDX-License-Identifier: GPL-2.0
/* Shared scenario building blocks: the case matrix and coherence checks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pattern.h"
#include "scenario.h"
#include "util.h"

void pc_add_matrix(pc_case_fn run, const void *scenario, const char *name,
		   unsigned int need, unsigned int refuse)
{
	const struct pc_backing *const *bks;
	const struct pc_engine_ops *const *engs;
	size_t nb = pc_backings(&bks), ne = pc_engines(&engs), b, e;

	for (b = 0; b < nb; b++) {
		for (e = 0; e < ne; e++) {
			if (!pc_engine_can(engs[e], need) ||
			    (engs[e]->caps & refuse))
				continue;
			pc_add_case(run, scenario, bks[b], engs[e],
				    "%s/%s/%s/%s", pc_binary(), name,
				    bks[b]->name, engs[e]->name);
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
	pc_verify_or_fail(&chk);
	free(dev);
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
	if (!pc_engine_can(e->ops, PC_CAP_DEV_WRITE))
		return -1;
	pc_dev_write_gen(e, 0, r->len, gen);
	pc_expect_cpu_sees(r, gen, what);
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
