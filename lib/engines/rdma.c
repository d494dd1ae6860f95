// SPDX-License-Identifier: GPL-2.0
/*
 * rdma: a memory region (MR) of libibverbs on a real RDMA device, or on
 * soft-RoCE (rxe) in the VM.  ibv_reg_mr() pins the range through the
 * kernel's ib_umem_get(): FOLL_PIN | FOLL_LONGTERM, with FOLL_WRITE when the
 * MR is writable (kernels before 6.2 also took FOLL_WRITE | FOLL_FORCE for
 * read-only MRs), and the device keeps those pages until ibv_dereg_mr().
 *
 * The "device" is the HCA itself, through two RC queue pairs on one port
 * connected to each other (loopback):
 *
 *   dev_write: data -> staging MR, RDMA WRITE staging -> target MR
 *   dev_read:  RDMA READ target MR -> staging MR, staging -> out
 *
 * The staging buffer is the engine's own, MADV_DONTFORK, so a fork() in a
 * scenario never touches it.  Completions are polled with a deadline: a
 * stuck QP is an error "timeout", never a hang.
 *
 * Device: $PINCHECK_RDMA_DEVICE, else the first usable one: InfiniBand or
 * RoCE transport, an active port that can address itself (a LID, or a RoCE
 * GID: RoCEv2 IPv4-mapped preferred, then RoCEv2, then RoCEv1).  In the
 * VM the guest sets rxe0 up in the background and writes its state to
 * /run/pincheck-hw/rdma; the probe waits for that (pc_vm_hw_wait).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "clock.h"
#include "sysprobe.h"
#include "util.h"

#define RDMA_DEVICE_ENV "PINCHECK_RDMA_DEVICE"
#define RDMA_HW_DIR "/run/pincheck-hw"
#define RDMA_HW_MARKER RDMA_HW_DIR "/rdma"
#define RDMA_REASON_MAX 320

#define RDMA_HOWTO "modprobe rdma_rxe && rdma link add rxe0 type rxe netdev <IF>, or name a device in " RDMA_DEVICE_ENV

#ifdef HAVE_LIBIBVERBS
#include <infiniband/verbs.h>

/* In the VM: wait for its soft-RoCE setup; the marker's text, or "". */
static const char *rdma_hw_marker(void)
{
	static char text[160];
	const char *late = pc_vm_hw_wait();
	struct stat st;

	text[0] = '\0';
	if (stat(RDMA_HW_DIR, &st) || !S_ISDIR(st.st_mode))
		return text;
	if (late)
		snprintf(text, sizeof(text), "none: %s", late);
	else if (pc_read_line(RDMA_HW_MARKER, text, sizeof(text)))
		text[0] = '\0';
	return text;
}

#define RDMA_WAIT_S 5
#define RDMA_SLEEP_MS 10	/* the longest sleep between two looks at the CQ */
#define RDMA_CQ_DEPTH 8
#define RDMA_QP_DEPTH 4
#define RDMA_MAX_CHUNK (64UL << 20)	/* per work request: well within RDMA_WAIT_S */

/* The device and port the engine uses. */
struct rdma_port {
	struct ibv_context *ctx;
	uint8_t port;
	struct ibv_port_attr attr;
	struct ibv_gid_entry gid;	/* RoCE: the loopback address */
};

struct rdma_priv {
	struct rdma_port dev;
	struct ibv_pd *pd;
	struct ibv_comp_channel *chan;	/* wakes rdma_wait() */
	struct ibv_cq *cq;
	int cq_armed;			/* a completion event is requested */
	struct ibv_qp *req;	/* posts RDMA READ/WRITE */
	struct ibv_qp *resp;	/* the loopback peer that owns no buffer */
	struct ibv_mr *mr;	/* the pinned range */
	char *stage;		/* staging buffer, MADV_DONTFORK */
	size_t stage_len;
	struct ibv_mr *stage_mr;
	uint64_t wr_id;
};

