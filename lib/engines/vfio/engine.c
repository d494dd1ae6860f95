// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO: a real DMA device reads and writes memory mapped for it in the
 * IOMMU.  The map pins the pages long-term, read-only or read-write
 * (FOLL_PIN | FOLL_LONGTERM, with FOLL_WRITE only for a writable map), and
 * holds them until the unmap: the device keeps using those pages whatever
 * the process's page tables say later.
 *
 * Two engines, one per kernel path to the IOMMU:
 *   vfio          the type1 container: /dev/vfio/vfio + /dev/vfio/<group>,
 *                 VFIO_IOMMU_MAP_DMA with VFIO_DMA_MAP_FLAG_READ (| _WRITE)
 *   vfio_iommufd  iommufd + the vfio cdev: /dev/iommu +
 *                 /dev/vfio/devices/vfioN, IOMMU_IOAS_MAP with
 *                 IOMMU_IOAS_MAP_READABLE (| _WRITEABLE)
 *
 * The device is the one named by PINCHECK_VFIO_DEVICE (a PCI address bound
 * to vfio-pci); run_tests.sh --vfio-device binds one for a run, a
 * run_tests.sh --kernel guest binds its QEMU NVMe controller (else edu).
 * The device model is driven by a small driver (vfio_dev.h, nvme.c,
 * edu.c); a driver's own memory (queues, descriptors) is mapped R/W at
 * DRIVER_IOVA before its init.
 *
 * The device's view: dev_read DMAs the pinned memory into device memory,
 * then a second DMA copies device memory into a separate bounce buffer
 * mapped read-write (device memory cannot be read through a BAR);
 * dev_write goes bounce -> device -> pinned memory.
 *
 * Sampling, with a slow driver (dma_ms >= VFIO_SLOW_MS; the NVMe driver
 * moves every byte, in transfers of up to its max_xfer, and the engine
 * is not slow with it: vfio_slow()).  edu completes one DMA every 100 ms,
 * whatever its size, and moves at most 4095 bytes: reading a 2 MiB THP
 * whole would take ~1000 DMAs (100 s).  With such a device the engine transfers a fixed sample
 * chosen at pin time: spans of 1008 bytes that straddle the boundary
 * between two neighbouring pages (so one DMA sees two pages: 63 words of
 * each), for at most four page pairs per transfer: every pair of a region
 * of up to eight pages, and on a larger one a window of four pairs spread
 * over it (pairs k, k + n, k + 2n, k + 3n of the n windows that cover it).
 * Four spans fit the device's memory at once, so a device read of any
 * region costs at most five DMAs, a device write five.  e->sample tells
 * the checks which words were transferred; they judge only those, and
 * the others are never filled in from the CPU's view.
 *
 * The window rotates, so that the transfers of a case judge different
 * pages: before a dev_read while no dev_write happened since the pin, and
 * before a dev_write of the whole pinned range (it rewrites its whole new
 * window); a new pin starts on the next window.  Otherwise it stays, so
 * that a dev_read reads back what the device wrote.  The bitmap behind
 * e->sample is rewritten in place.  A page outside every window a case
 * used is not checked (a 2 MiB THP has 64 windows; a case makes a few
 * transfers): the engine reports, at close, how many pages its transfers
 * judged.
 *
 * A device read that faults in the IOMMU delivers zeros with edu, just
 * like a stale zero page would.  After every transfer the engine reads
 * the new kernel log lines (/dev/kmsg) and turns an IOMMU fault reported
 * for its device (DMAR / AMD-Vi) into -EFAULT with the kernel's line.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backing.h"
#include "report.h"
#include "vfio_priv.h"

/*
 * A region must fit below the device's IOVA limit.  (Which backings a
 * slow engine runs on is the tests' choice: PC_CAP_SLOW, engine.h.)
 */
static const char *vfio_case_skip(const struct pc_case *c)
{
	static char why[320];
	struct vfio_target t;

	if (!c->backing)
		return NULL;
	if (!vfio_find_target(&t) &&
	    REGION_IOVA + PMD_SPAN + c->backing->size > t.drv->iova_limit) {
		snprintf(why, sizeof(why),
			 "not applicable: a %zu kB region does not fit below the %s's IOVA limit of %llu MiB",
			 c->backing->size / 1024, t.drv->name,
			 (unsigned long long)(t.drv->iova_limit >> 20));
		return why;
	}
	return NULL;
}

