// SPDX-License-Identifier: GPL-2.0
/*
 * foll_force: FOLL_FORCE|FOLL_WRITE into read-only private mappings (S14).
 *
 * A forced write (a debugger's pwrite() of /proc/<pid>/mem: the procmem
 * engine) into a PROT_READ MAP_PRIVATE mapping must break COW: the data
 * lands in a private anonymous copy, never in the page-cache page, the
 * shmem page or the (huge) zero page the mapping showed.  The Dirty COW
 * family raced exactly that rule:
 *
 *   dirtycow/<file-private|memfd-private>     CVE-2016-5195
 *	a thread writes through /proc/self/mem while another zaps the range
 *	with MADV_DONTNEED and read-faults it again; the file (memfd) read
 *	through its fd must never change
 *   huge-dirtycow/<huge-zeropage|thp-pmd>     CVE-2017-1000405
 *	the same on a MADV_HUGEPAGE range whose read faults map the huge zero
 *	page; a fresh read fault elsewhere must keep seeing zeros
 *   dirtycow-uffd-minor/memfd-private         CVE-2022-2590
 *	the same on shmem with the range registered for userfaultfd minor
 *	faults: the read fault after the zap is resolved by UFFDIO_CONTINUE,
 *	which (9ae0f87d009c, 5.16) mapped the shmem page R/O but dirty
 *
 * Evidence for a PASS: forced writes that succeeded, DONTNEED rounds, and
 * forced writes whose data the private mapping then showed (the write
 * landed in the COW copy).  None landed: SKIP with the counts.
 *
 * The pinned side (S14's test idea): a PROT_READ MAP_PRIVATE range pinned
 * by each engine that holds its pin:
 *
 *   ro-vma-rw-pin   a writable pin: the kernel refuses it (EFAULT/EPERM,
 *		     its policy: FOLL_WRITE without FOLL_FORCE needs VM_WRITE)
 *		     or pins private anonymous copies, into which a device
 *		     write must then be visible through the R/O mapping,
 *		     with the file (or the zero page) unchanged
 *   ro-vma-ro-pin   a R/O pin (RDMA before b40656aa7d55, v6.2, took R/O
 *		     MRs as FOLL_WRITE|FOLL_FORCE): refused only on a shared
 *		     mapping, where a forced write needs a COW mapping; else
 *		     the device must see what the CPU sees, before and after
 *		     a write() to the file
 *
 * Controls: control-file-write (a plain write() to the file during the
 * race: the file check must report it), control-zero-write (the zero
 * check on a range the CPU wrote: must report it) and control-remap-rw-pin
 * (a fresh page mapped over a range pinned R/W and made PROT_READ: the
 * device write must be reported missing).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pincheck.h"

#define RACE_MS		1500	/* each Dirty COW race */
#define CONTROL_MS	400
#define WATCH_MS	25	/* the file is checked this often meanwhile */
#define FORCED_LEN	64	/* bytes each forced write puts at offset 0 */

#define PC_GEN_FORCED	8	/* the forced write's data */

#define FIX_DIRTYCOW \
	"19be0eaffa3a (\"mm: remove gup_flags FOLL_WRITE games from __get_user_pages()\", v4.9, CVE-2016-5195)"
#define FIX_HUGE_DIRTYCOW \
	"a8f97366452e (\"mm, thp: Do not make page table dirty unconditionally in touch_p[mu]d()\", v4.15, CVE-2017-1000405)"
#define FIX_SHMEM_DIRTYCOW \
	"5535be309971 (\"mm/gup: fix FOLL_FORCE COW security issue and remove FOLL_COW\", v6.0, CVE-2022-2590)"

/* ---- the Dirty COW family -------------------------------------------- */

enum dc_victim { VICTIM_FILE, VICTIM_HUGE_ZERO };

struct dc_scenario {
	const char *name;
	const char *backings;
	enum dc_victim victim;
	int uffd_minor;		/* resolve the refaults by UFFDIO_CONTINUE */
	int control;		/* corrupt the victim on purpose */
	const char *fix;
};