/* RoCE: prefer a RoCEv2 GID (IPv4-mapped first), then RoCEv1. */
static int gid_rank(const struct ibv_gid_entry *g)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	int rank;

	if (g->gid_type == IBV_GID_TYPE_ROCE_V2)
		rank = 3;
	else if (g->gid_type == IBV_GID_TYPE_ROCE_V1)
		rank = 1;
	else
		return 0;
	if (!memcmp(g->gid.raw, v4mapped, sizeof(v4mapped)))
		rank++;
	return rank;
}

/* Keep @g in @p->gid if it is the best RoCE GID of @p's port so far. */
static void keep_best_gid(struct rdma_port *p, const struct ibv_gid_entry *g,
			  int *best_rank)
{
	if (g->port_num == p->port && gid_rank(g) > *best_rank) {
		*best_rank = gid_rank(g);
		p->gid = *g;
	}
}

/*
 * The best RoCE GID of port @p->port into @p->gid; 0, or -1 if none.  One
 * query of the valid entries (soft-RoCE's table has 1024 slots, most of
 * them empty: a query each took 5 ms under TCG), else one per slot.
 */
static int pick_roce_gid(struct rdma_port *p, uint8_t nports)
{
	size_t max = (size_t)p->attr.gid_tbl_len * nports;
	struct ibv_gid_entry *t = calloc(max ? max : 1, sizeof(*t));
	struct ibv_gid_entry g;
	int i, best_rank = 0;
	ssize_t n = -1;

	if (t)
		n = ibv_query_gid_table(p->ctx, t, max, 0);
	for (i = 0; i < n; i++)
		keep_best_gid(p, &t[i], &best_rank);
	free(t);
	for (i = 0; n < 0 && i < p->attr.gid_tbl_len; i++)
		if (!ibv_query_gid_ex(p->ctx, p->port, i, &g, 0))
			keep_best_gid(p, &g, &best_rank);
	return best_rank ? 0 : -1;
}

/* Can port @p->port reach itself: a LID on IB, a RoCE GID on Ethernet. */
static const char *port_unaddressable(struct rdma_port *p, uint8_t nports)
{
	if (p->attr.link_layer == IBV_LINK_LAYER_ETHERNET)
		return pick_roce_gid(p, nports) ?
		       "has no RoCE GID: give its network interface an address, or bring it up for a link-local one" :
		       NULL;
	return p->attr.lid ? NULL : "has no LID (is a subnet manager running?)";
}

/*
 * The first active, addressable port of @ctx into @p: 0, or -1 with the
 * reason this device cannot be used in @why.
 */
static int usable_port(struct ibv_context *ctx, struct rdma_port *p,
		       char *why, size_t len)
{
	const char *name = ibv_get_device_name(ctx->device);
	const char *bad = NULL;
	struct ibv_device_attr da;
	int state = IBV_PORT_NOP;
	uint8_t i;

	if (ctx->device->transport_type != IBV_TRANSPORT_IB)
		return snprintf(why, len, "RDMA device %s is not InfiniBand/RoCE (iWARP needs rdma_cm): use rxe or an IB/RoCE HCA",
				name), -1;
	if (ibv_query_device(ctx, &da))
		return snprintf(why, len, "RDMA device %s: ibv_query_device: %s",
				name, strerror(errno)), -1;
	p->ctx = ctx;
	for (i = 1; i <= da.phys_port_cnt; i++) {
		p->port = i;
		if (ibv_query_port(ctx, i, &p->attr))
			continue;
		state = p->attr.state;
		if (state != IBV_PORT_ACTIVE)
			continue;
		bad = port_unaddressable(p, da.phys_port_cnt);
		if (!bad)
			return 0;
	}
	p->ctx = NULL;
	if (bad)
		return snprintf(why, len, "RDMA device %s port %u %s", name,
				p->port, bad), -1;
	return snprintf(why, len,
			"RDMA device %s has no active port (state %s): bring its link up",
			name, ibv_port_state_str(state)), -1;
}

