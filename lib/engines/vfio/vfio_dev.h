/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DMA devices behind the VFIO engines (lib/engines/vfio/).
 *
 * The engine opens the device through VFIO (type1 container/group, or
 * iommufd + the vfio cdev), maps memory for it in the IOMMU and turns bus
 * mastering on.  A driver knows one device model: how to copy bytes
 * between an IOVA and the device's own memory, and how to wait for it.
 * Tests never see a register: they use the engine interface.
 */
#ifndef PINCHECK_VFIO_DEV_H
#define PINCHECK_VFIO_DEV_H

#include <stddef.h>
#include <stdint.h>

#define PC_VFIO_ERR_MAX 256

struct pc_engine;

/* An opened device, as a driver sees it. */
struct pc_vfio_dev {
	int fd;			/* VFIO device fd */
	uint64_t bar_off[6];	/* region offsets of the BARs in @fd */
	uint64_t bar_size[6];	/* 0: no such BAR */
	/*
	 * The driver's own memory (its driver->own_mem bytes, page-aligned,
	 * zeroed, mapped R/W for the device at @mem_iova before init):
	 * queues, descriptor lists, padding.  NULL when own_mem is 0.
	 */
	void *mem;
	uint64_t mem_iova;
	size_t mem_len;
	char err[PC_VFIO_ERR_MAX];	/* why the last call failed */
};

enum pc_vfio_dir {
	PC_VFIO_TO_DEVICE,	/* IOVA -> device memory (the device reads) */
	PC_VFIO_FROM_DEVICE,	/* device memory -> IOVA (the device writes) */
};

struct pc_vfio_driver {
	const char *name;
	uint16_t vendor, device;	/* PCI ids it drives */
	size_t mem_size;	/* usable device memory, from offset 0 */
	size_t max_xfer;	/* bytes one DMA may move */
	uint64_t iova_limit;	/* IOVAs the device reaches: [0, limit) */
	unsigned int dma_ms;	/* typical time one DMA takes */
	size_t own_mem;		/* bytes of host memory it needs (dev->mem) */
	/* Check the device answers as this model; 0 or -errno (d->err). */
	int (*init)(struct pc_vfio_dev *d);
	/* Start one DMA of @len bytes between @iova and @dev_off. */
	int (*memcpy_start)(struct pc_vfio_dev *d, uint64_t iova,
			    size_t dev_off, size_t len, enum pc_vfio_dir dir);
	/* Wait for it; -ETIMEDOUT after @timeout_ms. */
	int (*memcpy_wait)(struct pc_vfio_dev *d, unsigned int timeout_ms);
};

/* Drivers (lib/engines/vfio/, one file each), and the one for @vendor:@device. */
extern const struct pc_vfio_driver pc_vfio_edu;
extern const struct pc_vfio_driver pc_vfio_nvme;
const struct pc_vfio_driver *pc_vfio_driver_for(uint16_t vendor,
						uint16_t device);

/* 32-bit register access to BAR @bar at @off; 0 or -errno (d->err). */
int pc_vfio_bar_read32(struct pc_vfio_dev *d, int bar, uint64_t off,
		       uint32_t *val);
int pc_vfio_bar_write32(struct pc_vfio_dev *d, int bar, uint64_t off,
			uint32_t val);
/*
 * Read the register at @off of BAR @bar every @pause_ns until done(value,
 * @arg) says 1 (returns 0) or -1 (the device failed: -EIO), or @timeout_ms
 * passed (-ETIMEDOUT); the last value read in @val.  A failed read: -errno.
 */
int pc_vfio_poll32(struct pc_vfio_dev *d, int bar, uint64_t off,
		   int (*done)(uint32_t val, int arg), int arg,
		   unsigned int timeout_ms, long pause_ns, uint32_t *val);

/*
 * For vfio_ro_pin's fault control: make the device read @len bytes at an
 * IOVA nothing is mapped at.  Returns what the engine returns for a
 * faulting device read (-EFAULT with the kernel's IOMMU fault line in
 * e->err when it is told apart), or 0 when the read looked clean.
 */
int pc_vfio_read_unmapped(struct pc_engine *e, size_t len);

#endif
