// SPDX-License-Identifier: GPL-2.0
/*
 * The journal of system state changed by cases, replayed backwards by the
 * harness after each case (see knob.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "report.h"
#include "knob.h"
#include "sysprobe.h"

#define KNOB_MAX_ENTRIES 64
#define KNOB_PATH_MAX 256
#define KNOB_VAL_MAX 128
#define KNOB_RMDIR_TRIES 40	/* x 50 ms: a killed case's threads exit */

enum knob_kind {
	KNOB_WRITE_BACK = 1,	/* write the recorded value back */
	KNOB_RMDIR,		/* remove a directory we made */
	KNOB_UMOUNT,		/* unmount, then remove the mount point */
	KNOB_WRITE_UNDO,	/* write the recorded undo ("-memory") */
};

struct knob_entry {
	int kind;
	char path[KNOB_PATH_MAX];
	char val[KNOB_VAL_MAX];
};

struct knob_journal {
	int n;
	struct knob_entry e[KNOB_MAX_ENTRIES];
};

static struct knob_journal *journal;
/* Entries below this one are the binary's own: kept from case to case. */
static int journal_base;

/*
 * The journal's copy in a file (PINCHECK_KNOB_JOURNAL, set by run_tests.sh):
 * each entry is appended as a line "KIND<TAB>path<TAB>value" (KIND: write,
 * undo, rmdir, umount)
 * before its change, and the file is emptied once the harness undid them
 * all; what a SIGKILL of the binary leaves there, the runner undoes.
 */
static const char *journal_file;
static int journal_file_kept;	/* an undo failed: the runner retries */

static const char *const kind_name[] = {
	[KNOB_WRITE_BACK] = "write",
	[KNOB_RMDIR] = "rmdir",
	[KNOB_UMOUNT] = "umount",
	[KNOB_WRITE_UNDO] = "undo",
};

void pc_knobs_init(void)
{
	void *p;

	if (journal)
		return;
	journal_file = getenv("PINCHECK_KNOB_JOURNAL");
	if (journal_file && !*journal_file)
		journal_file = NULL;
	p = mmap(NULL, sizeof(*journal), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED)
		journal = p;
}

int pc_knob_read(const char *path, char *buf, size_t len)
{
	char line[KNOB_VAL_MAX], *open_br, *close_br;
	int err = pc_read_line(path, line, sizeof(line));

	if (err)
		return err;
	open_br = strchr(line, '[');
	close_br = open_br ? strchr(open_br, ']') : NULL;
	if (close_br) {
		*close_br = '\0';
		snprintf(buf, len, "%s", open_br + 1);
	} else {
		snprintf(buf, len, "%s", line);
	}
	return 0;
}

/* The case's own entry for @path (the binary's are not undone after it). */
static struct knob_entry *find_entry(int kind, const char *path)
{
	int i;

	for (i = journal_base; i < journal->n; i++)
		if (journal->e[i].kind == kind &&
		    !strcmp(journal->e[i].path, path))
			return &journal->e[i];
	return NULL;
}

/* Append an entry to the journal's file, if there is one. */
static int file_append(int kind, const char *path, const char *val)
{
	char line[KNOB_PATH_MAX + KNOB_VAL_MAX + 16];
	ssize_t done;
	int fd, len, err = 0;

	if (!journal_file)
		return 0;
	if (strpbrk(path, "\t\n") || strchr(val, '\n'))
		return -EINVAL;
	len = snprintf(line, sizeof(line), "%s\t%s\t%s\n", kind_name[kind],
		       path, val);
	fd = open(journal_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return -errno;
	done = write(fd, line, len);
	if (done < 0)
		err = -errno;
	else if (done != len)
		err = -EIO;
	close(fd);
	return err;
}

/* Record an entry; the change it describes comes after. */
static int record(int kind, const char *path, const char *val)
{
	struct knob_entry *e;
	int err;

	if (!journal)
		return -ENOSYS;
	if (strlen(path) >= KNOB_PATH_MAX || strlen(val) >= KNOB_VAL_MAX)
		return -ENAMETOOLONG;
	if (journal->n >= KNOB_MAX_ENTRIES)
		return -ENOSPC;
	err = file_append(kind, path, val);
	if (err)
		return err;
	e = &journal->e[journal->n];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	snprintf(e->path, sizeof(e->path), "%s", path);
	snprintf(e->val, sizeof(e->val), "%s", val);
	__atomic_store_n(&journal->n, journal->n + 1, __ATOMIC_SEQ_CST);
	return 0;
}

int pc_knob_set(const char *path, const char *val)
{
	char old[KNOB_VAL_MAX];
	int err;

	if (!journal)
		return -ENOSYS;
	if (!find_entry(KNOB_WRITE_BACK, path)) {
		err = pc_knob_read(path, old, sizeof(old));
		if (err)
			return err;
		err = record(KNOB_WRITE_BACK, path, old);
		if (err)
			return err;
	}
	return pc_write_str(path, val);
}

int pc_knob_set_num(const char *path, long long val)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", val);
	return pc_knob_set(path, buf);
}

