// SPDX-License-Identifier: GPL-2.0
/*
 * migrate_pinned: page migration of a pinned range (S9).
 *
 * A region pinned R/W long-term and an unpinned twin of it (same backing,
 * same data) are placed on NUMA node "home"; then one mover is asked to
 * move both to node "away":
 *
 *   move-pages     move_pages(2) with MPOL_MF_MOVE, status[] pre-filled with
 *                  a marker (the kernel leaves a pinned page's entry
 *                  unwritten and counts it in the return value)
 *   mbind          mbind(MPOL_BIND away, MPOL_MF_MOVE | MPOL_MF_STRICT)
 *   migrate-pages  migrate_pages(2) of the whole process, home -> away,
 *                  without CAP_SYS_NICE (the pages the process maps alone)
 *   compaction     the compaction of a node (sysfs nodeN/compact, or
 *                  /proc/sys/vm/compact_memory on one node) over a
 *                  pageblock laid out for it (pc_pageblock_prepare): the
 *                  pinned pages at its bottom, the twin above them, room
 *                  above the pageblock for every movable page below it, so
 *                  that the migrate scanner must reach the twin, and the
 *                  pinned pages on its way; runs on one node too
 *
 * Must hold: the pinned pages stay where they are (node, PFN), the mapping
 * stays intact and writable (the next CPU write takes no fault on the
 * pinned range, counted by address with a perf software event), and the
 * device and the CPU keep agreeing.  The twin must move (node or PFN), or
 * the mover did not run and the case SKIPs with the counters.
 *
 *   longterm-pin-movable  a FOLL_LONGTERM pin of pages in ZONE_MOVABLE
 *                  (movablecore=): GUP migrates them out before pinning,
 *                  the CPU's mapping follows (control-getref-movable: a
 *                  FOLL_GET reference leaves them there)
 *
 * Control: "control-mover-ignores-pin" plays a migration that ignores the
 * pin (the CPU's pages copied to node away and mapped in place): the
 * checks above must report the loss.  "control-compaction-unpinned" lays
 * out the pageblock without the pin: compaction must move the pages at its
 * bottom, and the PFN check must see it.
 */
#include <errno.h>
#include <limits.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef HAVE_LIBNUMA
#include <numaif.h>
#endif

#include "pincheck.h"

#define STATUS_UNWRITTEN INT_MIN	/* move_pages() left the entry alone */
#define CASE_TIMEOUT_S 40

enum mover {
	MOVE_PAGES,
	MBIND,
	MIGRATE_PAGES,
	COMPACTION,
};

struct migrate_scenario {
	const char *name;
	enum mover mover;
	const char *backings;
};

static const struct migrate_scenario scenarios[] = {
	{ "move-pages", MOVE_PAGES, "anon thp-pmd hugetlb-2048kB memfd-shared" },
	{ "mbind", MBIND, "anon thp-pmd hugetlb-2048kB memfd-shared" },
	{ "migrate-pages", MIGRATE_PAGES, "anon thp-pmd memfd-shared" },
	{ "compaction", COMPACTION, "anon memfd-shared" },
};

static const char *const counters[] = {
	"pgmigrate_success", "pgmigrate_fail", "thp_migration_success",
	"compact_migrate_scanned", "compact_isolated", NULL,
};

struct move_result {
	long rc;		/* the call's return value */
	int err;		/* its errno when rc < 0 */
	int *status;		/* move_pages only */
};

#ifdef HAVE_LIBNUMA

static void node_mask(int node, unsigned long *mask, size_t words)
{
	memset(mask, 0, words * sizeof(*mask));
	mask[node / (8 * sizeof(long))] |= 1UL << (node % (8 * sizeof(long)));
}

static void call_move_pages(struct pc_region *x, int to,
			    struct move_result *res)
{
	size_t i, n = x->len / pc_page_size;
	void **pages = pc_xmalloc(n * sizeof(*pages));
	int *nodes = pc_xmalloc(n * sizeof(*nodes));

	res->status = pc_xmalloc(n * sizeof(*res->status));
	for (i = 0; i < n; i++) {
		pages[i] = x->mem + i * pc_page_size;
		nodes[i] = to;
		res->status[i] = STATUS_UNWRITTEN;
	}
	res->rc = move_pages(0, n, pages, nodes, res->status, MPOL_MF_MOVE);
	res->err = errno;
	free(pages);
	free(nodes);
}

