/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Scratch block devices a test builds for itself and removes again:
 * a loop device over an unlinked tmpfs file, optionally a device-mapper
 * "delay" target on top (the device the test can hold I/O on), and a
 * filesystem made and mounted on it.
 *
 *   tmpfs file -> /dev/loopN [-> dm "pincheck-<tag>-<pid>-<name>"] [-> fs]
 *
 * Holding I/O: with device-mapper, pc_bdev_hold() suspends the dm device
 * without flushing or freezing the filesystem, so every bio submitted
 * afterwards waits inside device-mapper until pc_bdev_release() resumes
 * it: an event, no timing assumption.  The delay target's own delay
 * (PC_BDEV_HOLD_DELAY) is the timing-based alternative.  Without
 * device-mapper, PC_BDEV_HOLD_FUSE puts the loop device over a file served
 * by a FUSE server, a child of this process (fusedev.h), which stops answering
 * while held: the same event, one layer lower.
 *
 *   tmpfs file -> FUSE file -> /dev/loopN [-> fs]
 *
 * With neither (PC_BDEV_HOLD_NONE) the stack is loop + fs, nothing held.
 *
 * Everything is named after the owning pid, so pc_bdev_reap_stale()
 * removes what a killed run left behind.  Needs root.
 */
#ifndef PINCHECK_BLOCKDEV_H
#define PINCHECK_BLOCKDEV_H

#include <stddef.h>
#include <sys/types.h>

enum pc_bdev_hold {
	PC_BDEV_HOLD_NONE,	/* loop only: I/O completes when it likes */
	PC_BDEV_HOLD_SUSPEND,	/* dm suspend/resume around the window */
	PC_BDEV_HOLD_DELAY,	/* dm-delay's fixed delay on every bio */
	PC_BDEV_HOLD_FUSE,	/* loop over a FUSE file whose server pauses */
};

struct pc_fusedev;

struct pc_bdev {
	char name[32];		/* "ext4", "xfs", "blk" */
	char fstype[16];	/* "" for a raw device */
	int ready;		/* usable: path names the file system or device */
	char why[256];		/* why not, when !ready */
	enum pc_bdev_hold hold;
	unsigned int delay_ms;	/* the dm-delay target's delay */
	int loop_nr;		/* -1 when none */
	dev_t dm_dev;		/* 0 when no dm device */
	char dm_name[96];
	char node[192];		/* block device node the fs sits on */
	char mnt[192];		/* mount point ("" for a raw device) */
	size_t size;		/* bytes */
	int keep_fd;		/* a raw loop device's open fd, or -1 */
	struct pc_fusedev *fuse;	/* HOLD_FUSE: the file's server */
};

/*
 * Build a stack named @name of @size bytes: @fstype "ext4", "xfs" or ""
 * (raw device), @mkfs_args extra mkfs options (NULL: none), device-mapper
 * with @hold unless NONE.  @tag names the test ("odf").  On failure
 * bd->ready stays 0 and bd->why says what to do; the partial stack is
 * removed.  Returns 0 or -1.
 */
int pc_bdev_create(struct pc_bdev *bd, const char *tag, const char *name,
		   const char *fstype, const char *const *mkfs_args,
		   size_t size, enum pc_bdev_hold hold,
		   unsigned int delay_ms);

/* Unmount, remove the dm device and the loop device; idempotent. */
void pc_bdev_destroy(struct pc_bdev *bd);

/*
 * Hold / release the device's I/O (no-op unless hold is SUSPEND or FUSE);
 * 0 or -errno.  With FUSE, release returns 1 when the server's own guard
 * had already ended the hold.
 */
int pc_bdev_hold(struct pc_bdev *bd);
int pc_bdev_release(struct pc_bdev *bd);

/* FUSE hold: has a request reached the held device since the hold began? */
int pc_bdev_queued(const struct pc_bdev *bd);

/* Can the FUSE hold work here?  0, or -errno. */
int pc_bdev_fuse_probe(void);

/* Is device-mapper there (its control node opens)?  0, or -errno. */
int pc_bdev_dm_probe(void);

/*
 * Remove the stacks of processes (tag @tag) that no longer exist:
 * resume, unmount, remove dm devices, detach loop devices.
 */
void pc_bdev_reap_stale(const char *tag);

/* Directory for the mount points: /run/pincheck-<tag>.<pid>. */
const char *pc_bdev_base_dir(const char *tag);

#endif
