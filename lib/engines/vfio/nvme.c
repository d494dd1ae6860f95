// SPDX-License-Identifier: GPL-2.0
/*
 * QEMU's emulated NVMe controller (1b36:0010) as a DMA engine.
 *
 * "Device memory" is the first NVME_MEM_SIZE bytes of namespace 1: an
 * NVMe Write makes the device read host memory (IOVA -> device), an NVMe
 * Read makes it write host memory (device -> IOVA).  Only a controller
 * whose serial number is exactly "pincheck-dma" is driven (the PCI id is
 * QEMU's, and the serial is the one scripts/vm/vm.sh gives the
 * controller it adds): init refuses any other before its first I/O
 * command, so a disk named by mistake is never written.
 *
 * The driver polls: no interrupts (pin-based ones masked with INTMS,
 * the I/O completion queue created without them), completions found by
 * the phase bit.  Its own memory (dev->mem, mapped by the engine) holds
 * the admin and I/O queues, the Identify buffer, one SGL segment and two
 * one-LBA pad buffers.
 *
 * Byte-exact transfers: the engine asks for any length at any device
 * offset, while the device moves whole LBAs.  Every command describes
 * its data with an SGL (QEMU's controller reports SGL support without
 * alignment, SGLS bits 1:0 = 01b, checked at init): the bytes of the
 * request as one data block at [iova, iova + len), the rest of the first
 * and last LBA as data blocks in the pad buffers.  The device therefore
 * never touches host memory outside the request.  A Write that starts or
 * ends inside an LBA first Reads that LBA into its pad buffer
 * (read-modify-write), so device bytes outside the request keep their
 * value, as with edu's memory.
 *
 * A DMA the IOMMU refuses: QEMU's controller either completes the command
 * with a Data Transfer Error (-EFAULT here, the status in the message)
 * or moves what the failed translation gave and completes it; the
 * kernel's IOMMU fault line tells the engine (dma.c) either way.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vfio_dev.h"
#include "clock.h"

#define NVME_BAR		0
#define NVME_REG_CAP		0x00
#define NVME_REG_INTMS		0x0c
#define NVME_REG_CC		0x14
#define NVME_REG_CSTS		0x1c
#define NVME_REG_AQA		0x24
#define NVME_REG_ASQ		0x28
#define NVME_REG_ACQ		0x30
#define NVME_REG_DBS		0x1000

#define NVME_CAP_MQES(c)	((c) & 0xffff)
#define NVME_CAP_TO(c)		(((c) >> 24) & 0xff)	/* 500 ms units */
#define NVME_CAP_DSTRD(c)	(((c) >> 32) & 0xf)
#define NVME_CAP_CSS_NVM(c)	(((c) >> 37) & 1)
#define NVME_CAP_MPSMIN(c)	(((c) >> 48) & 0xf)

#define NVME_CC_EN		0x1
#define NVME_CC_IOSQES		(6u << 16)	/* 64-byte entries */
#define NVME_CC_IOCQES		(4u << 20)	/* 16-byte entries */
#define NVME_CSTS_RDY		0x1
#define NVME_CSTS_CFS		0x2

#define NVME_ADM_CREATE_SQ	0x01
#define NVME_ADM_CREATE_CQ	0x05
#define NVME_ADM_IDENTIFY	0x06
#define NVME_CMD_WRITE		0x01
#define NVME_CMD_READ		0x02
#define NVME_PSDT_SGL		(1u << 14)	/* in command dword 0 */
#define NVME_SGL_DATA_BLOCK	0x00		/* descriptor type << 4 */
#define NVME_SGL_LAST_SEGMENT	0x30
#define NVME_SC_DATA_XFER_ERR	0x04		/* generic status */

/* Identify Controller / Namespace fields (byte offsets) */
#define ID_CTRL_SN		4
#define ID_CTRL_SN_LEN		20
#define ID_CTRL_MDTS		77
#define ID_CTRL_SGLS		536
#define ID_NS_NSZE		0
#define ID_NS_FLBAS		26
#define ID_NS_LBAF		128

