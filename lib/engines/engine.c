// SPDX-License-Identifier: GPL-2.0
/*
 * The engine registry and the wrappers every test goes through.
 *
 * The wrappers own the state an engine instance is in (open, pinned range)
 * and check every request against it before the engine sees it, so each
 * engine only has to drive its kernel path.  Errors come back as -errno
 * with a one-line message in e->err.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backing.h"
#include "engine.h"
#include "report.h"
#include "pattern.h"
#include "util.h"

#define PC_ENGINE_ENTRY(name) &pc_engine_##name,
static const struct pc_engine_ops *const all_engines[] = {
	PC_ENGINE_TABLE(PC_ENGINE_ENTRY)
};
#undef PC_ENGINE_ENTRY

size_t pc_engines(const struct pc_engine_ops *const **list)
{
	*list = all_engines;
	return PC_ARRAY_SIZE(all_engines);
}

const struct pc_engine_ops *pc_engine_find(const char *name)
{
	size_t i;

	for (i = 0; i < PC_ARRAY_SIZE(all_engines); i++)
		if (!strcmp(all_engines[i]->name, name))
			return all_engines[i];
	return NULL;
}

void pc_engine_prepare(const struct pc_engine_ops *ops)
{
	static const struct pc_engine_ops *done[PC_ARRAY_SIZE(all_engines)];
	size_t i;

	if (!ops->prepare)
		return;
	for (i = 0; i < PC_ARRAY_SIZE(done) && done[i]; i++)
		if (done[i] == ops)
			return;
	if (i < PC_ARRAY_SIZE(done))
		done[i] = ops;
	ops->prepare();
}

void pc_engine_before_case(const struct pc_engine_ops *ops)
{
	if (ops && ops->before_case)
		ops->before_case();
}

void pc_engine_after_case(const struct pc_engine_ops *ops)
{
	if (ops && ops->after_case)
		ops->after_case();
}

int pc_engine_err(struct pc_engine *e, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->err, sizeof(e->err), fmt, ap);
	va_end(ap);
	return rc;
}

/* An engine that failed without saying why still gets a message. */
static int engine_result(struct pc_engine *e, const char *op, int rc)
{
	if (rc > 0)
		rc = -EIO;
	if (rc && !e->err[0])
		pc_engine_err(e, rc, "%s %s: %s", e->ops->name, op,
			      strerror(-rc));
	return rc;
}

int pc_engine_open(struct pc_engine *e, const struct pc_engine_ops *ops)
{
	memset(e, 0, sizeof(*e));
	e->ops = ops;
	if (!ops->open)
		return 0;
	return engine_result(e, "open", ops->open(e));
}

static int check_pin_flags(struct pc_engine *e, unsigned int flags)
{
	const char *name = e->ops->name;

	if (flags != PC_PIN_RO && flags != PC_PIN_RW)
		return pc_engine_err(e, -EINVAL,
				     "%s pin: flags 0x%x: need exactly one of PC_PIN_RO, PC_PIN_RW",
				     name, flags);
	if (flags == PC_PIN_RO && !(e->ops->caps & PC_CAP_PIN_RO))
		return pc_engine_err(e, -EOPNOTSUPP,
				     "%s cannot pin read-only (no PC_CAP_PIN_RO)",
				     name);
	if (flags == PC_PIN_RW && !(e->ops->caps & PC_CAP_PIN_RW))
		return pc_engine_err(e, -EOPNOTSUPP,
				     "%s cannot pin read-write (no PC_CAP_PIN_RW)",
				     name);
	return 0;
}

int pc_engine_pin(struct pc_engine *e, void *addr, size_t len,
		  unsigned int flags)
{
	int rc;

	e->err[0] = '\0';
	if (e->pinned)
		return pc_engine_err(e, -EBUSY, "%s pin: already pinned %p+0x%zx",
				     e->ops->name, e->addr, e->len);
	if (!addr || !len)
		return pc_engine_err(e, -EINVAL, "%s pin: empty range",
				     e->ops->name);
	if (!e->ops->pin)
		return pc_engine_err(e, -EOPNOTSUPP, "%s cannot pin",
				     e->ops->name);
	rc = check_pin_flags(e, flags);
	if (rc)
		return rc;
	/* The engine may look at the range through e while it pins. */
	e->addr = addr;
	e->len = len;
	e->pin_flags = flags;
	rc = engine_result(e, "pin", e->ops->pin(e, addr, len, flags));
	if (rc) {
		e->addr = NULL;
		e->len = 0;
		e->pin_flags = 0;
		return rc;
	}
	e->pinned = 1;
	return 0;
}