/* ---- engine ops ---- */

int vfio_unmap_all(struct vfio_priv *p)
{
	struct pc_engine e = { .ops = &pc_engine_vfio };

	if (p->region_mapped &&
	    vfio_dma_unmap(&e, p, p->region_iova, p->region_len))
		p->unmap_failed = 1;
	if (p->bounce_mapped && vfio_dma_unmap(&e, p, BOUNCE_IOVA, BOUNCE_SIZE))
		p->unmap_failed = 1;
	if (p->drv_mem_mapped &&
	    vfio_dma_unmap(&e, p, DRIVER_IOVA, p->dev.mem_len))
		p->unmap_failed = 1;
	p->region_mapped = p->bounce_mapped = p->drv_mem_mapped = 0;
	return p->unmap_failed ? -1 : 0;
}

static void vfio_close(struct pc_engine *e)
{
	struct vfio_priv *p = e->priv;

	if (!p)
		return;
	vfio_unmap_all(p);
	if (p->in_session)
		vfio_session_give_back(p);	/* keeps the fds open */
	if (p->bounce)
		munmap(p->bounce, BOUNCE_SIZE);
	if (p->drv_mem)
		munmap(p->drv_mem, p->dev.mem_len);
	vfio_drop_sample(p);
	vfio_coverage_report(p);
	vfio_dma_report(p);
	if (p->dev.fd >= 0)
		close(p->dev.fd);
	if (p->group >= 0)
		close(p->group);
	if (p->container >= 0)
		close(p->container);
	if (p->iommufd >= 0)
		close(p->iommufd);
	if (p->kmsg >= 0)
		close(p->kmsg);
	free(p);
	e->priv = NULL;
}

/*
 * @len zeroed bytes of the engine's own, never shared with a child, in
 * *@mem and mapped R/W for the device at @iova; *@mapped once it is.
 */
static int map_own_mem(struct pc_engine *e, struct vfio_priv *p, size_t len,
		       uint64_t iova, const char *what, char **mem,
		       int *mapped)
{
	int rc;

	*mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*mem == MAP_FAILED) {
		*mem = NULL;
		return pc_engine_err(e, -errno, "vfio: %s: %s", what,
				     strerror(errno));
	}
	madvise(*mem, len, MADV_DONTFORK);
	memset(*mem, 0, len);
	rc = vfio_dma_map(e, p, *mem, iova, len, 1);
	if (!rc)
		*mapped = 1;
	return rc;
}

/* The bounce buffer. */
static int map_bounce(struct pc_engine *e, struct vfio_priv *p)
{
	return map_own_mem(e, p, BOUNCE_SIZE, BOUNCE_IOVA, "bounce buffer",
			   &p->bounce, &p->bounce_mapped);
}

/* The driver's own memory (vfio_dev.h), mapped R/W before its init. */
static int map_driver_mem(struct pc_engine *e, struct vfio_priv *p)
{
	size_t page = sysconf(_SC_PAGESIZE);
	size_t len = (p->t.drv->own_mem + page - 1) & ~(page - 1);
	char *mem;
	int rc;

	if (p->t.drv->mem_size > BOUNCE_SIZE || len > DRIVER_MEM_MAX)
		return pc_engine_err(e, -EINVAL,
				     "vfio: driver %s needs %zu bytes of bounce buffer and %zu of its own memory (limits %d, %llu)",
				     p->t.drv->name, p->t.drv->mem_size, len,
				     BOUNCE_SIZE, DRIVER_MEM_MAX);
	if (!len)
		return 0;
	p->dev.mem_len = len;
	rc = map_own_mem(e, p, len, DRIVER_IOVA, "driver memory", &mem,
			 &p->drv_mem_mapped);
	p->drv_mem = mem;
	if (rc)
		return rc;
	p->dev.mem = p->drv_mem;
	p->dev.mem_iova = DRIVER_IOVA;
	return 0;
}

