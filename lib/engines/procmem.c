// SPDX-License-Identifier: GPL-2.0
/*
 * procmem: the access a debugger makes through /proc/<pid>/mem.  The
 * kernel's mem_rw() goes through access_remote_vm(): a short-term GUP of
 * each page with FOLL_FORCE (and FOLL_WRITE for a write), a copy, and the
 * reference dropped before the call returns.  FOLL_FORCE lets it read a
 * PROT_NONE range and write a PROT_READ one: a forced write into a private
 * mapping must break COW (the data lands in a private anonymous copy),
 * never in the page-cache page or the zero page the mapping showed.
 *
 *   dev_read:  pread() of /proc/self/mem at the range's address
 *   dev_write: pwrite() of /proc/self/mem at the range's address
 *
 * Nothing is held between calls: pin() only records the range, every
 * transfer looks the pages up again in the current mapping.  The engine
 * carries PC_CAP_FORCED, so only matrices that ask for forced access
 * include it (see pc_engine_joins()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine.h"
#include "sysprobe.h"

#define PROC_MEM "/proc/self/mem"
#define PROBE_WORD 0x70726f636d656d21ULL	/* "procmem!" */

struct procmem_priv {
	int fd;
};

/* pread/pwrite the whole of [addr, addr + len); 0 or -errno. */
static int mem_io(int fd, int write, void *buf, size_t len, uintptr_t addr)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		if (write)
			n = pwrite(fd, (char *)buf + done, len - done,
				   (off_t)(addr + done));
		else
			n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(addr + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -EIO;
		done += n;
	}
	return 0;
}

/* A forced write into a PROT_READ private page; NULL when it worked. */
static const char *probe_forced_write(int fd)
{
	static char why[PC_ENGINE_ERR_MAX + 64];
	uint64_t word = PROBE_WORD;
	uint64_t *page;
	int rc;

	why[0] = '\0';
	page = mmap(NULL, pc_page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	if (page == MAP_FAILED)
		return "procmem: cannot map a probe page";
	rc = mem_io(fd, 1, &word, sizeof(word), (uintptr_t)page);
	if (rc)
		snprintf(why, sizeof(why),
			 "procmem: a forced write through " PROC_MEM " into a PROT_READ page fails (%s): the kernel forbids FOLL_FORCE there (boot parameter proc_mem.force_override=never or CONFIG_PROC_MEM_NO_FORCE); boot without it",
			 strerror(-rc));
	else if (*page != PROBE_WORD)
		snprintf(why, sizeof(why),
			 "procmem: a forced write through " PROC_MEM " succeeded but the mapping does not show it");
	munmap(page, pc_page_size);
	return why[0] ? why : NULL;
}

static const char *procmem_probe(void)
{
	static char why[240];
	const char *forced;
	int fd = open(PROC_MEM, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(why, sizeof(why),
			 "procmem: cannot open " PROC_MEM " read-write (%s): needs procfs mounted on /proc",
			 strerror(errno));
		return why;
	}
	forced = probe_forced_write(fd);
	close(fd);
	return forced;
}

static int procmem_open(struct pc_engine *e)
{
	struct procmem_priv *p = calloc(1, sizeof(*p));

	if (!p)
		return pc_engine_err(e, -ENOMEM, "procmem: out of memory");
	p->fd = open(PROC_MEM, O_RDWR | O_CLOEXEC);
	if (p->fd < 0) {
		int rc = -errno;

		free(p);
		return pc_engine_err(e, rc, "procmem: open " PROC_MEM ": %s",
				     strerror(-rc));
	}
	e->priv = p;
	return 0;
}

static int procmem_pin(struct pc_engine *e, void *addr, size_t len,
		       unsigned int flags)
{
	(void)e;	/* nothing is held: each transfer is its own GUP */
	(void)addr;
	(void)len;
	(void)flags;
	return 0;
}

static int procmem_err(struct pc_engine *e, int rc, const char *op,
		       size_t off, size_t len)
{
	return pc_engine_err(e, rc, "procmem: %s of " PROC_MEM " [0x%zx, 0x%zx): %s",
			     op, off, off + len,
			     rc == -EIO ? "short transfer or page not accessible" :
			     strerror(-rc));
}

static int procmem_dev_read(struct pc_engine *e, size_t off, size_t len,
			    void *out)
{
	struct procmem_priv *p = e->priv;
	int rc = mem_io(p->fd, 0, out, len, (uintptr_t)e->addr + off);

	return rc ? procmem_err(e, rc, "pread", off, len) : 0;
}

static int procmem_dev_write(struct pc_engine *e, size_t off, size_t len,
			     const void *data)
{
	struct procmem_priv *p = e->priv;
	int rc = mem_io(p->fd, 1, (void *)data, len, (uintptr_t)e->addr + off);

	return rc ? procmem_err(e, rc, "pwrite", off, len) : 0;
}

static int procmem_unpin(struct pc_engine *e)
{
	(void)e;
	return 0;
}

static void procmem_close(struct pc_engine *e)
{
	struct procmem_priv *p = e->priv;

	if (!p)
		return;
	close(p->fd);
	free(p);
}

const struct pc_engine_ops pc_engine_procmem = {
	.name = "procmem",
	.caps = PC_CAP_DEV_READ | PC_CAP_DEV_WRITE | PC_CAP_PIN_RO |
		PC_CAP_PIN_RW | PC_CAP_GET_REF | PC_CAP_FORCED,
	.probe = procmem_probe,
	.open = procmem_open,
	.pin = procmem_pin,
	.dev_read = procmem_dev_read,
	.dev_write = procmem_dev_write,
	.unpin = procmem_unpin,
	.close = procmem_close,
};