/* Is [off, off + len) a non-empty part of the pinned range? */
static int check_io(struct pc_engine *e, const char *op, int present,
		    size_t off, size_t len, const void *buf)
{
	const char *name = e->ops->name;

	e->err[0] = '\0';
	if (!present)
		return pc_engine_err(e, -EOPNOTSUPP, "%s cannot %s", name, op);
	if (!e->pinned)
		return pc_engine_err(e, -EINVAL, "%s %s: nothing pinned",
				     name, op);
	if (!len || !buf)
		return pc_engine_err(e, -EINVAL, "%s %s: empty request",
				     name, op);
	if (off > e->len || len > e->len - off)
		return pc_engine_err(e, -ERANGE,
				     "%s %s [0x%zx, 0x%zx) outside the pinned 0x%zx bytes",
				     name, op, off, off + len, e->len);
	return 0;
}

int pc_engine_dev_read(struct pc_engine *e, size_t off, size_t len, void *out)
{
	int rc = check_io(e, "dev_read", e->ops->dev_read != NULL, off, len,
			  out);

	if (rc)
		return rc;
	return engine_result(e, "dev_read", e->ops->dev_read(e, off, len, out));
}

int pc_engine_dev_write(struct pc_engine *e, size_t off, size_t len,
			const void *data)
{
	int rc = check_io(e, "dev_write", e->ops->dev_write != NULL, off, len,
			  data);

	if (rc)
		return rc;
	if (!(e->pin_flags & PC_PIN_RW))
		return pc_engine_err(e, -EPERM,
				     "%s dev_write: the range is pinned read-only",
				     e->ops->name);
	return engine_result(e, "dev_write",
			     e->ops->dev_write(e, off, len, data));
}

int pc_engine_unpin(struct pc_engine *e)
{
	int rc = 0;

	e->err[0] = '\0';
	if (!e->pinned)
		return pc_engine_err(e, -EINVAL, "%s unpin: nothing pinned",
				     e->ops->name);
	if (e->ops->unpin)
		rc = engine_result(e, "unpin", e->ops->unpin(e));
	/* Whatever the engine said, the pin is gone from our side. */
	e->pinned = 0;
	e->sample = NULL;
	e->addr = NULL;
	e->len = 0;
	e->pin_flags = 0;
	return rc;
}

void pc_engine_close(struct pc_engine *e)
{
	if (!e->ops)
		return;
	if (e->pinned)
		pc_engine_unpin(e);
	if (e->ops->close)
		e->ops->close(e);
	e->priv = NULL;
	e->ops = NULL;
}

static int backing_listed(const char *list, const char *name)
{
	char buf[160], *tok, *save;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save))
		if (!fnmatch(tok, name, 0))
			return 1;
	return 0;
}

/* A slow engine runs on the backings the case's test listed for it. */
static const char *slow_skip(const struct pc_engine_ops *ops,
			     const struct pc_case *c)
{
	static char why[320];
	const char *all = getenv(PC_ENV_SLOW_ALL);
	const char *list = c->slow_backings ? c->slow_backings : "anon";
	const char *slow = "it is slow";

	if (!(ops->caps & PC_CAP_SLOW) || !c->backing ||
	    (all && !strcmp(all, "1")) ||
	    backing_listed(list, c->backing->name))
		return NULL;
	if (ops->slow)
		slow = ops->slow();
	if (!slow)
		return NULL;
	snprintf(why, sizeof(why),
		 "not run on %s: %s, so %s runs on %s only (io_uring and gup_test cover the rest; %s=1 runs every backing)",
		 ops->name, slow, pc_binary(),
		 list, PC_ENV_SLOW_ALL);
	return why;
}

const char *pc_engine_skip_reason(const struct pc_engine_ops *ops,
				  const struct pc_case *c)
{
	const char *why = ops->probe ? ops->probe() : NULL;

	if (!why && ops->case_skip && c)
		why = ops->case_skip(c);
	if (!why && c)
		why = slow_skip(ops, c);
	return why;
}

void pc_engine_open_or_skip(struct pc_engine *e,
			    const struct pc_engine_ops *ops)
{
	const char *why = pc_engine_skip_reason(ops, pc_current());

	if (why)
		pc_skip("%s", why);
	if (pc_engine_open(e, ops))
		pc_fail("%s", e->err);
}

void pc_dev_write_gen(struct pc_engine *e, size_t off, size_t len,
		      unsigned int gen)
{
	void *buf = pc_xmalloc(len);

	pc_fill(buf, off, len, gen);
	if (pc_engine_dev_write(e, off, len, buf))
		pc_fail("device write of gen %u at [0x%zx, 0x%zx): %s", gen,
			off, off + len, e->err);
	free(buf);
}

void *pc_dev_read_alloc(struct pc_engine *e, size_t off, size_t len)
{
	void *buf = pc_xmalloc(len);

	if (pc_engine_dev_read(e, off, len, buf))
		pc_fail("device read of [0x%zx, 0x%zx): %s", off, off + len,
			e->err);
	return buf;
}
