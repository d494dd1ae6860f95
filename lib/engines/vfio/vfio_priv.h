/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Inside the VFIO engines (lib/engines/vfio/): what device.c (the device
 * named by the environment, its BARs), iommu.c (type1 and iommufd), dma.c
 * (transfers, their sample, IOMMU faults) and engine.c (the engine ops)
 * share.  A DMA device's model is a driver (vfio_dev.h, edu.c).
 */
#ifndef PINCHECK_VFIO_PRIV_H
#define PINCHECK_VFIO_PRIV_H

#include <linux/vfio.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "vfio_dev.h"

#define VFIO_ENV_DEVICE		"PINCHECK_VFIO_DEVICE"

#define BOUNCE_IOVA		0x100000ULL	/* 1 MiB */
#define DRIVER_IOVA		0x400000ULL	/* 4 MiB: the driver's own memory */
#define REGION_IOVA		0x1000000ULL	/* 16 MiB (+ offset in a PMD) */
#define UNMAPPED_IOVA		0x800000ULL	/* 8 MiB: never mapped */
#define PMD_SPAN		(2ULL << 20)
#define BOUNCE_SIZE		(256 << 10)	/* >= every driver's mem_size */
#define DRIVER_MEM_MAX		(2ULL << 20)	/* own_mem below UNMAPPED_IOVA */
/* A driver slower than this per DMA is sampled (dma.c), and slow (engine.h). */
#define VFIO_SLOW_MS		10

struct vfio_target {
	char bdf[16];		/* 0000:00:01.0 */
	char short_bdf[16];	/* 00:01.0, as DMAR fault lines name it */
	char sysfs[96];
	const struct pc_vfio_driver *drv;
	int group;		/* IOMMU group number */
	char cdev[32];		/* vfioN, "" when there is no cdev */
};

enum vfio_path { PATH_TYPE1, PATH_IOMMUFD };

struct span {
	size_t off, len;	/* in the pinned range */
};

/* Pages of a range of @len bytes a sampled transfer judged, over a case. */
struct coverage {
	uint64_t *page;		/* bit i: page i was in a transfer's sample */
	size_t len, pages;
	unsigned long transfers;
	size_t nwin;
};

struct vfio_priv {
	enum vfio_path path;
	struct vfio_target t;
	struct pc_vfio_dev dev;
	int container, group;	/* type1 */
	int iommufd;		/* iommufd path */
	__u32 ioas;
	int kmsg;		/* -1: faults cannot be told apart */
	char *bounce;
	int bounce_mapped;
	void *drv_mem;		/* the driver's own memory (dev.mem) */
	int drv_mem_mapped;
	uint64_t region_iova;
	size_t region_len;
	int region_mapped;
	int in_session;		/* the fds are the test process's (session.c) */
	int unmap_failed;	/* an unmap failed: something may be left */
	struct span *spans;	/* the sample (or the whole range, chunked) */
	size_t nspans;
	uint64_t *sample;	/* e->sample, NULL when nothing is left out */
	/* sampling: the window of page pairs the transfers use (see top) */
	size_t len;		/* of the pinned range */
	size_t pairs;		/* page pairs in it */
	size_t nwin;		/* windows that cover every pair once */
	unsigned long rot;	/* windows taken so far, carried across pins */
	int win_used;		/* a transfer used the current window */
	int dev_wrote;		/* a dev_write since the pin */
	unsigned long dmas;	/* DMAs done since the open, and their time */
	long long dma_ns;
	struct coverage cov;
};

/* Copy @src into @dst of @len bytes, cut if it must be. */
void vfio_copy_str(char *dst, size_t len, const char *src);

/* device.c: fill @t from the environment; NULL, or why it cannot be used. */
const char *vfio_find_target(struct vfio_target *t);
/* device.c: find the BARs, turn bus mastering on, init the driver. */
int vfio_setup_device(struct pc_engine *e, struct vfio_priv *p);

/* iommu.c: the two paths to the IOMMU. */
const char *vfio_type1_probe(void);
const char *vfio_iommufd_probe(void);
int vfio_type1_open(struct pc_engine *e, struct vfio_priv *p);
int vfio_iommufd_open(struct pc_engine *e, struct vfio_priv *p);
/* Map [vaddr, vaddr + len) at @iova for the device; 0 or -errno. */
int vfio_dma_map(struct pc_engine *e, struct vfio_priv *p, void *vaddr,
		 uint64_t iova, size_t len, int writable);
int vfio_dma_unmap(struct pc_engine *e, struct vfio_priv *p, uint64_t iova,
		   size_t len);

/*
 * session.c: the type1 fds the test process holds across its cases.
 * before/after_case run in the test process; take (0: not taken, open
 * your own) and give_back (unmaps all, keeps the fds) in a case process.
 */
void vfio_session_before_case(void);
void vfio_session_after_case(void);
void vfio_session_drop(void);
int vfio_session_take(struct vfio_priv *p);
void vfio_session_give_back(struct vfio_priv *p);
/*
 * engine.c: unmap all @p mapped (region, bounce, driver memory); 0 when
 * every unmap since the open succeeded.
 */
int vfio_unmap_all(struct vfio_priv *p);

/* dma.c: IOMMU faults from the kernel log, the sample, the transfers. */
int vfio_kmsg_open(void);
int vfio_plan_sample(struct vfio_priv *p, size_t len);
void vfio_drop_sample(struct vfio_priv *p);
void vfio_coverage_start(struct vfio_priv *p, size_t len);
void vfio_coverage_report(struct vfio_priv *p);
int vfio_dev_read(struct pc_engine *e, size_t off, size_t len, void *out);
int vfio_dev_write(struct pc_engine *e, size_t off, size_t len,
		   const void *data);
void vfio_dma_report(struct vfio_priv *p);

#endif
