/* SPDX-License-Identifier: GPL-2.0 */
/* The setup of a page-mover case, and the control that ignores the pin. */
#ifndef PINCHECK_MOVER_H
#define PINCHECK_MOVER_H

#include "backing.h"
#include "engine.h"
#include "report.h"

struct pc_mover_setup {
	struct pc_engine e;
	struct pc_region r;	/* pinned R/W by e */
	struct pc_region t;	/* its unpinned twin (same backing, same data) */
	int has_twin;
};

/*
 * Open the case's engine, create a region of the case's backing and (with
 * @twin) an unpinned twin of it, both holding PC_GEN_INIT and allocated on
 * NUMA node @node (-1: anywhere), pin the region R/W and snap the PFNs of
 * both for @event.  Skips when a page did not land on @node.  Automatic
 * NUMA balancing is paused for the case (the harness restores it).
 */
void pc_mover_setup(const struct pc_case *c, struct pc_mover_setup *s,
		    int node, int twin, const char *event);
void pc_mover_teardown(struct pc_mover_setup *s);

/*
 * The same in two steps, for a case that makes its regions itself (into
 * s->r and s->t, setting s->has_twin): open the engine and pause NUMA
 * balancing; then pin s->r R/W and snap the PFNs of both.
 */
void pc_mover_open(const struct pc_case *c, struct pc_mover_setup *s);
void pc_mover_pin_and_snap(struct pc_mover_setup *s, const char *event);

/* ---- controls ----------------------------------------------------------- */

/*
 * Play a page mover that ignores the pin: copy the CPU's view of @r to
 * fresh pages (on NUMA node @node, -1: anywhere) and map them at the same
 * address.  The device keeps the pinned pages.  The same checks as after
 * a real mover must now fail.
 */
void pc_move_ignoring_pin(struct pc_region *r, int node);

/*
 * After pc_move_ignoring_pin(): a CPU write must not reach the device,
 * which keeps seeing @held; the check must report it, and the PFN check
 * must see the pages moved.  Fails the case when a check stays blind.
 */
void pc_expect_lost_pin_detected(struct pc_engine *e, struct pc_region *r,
				 unsigned int held);

#endif
