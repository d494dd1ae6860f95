// SPDX-License-Identifier: GPL-2.0
/*
 * O_DIRECT: a direct read or write pins the user pages only while the I/O
 * runs (FOLL_PIN on current kernels, FOLL_GET on old ones) and the block
 * layer DMAs straight to or from them.  There is no pin between I/Os:
 * pin() only records and checks the range, and every dev_read/dev_write
 * looks the pages up again in the current mapping.
 *
 * The "device" is a scratch file in pc_test_dir(), unlinked at once and
 * opened twice, buffered and O_DIRECT:
 *
 *   dev_write: data -> file (buffered pwrite + fdatasync), then an
 *              O_DIRECT pread from the file into the pinned range
 *   dev_read:  O_DIRECT pwrite of the pinned range into the file, then a
 *              buffered pread (the direct write invalidated the page cache)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "engine.h"
#include "sysprobe.h"

#define DEFAULT_DIO_ALIGN 512
#define TMPFS_MAGIC_NR 0x01021994
#define RAMFS_MAGIC_NR 0x858458f6

struct odirect_priv {
	int fd_buf;		/* buffered */
	int fd_dio;		/* O_DIRECT */
	size_t mem_align;	/* user buffer alignment for DIO */
	size_t off_align;	/* file offset and length alignment */
};

/* Filesystems where O_DIRECT opens but I/O is a page cache copy. */
static int dir_fakes_odirect(const char *dir)
{
	struct statfs sfs;

	if (statfs(dir, &sfs))
		return 0;
	return sfs.f_type == TMPFS_MAGIC_NR || sfs.f_type == RAMFS_MAGIC_NR;
}

/*
 * Create the scratch file, opened buffered and O_DIRECT, and unlink it.
 * Returns 0 or -errno with the reason in @why.
 */
static int open_scratch(int *fd_buf, int *fd_dio, char *why, size_t len)
{
	const char *dir = pc_test_dir();
	char path[PATH_MAX];
	int err;

	if (dir_fakes_odirect(dir)) {
		snprintf(why, len, "%s is tmpfs/ramfs: O_DIRECT there copies through the page cache",
			 dir);
		return -EOPNOTSUPP;
	}
	snprintf(path, sizeof(path), "%s/pincheck-odirect.XXXXXX", dir);
	*fd_buf = mkostemp(path, O_CLOEXEC);
	if (*fd_buf < 0) {
		err = errno;
		snprintf(why, len, "create a file in %s: %s", dir,
			 strerror(err));
		return -err;
	}
	*fd_dio = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	err = errno;
	unlink(path);
	if (*fd_dio < 0) {
		close(*fd_buf);
		snprintf(why, len, "O_DIRECT open in %s: %s", dir,
			 strerror(err));
		return -err;
	}
	return 0;
}

/* DIO alignment of the file, from statx where the kernel reports it. */
static void dio_alignment(struct odirect_priv *p)
{
#ifdef STATX_DIOALIGN
	struct statx stx;
#endif

	p->mem_align = DEFAULT_DIO_ALIGN;
	p->off_align = DEFAULT_DIO_ALIGN;
#ifdef STATX_DIOALIGN
	if (statx(p->fd_dio, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) ||
	    !(stx.stx_mask & STATX_DIOALIGN) || !stx.stx_dio_offset_align)
		return;
	p->mem_align = stx.stx_dio_mem_align ? stx.stx_dio_mem_align : 1;
	p->off_align = stx.stx_dio_offset_align;
#endif
}

static const char *odirect_probe(void)
{
	static char why[PC_ENGINE_ERR_MAX];
	char detail[PC_ENGINE_ERR_MAX - 96];
	int fd_buf, fd_dio;

	if (open_scratch(&fd_buf, &fd_dio, detail, sizeof(detail))) {
		snprintf(why, sizeof(why),
			 "no O_DIRECT-capable directory (%s): set PINCHECK_TMPDIR to a dir on ext4/xfs",
			 detail);
		return why;
	}
	close(fd_buf);
	close(fd_dio);
	return NULL;
}

static int odirect_open(struct pc_engine *e)
{
	struct odirect_priv *p = calloc(1, sizeof(*p));
	char why[PC_ENGINE_ERR_MAX - 16];
	int rc;

	if (!p)
		return pc_engine_err(e, -ENOMEM, "odirect: out of memory");
	rc = open_scratch(&p->fd_buf, &p->fd_dio, why, sizeof(why));
	if (rc) {
		free(p);
		return pc_engine_err(e, rc, "odirect: %s", why);
	}
	dio_alignment(p);
	e->priv = p;
	return 0;
}