#define NVME_SERIAL		"pincheck-dma"
#define NVME_NSID		1
#define NVME_QDEPTH		64
#define NVME_MEM_SIZE		(128u << 10)	/* device memory used */
#define NVME_IOVA_LIMIT		(1ULL << 39)	/* intel-iommu's 39-bit AW */
#define NVME_SYNC_MS		2000		/* admin and RMW commands */
#define NVME_POLL_NS		20000

/* The driver's own memory (dev->mem), 4 KiB each */
enum {
	OWN_ASQ, OWN_ACQ, OWN_IOSQ, OWN_IOCQ, OWN_IDENT, OWN_SGL,
	OWN_PAD0, OWN_PAD1, OWN_PAGES
};
#define OWN_PAGE		4096u
#define OWN(i)			((i) * OWN_PAGE)

struct nvme_cmd {
	uint32_t dw0;		/* opcode, PSDT, command id */
	uint32_t nsid;
	uint32_t rsvd[2];
	uint64_t mptr;
	uint8_t dptr[16];	/* PRP1 + PRP2, or SGL descriptor 1 */
	uint32_t cdw[6];	/* dwords 10..15 */
};

struct nvme_sgl {
	uint64_t addr;
	uint32_t len;
	uint8_t rsvd[3];
	uint8_t type;
};

struct nvme_queue {
	uint16_t qid, sq_tail, cq_head;
	uint8_t phase;
	unsigned int sq_off, cq_off;	/* in dev->mem */
};

/* One controller per process: the engine opens one device. */
static struct {
	struct nvme_queue admin, io;
	unsigned int dstrd;	/* doorbell stride: 4 << CAP.DSTRD */
	unsigned int lbs;	/* LBA size */
	uint16_t cid;
	int pending;		/* command id of the started DMA, -1: none */
	int pending_write;
} nv = { .pending = -1 };

_Static_assert(sizeof(struct nvme_cmd) == 64, "NVMe command is 64 bytes");
_Static_assert(sizeof(struct nvme_sgl) == 16, "SGL descriptor is 16 bytes");

static void *own(struct pc_vfio_dev *d, unsigned int off)
{
	return (char *)d->mem + off;
}

static uint64_t own_iova(struct pc_vfio_dev *d, unsigned int off)
{
	return d->mem_iova + off;
}

static int reg_read64(struct pc_vfio_dev *d, uint64_t off, uint64_t *val)
{
	uint32_t lo, hi;
	int rc = pc_vfio_bar_read32(d, NVME_BAR, off, &lo);

	if (!rc)
		rc = pc_vfio_bar_read32(d, NVME_BAR, off + 4, &hi);
	if (!rc)
		*val = (uint64_t)hi << 32 | lo;
	return rc;
}

static int reg_write64(struct pc_vfio_dev *d, uint64_t off, uint64_t val)
{
	int rc = pc_vfio_bar_write32(d, NVME_BAR, off, (uint32_t)val);

	return rc ?: pc_vfio_bar_write32(d, NVME_BAR, off + 4, val >> 32);
}

static int doorbell(struct pc_vfio_dev *d, uint16_t qid, int cq,
		    uint16_t val)
{
	return pc_vfio_bar_write32(d, NVME_BAR,
				   NVME_REG_DBS + (2 * qid + cq) * nv.dstrd, val);
}

/* Put @c in @q's submission queue and ring its doorbell. */
static int submit(struct pc_vfio_dev *d, struct nvme_queue *q,
		  struct nvme_cmd *c)
{
	struct nvme_cmd *slot = own(d, q->sq_off);

	c->dw0 = (c->dw0 & 0xffff) | (uint32_t)++nv.cid << 16;
	slot[q->sq_tail] = *c;
	q->sq_tail = (q->sq_tail + 1) % NVME_QDEPTH;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return doorbell(d, q->qid, 0, q->sq_tail);
}

