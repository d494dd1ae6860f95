/* SPDX-License-Identifier: GPL-2.0 */
/* libpincheck: everything a test binary needs. */
#ifndef PINCHECK_H
#define PINCHECK_H

#include "clock.h"
#include "harness.h"
#include "pattern.h"
#include "sysprobe.h"
#include "backing.h"
#include "engine.h"
#include "util.h"
#include "scenario.h"
#include "knob.h"
#include "mm.h"

#endif