static int vfio_open(struct pc_engine *e)
{
	struct vfio_priv *p = calloc(1, sizeof(*p));
	const char *why;
	int rc;

	if (!p)
		return pc_engine_err(e, -ENOMEM, "vfio: out of memory");
	p->container = p->group = p->iommufd = p->dev.fd = p->kmsg = -1;
	p->path = e->ops == &pc_engine_vfio ? PATH_TYPE1 : PATH_IOMMUFD;
	e->priv = p;
	why = vfio_find_target(&p->t);
	if (why) {
		rc = pc_engine_err(e, -ENODEV, "%s", why);
		goto fail;
	}
	p->kmsg = vfio_kmsg_open();
	if (p->path == PATH_IOMMUFD)
		rc = vfio_iommufd_open(e, p);
	else
		rc = vfio_session_take(p) ? 0 : vfio_type1_open(e, p);
	if (!rc)
		rc = map_driver_mem(e, p);
	if (!rc)
		rc = vfio_setup_device(e, p);
	if (!rc)
		rc = map_bounce(e, p);
	if (!rc)
		return 0;
fail:
	vfio_close(e);
	return rc;
}

static int vfio_pin(struct pc_engine *e, void *addr, size_t len,
		    unsigned int flags)
{
	struct vfio_priv *p = e->priv;
	uint64_t iova = REGION_IOVA + ((uintptr_t)addr & (PMD_SPAN - 1));
	int rc;

	if (iova + len > p->t.drv->iova_limit)
		return pc_engine_err(e, -E2BIG,
				     "%s: 0x%zx bytes do not fit below the %s's IOVA limit 0x%llx",
				     e->ops->name, len, p->t.drv->name,
				     (unsigned long long)p->t.drv->iova_limit);
	rc = vfio_plan_sample(p, len);
	if (rc) {
		vfio_drop_sample(p);
		return pc_engine_err(e, rc, "%s: out of memory", e->ops->name);
	}
	rc = vfio_dma_map(e, p, addr, iova, len, flags & PC_PIN_RW);
	if (rc) {
		vfio_drop_sample(p);
		return rc;
	}
	p->region_iova = iova;
	p->region_len = len;
	p->region_mapped = 1;
	e->sample = p->sample;
	vfio_coverage_start(p, len);
	return 0;
}

static int vfio_unpin(struct pc_engine *e)
{
	struct vfio_priv *p = e->priv;
	int rc = 0;

	if (p->region_mapped)
		rc = vfio_dma_unmap(e, p, p->region_iova, e->len);
	if (rc)
		p->unmap_failed = 1;
	p->region_mapped = 0;
	vfio_drop_sample(p);
	return rc;
}

#define VFIO_CAPS (PC_CAP_DEV_READ | PC_CAP_DEV_WRITE | PC_CAP_PIN_RO | \
		   PC_CAP_PIN_RW | PC_CAP_LONGTERM | PC_CAP_HELD | PC_CAP_SLOW)
/*
 * Slow with a device whose DMA takes VFIO_SLOW_MS or more (edu: one DMA
 * every 100 ms, whatever its size); the same test also makes dma.c sample.
 */
static const char *vfio_slow(void)
{
	static char why[128];
	struct vfio_target t;

	if (vfio_find_target(&t))
		return "it is slow";	/* the probe skips first */
	if (t.drv->dma_ms < VFIO_SLOW_MS)
		return NULL;
	snprintf(why, sizeof(why), "its DMA device needs ~%u ms per transfer",
		 t.drv->dma_ms);
	return why;
}

/*
 * The two VFIO engines differ only in how the container maps the pages,
 * and in what the test process holds for them (session.c).
 */
#define VFIO_ENGINE(engine_name, probe_fn, before, after) {	\
	.name = engine_name,			\
	.caps = VFIO_CAPS,			\
	.probe = probe_fn,			\
	.before_case = before,			\
	.after_case = after,			\
	.open = vfio_open,			\
	.pin = vfio_pin,			\
	.dev_read = vfio_dev_read,		\
	.dev_write = vfio_dev_write,		\
	.unpin = vfio_unpin,			\
	.close = vfio_close,			\
	.case_skip = vfio_case_skip,		\
	.slow = vfio_slow,			\
}

const struct pc_engine_ops pc_engine_vfio =
	VFIO_ENGINE("vfio", vfio_type1_probe, vfio_session_before_case,
		    vfio_session_after_case);
const struct pc_engine_ops pc_engine_vfio_iommufd =
	VFIO_ENGINE("vfio_iommufd", vfio_iommufd_probe, vfio_session_drop,
		    NULL);