static const struct dc_scenario dc_scenarios[] = {
	{ "dirtycow", "file-private memfd-private", VICTIM_FILE, 0, 0,
	  FIX_DIRTYCOW },
	{ "dirtycow-uffd-minor", "memfd-private", VICTIM_FILE, 1, 0,
	  FIX_SHMEM_DIRTYCOW },
	{ "huge-dirtycow", "huge-zeropage thp-pmd", VICTIM_HUGE_ZERO, 0, 0,
	  FIX_HUGE_DIRTYCOW },
	{ "control-file-write", "file-private memfd-private", VICTIM_FILE, 0,
	  1, NULL },
	{ "control-zero-write", "huge-zeropage", VICTIM_HUGE_ZERO, 0, 1,
	  NULL },
};

struct race {
	struct pc_engine *e;
	char *target;		/* the R/O private mapping */
	size_t zap_len;		/* what MADV_DONTNEED drops each round */
	int uffd;		/* -1 without userfaultfd */
	int stop;		/* writer and discarder */
	int stop_uffd;		/* the minor-fault handler, last */
	/* the writer's */
	unsigned long writes_ok, writes_failed, landed, recowed;
	char write_err[PC_ENGINE_ERR_MAX + 32];
	unsigned long failed_present;	/* a failure with the page mapped */
	/* the discarder's */
	unsigned long discards;
	/* the minor-fault handler's */
	unsigned long continues;
};

static int race_stopping(int *flag)
{
	return __atomic_load_n(flag, __ATOMIC_RELAXED);
}

static int page_present(const struct race *rc)
{
	return !!(pc_pagemap(rc->target) & PC_PM_PRESENT);
}

/* Why the first forced write failed, and whether the page was mapped. */
static void note_failed_write(struct race *rc)
{
	snprintf(rc->write_err, sizeof(rc->write_err), "%s (page %s)",
		 rc->e->err, page_present(rc) ? "mapped" : "not mapped");
}

/* Forced writes of PC_GEN_FORCED at offset 0, as fast as they go. */
static void *forced_writer(void *arg)
{
	struct race *rc = arg;
	uint64_t data[FORCED_LEN / 8];
	unsigned long seen = 0, now;
	int fresh;

	pc_fill(data, 0, sizeof(data), PC_GEN_FORCED);
	while (!race_stopping(&rc->stop)) {
		if (pc_engine_dev_write(rc->e, 0, sizeof(data), data)) {
			if (!rc->writes_failed++)
				note_failed_write(rc);
			else if (!rc->failed_present && page_present(rc))
				rc->failed_present = rc->writes_failed;
			continue;
		}
		rc->writes_ok++;
		now = __atomic_load_n(&rc->discards, __ATOMIC_RELAXED);
		fresh = now != seen;
		seen = now;
		if (*(volatile uint64_t *)rc->target != data[0])
			continue;
		rc->landed++;
		rc->recowed += fresh;
	}
	return NULL;
}

/* Zap the private copy and read-fault the range again, in a loop. */
static void *discarder(void *arg)
{
	struct race *rc = arg;

	while (!race_stopping(&rc->stop)) {
		madvise(rc->target, rc->zap_len, MADV_DONTNEED);
		__atomic_add_fetch(&rc->discards, 1, __ATOMIC_RELAXED);
		(void)*(volatile char *)rc->target;
		/* On one CPU, let the writer find the refaulted page. */
		sched_yield();
	}
	return NULL;
}

/* Resolve one minor fault by mapping the shmem page (UFFDIO_CONTINUE). */
static void resolve_minor_fault(struct race *rc, const struct uffd_msg *msg)
{
	uintptr_t page = msg->arg.pagefault.address & ~(pc_page_size - 1);
	struct uffdio_continue cont = {
		.range = { .start = page, .len = pc_page_size },
	};
	struct uffdio_range wake = { .start = page, .len = pc_page_size };

	if (!ioctl(rc->uffd, UFFDIO_CONTINUE, &cont)) {
		rc->continues++;
		return;
	}
	if (errno == EEXIST)
		ioctl(rc->uffd, UFFDIO_WAKE, &wake);
}

