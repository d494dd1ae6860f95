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
 * run_tests.sh --kernel guest binds QEMU's edu device.  The device model
 * is driven by a small driver (vfio_dev.h, vfio_edu.c).
 *
 * The device's view: dev_read DMAs the pinned memory into device memory,
 * then a second DMA copies device memory into a separate bounce buffer
 * mapped read-write (edu's memory cannot be read through its BAR);
 * dev_write goes bounce -> device -> pinned memory.
 *
 * Sampling.  edu completes one DMA every 100 ms, whatever its size, and
 * moves at most 4095 bytes: reading a 2 MiB THP whole would take ~1000
 * DMAs (100 s).  With such a device the engine transfers a fixed sample
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backing.h"
#include "engine.h"
#include "report.h"
#include "pattern.h"
#include "sysprobe.h"
#include "vfio_dev.h"

#define VFIO_ENV_DEVICE		"PINCHECK_VFIO_DEVICE"
#define VFIO_ENV_ALL		"PINCHECK_VFIO_ALL_BACKINGS"
#define SYSFS_PCI		"/sys/bus/pci/devices"
#define VFIO_CONTAINER		"/dev/vfio/vfio"
#define IOMMUFD_DEV		"/dev/iommu"

#define BOUNCE_IOVA		0x100000ULL	/* 1 MiB */
#define REGION_IOVA		0x1000000ULL	/* 16 MiB (+ offset in a PMD) */
#define UNMAPPED_IOVA		0x800000ULL	/* 8 MiB: never mapped */
#define PMD_SPAN		(2ULL << 20)
#define BOUNCE_SIZE		8192

#define SAMPLE_SLOW_MS		10	/* slower DMAs than this: sample */
#define SAMPLE_SPANS		4	/* at most this many per region */
#define SAMPLE_HALF		504	/* bytes on each side of a boundary */

#define PCI_COMMAND_OFF		0x04
#define PCI_COMMAND_MASTER_BIT	0x4

/* ---- iommufd and vfio cdev ABI (include/uapi/linux/{iommufd,vfio}.h) ---- */

#define PC_IOMMUFD_TYPE		';'
#define PC_IOMMU_IOAS_ALLOC	_IO(PC_IOMMUFD_TYPE, 0x81)
#define PC_IOMMU_IOAS_MAP	_IO(PC_IOMMUFD_TYPE, 0x85)
#define PC_IOMMU_IOAS_UNMAP	_IO(PC_IOMMUFD_TYPE, 0x86)
#define PC_IOAS_MAP_FIXED_IOVA	(1u << 0)
#define PC_IOAS_MAP_WRITEABLE	(1u << 1)
#define PC_IOAS_MAP_READABLE	(1u << 2)
#define PC_VFIO_DEVICE_BIND_IOMMUFD	_IO(VFIO_TYPE, VFIO_BASE + 18)
#define PC_VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)

struct pc_iommu_ioas_alloc {
	__u32 size;
	__u32 flags;
	__u32 out_ioas_id;
};

struct pc_iommu_ioas_map {
	__u32 size;
	__u32 flags;
	__u32 ioas_id;
	__u32 reserved;
	__aligned_u64 user_va;
	__aligned_u64 length;
	__aligned_u64 iova;
};

struct pc_iommu_ioas_unmap {
	__u32 size;
	__u32 ioas_id;
	__aligned_u64 iova;
	__aligned_u64 length;
};

struct pc_vfio_bind_iommufd {
	__u32 argsz;
	__u32 flags;
	__s32 iommufd;
	__u32 out_devid;
};

struct pc_vfio_attach_pt {
	__u32 argsz;
	__u32 flags;
	__u32 pt_id;
};

/* ---- the device named by the environment ---- */

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
	uint64_t region_iova;
	int region_mapped;
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
	struct coverage cov;
};

/* Copy @src into @dst of @len bytes, cut if it must be. */
static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int sysfs_read(const char *dir, const char *name, char *buf,
		      size_t len)
{
	char path[160];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Basename of the symlink @dir/@name ("vfio-pci", "1"), or "". */
static void sysfs_link_name(const char *dir, const char *name, char *buf,
			    size_t len)
{
	char path[160], target[256];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0) {
		buf[0] = '\0';
		return;
	}
	target[n] = '\0';
	copy_str(buf, len, strrchr(target, '/') ? strrchr(target, '/') + 1 :
					       target);
}