/* Why there is no device at all, with what to do about it. */
static void no_device_reason(char *why, size_t len)
{
	const char *marker = rdma_hw_marker();
	struct stat st;

	if (!strncmp(marker, "none", 4)) {
		snprintf(why, len, "no RDMA device (VM soft-RoCE setup: %s): %s",
			 marker, RDMA_HOWTO);
		return;
	}
	if (!stat("/sys/class/infiniband", &st) &&
	    stat("/dev/infiniband", &st))
		snprintf(why, len,
			 "RDMA devices exist but no /dev/infiniband: modprobe ib_uverbs");
	else if (!stat("/sys/class/infiniband", &st))
		snprintf(why, len,
			 "libibverbs lists no device although /sys/class/infiniband exists: apt-get install ibverbs-providers (provider for the device)");
	else
		snprintf(why, len, "no RDMA device: %s", RDMA_HOWTO);
}

/* Open the device named @name, or the first usable one. */
static int pick_device(struct ibv_device **list, int n, const char *name,
		       struct rdma_port *p, char *why, size_t len)
{
	char last[RDMA_REASON_MAX] = "";
	struct ibv_context *ctx;
	int i;

	for (i = 0; i < n; i++) {
		if (name && strcmp(ibv_get_device_name(list[i]), name))
			continue;
		ctx = ibv_open_device(list[i]);
		if (!ctx) {
			snprintf(last, sizeof(last), "ibv_open_device(%s): %s",
				 ibv_get_device_name(list[i]), strerror(errno));
		} else if (!usable_port(ctx, p, last, sizeof(last))) {
			return 0;
		} else {
			ibv_close_device(ctx);
		}
		if (name)
			return snprintf(why, len, "%s, or name another device in %s",
					last, RDMA_DEVICE_ENV), -1;
	}
	if (name)
		snprintf(why, len, "%s=%s: no such RDMA device (ibv_devices lists them)",
			 RDMA_DEVICE_ENV, name);
	else
		snprintf(why, len, "no usable RDMA device among %d (%s): %s", n,
			 last, RDMA_HOWTO);
	return -1;
}

/* Open the engine's device: 0, or -1 with an actionable reason in @why. */
static int rdma_open_port(struct rdma_port *p, char *why, size_t len)
{
	const char *name = getenv(RDMA_DEVICE_ENV);
	struct ibv_device **list;
	int n, rc;

	if (name && !*name)
		name = NULL;
	rdma_hw_marker();
	list = ibv_get_device_list(&n);
	if (!list && errno == ENOSYS) {
		snprintf(why, len,
			 "no RDMA device: no kernel verbs (ib_uverbs not loaded, no /sys/class/infiniband_verbs): modprobe ib_uverbs rdma_rxe && rdma link add rxe0 type rxe netdev <IF>, or run in a VM: run_tests.sh --kernel debian:6.12");
		return -1;
	}
	if (!list) {
		snprintf(why, len, "ibv_get_device_list: %s", strerror(errno));
		return -1;
	}
	if (!n) {
		ibv_free_device_list(list);
		no_device_reason(why, len);
		return -1;
	}
	rc = pick_device(list, n, name, p, why, len);
	ibv_free_device_list(list);
	return rc;
}

/*
 * In the test process, once: the first ibv_get_device_list() of a process
 * initializes libibverbs and loads the providers (0.2-0.4 s under TCG);
 * every case process forked afterwards inherits that.
 */
static void rdma_prepare(void)
{
	struct ibv_device **list;
	int n;

	rdma_hw_marker();
	list = ibv_get_device_list(&n);
	if (list)
		ibv_free_device_list(list);
}

/*
 * The device the probe opened, handed to the next open in the same
 * process.  A context is never used across fork(): uverbs takes write()
 * commands (QP state changes, soft-RoCE's doorbell after a post) only from
 * the very credentials that opened the file, and a fork gives the child a
 * copy (ib_safe_file_access(), Linux 4.6: EACCES).  The harness probes in
 * its own process and forks the cases, so a child opens the device its
 * parent chose again, without the device list and the GID table (open
 * 9.5 -> 3.2 ms under TCG), and asks only whether the port is still
 * active; the parent's context stays open in the parent.
 */