static void *minor_fault_handler(void *arg)
{
	struct race *rc = arg;
	struct pollfd pfd = { .fd = rc->uffd, .events = POLLIN };
	struct uffd_msg msg;

	while (!race_stopping(&rc->stop_uffd)) {
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if (read(rc->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event == UFFD_EVENT_PAGEFAULT)
			resolve_minor_fault(rc, &msg);
	}
	return NULL;
}

/* A userfaultfd with minor faults on shmem, or skip naming the feature. */
static int open_minor_uffd(void)
{
	struct uffdio_api api = {
		.api = UFFD_API, .features = UFFD_FEATURE_MINOR_SHMEM,
	};
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && errno == EPERM)
		fd = syscall(__NR_userfaultfd,
			     O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0 && errno == ENOSYS)
		pc_skip("no userfaultfd: kernel built without CONFIG_USERFAULTFD");
	if (fd < 0)
		pc_skip("userfaultfd() refused (%s): allow it with sysctl vm.unprivileged_userfaultfd=1 or run as root",
			strerror(errno));
	if (ioctl(fd, UFFDIO_API, &api) ||
	    !(api.features & UFFD_FEATURE_MINOR_SHMEM))
		pc_skip("no userfaultfd minor faults on shmem (UFFD_FEATURE_MINOR_SHMEM, Linux 5.14+): the CVE-2022-2590 path does not exist here");
	return fd;
}

static void register_minor(int uffd, struct pc_region *r)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)r->mem, .len = pc_page_size },
		.mode = UFFDIO_REGISTER_MODE_MINOR,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		pc_skip("UFFDIO_REGISTER_MODE_MINOR on a private memfd mapping refused (%s): kernel without shmem minor faults",
			strerror(errno));
}

/* ---- what must never change ------------------------------------------ */

/* Bad bytes in the file behind @r, read through its fd (not the mapping). */
static size_t file_changed(struct pc_region *r, unsigned int gen)
{
	struct pc_check chk = {
		.what = "file content read through the fd",
		.len = r->len, .gen = gen, .side = PC_CHECK_CPU,
	};
	char *buf = pc_xmalloc(r->len);
	ssize_t n = pread(r->fd, buf, r->len, 0);
	size_t bad;

	if (n != (ssize_t)r->len)
		pc_fail("pread of the file: %s",
			n < 0 ? strerror(errno) : "short read");
	chk.cpu = buf;
	bad = pc_verify(&chk);
	free(buf);
	return bad;
}

/*
 * Read-fault a fresh MADV_HUGEPAGE range (@cpu_writes: write it first, the
 * control) and count the bytes that are not zero: the huge zero page
 * behind it must still hold zeros.
 */
