/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A one-file FUSE file system served by a child of the calling process:
 * the file is @img_fd (a tmpfs file), every read and write of it reaches
 * the server (FOPEN_DIRECT_IO), and the server can be told to stop
 * answering.  A loop device over that file is a block device whose
 * requests can be held: the device-mapper "suspend" hold for kernels
 * without device-mapper.
 *
 * Hold and release work from any process forked after pc_fusedev_start()
 * (the state is in a MAP_SHARED page, the wake-up an eventfd).  While
 * held, the server reads nothing from /dev/fuse: a request waits in the
 * FUSE queue with its data unmoved (a read's pages are filled, a write's
 * copied, only when the server takes it).  It only polls, and says when a
 * request is waiting.  After GUARD_MS the server releases by itself.
 * The server is the only process holding /dev/fuse and dies with its
 * parent (PR_SET_PDEATHSIG): then the kernel aborts the connection and
 * the loop device's requests fail instead of waiting for ever.
 */
#ifndef PINCHECK_FUSEDEV_H
#define PINCHECK_FUSEDEV_H

#include <stddef.h>
#include <sys/types.h>

struct pc_fusedev_shared;

struct pc_fusedev {
	int fuse_fd;		/* /dev/fuse until the server has it, or -1 */
	int img_fd;		/* the file's contents (owned) */
	int wake_fd;		/* eventfd: hold state changed or stop */
	size_t size;
	int mounted;
	pid_t server;		/* the serving process, or -1 */
	char mnt[192];		/* mount point */
	char path[256];		/* the file: mnt/name */
	const char *name;
	struct pc_fusedev_shared *sh;
};

/* Can this kernel serve FUSE (/dev/fuse opens)?  0 or -errno. */
int pc_fusedev_probe(void);

/*
 * Mount at @mnt (created) a file system with the single file @name of
 * @size bytes backed by @img_fd (closed by pc_fusedev_stop), served by a
 * child process.  0, or -1 with @why set.
 */
int pc_fusedev_start(struct pc_fusedev *d, const char *mnt, const char *name,
		     int img_fd, size_t size, char *why, size_t whylen);

/* Stop answering / answer again; release returns 1 when the guard did it. */
void pc_fusedev_hold(struct pc_fusedev *d);
int pc_fusedev_release(struct pc_fusedev *d);

/* Since the hold began: has a request been waiting at the server? */
int pc_fusedev_queued(const struct pc_fusedev *d);

/* Release, stop the server, unmount; idempotent. */
void pc_fusedev_stop(struct pc_fusedev *d);

#endif
