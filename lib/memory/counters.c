// SPDX-License-Identifier: GPL-2.0
/* Named counters read before and after an event (the proof a mover ran): see counters.h. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "report.h"
#include "sysprobe.h"

/* "mm->numa_scan_seq      :     3" in /proc/self/sched. */
static long long sched_field(const char *field)
{
	FILE *f = fopen("/proc/self/sched", "re");
	size_t n = strlen(field);
	long long val = -1;
	char line[256], *p;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, n) || (line[n] != ' ' && line[n] != ':'))
			continue;
		p = strchr(line + n, ':');
		if (p && sscanf(p + 1, "%lld", &val) != 1)
			val = -1;
		break;
	}
	fclose(f);
	return val;
}

long long pc_counter_read(const char *name)
{
	char buf[64];

	if (name[0] == '/')
		return pc_read_line(name, buf, sizeof(buf)) ? -1 :
		       strtoll(buf, NULL, 10);
	if (!strncmp(name, "sched:", 6))
		return sched_field(name + 6);
	return pc_vmstat(name);
}

void pc_counters_start(struct pc_counters *c, const char *const *names)
{
	memset(c, 0, sizeof(*c));
	for (; *names && c->n < PC_COUNTERS_MAX; names++) {
		c->name[c->n] = *names;
		c->before[c->n] = pc_counter_read(*names);
		c->after[c->n] = c->before[c->n];
		c->n++;
	}
}

void pc_counters_stop(struct pc_counters *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		c->after[i] = pc_counter_read(c->name[i]);
}

long long pc_counters_delta(const struct pc_counters *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		if (strcmp(c->name[i], name))
			continue;
		if (c->before[i] < 0 || c->after[i] < 0)
			return -1;
		return c->after[i] - c->before[i];
	}
	return -1;
}

/* The short form of a counter name: the last path component. */
static const char *counter_label(const char *name)
{
	const char *slash = strrchr(name, '/');

	if (name[0] == '/' && slash)
		return slash + 1;
	if (!strncmp(name, "sched:", 6))
		return name + 6;
	return name;
}

void pc_counters_print(const struct pc_counters *c, const char *label)
{
	char line[1024];
	size_t i, used = 0;

	used += snprintf(line, sizeof(line), "%s:", label);
	for (i = 0; i < c->n && used < sizeof(line); i++) {
		if (c->before[i] < 0 || c->after[i] < 0)
			used += snprintf(line + used, sizeof(line) - used,
					 "%s %s n/a", i ? "," : "",
					 counter_label(c->name[i]));
		else
			used += snprintf(line + used, sizeof(line) - used,
					 "%s %s %lld -> %lld (%+lld)",
					 i ? "," : "",
					 counter_label(c->name[i]),
					 c->before[i], c->after[i],
					 c->after[i] - c->before[i]);
	}
	pc_diag("%s", line);
}
