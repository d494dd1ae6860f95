// SPDX-License-Identifier: GPL-2.0
/*
 * maybe_pinned: the "maybe pinned" false positive and its has_pinned
 * gating at fork (S21).
 *
 * fork() copies an anonymous page at once, instead of sharing it
 * copy-on-write, when folio_maybe_dma_pinned() says it may be pinned.  For
 * a small folio that is a guess from the reference count: one that reaches
 * GUP_PIN_COUNTING_BIAS (1024) looks pinned.  Large folios count their pins
 * exactly (_pincount).  The guess is only made in a process that has ever
 * pinned something: the sticky mm flag MMF_HAS_PINNED (008cfe4418b3
 * "mm: Introduce mm_struct.has_pinned", v5.9; a bit of mm->flags since
 * a458b76a4171 "mm: gup: pack has_pinned in MMF_HAS_PINNED", v5.14).
 *
 * Page 0 of a region gets more than 1024 plain references (vmsplice() of
 * the same page into pipes: one reference per pipe buffer, no pin), then
 * the process forks and the child's PFNs are compared with the parent's:
 *
 *   never-pinned-fork/<backing>/none      in a freshly exec'd process that
 *                                         never pinned: no copy
 *   pinned-before-fork/<backing>/<engine> the case's engine first pinned and
 *                                         unpinned an unrelated buffer: a
 *                                         small page is copied at fork (the
 *                                         documented false positive), a
 *                                         large folio is not
 *   control-child-write/<backing>/none    as never-pinned-fork, but the child
 *                                         writes page 0 first: the PFN
 *                                         comparison must see that copy
 *
 * pinned-before-fork/anon/<engine> also prints fork() latency with a large
 * pinned buffer, with and without MADV_DONTFORK (diagnostic only).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pincheck.h"
#include "pfnview.h"

#define GUP_PIN_COUNTING_BIAS	1024
#define HEAVY_REFS		1100	/* references taken on page 0 */
#define HEAVY_PIPES_MAX		64
#define HEAVY_PIPE_BYTES	(1 << 20)
#define FRESH_ENV		"PINCHECK_MAYBE_PINNED_FRESH"
#define LATENCY_BYTES		(16u << 20)

enum heavy_mode { MODE_NEVER_PINNED, MODE_CHILD_WRITES };

static const char *const mode_names[] = { "never", "child-writes" };

/* What one fork of a region with a heavily referenced page 0 showed. */
struct heavy_result {
	size_t refs;		/* vmsplice references on page 0 */
	size_t pages;		/* base pages in the region */
	int heavy_copied;	/* page 0: child's PFN differs */
	size_t others_copied;	/* pages 1.. whose PFN differs */
	uint64_t parent;	/* page 0's keys (pfnview.h) */
	uint64_t child;
};

/* ---- references without a pin ---------------------------------------- */

struct heavy_pipes {
	int fd[HEAVY_PIPES_MAX][2];
	size_t n;
};

static void close_pipes(struct heavy_pipes *hp)
{
	size_t i;

	for (i = 0; i < hp->n; i++) {
		close(hp->fd[i][0]);
		close(hp->fd[i][1]);
	}
	hp->n = 0;
}

/* vmsplice @page into @fd until it is full or @want references are held. */
static int fill_pipe(int fd, void *page, size_t want, size_t *refs)
{
	struct iovec iov[64];
	size_t i, k;
	ssize_t got;

	for (i = 0; i < PC_ARRAY_SIZE(iov); i++) {
		iov[i].iov_base = page;
		iov[i].iov_len = pc_page_size;
	}
	while (*refs < want) {
		k = want - *refs;
		if (k > PC_ARRAY_SIZE(iov))
			k = PC_ARRAY_SIZE(iov);
		got = vmsplice(fd, iov, k, SPLICE_F_NONBLOCK);
		if (got < 0 && errno == EAGAIN)
			return 0;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		*refs += (size_t)got / pc_page_size;
	}
	return 0;
}

/*
 * Take @want references on @page, one per pipe buffer.  Returns 0 (the
 * count in *refs, possibly short), or -errno with @why filled.
 */
