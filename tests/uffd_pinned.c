// SPDX-License-Identifier: GPL-2.0
/*
 * uffd_pinned: userfaultfd write-protection (S13) and the events that move
 * or re-protect a mapping, on a range pinned R/W long-term.
 *
 * The promise under test: the pinned physical pages stay the ones the CPU
 * uses, whatever happens to the mapping around them.  Each case pins the
 * region, makes the event happen, proves it happened, and then checks
 * that the PFNs behind the CPU's mapping are the pinned ones, that the
 * device sees the CPU's write and that the CPU sees the device's write.
 *
 *   uffd-wp-sync       UFFDIO_REGISTER(MODE_WP) + UFFDIO_WRITEPROTECT the
 *                      pinned range; a writer thread's write must deliver
 *                      WP fault messages to a handler thread (counted),
 *                      which resolves each by clearing the protection
 *   uffd-wp-async      UFFD_FEATURE_WP_ASYNC, protection set through
 *                      PAGEMAP_SCAN (PM_SCAN_WP_MATCHING): the scan must
 *                      report no page written before the CPU write and
 *                      every page written after it
 *   uffd-wp-pin-ro     S13 proper: write-protect first (a live child keeps
 *                      the pages COW-shared), then a R/O pin: it must take
 *                      no WP message and keep the uffd-wp bit (pagemap)
 *                      while it unshares, and the CPU write after it must
 *                      still take WP messages and reach the device
 *   uffd-move-pinned   UFFDIO_MOVE of the pinned pages must fail (EBUSY)
 *                      and leave them mapped where they were
 *   mremap-move        mremap(MREMAP_MAYMOVE|MREMAP_FIXED): the pinned
 *                      PFNs must show up at the new address
 *   mremap-dontunmap   the same with MREMAP_DONTUNMAP; the old range must
 *                      stay mapped and empty
 *   mprotect-none-rw   PROT_NONE (a read must fault: SIGSEGV), then
 *                      PROT_READ|PROT_WRITE; the device's write made while
 *                      the CPU had no access, and the CPU's write after it
 *                      (faults counted), must cross
 *
 * Controls (each must see the deliberate loss, else it FAILs "blind"):
 *   control-uffd-wp-fresh       the WP fault is resolved by mapping fresh
 *                               copies over the range (pin lost)
 *   control-uffd-wp-pin-rw      a R/W pin (FOLL_WRITE) instead: it must hit
 *                               the protection (WP messages, or EFAULT
 *                               from a GUP that cannot wait for them)
 *   control-uffd-move-unpinned  the pin is dropped first: the same
 *                               UFFDIO_MOVE must then move the pages
 *   control-mremap-fresh        after the move, fresh pages at the new
 *                               address
 *   control-mprotect-fresh      after PROT_READ|PROT_WRITE, fresh pages
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pincheck.h"

/* ---- kernel ABI newer than the build host's headers ---------------------- */

#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM	(1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE		(1 << 16)
#endif

#ifndef UFFDIO_MOVE
#define _UFFDIO_MOVE			(0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

#ifndef PAGEMAP_SCAN
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};
#define PAGEMAP_SCAN		_IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WRITTEN		(1 << 1)
#define PM_SCAN_WP_MATCHING	(1 << 0)
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)
#endif

#define PM_UFFD_WP		(1ULL << 57)	/* pagemap: PTE is uffd-wp */

#define WRITER_WAIT_MS	8000	/* the write through WP faults must end */
#define SCAN_VEC_LEN	64

enum {
	GEN_WP_WRITE = 8,	/* CPU write that took the WP faults */
	GEN_MOVED = 9,		/* CPU write at the mapping's new address */
	GEN_DEV_HIDDEN = 10,	/* device write while the CPU had no access */
	GEN_CPU_AFTER = 11,	/* CPU write after the event */
};

static void name_generations(void)
{
	pc_gen_name(PC_GEN_INIT, "written before the pin");
	pc_gen_name(GEN_WP_WRITE, "CPU write through the uffd-wp faults");
	pc_gen_name(GEN_MOVED, "CPU write at the mapping's new address");
	pc_gen_name(GEN_DEV_HIDDEN, "device write while the range was PROT_NONE");
	pc_gen_name(GEN_CPU_AFTER, "CPU write after the event");
}

/* ---- the pinned region every case starts from ----------------------------- */

struct pinned {
	struct pc_engine e;
	struct pc_region r;
	char *home;		/* r.mem as created (the pin's address) */
};

/* Open the engine, make the region, pin it R/W, snap its PFNs. */
static void pinned_setup(const struct pc_case *c, struct pinned *p,
			 const char *event)
{
	name_generations();
	if (!pc_pfn_readable())
		pc_skip("PFNs hidden in /proc/self/pagemap: run as root (CAP_SYS_ADMIN), the PFNs are this test's evidence");
	pc_engine_open_or_skip(&p->e, c->engine);
	pc_region_create_or_skip(&p->r, c->backing, PC_GEN_INIT);
	p->home = p->r.mem;
	pc_pin_region_or_skip(&p->e, &p->r, PC_PIN_RW);
	pc_region_snap(&p->r, event);
}

static void pinned_teardown(struct pinned *p)
{
	pc_engine_close(&p->e);
	p->r.mem = p->home;
	pc_region_destroy(&p->r);
}

/* The base page, or the huge page of a hugetlb backing. */
static size_t granule_of(const struct pc_region *r)
{
	if ((r->bk->flags & PC_BK_HUGETLB) && r->bk->size > pc_page_size)
		return r->bk->size;
	return pc_page_size;
}

/* The device and the CPU after an event: both directions, then PFNs. */
static void expect_coherent_after(struct pinned *p, unsigned int cpu_gen,
				  const char *event)
{
	char what[160];

	snprintf(what, sizeof(what), "device read of the CPU write after %s",
		 event);
	pc_expect_device_sees(&p->e, &p->r, cpu_gen, what);
	snprintf(what, sizeof(what), "CPU read of a device write after %s",
		 event);
	pc_device_write_then_cpu_sees(&p->e, &p->r, PC_GEN_DEVICE, what);
	pc_expect_pinned_pages_stayed(&p->r, event);
}

/* Pages of [addr, addr + len) whose pagemap entry has all of @bits. */
static size_t pages_with(const char *addr, size_t len, uint64_t bits)
{
	size_t i, pages = (len + pc_page_size - 1) / pc_page_size, n = 0;
	uint64_t *pm = pc_pagemap_alloc(addr, pages, 0);

	for (i = 0; i < pages; i++)
		n += (pm[i] & bits) == bits;
	free(pm);
	return n;
}

/* ---- userfaultfd ------------------------------------------------------------ */

struct uffd_feature_name {
	uint64_t bit;
	const char *name;
	const char *since;
};

