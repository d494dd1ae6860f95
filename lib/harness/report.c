// SPDX-License-Identifier: GPL-2.0
/*
 * The verdicts and diagnostics of a case (report.h).  Depends on nothing
 * else in lib/: every module may end a case or print a diagnostic.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "report.h"

static const char *binary_name = "pincheck";

/* State of the case process. */
static const struct pc_case *current_case;
static pid_t case_pid;
static int verdict_fd = -1;
static void (*case_end_fn)(void);

void pc_report_set_binary(const char *binary)
{
	binary_name = binary;
}

void pc_report_enter_case(const struct pc_case *c, int fd)
{
	case_pid = getpid();
	verdict_fd = fd;
	current_case = c;
}

const char *pc_binary(void)
{
	return binary_name;
}

const struct pc_case *pc_current(void)
{
	return current_case;
}

void pc_diag(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("# %s\n", line);
	fflush(stdout);
}

/*
 * End the case with @letter.  In a process forked by the case itself (a
 * scenario's child) there is no verdict pipe: the child's exit status
 * carries the result to the case, which judges it.
 */
static void __attribute__((noreturn))
end_case(char letter, const char *fmt, va_list ap)
{
	char msg[PC_REASON_MAX];
	int len = 0;
	ssize_t rc;

	msg[0] = letter;
	if (fmt)
		len = vsnprintf(msg + 1, sizeof(msg) - 2, fmt, ap);
	if (len < 0)
		len = 0;
	if (len > (int)sizeof(msg) - 3)
		len = sizeof(msg) - 3;
	msg[len + 1] = '\n';
	fflush(stdout);
	if (getpid() == case_pid && case_end_fn) {
		void (*fn)(void) = case_end_fn;

		case_end_fn = NULL;
		fn();
	}
	if (getpid() != case_pid || verdict_fd < 0) {
		if (letter != 'P' && len)
			printf("# child %d: %.*s\n", getpid(), len, msg + 1);
		fflush(stdout);
		_exit(letter == 'P' ? 0 : letter == 'S' ? 4 : 1);
	}
	rc = write(verdict_fd, msg, len + 2);
	_exit(rc == len + 2 ? 0 : 3);
}

void pc_pass(void)
{
	va_list ap;

	memset(&ap, 0, sizeof(ap));
	end_case('P', NULL, ap);
}

#define PC_END_CASE_FN(fn, letter)			\
void fn(const char *fmt, ...)				\
{							\
	va_list ap;					\
							\
	va_start(ap, fmt);				\
	end_case(letter, fmt, ap);			\
}

PC_END_CASE_FN(pc_fail, 'F')
PC_END_CASE_FN(pc_skip, 'S')
PC_END_CASE_FN(pc_xfail, 'X')
PC_END_CASE_FN(pc_timeout, 'T')

void pc_fail_errno(const char *what)
{
	int err = errno;

	pc_fail("%s: %s", what, strerror(err));
}

void pc_on_case_end(void (*fn)(void))
{
	case_end_fn = fn;
}

void pc_report_forked_child(void)
{
	if (verdict_fd >= 0)
		close(verdict_fd);
	verdict_fd = -1;
}
