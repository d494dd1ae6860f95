// SPDX-License-Identifier: GPL-2.0
/*
 * Scratch block devices: loop over a tmpfs file, a dm "delay" target on
 * top, mkfs and mount.  Loop and device-mapper are driven through their
 * ioctls (no losetup/dmsetup execs: each exec costs 0.1-0.3 s in a TCG
 * guest whose root is 9p); only mkfs is an external program.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/dm-ioctl.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blockdev.h"
#include "fusedev.h"
#include "sysprobe.h"

#define DM_CONTROL "/dev/mapper/control"
#define DM_BUF_SIZE 16384
#define IMG_DIR "/dev/shm"
#define BUSY_RETRIES 40		/* x 50 ms */

/* ---- small helpers ---- */

static int why(struct pc_bdev *bd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int why(struct pc_bdev *bd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(bd->why, sizeof(bd->why), fmt, ap);
	va_end(ap);
	return -1;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int pid_alive(pid_t pid)
{
	return pid > 0 && (!kill(pid, 0) || errno == EPERM);
}

const char *pc_bdev_base_dir(const char *tag)
{
	static char dir[96];

	snprintf(dir, sizeof(dir), "/run/pincheck-%s.%d", tag, (int)getpid());
	return dir;
}

/* ---- device-mapper ---- */

static int dm_control_fd(void)
{
	char buf[32];
	unsigned int ma, mi;
	int fd = open(DM_CONTROL, O_RDWR | O_CLOEXEC);

	if (fd >= 0 || errno != ENOENT)
		return fd < 0 ? -errno : fd;
	/* dm-mod loaded but no node (no devtmpfs/udev): make one. */
	if (pc_read_line("/sys/class/misc/device-mapper/dev", buf, sizeof(buf)) ||
	    sscanf(buf, "%u:%u", &ma, &mi) != 2)
		return -ENOENT;
	mkdir("/dev/mapper", 0755);
	if (mknod(DM_CONTROL, S_IFCHR | 0600, makedev(ma, mi)) && errno != EEXIST)
		return -errno;
	fd = open(DM_CONTROL, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int pc_bdev_dm_probe(void)
{
	int fd;

	pc_vm_hw_wait();	/* dm-mod may still be loading */
	fd = dm_control_fd();

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

struct dm_target_req {
	const char *type;	/* "delay" */
	const char *params;
	uint64_t sectors;
};

/*
 * One device-mapper ioctl on device @name with @flags, and a one-target
 * table when @t is given.  @dev_out gets the device number.  0 or -errno.
 */
static int dm_cmd(unsigned long cmd, const char *name, unsigned int flags,
		  const struct dm_target_req *t, dev_t *dev_out)
{
	uint64_t storage[DM_BUF_SIZE / sizeof(uint64_t)];
	struct dm_ioctl *io = (struct dm_ioctl *)storage;
	int fd = dm_control_fd(), rc = 0;

	if (fd < 0)
		return fd;
	memset(storage, 0, sizeof(storage));
	io->version[0] = DM_VERSION_MAJOR;
	io->data_size = sizeof(storage);
	io->data_start = sizeof(*io);
	io->flags = flags;
	snprintf(io->name, sizeof(io->name), "%s", name);
	if (t) {
		struct dm_target_spec *spec =
			(struct dm_target_spec *)((char *)io + io->data_start);
		size_t plen = strlen(t->params) + 1;

		io->target_count = 1;
		spec->sector_start = 0;
		spec->length = t->sectors;
		snprintf(spec->target_type, sizeof(spec->target_type), "%s",
			 t->type);
		memcpy(spec + 1, t->params, plen);
		spec->next = (sizeof(*spec) + plen + 7) & ~7u;
	}
	if (ioctl(fd, cmd, io))
		rc = -errno;
	else if (dev_out)
		*dev_out = (dev_t)io->dev;
	close(fd);
	return rc;
}

static int dm_suspend(const char *name, int suspend)
{
	unsigned int flags = 0;

	if (suspend)
		flags = DM_SUSPEND_FLAG | DM_SKIP_LOCKFS_FLAG | DM_NOFLUSH_FLAG;
	return dm_cmd(DM_DEV_SUSPEND, name, flags, NULL, NULL);
}

/* Remove, retrying while busy, deferred as a last resort. */
static int dm_remove(const char *name)
{
	int i, rc = 0;

	dm_suspend(name, 0);
	for (i = 0; i < BUSY_RETRIES; i++) {
		rc = dm_cmd(DM_DEV_REMOVE, name, 0, NULL, NULL);
		if (rc != -EBUSY)
			return rc == -ENXIO ? 0 : rc;
		sleep_ms(50);
	}
	return dm_cmd(DM_DEV_REMOVE, name, DM_DEFERRED_REMOVE, NULL, NULL);
}

/* ---- loop ---- */

static int loop_node(int nr, char *path, size_t len)
{
	snprintf(path, len, "/dev/loop%d", nr);
	return 0;
}

/* Attach @img_fd to a free loop device, kept open in bd->loop_fd. */
static int loop_attach(struct pc_bdev *bd, int img_fd, int *loop_fd)
{
	struct loop_config cfg;
	char path[64];
	int ctl, i, nr, fd, err = 0;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return why(bd, "no loop devices (/dev/loop-control: %s): modprobe loop",
			   strerror(errno));
	for (i = 0; i < 16; i++) {
		nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (nr < 0) {
			err = errno;
			break;
		}
		loop_node(nr, path, sizeof(path));
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
			sleep_ms(10);	/* devtmpfs may not have it yet */
			continue;
		}
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = img_fd;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (bd->hold == PC_BDEV_HOLD_NONE)
			cfg.info.lo_flags |= LO_FLAGS_DIRECT_IO;
		snprintf((char *)cfg.info.lo_file_name,
			 sizeof(cfg.info.lo_file_name), "pincheck-%s", bd->name);
		if (!ioctl(fd, LOOP_CONFIGURE, &cfg)) {
			close(ctl);
			bd->loop_nr = nr;
			*loop_fd = fd;
			return 0;
		}
		err = errno;
		close(fd);
		if (err != EBUSY)
			break;
	}
	close(ctl);
	return why(bd, "attach a loop device: %s", strerror(err));
}

static void loop_detach(int nr)
{
	char path[64];
	int fd;

	if (nr < 0)
		return;
	loop_node(nr, path, sizeof(path));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	ioctl(fd, LOOP_CLR_FD, 0);	/* busy: autoclear does it later */
	close(fd);
}

/* ---- mkfs and mount ---- */

/* Run argv[0] (searched in PATH, then /sbin, /usr/sbin); 0 or -1 + why. */
static int run_tool(struct pc_bdev *bd, char *const argv[])
{
	static const char *const dirs[] = { "/usr/sbin", "/sbin" };
	char errbuf[160] = "";
	int fds[2], status;
	ssize_t n;
	pid_t pid;
	size_t i;

	if (pipe2(fds, O_CLOEXEC))
		return why(bd, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		return why(bd, "fork: %s", strerror(errno));
	if (!pid) {
		char path[PATH_MAX];
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(fds[1], 2);
		execvp(argv[0], argv);
		for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", dirs[i], argv[0]);
			execv(path, argv);
		}
		dprintf(2, "not found");
		_exit(127);
	}
	close(fds[1]);
	n = read(fds[0], errbuf, sizeof(errbuf) - 1);
	errbuf[n > 0 ? n : 0] = '\0';
	errbuf[strcspn(errbuf, "\n")] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return why(bd, "%s not found: install %s", argv[0],
			   strstr(argv[0], "xfs") ? "xfsprogs" : "e2fsprogs");
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return why(bd, "%s failed: %s", argv[0],
			   errbuf[0] ? errbuf : "no message");
	return 0;
}

static int make_fs(struct pc_bdev *bd, const char *node,
		   const char *const *extra)
{
	char tool[32];
	char *argv[24];
	size_t n = 0;

	snprintf(tool, sizeof(tool), "mkfs.%s", bd->fstype);
	argv[n++] = tool;
	argv[n++] = (char *)"-q";
	argv[n++] = (char *)(strcmp(bd->fstype, "ext4") ? "-f" : "-F");
	while (extra && *extra && n < 22)
		argv[n++] = (char *)*extra++;
	argv[n++] = (char *)node;
	argv[n] = NULL;
	return run_tool(bd, argv);
}

static int mount_fs(struct pc_bdev *bd)
{
	if (mkdir(bd->mnt, 0700) && errno != EEXIST)
		return why(bd, "mkdir %s: %s", bd->mnt, strerror(errno));
	/* lazytime: no journal handle for mtime updates inside a held window */
	if (mount(bd->node, bd->mnt, bd->fstype,
		  MS_NOATIME | MS_LAZYTIME | MS_NODEV | MS_NOSUID, NULL)) {
		int err = errno;

		rmdir(bd->mnt);
		bd->mnt[0] = '\0';
		if (err == ENODEV)
			return why(bd, "kernel has no %s file system: modprobe %s",
				   bd->fstype, bd->fstype);
		return why(bd, "mount %s: %s", bd->fstype, strerror(err));
	}
	return 0;
}

static void unmount_fs(const char *mnt)
{
	int i;

	for (i = 0; i < BUSY_RETRIES; i++) {
		if (!umount2(mnt, 0) || errno == EINVAL || errno == ENOENT)
			goto out;
		if (errno != EBUSY)
			break;
		sleep_ms(50);
	}
	umount2(mnt, MNT_DETACH);
out:
	rmdir(mnt);
}

/* ---- the stack ---- */

/*
 * With device-mapper holding the I/O the backing file lives in tmpfs
 * (fast, nothing to clean on disk).  Without, every microsecond the
 * request spends in the device counts: a file on a real disk, read and
 * written by the loop device with direct I/O.
 */
static int make_image(struct pc_bdev *bd, const char *tag, int *img_fd)
{
	char path[PATH_MAX];
	struct stat st;
	const char *dir = IMG_DIR;

	if (bd->hold == PC_BDEV_HOLD_NONE)
		dir = pc_test_dir();
	else if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		dir = pc_bdev_base_dir(tag);
	snprintf(path, sizeof(path), "%s/pincheck-%s.%d.%s.img", dir, tag,
		 (int)getpid(), bd->name);
	*img_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (*img_fd < 0)
		return why(bd, "create %s: %s", path, strerror(errno));
	unlink(path);
	if (ftruncate(*img_fd, bd->size)) {
		close(*img_fd);
		return why(bd, "size %s: %s", path, strerror(errno));
	}
	return 0;
}

static int make_dm(struct pc_bdev *bd, const char *tag, const char *lower)
{
	struct dm_target_req t = { .type = "delay" };
	char params[96];
	struct stat st;
	int rc;

	if (stat(lower, &st))
		return why(bd, "stat %s: %s", lower, strerror(errno));
	snprintf(bd->dm_name, sizeof(bd->dm_name), "pincheck-%s-%d-%s", tag,
		 (int)getpid(), bd->name);
	snprintf(params, sizeof(params), "%u:%u 0 %u", major(st.st_rdev),
		 minor(st.st_rdev), bd->delay_ms);
	t.params = params;
	t.sectors = bd->size / 512;
	rc = dm_cmd(DM_DEV_CREATE, bd->dm_name, 0, NULL, &bd->dm_dev);
	if (rc) {
		bd->dm_name[0] = '\0';
		return why(bd, "device-mapper create: %s", strerror(-rc));
	}
	rc = dm_cmd(DM_TABLE_LOAD, bd->dm_name, 0, &t, NULL);
	if (!rc)
		rc = dm_suspend(bd->dm_name, 0);
	if (rc)
		return why(bd, "device-mapper delay target: %s (modprobe dm-delay)",
			   strerror(-rc));
	snprintf(bd->node, sizeof(bd->node), "%s/%s.dev",
		 pc_bdev_base_dir(tag), bd->name);
	unlink(bd->node);
	if (mknod(bd->node, S_IFBLK | 0600, bd->dm_dev))
		return why(bd, "mknod %s: %s", bd->node, strerror(errno));
	return 0;
}

/*
 * FUSE hold: serve the image as a file of a FUSE mount of our own and
 * return that file, opened, for the loop device; -1 + why on failure.
 */
static int fuse_backing(struct pc_bdev *bd, const char *tag, int img_fd)
{
	char mnt[192];
	int fd, own = dup(img_fd);

	if (own < 0)
		return why(bd, "dup: %s", strerror(errno));
	bd->fuse = calloc(1, sizeof(*bd->fuse));
	if (!bd->fuse) {
		close(own);
		return why(bd, "out of memory");
	}
	snprintf(mnt, sizeof(mnt), "%s/%s.fuse", pc_bdev_base_dir(tag), bd->name);
	if (pc_fusedev_start(bd->fuse, mnt, "img", own, bd->size, bd->why,
			     sizeof(bd->why))) {
		free(bd->fuse);
		bd->fuse = NULL;
		return -1;
	}
	fd = open(bd->fuse->path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return why(bd, "open %s: %s", bd->fuse->path, strerror(errno));
	return fd;
}

static int build_stack(struct pc_bdev *bd, const char *tag,
		       const char *const *mkfs_args, int img_fd, int *loop_fd)
{
	char loop[64];
	int file_fd = img_fd, rc;

	if (bd->hold == PC_BDEV_HOLD_FUSE) {
		file_fd = fuse_backing(bd, tag, img_fd);
		if (file_fd < 0)
			return -1;
	}
	rc = loop_attach(bd, file_fd, loop_fd);
	if (file_fd != img_fd)
		close(file_fd);	/* the loop device holds the file */
	if (rc)
		return -1;
	loop_node(bd->loop_nr, loop, sizeof(loop));
	snprintf(bd->node, sizeof(bd->node), "%s", loop);
	/* mkfs straight on the loop device: never through the delay */
	if (bd->fstype[0] && make_fs(bd, loop, mkfs_args))
		return -1;
	if ((bd->hold == PC_BDEV_HOLD_SUSPEND || bd->hold == PC_BDEV_HOLD_DELAY) &&
	    make_dm(bd, tag, loop))
		return -1;
	if (!bd->fstype[0])
		return 0;
	snprintf(bd->mnt, sizeof(bd->mnt), "%s/%s", pc_bdev_base_dir(tag),
		 bd->name);
	return mount_fs(bd);
}

int pc_bdev_create(struct pc_bdev *bd, const char *tag, const char *name,
		   const char *fstype, const char *const *mkfs_args,
		   size_t size, enum pc_bdev_hold hold,
		   unsigned int delay_ms)
{
	int img_fd = -1, loop_fd = -1, rc;

	pc_vm_hw_wait();	/* loop, dm and the file systems may still be loading */
	memset(bd, 0, sizeof(*bd));
	bd->loop_nr = -1;
	bd->keep_fd = -1;
	snprintf(bd->name, sizeof(bd->name), "%s", name);
	snprintf(bd->fstype, sizeof(bd->fstype), "%s", fstype ? fstype : "");
	bd->size = size;
	bd->hold = hold;
	bd->delay_ms = hold == PC_BDEV_HOLD_DELAY ? delay_ms : 0;
	if (mkdir(pc_bdev_base_dir(tag), 0700) && errno != EEXIST)
		return why(bd, "mkdir %s: %s", pc_bdev_base_dir(tag),
			   strerror(errno));
	if (make_image(bd, tag, &img_fd))
		return -1;
	rc = build_stack(bd, tag, mkfs_args, img_fd, &loop_fd);
	close(img_fd);		/* the loop device holds the file */
	/*
	 * The loop device is autoclear: it goes when its last user does.
	 * The mount or dm device keeps it; a raw loop device needs our fd.
	 */
	if (loop_fd >= 0 && (rc || bd->dm_name[0] || bd->mnt[0]))
		close(loop_fd);
	else
		bd->keep_fd = loop_fd;
	if (rc) {
		pc_bdev_destroy(bd);
		return -1;
	}
	bd->ready = 1;
	return 0;
}

void pc_bdev_destroy(struct pc_bdev *bd)
{
	if (!bd->name[0])
		return;		/* never created: loop_nr 0 is not ours */
	pc_bdev_release(bd);
	if (bd->mnt[0])
		unmount_fs(bd->mnt);
	bd->mnt[0] = '\0';
	if (bd->dm_name[0]) {
		dm_remove(bd->dm_name);
		unlink(bd->node);
	}
	bd->dm_name[0] = '\0';
	if (bd->keep_fd >= 0)
		close(bd->keep_fd);
	bd->keep_fd = -1;
	loop_detach(bd->loop_nr);
	bd->loop_nr = -1;
	if (bd->fuse) {
		pc_fusedev_stop(bd->fuse);
		free(bd->fuse);
		bd->fuse = NULL;
	}
	bd->ready = 0;
}

int pc_bdev_hold(struct pc_bdev *bd)
{
	if (bd->fuse) {
		pc_fusedev_hold(bd->fuse);
		return 0;
	}
	if (bd->hold != PC_BDEV_HOLD_SUSPEND || !bd->dm_name[0])
		return 0;
	return dm_suspend(bd->dm_name, 1);
}

int pc_bdev_release(struct pc_bdev *bd)
{
	if (bd->fuse)
		return pc_fusedev_release(bd->fuse);
	if (bd->hold != PC_BDEV_HOLD_SUSPEND || !bd->dm_name[0])
		return 0;
	return dm_suspend(bd->dm_name, 0);
}

int pc_bdev_queued(const struct pc_bdev *bd)
{
	return bd->fuse && pc_fusedev_queued(bd->fuse);
}

int pc_bdev_fuse_probe(void)
{
	return pc_fusedev_probe();
}

/* ---- leftovers of killed runs ---- */

/* The pid in "<prefix><pid><sep>...", or 0. */
static pid_t owner_pid(const char *s, const char *prefix, char sep)
{
	size_t n = strlen(prefix);
	char *end;
	long pid;

	if (strncmp(s, prefix, n))
		return 0;
	pid = strtol(s + n, &end, 10);
	if (end == s + n || (*end != sep && *end != '\0'))
		return 0;
	return (pid_t)pid;
}

/* @act on each device-mapper device left by a dead run tagged @tag. */
static void on_stale_dm(const char *tag, void (*act)(const char *name))
{
	char prefix[64], path[PATH_MAX], name[160];
	struct dirent *de;
	DIR *d = opendir("/sys/block");

	if (!d)
		return;
	snprintf(prefix, sizeof(prefix), "pincheck-%s-", tag);
	while ((de = readdir(d))) {
		pid_t pid;

		if (strncmp(de->d_name, "dm-", 3))
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/dm/name", de->d_name);
		if (pc_read_line(path, name, sizeof(name)))
			continue;
		pid = owner_pid(name, prefix, '-');
		if (pid && !pid_alive(pid))
			act(name);
	}
	closedir(d);
}

/* Resumed before anything waits on it. */
static void resume_dm(const char *name)
{
	dm_suspend(name, 0);
}

static void remove_dm_deferred(const char *name)
{
	dm_cmd(DM_DEV_REMOVE, name, DM_DEFERRED_REMOVE, NULL, NULL);
}

static void reap_stale_mounts(const char *tag)
{
	char prefix[64], line[1024], mnt[PATH_MAX];
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return;
	snprintf(prefix, sizeof(prefix), "/run/pincheck-%s.", tag);
	while (fgets(line, sizeof(line), f)) {
		pid_t pid;

		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		pid = owner_pid(mnt, prefix, '/');
		if (pid && !pid_alive(pid))
			umount2(mnt, MNT_DETACH);
	}
	fclose(f);
}

static void remove_stale_loops(const char *tag)
{
	char path[PATH_MAX], file[PATH_MAX], needle[64];
	struct dirent *de;
	DIR *d = opendir("/sys/block");

	if (!d)
		return;
	snprintf(needle, sizeof(needle), "pincheck-%s.", tag);
	while ((de = readdir(d))) {
		char *at;
		pid_t pid;
		int nr;

		if (sscanf(de->d_name, "loop%d", &nr) != 1)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file",
			 de->d_name);
		if (pc_read_line(path, file, sizeof(file)))
			continue;
		at = strstr(file, needle);
		/* .../pincheck-<tag>.<pid>.<name>.img, or under the FUSE mount */
		pid = at ? owner_pid(at, needle, '.') : 0;
		if (at && !pid)
			pid = owner_pid(at, needle, '/');
		if (pid && !pid_alive(pid))
			loop_detach(nr);
	}
	closedir(d);
}

static void remove_stale_dirs(const char *tag)
{
	char prefix[64], path[PATH_MAX], sub[PATH_MAX + 256];
	struct dirent *de, *se;
	DIR *d = opendir("/run"), *s;

	if (!d)
		return;
	snprintf(prefix, sizeof(prefix), "pincheck-%s.", tag);
	while ((de = readdir(d))) {
		pid_t pid = owner_pid(de->d_name, prefix, '\0');

		if (!pid || pid_alive(pid))
			continue;
		snprintf(path, sizeof(path), "/run/%s", de->d_name);
		s = opendir(path);
		while (s && (se = readdir(s))) {
			if (se->d_name[0] == '.')
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, se->d_name);
			if (rmdir(sub))
				unlink(sub);
		}
		if (s)
			closedir(s);
		rmdir(path);
	}
	closedir(d);
}

void pc_bdev_reap_stale(const char *tag)
{
	on_stale_dm(tag, resume_dm);
	reap_stale_mounts(tag);
	on_stale_dm(tag, remove_dm_deferred);
	remove_stale_loops(tag);
	remove_stale_dirs(tag);
}