static void call_mbind(struct pc_region *x, int to, struct move_result *res)
{
	unsigned long mask[16];

	node_mask(to, mask, 16);
	res->rc = mbind(x->mem, x->len, MPOL_BIND, mask, 8 * sizeof(mask),
			MPOL_MF_MOVE | MPOL_MF_STRICT);
	res->err = errno;
}

/* Clear CAP_SYS_NICE in the calling thread's effective set; 0 or -errno. */
static int drop_sys_nice(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[0].effective &= ~(1U << CAP_SYS_NICE);
	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

struct migrate_call {
	int from, to;
	struct move_result *res;
};

static void *migrate_pages_thread(void *arg)
{
	struct migrate_call *m = arg;
	unsigned long old[16], new[16];

	drop_sys_nice();
	node_mask(m->from, old, 16);
	node_mask(m->to, new, 16);
	m->res->rc = migrate_pages(0, 8 * sizeof(old), old, new);
	m->res->err = errno;
	return NULL;
}

/*
 * migrate_pages(2) of this process, from a thread without CAP_SYS_NICE:
 * then it moves only the pages the process maps alone (MPOL_MF_MOVE), the
 * pinned range and its twin among them.  With CAP_SYS_NICE (root) it moves
 * every page the process maps, shared libraries included (443 pages in one
 * case): memory that is not the case's, and in loaded TCG guests such
 * calls ran past the 40 s case watchdog (self-built 6.12.118 and 5.10.262,
 * full runs next to other VMs).  A thread, because credentials are per
 * thread and the main thread's must stay as they are: uverbs refuses
 * commands from credentials other than the file's (EACCES from rdma).
 */
static void call_migrate_pages(int from, int to, struct move_result *res)
{
	struct migrate_call m = { .from = from, .to = to, .res = res };
	pthread_t t;
	int err;

	err = pthread_create(&t, NULL, migrate_pages_thread, &m);
	if (err) {
		res->rc = -1;
		res->err = err;
		return;
	}
	pthread_join(t, NULL);
}

#else

static void call_move_pages(struct pc_region *x, int to,
			    struct move_result *res)
{
	(void)x;
	(void)to;
	res->rc = -1;
	res->err = ENOSYS;
}

static void call_mbind(struct pc_region *x, int to, struct move_result *res)
{
	call_move_pages(x, to, res);
}

static void call_migrate_pages(int from, int to, struct move_result *res)
{
	(void)from;
	call_move_pages(NULL, to, res);
}

#endif /* HAVE_LIBNUMA */

/* Ask the kernel to compact @node's memory (every node if -1). */
static void compact(int node)
{
	char path[96];
	int err;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/compact",
		 node);
	if (node >= 0 && access(path, W_OK) == 0)
		err = pc_write_str(path, "1");
	else
		err = pc_write_str("/proc/sys/vm/compact_memory", "1");
	if (err == -ENOENT || err == -EACCES)
		pc_skip("no compaction trigger here (kernel without CONFIG_COMPACTION?): %s",
			strerror(-err));
	if (err)
		pc_fail("compaction trigger: %s", strerror(-err));
}

static const char *describe_call(const char *what, const struct move_result *res,
				 char *buf, size_t len)
{
	if (res->rc < 0)
		snprintf(buf, len, "%s = -1 (%s)", what, strerror(res->err));
	else
		snprintf(buf, len, "%s = %ld", what, res->rc);
	return buf;
}

/* "status: 4 unwritten" / "status: 4 on node 1" ... */
static void describe_status(const struct move_result *res, size_t n,
			    int home, int away, char *buf, size_t len)
{
	size_t i, unwritten = 0, at_home = 0, at_away = 0, err = 0;
	int first_err = 0;

	for (i = 0; i < n; i++) {
		if (res->status[i] == STATUS_UNWRITTEN)
			unwritten++;
		else if (res->status[i] == home)
			at_home++;
		else if (res->status[i] == away)
			at_away++;
		else if (!err++)
			first_err = res->status[i];
	}
	snprintf(buf, len,
		 "status[]: %zu unwritten, %zu node %d, %zu node %d, %zu errors%s%s",
		 unwritten, at_home, home, at_away, away, err,
		 err ? " first " : "", err ? strerror(-first_err) : "");
}

