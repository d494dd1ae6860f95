// SPDX-License-Identifier: GPL-2.0
/*
 * The VFIO engines' device: the PCI device named by PINCHECK_VFIO_DEVICE
 * (sysfs: its ids, driver, IOMMU group and vfio cdev), the driver for its
 * model, and access to its BARs and PCI command register.
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
#include "sysprobe.h"
#include "util.h"
#include "vfio_priv.h"

#define SYSFS_PCI		"/sys/bus/pci/devices"
#define PCI_COMMAND_OFF		0x04
#define PCI_COMMAND_MASTER_BIT	0x4

/* The DMA devices pincheck has a driver for (vfio_dev.h). */
static const struct pc_vfio_driver *const drivers[] = {
	&pc_vfio_nvme,
	&pc_vfio_edu,
};

void vfio_copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The first line of @dir/@name; 0 or -errno. */
static int sysfs_read(const char *dir, const char *name, char *buf,
		      size_t len)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return pc_read_line(path, buf, len);
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
	vfio_copy_str(buf, len, strrchr(target, '/') ? strrchr(target, '/') + 1 :
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
			vfio_copy_str(t->cdev, sizeof(t->cdev), de->d_name);
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

/* "nvme 1b36:0010, edu 1234:11e8": the devices of the drivers table. */
static const char *supported(void)
{
	static char buf[128];
	size_t i, used = 0;

	for (i = 0; i < PC_ARRAY_SIZE(drivers) && used < sizeof(buf); i++)
		used += snprintf(buf + used, sizeof(buf) - used, "%s%s %04x:%04x",
				 i ? ", " : "", drivers[i]->name,
				 drivers[i]->vendor, drivers[i]->device);
	return buf;
}

static const char *no_device_reason(void)
{
	static char why[320];

	if (access("/dev/vfio", F_OK))
		return "kernel without VFIO (no /dev/vfio): run ./run_tests.sh --kernel debian:6.12 (a QEMU guest with DMA devices behind an IOMMU), or modprobe vfio-pci and name a device with --vfio-device BDF";
	snprintf(why, sizeof(why),
		 "no VFIO device named: ./run_tests.sh --vfio-device BDF binds one for the run (a device with a pincheck driver: %s), or set PINCHECK_VFIO_DEVICE=BDF for a device already bound to vfio-pci",
		 supported());
	return why;
}

/* Fill @t from the environment; NULL, or why the device cannot be used. */
const char *vfio_find_target(struct vfio_target *t)
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
			 "PCI device %s is %04x:%04x: pincheck has no DMA driver for it (supported: %s)",
			 t->bdf, vendor, device, supported());
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
	size_t i;

	for (i = 0; i < PC_ARRAY_SIZE(drivers); i++)
		if (drivers[i]->vendor == vendor &&
		    drivers[i]->device == device)
			return drivers[i];
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

int pc_vfio_poll32(struct pc_vfio_dev *d, int bar, uint64_t off,
		   int (*done)(uint32_t val, int arg), int arg,
		   unsigned int timeout_ms, long pause_ns, uint32_t *val)
{
	struct timespec pause = { .tv_nsec = pause_ns };
	long long deadline = pc_now_ms() + timeout_ms;
	int rc;

	for (;;) {
		rc = pc_vfio_bar_read32(d, bar, off, val);
		if (rc)
			return rc;
		rc = done(*val, arg);
		if (rc)
			return rc > 0 ? 0 : -EIO;
		if (pc_now_ms() > deadline)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
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
int vfio_setup_device(struct pc_engine *e, struct vfio_priv *p)
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

