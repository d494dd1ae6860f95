// SPDX-License-Identifier: GPL-2.0
/*
 * The type1 session: the container, group and device fds the test process
 * holds across its vfio cases.
 *
 * vfio-pci enables the PCI function when its device is first opened and
 * disables and resets it when the last fd on it closes; under TCG that
 * costs a case ~24 ms (the ACPI _PRT method, the config space restored
 * through port I/O).  So the test process opens the container, the group
 * and the device once, before its first vfio case, and keeps them: each
 * case process inherits the fds, maps its own memory through the container
 * (type1 pins from the mm of the task that maps) and unmaps all of it when
 * it ends, whatever its verdict (pc_on_case_end).  Its driver resets the
 * controller at every open, as before.
 *
 * A case that could not unmap all it mapped (killed at its timeout, an
 * unmap that failed) may leave mappings the test process is not allowed to
 * remove (type1 lets only a task with the mapping task's mm unmap, since
 * 8f0d5bb95f76, v4.10, on the kernels that still check it): the test
 * process then closes the session, which frees them as a case's exit did
 * before, and opens a new one for the next case.  The vfio_iommufd engine
 * opens the device's cdev, which the kernel refuses while the group is
 * open: the session is closed before each of its cases.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "report.h"
#include "vfio_priv.h"

struct vfio_session {
	int container, group, dev;	/* -1: not open */
	pid_t holder;			/* the process using it now; 0: free */
	int used;			/* taken during this case */
	int unclean;			/* a taker did not unmap all it mapped */
};

/* In MAP_SHARED memory: a case process's writes reach the test process. */
static struct vfio_session *sess;
/* In a case process: the engine that took the session. */
static struct vfio_priv *taker;

static void close_fds(int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

static void session_close(void)
{
	int fds[3];

	if (!sess)
		return;
	fds[0] = sess->dev;
	fds[1] = sess->group;
	fds[2] = sess->container;
	close_fds(fds, 3);
	sess->dev = sess->group = sess->container = -1;
}

/* Open the session in the test process; on any error, leave none. */
static void session_open(void)
{
	struct pc_engine e = { .ops = &pc_engine_vfio };
	struct vfio_priv p = { .path = PATH_TYPE1 };
	int fds[3];

	p.container = p.group = p.iommufd = p.dev.fd = p.kmsg = -1;
	if (vfio_find_target(&p.t) || vfio_type1_open(&e, &p)) {
		fds[0] = p.dev.fd;
		fds[1] = p.group;
		fds[2] = p.container;
		close_fds(fds, 3);
		return;	/* the case opens its own and says why it cannot */
	}
	sess->container = p.container;
	sess->group = p.group;
	sess->dev = p.dev.fd;
}

void vfio_session_before_case(void)
{
	if (!sess) {
		sess = mmap(NULL, sizeof(*sess), PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (sess == MAP_FAILED) {
			sess = NULL;
			return;
		}
		sess->container = sess->group = sess->dev = -1;
	}
	sess->holder = 0;
	sess->used = 0;
	sess->unclean = 0;
	if (sess->dev < 0)
		session_open();
}

/*
 * Did a case that said it unmapped all leave nothing mapped?  An unmap of
 * the whole IOVA space returns what it removed: it must be 0.
 */
static int container_empty(void)
{
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = sizeof(u), .iova = 0, .size = 1ULL << 48,
	};

	if (ioctl(sess->container, VFIO_IOMMU_UNMAP_DMA, &u))
		return 0;
	if (u.size)
		pc_diag("vfio: the case left 0x%llx bytes mapped in the IOMMU: the session is closed",
			(unsigned long long)u.size);
	return !u.size;
}

void vfio_session_after_case(void)
{
	if (!sess || !sess->used)
		return;
	if (sess->unclean || sess->holder) {
		pc_diag("vfio: the case did not give back all it mapped (its process %s): the session is closed",
			sess->holder ? "ended holding it" : "had an unmap fail");
		session_close();
	} else if (!container_empty()) {
		session_close();
	}
}

void vfio_session_drop(void)
{
	session_close();
}

/* The case ends with the session taken: unmap, tell the test process. */
static void give_back_at_case_end(void)
{
	if (taker)
		vfio_session_give_back(taker);
}

/*
 * Take the session if nobody holds it: the case process, or a process it
 * forked after it gave the session back (memcg_fork's pinner).  A process
 * that exits holding it leaves it unclean: the test process closes it.
 */
int vfio_session_take(struct vfio_priv *p)
{
	pid_t free_holder = 0;

	if (!sess || sess->dev < 0 || taker ||
	    !__atomic_compare_exchange_n(&sess->holder, &free_holder, getpid(),
					 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return 0;
	sess->used = 1;
	sess->unclean = 1;
	p->container = sess->container;
	p->group = sess->group;
	p->dev.fd = sess->dev;
	p->in_session = 1;
	taker = p;
	pc_on_case_end(give_back_at_case_end);
	return 1;
}

void vfio_session_give_back(struct vfio_priv *p)
{
	int unmapped = !vfio_unmap_all(p);	/* also any earlier failure */

	if (taker != p)
		return;
	taker = NULL;
	pc_on_case_end(NULL);
	if (sess->holder == getpid()) {
		sess->unclean = !unmapped;
		__atomic_store_n(&sess->holder, 0, __ATOMIC_SEQ_CST);
	}
	p->container = p->group = p->dev.fd = -1;
	p->in_session = 0;
}
