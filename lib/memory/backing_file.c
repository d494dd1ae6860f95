// SPDX-License-Identifier: GPL-2.0
/*
 * Page-cache backings: memfd (shmem) and a file in the test directory,
 * each mapped private or shared.  The content goes in with pwrite(), not
 * through the mapping, and the mapping is only read-faulted: its PTEs map
 * the page-cache pages themselves (no private anonymous copy yet).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backing_internal.h"
#include "pattern.h"
#include "sysprobe.h"

/* ENOSPC/EDQUOT in @where: the machine's setup, a SKIP saying what to do. */
static int skip_full(char *why, size_t whylen, const char *what,
		     const char *where)
{
	return bk_skip(why, whylen,
		       "setup: %s: %s (%s is full: free space there%s)", what,
		       strerror(errno), where,
		       strcmp(where, "shmem") ? " or set PINCHECK_TMPDIR to another directory" : "");
}

/*
 * Write generation @gen over the first @len bytes of @fd, a file in
 * @where (a directory, or "shmem" for a memfd).
 */
static int pwrite_pattern(int fd, size_t len, unsigned int gen,
			  const char *where, char *why, size_t whylen)
{
	char *buf = malloc(len);
	size_t off = 0;
	ssize_t n;
	int ret = 0;

	if (!buf)
		return bk_error(why, whylen, "out of memory");
	pc_fill(buf, 0, len, gen);
	while (off < len) {
		n = pwrite(fd, buf + off, len - off, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == ENOSPC || errno == EDQUOT)) {
			ret = skip_full(why, whylen,
					"pwrite of the backing's content", where);
			break;
		}
		if (n <= 0) {
			ret = n < 0 ? bk_errno(why, whylen, "pwrite") :
				      bk_error(why, whylen, "pwrite: no progress");
			break;
		}
		off += n;
	}
	free(buf);
	return ret;
}

/* Every page present, a page-cache page (not anonymous). */
static int check_page_cache_pages(const struct pc_region *r, char *why,
				  size_t whylen)
{
	struct bk_pages p;
	size_t i;
	int ret = bk_pages_read(&p, r->mem, r->len / pc_page_size, why,
				whylen);

	if (ret)
		return ret;
	for (i = 0; i < p.n && !ret; i++) {
		if (!(p.pm[i] & PC_PM_PRESENT))
			ret = bk_error(why, whylen,
				       "page %zu not present after a read fault",
				       i);
		else if (!(p.pm[i] & PC_PM_FILE) ||
			 (p.have_kpf && bk_kpf(&p, i, PC_KPF_ANON)))
			ret = bk_error(why, whylen,
				       "page %zu is anonymous, not the page-cache page",
				       i);
	}
	bk_pages_free(&p);
	return ret;
}

/* Fill r->fd (in @where) with @gen, map it as @bk says, read-fault it. */
static int map_filled_file(const struct pc_backing *bk, struct pc_region *r,
			   unsigned int gen, const char *where, char *why,
			   size_t whylen)
{
	size_t len = BK_SMALL_PAGES * pc_page_size;
	int flags = bk->flags & PC_BK_SHARED ? MAP_SHARED : MAP_PRIVATE;
	char *p;
	int ret = pwrite_pattern(r->fd, len, gen, where, why, whylen);

	if (ret)
		return ret;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, r->fd, 0);
	if (p == MAP_FAILED)
		return bk_errno(why, whylen, "mmap");
	r->map = r->mem = p;
	r->map_len = r->len = len;
	bk_read_fault(r->mem, r->len);
	return check_page_cache_pages(r, why, whylen);
}

int bk_memfd_create(const struct pc_backing *bk, struct pc_region *r,
		    unsigned int gen, char *why, size_t whylen)
{
	char name[64];

	snprintf(name, sizeof(name), "pincheck-%s", bk->name);
	r->fd = memfd_create(name, MFD_CLOEXEC);
	if (r->fd < 0) {
		if (errno == ENOSYS)
			return bk_skip(why, whylen,
				       "memfd_create not supported by this kernel");
		return bk_errno(why, whylen, "memfd_create");
	}
	return map_filled_file(bk, r, gen, "shmem", why, whylen);
}

int bk_file_create(const struct pc_backing *bk, struct pc_region *r,
		   unsigned int gen, char *why, size_t whylen)
{
	const char *dir = pc_test_dir();

	if (snprintf(r->path, sizeof(r->path), "%s/pincheck-%s-XXXXXX", dir,
		     bk->name) >= (int)sizeof(r->path)) {
		r->path[0] = '\0';
		return bk_error(why, whylen, "test directory path too long: %s",
				dir);
	}
	r->fd = mkostemp(r->path, O_CLOEXEC);
	if (r->fd < 0) {
		r->path[0] = '\0';
		if (errno == ENOSPC || errno == EDQUOT)
			return skip_full(why, whylen, "create a file", dir);
		return bk_error(why, whylen, "create a file in %s: %s", dir,
				strerror(errno));
	}
	/* Nothing left behind by a case that skips or dies: the fd is all. */
	unlink(r->path);
	r->path[0] = '\0';
	return map_filled_file(bk, r, gen, dir, why, whylen);
}