/* The completion of command @cid on @q: its status field, or -errno. */
static int reap(struct pc_vfio_dev *d, struct nvme_queue *q, uint16_t cid,
		unsigned int timeout_ms)
{
	struct timespec pause = { .tv_nsec = NVME_POLL_NS };
	long long deadline = pc_now_ms() + timeout_ms;
	uint32_t *cqe, dw3, csts = 0;
	int rc;

	for (;;) {
		cqe = (uint32_t *)own(d, q->cq_off) + 4 * q->cq_head;
		dw3 = __atomic_load_n(&cqe[3], __ATOMIC_ACQUIRE);
		if ((dw3 >> 16 & 1) == q->phase)
			break;
		if (pc_now_ms() > deadline) {
			pc_vfio_bar_read32(d, NVME_BAR, NVME_REG_CSTS, &csts);
			snprintf(d->err, sizeof(d->err),
				 "nvme: no completion of command %u on queue %u after %u ms (CSTS 0x%x)",
				 cid, q->qid, timeout_ms, csts);
			return -ETIMEDOUT;
		}
		nanosleep(&pause, NULL);
	}
	if (++q->cq_head == NVME_QDEPTH) {
		q->cq_head = 0;
		q->phase ^= 1;
	}
	rc = doorbell(d, q->qid, 1, q->cq_head);
	if (rc)
		return rc;
	if ((dw3 & 0xffff) != cid) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: completion of command %u on queue %u, expected %u",
			 dw3 & 0xffff, q->qid, cid);
		return -EPROTO;
	}
	return dw3 >> 17;
}

/* Run an admin command; 0 or -errno (d->err names @what). */
static int admin(struct pc_vfio_dev *d, struct nvme_cmd *c, const char *what)
{
	int rc = submit(d, &nv.admin, c);

	if (!rc)
		rc = reap(d, &nv.admin, nv.cid, NVME_SYNC_MS);
	if (rc > 0) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: %s failed with status 0x%x", what, rc);
		rc = -EIO;
	}
	return rc;
}

/* CSTS reads as @rdy: 1; the controller failed or is gone: -1. */
static int csts_is(uint32_t csts, int rdy)
{
	if (csts == 0xffffffff || (rdy && (csts & NVME_CSTS_CFS)))
		return -1;
	return (csts & NVME_CSTS_RDY) == (uint32_t)rdy;
}

/* Wait until CSTS.RDY is @rdy; 0 or -errno. */
static int wait_ready(struct pc_vfio_dev *d, int rdy, unsigned int to_ms)
{
	uint32_t csts = 0;
	int rc = pc_vfio_poll32(d, NVME_BAR, NVME_REG_CSTS, csts_is, rdy, to_ms,
				1000000, &csts);

	if (rc == -ETIMEDOUT || rc == -EIO) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: CSTS 0x%x: the controller did not become %s within %u ms",
			 csts, rdy ? "ready" : "disabled", to_ms);
		return -EIO;
	}
	return rc;
}

static void queue_init(struct nvme_queue *q, uint16_t qid,
		       unsigned int sq_off, unsigned int cq_off)
{
	q->qid = qid;
	q->sq_tail = q->cq_head = 0;
	q->phase = 1;
	q->sq_off = sq_off;
	q->cq_off = cq_off;
}