/* move_pages() must not claim a pinned page moved while it stayed. */
static void check_status(const struct move_result *res,
			 const struct pc_region *r, int home, int away)
{
	size_t i, n = r->len / pc_page_size;
	int *nodes = pc_xmalloc(n * sizeof(*nodes));

	pc_numa_page_nodes(r->mem, n, nodes);
	for (i = 0; i < n; i++)
		if (res->status[i] == away && nodes[i] == home)
			pc_fail("move_pages() reported pinned page %zu moved to node %d, but it is on node %d",
				i, away, home);
	free(nodes);
}

/* Run the mover on the pinned region and its twin; print what it said. */
static void run_mover(const struct migrate_scenario *sc,
		      struct pc_mover_setup *s, int home, int away)
{
	struct move_result pr = { 0 }, tr = { 0 };
	char a[160], b[160], st[160];
	size_t n = s->r.len / pc_page_size;

	switch (sc->mover) {
	case MOVE_PAGES:
		call_move_pages(&s->r, away, &pr);
		call_move_pages(&s->t, away, &tr);
		describe_status(&pr, n, home, away, st, sizeof(st));
		pc_diag("pinned: %s, %s",
			describe_call("move_pages()", &pr, a, sizeof(a)), st);
		describe_status(&tr, n, home, away, st, sizeof(st));
		pc_diag("unpinned twin: %s, %s",
			describe_call("move_pages()", &tr, b, sizeof(b)), st);
		if (pr.rc < 0 && pr.err != EBUSY && pr.err != EAGAIN)
			pc_fail("move_pages() of the pinned range: %s",
				strerror(pr.err));
		check_status(&pr, &s->r, home, away);
		break;
	case MBIND:
		call_mbind(&s->r, away, &pr);
		call_mbind(&s->t, away, &tr);
		pc_diag("pinned: %s; unpinned twin: %s",
			describe_call("mbind(MPOL_MF_MOVE|MPOL_MF_STRICT)", &pr,
				      a, sizeof(a)),
			describe_call("mbind()", &tr, b, sizeof(b)));
		if (pr.rc < 0 && pr.err != EIO && pr.err != EBUSY &&
		    pr.err != EAGAIN)
			pc_fail("mbind() of the pinned range: %s",
				strerror(pr.err));
		break;
	case MIGRATE_PAGES:
		call_migrate_pages(home, away, &pr);
		pc_diag("%s (pages not moved, the pinned ones among them)",
			describe_call("migrate_pages(self, home -> away)", &pr,
				      a, sizeof(a)));
		if (pr.rc < 0)
			pc_fail("migrate_pages(): %s", strerror(pr.err));
		break;
	case COMPACTION:
		break;
	}
	free(pr.status);
	free(tr.status);
}

/* The twin must have moved, or the mover did not run: SKIP with why. */
static void expect_twin_moved(const struct migrate_scenario *sc,
			      struct pc_mover_setup *s, int away,
			      const struct pc_counters *cnt)
{
	size_t n = s->t.len / pc_page_size, there;
	struct pc_page_census pc;
	char desc[256];

	pc_page_census(&s->t, &pc);
	pc_diag("unpinned twin after %s: %s", sc->name,
		pc_page_census_str(&pc, desc, sizeof(desc)));
	if (sc->mover == COMPACTION) {
		if (!pc.moved)
			pc_skip("no event: compaction moved no page of the unpinned twin (at PFN 0x%llx; pgmigrate_success %+lld, compact_isolated %+lld) although its pageblock was laid out for it: nothing proves it ran over these pages",
				(unsigned long long)pc_pfn(s->t.mem),
				pc_counters_delta(cnt, "pgmigrate_success"),
				pc_counters_delta(cnt, "compact_isolated"));
		return;
	}
	there = pc_numa_pages_on(&s->t, away);
	pc_diag("unpinned twin: %zu of %zu pages now on node %d", there, n,
		away);
	if (!there)
		pc_skip("no event: %s did not move the unpinned twin to node %d (pgmigrate_success %+lld): the mover did not run",
			sc->name, away, pc_counters_delta(cnt, "pgmigrate_success"));
}

static void expect_pinned_stayed(const struct migrate_scenario *sc,
				 struct pc_mover_setup *s, int home)
{
	size_t n = s->r.len / pc_page_size, there;
	struct pc_page_census pc;
	char desc[256];