static struct rdma_port probed;
static pid_t probed_pid;

static void reopen_inherited_probe(void)
{
	struct rdma_port p = probed;

	memset(&probed, 0, sizeof(probed));
	p.ctx = ibv_open_device(p.ctx->device);
	if (!p.ctx)
		return;
	if (ibv_query_port(p.ctx, p.port, &p.attr) ||
	    p.attr.state != IBV_PORT_ACTIVE) {
		ibv_close_device(p.ctx);
		return;	/* look for a device again */
	}
	probed = p;
	probed_pid = getpid();
}

static void take_over_inherited_probe(void)
{
	if (probed.ctx && probed_pid != getpid())
		reopen_inherited_probe();
}

static const char *rdma_probe(void)
{
	static char why[RDMA_REASON_MAX];

	take_over_inherited_probe();
	if (probed.ctx)
		return NULL;
	probed_pid = getpid();
	if (rdma_open_port(&probed, why, sizeof(why))) {
		probed.ctx = NULL;
		return why;
	}
	return NULL;
}

/* ---- queue pairs ------------------------------------------------------ */

/* The address of our own port: the loopback peer of both QPs. */
static void loopback_ah(const struct rdma_port *p, struct ibv_ah_attr *ah)
{
	memset(ah, 0, sizeof(*ah));
	ah->port_num = p->port;
	if (p->attr.link_layer != IBV_LINK_LAYER_ETHERNET) {
		ah->dlid = p->attr.lid;		/* InfiniBand: LID routing */
		return;
	}
	ah->is_global = 1;
	ah->grh.dgid = p->gid.gid;
	ah->grh.sgid_index = p->gid.gid_index;
	ah->grh.hop_limit = 64;
}

static struct ibv_qp *create_rc_qp(struct pc_engine *e, struct rdma_priv *p)
{
	struct ibv_qp_init_attr a = {
		.send_cq = p->cq, .recv_cq = p->cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = RDMA_QP_DEPTH, .max_recv_wr = 1,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp *qp = ibv_create_qp(p->pd, &a);

	if (!qp)
		pc_engine_err(e, -errno, "rdma: ibv_create_qp(RC): %s",
			      strerror(errno));
	return qp;
}

static int modify_qp(struct pc_engine *e, struct ibv_qp *qp,
		     struct ibv_qp_attr *a, int mask, const char *to)
{
	int rc = ibv_modify_qp(qp, a, mask);

	if (rc)
		return pc_engine_err(e, -rc, "rdma: ibv_modify_qp(QP 0x%x -> %s): %s",
				     qp->qp_num, to, strerror(rc));
	return 0;
}

/* RESET -> INIT -> RTR -> RTS, connected to @peer_qpn at @ah. */
static int connect_qp(struct pc_engine *e, struct rdma_port *port,
		      struct ibv_qp *qp, uint32_t peer_qpn,
		      const struct ibv_ah_attr *ah)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = port->port,
		.qp_access_flags = IBV_ACCESS_REMOTE_READ |
				   IBV_ACCESS_REMOTE_WRITE,
	};
	int rc;

	rc = modify_qp(e, qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
		       IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, "INIT");
	if (rc)
		return rc;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = port->attr.active_mtu;
	a.dest_qp_num = peer_qpn;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr = *ah;
	rc = modify_qp(e, qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
		       IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
		       IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER, "RTR");
	if (rc)
		return rc;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	return modify_qp(e, qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			 IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			 IBV_QP_MAX_QP_RD_ATOMIC, "RTS");
}