static size_t huge_zero_changed(size_t pmd, int cpu_writes)
{
	struct pc_check chk = {
		.what = "fresh read fault of a MADV_HUGEPAGE range (the huge zero page)",
		.len = pmd, .gen = PC_GEN_ZERO, .side = PC_CHECK_CPU,
	};
	char *map = mmap(NULL, 2 * pmd, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *probe;
	size_t bad;

	if (map == MAP_FAILED)
		pc_fail_errno("mmap of a probe range");
	probe = (char *)pc_align_up((size_t)map, pmd);
	if (madvise(probe, pmd, MADV_HUGEPAGE))
		pc_fail_errno("madvise(MADV_HUGEPAGE) on the probe");
	if (cpu_writes)
		pc_fill(probe, 0, FORCED_LEN, PC_GEN_OTHER);
	else if (!pc_zero_page_name(pc_pfn(probe), NULL) &&
		 pc_pfn_readable() && pc_pfn(probe))
		pc_diag("probe read fault did not map a zero page (PFN 0x%llx)",
			(unsigned long long)pc_pfn(probe));
	chk.cpu = probe;
	bad = pc_verify(&chk);
	munmap(map, 2 * pmd);
	return bad;
}

static size_t victim_changed(const struct dc_scenario *s, struct pc_region *r,
			     int corrupted)
{
	if (s->victim == VICTIM_FILE)
		return file_changed(r, r->gen);
	return huge_zero_changed(r->bk->size, corrupted);
}

/* The control's deliberate loss: what the check must then report. */
static void corrupt_victim(const struct dc_scenario *s, struct pc_region *r)
{
	char data[FORCED_LEN];

	if (s->victim != VICTIM_FILE)
		return;		/* huge_zero_changed() writes its probe */
	pc_fill(data, 0, sizeof(data), PC_GEN_OTHER);
	if (pwrite(r->fd, data, sizeof(data), 0) != (ssize_t)sizeof(data))
		pc_fail_errno("plain pwrite() into the file");
}

/* ---- the race ---------------------------------------------------------- */

static void race_start(struct race *rc, pthread_t th[3])
{
	if (pthread_create(&th[0], NULL, forced_writer, rc) ||
	    pthread_create(&th[1], NULL, discarder, rc))
		pc_fail("pthread_create failed");
	if (rc->uffd >= 0 &&
	    pthread_create(&th[2], NULL, minor_fault_handler, rc))
		pc_fail("pthread_create failed");
}

static void race_stop(struct race *rc, pthread_t th[3])
{
	__atomic_store_n(&rc->stop, 1, __ATOMIC_RELAXED);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	__atomic_store_n(&rc->stop_uffd, 1, __ATOMIC_RELAXED);
	if (rc->uffd >= 0)
		pthread_join(th[2], NULL);
}

/* Run the race for @ms, watching the victim; returns its bad bytes. */
static size_t race_watch(const struct dc_scenario *s, struct race *rc,
			 struct pc_region *r, long ms)
{
	long long start = pc_now_ms(), now;
	int corrupted = 0;
	size_t bad = 0;
	pthread_t th[3];

	race_start(rc, th);
	while (!bad && (now = pc_now_ms()) - start < ms) {
		pc_sleep_ms(WATCH_MS);
		if (s->control && !corrupted && now - start >= ms / 2) {
			corrupt_victim(s, r);
			corrupted = 1;
		}
		bad = victim_changed(s, r, corrupted);
	}
	race_stop(rc, th);
	if (!bad)
		bad = victim_changed(s, r, corrupted);
	return bad;
}

static void race_report(const struct race *rc)
{
	pc_diag("%lu forced writes succeeded (%lu failed); %lu landed in a private copy, %lu of them the first after a MADV_DONTNEED (COW broken again); %lu DONTNEED rounds",
		rc->writes_ok, rc->writes_failed, rc->landed, rc->recowed,
		rc->discards);
	if (rc->uffd >= 0)
		pc_diag("%lu minor faults resolved by UFFDIO_CONTINUE",
			rc->continues);
	if (rc->writes_failed)
		pc_diag("first failed forced write: %s", rc->write_err);
	if (rc->failed_present)
		pc_diag("failed forced write #%lu found the page mapped",
			rc->failed_present);
}

/*
 * Before the race: one forced write with the page mapped, alone.  When the
 * kernel cannot take that COW fault in a range registered for minor
 * faults, the race has nothing to race with.
 */
static void expect_forced_write_works(struct race *rc)
{
	uint64_t data[FORCED_LEN / 8];
	int mapped = page_present(rc);

	pc_fill(data, 0, sizeof(data), PC_GEN_FORCED);
	if (pc_engine_dev_write(rc->e, 0, sizeof(data), data))
		pc_skip("a forced write into the PROT_READ range registered for userfaultfd minor faults fails even alone (page %s before it): %s",
			mapped ? "mapped" : "not mapped", rc->e->err);
	if (*(volatile uint64_t *)rc->target != data[0])
		pc_fail("a forced write succeeded but the private mapping does not show it");
}

/* Map the region R/O (and register it for minor faults) for the race. */
static void race_setup(const struct dc_scenario *s, struct pc_engine *e,
		       struct pc_region *r, struct race *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->e = e;
	rc->target = r->mem;
	rc->zap_len = s->victim == VICTIM_HUGE_ZERO ? r->bk->size : pc_page_size;
	rc->uffd = -1;
	if (s->victim == VICTIM_HUGE_ZERO && !pc_huge_zero_pfn(r->bk->size))
		pc_skip("no huge zero page here: a MADV_HUGEPAGE read fault maps none (THP off, transparent_hugepage/use_zero_page 0, or the kernel forbids zero pages)");
	if (s->uffd_minor) {
		rc->uffd = open_minor_uffd();
		register_minor(rc->uffd, r);
	}
	if (mprotect(r->mem, r->len, PROT_READ))
		pc_fail_errno("mprotect(PROT_READ)");
	if (pc_engine_pin(e, r->mem, r->len, PC_PIN_RW))
		pc_fail("%s", e->err);
	if (s->uffd_minor)
		expect_forced_write_works(rc);
}

static void dirtycow_case(const struct pc_case *c)
{
	const struct dc_scenario *s = c->scenario;
	struct pc_engine e;
	struct pc_region r;
	struct race rc;
	size_t bad;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	race_setup(s, &e, &r, &rc);
	bad = race_watch(s, &rc, &r, s->control ? CONTROL_MS : RACE_MS);
	race_report(&rc);
	if (s->control) {
		if (!bad)
			pc_fail("check is blind: the victim was changed on purpose and the check saw nothing");
		pc_diag("the deliberate change was reported as it must be");
		pc_pass();
	}
	if (bad)
		pc_fail("a forced write into the PROT_READ private mapping reached %s (%zu bad bytes): known bug, fixed by %s",
			s->victim == VICTIM_FILE ? "the file" : "the huge zero page",
			bad, s->fix);
	if (!rc.recowed)
		pc_skip("no event: the race never ran: 0 of %lu forced writes broke COW again after a MADV_DONTNEED (%lu landed, %lu DONTNEED rounds)",
			rc.writes_ok, rc.landed, rc.discards);
	if (rc.uffd >= 0 && !rc.continues)
		pc_skip("no event: the race never ran: no minor fault was resolved by UFFDIO_CONTINUE (%lu forced writes broke COW again)",
			rc.recowed);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* ---- the pinned side ---------------------------------------------------- */

struct pin_scenario {
	const char *name;
	const char *backings;
	unsigned int pin;
	int control;
};

static const struct pin_scenario pin_scenarios[] = {
	{ "ro-vma-rw-pin", "file-private memfd-private zeropage", PC_PIN_RW, 0 },
	{ "ro-vma-ro-pin", "file-private memfd-private memfd-shared",
	  PC_PIN_RO, 0 },
	{ "control-remap-rw-pin", "file-private", PC_PIN_RW, 1 },
};

/* The small zero page still reads zeros through a fresh read fault. */
static size_t zero_page_changed(void)
{
	struct pc_check chk = {
		.what = "fresh read fault of an anonymous page (the shared zero page)",
		.len = pc_page_size, .gen = PC_GEN_ZERO, .side = PC_CHECK_CPU,
	};
	char *p = mmap(NULL, pc_page_size, PROT_READ,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t bad;

	if (p == MAP_FAILED)
		pc_fail_errno("mmap of a probe page");
	chk.cpu = p;
	bad = pc_verify(&chk);
	munmap(p, pc_page_size);
	return bad;
}

/* The file (or the zero page) behind @r holds what it held at creation. */
static void expect_backing_unchanged(struct pc_region *r, unsigned int gen)
{
	if (r->fd >= 0 && file_changed(r, gen))
		pc_fail("%s", pc_mismatch_summary());
	if (r->fd < 0 && zero_page_changed())
		pc_fail("%s", pc_mismatch_summary());
}

/* Page @i's PFN now, and whether it is a private anonymous page. */
static int page_is_private_copy(const struct pc_region *r, size_t i,
				uint64_t *pfn)
{
	uint64_t flags;

	*pfn = pc_pfn(r->mem + i * pc_page_size);
	if (!*pfn || pc_zero_page_name(*pfn, NULL))
		return 0;
	if (pc_kpageflags(*pfn, &flags))
		return -1;
	return flags >> PC_KPF_ANON & 1;
}

/* After a writable pin: every page must be a private anonymous copy. */
static void expect_private_copies(const struct pc_region *r, const char *eng)
{
	uint64_t pfn;
	size_t i;

	if (!pc_pfn_readable()) {
		pc_diag("PFNs unreadable: cannot confirm the private copies");
		return;
	}
	for (i = 0; i < r->len / pc_page_size; i++) {
		int anon = page_is_private_copy(r, i, &pfn);

		if (anon == 1 && pfn != r->pfn_before[i])
			continue;
		if (anon < 0)
			pc_fail("kpageflags of PFN 0x%llx unreadable",
				(unsigned long long)pfn);
		pc_fail("page %zu: after the writable %s pin the PROT_READ mapping still shows PFN 0x%llx (%s, was 0x%llx): the pin holds the shared page, a device write would reach it",
			i, eng, (unsigned long long)pfn,
			pc_zero_page_name(pfn, NULL) ?: "not a private anonymous page",
			(unsigned long long)r->pfn_before[i]);
	}
	pc_diag("the pin broke COW: every page of the PROT_READ mapping is a private anonymous copy (PFNs changed)");
}

/* A refused pin: only EFAULT/EPERM are a policy; nothing may have moved. */
static void pass_refused_pin(struct pc_engine *e, struct pc_region *r,
			     int rc, const char *policy)
{
	if (rc != -EFAULT && rc != -EPERM)
		pc_fail("pin of a PROT_READ %s mapping: %s (expected success or EFAULT/EPERM)",
			r->bk->name, e->err);
	expect_backing_unchanged(r, r->gen);
	pc_diag("kernel policy: %s refused (%s): %s", e->ops->name,
		strerror(-rc), policy);
	pc_engine_close(e);
	pc_region_destroy(r);
	pc_pass();
}

static void rw_pin_case(struct pc_engine *e, struct pc_region *r)
{
	int rc = pc_engine_pin(e, r->mem, r->len, PC_PIN_RW);

	if (rc)
		pass_refused_pin(e, r, rc,
				 "a writable pin without FOLL_FORCE needs a writable VMA");
	expect_private_copies(r, e->ops->name);
	pc_device_write_then_cpu_sees(e, r, PC_GEN_DEVICE,
				      "CPU read through the PROT_READ mapping of a device write into the pinned copy");
	expect_backing_unchanged(r, r->gen);
}

/* The generation the CPU's view of @r holds (all words must agree). */
static unsigned int cpu_generation(struct pc_region *r)
{
	struct pc_check chk = {
		.what = "CPU read through the PROT_READ mapping", .r = r,
		.len = r->len, .side = PC_CHECK_CPU, .cpu = r->mem,
	};
	size_t off;

	if (pc_decode(*(uint64_t *)r->mem, &chk.gen, &off) < 0)
		pc_fail("CPU sees foreign data in the PROT_READ mapping");
	pc_verify_or_fail(&chk);
	return chk.gen;
}

/* A plain write() of generation @gen over the whole file. */
static void file_rewrite(struct pc_region *r, unsigned int gen)
{
	char *buf = pc_xmalloc(r->len);

	pc_fill(buf, 0, r->len, gen);
	if (pwrite(r->fd, buf, r->len, 0) != (ssize_t)r->len)
		pc_fail_errno("plain pwrite() of the whole file");
	free(buf);
}

/* Pages of @r that are now private anonymous copies (PFN changed). */
static size_t count_private_copies(const struct pc_region *r)
{
	size_t i, n = 0;
	uint64_t pfn;

	for (i = 0; i < r->len / pc_page_size; i++)
		if (page_is_private_copy(r, i, &pfn) == 1 &&
		    pfn != r->pfn_before[i])
			n++;
	return n;
}

/*
 * What the CPU's view after the write() says the pin took must agree with
 * the PFNs: old data means private copies (PFNs changed at the pin), new
 * data means the page-cache pages the mapping showed.
 */
static void expect_view_matches_pfns(struct pc_region *r, unsigned int now)
{
	size_t pages = r->len / pc_page_size, copies;

	if (!pc_pfn_readable())
		return;
	copies = count_private_copies(r);
	pc_diag("%zu of %zu pages are private anonymous copies (PFN changed at the pin)",
		copies, pages);
	if (now == r->gen && copies != pages)
		pc_fail("the mapping ignores the write() to the file, yet only %zu of %zu pages are private copies",
			copies, pages);
	if (now != r->gen && copies)
		pc_fail("the mapping shows the write() to the file, yet %zu of %zu pages are private copies",
			copies, pages);
}

static void ro_pin_case(struct pc_engine *e, struct pc_region *r)
{
	int rc = pc_engine_pin(e, r->mem, r->len, PC_PIN_RO);
	unsigned int now;

	if (rc && (r->bk->flags & PC_BK_SHARED))
		pass_refused_pin(e, r, rc,
				 "the engine pins R/O as a forced write (FOLL_WRITE|FOLL_FORCE, RDMA before b40656aa7d55, v6.2), which needs a COW mapping");
	if (rc)
		pc_fail("R/O pin of a PROT_READ private mapping: %s", e->err);
	pc_expect_device_sees(e, r, r->gen, "device read right after the R/O pin");
	file_rewrite(r, PC_GEN_PARENT);
	now = cpu_generation(r);
	pc_diag("after a write() to the file the mapping shows gen %u (%s)", now,
		now == r->gen ? "a private copy" : "the page-cache page");
	expect_view_matches_pfns(r, now);
	pc_expect_device_sees(e, r, now,
			      "device read after a write() to the file (must match the CPU)");
}

static void control_remap_case(struct pc_engine *e, struct pc_region *r)
{
	struct pc_check chk = {
		.what = "CPU read of a device write after the pinned range was replaced",
		.r = r, .len = r->len, .gen = PC_GEN_DEVICE,
		.side = PC_CHECK_CPU, .cpu = r->mem,
	};

	if (mprotect(r->mem, r->len, PROT_READ | PROT_WRITE))
		pc_fail_errno("mprotect(PROT_READ | PROT_WRITE)");
	pc_pin_region_or_skip(e, r, PC_PIN_RW);
	pc_move_ignoring_pin(r, -1);
	if (mprotect(r->mem, r->len, PROT_READ))
		pc_fail_errno("mprotect(PROT_READ)");
	pc_dev_write_gen(e, 0, r->len, PC_GEN_DEVICE);
	chk.sample = e->sample;
	if (!pc_verify(&chk))
		pc_fail("check is blind: the device wrote into pages the mapping no longer shows, yet the CPU read its data");
	pc_diag("the lost device write was reported as it must be");
}

static void pinned_case(const struct pc_case *c)
{
	const struct pin_scenario *s = c->scenario;
	struct pc_engine e;
	struct pc_region r;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	if (mprotect(r.mem, r.len, PROT_READ))
		pc_fail_errno("mprotect(PROT_READ)");
	pc_region_snap(&r, "the pin");
	if (s->control)
		control_remap_case(&e, &r);
	else if (s->pin == PC_PIN_RW)
		rw_pin_case(&e, &r);
	else
		ro_pin_case(&e, &r);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

static void add_cases(void)
{
	unsigned int held = PC_CAP_HELD, need;
	size_t i;

	/* every CPU: the FOLL_FORCE write against madvise on another CPU */
	pc_cases_race_across_cpus();

	/* 7 cases: S14's pins of PROT_READ ranges */
	pc_slow_engine_backings = "*";
	pc_gen_name(PC_GEN_INIT, "file content before the race or pin");
	pc_gen_name(PC_GEN_FORCED, "forced write through /proc/self/mem");
	pc_gen_name(PC_GEN_OTHER, "plain CPU write (control)");
	pc_gen_name(PC_GEN_DEVICE, "device write into the pinned range");
	pc_gen_name(PC_GEN_PARENT, "plain write() to the file after the pin");
	for (i = 0; i < PC_ARRAY_SIZE(dc_scenarios); i++)
		pc_add_matrix_on(dirtycow_case, &dc_scenarios[i],
				 dc_scenarios[i].name, dc_scenarios[i].backings,
				 PC_CAP_FORCED | PC_CAP_DEV_WRITE, 0, 0);
	for (i = 0; i < PC_ARRAY_SIZE(pin_scenarios); i++) {
		const struct pin_scenario *s = &pin_scenarios[i];

		if (s->control)
			need = held | PC_CAP_PIN_RW | PC_CAP_DEV_WRITE;
		else if (s->pin == PC_PIN_RW)
			need = held | PC_CAP_PIN_RW;
		else
			need = held | PC_CAP_PIN_RO | PC_CAP_DEV_READ;
		pc_add_matrix_on(pinned_case, s, s->name, s->backings, need,
				 PC_CAP_GET_REF, 0);
	}
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "foll_force", add_cases);
}