/* Disable, set the admin queue, enable; 0 or -errno. */
static int ctrl_reset(struct pc_vfio_dev *d)
{
	uint64_t cap;
	uint32_t cc, to_ms;
	int rc;

	rc = reg_read64(d, NVME_REG_CAP, &cap);
	if (rc)
		return rc;
	if (!NVME_CAP_CSS_NVM(cap) || NVME_CAP_MPSMIN(cap) ||
	    NVME_CAP_MQES(cap) + 1 < NVME_QDEPTH) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: CAP 0x%llx: needs the NVM command set, 4 KiB pages and %d queue entries",
			 (unsigned long long)cap, NVME_QDEPTH);
		return -ENODEV;
	}
	nv.dstrd = 4u << NVME_CAP_DSTRD(cap);
	to_ms = (NVME_CAP_TO(cap) ?: 1) * 500;
	if (d->bar_size[NVME_BAR] < NVME_REG_DBS + 4 * nv.dstrd) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: BAR0 of %llu bytes has no room for the doorbells",
			 (unsigned long long)d->bar_size[NVME_BAR]);
		return -ENODEV;
	}
	rc = pc_vfio_bar_read32(d, NVME_BAR, NVME_REG_CC, &cc);
	if (!rc && (cc & NVME_CC_EN))
		rc = pc_vfio_bar_write32(d, NVME_BAR, NVME_REG_CC, 0);
	if (!rc)
		rc = wait_ready(d, 0, to_ms);
	if (rc)
		return rc;
	memset(d->mem, 0, d->mem_len);
	queue_init(&nv.admin, 0, OWN(OWN_ASQ), OWN(OWN_ACQ));
	queue_init(&nv.io, 1, OWN(OWN_IOSQ), OWN(OWN_IOCQ));
	nv.pending = -1;
	rc = pc_vfio_bar_write32(d, NVME_BAR, NVME_REG_AQA,
				 (NVME_QDEPTH - 1) << 16 | (NVME_QDEPTH - 1));
	if (!rc)
		rc = reg_write64(d, NVME_REG_ASQ, own_iova(d, OWN(OWN_ASQ)));
	if (!rc)
		rc = reg_write64(d, NVME_REG_ACQ, own_iova(d, OWN(OWN_ACQ)));
	if (!rc)
		rc = pc_vfio_bar_write32(d, NVME_BAR, NVME_REG_CC, NVME_CC_EN |
					 NVME_CC_IOSQES | NVME_CC_IOCQES);
	if (!rc)
		rc = wait_ready(d, 1, to_ms);
	/* no pin-based interrupts: nobody in the kernel handles them */
	return rc ?: pc_vfio_bar_write32(d, NVME_BAR, NVME_REG_INTMS,
					 0xffffffff);
}

static int identify(struct pc_vfio_dev *d, uint32_t cns, uint32_t nsid,
		    const char *what)
{
	struct nvme_cmd c = { .dw0 = NVME_ADM_IDENTIFY, .nsid = nsid };
	uint64_t buf = own_iova(d, OWN(OWN_IDENT));

	memcpy(c.dptr, &buf, sizeof(buf));
	c.cdw[0] = cns;
	return admin(d, &c, what);
}

/* Identify Controller: ours (the serial), SGLs without alignment, MDTS. */
static int check_ctrl(struct pc_vfio_dev *d)
{
	const unsigned char *id = own(d, OWN(OWN_IDENT));
	char sn[ID_CTRL_SN_LEN + 1];
	uint32_t sgls;
	size_t n = ID_CTRL_SN_LEN;
	int rc = identify(d, 1, 0, "Identify Controller");

	if (rc)
		return rc;
	memcpy(sn, id + ID_CTRL_SN, n);
	while (n && (sn[n - 1] == ' ' || !sn[n - 1]))
		n--;
	sn[n] = '\0';
	if (strcmp(sn, NVME_SERIAL)) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: serial number '%s' is not '" NVME_SERIAL "': pincheck writes only to the NVMe controller its VM adds (-device nvme,serial=" NVME_SERIAL "), never to a disk",
			 sn);
		return -EPERM;
	}
	memcpy(&sgls, id + ID_CTRL_SGLS, sizeof(sgls));
	if ((sgls & 3) != 1) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: SGLS 0x%x: needs SGLs without alignment for byte-exact transfers",
			 sgls);
		return -ENODEV;
	}
	if (id[ID_CTRL_MDTS] &&
	    (4096ULL << id[ID_CTRL_MDTS]) < NVME_MEM_SIZE + 2 * 4096) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: MDTS %u: transfers of %u bytes are needed",
			 id[ID_CTRL_MDTS], NVME_MEM_SIZE + 2 * 4096);
		return -ENODEV;
	}
	return 0;
}

/* Identify Namespace 1: the LBA size, no metadata, enough LBAs. */
static int check_ns(struct pc_vfio_dev *d)
{
	const unsigned char *id = own(d, OWN(OWN_IDENT));
	uint64_t nsze;
	uint32_t lbaf;
	int rc = identify(d, 0, NVME_NSID, "Identify Namespace 1");

	if (rc)
		return rc;
	memcpy(&nsze, id + ID_NS_NSZE, sizeof(nsze));
	memcpy(&lbaf, id + ID_NS_LBAF + 4 * (id[ID_NS_FLBAS] & 0xf),
	       sizeof(lbaf));
	nv.lbs = (lbaf >> 16 & 0xff) < 32 ? 1u << (lbaf >> 16 & 0xff) : 0;
	if ((nv.lbs != 512 && nv.lbs != 4096) || (lbaf & 0xffff) ||
	    !nv.lbs || nsze < NVME_MEM_SIZE / nv.lbs) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: namespace 1 has %llu LBAs of %u bytes (metadata %u): needs 512 or 4096, no metadata, %u bytes",
			 (unsigned long long)nsze, nv.lbs, lbaf & 0xffff,
			 NVME_MEM_SIZE);
		return -ENODEV;
	}
	return 0;
}