	pc_page_census(&s->r, &pc);
	pc_diag("pinned region after %s: %s", sc->name,
		pc_page_census_str(&pc, desc, sizeof(desc)));
	if (home >= 0) {
		there = pc_numa_pages_on(&s->r, home);
		pc_diag("pinned region: %zu of %zu pages still on node %d",
			there, n, home);
		if (there != n)
			pc_fail("%s moved %zu pinned page(s) off node %d", sc->name,
				n - there, home);
	}
	pc_expect_pinned_pages_stayed(&s->r, sc->name);
}

/*
 * The next CPU write to the pinned range: no fault (the mapping is intact
 * and writable), and the device sees it.
 */
static void cpu_write_without_fault(struct pc_mover_setup *s,
				    const char *mover)
{
	struct pc_faults f;
	size_t faults;

	if (pc_faults_open(&f)) {
		pc_diag("faults on the next CPU write: not counted (%s)", f.why);
		pc_region_cpu_write(&s->r, 0, s->r.len, PC_GEN_PARENT);
	} else {
		pc_region_cpu_write(&s->r, 0, s->r.len, PC_GEN_PARENT);
		faults = pc_faults_in(&f, s->r.mem, s->r.len);
		pc_faults_close(&f);
		pc_diag("next CPU write: %zu fault(s) on the pinned range", faults);
		if (faults)
			pc_fail("the next CPU write took %zu fault(s) on the pinned range: %s left the mapping of pinned pages unmapped or write-protected",
				faults, mover);
	}
	pc_expect_device_sees(&s->e, &s->r, PC_GEN_PARENT,
			      "device read of the CPU write after the mover");
}

/* The node to compact: away when there are two (its zone is quieter). */
static int compaction_node(void)
{
	int home, away;

	return pc_numa_two_nodes(&home, &away) ? -1 : away;
}

/*
 * Lay out a pageblock for compaction (pc_pageblock_prepare) and make the
 * region, then its twin, in it: the region at its bottom, the twin above.
 */
static void make_regions_in_pageblock(const struct pc_case *c,
				      struct pc_mover_setup *s,
				      struct pc_pageblock *b)
{
	char layout[640];
	int rc;

	rc = pc_pageblock_prepare(b, compaction_node(), layout, sizeof(layout));
	if (rc)
		rc > 0 ? pc_skip("%s", layout) : pc_fail("%s", layout);
	pc_region_create_or_skip(&s->r, c->backing, PC_GEN_INIT);
	pc_region_create_or_skip(&s->t, c->backing, PC_GEN_INIT);
	s->has_twin = 1;
	pc_pageblock_placed(b);
	if (pc_pageblock_holds(b, &s->r, &s->t, layout, sizeof(layout)))
		pc_skip("%s", layout);
	pc_diag("layout: %s", layout);
}

/*
 * Compaction of a pageblock laid out for it (pc_pageblock_prepare): the
 * pinned pages at its bottom, the twin right above them, room above the
 * pageblock for every movable page below it.  A twin page that moved
 * means the migrate scanner went over the pinned pages first.
 */
static void compaction_case(const struct pc_case *c)
{
	const struct migrate_scenario *sc = c->scenario;
	struct pc_mover_setup s;
	struct pc_pageblock b;
	struct pc_counters cnt;

	pc_gen_name(PC_GEN_PARENT, "CPU write after the mover");
	pc_mover_open(c, &s);
	make_regions_in_pageblock(c, &s, &b);
	pc_mover_pin_and_snap(&s, sc->name);
	pc_counters_start(&cnt, counters);
	compact(b.node);
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters");
	expect_twin_moved(sc, &s, -1, &cnt);
	pc_diag("compaction's migrate scanner went over the pinned pages: it moved twin pages above them in their pageblock");
	expect_pinned_stayed(sc, &s, -1);
	cpu_write_without_fault(&s, sc->name);
	pc_coherence_round(&s.e, &s.r, PC_GEN_PARENT, "after the mover");
	pc_pageblock_release(&b);
	pc_mover_teardown(&s);
	pc_pass();
}

