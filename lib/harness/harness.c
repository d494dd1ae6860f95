// SPDX-License-Identifier: GPL-2.0
/*
 * The harness: one process per case, a watchdog around it, TAP 13 out.
 *
 * The case process reports its verdict through a pipe as one line
 * "<letter><reason>".  No verdict before EOF means the case crashed; no
 * verdict before the deadline means it hangs (in the kernel, usually): the
 * whole process group is killed and the case is a TIMEOUT.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backing.h"
#include "clock.h"
#include "engine.h"
#include "fixture.h"
#include "harness.h"
#include "knob.h"
#include "sysprobe.h"
#include "util.h"

#define PC_DEFAULT_TIMEOUT_S 20

/*
 * An ELF note that marks every binary linked with the harness: run_tests.sh
 * reads the first 8 KiB of a file (the linker puts allocated notes right
 * after the program headers) and runs only files carrying this string,
 * never anything else that happens to sit in PINCHECK_TESTS_DIR.
 */
struct pc_marker_note {
	unsigned int namesz, descsz, type;
	char name[12];
	char desc[28];
};
static const struct pc_marker_note pc_marker
	__attribute__((used, aligned(4), section(".note.pincheck"))) = {
	.namesz = sizeof("pincheck"),
	.descsz = 28,
	.type = 1,
	.name = "pincheck",
	.desc = "pincheck-test-binary:1",
};

static struct pc_case *cases;
static size_t nr_cases, cap_cases;

const char *pc_slow_engine_backings = "anon";
static const char *filters[64];
static size_t nr_filters;
static unsigned int case_timeout_s = PC_DEFAULT_TIMEOUT_S;

/* State of the harness process. */
static volatile pid_t running_pid;

struct pc_totals {
	unsigned int pass, fail, xfail, skip, timeout;
};

struct pc_case *pc_add_case(pc_case_fn run, const void *scenario,
			    const struct pc_backing *backing,
			    const struct pc_engine_ops *engine,
			    const char *fmt, ...)
{
	struct pc_case *c;
	va_list ap;

	if (nr_cases == cap_cases) {
		cap_cases = cap_cases ? 2 * cap_cases : 256;
		cases = realloc(cases, cap_cases * sizeof(*cases));
		if (!cases) {
			fprintf(stderr, "pincheck: out of memory\n");
			exit(2);
		}
	}
	c = &cases[nr_cases];
	memset(c, 0, sizeof(*c));
	va_start(ap, fmt);
	vsnprintf(c->id, sizeof(c->id), fmt, ap);
	va_end(ap);
	c->run = run;
	c->scenario = scenario;
	c->backing = backing;
	c->engine = engine;
	c->slow_backings = pc_slow_engine_backings;
	nr_cases++;
	return c;
}

static int compare_ids(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Two cases with one id would make results ambiguous: a programming error,
 * caught once all cases are in (sorted, so thousands of ids cost little).
 */
static void exit_on_duplicate_ids(void)
{
	const char **ids = calloc(nr_cases + 1, sizeof(*ids));
	size_t i;

	if (!ids) {
		fprintf(stderr, "pincheck: out of memory\n");
		exit(2);
	}
	for (i = 0; i < nr_cases; i++)
		ids[i] = cases[i].id;
	qsort(ids, nr_cases, sizeof(*ids), compare_ids);
	for (i = 1; i < nr_cases; i++) {
		if (!strcmp(ids[i - 1], ids[i])) {
			fprintf(stderr, "pincheck: duplicate case id %s\n", ids[i]);
			exit(2);
		}
	}
	free(ids);
}

static int case_selected(const struct pc_case *c)
{
	size_t i;

	if (!nr_filters)
		return 1;
	for (i = 0; i < nr_filters; i++)
		if (!fnmatch(filters[i], c->id, 0))
			return 1;
	return 0;
}

static void __attribute__((noreturn)) run_in_case_process(struct pc_case *c,
							   int fd)
{
	setpgid(0, 0);
	pc_report_enter_case(c, fd);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	c->run(c);
	pc_fail("case returned without a verdict");
}

/* Read the verdict line; 1 got one, 0 EOF, -1 deadline passed. */
static int read_verdict(int fd, long long deadline, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - pc_now_ms();
		ssize_t n;

		if (left <= 0)
			return -1;
		if (poll(&p, 1, left > 1000 ? 1000 : (int)left) <= 0)
			continue;
		n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
		if (memchr(buf, '\n', got))
			break;
	}
	buf[got] = '\0';
	return got > 0;
}