/* The vfio cdev of the device: the vfioN entry of its vfio-dev/ dir. */
static void find_cdev(struct vfio_target *t)
{
	char dir[160];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/vfio-dev", t->sysfs);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "vfio", 4)) {
			copy_str(t->cdev, sizeof(t->cdev), de->d_name);
			break;
		}
	closedir(d);
}

/* "00:01.0" or "0000:00:01.0" -> "0000:00:01.0"; 0 or -1. */
static int parse_bdf(const char *in, char *bdf, size_t len)
{
	unsigned int dom = 0, bus, dev, fn;
	char tail;

	if (sscanf(in, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) != 4) {
		dom = 0;
		if (sscanf(in, "%x:%x.%x%c", &bus, &dev, &fn, &tail) != 3)
			return -1;
	}
	if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
		return -1;
	snprintf(bdf, len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

static const char *no_device_reason(void)
{
	if (access("/dev/vfio", F_OK))
		return "kernel without VFIO (no /dev/vfio): run ./run_tests.sh --kernel debian:6.12 (a QEMU guest with an edu DMA device behind an IOMMU), or modprobe vfio-pci and name a device with --vfio-device BDF";
	return "no VFIO device named: ./run_tests.sh --vfio-device BDF binds one for the run (a device with a pincheck driver: edu 1234:11e8), or set PINCHECK_VFIO_DEVICE=BDF for a device already bound to vfio-pci";
}

/* Fill @t from the environment; NULL, or why the device cannot be used. */
static const char *find_target(struct vfio_target *t)
{
	static char why[320];
	const char *env = getenv(VFIO_ENV_DEVICE);
	const char *late = pc_vm_hw_wait();
	char buf[64], drv[64], grp[32];
	unsigned int vendor, device;

	memset(t, 0, sizeof(*t));
	if (late)
		return late;
	if (!env || !*env)
		return no_device_reason();
	if (parse_bdf(env, t->bdf, sizeof(t->bdf))) {
		snprintf(why, sizeof(why),
			 "%s='%s' is not a PCI address (DDDD:BB:DD.F or BB:DD.F)",
			 VFIO_ENV_DEVICE, env);
		return why;
	}
	snprintf(t->short_bdf, sizeof(t->short_bdf), "%s", t->bdf + 5);
	snprintf(t->sysfs, sizeof(t->sysfs), SYSFS_PCI "/%s", t->bdf);
	if (sysfs_read(t->sysfs, "vendor", buf, sizeof(buf)) ||
	    sscanf(buf, "%x", &vendor) != 1 ||
	    sysfs_read(t->sysfs, "device", buf, sizeof(buf)) ||
	    sscanf(buf, "%x", &device) != 1) {
		snprintf(why, sizeof(why), "%s=%s: no such PCI device here",
			 VFIO_ENV_DEVICE, t->bdf);
		return why;
	}
	t->drv = pc_vfio_driver_for(vendor, device);
	if (!t->drv) {
		snprintf(why, sizeof(why),
			 "PCI device %s is %04x:%04x: pincheck has no DMA driver for it (supported: edu 1234:11e8)",
			 t->bdf, vendor, device);
		return why;
	}
	sysfs_link_name(t->sysfs, "driver", drv, sizeof(drv));
	if (strcmp(drv, "vfio-pci")) {
		snprintf(why, sizeof(why),
			 "%s is bound to %s, not vfio-pci: ./run_tests.sh --vfio-device %s binds it for the run and restores the binding after",
			 t->bdf, drv[0] ? drv : "no driver", t->bdf);
		return why;
	}
	sysfs_link_name(t->sysfs, "iommu_group", grp, sizeof(grp));
	if (!grp[0] || sscanf(grp, "%d", &t->group) != 1) {
		snprintf(why, sizeof(why),
			 "%s has no IOMMU group: boot with the IOMMU on (intel_iommu=on or amd_iommu=on)",
			 t->bdf);
		return why;
	}
	find_cdev(t);
	return NULL;
}

const struct pc_vfio_driver *pc_vfio_driver_for(uint16_t vendor,
						uint16_t device)
{
	static const struct pc_vfio_driver *const drivers[] = {
		&pc_vfio_edu,
	};
	size_t i;

	for (i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (drivers[i]->vendor == vendor &&
		    drivers[i]->device == device)
			return drivers[i];
	return NULL;
}

/* ---- probes ---- */

static const char *type1_probe(void)
{
	static char why[256];
	struct vfio_target t;
	const char *no = find_target(&t);
	char path[32];

	if (no)
		return no;
	if (access(VFIO_CONTAINER, F_OK))
		return "no " VFIO_CONTAINER ": modprobe vfio_iommu_type1 (kernel without VFIO type1 support?)";
	snprintf(path, sizeof(path), "/dev/vfio/%d", t.group);
	if (access(path, F_OK)) {
		snprintf(why, sizeof(why),
			 "no %s for %s although it is bound to vfio-pci (kernel without the VFIO group interface, CONFIG_VFIO_GROUP?)",
			 path, t.bdf);
		return why;
	}
	return NULL;
}

static const char *iommufd_probe(void)
{
	static char why[256];
	struct vfio_target t;
	const char *no = find_target(&t);

	if (no)
		return no;
	if (access(IOMMUFD_DEV, F_OK))
		return "kernel without iommufd (no " IOMMUFD_DEV "): needs CONFIG_IOMMUFD (modprobe iommufd); Debian's 6.1 and 6.12 kernels lack it, the vfio engine covers type1";
	if (!t.cdev[0]) {
		snprintf(why, sizeof(why),
			 "%s has no vfio cdev (no %s/vfio-dev): needs CONFIG_VFIO_DEVICE_CDEV",
			 t.bdf, t.sysfs);
		return why;
	}
	return NULL;
}

/*
 * edu's 100 ms per DMA makes a device read or write cost up to half a
 * second even sampled, and the matrices offer ~20 backings per scenario:
 * the VFIO engines run each test binary's cases on the backings listed
 * here (the rest is covered by io_uring and gup_test with the same GUP
 * flags) and skip the others with the reason; a binary not listed gets
 * "anon" only.  PINCHECK_VFIO_ALL_BACKINGS=1 lifts it.
 */
struct matrix_budget {
	const char *binary;
	const char *backings;	/* fnmatch patterns, space separated */
};

static const struct matrix_budget budgets[] = {
	{ "pin_fork", "anon" },
	{ "madv_dontfork", "anon thp-pmd" },
	{ "ro_pin", "anon thp-pmd untouched zeropage huge-zeropage memfd-private file-private" },
	{ "vfio_ro_pin", "*" },
	{ "foll_force", "*" },	/* 7 cases: S14's pins of PROT_READ ranges */
	/* the page movers pick their own few backings */
	{ "numa_balancing", "*" },
	{ "migrate_pinned", "*" },
	{ "reclaim_pinned", "*" },
	{ "ksm_pinned", "*" },
	{ "thp_pinned", "*" },
	/* few cases per file system, each a handful of transfers */
	{ "file_pin", "*" },
	{ NULL, "anon" },	/* any other binary */
};

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

static const char *vfio_case_skip(const struct pc_case *c)
{
	static char why[320];
	const char *all = getenv(VFIO_ENV_ALL);
	struct vfio_target t;
	size_t i;

	if (!c->backing)
		return NULL;
	if (!find_target(&t) &&
	    REGION_IOVA + PMD_SPAN + c->backing->size > t.drv->iova_limit) {
		snprintf(why, sizeof(why),
			 "not applicable: a %zu kB region does not fit below the %s's IOVA limit of %llu MiB",
			 c->backing->size / 1024, t.drv->name,
			 (unsigned long long)(t.drv->iova_limit >> 20));
		return why;
	}
	if (all && !strcmp(all, "1"))
		return NULL;
	for (i = 0; i < sizeof(budgets) / sizeof(budgets[0]); i++) {
		if (budgets[i].binary && strcmp(budgets[i].binary, pc_binary()))
			continue;
		if (backing_listed(budgets[i].backings, c->backing->name))
			return NULL;
		snprintf(why, sizeof(why),
			 "not run on %s: its DMA device needs ~100 ms per transfer, so %s runs on %s only (io_uring and gup_test cover the rest; %s=1 runs every backing)",
			 c->engine ? c->engine->name : "vfio", pc_binary(),
			 budgets[i].backings, VFIO_ENV_ALL);
		return why;
	}
	return NULL;
}

/* ---- register and config access ---- */

static int region_rw(struct pc_vfio_dev *d, int write, void *buf, size_t len,
		     uint64_t off, const char *what)
{
	ssize_t n = write ? pwrite(d->fd, buf, len, off) :
			    pread(d->fd, buf, len, off);

	if (n == (ssize_t)len)
		return 0;
	snprintf(d->err, sizeof(d->err), "vfio: %s %s: %s",
		 write ? "write" : "read", what,
		 n < 0 ? strerror(errno) : "short transfer");
	return n < 0 ? -errno : -EIO;
}

int pc_vfio_bar_read32(struct pc_vfio_dev *d, int bar, uint64_t off,
		       uint32_t *val)
{
	if (bar < 0 || bar > 5 || off + 4 > d->bar_size[bar])
		return -EINVAL;
	return region_rw(d, 0, val, 4, d->bar_off[bar] + off, "BAR register");
}

int pc_vfio_bar_write32(struct pc_vfio_dev *d, int bar, uint64_t off,
			uint32_t val)
{
	if (bar < 0 || bar > 5 || off + 4 > d->bar_size[bar])
		return -EINVAL;
	return region_rw(d, 1, &val, 4, d->bar_off[bar] + off,
			 "BAR register");
}

static int region_info(struct pc_engine *e, int fd, unsigned int index,
		       struct vfio_region_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	ri->argsz = sizeof(*ri);
	ri->index = index;
	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, ri))
		return pc_engine_err(e, -errno,
				     "vfio: VFIO_DEVICE_GET_REGION_INFO %u: %s",
				     index, strerror(errno));
	return 0;
}

/* Find the BARs; turn bus mastering on (vfio-pci leaves it off). */
static int setup_device(struct pc_engine *e, struct vfio_priv *p)
{
	struct vfio_region_info ri;
	uint16_t cmd;
	int bar, rc;

	for (bar = 0; bar < 6; bar++) {
		rc = region_info(e, p->dev.fd, VFIO_PCI_BAR0_REGION_INDEX + bar,
				 &ri);
		if (rc)
			return rc;
		if (ri.flags & (VFIO_REGION_INFO_FLAG_READ |
				VFIO_REGION_INFO_FLAG_WRITE)) {
			p->dev.bar_off[bar] = ri.offset;
			p->dev.bar_size[bar] = ri.size;
		}
	}
	rc = region_info(e, p->dev.fd, VFIO_PCI_CONFIG_REGION_INDEX, &ri);
	if (!rc)
		rc = region_rw(&p->dev, 0, &cmd, 2, ri.offset + PCI_COMMAND_OFF,
			       "PCI command register");
	if (!rc && !(cmd & PCI_COMMAND_MASTER_BIT)) {
		cmd |= PCI_COMMAND_MASTER_BIT;
		rc = region_rw(&p->dev, 1, &cmd, 2,
			       ri.offset + PCI_COMMAND_OFF,
			       "PCI command register");
	}
	if (!rc)
		rc = p->t.drv->init(&p->dev);
	if (rc && p->dev.err[0])
		pc_engine_err(e, rc, "%s", p->dev.err);
	return rc;
}

/* ---- the two paths to the IOMMU ---- */

static int type1_open(struct pc_engine *e, struct vfio_priv *p)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char path[32];
	int type;

	p->container = open(VFIO_CONTAINER, O_RDWR | O_CLOEXEC);
	if (p->container < 0)
		return pc_engine_err(e, -errno, "vfio: open %s: %s",
				     VFIO_CONTAINER, strerror(errno));
	if (ioctl(p->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return pc_engine_err(e, -EPROTO, "vfio: unknown VFIO API version");
	type = ioctl(p->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0 ?
	       VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU;
	snprintf(path, sizeof(path), "/dev/vfio/%d", p->t.group);
	p->group = open(path, O_RDWR | O_CLOEXEC);
	if (p->group < 0)
		return pc_engine_err(e, -errno, "vfio: open %s: %s%s", path,
				     strerror(errno),
				     errno == EBUSY ? " (another process holds the group: QEMU or another pincheck run?)" : "");
	if (ioctl(p->group, VFIO_GROUP_GET_STATUS, &st))
		return pc_engine_err(e, -errno, "vfio: VFIO_GROUP_GET_STATUS: %s",
				     strerror(errno));
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
		return pc_engine_err(e, -EBUSY,
				     "vfio: IOMMU group %d is not viable: every device in it must be bound to vfio-pci (or no driver)",
				     p->t.group);
	if (ioctl(p->group, VFIO_GROUP_SET_CONTAINER, &p->container))
		return pc_engine_err(e, -errno, "vfio: VFIO_GROUP_SET_CONTAINER: %s",
				     strerror(errno));
	if (ioctl(p->container, VFIO_SET_IOMMU, type))
		return pc_engine_err(e, -errno, "vfio: VFIO_SET_IOMMU type1: %s",
				     strerror(errno));
	p->dev.fd = ioctl(p->group, VFIO_GROUP_GET_DEVICE_FD, p->t.bdf);
	if (p->dev.fd < 0)
		return pc_engine_err(e, -errno, "vfio: VFIO_GROUP_GET_DEVICE_FD %s: %s",
				     p->t.bdf, strerror(errno));
	return 0;
}

static int iommufd_open(struct pc_engine *e, struct vfio_priv *p)
{
	struct pc_vfio_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct pc_iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct pc_vfio_attach_pt attach = { .argsz = sizeof(attach) };
	char path[64];

	p->iommufd = open(IOMMUFD_DEV, O_RDWR | O_CLOEXEC);
	if (p->iommufd < 0)
		return pc_engine_err(e, -errno, "vfio_iommufd: open %s: %s",
				     IOMMUFD_DEV, strerror(errno));
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", p->t.cdev);
	p->dev.fd = open(path, O_RDWR | O_CLOEXEC);
	if (p->dev.fd < 0)
		return pc_engine_err(e, -errno, "vfio_iommufd: open %s: %s",
				     path, strerror(errno));
	bind.iommufd = p->iommufd;
	if (ioctl(p->dev.fd, PC_VFIO_DEVICE_BIND_IOMMUFD, &bind))
		return pc_engine_err(e, -errno, "vfio_iommufd: VFIO_DEVICE_BIND_IOMMUFD: %s",
				     strerror(errno));
	if (ioctl(p->iommufd, PC_IOMMU_IOAS_ALLOC, &alloc))
		return pc_engine_err(e, -errno, "vfio_iommufd: IOMMU_IOAS_ALLOC: %s",
				     strerror(errno));
	p->ioas = alloc.out_ioas_id;
	attach.pt_id = p->ioas;
	if (ioctl(p->dev.fd, PC_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		return pc_engine_err(e, -errno, "vfio_iommufd: VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s",
				     strerror(errno));
	return 0;
}

/* Map [vaddr, vaddr + len) at @iova for the device; 0 or -errno. */
static int dma_map(struct pc_engine *e, struct vfio_priv *p, void *vaddr,
		   uint64_t iova, size_t len, int writable)
{
	struct vfio_iommu_type1_dma_map m1 = {
		.argsz = sizeof(m1), .vaddr = (uintptr_t)vaddr, .iova = iova,
		.size = len, .flags = VFIO_DMA_MAP_FLAG_READ,
	};
	struct pc_iommu_ioas_map m2 = {
		.size = sizeof(m2), .ioas_id = p->ioas,
		.user_va = (uintptr_t)vaddr, .length = len, .iova = iova,
		.flags = PC_IOAS_MAP_FIXED_IOVA | PC_IOAS_MAP_READABLE,
	};
	int rc;

	if (writable) {
		m1.flags |= VFIO_DMA_MAP_FLAG_WRITE;
		m2.flags |= PC_IOAS_MAP_WRITEABLE;
	}
	if (p->path == PATH_TYPE1)
		rc = ioctl(p->container, VFIO_IOMMU_MAP_DMA, &m1);
	else
		rc = ioctl(p->iommufd, PC_IOMMU_IOAS_MAP, &m2);
	if (!rc)
		return 0;
	return pc_engine_err(e, -errno, "%s: %s %s map of %p+0x%zx at IOVA 0x%llx: %s",
			     e->ops->name,
			     p->path == PATH_TYPE1 ? "VFIO_IOMMU_MAP_DMA" : "IOMMU_IOAS_MAP",
			     writable ? "R/W" : "R/O", vaddr, len,
			     (unsigned long long)iova, strerror(errno));
}

static int dma_unmap(struct pc_engine *e, struct vfio_priv *p, uint64_t iova,
		     size_t len)
{
	struct vfio_iommu_type1_dma_unmap u1 = {
		.argsz = sizeof(u1), .iova = iova, .size = len,
	};
	struct pc_iommu_ioas_unmap u2 = {
		.size = sizeof(u2), .ioas_id = p->ioas, .iova = iova,
		.length = len,
	};
	int rc;

	if (p->path == PATH_TYPE1)
		rc = ioctl(p->container, VFIO_IOMMU_UNMAP_DMA, &u1);
	else
		rc = ioctl(p->iommufd, PC_IOMMU_IOAS_UNMAP, &u2);
	if (!rc)
		return 0;
	return pc_engine_err(e, -errno, "%s: unmap IOVA 0x%llx+0x%zx: %s",
			     e->ops->name, (unsigned long long)iova, len,
			     strerror(errno));
}

/* ---- IOMMU faults, from the kernel log ---- */

/* Position a /dev/kmsg reader at the end of the log; -1 if unreadable. */
static int kmsg_open(void)
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
		copy_str(found, sizeof(found), msg);
	}
	return found[0] ? found : NULL;
}

static int fault_check(struct pc_engine *e, struct vfio_priv *p,
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
static int plan_sample(struct vfio_priv *p, size_t len)
{
	size_t page = sysconf(_SC_PAGESIZE), step, off;
	int rc = 0;

	p->nspans = 0;
	p->len = len;
	p->dev_wrote = 0;
	if (p->t.drv->dma_ms < SAMPLE_SLOW_MS) {
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
static void coverage_report(struct vfio_priv *p)
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
static void coverage_start(struct vfio_priv *p, size_t len)
{
	size_t page = sysconf(_SC_PAGESIZE);
	struct coverage *c = &p->cov;

	if (!p->sample)
		return;
	if (c->page && c->len == len)
		return;
	coverage_report(p);
	c->pages = (len + page - 1) / page;
	c->page = calloc((c->pages + 63) / 64, sizeof(uint64_t));
	c->len = len;
	c->nwin = p->nwin;
}

static void drop_sample(struct vfio_priv *p)
{
	free(p->spans);
	free(p->sample);
	p->spans = NULL;
	p->sample = NULL;
	p->nspans = 0;
	p->nwin = 0;
}

/* ---- the device's transfers ---- */

static int dma(struct pc_engine *e, struct vfio_priv *p, uint64_t iova,
	       size_t dev_off, size_t len, enum pc_vfio_dir dir)
{
	const struct pc_vfio_driver *drv = p->t.drv;
	unsigned int timeout = drv->dma_ms * 20 > 2000 ? drv->dma_ms * 20 : 2000;
	int rc;

	p->dev.err[0] = '\0';
	rc = drv->memcpy_start(&p->dev, iova, dev_off, len, dir);
	if (!rc)
		rc = drv->memcpy_wait(&p->dev, timeout);
	if (rc)
		return pc_engine_err(e, rc, "%s", p->dev.err[0] ? p->dev.err :
				     strerror(-rc));
	return 0;
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
	rc = dma(e, p, BOUNCE_IOVA, 0, b->used, PC_VFIO_FROM_DEVICE);
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
	rc = dma(e, p, BOUNCE_IOVA, 0, b->used, PC_VFIO_TO_DEVICE);
	for (i = 0; !rc && i < b->n; i++)
		rc = dma(e, p, p->region_iova + b->piece[i].off,
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

static int vfio_dev_read(struct pc_engine *e, size_t off, size_t len,
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
		rc = dma(e, p, p->region_iova + piece.off, b.used, piece.len,
			 PC_VFIO_TO_DEVICE);
		b.piece[b.n] = piece;
		b.dev_off[b.n++] = b.used;
		b.used += piece.len;
	}
	if (!rc)
		rc = read_flush(e, p, &b, off, out);
	if (!rc)
		cover(p, off, len);
	return fault_check(e, p, "read") ?: rc;
}

static int vfio_dev_write(struct pc_engine *e, size_t off, size_t len,
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
	return fault_check(e, p, "write") ?: rc;
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
	rc = dma(e, p, UNMAPPED_IOVA, 0, len, PC_VFIO_TO_DEVICE);
	if (!rc)
		rc = dma(e, p, BOUNCE_IOVA, 0, len, PC_VFIO_FROM_DEVICE);
	return fault_check(e, p, "read") ?: rc;
}

/* ---- engine ops ---- */

static void vfio_close(struct pc_engine *e)
{
	struct vfio_priv *p = e->priv;

	if (!p)
		return;
	if (p->bounce_mapped)
		dma_unmap(e, p, BOUNCE_IOVA, BOUNCE_SIZE);
	if (p->bounce)
		munmap(p->bounce, BOUNCE_SIZE);
	drop_sample(p);
	coverage_report(p);
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

/* The bounce buffer: R/W mapped, never shared with a child. */
static int map_bounce(struct pc_engine *e, struct vfio_priv *p)
{
	int rc;

	p->bounce = mmap(NULL, BOUNCE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->bounce == MAP_FAILED) {
		p->bounce = NULL;
		return pc_engine_err(e, -errno, "vfio: bounce buffer: %s",
				     strerror(errno));
	}
	madvise(p->bounce, BOUNCE_SIZE, MADV_DONTFORK);
	memset(p->bounce, 0, BOUNCE_SIZE);
	rc = dma_map(e, p, p->bounce, BOUNCE_IOVA, BOUNCE_SIZE, 1);
	if (rc)
		return rc;
	p->bounce_mapped = 1;
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
	why = find_target(&p->t);
	if (why) {
		rc = pc_engine_err(e, -ENODEV, "%s", why);
		goto fail;
	}
	p->kmsg = kmsg_open();
	rc = p->path == PATH_TYPE1 ? type1_open(e, p) : iommufd_open(e, p);
	if (!rc)
		rc = setup_device(e, p);
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
	rc = plan_sample(p, len);
	if (rc) {
		drop_sample(p);
		return pc_engine_err(e, rc, "%s: out of memory", e->ops->name);
	}
	rc = dma_map(e, p, addr, iova, len, flags & PC_PIN_RW);
	if (rc) {
		drop_sample(p);
		return rc;
	}
	p->region_iova = iova;
	p->region_mapped = 1;
	e->sample = p->sample;
	coverage_start(p, len);
	return 0;
}

static int vfio_unpin(struct pc_engine *e)
{
	struct vfio_priv *p = e->priv;
	int rc = 0;

	if (p->region_mapped)
		rc = dma_unmap(e, p, p->region_iova, e->len);
	p->region_mapped = 0;
	drop_sample(p);
	return rc;
}

#define VFIO_CAPS (PC_CAP_DEV_READ | PC_CAP_DEV_WRITE | PC_CAP_PIN_RO | \
		   PC_CAP_PIN_RW | PC_CAP_LONGTERM | PC_CAP_HELD)

const struct pc_engine_ops pc_engine_vfio = {
	.name = "vfio",
	.caps = VFIO_CAPS,
	.probe = type1_probe,
	.open = vfio_open,
	.pin = vfio_pin,
	.dev_read = vfio_dev_read,
	.dev_write = vfio_dev_write,
	.unpin = vfio_unpin,
	.close = vfio_close,
	.case_skip = vfio_case_skip,
};

const struct pc_engine_ops pc_engine_vfio_iommufd = {
	.name = "vfio_iommufd",
	.caps = VFIO_CAPS,
	.probe = iommufd_probe,
	.open = vfio_open,
	.pin = vfio_pin,
	.dev_read = vfio_dev_read,
	.dev_write = vfio_dev_write,
	.unpin = vfio_unpin,
	.close = vfio_close,
	.case_skip = vfio_case_skip,
};
