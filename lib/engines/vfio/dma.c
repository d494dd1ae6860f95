// SPDX-License-Identifier: GPL-2.0
/*
 * The VFIO engines' transfers: DMAs through the device's memory and the
 * bounce buffer, the sample of a slow device (engine.c's top comment),
 * and IOMMU faults read from the kernel log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "pattern.h"
#include "report.h"
#include "vfio_priv.h"

#define SAMPLE_SPANS		4	/* at most this many per region */
#define SAMPLE_HALF		504	/* bytes on each side of a boundary */
#define FAULT_WAIT_MS		1000	/* for the fault line of read_unmapped */

/* ---- IOMMU faults, from the kernel log ---- */

/* Position a /dev/kmsg reader at the end of the log; -1 if unreadable. */
int vfio_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/* A new log line that reports an IOMMU fault for our device, or NULL. */
static const char *kmsg_fault(struct vfio_priv *p)
{
	static char found[PC_ENGINE_ERR_MAX - 64];
	char rec[1024], *msg;
	ssize_t n;

	found[0] = '\0';
	if (p->kmsg < 0)
		return NULL;
	for (;;) {
		n = read(p->kmsg, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;	/* overwritten records: go on */
		if (n <= 0)
			break;
		rec[n] = '\0';
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		msg[strcspn(msg, "\n")] = '\0';
		if (found[0] || !strstr(msg, p->t.short_bdf) ||
		    (!strcasestr(msg, "fault") && !strstr(msg, "IO_PAGE_FAULT")))
			continue;
		vfio_copy_str(found, sizeof(found), msg);
	}
	return found[0] ? found : NULL;
}

int vfio_fault_check(struct pc_engine *e, struct vfio_priv *p,
		       const char *op)
{
	const char *line = kmsg_fault(p);

	if (!line)
		return 0;
	return pc_engine_err(e, -EFAULT,
			     "IOMMU fault during the device %s (not stale data): kernel: %s",
			     op, line);
}

/* ---- the sample ---- */

/* The part of span @s within [off, off + len); 0 if none. */
static int clip(const struct span *s, size_t off, size_t len,
		struct span *out)
{
	size_t a = s->off > off ? s->off : off;
	size_t z = s->off + s->len < off + len ? s->off + s->len : off + len;

	if (a >= z)
		return 0;
	out->off = a;
	out->len = z - a;
	return 1;
}

static int add_span(struct vfio_priv *p, size_t off, size_t len,
		    size_t total)
{
	struct span *s;

	if (off >= total)
		return 0;
	if (len > total - off)
		len = total - off;
	s = realloc(p->spans, (p->nspans + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	p->spans = s;
	p->spans[p->nspans].off = off;
	p->spans[p->nspans++].len = len;
	return 0;
}

/* Span for page pair @pair: across the boundary between its two pages. */
static int add_pair_span(struct vfio_priv *p, size_t pair, size_t len)
{
	size_t page = sysconf(_SC_PAGESIZE), mid = (2 * pair + 1) * page;

	if (mid >= len)		/* odd last page: its first bytes */
		return add_span(p, 2 * pair * page, 2 * SAMPLE_HALF, len);
	return add_span(p, mid - SAMPLE_HALF, 2 * SAMPLE_HALF, len);
}

/*
 * Window @k: page pairs k, k + nwin, k + 2 nwin, ... (at most
 * SAMPLE_SPANS, spread over the whole range); the windows 0 .. nwin - 1
 * together cover every pair once.  Rewrites the sample bitmap in place.
 */
static int set_window(struct vfio_priv *p, size_t k)
{
	size_t i, w, words = (p->len / 8 + 63) / 64;
	int rc = 0;

	p->nspans = 0;
	for (i = 0; !rc && i < SAMPLE_SPANS && k + i * p->nwin < p->pairs; i++)
		rc = add_pair_span(p, k + i * p->nwin, p->len);
	if (rc)
		return rc;
	memset(p->sample, 0, words * sizeof(uint64_t));
	for (i = 0; i < p->nspans; i++)
		for (w = p->spans[i].off / 8;
		     w < (p->spans[i].off + p->spans[i].len) / 8; w++)
			p->sample[w / 64] |= 1ULL << (w % 64);
	return 0;
}

/* Plan which bytes the device moves; sets p->sample when not all. */
int vfio_plan_sample(struct vfio_priv *p, size_t len)
{
	size_t page = sysconf(_SC_PAGESIZE), step, off;
	int rc = 0;

	p->nspans = 0;
	p->len = len;
	p->dev_wrote = 0;
	if (p->t.drv->dma_ms < VFIO_SLOW_MS) {
		step = p->t.drv->max_xfer & ~(size_t)7;
		for (off = 0; !rc && off < len; off += step)
			rc = add_span(p, off, step, len);
		return rc;
	}
	p->pairs = (len / page + 1) / 2;
	if (!p->pairs)
		p->pairs = 1;
	p->nwin = (p->pairs + SAMPLE_SPANS - 1) / SAMPLE_SPANS;
	p->sample = calloc((len / 8 + 63) / 64, sizeof(uint64_t));
	if (!p->sample)
		return -ENOMEM;
	/* a new pin starts on the window after the last one used */
	p->rot += p->win_used;
	p->win_used = 0;
	return set_window(p, p->rot % p->nwin);
}

/*
 * Before a transfer: move to the next window when that cannot make a
 * check judge a word the device never moved.  A dev_read may move on
 * while no dev_write happened since the pin (everything the checks
 * expect then came from the CPU, which writes every word); a dev_write
 * over the whole range may move on (it rewrites every word of its new
 * window).  Otherwise the window stays: a later dev_read must read back
 * the words the device wrote.  The bitmap changes in place, so a check
 * that took e->sample before the transfer judges that transfer's words.
 */
static int take_window(struct vfio_priv *p, int may_move)
{
	int rc = 0;

	if (may_move && p->win_used && p->nwin > 1) {
		p->rot++;
		rc = set_window(p, p->rot % p->nwin);
	}
	p->win_used = 1;
	return rc;
}

/* Count the pages the sample of a transfer of [off, off + len) judged. */
static void cover(struct vfio_priv *p, size_t off, size_t len)
{
	size_t page = sysconf(_SC_PAGESIZE), i, pg;
	struct coverage *c = &p->cov;
	struct span piece;

	if (!p->sample || !c->page)
		return;
	c->transfers++;
	for (i = 0; i < p->nspans; i++) {
		if (!clip(&p->spans[i], off, len, &piece))
			continue;
		for (pg = piece.off / page;
		     pg <= (piece.off + piece.len - 1) / page; pg++)
			c->page[pg / 64] |= 1ULL << (pg % 64);
	}
}

/* One line on what the sampled transfers judged; clears the coverage. */
void vfio_coverage_report(struct vfio_priv *p)
{
	struct coverage *c = &p->cov;
	size_t i, n = 0;

	if (c->page && c->transfers && c->nwin > 1) {
		for (i = 0; i < c->pages; i++)
			n += c->page[i / 64] >> (i % 64) & 1;
		pc_diag("vfio sample: %lu device transfers judged %zu of the %zu pages of the 0x%zx-byte range (%zu windows of up to %d page pairs, rotated)",
			c->transfers, n, c->pages, c->len, c->nwin,
			SAMPLE_SPANS);
	}
	free(c->page);
	memset(c, 0, sizeof(*c));
}

/* Coverage of a pin of @len bytes: carried on while the length stays. */
void vfio_coverage_start(struct vfio_priv *p, size_t len)
{
	size_t page = sysconf(_SC_PAGESIZE);
	struct coverage *c = &p->cov;

	if (!p->sample)
		return;
	if (c->page && c->len == len)
		return;
	vfio_coverage_report(p);
	c->pages = (len + page - 1) / page;
	c->page = calloc((c->pages + 63) / 64, sizeof(uint64_t));
	c->len = len;
	c->nwin = p->nwin;
}

void vfio_drop_sample(struct vfio_priv *p)
{
	free(p->spans);
	free(p->sample);
	p->spans = NULL;
	p->sample = NULL;
	p->nspans = 0;
	p->nwin = 0;
}

/* ---- the device's transfers ---- */

int vfio_dma(struct pc_engine *e, struct vfio_priv *p, uint64_t iova,
	       size_t dev_off, size_t len, enum pc_vfio_dir dir)
{
	const struct pc_vfio_driver *drv = p->t.drv;
	unsigned int timeout = drv->dma_ms * 20 > 2000 ? drv->dma_ms * 20 : 2000;
	long long t0 = pc_now_ns();
	int rc;

	p->dev.err[0] = '\0';
	rc = drv->memcpy_start(&p->dev, iova, dev_off, len, dir);
	if (!rc)
		rc = drv->memcpy_wait(&p->dev, timeout);
	p->dmas++;
	p->dma_ns += pc_now_ns() - t0;
	if (rc)
		return pc_engine_err(e, rc, "%s", p->dev.err[0] ? p->dev.err :
				     strerror(-rc));
	return 0;
}

/* One line on the device's DMAs since the open: how many, how long. */
void vfio_dma_report(struct vfio_priv *p)
{
	if (!p->dmas)
		return;
	pc_diag("vfio: %lu DMAs by %s %s, %.2f ms each on average",
		p->dmas, p->t.drv->name, p->t.bdf,
		p->dma_ns / 1e6 / p->dmas);
	p->dmas = 0;
	p->dma_ns = 0;
}

struct batch {
	struct span piece[SAMPLE_SPANS * 4];
	size_t dev_off[SAMPLE_SPANS * 4];
	size_t n, used;		/* pieces, device bytes in use */
};

/* Does @piece still fit in the device's memory with the batch? */
static int batch_fits(const struct vfio_priv *p, const struct batch *b,
		      size_t len)
{
	return b->n < sizeof(b->piece) / sizeof(b->piece[0]) &&
	       b->used + len <= p->t.drv->mem_size;
}

/* Read batch: pieces are in device memory; copy them out via the bounce. */
static int read_flush(struct pc_engine *e, struct vfio_priv *p,
		      struct batch *b, size_t off, char *out)
{
	size_t i;
	int rc;

	if (!b->n)
		return 0;
	rc = vfio_dma(e, p, BOUNCE_IOVA, 0, b->used, PC_VFIO_FROM_DEVICE);
	if (rc)
		return rc;
	for (i = 0; i < b->n; i++)
		memcpy(out + b->piece[i].off - off, p->bounce + b->dev_off[i],
		       b->piece[i].len);
	memset(p->bounce, 0, b->used);
	b->n = b->used = 0;
	return 0;
}

/* Write batch: pieces are in the bounce; move them to device, then RAM. */
static int write_flush(struct pc_engine *e, struct vfio_priv *p,
		       struct batch *b)
{
	size_t i;
	int rc;

	if (!b->n)
		return 0;
	rc = vfio_dma(e, p, BOUNCE_IOVA, 0, b->used, PC_VFIO_TO_DEVICE);
	for (i = 0; !rc && i < b->n; i++)
		rc = vfio_dma(e, p, p->region_iova + b->piece[i].off,
			 b->dev_off[i], b->piece[i].len, PC_VFIO_FROM_DEVICE);
	memset(p->bounce, 0, b->used);
	b->n = b->used = 0;
	return rc;
}

static void fill_unsampled(void *out, size_t len)
{
	uint64_t w = PC_WORD_UNSAMPLED;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8)
		memcpy((char *)out + i, &w, 8);
	memset((char *)out + i, 0x7e, len - i);
}

int vfio_dev_read(struct pc_engine *e, size_t off, size_t len,
			 void *out)
{
	struct vfio_priv *p = e->priv;
	struct batch b = { .n = 0 };
	struct span piece;
	size_t i;
	int rc = 0;

	fill_unsampled(out, len);
	if (p->sample)
		rc = take_window(p, !p->dev_wrote);
	for (i = 0; !rc && i < p->nspans; i++) {
		if (!clip(&p->spans[i], off, len, &piece))
			continue;
		if (!batch_fits(p, &b, piece.len))
			rc = read_flush(e, p, &b, off, out);
		if (rc)
			break;
		rc = vfio_dma(e, p, p->region_iova + piece.off, b.used, piece.len,
			 PC_VFIO_TO_DEVICE);
		b.piece[b.n] = piece;
		b.dev_off[b.n++] = b.used;
		b.used += piece.len;
	}
	if (!rc)
		rc = read_flush(e, p, &b, off, out);
	if (!rc)
		cover(p, off, len);
	return vfio_fault_check(e, p, "read") ?: rc;
}

int vfio_dev_write(struct pc_engine *e, size_t off, size_t len,
			  const void *data)
{
	struct vfio_priv *p = e->priv;
	struct batch b = { .n = 0 };
	struct span piece;
	size_t i;
	int rc = 0;

	if (p->sample)
		rc = take_window(p, !off && len == p->len);
	p->dev_wrote = 1;
	for (i = 0; !rc && i < p->nspans; i++) {
		if (!clip(&p->spans[i], off, len, &piece))
			continue;
		if (!batch_fits(p, &b, piece.len))
			rc = write_flush(e, p, &b);
		if (rc)
			break;
		memcpy(p->bounce + b.used, (const char *)data + piece.off - off,
		       piece.len);
		b.piece[b.n] = piece;
		b.dev_off[b.n++] = b.used;
		b.used += piece.len;
	}
	if (!rc)
		rc = write_flush(e, p, &b);
	if (!rc)
		cover(p, off, len);
	return vfio_fault_check(e, p, "write") ?: rc;
}

/*
 * The fault line of a DMA that must fault: the IOMMU's fault interrupt may
 * reach another CPU after a fast device completed, so wait for it a while.
 */
static int fault_wait(struct pc_engine *e, struct vfio_priv *p,
		      const char *op)
{
	struct timespec pause = { .tv_nsec = 10000000 };
	long long deadline = pc_now_ms() + FAULT_WAIT_MS;
	int rc;

	while (!(rc = vfio_fault_check(e, p, op)) && pc_now_ms() < deadline)
		nanosleep(&pause, NULL);
	return rc;
}

int pc_vfio_read_unmapped(struct pc_engine *e, size_t len)
{
	struct vfio_priv *p = e->priv;
	int rc;

	if (!p || (e->ops != &pc_engine_vfio && e->ops != &pc_engine_vfio_iommufd))
		return pc_engine_err(e, -EINVAL, "not an open VFIO engine");
	if (p->kmsg < 0)
		return pc_engine_err(e, -ENOENT,
				     "cannot read /dev/kmsg: IOMMU faults cannot be told apart");
	rc = vfio_dma(e, p, UNMAPPED_IOVA, 0, len, PC_VFIO_TO_DEVICE);
	if (!rc)
		rc = vfio_dma(e, p, BOUNCE_IOVA, 0, len, PC_VFIO_FROM_DEVICE);
	return fault_wait(e, p, "read") ?: rc;
}