/*
 * "state R, 12 s in the kernel, 0 s in user space" from /proc/PID/stat
 * (fields 3, 14 and 15), or "state unknown".
 */
static const char *task_state(pid_t pid, char *buf, size_t len)
{
	long long user_ms, system_ms;
	char path[64], state;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (pc_task_times(path, &state, &user_ms, &system_ms))
		return "state unknown";
	snprintf(buf, len, "state %c, %lld s in the kernel, %lld s in user space",
		 state, system_ms / 1000, user_ms / 1000);
	return buf;
}

/*
 * Where a hung case process waits in the kernel: its state and the first
 * frames of /proc/PID/stack (needs root and CONFIG_STACKTRACE; wchan
 * where the stack is not readable), as diagnostics for the TIMEOUT.
 */
static void describe_kernel_wait(pid_t pid, const char *when)
{
	char path[64], line[160], frames[512] = "";
	size_t used = 0;
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stack", (int)pid);
	f = fopen(path, "re");
	while (f && n < 8 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		used += snprintf(frames + used, sizeof(frames) - used, "%s%s",
				 n++ ? " < " : "", line);
		if (used >= sizeof(frames))
			break;
	}
	if (f)
		fclose(f);
	if (!n) {
		snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
		if (!pc_read_line(path, line, sizeof(line)) && line[0])
			snprintf(frames, sizeof(frames), "wchan %s", line);
	}
	pc_diag("case process %d %s: %s; %s", (int)pid, when,
		task_state(pid, line, sizeof(line)),
		frames[0] ? frames : "kernel stack not readable");
}

/* Kill the case's process group and collect the case process. */
static int kill_and_reap(pid_t pid, int *status)
{
	int tries;

	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	for (tries = 0; tries < 40; tries++) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return 0;
		usleep(50000);
	}
	return -1;	/* stuck in the kernel: leave it, go on */
}

static enum pc_result verdict_result(char letter)
{
	switch (letter) {
	case 'P':
		return PC_PASS;
	case 'S':
		return PC_SKIP;
	case 'X':
		return PC_XFAIL;
	case 'T':
		return PC_TIMEOUT;
	default:
		return PC_FAIL;
	}
}

/*
 * A case process SIGKILLed while the machine's OOM kill count rose ran
 * out of memory or swap: the machine could not run the case, which says
 * nothing about pinning.  SKIP with the reason instead of a FAIL.
 */
static int oom_killed(int status, long long oom_before, char *reason,
		      size_t rlen)
{
	long long oom_after;

	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL ||
	    oom_before < 0)
		return 0;
	oom_after = pc_vmstat("oom_kill");
	if (oom_after <= oom_before)
		return 0;
	snprintf(reason, rlen,
		 "setup: the case process was OOM-killed (/proc/vmstat oom_kill %+lld): too little free memory or swap for this case; free memory or add swap and rerun",
		 oom_after - oom_before);
	return 1;
}