static void migrate_case(const struct pc_case *c)
{
	const struct migrate_scenario *sc = c->scenario;
	struct pc_mover_setup s;
	struct pc_counters cnt;
	int home = -1, away = -1;
	const char *why = pc_numa_two_nodes(&home, &away);

	if (sc->mover == COMPACTION) {
		compaction_case(c);
		return;
	}
	if (why)
		pc_skip("%s", why);
	pc_gen_name(PC_GEN_PARENT, "CPU write after the mover");
	pc_mover_setup(c, &s, home, 1, sc->name);
	pc_counters_start(&cnt, counters);
	run_mover(sc, &s, home, away);
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters");
	expect_twin_moved(sc, &s, away, &cnt);
	expect_pinned_stayed(sc, &s, home);
	cpu_write_without_fault(&s, sc->name);
	pc_coherence_round(&s.e, &s.r, PC_GEN_PARENT, "after the mover");
	pc_mover_teardown(&s);
	pc_pass();
}

/*
 * Control: the compaction case without the pin.  Compaction must now move
 * the pages at the bottom of the pageblock too, and the PFN check that
 * the pinned pages pass must see it.
 */
static void control_compaction_case(const struct pc_case *c)
{
	struct pc_mover_setup s;
	struct pc_pageblock b;
	struct pc_page_census pc;
	char desc[256];

	pc_mover_open(c, &s);
	make_regions_in_pageblock(c, &s, &b);
	pc_region_snap(&s.r, "compaction");
	pc_region_snap(&s.t, "compaction");
	compact(b.node);
	pc_page_census(&s.r, &pc);
	pc_page_census_str(&pc, desc, sizeof(desc));
	if (!pc.moved)
		pc_fail("compaction moved none of the unpinned pages at the bottom of the laid-out pageblock (%s): the layout does not bring compaction over them",
			desc);
	pc_diag("move detected as it must be: without the pin, compaction moved the pages at the bottom of the pageblock (%s)",
		desc);
	pc_pageblock_release(&b);
	pc_mover_teardown(&s);
	pc_pass();
}

/* ---- long-term pins of ZONE_MOVABLE pages ---- */

#define MAX_MOVABLE_RANGES 8

struct pfn_range {
	uint64_t start, end;	/* [start, end) */
};

/* The spans of the populated Movable zones in /proc/zoneinfo; count or -1. */
static int movable_ranges(struct pfn_range *out, int max)
{
	FILE *f = fopen("/proc/zoneinfo", "r");
	char line[256], zone[32] = "";
	unsigned long long spanned = 0, present = 0, start;
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Node %*d, zone %31s", zone) == 1)
			spanned = present = 0;
		else if (sscanf(line, " spanned %llu", &spanned) == 1 ||
			 sscanf(line, " present %llu", &present) == 1)
			continue;
		else if (sscanf(line, " start_pfn: %llu", &start) == 1 &&
			 !strcmp(zone, "Movable") && present && n < max)
			out[n++] = (struct pfn_range){ start, start + spanned };
	}
	fclose(f);
	return n;
}

static size_t pages_in_movable(const struct pc_region *r,
			       const struct pfn_range *mv, int n)
{
	size_t off, in = 0;
	uint64_t pfn;
	int i;

	for (off = 0; off < r->len; off += pc_page_size) {
		pfn = pc_pfn(r->mem + off);
		for (i = 0; i < n; i++)
			in += pfn && pfn >= mv[i].start && pfn < mv[i].end;
	}
	return in;
}

/*
 * The region made, and how many of its pages ZONE_MOVABLE holds; SKIP
 * when there is no such zone or none of them landed there.
 */
static size_t region_in_movable(const struct pc_case *c, struct pc_engine *e,
				struct pc_region *r, struct pfn_range *mv,
				int *n)
{
	size_t in;

	*n = movable_ranges(mv, MAX_MOVABLE_RANGES);
	if (*n <= 0)
		pc_skip("no ZONE_MOVABLE here: boot with movablecore= (./run_tests.sh --kernel debian:6.12 --profile movable)");
	pc_engine_open_or_skip(e, c->engine);
	pc_region_create_or_skip(r, c->backing, PC_GEN_INIT);
	in = pages_in_movable(r, mv, *n);
	pc_diag("before the pin: %zu of %zu pages in ZONE_MOVABLE", in,
		r->len / pc_page_size);
	if (!in)
		pc_skip("none of the region's pages landed in ZONE_MOVABLE: nothing to migrate out");
	pc_region_snap(r, "the long-term pin");
	return in;
}

