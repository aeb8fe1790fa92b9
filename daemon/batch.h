/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* batch.h — changes that reach many VMs, applied a batch per loop turn. */
#pragma once

#include "manager.h"

/* Decide vms (NULL: every VM) again and apply where the filter changed (all
 * of them when force), BATCH_SIZE per turn of the event loop.  waiter (may
 * be NULL) is armed after the last batch: it replies once every pushed VM
 * has answered.  The first batch runs before this returns. */
int manager_apply_batched(struct manager *m, struct vm **vms, size_t n, bool force, struct pending_call *waiter);
/* The daemon stops: drop unfinished batches without replying. */
void manager_free_batches(struct manager *m);