/* One I/O completion queue (no interrupts) and its submission queue. */
static int create_io_queues(struct pc_vfio_dev *d)
{
	struct nvme_cmd cq = { .dw0 = NVME_ADM_CREATE_CQ };
	struct nvme_cmd sq = { .dw0 = NVME_ADM_CREATE_SQ };
	uint64_t cq_iova = own_iova(d, OWN(OWN_IOCQ));
	uint64_t sq_iova = own_iova(d, OWN(OWN_IOSQ));
	int rc;

	memcpy(cq.dptr, &cq_iova, sizeof(cq_iova));
	cq.cdw[0] = (NVME_QDEPTH - 1) << 16 | nv.io.qid;
	cq.cdw[1] = 1;			/* physically contiguous, IEN = 0 */
	memcpy(sq.dptr, &sq_iova, sizeof(sq_iova));
	sq.cdw[0] = (NVME_QDEPTH - 1) << 16 | nv.io.qid;
	sq.cdw[1] = (uint32_t)nv.io.qid << 16 | 1;
	rc = admin(d, &cq, "Create I/O Completion Queue");
	return rc ?: admin(d, &sq, "Create I/O Submission Queue");
}

static int nvme_init(struct pc_vfio_dev *d)
{
	int rc;

	if (!d->mem || d->mem_len < OWN(OWN_PAGES) || d->mem_iova % OWN_PAGE) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: the engine mapped %zu bytes of driver memory, %u needed",
			 d->mem ? d->mem_len : 0, OWN(OWN_PAGES));
		return -EINVAL;
	}
	rc = ctrl_reset(d);
	if (!rc)
		rc = check_ctrl(d);
	if (!rc)
		rc = check_ns(d);
	if (!rc)
		rc = create_io_queues(d);
	return rc;
}

/* Read or write LBAs [slba, slba + nlb) with the SGL in @sgl[0..n). */
static int submit_rw(struct pc_vfio_dev *d, int write, uint64_t slba,
		     uint32_t nlb, const struct nvme_sgl *sgl, unsigned int n)
{
	struct nvme_cmd c = {
		.dw0 = (write ? NVME_CMD_WRITE : NVME_CMD_READ) | NVME_PSDT_SGL,
		.nsid = NVME_NSID,
	};
	struct nvme_sgl seg = {
		.addr = own_iova(d, OWN(OWN_SGL)),
		.len = n * sizeof(*sgl),
		.type = NVME_SGL_LAST_SEGMENT,
	};

	if (n == 1) {
		memcpy(c.dptr, sgl, sizeof(*sgl));
	} else {
		memcpy(own(d, OWN(OWN_SGL)), sgl, n * sizeof(*sgl));
		memcpy(c.dptr, &seg, sizeof(seg));
	}
	c.cdw[0] = (uint32_t)slba;
	c.cdw[1] = slba >> 32;
	c.cdw[2] = nlb - 1;
	return submit(d, &nv.io, &c);
}

/* Turn a completion status of a data command into 0 or -errno. */
static int rw_status(struct pc_vfio_dev *d, int status, int write)
{
	if (status <= 0)
		return status;
	snprintf(d->err, sizeof(d->err),
		 "nvme: %s completed with status 0x%x (SCT %u, SC 0x%02x)%s",
		 write ? "Write (device reads memory)" :
			 "Read (device writes memory)",
		 status, status >> 8 & 7, status & 0xff,
		 (status & 0x7ff) == NVME_SC_DATA_XFER_ERR ?
			 ": data transfer error, a DMA of the device failed" : "");
	return (status & 0x7ff) == NVME_SC_DATA_XFER_ERR ? -EFAULT : -EIO;
}

