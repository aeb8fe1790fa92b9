/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * waiter.h — something that waits for the answers of several VMs: a D-Bus
 * call that may reply only when every VMM it pushed to has applied the
 * change (bus/bus-auth.c, bus_pending_reply()), however many turns of the loop that takes.  It
 * completes when it is armed (no more VMs will be added) and every VM it
 * waits for has answered, lost its session or gone away.
 */
#pragma once

#include <stdbool.h>

struct vm;
struct vm_waiter;

/* Called once, when w completes; w is freed right after it returns. */
typedef void (*vm_waiter_done_t)(struct vm_waiter *w, unsigned n_failed, const char *first_error,
                                 void *userdata);

/* destroy (may be NULL) lets go of userdata when w is freed, completed or not. */
struct vm_waiter *vm_waiter_new(vm_waiter_done_t done, void (*destroy)(void *userdata), void *userdata);
/* Wait for vm's next answer too. */
int vm_waiter_add(struct vm_waiter *w, struct vm *vm);
/* No more VMs will be added: complete now if none is outstanding. */
void vm_waiter_arm(struct vm_waiter *w);
/* Nothing was pushed (the change failed first): free without completing.
 * Only for a waiter no VM holds yet.  NULL is fine. */
void vm_waiter_cancel(struct vm_waiter *w);
/* The daemon stops before w is armed: it fails with reason, once the VMs
 * it waits for let go of it (vm_waiters_complete(), registry_done()). */
void vm_waiter_abandon(struct vm_waiter *w, const char *reason);

/* vm answered (ok) or never will (error says why): every waiter on it. */
void vm_waiters_complete(struct vm *vm, bool ok, const char *error);