static int take_refs(void *page, size_t want, struct heavy_pipes *hp,
		     size_t *refs, char *why, size_t len)
{
	int rc;

	*refs = 0;
	while (*refs < want && hp->n < HEAVY_PIPES_MAX) {
		int *p = hp->fd[hp->n];

		if (pipe2(p, O_CLOEXEC)) {
			rc = -errno;
			snprintf(why, len, "pipe2: %s", strerror(-rc));
			return rc;
		}
		hp->n++;
		/* Root may exceed pipe-max-size (CAP_SYS_RESOURCE). */
		fcntl(p[1], F_SETPIPE_SZ, HEAVY_PIPE_BYTES);
		rc = fill_pipe(p[1], page, want, refs);
		if (rc) {
			snprintf(why, len, "vmsplice: %s", strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* ---- the fork -------------------------------------------------------- */

static void __attribute__((noreturn))
heavy_child(struct pc_region *r, size_t n, uint64_t *keys, int fd,
	    int child_writes)
{
	if (child_writes)
		pc_region_cpu_write(r, 0, pc_page_size, PC_GEN_CHILD);
	if (pc_view_read(r->mem, n, keys) || pc_view_send(fd, keys, n))
		_exit(2);
	_exit(0);
}

/* Fork; the child reports its view of the region into @child. */
static int fork_and_compare(struct pc_region *r, int child_writes,
			    struct heavy_result *res, char *why, size_t len)
{
	size_t n = res->pages, i;
	uint64_t *parent = calloc(n, sizeof(*parent));
	uint64_t *child = calloc(n, sizeof(*child));
	int p[2], status, rc = -1;
	pid_t pid;

	if (!parent || !child || pc_view_read(r->mem, n, parent) ||
	    pipe2(p, O_CLOEXEC)) {
		snprintf(why, len, "cannot read the parent's PFNs: %s",
			 strerror(errno));
		goto out;
	}
	fflush(stdout);
	pid = fork();
	if (!pid) {
		close(p[0]);
		heavy_child(r, n, child, p[1], child_writes);
	}
	close(p[1]);
	if (pid > 0 && !pc_view_recv(p[0], child, n))
		rc = 0;
	close(p[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	if (rc) {
		snprintf(why, len, "the child did not report its PFNs");
		goto out;
	}
	res->parent = parent[0];
	res->child = child[0];
	res->heavy_copied = parent[0] != child[0];
	for (i = 1; i < n; i++)
		res->others_copied += parent[i] != child[i];
out:
	free(parent);
	free(child);
	return rc;
}

/*
 * Make a region of @bk, take HEAVY_REFS references on its page 0 and
 * fork.  0 with @res filled, 1 (skip) or -1 (error) with @why.
 */
static int heavy_fork(const struct pc_backing *bk, int child_writes,
		      struct heavy_result *res, char *why, size_t len)
{
	struct heavy_pipes hp = { .n = 0 };
	struct pc_region r;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = pc_region_create(&r, bk, PC_GEN_INIT, why, len);
	if (rc)
		return rc;
	res->pages = r.len / pc_page_size;
	rc = take_refs(r.mem, HEAVY_REFS, &hp, &res->refs, why, len);
	if (!rc && res->refs < GUP_PIN_COUNTING_BIAS) {
		snprintf(why, len,
			 "took only %zu references on the page in %zu pipes (need %d): the pipes did not grow (F_SETPIPE_SZ; raise /proc/sys/fs/pipe-max-size or run as root)",
			 res->refs, hp.n, GUP_PIN_COUNTING_BIAS);
		rc = 1;
	}
	if (!rc)
		rc = fork_and_compare(&r, child_writes, res, why, len);
	close_pipes(&hp);
	pc_region_destroy(&r);
	return rc;
}

/* ---- the freshly exec'd process -------------------------------------- */

/*
 * Runs in a process exec'd for the case: a new mm, whose MMF_HAS_PINNED
 * is clear and which pins nothing.  Prints one line for the case.
 */
static int fresh_main(const char *arg)
{
	char name[64], why[PC_REASON_MAX];
	const struct pc_backing *bk;
	struct heavy_result res;
	int mode, rc;

	if (sscanf(arg, "%d:%63s", &mode, name) != 2 ||
	    !(bk = pc_backing_find(name))) {
		printf("fail bad %s=%s\n", FRESH_ENV, arg);
		return 1;
	}
	rc = heavy_fork(bk, mode == MODE_CHILD_WRITES, &res, why, sizeof(why));
	if (rc)
		printf("%s %s\n", rc > 0 ? "skip" : "fail", why);
	else
		printf("result %zu %zu %d %zu %llx %llx\n", res.refs, res.pages,
		       res.heavy_copied, res.others_copied,
		       (unsigned long long)res.parent,
		       (unsigned long long)res.child);
	return 0;
}

static void __attribute__((noreturn))
exec_fresh(int mode, const struct pc_backing *bk, int out)
{
	char arg[96];

	snprintf(arg, sizeof(arg), "%d:%s", mode, bk->name);
	if (dup2(out, STDOUT_FILENO) < 0 || setenv(FRESH_ENV, arg, 1))
		_exit(127);
	execl("/proc/self/exe", "maybe_pinned", (char *)NULL);
	_exit(127);
}

/* Run heavy_fork() in a freshly exec'd process; end the case on errors. */
static void heavy_fork_fresh(int mode, const struct pc_backing *bk,
			     struct heavy_result *res)
{
	char line[PC_REASON_MAX + 16] = "", how[64];
	unsigned long long parent, child;
	struct pc_child ch;
	ssize_t n;
	int status;

	if (!pc_child_fork(&ch))
		exec_fresh(mode, bk, ch.to_parent);
	n = read(ch.to_parent, line, sizeof(line) - 1);
	line[n > 0 ? n : 0] = '\0';
	line[strcspn(line, "\n")] = '\0';
	status = pc_child_reap(&ch);
	if (!strncmp(line, "skip ", 5))
		pc_skip("%s", line + 5);
	if (!strncmp(line, "fail ", 5))
		pc_fail("%s", line + 5);
	if (sscanf(line, "result %zu %zu %d %zu %llx %llx", &res->refs,
		   &res->pages, &res->heavy_copied, &res->others_copied,
		   &parent, &child) != 6)
		pc_fail("exec'd case process %s, said \"%s\"",
			pc_wait_describe(status, how, sizeof(how)), line);
	res->parent = parent;
	res->child = child;
}

/* ---- verdicts -------------------------------------------------------- */

static void need_pfns(void)
{
	if (!pc_pfn_readable())
		pc_skip("the copy checks compare PFNs from /proc/self/pagemap: run as root (CAP_SYS_ADMIN)");
}

static const char *describe_heavy(const struct heavy_result *res)
{
	static char buf[320];
	char p[96], c[96];

	snprintf(buf, sizeof(buf),
		 "page 0 with %zu vmsplice references (+1 mapping, bias %d): parent %s, child %s; %zu of %zu other pages copied",
		 res->refs, GUP_PIN_COUNTING_BIAS,
		 pc_view_describe(res->parent, p, sizeof(p)),
		 pc_view_describe(res->child, c, sizeof(c)),
		 res->others_copied, res->pages - 1);
	return buf;
}

static void expect_neighbours_shared(const struct heavy_result *res)
{
	if (res->others_copied)
		pc_fail("pages without extra references were copied at fork: %s",
			describe_heavy(res));
}

static void never_pinned_case(const struct pc_case *c)
{
	struct heavy_result res;

	need_pfns();
	pc_view_quiet_case();
	heavy_fork_fresh(MODE_NEVER_PINNED, c->backing, &res);
	if (res.heavy_copied)
		pc_fail("copied at fork in a process that never pinned (fork must not guess pins without MMF_HAS_PINNED, 008cfe4418b3 v5.9): %s",
			describe_heavy(&res));
	expect_neighbours_shared(&res);
	pc_diag("never pinned, so no pin guess at fork: %s",
		describe_heavy(&res));
	pc_pass();
}

/* Control: a copy the comparison must see (the child wrote page 0). */
static void control_child_write_case(const struct pc_case *c)
{
	struct heavy_result res;

	need_pfns();
	pc_view_quiet_case();
	heavy_fork_fresh(MODE_CHILD_WRITES, c->backing, &res);
	if (!res.heavy_copied)
		pc_fail("blind: the PFN comparison saw no copy after the child wrote page 0: %s",
			describe_heavy(&res));
	pc_diag("the PFN comparison sees the child's copy as it must: %s",
		describe_heavy(&res));
	pc_pass();
}

/* Pin and unpin an unrelated buffer: sets the sticky MMF_HAS_PINNED. */
static void pin_something_once(struct pc_engine *e)
{
	struct pc_region u;

	pc_region_create_or_skip(&u, pc_backing_find("anon"), PC_GEN_INIT);
	pc_pin_region_or_skip(e, &u, PC_PIN_RW);
	if (pc_engine_unpin(e))
		pc_fail("unpin: %s", e->err);
	pc_region_destroy(&u);
}

/* fork() + child exit, timed in the parent up to fork's return; ms. */
static double time_fork(void)
{
	long long a, b;
	double best = -1, ms;
	pid_t pid;
	int i;

	for (i = 0; i < 3; i++) {
		fflush(stdout);
		a = pc_now_ns();
		pid = fork();
		if (!pid)
			_exit(0);
		b = pc_now_ns();
		if (pid < 0)
			return -1;
		waitpid(pid, NULL, 0);
		ms = (b - a) / 1e6;
		if (best < 0 || ms < best)
			best = ms;
	}
	return best;
}

/* S21 (c): what a large pinned buffer costs fork(); no verdict. */
static void fork_latency_diag(struct pc_engine *e)
{
	double pinned, dontfork, unpinned;
	char *buf = mmap(NULL, LATENCY_BYTES, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED)
		return;
	madvise(buf, LATENCY_BYTES, MADV_NOHUGEPAGE);
	memset(buf, 1, LATENCY_BYTES);
	if (pc_engine_pin(e, buf, LATENCY_BYTES, PC_PIN_RW)) {
		pc_diag("fork latency not measured: pin of %u MiB failed: %s",
			LATENCY_BYTES >> 20, e->err);
		munmap(buf, LATENCY_BYTES);
		return;
	}
	pinned = time_fork();
	madvise(buf, LATENCY_BYTES, MADV_DONTFORK);
	dontfork = time_fork();
	madvise(buf, LATENCY_BYTES, MADV_DOFORK);
	pc_engine_unpin(e);
	unpinned = time_fork();
	pc_diag("fork() latency with a %u MiB buffer (base pages, best of 3): pinned %.2f ms (copied at fork), pinned + MADV_DONTFORK %.2f ms, unpinned %.2f ms (shared COW)",
		LATENCY_BYTES >> 20, pinned, dontfork, unpinned);
	munmap(buf, LATENCY_BYTES);
}

static int is_small_folio(const struct pc_backing *bk)
{
	return !(bk->flags & (PC_BK_THP | PC_BK_HUGETLB));
}

static void pinned_before_fork_case(const struct pc_case *c)
{
	char why[PC_REASON_MAX];
	struct heavy_result res;
	struct pc_engine e;
	int rc;

	need_pfns();
	pc_view_quiet_case();
	pc_engine_open_or_skip(&e, c->engine);
	pin_something_once(&e);
	rc = heavy_fork(c->backing, 0, &res, why, sizeof(why));
	if (rc > 0)
		pc_skip("%s", why);
	if (rc < 0)
		pc_fail("%s", why);
	expect_neighbours_shared(&res);
	if (is_small_folio(c->backing) && !res.heavy_copied)
		pc_fail("kernel change: not copied at fork although MMF_HAS_PINNED is set and the refcount reaches GUP_PIN_COUNTING_BIAS (the documented false positive is gone?): %s",
			describe_heavy(&res));
	if (!is_small_folio(c->backing) && res.heavy_copied)
		pc_fail("a large folio nobody pinned was copied at fork (its pins are counted exactly in _pincount): %s",
			describe_heavy(&res));
	if (res.heavy_copied)
		pc_diag("documented behaviour: after a pin, fork() copies a small page whose refcount reaches GUP_PIN_COUNTING_BIAS, it looks pinned to folio_maybe_dma_pinned() (gated by MMF_HAS_PINNED since 008cfe4418b3, v5.9; a458b76a4171, v5.14): %s",
			describe_heavy(&res));
	else
		pc_diag("no copy: a large folio's pins are counted exactly (_pincount), its references do not look pinned: %s",
			describe_heavy(&res));
	if (!strcmp(c->backing->name, "anon"))
		fork_latency_diag(&e);
	pc_engine_close(&e);
	pc_pass();
}

/* ---- the case list ---------------------------------------------------- */

/* Private anonymous memory that holds pages: the fork copy applies. */
static int is_heavy_backing(const struct pc_backing *bk)
{
	return (bk->flags & PC_BK_ANON) && !(bk->flags & PC_BK_ZERO);
}

static void add_cases(void)
{
	unsigned int need = PC_CAP_PIN_RW | PC_CAP_HELD;
	const struct pc_engine_ops *const *engs;
	const struct pc_backing *const *bks;
	size_t nb = pc_backings(&bks), ne = pc_engines(&engs), b, i;

	pc_cases_pause_numa_balancing();
	for (b = 0; b < nb; b++) {
		if (!is_heavy_backing(bks[b]))
			continue;
		pc_add_case(control_child_write_case, mode_names[1], bks[b],
			    NULL, "%s/control-child-write/%s/none",
			    pc_binary(), bks[b]->name);
		pc_add_case(never_pinned_case, mode_names[0], bks[b], NULL,
			    "%s/never-pinned-fork/%s/none", pc_binary(),
			    bks[b]->name);
		for (i = 0; i < ne; i++) {
			if (!pc_engine_can(engs[i], need) ||
			    (engs[i]->caps & PC_CAP_GET_REF))
				continue;
			pc_add_case(pinned_before_fork_case, NULL, bks[b],
				    engs[i], "%s/pinned-before-fork/%s/%s",
				    pc_binary(), bks[b]->name, engs[i]->name);
		}
	}
}

int main(int argc, char **argv)
{
	const char *fresh = getenv(FRESH_ENV);

	if (fresh)
		return fresh_main(fresh);
	return pc_main(argc, argv, "maybe_pinned", add_cases);
}
