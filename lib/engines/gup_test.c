// SPDX-License-Identifier: GPL-2.0
/*
 * gup_test: the kernel's CONFIG_GUP_TEST debugfs file.  PIN_LONGTERM_TEST_START
 * pins the range with FOLL_PIN | FOLL_LONGTERM (| FOLL_WRITE) through
 * pin_user_pages() or, for gup_test_fast, pin_user_pages_fast(), and holds
 * the pages until PIN_LONGTERM_TEST_STOP.  PIN_LONGTERM_TEST_READ makes the
 * kernel copy the pinned pages (not the current mapping) to a user buffer:
 * that is the device reading.
 *
 * The kernel keeps one such pin for the whole system, and closing any open
 * file of gup_test drops it: run one gup_test case at a time, with one
 * gup_test engine instance open.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "engine.h"

#define DEBUGFS_DIR "/sys/kernel/debug"
#define GUP_TEST_PATH DEBUGFS_DIR "/gup_test"
#define DEBUGFS_MAGIC_NR 0x64626720

/* The ioctl ABI, from the kernel's mm/gup_test.h. */
struct pc_pin_longterm_test {
	__u64 addr;
	__u64 size;
	__u32 flags;
};

#define PIN_LONGTERM_TEST_START	_IOW('g', 7, struct pc_pin_longterm_test)
#define PIN_LONGTERM_TEST_STOP	_IO('g', 8)
#define PIN_LONGTERM_TEST_READ	_IOW('g', 9, __u64)

#define PIN_LONGTERM_TEST_FLAG_USE_WRITE	1
#define PIN_LONGTERM_TEST_FLAG_USE_FAST		2

struct gup_priv {
	int fd;
	char *bounce;		/* PIN_LONGTERM_TEST_READ copies it all here */
};

static int debugfs_mounted(void)
{
	struct statfs sfs;

	return !statfs(DEBUGFS_DIR, &sfs) && sfs.f_type == DEBUGFS_MAGIC_NR;
}

/*
 * Never mounts anything: it only says what is missing.  Nor does it open
 * the file: closing any gup_test file drops the system's one pin.
 */
static const char *gup_test_probe(void)
{
	static char why[128];

	if (!debugfs_mounted())
		return "debugfs not mounted: mount -t debugfs none /sys/kernel/debug";
	if (access(GUP_TEST_PATH, F_OK))
		return "kernel lacks CONFIG_GUP_TEST (Debian's kernels do not enable it; build a kernel with it to run these cases)";
	if (access(GUP_TEST_PATH, R_OK | W_OK)) {
		snprintf(why, sizeof(why), "cannot open %s: %s (needs root)",
			 GUP_TEST_PATH, strerror(errno));
		return why;
	}
	return NULL;
}

static int gup_test_open(struct pc_engine *e)
{
	struct gup_priv *p = calloc(1, sizeof(*p));
	int err;

	if (!p)
		return pc_engine_err(e, -ENOMEM, "gup_test: out of memory");
	p->fd = open(GUP_TEST_PATH, O_RDWR | O_CLOEXEC);
	if (p->fd < 0) {
		err = errno;
		free(p);
		return pc_engine_err(e, -err, "open %s: %s", GUP_TEST_PATH,
				     strerror(err));
	}
	e->priv = p;
	return 0;
}

static int gup_test_pin(struct pc_engine *e, void *addr, size_t len,
			unsigned int flags)
{
	struct gup_priv *p = e->priv;
	long page = sysconf(_SC_PAGESIZE);
	struct pc_pin_longterm_test args = {
		.addr = (unsigned long)addr,
		.size = len,
	};

	if (((unsigned long)addr | len) & (page - 1))
		return pc_engine_err(e, -EINVAL,
				     "%s: %p+0x%zx is not page aligned",
				     e->ops->name, addr, len);
	if (flags & PC_PIN_RW)
		args.flags |= PIN_LONGTERM_TEST_FLAG_USE_WRITE;
	if (e->ops == &pc_engine_gup_test_fast)
		args.flags |= PIN_LONGTERM_TEST_FLAG_USE_FAST;
	p->bounce = malloc(len);
	if (!p->bounce)
		return pc_engine_err(e, -ENOMEM,
				     "%s: no memory for a 0x%zx bounce buffer",
				     e->ops->name, len);
	if (ioctl(p->fd, PIN_LONGTERM_TEST_START, &args)) {
		int err = errno;

		free(p->bounce);
		p->bounce = NULL;
		return pc_engine_err(e, -err,
				     "%s: PIN_LONGTERM_TEST_START %p+0x%zx: %s%s",
				     e->ops->name, addr, len, strerror(err),
				     err == EINVAL ? " (another gup_test pin active?)" : "");
	}
	return 0;
}

static int gup_test_dev_read(struct pc_engine *e, size_t off, size_t len,
			     void *out)
{
	struct gup_priv *p = e->priv;
	__u64 to = (unsigned long)p->bounce;

	if (ioctl(p->fd, PIN_LONGTERM_TEST_READ, &to))
		return pc_engine_err(e, -errno,
				     "%s: PIN_LONGTERM_TEST_READ: %s",
				     e->ops->name, strerror(errno));
	memcpy(out, p->bounce + off, len);
	return 0;
}

static int gup_test_unpin(struct pc_engine *e)
{
	struct gup_priv *p = e->priv;
	int rc = 0;

	if (ioctl(p->fd, PIN_LONGTERM_TEST_STOP))
		rc = pc_engine_err(e, -errno, "%s: PIN_LONGTERM_TEST_STOP: %s",
				   e->ops->name, strerror(errno));
	free(p->bounce);
	p->bounce = NULL;
	return rc;
}

static void gup_test_close(struct pc_engine *e)
{
	struct gup_priv *p = e->priv;

	if (!p)
		return;
	close(p->fd);	/* the kernel unpins on release too */
	free(p->bounce);
	free(p);
}

#define GUP_TEST_CAPS (PC_CAP_DEV_READ | PC_CAP_PIN_RO | PC_CAP_PIN_RW | \
		       PC_CAP_LONGTERM | PC_CAP_HELD)

const struct pc_engine_ops pc_engine_gup_test = {
	.name = "gup_test",
	.caps = GUP_TEST_CAPS,
	.probe = gup_test_probe,
	.open = gup_test_open,
	.pin = gup_test_pin,
	.dev_read = gup_test_dev_read,
	.unpin = gup_test_unpin,
	.close = gup_test_close,
};

const struct pc_engine_ops pc_engine_gup_test_fast = {
	.name = "gup_test_fast",
	.caps = GUP_TEST_CAPS,
	.probe = gup_test_probe,
	.open = gup_test_open,
	.pin = gup_test_pin,
	.dev_read = gup_test_dev_read,
	.unpin = gup_test_unpin,
	.close = gup_test_close,
};