static int create_loopback(struct pc_engine *e, struct rdma_priv *p)
{
	struct ibv_ah_attr ah;
	int rc;

	p->pd = ibv_alloc_pd(p->dev.ctx);
	if (!p->pd)
		return pc_engine_err(e, -errno, "rdma: ibv_alloc_pd: %s",
				     strerror(errno));
	p->chan = ibv_create_comp_channel(p->dev.ctx);
	if (!p->chan)
		return pc_engine_err(e, -errno, "rdma: ibv_create_comp_channel: %s",
				     strerror(errno));
	p->cq = ibv_create_cq(p->dev.ctx, RDMA_CQ_DEPTH, NULL, p->chan, 0);
	if (!p->cq)
		return pc_engine_err(e, -errno, "rdma: ibv_create_cq: %s",
				     strerror(errno));
	p->req = create_rc_qp(e, p);
	if (!p->req)
		return -EIO;
	p->resp = create_rc_qp(e, p);
	if (!p->resp)
		return -EIO;
	loopback_ah(&p->dev, &ah);
	rc = connect_qp(e, &p->dev, p->req, p->resp->qp_num, &ah);
	if (!rc)
		rc = connect_qp(e, &p->dev, p->resp, p->req->qp_num, &ah);
	return rc;
}

static void rdma_close(struct pc_engine *e)
{
	struct rdma_priv *p = e->priv;

	if (!p)
		return;
	if (p->req)
		ibv_destroy_qp(p->req);
	if (p->resp)
		ibv_destroy_qp(p->resp);
	if (p->cq)
		ibv_destroy_cq(p->cq);
	if (p->chan)
		ibv_destroy_comp_channel(p->chan);
	if (p->pd)
		ibv_dealloc_pd(p->pd);
	if (p->dev.ctx)
		ibv_close_device(p->dev.ctx);
	free(p);
	e->priv = NULL;
}

static int rdma_open(struct pc_engine *e)
{
	struct rdma_priv *p = calloc(1, sizeof(*p));
	char why[RDMA_REASON_MAX];
	int rc;

	if (!p)
		return pc_engine_err(e, -ENOMEM, "rdma: out of memory");
	e->priv = p;
	take_over_inherited_probe();
	p->dev = probed;
	probed.ctx = NULL;
	if (!p->dev.ctx && rdma_open_port(&p->dev, why, sizeof(why))) {
		rdma_close(e);
		return pc_engine_err(e, -ENODEV, "rdma: %s", why);
	}
	rc = create_loopback(e, p);
	if (rc)
		rdma_close(e);
	return rc;
}

/* ---- memory regions --------------------------------------------------- */

static void free_stage(struct rdma_priv *p)
{
	if (p->stage_mr)
		ibv_dereg_mr(p->stage_mr);
	if (p->stage)
		munmap(p->stage, p->stage_len);
	p->stage_mr = NULL;
	p->stage = NULL;
}

/* The engine's own buffer for both directions, out of every fork. */
static int alloc_stage(struct pc_engine *e, struct rdma_priv *p, size_t len)
{
	p->stage_len = len;
	p->stage = mmap(NULL, len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p->stage == MAP_FAILED) {
		p->stage = NULL;
		return pc_engine_err(e, -errno, "rdma: staging mmap 0x%zx: %s",
				     len, strerror(errno));
	}
	if (madvise(p->stage, len, MADV_DONTFORK))
		return pc_engine_err(e, -errno, "rdma: staging MADV_DONTFORK: %s",
				     strerror(errno));
	p->stage_mr = ibv_reg_mr(p->pd, p->stage, len, IBV_ACCESS_LOCAL_WRITE);
	if (!p->stage_mr)
		return pc_engine_err(e, -errno,
				     "rdma: ibv_reg_mr(staging, 0x%zx, LOCAL_WRITE): %s",
				     len, strerror(errno));
	return 0;
}

/*
 * Before b40656aa7d55 ("RDMA/umem: remove FOLL_FORCE usage", 6.2) the
 * kernel pinned read-only MRs with FOLL_WRITE | FOLL_FORCE: a R/O MR over
 * a PROT_READ mapping then needed a forced write, which GUP refuses for
 * shared mappings (FOLL_FORCE needs a COW mapping) and for hugetlb.
 */