static enum pc_result run_case(struct pc_case *c, char *reason, size_t rlen)
{
	unsigned int timeout = c->timeout_s ? c->timeout_s : case_timeout_s;
	long long oom_before = pc_vmstat("oom_kill");
	char buf[PC_REASON_MAX + 2], how[64];
	int fds[2], status = 0, got;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC)) {
		snprintf(reason, rlen, "pipe: %s", strerror(errno));
		return PC_FAIL;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		snprintf(reason, rlen, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return PC_FAIL;
	}
	if (!pid) {
		close(fds[0]);
		run_in_case_process(c, fds[1]);
	}
	setpgid(pid, pid);
	running_pid = pid;
	close(fds[1]);
	got = read_verdict(fds[0], pc_now_ms() + timeout * 1000LL, buf,
			   sizeof(buf));
	close(fds[0]);
	if (got < 0) {
		describe_kernel_wait(pid, "at the timeout");
		if (kill_and_reap(pid, &status)) {
			pc_diag("case process %d stuck in the kernel after SIGKILL",
				pid);
			describe_kernel_wait(pid, "after SIGKILL");
		}
		running_pid = 0;
		pc_knobs_restore();
		snprintf(reason, rlen, "%us", timeout);
		return PC_TIMEOUT;
	}
	if (got > 0 && buf[0] == 'T') {
		/* a thread of the case is stuck in the kernel */
		if (kill_and_reap(pid, &status))
			pc_diag("case process %d stuck in the kernel after SIGKILL",
				pid);
	} else {
		waitpid(pid, &status, 0);
	}
	kill(-pid, SIGKILL);	/* scenario children left behind */
	running_pid = 0;
	pc_knobs_restore();
	if (!got && oom_killed(status, oom_before, reason, rlen))
		return PC_SKIP;
	if (!got) {
		snprintf(reason, rlen, "case process %s without a verdict",
			 pc_wait_describe(status, how, sizeof(how)));
		return PC_FAIL;
	}
	buf[strcspn(buf, "\n")] = '\0';
	buf[PC_REASON_MAX - 1] = '\0';
	snprintf(reason, rlen, "%.*s", (int)(rlen - 1), buf + 1);
	return verdict_result(buf[0]);
}

static void print_result(unsigned int n, const struct pc_case *c,
			 enum pc_result res, const char *reason,
			 long long ms, struct pc_totals *t)
{
	switch (res) {
	case PC_PASS:
		t->pass++;
		printf("ok %u %s\n", n, c->id);
		break;
	case PC_FAIL:
		t->fail++;
		printf("not ok %u %s # %s\n", n, c->id, reason);
		break;
	case PC_SKIP:
		t->skip++;
		printf("ok %u %s # SKIP %s\n", n, c->id, reason);
		break;
	case PC_XFAIL:
		t->xfail++;
		printf("ok %u %s # XFAIL %s\n", n, c->id, reason);
		break;
	case PC_TIMEOUT:
		t->timeout++;
		printf("not ok %u %s # TIMEOUT %s\n", n, c->id, reason);
		break;
	}
	printf("  ---\n  duration_ms: %lld\n  ...\n", ms);
	fflush(stdout);
}