static const struct uffd_feature_name feature_names[] = {
	{ UFFD_FEATURE_PAGEFAULT_FLAG_WP, "UFFD_FEATURE_PAGEFAULT_FLAG_WP", "5.7" },
	{ UFFD_FEATURE_WP_HUGETLBFS_SHMEM, "UFFD_FEATURE_WP_HUGETLBFS_SHMEM", "5.19" },
	{ UFFD_FEATURE_WP_UNPOPULATED, "UFFD_FEATURE_WP_UNPOPULATED", "6.4" },
	{ UFFD_FEATURE_WP_ASYNC, "UFFD_FEATURE_WP_ASYNC", "6.7" },
	{ UFFD_FEATURE_MOVE, "UFFD_FEATURE_MOVE (UFFDIO_MOVE)", "6.8" },
};

/* A new userfaultfd: the syscall, else /dev/userfaultfd.  -1 + errno. */
static int uffd_new(void)
{
	int flags = O_CLOEXEC | O_NONBLOCK, fd, dev, err;

	fd = syscall(__NR_userfaultfd, flags);
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return fd;
	err = errno;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		errno = err;
		return -1;
	}
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	close(dev);
	return fd;
}

static int uffd_new_or_skip(void)
{
	int fd = uffd_new();

	if (fd >= 0)
		return fd;
	if (errno == ENOSYS)
		pc_skip("kernel without userfaultfd (CONFIG_USERFAULTFD)");
	if (errno == EPERM)
		pc_skip("userfaultfd not permitted: run as root or set vm.unprivileged_userfaultfd=1");
	pc_fail_errno("userfaultfd");
}

/* The features this kernel's userfaultfd offers. */
static uint64_t uffd_offered(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = uffd_new_or_skip();

	if (ioctl(fd, UFFDIO_API, &api))
		pc_fail_errno("UFFDIO_API (probe)");
	close(fd);
	return api.features;
}

/*
 * A userfaultfd with every feature of @need (skip naming the first one
 * the kernel lacks) and those of @want it offers.  Sets *offered.
 */
static int uffd_open_or_skip(uint64_t need, uint64_t want, uint64_t *offered)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t have = uffd_offered();
	size_t i;
	int fd;

	for (i = 0; i < PC_ARRAY_SIZE(feature_names); i++)
		if ((need & feature_names[i].bit) &&
		    !(have & feature_names[i].bit))
			pc_skip("kernel without %s (userfaultfd, Linux %s+)",
				feature_names[i].name, feature_names[i].since);
	fd = uffd_new_or_skip();
	api.features = need | (want & have);
	if (ioctl(fd, UFFDIO_API, &api))
		pc_fail_errno("UFFDIO_API");
	*offered = have;
	return fd;
}

/* UFFDIO_REGISTER; 0 with the range's ioctls in *ioctls, or -errno. */
static int uffd_register(int fd, void *addr, size_t len, uint64_t mode,
			 uint64_t *ioctls)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (ioctls)
		*ioctls = reg.ioctls;
	return 0;
}

static int uffd_unregister(int fd, void *addr, size_t len)
{
	struct uffdio_range range = { .start = (uintptr_t)addr, .len = len };

	return ioctl(fd, UFFDIO_UNREGISTER, &range) ? -errno : 0;
}

static int is_shmem(const struct pc_backing *bk)
{
	return (bk->flags & PC_BK_FILE) && !strncmp(bk->name, "memfd", 5);
}

