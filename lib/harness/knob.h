/* SPDX-License-Identifier: GPL-2.0 */
/*
 * System state a case changes (sysctl, sysfs and debugfs knobs, a cgroup,
 * a mount), put back by the harness process when the case ends, however it
 * ends: a verdict, a crash, or the watchdog's SIGKILL.  The harness also
 * puts it back when the binary is interrupted (SIGINT, SIGTERM).
 *
 * The journal lives in a shared mapping that the harness makes before it
 * forks the first case; each change is recorded there BEFORE it is made.
 * A case never restores by itself: the harness does it after every case.
 * With PINCHECK_KNOB_JOURNAL set (run_tests.sh sets it), each entry is
 * also appended to that file before the change, and the file is emptied
 * once the harness undid everything: after a SIGKILL of the whole binary,
 * run_tests.sh replays what is left there (scripts/runner/lib-state.sh).
 */
#ifndef PINCHECK_KNOB_H
#define PINCHECK_KNOB_H

#include <stddef.h>

/*
 * Write @val to the knob at @path; its value before the case (the first
 * one recorded for @path) comes back when the case ends.  "[x]" choice
 * lists are read as "x".  0 or -errno.
 */
int pc_knob_set(const char *path, const char *val);

/* The same for a number. */
int pc_knob_set_num(const char *path, long long val);

/* Write @val now and @undo when the case ends ("+memory" / "-memory"). */
int pc_knob_write_undo(const char *path, const char *val, const char *undo);

/* mkdir @path now (a cgroup), rmdir it when the case ends.  0 or -errno. */
int pc_knob_mkdir(const char *path);

/*
 * Mount a @fstype filesystem on a new directory @dir now; unmount it and
 * remove the directory when the case ends.  0 or -errno.
 */
int pc_knob_mount(const char *dir, const char *fstype);

/* The knob's current value ("[x]" lists give "x"); 0 or -errno. */
int pc_knob_read(const char *path, char *buf, size_t len);

/*
 * Harness only: make the journal (before any case); keep what is in it so
 * far from case to case (the binary's own changes, harness.h
 * pc_cases_hold_knob()); replay the cases' entries (after each case), or
 * every entry (when the binary ends or is interrupted).
 */
void pc_knobs_init(void);
void pc_knobs_hold(void);
void pc_knobs_restore(void);
void pc_knobs_restore_all(void);

#endif
