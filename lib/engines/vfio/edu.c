// SPDX-License-Identifier: GPL-2.0
/*
 * QEMU's "edu" educational PCI device (1234:11e8) as a DMA engine.
 *
 * BAR0 registers (QEMU docs/specs/edu.rst; all accessed 32 bits wide):
 *   0x00 identification, 0x010000ed for this model
 *   0x04 liveness: reads back the bitwise NOT of what was written
 *   0x80 DMA source, 0x88 DMA destination, 0x90 DMA count
 *   0x98 DMA command: bit 0 start (reads 1 while running), bit 1
 *        direction (0: RAM to device, 1: device to RAM), bit 2 interrupt
 * The device's memory is 4 KiB at device address 0x40000.
 *
 * Traps measured with QEMU 7.2 (docs/vfio.md): a transfer that
 * reaches the last byte of the buffer aborts the whole VM, so at most
 * 4095 bytes within 0x40000..0x40ffe; addresses are cut to 28 bits; each
 * DMA completes from a 100 ms timer, whatever its size.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vfio_dev.h"

#define EDU_BAR			0
#define EDU_REG_ID		0x00
#define EDU_REG_LIVENESS	0x04
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_COUNT	0x90
#define EDU_REG_DMA_CMD		0x98

#define EDU_ID_MASK		0xffff
#define EDU_ID			0x00ed
#define EDU_DMA_START		0x1
#define EDU_DMA_TO_RAM		0x2

#define EDU_MEM_BASE		0x40000
#define EDU_MEM_USABLE		4095	/* one byte short: see above */
#define EDU_IOVA_LIMIT		(1ULL << 28)
#define EDU_POLL_NS		2000000	/* 2 ms between status reads */

static int edu_init(struct pc_vfio_dev *d)
{
	uint32_t id, live;
	int rc;

	if (d->bar_size[EDU_BAR] < EDU_REG_DMA_CMD + 4) {
		snprintf(d->err, sizeof(d->err),
			 "edu: BAR0 is %llu bytes, too small for the DMA registers",
			 (unsigned long long)d->bar_size[EDU_BAR]);
		return -ENODEV;
	}
	rc = pc_vfio_bar_read32(d, EDU_BAR, EDU_REG_ID, &id);
	if (!rc)
		rc = pc_vfio_bar_write32(d, EDU_BAR, EDU_REG_LIVENESS,
					 0x5a5aa5a5);
	if (!rc)
		rc = pc_vfio_bar_read32(d, EDU_BAR, EDU_REG_LIVENESS, &live);
	if (rc)
		return rc;
	if ((id & EDU_ID_MASK) != EDU_ID || live != ~0x5a5aa5a5u) {
		snprintf(d->err, sizeof(d->err),
			 "edu: id register 0x%08x, liveness 0x%08x: not an edu device answering",
			 id, live);
		return -ENODEV;
	}
	return 0;
}

static int edu_memcpy_start(struct pc_vfio_dev *d, uint64_t iova,
			    size_t dev_off, size_t len, enum pc_vfio_dir dir)
{
	uint32_t dev = EDU_MEM_BASE + dev_off, cmd = EDU_DMA_START;
	int rc;

	if (!len || len > EDU_MEM_USABLE || dev_off > EDU_MEM_USABLE - len ||
	    iova >= EDU_IOVA_LIMIT || len > EDU_IOVA_LIMIT - iova) {
		snprintf(d->err, sizeof(d->err),
			 "edu: refusing a DMA of %zu bytes at device 0x%zx, IOVA 0x%llx (limits: 4095 bytes, 28-bit IOVA)",
			 len, dev_off, (unsigned long long)iova);
		return -EINVAL;
	}
	if (dir == PC_VFIO_FROM_DEVICE)
		cmd |= EDU_DMA_TO_RAM;
	rc = pc_vfio_bar_write32(d, EDU_BAR, EDU_REG_DMA_SRC,
				 dir == PC_VFIO_TO_DEVICE ? iova : dev);
	if (!rc)
		rc = pc_vfio_bar_write32(d, EDU_BAR, EDU_REG_DMA_DST,
					 dir == PC_VFIO_TO_DEVICE ? dev : iova);
	if (!rc)
		rc = pc_vfio_bar_write32(d, EDU_BAR, EDU_REG_DMA_COUNT, len);
	if (!rc)
		rc = pc_vfio_bar_write32(d, EDU_BAR, EDU_REG_DMA_CMD, cmd);
	return rc;
}

static int edu_dma_idle(uint32_t cmd, int unused)
{
	(void)unused;
	return !(cmd & EDU_DMA_START);
}

static int edu_memcpy_wait(struct pc_vfio_dev *d, unsigned int timeout_ms)
{
	uint32_t cmd = 0;
	int rc = pc_vfio_poll32(d, EDU_BAR, EDU_REG_DMA_CMD, edu_dma_idle, 0,
				timeout_ms, EDU_POLL_NS, &cmd);

	if (rc == -ETIMEDOUT)
		snprintf(d->err, sizeof(d->err),
			 "edu: DMA still running after %u ms (command register 0x%x)",
			 timeout_ms, cmd);
	return rc;
}

const struct pc_vfio_driver pc_vfio_edu = {
	.name = "edu",
	.vendor = 0x1234,
	.device = 0x11e8,
	.mem_size = EDU_MEM_USABLE,
	.max_xfer = EDU_MEM_USABLE,
	.iova_limit = EDU_IOVA_LIMIT,
	.dma_ms = 100,
	.init = edu_init,
	.memcpy_start = edu_memcpy_start,
	.memcpy_wait = edu_memcpy_wait,
};