static const char *ro_mr_hint(unsigned int flags, int rc)
{
	if (!(flags & PC_PIN_RO) || rc != -EFAULT)
		return "";
	return " (kernels without b40656aa7d55 \"RDMA/umem: remove FOLL_FORCE usage\" pin R/O MRs with FOLL_WRITE|FOLL_FORCE)";
}

static int rdma_pin(struct pc_engine *e, void *addr, size_t len,
		    unsigned int flags)
{
	struct rdma_priv *p = e->priv;
	int access = IBV_ACCESS_REMOTE_READ;
	int rc;

	if (flags & PC_PIN_RW)
		access |= IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
	rc = alloc_stage(e, p, pc_align_up(len, pc_page_size));
	if (rc) {
		free_stage(p);
		return rc;
	}
	p->mr = ibv_reg_mr(p->pd, addr, len, access);
	if (!p->mr) {
		rc = -errno;
		free_stage(p);
		return pc_engine_err(e, rc, "rdma: ibv_reg_mr(%p, 0x%zx, %s): %s%s",
				     addr, len, flags & PC_PIN_RW ? "R/W" : "R/O",
				     strerror(-rc), ro_mr_hint(flags, rc));
	}
	return 0;
}

static int rdma_unpin(struct pc_engine *e)
{
	struct rdma_priv *p = e->priv;
	int rc = 0;

	if (p->mr) {
		rc = ibv_dereg_mr(p->mr);
		p->mr = NULL;
	}
	free_stage(p);
	if (rc)
		return pc_engine_err(e, -rc, "rdma: ibv_dereg_mr: %s",
				     strerror(rc));
	return 0;
}

/* ---- transfers -------------------------------------------------------- */

/*
 * Sleep until the CQ signals a completion, for at most RDMA_SLEEP_MS (an
 * event another process sharing the channel after a fork took costs that
 * much, never a false timeout), or until @deadline (pc_now_ms) passes:
 * 0, or -ETIMEDOUT.  The CQ is armed first and polled again by the caller
 * before it sleeps, so a completion that came before the arming is seen.
 */
static int sleep_on_cq(struct rdma_priv *p, long long deadline)
{
	struct pollfd pfd = { .fd = p->chan->fd, .events = POLLIN };
	long long left = deadline - pc_now_ms();
	struct ibv_cq *cq;
	void *cq_ctx;

	if (left <= 0)
		return -ETIMEDOUT;
	if (poll(&pfd, 1, left < RDMA_SLEEP_MS ? (int)left : RDMA_SLEEP_MS) <= 0)
		return 0;
	if (!ibv_get_cq_event(p->chan, &cq, &cq_ctx))
		ibv_ack_cq_events(cq, 1);
	p->cq_armed = 0;
	return 0;
}

/* Wait for the completion of work request @id, with a deadline. */
static int rdma_wait(struct pc_engine *e, const char *op, uint64_t id)
{
	struct rdma_priv *p = e->priv;
	long long deadline = pc_now_ms() + RDMA_WAIT_S * 1000LL;
	struct ibv_wc wc;
	int n;

	for (;;) {
		n = ibv_poll_cq(p->cq, 1, &wc);
		if (n < 0)
			return pc_engine_err(e, -EIO, "rdma %s: ibv_poll_cq failed (%d)",
					     op, n);
		if (!n && !p->cq_armed) {
			if (ibv_req_notify_cq(p->cq, 0))
				return pc_engine_err(e, -EIO, "rdma %s: ibv_req_notify_cq failed",
						     op);
			p->cq_armed = 1;
			continue;
		}
		if (!n) {
			if (sleep_on_cq(p, deadline))
				return pc_engine_err(e, -ETIMEDOUT,
						     "rdma %s: timeout: no completion within %d s (QP stuck?)",
						     op, RDMA_WAIT_S);
			continue;
		}
		if (wc.wr_id != id)
			continue;
		if (wc.status != IBV_WC_SUCCESS)
			return pc_engine_err(e, -EIO,
					     "rdma %s: completion status %s (%d), vendor error 0x%x",
					     op, ibv_wc_status_str(wc.status),
					     wc.status, wc.vendor_err);
		return 0;
	}
}