/*
 * A FOLL_LONGTERM pin must not hold a page of ZONE_MOVABLE (or CMA): GUP
 * migrates such pages out first (check_and_migrate_movable_pages; an
 * unmigratable page once made it loop forever: the watchdog turns that
 * into a TIMEOUT).  Must hold: after the pin no page of the region is in
 * ZONE_MOVABLE, the CPU's mapping followed the migration (the pages that
 * were there have new PFNs), and the device and the CPU agree.
 */
static void movable_case(const struct pc_case *c)
{
	struct pfn_range mv[MAX_MOVABLE_RANGES];
	struct pc_page_census pc;
	struct pc_engine e;
	struct pc_region r;
	size_t before, after;
	char desc[256];
	int n;

	pc_gen_name(PC_GEN_PARENT, "CPU write after the pin");
	before = region_in_movable(c, &e, &r, mv, &n);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	after = pages_in_movable(&r, mv, n);
	pc_page_census(&r, &pc);
	pc_diag("after the pin: %zu pages in ZONE_MOVABLE; %s", after,
		pc_page_census_str(&pc, desc, sizeof(desc)));
	if (after)
		pc_fail("%zu page(s) of the long-term pinned region are still in ZONE_MOVABLE: GUP did not migrate them out before pinning",
			after);
	if (pc.moved < before)
		pc_fail("only %zu of the %zu pages that were in ZONE_MOVABLE have new PFNs in the CPU's mapping",
			pc.moved, before);
	pc_coherence_round(&e, &r, PC_GEN_INIT, "after the pin migrated the pages");
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/*
 * Control: a FOLL_GET reference (vmsplice) is not long-term and migrates
 * nothing: the check above must see pages left in ZONE_MOVABLE.
 */
static void control_movable_case(const struct pc_case *c)
{
	struct pfn_range mv[MAX_MOVABLE_RANGES];
	struct pc_engine e;
	struct pc_region r;
	size_t after;
	int n;

	region_in_movable(c, &e, &r, mv, &n);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RO);
	after = pages_in_movable(&r, mv, n);
	if (!after)
		pc_fail("no page left in ZONE_MOVABLE after a short-term reference: the ZONE_MOVABLE check cannot tell");
	pc_diag("detected as it must be: %zu page(s) still in ZONE_MOVABLE under a FOLL_GET reference",
		after);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* Control: a migration to node away that ignores the pin must be caught. */
static void control_case(const struct pc_case *c)
{
	struct pc_mover_setup s;
	int home, away;
	const char *why = pc_numa_two_nodes(&home, &away);

	if (why)
		pc_skip("%s", why);
	pc_mover_setup(c, &s, home, 0, "the pin-ignoring mover");
	pc_move_ignoring_pin(&s.r, away);
	pc_diag("CPU pages now on node %d: %zu of %zu", away,
		pc_numa_pages_on(&s.r, away), s.r.len / pc_page_size);
	pc_expect_lost_pin_detected(&s.e, &s.r, PC_GEN_INIT);
	pc_mover_teardown(&s);
	pc_pass();
}

static void add_cases(void)
{
	unsigned int need = PC_CAP_PIN_RW | PC_CAP_HELD | PC_CAP_DEV_READ;
	size_t i;

	pc_cases_pause_numa_balancing();
	/* the page movers pick their own few backings */
	pc_slow_engine_backings = "*";
	pc_faults_hold_sched_hooks();
	for (i = 0; i < PC_ARRAY_SIZE(scenarios); i++)
		pc_add_matrix_on(migrate_case, &scenarios[i],
				 scenarios[i].name, scenarios[i].backings, need,
				 PC_CAP_GET_REF, CASE_TIMEOUT_S);
	pc_add_matrix_on(control_case, NULL, "control-mover-ignores-pin",
			 "anon thp-pmd", need, PC_CAP_GET_REF, 0);
	pc_add_matrix_on(control_compaction_case, NULL,
			 "control-compaction-unpinned", "anon", need,
			 PC_CAP_GET_REF, CASE_TIMEOUT_S);
	pc_add_matrix_on(movable_case, NULL, "longterm-pin-movable",
			 "anon thp-pmd", need | PC_CAP_LONGTERM, PC_CAP_GET_REF,
			 0);
	pc_add_matrix_on(control_movable_case, NULL,
			 "control-getref-movable", "anon",
			 PC_CAP_GET_REF | PC_CAP_PIN_RO | PC_CAP_HELD, 0, 0);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "migrate_pinned", add_cases);
}