/* Read LBA @lba into pad buffer @pad, waiting for it. */
static int read_pad(struct pc_vfio_dev *d, uint64_t lba, unsigned int pad)
{
	struct nvme_sgl s = {
		.addr = own_iova(d, OWN(pad)), .len = nv.lbs,
		.type = NVME_SGL_DATA_BLOCK,
	};
	int rc = submit_rw(d, 0, lba, 1, &s, 1);

	if (!rc)
		rc = reap(d, &nv.io, nv.cid, NVME_SYNC_MS);
	return rw_status(d, rc, 0);
}

static void add_sgl(struct nvme_sgl *sgl, unsigned int *n, uint64_t addr,
		    uint32_t len)
{
	if (!len)
		return;
	sgl[*n].addr = addr;
	sgl[*n].len = len;
	sgl[*n].type = NVME_SGL_DATA_BLOCK;
	(*n)++;
}

static int nvme_memcpy_start(struct pc_vfio_dev *d, uint64_t iova,
			     size_t dev_off, size_t len, enum pc_vfio_dir dir)
{
	int write = dir == PC_VFIO_TO_DEVICE;
	uint64_t lba0, lend, tail_src;
	struct nvme_sgl sgl[3] = { { 0 } };
	unsigned int n = 0, head, tail;
	int rc = 0;

	if (!len || len > NVME_MEM_SIZE || dev_off > NVME_MEM_SIZE - len ||
	    iova >= NVME_IOVA_LIMIT || len > NVME_IOVA_LIMIT - iova ||
	    nv.pending >= 0) {
		snprintf(d->err, sizeof(d->err),
			 "nvme: refusing a DMA of %zu bytes at device 0x%zx, IOVA 0x%llx (limits: %u bytes%s)",
			 len, dev_off, (unsigned long long)iova, NVME_MEM_SIZE,
			 nv.pending >= 0 ? ", one DMA at a time" : "");
		return -EINVAL;
	}
	lba0 = dev_off / nv.lbs;
	lend = (dev_off + len + nv.lbs - 1) / nv.lbs;
	head = dev_off - lba0 * nv.lbs;
	tail = lend * nv.lbs - dev_off - len;
	tail_src = own_iova(d, OWN(OWN_PAD1)) + nv.lbs - tail;
	if (write && head)
		rc = read_pad(d, lba0, OWN_PAD0);
	if (write && tail && head && lend - 1 == lba0)
		tail_src = own_iova(d, OWN(OWN_PAD0)) + head + len;
	else if (write && tail && !rc)
		rc = read_pad(d, lend - 1, OWN_PAD1);
	if (rc)
		return rc;
	add_sgl(sgl, &n, own_iova(d, OWN(OWN_PAD0)), head);
	add_sgl(sgl, &n, iova, len);
	add_sgl(sgl, &n, tail_src, tail);
	rc = submit_rw(d, write, lba0, lend - lba0, sgl, n);
	if (!rc) {
		nv.pending = nv.cid;
		nv.pending_write = write;
	}
	return rc;
}

static int nvme_memcpy_wait(struct pc_vfio_dev *d, unsigned int timeout_ms)
{
	int rc;

	if (nv.pending < 0) {
		snprintf(d->err, sizeof(d->err), "nvme: no DMA started");
		return -EINVAL;
	}
	rc = reap(d, &nv.io, nv.pending, timeout_ms);
	if (rc != -ETIMEDOUT)
		nv.pending = -1;
	return rw_status(d, rc, nv.pending_write);
}

const struct pc_vfio_driver pc_vfio_nvme = {
	.name = "nvme",
	.vendor = 0x1b36,
	.device = 0x0010,
	.mem_size = NVME_MEM_SIZE,
	.max_xfer = NVME_MEM_SIZE,
	.iova_limit = NVME_IOVA_LIMIT,
	.dma_ms = 1,
	.own_mem = OWN(OWN_PAGES),
	.init = nvme_init,
	.memcpy_start = nvme_memcpy_start,
	.memcpy_wait = nvme_memcpy_wait,
};