int pc_knob_write_undo(const char *path, const char *val, const char *undo)
{
	int err = record(KNOB_WRITE_UNDO, path, undo);

	return err ? err : pc_write_str(path, val);
}

int pc_knob_mkdir(const char *path)
{
	int err = record(KNOB_RMDIR, path, "");

	if (err)
		return err;
	return mkdir(path, 0755) ? -errno : 0;
}

int pc_knob_mount(const char *dir, const char *fstype)
{
	int err = pc_knob_mkdir(dir);

	if (err)
		return err;
	err = record(KNOB_UMOUNT, dir, "");
	if (err)
		return err;
	return mount("none", dir, fstype, 0, NULL) ? -errno : 0;
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int write_back(const struct knob_entry *e)
{
	char now[KNOB_VAL_MAX];

	if (!pc_knob_read(e->path, now, sizeof(now)) && !strcmp(now, e->val))
		return 0;
	return pc_write_str(e->path, e->val);
}

static int remove_dir(const char *path)
{
	int tries;

	for (tries = 0; tries < KNOB_RMDIR_TRIES; tries++) {
		if (!rmdir(path) || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		pause_ms(50);
	}
	return -EBUSY;
}

static int undo_entry(const struct knob_entry *e)
{
	switch (e->kind) {
	case KNOB_WRITE_BACK:
	case KNOB_WRITE_UNDO:
		return write_back(e);
	case KNOB_RMDIR:
		return remove_dir(e->path);
	case KNOB_UMOUNT:
		if (umount2(e->path, MNT_DETACH) && errno != EINVAL &&
		    errno != ENOENT)
			return -errno;
		return 0;
	}
	return 0;
}

void pc_knobs_hold(void)
{
	if (journal)
		journal_base = journal->n;
}

/* The journal's file lists the binary's own entries only, or nothing. */
static void file_keep_base(void)
{
	int i;

	if (!journal_file || journal_file_kept)
		return;
	if (truncate(journal_file, 0)) {
		journal_file_kept = 1;
		return;
	}
	for (i = 0; i < journal_base; i++)
		if (file_append(journal->e[i].kind, journal->e[i].path,
				journal->e[i].val))
			journal_file_kept = 1;
}

void pc_knobs_restore(void)
{
	int i, err, write;

	if (!journal)
		return;
	for (i = journal->n - 1; i >= journal_base; i--) {
		const struct knob_entry *e = &journal->e[i];

		err = undo_entry(e);
		if (!err)
			continue;
		journal_file_kept = 1;
		write = e->kind == KNOB_WRITE_BACK || e->kind == KNOB_WRITE_UNDO;
		pc_diag("state: could not restore %s%s%s: %s", e->path,
			write ? " to " : "", write ? e->val : "",
			strerror(-err));
	}
	/* all undone but the binary's own: nothing else for the runner */
	if (journal->n > journal_base)
		file_keep_base();
	__atomic_store_n(&journal->n, journal_base, __ATOMIC_SEQ_CST);
}

void pc_knobs_restore_all(void)
{
	journal_base = 0;
	pc_knobs_restore();
}