static void on_signal(int sig)
{
	pid_t pid = running_pid;

	if (pid > 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	pc_knobs_restore_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void usage(FILE *f, const char *binary)
{
	fprintf(f,
		"usage: %s [-l] [-t GLOB]... [-T SECONDS]\n"
		"  -l          list case ids\n"
		"  -t GLOB     run only cases whose id matches (repeatable)\n"
		"  -T SECONDS  per-case watchdog (default %d, env PINCHECK_CASE_TIMEOUT)\n",
		binary, PC_DEFAULT_TIMEOUT_S);
}

static int parse_timeout(const char *s, unsigned int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v <= 0 || v > 86400)
		return -1;
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, const char *binary, int *list)
{
	const char *env = getenv("PINCHECK_CASE_TIMEOUT");
	int opt;

	if (env && parse_timeout(env, &case_timeout_s)) {
		fprintf(stderr, "%s: bad PINCHECK_CASE_TIMEOUT '%s'\n", binary, env);
		return -1;
	}
	while ((opt = getopt(argc, argv, "lt:T:h")) != -1) {
		switch (opt) {
		case 'l':
			*list = 1;
			break;
		case 't':
			if (nr_filters == PC_ARRAY_SIZE(filters)) {
				fprintf(stderr, "%s: too many -t\n", binary);
				return -1;
			}
			filters[nr_filters++] = optarg;
			break;
		case 'T':
			if (parse_timeout(optarg, &case_timeout_s)) {
				fprintf(stderr, "%s: bad timeout '%s'\n", binary,
					optarg);
				return -1;
			}
			break;
		case 'h':
			usage(stdout, binary);
			exit(0);
		default:
			usage(stderr, binary);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", binary,
			argv[optind]);
		return -1;
	}
	return 0;
}

static size_t count_selected(void)
{
	size_t i, n = 0;

	for (i = 0; i < nr_cases; i++)
		n += case_selected(&cases[i]);
	return n;
}

static int races_across_cpus;

void pc_cases_race_across_cpus(void)
{
	races_across_cpus = 1;
}

/*
 * PINCHECK_ONE_CPU=1 and no race across CPUs: keep this process, and so
 * every case process, thread and child, to the first CPU it may use.
 * Returns that CPU, or -1 when the binary keeps every CPU.
 */
static int keep_to_one_cpu(void)
{
	cpu_set_t allowed, one;
	int cpu;

	if (races_across_cpus || !pc_env_uint("PINCHECK_ONE_CPU", 0) ||
	    sched_getaffinity(0, sizeof(allowed), &allowed) ||
	    CPU_COUNT(&allowed) < 2)
		return -1;
	for (cpu = 0; !CPU_ISSET(cpu, &allowed); cpu++)
		;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return sched_setaffinity(0, sizeof(one), &one) ? -1 : cpu;
}

#define HELD_KNOBS_MAX 4

static struct held_knob {
	const char *path, *val, *what;
} held_knobs[HELD_KNOBS_MAX];
static size_t nr_held_knobs;

void pc_cases_hold_knob(const char *path, const char *val, const char *what)
{
	if (nr_held_knobs == HELD_KNOBS_MAX) {
		fprintf(stderr, "pincheck: more than %d knobs held for the cases\n",
			HELD_KNOBS_MAX);
		exit(2);
	}
	held_knobs[nr_held_knobs].path = path;
	held_knobs[nr_held_knobs].val = val;
	held_knobs[nr_held_knobs++].what = what;
}

/* Set the held knobs for every case to come; the header says so. */
static void hold_knobs(const char *binary)
{
	char old[128];
	size_t i;
	int err;

	for (i = 0; i < nr_held_knobs; i++) {
		const struct held_knob *k = &held_knobs[i];

		if (pc_knob_read(k->path, old, sizeof(old)) ||
		    !strcmp(old, k->val))
			continue;
		err = pc_knob_set(k->path, k->val);
		if (err)
			printf("# %s: %s: cannot write %s: %s (each case does it)\n",
			       binary, k->what, k->path, strerror(-err));
		else
			printf("# %s: %s for its cases (%s %s -> %s until it ends)\n",
			       binary, k->what, k->path, old, k->val);
	}
	pc_knobs_hold();
}

static void print_header(const char *binary, size_t n, int cpu)
{
	struct utsname u;

	uname(&u);
	printf("TAP version 13\n1..%zu\n", n);
	printf("# %s: kernel %s, page size %zu, PFNs %s\n", binary,
	       u.release, pc_page_size,
	       pc_pfn_readable() ? "readable" : "unreadable (not root)");
	if (cpu >= 0)
		printf("# %s: its cases keep to CPU %d (PINCHECK_ONE_CPU)\n",
		       binary, cpu);
	fflush(stdout);
}

/*
 * Why the case's engine cannot run here, probed once per engine in the
 * harness process: its cases then skip without a case process each (in a
 * TCG guest a fork costs ~20 ms and an absent engine has hundreds of cases).
 */
/*
 * In pincheck's VM the swap and the hugetlb pool come up behind the first
 * tests: a case on such a backing waits for them here, in the harness,
 * outside its watchdog (pc_vm_hw_wait returns at once outside the VM).
 * Cases that need swap on other backings wait in pc_swap_enabled().
 */
static void wait_vm_hw_for(const struct pc_case *c)
{
	if (c->backing && (c->backing->flags & (PC_BK_HUGETLB | PC_BK_SWAPPED)))
		pc_vm_hw_wait();
}

static const char *engine_unavailable(const struct pc_case *c)
{
	static const struct pc_engine_ops *probed[PC_NR_ENGINES];
	static char *why[PC_NR_ENGINES];
	static size_t nr_probed;
	const char *r;
	size_t i;

	if (!c->engine || !c->engine->probe)
		return NULL;
	for (i = 0; i < nr_probed; i++)
		if (probed[i] == c->engine)
			return why[i];
	r = c->engine->probe();
	if (nr_probed == PC_ARRAY_SIZE(probed))
		return r;
	probed[nr_probed] = c->engine;
	why[nr_probed] = r ? strdup(r) : NULL;
	return why[nr_probed++];
}

static int run_selected(void)
{
	struct pc_totals t = { 0 };
	char reason[PC_REASON_MAX];
	const char *why;
	unsigned int n = 0;
	size_t i;

	for (i = 0; i < nr_cases; i++) {
		enum pc_result res;
		long long start;

		if (!case_selected(&cases[i]))
			continue;
		if (cases[i].engine)
			pc_engine_prepare(cases[i].engine);
		wait_vm_hw_for(&cases[i]);
		start = pc_now_ms();
		reason[0] = '\0';
		why = engine_unavailable(&cases[i]);
		if (why) {
			snprintf(reason, sizeof(reason), "%s", why);
			res = PC_SKIP;
		} else {
			pc_engine_before_case(cases[i].engine);
			res = run_case(&cases[i], reason, sizeof(reason));
			pc_engine_after_case(cases[i].engine);
		}
		print_result(++n, &cases[i], res, reason, pc_now_ms() - start, &t);
	}
	printf("# Totals: pass:%u fail:%u xfail:%u xpass:0 skip:%u error:0\n",
	       t.pass, t.fail + t.timeout, t.xfail, t.skip);
	fflush(stdout);
	if (t.fail || t.timeout)
		return 1;
	if (!t.pass && !t.xfail && t.skip)
		return 4;
	return 0;
}

static int run_harness(void)
{
	int cpu = keep_to_one_cpu(), rc;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	pc_knobs_init();
	print_header(pc_binary(), count_selected(), cpu);
	hold_knobs(pc_binary());
	rc = run_selected();
	pc_knobs_restore_all();
	return rc;
}

/* The selected cases, in registered order, for a fixture's setup. */
static const struct pc_case **selected_cases(size_t n)
{
	const struct pc_case **sel = calloc(n + 1, sizeof(*sel));
	size_t i, k = 0;

	if (!sel) {
		fprintf(stderr, "pincheck: out of memory\n");
		exit(2);
	}
	for (i = 0; i < nr_cases; i++)
		if (case_selected(&cases[i]))
			sel[k++] = &cases[i];
	return sel;
}

int pc_main_fixture(int argc, char **argv, const char *binary,
		    void (*add_cases)(void), const struct pc_fixture *fx)
{
	int list = 0;
	size_t i, n;

	pc_report_set_binary(binary);
	pc_sys_init();
	if (parse_args(argc, argv, binary, &list))
		return 2;
	/* A listing is one write; results go out line by line. */
	setvbuf(stdout, NULL, list ? _IOFBF : _IOLBF, 0);
	add_cases();
	exit_on_duplicate_ids();
	n = count_selected();
	/* Listing nothing is an answer (run_tests.sh asks every binary). */
	if (nr_filters && !n && !list) {
		fprintf(stderr, "%s: no case matches the -t filter\n", binary);
		return 2;
	}
	if (list) {
		for (i = 0; i < nr_cases; i++)
			if (case_selected(&cases[i]))
				printf("%s\n", cases[i].id);
		return 0;
	}
	if (!fx)
		return run_harness();
	return pc_fixture_run(fx, selected_cases(n), n, run_harness);
}

int pc_main(int argc, char **argv, const char *binary,
	    void (*add_cases)(void))
{
	return pc_main_fixture(argc, argv, binary, add_cases, NULL);
}