static int check_aligned(struct pc_engine *e, const char *op,
			 const void *buf, size_t off, size_t len)
{
	struct odirect_priv *p = e->priv;

	if ((unsigned long)buf % p->mem_align || off % p->off_align ||
	    len % p->off_align)
		return pc_engine_err(e, -EINVAL,
				     "odirect %s: buffer %p, offset 0x%zx, length 0x%zx not aligned for O_DIRECT (memory %zu, file %zu)",
				     op, buf, off, len, p->mem_align,
				     p->off_align);
	return 0;
}

static int odirect_pin(struct pc_engine *e, void *addr, size_t len,
		       unsigned int flags)
{
	struct odirect_priv *p = e->priv;
	int rc;

	(void)flags;	/* each direct I/O pins as it needs: R/O or R/W */
	rc = check_aligned(e, "pin", addr, 0, len);
	if (rc)
		return rc;
	if (ftruncate(p->fd_buf, 0) || ftruncate(p->fd_buf, len))
		return pc_engine_err(e, -errno,
				     "odirect: ftruncate 0x%zx: %s", len,
				     strerror(errno));
	return 0;
}

/* pread/pwrite the whole of [off, off + len); 0 or -errno. */
static int full_io(int fd, int write, void *buf, size_t len, size_t off)
{
	size_t done = 0;

	while (done < len) {
		char *at = (char *)buf + done;
		ssize_t n = write ? pwrite(fd, at, len - done, off + done) :
				    pread(fd, at, len - done, off + done);

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

static int io_err(struct pc_engine *e, int rc, const char *what, size_t off,
		  size_t len)
{
	return pc_engine_err(e, rc, "odirect: %s [0x%zx, 0x%zx): %s", what,
			     off, off + len,
			     rc == -EIO ? "short transfer" : strerror(-rc));
}

static int odirect_dev_write(struct pc_engine *e, size_t off, size_t len,
			     const void *data)
{
	struct odirect_priv *p = e->priv;
	char *dst = (char *)e->addr + off;
	int rc;

	rc = check_aligned(e, "dev_write", dst, off, len);
	if (rc)
		return rc;
	rc = full_io(p->fd_buf, 1, (void *)data, len, off);
	if (rc)
		return io_err(e, rc, "buffered pwrite", off, len);
	if (fdatasync(p->fd_buf))
		return io_err(e, -errno, "fdatasync", off, len);
	rc = full_io(p->fd_dio, 0, dst, len, off);
	if (rc)
		return io_err(e, rc, "O_DIRECT pread", off, len);
	return 0;
}

static int odirect_dev_read(struct pc_engine *e, size_t off, size_t len,
			    void *out)
{
	struct odirect_priv *p = e->priv;
	char *src = (char *)e->addr + off;
	int rc;

	rc = check_aligned(e, "dev_read", src, off, len);
	if (rc)
		return rc;
	rc = full_io(p->fd_dio, 1, src, len, off);
	if (rc)
		return io_err(e, rc, "O_DIRECT pwrite", off, len);
	/* The direct write invalidated the cache; make sure of it. */
	posix_fadvise(p->fd_buf, off, len, POSIX_FADV_DONTNEED);
	rc = full_io(p->fd_buf, 0, out, len, off);
	if (rc)
		return io_err(e, rc, "buffered pread", off, len);
	return 0;
}

static int odirect_unpin(struct pc_engine *e)
{
	(void)e;	/* nothing is held between I/Os */
	return 0;
}

static void odirect_close(struct pc_engine *e)
{
	struct odirect_priv *p = e->priv;

	if (!p)
		return;
	close(p->fd_buf);
	close(p->fd_dio);
	free(p);
}

const struct pc_engine_ops pc_engine_odirect = {
	.name = "odirect",
	.caps = PC_CAP_DEV_READ | PC_CAP_DEV_WRITE | PC_CAP_PIN_RO |
		PC_CAP_PIN_RW,
	.probe = odirect_probe,
	.open = odirect_open,
	.pin = odirect_pin,
	.dev_read = odirect_dev_read,
	.dev_write = odirect_dev_write,
	.unpin = odirect_unpin,
	.close = odirect_close,
};