/* One RDMA READ (to_stage) or WRITE between staging and the target MR. */
static int rdma_transfer(struct pc_engine *e, int to_stage, size_t off,
			 size_t len)
{
	struct rdma_priv *p = e->priv;
	const char *op = to_stage ? "RDMA READ" : "RDMA WRITE";
	struct ibv_sge sge = {
		.addr = (uintptr_t)p->stage, .length = (uint32_t)len,
		.lkey = p->stage_mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = ++p->wr_id, .sg_list = &sge, .num_sge = 1,
		.opcode = to_stage ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)e->addr + off,
			     .rkey = p->mr->rkey },
	};
	struct ibv_send_wr *bad;
	int rc = ibv_post_send(p->req, &wr, &bad);

	if (rc)
		return pc_engine_err(e, -rc, "rdma %s: ibv_post_send [0x%zx, 0x%zx): %s",
				     op, off, off + len, strerror(rc));
	return rdma_wait(e, op, wr.wr_id);
}

static size_t chunk_len(const struct rdma_priv *p, size_t left)
{
	size_t max = p->dev.attr.max_msg_sz ? p->dev.attr.max_msg_sz :
					      RDMA_MAX_CHUNK;

	if (max > RDMA_MAX_CHUNK)
		max = RDMA_MAX_CHUNK;
	return left < max ? left : max;
}

static int rdma_dev_write(struct pc_engine *e, size_t off, size_t len,
			  const void *data)
{
	struct rdma_priv *p = e->priv;
	size_t done, n;
	int rc;

	for (done = 0; done < len; done += n) {
		n = chunk_len(p, len - done);
		memcpy(p->stage, (const char *)data + done, n);
		rc = rdma_transfer(e, 0, off + done, n);
		if (rc)
			return rc;
	}
	return 0;
}

static int rdma_dev_read(struct pc_engine *e, size_t off, size_t len,
			 void *out)
{
	struct rdma_priv *p = e->priv;
	size_t done, n;
	int rc;

	for (done = 0; done < len; done += n) {
		n = chunk_len(p, len - done);
		memset(p->stage, 0, n);
		rc = rdma_transfer(e, 1, off + done, n);
		if (rc)
			return rc;
		memcpy((char *)out + done, p->stage, n);
	}
	return 0;
}

#define RDMA_CAPS (PC_CAP_DEV_READ | PC_CAP_DEV_WRITE | PC_CAP_PIN_RO | \
		   PC_CAP_PIN_RW | PC_CAP_LONGTERM | PC_CAP_HELD)

const struct pc_engine_ops pc_engine_rdma = {
	.name = "rdma",
	.caps = RDMA_CAPS,
	.probe = rdma_probe,
	.prepare = rdma_prepare,
	.open = rdma_open,
	.pin = rdma_pin,
	.dev_read = rdma_dev_read,
	.dev_write = rdma_dev_write,
	.unpin = rdma_unpin,
	.close = rdma_close,
};

#else /* !HAVE_LIBIBVERBS */

static const char *rdma_probe(void)
{
	return "built without libibverbs: apt-get install libibverbs-dev ibverbs-providers (rxe provider), then make";
}

static int rdma_open(struct pc_engine *e)
{
	return pc_engine_err(e, -EOPNOTSUPP, "%s", rdma_probe());
}

const struct pc_engine_ops pc_engine_rdma = {
	.name = "rdma",
	.caps = PC_CAP_DEV_READ | PC_CAP_DEV_WRITE | PC_CAP_PIN_RO |
		PC_CAP_PIN_RW | PC_CAP_LONGTERM | PC_CAP_HELD,
	.probe = rdma_probe,
	.open = rdma_open,
};

#endif /* HAVE_LIBIBVERBS */
