// SPDX-License-Identifier: GPL-2.0
/*
 * The two kernel paths from a VFIO device to the IOMMU: the type1
 * container (/dev/vfio/vfio + /dev/vfio/<group>, VFIO_IOMMU_MAP_DMA) and
 * iommufd with the vfio cdev (/dev/iommu + /dev/vfio/devices/vfioN,
 * IOMMU_IOAS_MAP): their probes, opening the device through each, and
 * mapping memory for it (the long-term pin).
 */
#include <dirent.h>
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
#include "report.h"
#include "sysprobe.h"
#include "vfio_priv.h"

#define VFIO_CONTAINER		"/dev/vfio/vfio"
#define IOMMUFD_DEV		"/dev/iommu"

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

/* ---- probes ---- */

const char *vfio_type1_probe(void)
{
	static char why[256];
	struct vfio_target t;
	const char *no = vfio_find_target(&t);
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

const char *vfio_iommufd_probe(void)
{
	static char why[256];
	struct vfio_target t;
	const char *no = vfio_find_target(&t);

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

/* ---- the two paths to the IOMMU ---- */

#define GROUP_BUSY_WAIT_MS 5000	/* a case process still exiting holds it */

/* " (held by pid N: COMM)" for a process that has @path open, or "". */
static void group_holder(const char *path, char *buf, size_t len)
{
	char fdpath[80], link[64], comm[64] = "?";
	struct dirent *pd, *fd;
	DIR *procs = opendir("/proc"), *fds;
	ssize_t n;

	buf[0] = '\0';
	while (procs && !buf[0] && (pd = readdir(procs))) {
		if (pd->d_name[0] < '1' || pd->d_name[0] > '9')
			continue;
		snprintf(fdpath, sizeof(fdpath), "/proc/%.16s/fd", pd->d_name);
		fds = opendir(fdpath);
		while (fds && !buf[0] && (fd = readdir(fds))) {
			snprintf(fdpath, sizeof(fdpath), "/proc/%.16s/fd/%.32s",
				 pd->d_name, fd->d_name);
			n = readlink(fdpath, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strcmp(link, path))
				continue;
			snprintf(fdpath, sizeof(fdpath), "/proc/%.16s/comm", pd->d_name);
			pc_read_line(fdpath, comm, sizeof(comm));
			snprintf(buf, len, " (held by pid %.16s: %.32s)",
				 pd->d_name, comm);
		}
		if (fds)
			closedir(fds);
	}
	if (procs)
		closedir(procs);
}

/*
 * Open the group: a case process that is still exiting (its children
 * killed, its pinned pages being given back) holds it a while; wait for it.
 */
static int open_group(struct pc_engine *e, const char *path)
{
	struct timespec pause = { .tv_nsec = 20000000 };
	long long t0 = pc_now_ms(), deadline = t0 + GROUP_BUSY_WAIT_MS;
	char holder[128];
	int fd, waited = 0;

	while ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0 && errno == EBUSY &&
	       pc_now_ms() < deadline) {
		waited = 1;
		nanosleep(&pause, NULL);
	}
	if (fd >= 0 && waited)
		pc_diag("vfio: %s was busy for %lld ms before it opened (an earlier case's process exiting)",
			path, pc_now_ms() - t0);
	if (fd >= 0)
		return fd;
	if (errno != EBUSY)
		return pc_engine_err(e, -errno, "vfio: open %s: %s", path,
				     strerror(errno));
	group_holder(path, holder, sizeof(holder));
	return pc_engine_err(e, -EBUSY,
			     "vfio: open %s: busy for %d ms%s: another process holds the group (QEMU, another pincheck run, or an earlier case's process stuck in the kernel)",
			     path, GROUP_BUSY_WAIT_MS, holder);
}

int vfio_type1_open(struct pc_engine *e, struct vfio_priv *p)
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
	p->group = open_group(e, path);
	if (p->group < 0)
		return p->group;
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

int vfio_iommufd_open(struct pc_engine *e, struct vfio_priv *p)
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
int vfio_dma_map(struct pc_engine *e, struct vfio_priv *p, void *vaddr,
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

int vfio_dma_unmap(struct pc_engine *e, struct vfio_priv *p, uint64_t iova,
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