/* Why UFFDIO_REGISTER(MODE_WP) of @bk memory failed with @err. */
static void __attribute__((noreturn))
wp_register_skip(const struct pc_backing *bk, int err, uint64_t offered,
		 int async)
{
	const char *why = "the kernel refuses userfaultfd write-protection of this memory";

	if (err != -EINVAL)
		pc_fail("UFFDIO_REGISTER(MODE_WP) of %s memory: %s", bk->name,
			strerror(-err));
	if ((is_shmem(bk) || (bk->flags & PC_BK_HUGETLB)) &&
	    !(offered & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		why = "kernel without UFFD_FEATURE_WP_HUGETLBFS_SHMEM (uffd-wp of shmem and hugetlb, Linux 5.19+)";
	else if ((bk->flags & PC_BK_FILE) && !is_shmem(bk) && !async)
		why = "synchronous uffd-wp covers anonymous, shmem and hugetlb memory only (other file memory needs UFFD_FEATURE_WP_ASYNC: see uffd-wp-async)";
	pc_skip("not applicable: UFFDIO_REGISTER(MODE_WP) of %s memory: EINVAL: %s",
		bk->name, why);
}

static void wp_register_or_skip(int fd, struct pc_region *r, uint64_t offered,
				int async)
{
	uint64_t ioctls = 0;
	int err = uffd_register(fd, r->mem, r->len, UFFDIO_REGISTER_MODE_WP,
				&ioctls);

	if (err)
		wp_register_skip(r->bk, err, offered, async);
	if (!(ioctls & (1ULL << _UFFDIO_WRITEPROTECT)))
		pc_skip("not applicable: the kernel offers no UFFDIO_WRITEPROTECT on %s memory (register ioctls %#llx)",
			r->bk->name, (unsigned long long)ioctls);
}

/* UFFDIO_WRITEPROTECT; 0 or -errno (EAGAIN retried a few times). */
static int uffd_writeprotect(int fd, void *addr, size_t len, int wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	int tries;

	for (tries = 0; tries < 100; tries++) {
		if (!ioctl(fd, UFFDIO_WRITEPROTECT, &w))
			return 0;
		if (errno != EAGAIN)
			return -errno;
	}
	return -EAGAIN;
}

static int uffd_wake(int fd, void *addr, size_t len)
{
	struct uffdio_range range = { .start = (uintptr_t)addr, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &range) ? -errno : 0;
}

/* ---- uffd-wp (synchronous): a writer thread and a handler thread ------ */

struct wp_handler {
	pthread_t tid;
	int fd;
	struct pc_region *r;
	size_t granule;
	int replace;		/* control: fresh pages instead of clearing WP */
	int stop[2];		/* a pipe: closing its write end stops it */
	size_t wp_msgs;		/* WP fault messages */
	size_t other_msgs;	/* anything else (woken, not resolved) */
	size_t replaced;	/* times the range was replaced (control) */
	int err;		/* first resolution error, -errno */
	uint64_t err_addr;
};

/* Give up on resolving: let every blocked fault through. */
static void handler_give_up(struct wp_handler *h, int err, uint64_t addr)
{
	if (!h->err) {
		h->err = err;
		h->err_addr = addr;
	}
	uffd_unregister(h->fd, h->r->mem, h->r->len);
}

static void resolve_wp_fault(struct wp_handler *h, uint64_t addr)
{
	uint64_t start = addr & ~((uint64_t)h->granule - 1);
	int err;

	if (h->replace) {
		if (!h->replaced++)
			pc_move_ignoring_pin(h->r, -1);
		err = uffd_wake(h->fd, h->r->mem, h->r->len);
	} else {
		err = uffd_writeprotect(h->fd, (void *)(uintptr_t)start,
					h->granule, 0);
	}
	if (err)
		handler_give_up(h, err, addr);
}

static void handle_msg(struct wp_handler *h, const struct uffd_msg *msg)
{
	uint64_t addr = msg->arg.pagefault.address;

	if (msg->event == UFFD_EVENT_PAGEFAULT &&
	    (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
		__atomic_add_fetch(&h->wp_msgs, 1, __ATOMIC_RELAXED);
		resolve_wp_fault(h, addr);
		return;
	}
	h->other_msgs++;
	uffd_wake(h->fd, h->r->mem, h->r->len);
}

static void *wp_handler_main(void *arg)
{
	struct wp_handler *h = arg;
	struct pollfd pfd[2] = {
		{ .fd = h->fd, .events = POLLIN },
		{ .fd = h->stop[0], .events = POLLIN },
	};
	struct uffd_msg msg;

	for (;;) {
		if (poll(pfd, 2, -1) <= 0)
			continue;
		if (pfd[1].revents)
			break;
		if (read(h->fd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		handle_msg(h, &msg);
	}
	return NULL;
}

struct writer {
	pthread_t tid;
	struct pc_region *r;
	unsigned int gen;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	pc_region_cpu_write(w->r, 0, w->r->len, w->gen);
	return NULL;
}

/* Join the writer within WRITER_WAIT_MS; -1 if it is still blocked. */
static int join_writer(struct writer *w)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WRITER_WAIT_MS / 1000;
	return pthread_timedjoin_np(w->tid, NULL, &until) ? -1 : 0;
}

static void handler_start(struct wp_handler *h)
{
	if (pipe2(h->stop, O_CLOEXEC))
		pc_fail_errno("pipe2 for the WP handler");
	if (pthread_create(&h->tid, NULL, wp_handler_main, h))
		pc_fail("pthread_create (handler) failed");
}

/* Stop the handler at once, whatever it waits for. */
static void handler_stop(struct wp_handler *h)
{
	close(h->stop[1]);
	pthread_join(h->tid, NULL);
	close(h->stop[0]);
}

/*
 * A writer thread writes @gen over the write-protected region while the
 * handler thread (started by the caller) answers its WP faults; the
 * handler is stopped afterwards.
 */
static void write_through_wp_faults(struct wp_handler *h, unsigned int gen)
{
	struct writer w = { .r = h->r, .gen = gen };
	int stuck;

	if (pthread_create(&w.tid, NULL, writer_main, &w))
		pc_fail("pthread_create (writer) failed");
	stuck = join_writer(&w);
	if (stuck) {
		uffd_unregister(h->fd, h->r->mem, h->r->len);
		pthread_join(w.tid, NULL);
	}
	handler_stop(h);
	pc_diag("evidence: %zu WP fault message(s) for %zu %s page(s) written, %zu other message(s)",
		h->wp_msgs, h->r->len / h->granule, h->r->bk->name,
		h->other_msgs);
	if (stuck)
		pc_fail("the CPU write stayed blocked in the WP faults for %d s (%zu WP messages answered)",
			WRITER_WAIT_MS / 1000, h->wp_msgs);
	if (h->err)
		pc_fail("resolving the WP fault at %#llx: %s",
			(unsigned long long)h->err_addr, strerror(-h->err));
}

/*
 * Register @r for WP (with the features of @want the kernel offers) and
 * write-protect it all.  Returns the userfaultfd; *marked: the pages
 * whose pagemap entry then carries the uffd-wp bit.
 */
static int wp_protect_region(struct pc_region *r, uint64_t want,
			     uint64_t *offered, size_t *marked)
{
	int fd = uffd_open_or_skip(UFFD_FEATURE_PAGEFAULT_FLAG_WP, want,
				   offered);
	int err;

	wp_register_or_skip(fd, r, *offered, 0);
	err = uffd_writeprotect(fd, r->mem, r->len, 1);
	if (err)
		pc_fail("UFFDIO_WRITEPROTECT of the %s range: %s", r->bk->name,
			strerror(-err));
	*marked = pages_with(r->mem, r->len, PM_UFFD_WP);
	pc_diag("pagemap: %zu of %zu pages carry the uffd-wp bit after UFFDIO_WRITEPROTECT",
		*marked, r->len / pc_page_size);
	return fd;
}

static int wp_protect_or_skip(struct pinned *p, uint64_t *offered)
{
	size_t marked;

	return wp_protect_region(&p->r, 0, offered, &marked);
}

static void uffd_wp_sync_case(const struct pc_case *c)
{
	static struct pinned p;
	struct wp_handler h = { 0 };
	uint64_t offered;

	pinned_setup(c, &p, "the uffd-wp fault");
	h.fd = wp_protect_or_skip(&p, &offered);
	h.r = &p.r;
	h.granule = granule_of(&p.r);
	handler_start(&h);
	write_through_wp_faults(&h, GEN_WP_WRITE);
	if (!h.wp_msgs)
		pc_fail("the CPU write to the write-protected pinned range delivered no WP fault message (0 WP, %zu other): the uffd-wp protection was lost",
			h.other_msgs);
	pc_expect_cpu_sees(&p.r, GEN_WP_WRITE,
			   "CPU read of its own write through the WP faults");
	expect_coherent_after(&p, GEN_WP_WRITE, "the uffd-wp fault");
	close(h.fd);
	pinned_teardown(&p);
	pc_pass();
}

/*
 * Control: the handler answers the first WP fault by mapping fresh copies
 * over the range (as a handler that resolves by UFFDIO_COPY-style
 * replacement would), so the pin is lost: the checks must say so.
 */
static void control_uffd_wp_fresh_case(const struct pc_case *c)
{
	static struct pinned p;
	struct wp_handler h = { .replace = 1 };
	unsigned int held;
	uint64_t offered;

	pinned_setup(c, &p, "the uffd-wp fault");
	held = p.r.gen;
	h.fd = wp_protect_or_skip(&p, &offered);
	h.r = &p.r;
	h.granule = granule_of(&p.r);
	handler_start(&h);
	write_through_wp_faults(&h, GEN_WP_WRITE);
	if (!h.wp_msgs || !h.replaced)
		pc_fail("control could not act: no WP fault message (%zu WP, %zu other), so no page was replaced",
			h.wp_msgs, h.other_msgs);
	pc_expect_lost_pin_detected(&p.e, &p.r, held);
	close(h.fd);
	pinned_teardown(&p);
	pc_pass();
}

/* ---- uffd-wp first, then the pin (S13 a and b) ------------------------------ */

struct wp_pin_run {
	struct pinned p;
	struct pc_child ch;	/* keeps the pages COW-shared until the pin */
	struct wp_handler h;
	size_t marked_before;	/* pages with the uffd-wp bit before the pin */
	size_t marked_after;
	size_t pin_msgs;	/* WP messages while the pin ran */
	size_t unshared;	/* pages the pin replaced (new PFN) */
	char wp_efault[PC_ENGINE_ERR_MAX];	/* the pin under WP failed so */
};

/* A child that holds the region's pages COW-shared until told to go. */
static void fork_sharing_child(struct wp_pin_run *w)
{
	char token;

	if (pc_child_fork(&w->ch))
		return;
	pc_child_await(w->ch.to_child, &token);
	_exit(0);
}

static void release_child(struct wp_pin_run *w)
{
	char how[64];
	int status;

	pc_child_tell(w->ch.to_child, 'x');
	status = pc_child_reap(&w->ch);
	if (status)
		pc_fail("sharing child %s",
			pc_wait_describe(status, how, sizeof(how)));
}

static size_t pages_replaced(const struct pc_region *r)
{
	size_t i, pages = r->len / pc_page_size, n = 0;
	uint64_t *now = pc_pagemap_alloc(r->mem, pages, 1);

	for (i = 0; i < pages; i++)
		n += r->pfn_before[i] && now[i] != r->pfn_before[i];
	free(now);
	return n;
}

/*
 * Pin the write-protected region.  A GUP that write-faults on a uffd-wp
 * page and cannot drop mmap_lock to wait for the handler (no
 * FAULT_FLAG_ALLOW_RETRY: e.g. VFIO type1's pin_user_pages_remote()
 * without "locked") gets SIGBUS from handle_userfault(): the pin fails
 * with EFAULT.  When the same pin then succeeds without the registration,
 * that is recorded in w->wp_efault (the pin hit the write protection).
 */
static void pin_under_wp(struct wp_pin_run *w, unsigned int pin_flags)
{
	struct pinned *p = &w->p;
	int rc = pc_engine_pin(&p->e, p->r.mem, p->r.len, pin_flags), err;

	if (rc != -EFAULT) {
		if (rc)
			pc_pin_region_or_skip(&p->e, &p->r, pin_flags);
		return;
	}
	snprintf(w->wp_efault, sizeof(w->wp_efault), "%s",
		 p->e.err[0] ? p->e.err : strerror(EFAULT));
	err = uffd_unregister(w->h.fd, p->r.mem, p->r.len);
	if (err)
		pc_fail("UFFDIO_UNREGISTER after the failed pin: %s",
			strerror(-err));
	pc_pin_region_or_skip(&p->e, &p->r, pin_flags);
	pc_diag("the %s pin of the write-protected range failed (%s); the same pin succeeds once the range is unregistered",
		pin_flags & PC_PIN_RO ? "R/O" : "R/W", w->wp_efault);
}

/*
 * The region (COW-shared with a live child) is write-protected first and
 * pinned with @pin_flags while the handler thread answers any WP fault;
 * what the pin did is recorded in @w, the PFNs are snapped after it.
 */
static void wp_then_pin(const struct pc_case *c, struct wp_pin_run *w,
			unsigned int pin_flags)
{
	struct pinned *p = &w->p;
	uint64_t offered;

	name_generations();
	if (!pc_pfn_readable())
		pc_skip("PFNs hidden in /proc/self/pagemap: run as root (CAP_SYS_ADMIN), the PFNs are this test's evidence");
	pc_engine_open_or_skip(&p->e, c->engine);
	pc_region_create_or_skip(&p->r, c->backing, PC_GEN_INIT);
	p->home = p->r.mem;
	fork_sharing_child(w);
	pc_region_snap(&p->r, "the pin");
	w->h.fd = wp_protect_region(&p->r, UFFD_FEATURE_WP_UNPOPULATED,
				    &offered, &w->marked_before);
	if (!w->marked_before)
		pc_skip("not applicable: UFFDIO_WRITEPROTECT marked no page of %s memory in pagemap (nothing mapped to protect%s)",
			p->r.bk->name,
			offered & UFFD_FEATURE_WP_UNPOPULATED ? "" :
			"; kernel without UFFD_FEATURE_WP_UNPOPULATED, Linux 6.4+");
	w->h.r = &p->r;
	w->h.granule = granule_of(&p->r);
	handler_start(&w->h);
	pin_under_wp(w, pin_flags);
	w->pin_msgs = __atomic_load_n(&w->h.wp_msgs, __ATOMIC_RELAXED);
	w->marked_after = pages_with(p->r.mem, p->r.len, PM_UFFD_WP);
	w->unshared = pages_replaced(&p->r);
	release_child(w);
	pc_region_snap(&p->r, "the CPU write");
	if (w->wp_efault[0])
		return;	/* pinned without the protection: nothing to tell */
	pc_diag("evidence: the %s pin took %zu WP fault message(s); uffd-wp bit on %zu of %zu pages before it, %zu after; it replaced %zu page(s) (unshare/COW of the child's pages)",
		pin_flags & PC_PIN_RO ? "R/O" : "R/W", w->pin_msgs,
		w->marked_before, p->r.len / pc_page_size, w->marked_after,
		w->unshared);
}

/*
 * S13: a pin without FOLL_WRITE of write-protected, COW-shared memory
 * must unshare without reporting a write and without dropping the WP
 * bit; the CPU's write afterwards must still be reported, and reach the
 * device.
 */
static void uffd_wp_pin_ro_case(const struct pc_case *c)
{
	static struct wp_pin_run w;
	struct wp_pin_run *wp = &w;

	wp_then_pin(c, wp, PC_PIN_RO);
	if (wp->wp_efault[0])
		pc_fail("the R/O pin failed on the write-protected range (%s) and succeeds without the uffd-wp registration: the GUP write-faulted (FOLL_WRITE) on uffd-wp pages, a pin without write intent must not",
			wp->wp_efault);
	if (wp->pin_msgs)
		pc_fail("the R/O pin delivered %zu WP fault message(s): a pin without FOLL_WRITE was reported as a write to the write-protected range",
			wp->pin_msgs);
	if (wp->marked_after < wp->marked_before)
		pc_fail("the R/O pin dropped the uffd-wp bit on %zu of %zu pages (the unshare did not carry it over): a CPU write there is no longer reported",
			wp->marked_before - wp->marked_after,
			wp->marked_before);
	write_through_wp_faults(&wp->h, GEN_WP_WRITE);
	if (wp->h.wp_msgs == wp->pin_msgs)
		pc_fail("the CPU write after the R/O pin delivered no WP fault message: the uffd-wp protection was lost");
	pc_expect_pinned_pages_stayed(&wp->p.r, "the uffd-wp fault after a R/O pin");
	pc_expect_device_sees_ro_pinned(&wp->p.e, &wp->p.r, GEN_WP_WRITE,
					"device read of the CPU write that took the WP fault");
	close(wp->h.fd);
	pinned_teardown(&wp->p);
	pc_pass();
}

/*
 * Control: the same with a R/W pin (FOLL_WRITE), a real write: it must
 * take the WP fault, or the "no message during the pin" check is blind.
 */
static void control_uffd_wp_pin_rw_case(const struct pc_case *c)
{
	static struct wp_pin_run w;
	struct wp_pin_run *wp = &w;

	wp_then_pin(c, wp, PC_PIN_RW);
	handler_stop(&wp->h);
	if (wp->wp_efault[0]) {
		pc_diag("detected as it must be: the R/W pin hit the write protection and failed (%s; this GUP cannot wait for the handler), which uffd-wp-pin-ro reports as a write",
			wp->wp_efault);
		goto out;
	}
	if (!wp->pin_msgs)
		pc_fail("blind: a R/W pin (FOLL_WRITE) of the write-protected range delivered no WP fault message, so the R/O case's zero count proves nothing");
	if (wp->h.err)
		pc_fail("resolving the pin's WP fault: %s", strerror(-wp->h.err));
	pc_diag("detected as it must be: the R/W pin took %zu WP fault message(s)",
		wp->pin_msgs);
out:
	close(wp->h.fd);
	pinned_teardown(&wp->p);
	pc_pass();
}

/* ---- uffd-wp (asynchronous) through PAGEMAP_SCAN ------------------------------ */

/*
 * PAGEMAP_SCAN over the region for written pages (and, with @protect,
 * write-protect them).  Returns the bytes reported written, or -errno.
 */
static long long scan_written(int pagemap, const struct pc_region *r,
			      int protect)
{
	struct page_region vec[SCAN_VEC_LEN];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)r->mem,
		.end = (uintptr_t)r->mem + r->len,
		.vec = (uintptr_t)vec,
		.vec_len = SCAN_VEC_LEN,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	long long bytes = 0;
	long n, i;

	if (protect)
		arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
	n = ioctl(pagemap, PAGEMAP_SCAN, &arg);
	if (n < 0)
		return -errno;
	for (i = 0; i < n; i++)
		bytes += vec[i].end - vec[i].start;
	return bytes;
}

static int open_pagemap_scan_or_skip(const struct pc_region *r)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	long long got;

	if (fd < 0)
		pc_fail_errno("open /proc/self/pagemap");
	got = scan_written(fd, r, 0);
	if (got == -ENOTTY || got == -EINVAL)
		pc_skip("kernel without the PAGEMAP_SCAN ioctl (Linux 6.7+): %s",
			strerror((int)-got));
	if (got < 0)
		pc_fail("PAGEMAP_SCAN: %s", strerror((int)-got));
	return fd;
}

/* Protect through PAGEMAP_SCAN; then the scan must see nothing written. */
static void protect_by_scan(int pagemap, const struct pc_region *r)
{
	long long got = scan_written(pagemap, r, 1);

	if (got < 0)
		pc_fail("PAGEMAP_SCAN(PM_SCAN_WP_MATCHING|PM_SCAN_CHECK_WPASYNC): %s",
			strerror((int)-got));
	pc_diag("PAGEMAP_SCAN write-protected %lld of %zu bytes", got, r->len);
	got = scan_written(pagemap, r, 0);
	if (got != 0)
		pc_fail("PAGEMAP_SCAN still reports %lld of %zu bytes written right after write-protecting them: the protection did not take",
			got, r->len);
}

static void uffd_wp_async_case(const struct pc_case *c)
{
	static struct pinned p;
	uint64_t offered;
	long long after;
	int fd, pagemap;

	pinned_setup(c, &p, "the async uffd-wp write");
	fd = uffd_open_or_skip(UFFD_FEATURE_PAGEFAULT_FLAG_WP |
			       UFFD_FEATURE_WP_ASYNC,
			       UFFD_FEATURE_WP_UNPOPULATED, &offered);
	wp_register_or_skip(fd, &p.r, offered, 1);
	pagemap = open_pagemap_scan_or_skip(&p.r);
	protect_by_scan(pagemap, &p.r);
	pc_diag("pagemap: %zu of %zu pages carry the uffd-wp bit before the CPU write",
		pages_with(p.r.mem, p.r.len, PC_PM_PRESENT | PM_UFFD_WP),
		p.r.len / pc_page_size);
	pc_region_cpu_write(&p.r, 0, p.r.len, GEN_WP_WRITE);
	after = scan_written(pagemap, &p.r, 0);
	pc_diag("evidence: PAGEMAP_SCAN reports 0 bytes written before the CPU write, %lld of %zu after it",
		after, p.r.len);
	if (after != (long long)p.r.len)
		pc_fail("PAGEMAP_SCAN reports %lld of %zu bytes written after the CPU wrote them all: the async WP fault did not record the write",
			after, p.r.len);
	expect_coherent_after(&p, GEN_WP_WRITE, "the async uffd-wp write");
	close(pagemap);
	close(fd);
	pinned_teardown(&p);
	pc_pass();
}

/* ---- UFFDIO_MOVE ----------------------------------------------------------------- */

/* An anonymous mapping of @len bytes aligned to @align, or NULL. */
static char *map_aligned(size_t len, size_t align, int prot, char **base,
			 size_t *base_len)
{
	char *p;

	*base_len = len + (align > pc_page_size ? align : 0);
	p = mmap(NULL, *base_len, prot, MAP_PRIVATE | MAP_ANONYMOUS |
		 MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	*base = p;
	return (char *)pc_align_up((uintptr_t)p, align);
}

struct move_dst {
	char *mem, *base;
	size_t len, base_len;
};

/* An empty destination registered with @fd (the move's requirement). */
static void move_dst_setup(int fd, struct move_dst *d, size_t len,
			   size_t align)
{
	uint64_t ioctls = 0;
	int err;

	d->len = len;
	d->mem = map_aligned(len, align, PROT_READ | PROT_WRITE, &d->base,
			     &d->base_len);
	if (!d->mem)
		pc_fail_errno("mmap the move's destination");
	err = uffd_register(fd, d->mem, len, UFFDIO_REGISTER_MODE_MISSING,
			    &ioctls);
	if (err)
		pc_fail("UFFDIO_REGISTER(MODE_MISSING) of the destination: %s",
			strerror(-err));
	if (!(ioctls & (1ULL << _UFFDIO_MOVE)))
		pc_skip("kernel without UFFDIO_MOVE (not in the register ioctls %#llx; Linux 6.8+)",
			(unsigned long long)ioctls);
}

static void move_dst_release(struct move_dst *d)
{
	munmap(d->base, d->base_len);
}

/* UFFDIO_MOVE @len bytes @src -> @dst; bytes moved, or -errno. */
static long long uffd_move(int fd, void *dst, void *src, size_t len)
{
	struct uffdio_move m = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len,
	};

	if (ioctl(fd, UFFDIO_MOVE, &m))
		return m.move > 0 ? m.move : -errno;
	return m.move;
}

/*
 * Move one written scratch page: proves UFFDIO_MOVE works in this
 * process, so that a refusal of the pinned pages means the pin.
 */
static void probe_move_or_skip(int fd)
{
	char *src = mmap(NULL, pc_page_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct move_dst d;
	long long got;

	if (src == MAP_FAILED)
		pc_fail_errno("mmap a scratch page");
	memset(src, 0x5a, pc_page_size);
	move_dst_setup(fd, &d, pc_page_size, pc_page_size);
	got = uffd_move(fd, d.mem, src, pc_page_size);
	if (got == -ENOTTY || got == -EINVAL)
		pc_skip("UFFDIO_MOVE of an unpinned scratch page: %s: kernel without a working UFFDIO_MOVE (Linux 6.8+)",
			strerror((int)-got));
	if (got != (long long)pc_page_size || d.mem[0] != 0x5a)
		pc_fail("UFFDIO_MOVE of an unpinned scratch page: %s",
			got < 0 ? strerror((int)-got) : "short move");
	move_dst_release(&d);
	munmap(src, pc_page_size);
}

/*
 * A watch on a thread in UFFDIO_MOVE.  A healthy move returns within
 * milliseconds and tries to split each large folio of the range at most a
 * few times.  7.2 and 7.3-rc retry a pinned large folio's refused split
 * without end (docs/known-failures.md): the watch sees the kernel's count
 * of refused splits of the folio's size rise past MOVE_RETRIED_SPLITS per
 * page of the range (and past MOVE_RETRIED_SPLITS_MIN, above what another
 * process's failed splits could add meanwhile) while the move is still in
 * the kernel.  Where no such count moves, a move still in the kernel after
 * MOVE_LIVELOCK_MS that spent at least half of that time on a CPU (its
 * thread's system time) counts as a livelock too.  The watch then ends the
 * case with a TIMEOUT at once instead of at the case's watchdog; the
 * harness SIGKILLs the process, which ends the retries.  A thread asleep
 * in the kernel is left to the watchdog.
 */
#define MOVE_LIVELOCK_MS 500
#define MOVE_WATCH_STEP_MS 20
#define MOVE_RETRIED_SPLITS 2	/* per page of the range ... */
#define MOVE_RETRIED_SPLITS_MIN 256	/* ... and at least: others' splits */

struct move_watch {
	pthread_t tid;
	pid_t mover;		/* the thread that calls UFFDIO_MOVE */
	int stop[2];		/* a pipe: closing its write end stops the watch */
	long long t0;
	long long cpu0;
	char splits[96];	/* the refused splits' counter, "" if none */
	long long splits0;
	long long retried;	/* refused splits that prove a retry loop */
	const char *what;	/* the backing's name */
};

/* System time of thread @tid of this process in ms, or -1. */
static long long thread_system_ms(pid_t tid)
{
	long long user_ms, system_ms;
	char path[64], state;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	return pc_task_times(path, &state, &user_ms, &system_ms) ? -1 :
								     system_ms;
}

/*
 * Name in @buf the counter of refused splits of @r's large folios: the
 * folio size's own split_failed (mTHP statistics, 6.11 and later), else
 * /proc/vmstat's thp_split_page_failed for a PMD-sized folio; "" when
 * neither can be read.
 */
static void name_split_counter(const struct pc_region *r, char *buf,
			       size_t len)
{
	snprintf(buf, len,
		 "/sys/kernel/mm/transparent_hugepage/hugepages-%zukB/stats/split_failed",
		 r->bk->size / 1024);
	if (pc_counter_read(buf) >= 0)
		return;
	snprintf(buf, len, "thp_split_page_failed");
	if (r->bk->size != 512 * pc_page_size || pc_counter_read(buf) < 0)
		buf[0] = '\0';
}

/* Refused splits since the move began, or -1 without a counter. */
static long long splits_refused(const struct move_watch *w)
{
	long long now;

	if (!w->splits[0] || w->splits0 < 0)
		return -1;
	now = pc_counter_read(w->splits);
	return now < 0 ? -1 : now - w->splits0;
}

static void *move_watch_main(void *arg)
{
	struct move_watch *w = arg;
	struct pollfd pfd = { .fd = w->stop[0], .events = POLLIN };
	long long ms, cpu, refused;

	while (!poll(&pfd, 1, MOVE_WATCH_STEP_MS)) {
		ms = pc_now_ms() - w->t0;
		cpu = thread_system_ms(w->mover) - w->cpu0;
		refused = splits_refused(w);
		if (refused > w->retried)
			pc_timeout("livelock after %lld ms: UFFDIO_MOVE still in the kernel, %lld refused splits of the pinned %s folios meanwhile (a retry loop), %lld ms on a CPU",
				   ms, refused, w->what, cpu);
		if (ms >= MOVE_LIVELOCK_MS && w->cpu0 >= 0 && 2 * cpu >= ms)
			pc_timeout("livelock after %lld ms: UFFDIO_MOVE still in the kernel, %lld ms of them on a CPU",
				   ms, cpu);
	}
	return NULL;
}

static void move_watch_start(struct move_watch *w, const struct pc_region *r)
{
	name_split_counter(r, w->splits, sizeof(w->splits));
	w->splits0 = w->splits[0] ? pc_counter_read(w->splits) : -1;
	w->retried = (long long)(MOVE_RETRIED_SPLITS * (r->len / pc_page_size));
	if (w->retried < MOVE_RETRIED_SPLITS_MIN)
		w->retried = MOVE_RETRIED_SPLITS_MIN;
	w->what = r->bk->name;
	w->mover = (pid_t)syscall(SYS_gettid);
	w->t0 = pc_now_ms();
	w->cpu0 = thread_system_ms(w->mover);
	if (pipe2(w->stop, O_CLOEXEC))
		pc_fail_errno("pipe2 for the move's watch");
	if (pthread_create(&w->tid, NULL, move_watch_main, w))
		pc_fail("pthread_create (the move's watch) failed");
}

static void move_watch_stop(struct move_watch *w)
{
	close(w->stop[1]);
	pthread_join(w->tid, NULL);
	close(w->stop[0]);
}

static size_t move_align(const struct pc_region *r)
{
	return r->bk->size > pc_page_size ? r->bk->size : pc_page_size;
}

static int move_setup(const struct pc_case *c, struct pinned *p,
		      struct move_dst *d)
{
	uint64_t offered;
	int fd;

	pinned_setup(c, p, "UFFDIO_MOVE");
	fd = uffd_open_or_skip(UFFD_FEATURE_MOVE, 0, &offered);
	probe_move_or_skip(fd);
	move_dst_setup(fd, d, p->r.len, move_align(&p->r));
	return fd;
}

static void expect_dst_empty(const struct move_dst *d, const char *when)
{
	size_t n = pages_with(d->mem, d->len, PC_PM_PRESENT);

	if (n)
		pc_fail("%zu of %zu pages showed up at the move's destination %s",
			n, d->len / pc_page_size, when);
}

static void uffd_move_pinned_case(const struct pc_case *c)
{
	static struct pinned p;
	struct move_watch w;
	struct move_dst d;
	long long got;
	int fd;

	fd = move_setup(c, &p, &d);
	move_watch_start(&w, &p.r);
	got = uffd_move(fd, d.mem, p.r.mem, p.r.len);
	move_watch_stop(&w);
	if (got >= 0)
		pc_fail("UFFDIO_MOVE moved %lld of %zu bytes of pinned %s memory: the kernel must refuse pinned folios (EBUSY)",
			got, p.r.len, p.r.bk->name);
	if (got != -EBUSY)
		pc_fail("UFFDIO_MOVE of the pinned pages failed with %s, expected EBUSY",
			strerror((int)-got));
	pc_diag("evidence: UFFDIO_MOVE of the pinned pages: EBUSY (an unpinned scratch page moved)");
	expect_dst_empty(&d, "after the refused move");
	pc_expect_pinned_pages_stayed(&p.r, "a refused UFFDIO_MOVE");
	pc_coherence_round(&p.e, &p.r, p.r.gen, "after the refused UFFDIO_MOVE");
	move_dst_release(&d);
	close(fd);
	pinned_teardown(&p);
	pc_pass();
}

/* The pages at @d are the ones snapped for @r, and @r is now empty. */
static void expect_moved_to(const struct pc_region *r,
			    const struct move_dst *d)
{
	size_t i, n = r->len / pc_page_size;
	uint64_t *now = pc_pagemap_alloc(d->mem, n, 1);

	for (i = 0; i < n; i++) {
		if (now[i] != r->pfn_before[i])
			pc_fail("page %zu at the destination has PFN 0x%llx, the source had 0x%llx",
				i, (unsigned long long)now[i],
				(unsigned long long)r->pfn_before[i]);
	}
	free(now);
	n = pages_with(r->mem, r->len, PC_PM_PRESENT);
	if (n)
		pc_fail("%zu pages still present at the source after the move",
			n);
}

/*
 * Control: the same move once the pin is dropped must succeed; else the
 * EBUSY above proves nothing about the pin.
 */
static void control_uffd_move_unpinned_case(const struct pc_case *c)
{
	static struct pinned p;
	struct move_dst d;
	long long got;
	int fd, err;

	fd = move_setup(c, &p, &d);
	err = pc_engine_unpin(&p.e);
	if (err)
		pc_fail("unpin: %s", p.e.err[0] ? p.e.err : strerror(-err));
	got = uffd_move(fd, d.mem, p.r.mem, p.r.len);
	if (got < 0)
		pc_fail("blind: UFFDIO_MOVE fails with %s even after the pin was dropped, so its EBUSY on pinned pages proves nothing",
			strerror((int)-got));
	if (got != (long long)p.r.len)
		pc_fail("UFFDIO_MOVE of the unpinned pages moved %lld of %zu bytes",
			got, p.r.len);
	expect_moved_to(&p.r, &d);
	pc_diag("evidence: without the pin UFFDIO_MOVE moved all %zu bytes (same PFNs at the destination): the pinned case's EBUSY is the pin's doing",
		p.r.len);
	move_dst_release(&d);
	close(fd);
	pinned_teardown(&p);
	pc_pass();
}

/* ---- mremap ------------------------------------------------------------------------- */

struct remap {
	char *old, *new_mem;
	char *base;		/* the reservation the mapping moved into */
	size_t base_len;
};

/*
 * mremap the pinned range to a fresh address aligned like the backing;
 * the region follows.  0, or -errno from mremap.
 */
static int remap_region(struct pc_region *r, struct remap *m, int flags)
{
	char *to = map_aligned(r->len, move_align(r), PROT_NONE, &m->base,
			       &m->base_len);
	void *got;

	if (!to)
		pc_fail_errno("mmap a reservation for the new address");
	m->old = r->mem;
	got = mremap(r->mem, r->len, r->len,
		     MREMAP_MAYMOVE | MREMAP_FIXED | flags, to);
	if (got == MAP_FAILED)
		return -errno;
	if (got != to)
		pc_fail("mremap returned %p, asked for %p", got, (void *)to);
	m->new_mem = to;
	r->mem = to;
	return 0;
}

static void remap_release(struct remap *m)
{
	munmap(m->base, m->base_len);
}

static void remap_or_skip(struct pc_region *r, struct remap *m, int dontunmap)
{
	int err = remap_region(r, m, dontunmap ? MREMAP_DONTUNMAP : 0);

	if (!err)
		return;
	if (dontunmap && err == -EINVAL)
		pc_skip("not applicable: mremap(MREMAP_DONTUNMAP) of %s memory: EINVAL (older kernels accept private anonymous memory only; none accepts hugetlb or other VM_DONTEXPAND mappings)",
			r->bk->name);
	if (err == -EINVAL && (r->bk->flags & PC_BK_HUGETLB))
		pc_skip("not applicable: mremap of hugetlb memory: EINVAL (kernel without hugetlb mremap, Linux 5.16+)");
	pc_fail("mremap(MREMAP_MAYMOVE|MREMAP_FIXED%s) of the pinned %s range: %s",
		dontunmap ? "|MREMAP_DONTUNMAP" : "", r->bk->name,
		strerror(-err));
}

/* Is any byte of [addr, addr + len) mapped? (mincore: ENOMEM if not) */
static int range_mapped(const char *addr, size_t len)
{
	unsigned char vec[64];
	size_t off, chunk = sizeof(vec) * pc_page_size;

	for (off = 0; off < len; off += chunk) {
		size_t l = len - off < chunk ? len - off : chunk;

		if (!mincore((void *)(addr + off), l, vec))
			return 1;
	}
	return 0;
}

/* What the old range must look like after the move. */
static void expect_old_range(const struct remap *m, size_t len, int dontunmap)
{
	size_t present;

	if (!dontunmap) {
		if (range_mapped(m->old, len))
			pc_fail("the old range is still mapped after mremap without MREMAP_DONTUNMAP");
		pc_diag("evidence: old range unmapped");
		return;
	}
	if (!range_mapped(m->old, len))
		pc_fail("MREMAP_DONTUNMAP unmapped the old range");
	present = pages_with(m->old, len, PC_PM_PRESENT);
	if (present)
		pc_fail("MREMAP_DONTUNMAP left %zu of %zu pages present at the old range (must be empty)",
			present, len / pc_page_size);
	pc_diag("evidence: old range still mapped, 0 of %zu pages present",
		len / pc_page_size);
}

static void mremap_run(const struct pc_case *c, int dontunmap)
{
	static struct pinned p;
	struct remap m;

	pinned_setup(c, &p, "mremap");
	remap_or_skip(&p.r, &m, dontunmap);
	pc_expect_pinned_pages_stayed(&p.r, "mremap");
	pc_diag("evidence: %p -> %p, all %zu pages at the new address have the pinned PFNs",
		(void *)m.old, (void *)m.new_mem, p.r.len / pc_page_size);
	expect_old_range(&m, p.r.len, dontunmap);
	pc_expect_device_sees(&p.e, &p.r, p.r.gen,
			      "device read of the pinned data after mremap");
	pc_region_cpu_write(&p.r, 0, p.r.len, GEN_MOVED);
	expect_coherent_after(&p, GEN_MOVED, "mremap");
	pinned_teardown(&p);
	remap_release(&m);
	pc_pass();
}

static void mremap_move_case(const struct pc_case *c)
{
	mremap_run(c, 0);
}

static void mremap_dontunmap_case(const struct pc_case *c)
{
	mremap_run(c, 1);
}

/* Control: fresh pages at the new address: the loss must be seen. */
static void control_mremap_fresh_case(const struct pc_case *c)
{
	static struct pinned p;
	unsigned int held;
	struct remap m;

	pinned_setup(c, &p, "mremap");
	held = p.r.gen;
	remap_or_skip(&p.r, &m, 0);
	pc_expect_pinned_pages_stayed(&p.r, "mremap");
	pc_move_ignoring_pin(&p.r, -1);
	pc_expect_lost_pin_detected(&p.e, &p.r, held);
	pinned_teardown(&p);
	remap_release(&m);
	pc_pass();
}

/* ---- mprotect ------------------------------------------------------------------------ */

static sigjmp_buf segv_jump;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(segv_jump, 1);
}

/* Pages of [addr, addr + len) whose read raises SIGSEGV. */
static size_t pages_that_fault(const char *addr, size_t len)
{
	struct sigaction sa, old;
	volatile size_t off, n = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old);
	for (off = 0; off < len; off += pc_page_size) {
		if (sigsetjmp(segv_jump, 1)) {
			n++;
			continue;
		}
		(void)*(const volatile char *)(addr + off);
	}
	sigaction(SIGSEGV, &old, NULL);
	return n;
}

/*
 * PROT_NONE (every page must fault a read), the device writes meanwhile,
 * then PROT_READ|PROT_WRITE.  Returns the generation the region holds.
 */
static unsigned int protect_none_then_rw(struct pinned *p)
{
	struct pc_region *r = &p->r;
	unsigned int gen = r->gen;
	size_t n = r->len / pc_page_size, faulted;

	if (mprotect(r->mem, r->len, PROT_NONE))
		pc_fail_errno("mprotect(PROT_NONE) of the pinned range");
	faulted = pages_that_fault(r->mem, r->len);
	if (faulted != n)
		pc_fail("only %zu of %zu pages fault on a read under PROT_NONE",
			faulted, n);
	pc_expect_pinned_pages_stayed(r, "mprotect(PROT_NONE)");
	if (pc_engine_can(p->e.ops, PC_CAP_DEV_WRITE)) {
		pc_dev_write_gen(&p->e, 0, r->len, GEN_DEV_HIDDEN);
		gen = GEN_DEV_HIDDEN;
	}
	if (mprotect(r->mem, r->len, PROT_READ | PROT_WRITE))
		pc_fail_errno("mprotect(PROT_READ|PROT_WRITE) of the pinned range");
	pc_diag("evidence: %zu of %zu pages faulted (SIGSEGV) under PROT_NONE",
		faulted, n);
	return gen;
}

/* The CPU reads @gen, then writes GEN_CPU_AFTER; faults counted. */
static void cpu_read_then_write_counted(struct pinned *p, unsigned int gen)
{
	struct pc_check chk = {
		.what = "CPU read, after PROT_READ|PROT_WRITE, of the device write made under PROT_NONE",
		.r = &p->r, .len = p->r.len, .gen = gen,
		.side = PC_CHECK_CPU, .cpu = p->r.mem,
	};
	struct pc_faults f;
	int counting = !pc_faults_open(&f);

	/* A sampling device wrote its sample only: judge those words. */
	if (gen == GEN_DEV_HIDDEN)
		chk.sample = p->e.sample;

	pc_verify_or_fail(&chk);
	pc_region_cpu_write(&p->r, 0, p->r.len, GEN_CPU_AFTER);
	if (!counting) {
		pc_diag("faults not counted: %s", f.why);
		return;
	}
	pc_diag("faults on the range after PROT_READ|PROT_WRITE (read + write): %zu for %zu pages",
		pc_faults_in(&f, p->r.mem, p->r.len), p->r.len / pc_page_size);
	pc_faults_close(&f);
}

static void mprotect_none_rw_case(const struct pc_case *c)
{
	static struct pinned p;
	unsigned int gen;

	pinned_setup(c, &p, "mprotect");
	gen = protect_none_then_rw(&p);
	cpu_read_then_write_counted(&p, gen);
	expect_coherent_after(&p, GEN_CPU_AFTER, "mprotect PROT_NONE -> RW");
	pinned_teardown(&p);
	pc_pass();
}

/* Control: fresh pages after the mprotect round trip. */
static void control_mprotect_fresh_case(const struct pc_case *c)
{
	static struct pinned p;
	unsigned int held;

	pinned_setup(c, &p, "mprotect");
	held = protect_none_then_rw(&p);
	pc_move_ignoring_pin(&p.r, -1);
	pc_expect_lost_pin_detected(&p.e, &p.r, held);
	pinned_teardown(&p);
	pc_pass();
}

/* ---- the matrix ------------------------------------------------------------------------ */

#define NEED_RW (PC_CAP_PIN_RW | PC_CAP_HELD | PC_CAP_DEV_READ)
#define NEED_RO (PC_CAP_PIN_RO | PC_CAP_HELD | PC_CAP_DEV_READ)

/*
 * A UFFDIO_MOVE case's watchdog, behind the move's own watch (struct
 * move_watch) for a move asleep in the kernel.  The move of at most a PMD
 * of pages takes milliseconds, the whole case at most 263 ms under TCG
 * with two guests on two cores (2026-12-06, 6.12 to 7.3-rc).
 */
#define MOVE_TIMEOUT_S 2

/*
 * pc_add_matrix over the engines with all of @need (never a FOLL_GET
 * one) and the backings with all of @bk_need, none of @bk_refuse; each
 * case's watchdog @timeout_s (0: the binary's).
 */
static void add_matrix_where(pc_case_fn run, const char *name,
			     unsigned int need, unsigned int bk_need,
			     unsigned int bk_refuse, unsigned int timeout_s)
{
	const struct pc_backing *const *bks;
	const struct pc_engine_ops *const *engs;
	size_t nb = pc_backings(&bks), ne = pc_engines(&engs), b, e;

	for (b = 0; b < nb; b++) {
		if ((bks[b]->flags & bk_need) != bk_need ||
		    (bks[b]->flags & bk_refuse))
			continue;
		for (e = 0; e < ne; e++) {
			if (!pc_engine_joins(engs[e], need, PC_CAP_GET_REF))
				continue;
			pc_add_case(run, NULL, bks[b], engs[e], "%s/%s/%s/%s",
				    pc_binary(), name, bks[b]->name,
				    engs[e]->name)->timeout_s = timeout_s;
		}
	}
}

static void add_cases(void)
{
	/* UFFDIO_MOVE moves private anonymous pages only. */
	unsigned int not_anon = PC_BK_HUGETLB | PC_BK_FILE | PC_BK_SHARED;

	pc_faults_hold_sched_hooks();
	add_matrix_where(uffd_wp_sync_case, "uffd-wp-sync", NEED_RW, 0, 0, 0);
	add_matrix_where(uffd_wp_async_case, "uffd-wp-async", NEED_RW, 0, 0, 0);
	add_matrix_where(uffd_wp_pin_ro_case, "uffd-wp-pin-ro", NEED_RO, 0, 0, 0);
	add_matrix_where(control_uffd_wp_fresh_case, "control-uffd-wp-fresh",
			 NEED_RW, 0, 0, 0);
	add_matrix_where(control_uffd_wp_pin_rw_case, "control-uffd-wp-pin-rw",
			 NEED_RO | NEED_RW, 0, 0, 0);
	add_matrix_where(uffd_move_pinned_case, "uffd-move-pinned", NEED_RW,
			 PC_BK_ANON, not_anon, MOVE_TIMEOUT_S);
	add_matrix_where(control_uffd_move_unpinned_case,
			 "control-uffd-move-unpinned", NEED_RW, PC_BK_ANON,
			 not_anon, MOVE_TIMEOUT_S);
	add_matrix_where(mremap_move_case, "mremap-move", NEED_RW, 0, 0, 0);
	add_matrix_where(mremap_dontunmap_case, "mremap-dontunmap", NEED_RW,
			 0, 0, 0);
	add_matrix_where(control_mremap_fresh_case, "control-mremap-fresh",
			 NEED_RW, 0, 0, 0);
	add_matrix_where(mprotect_none_rw_case, "mprotect-none-rw", NEED_RW,
			 0, 0, 0);
	add_matrix_where(control_mprotect_fresh_case, "control-mprotect-fresh",
			 NEED_RW, 0, 0, 0);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "uffd_pinned", add_cases);
}
