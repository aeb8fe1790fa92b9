/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * batch.c — a change that reaches many VMs (a reload, a new default
 * profile, Reapply of all) is decided and pushed VM_QUEUE_BATCH VMs per
 * turn of the event loop, so the bus and the VMM sockets are served in
 * between (pmufilterd(8), RELOAD).  The engine is registry/vmqueue.c.
 */
#include <assert.h>

#include "deliver.h"
#include "log.h"
#include "vmqueue.h"
#include "waiter.h"

struct batch {
        struct deliver *deliver;
        struct vm_waiter *waiter;       /* armed when the last batch is done */
        bool force;                     /* push even where the filter did not change */
        struct vm_queue queue;
        LIST_FIELDS(struct batch, batches);
};

static void batch_free(struct batch *b) {
        LIST_REMOVE(batches, b->deliver->batches, b);
        vm_queue_done(&b->queue);
        /* Only when the daemon stops mid-way: VMs may hold the waiter. */
        vm_waiter_abandon(b->waiter, "pmufilterd stopped before every VM had the change");
        free(b);
}

void deliver_free_batches(struct deliver *d) {
        while (d->batches)
                batch_free(d->batches);
}

static void batch_one(struct vm *vm, void *userdata) {
        struct batch *b = userdata;
        struct deliver *d = b->deliver;
        int r;

        /* A VMM still applying its attach's filter: the attach's record
         * before any of the change (the D-Bus call's, the new APPLY's
         * answer), which comes after it. */
        audit_held_say(&vm->attach_said);
        r = deliver_decide(d, vm);
        if (r < 0)
                return (void) log_error_errno(r, "VM %s: failed to decide its filter: %m", vm->id);
        if (r == 0 && !b->force)
                return;
        /* A VM we can reach is told first, and its answer (APPLIED, a
         * failure, or the end of its session) tells the bus, once, with the
         * new state, and writes its record: the VMM's ioctl waits for no
         * signal of ours.  Should we die before the answer, the record
         * still shows the old decision, and the next start decides again
         * and pushes the difference. */
        if (deliver_vm_managed(vm)) {
                r = deliver_apply(d, vm, b->waiter);
                if (r >= 0)
                        return;
                log_warning_errno(r, "VM %s: failed to apply the new filter: %m", vm->id);
        }
        registry_notify(d->registry, REGISTRY_VM_CHANGED, vm, NULL);
        records_mark(d->records, vm);
}

/* Every VM has had its turn. */
static void batch_drained(void *userdata) {
        struct batch *b = userdata;

        if (b->waiter)
                vm_waiter_arm(TAKE_PTR(b->waiter));
        batch_free(b);
}

int deliver_apply_batched(struct deliver *d, struct vm **vms, size_t n, bool force, struct vm_waiter *waiter) {
        struct batch *b;
        int r;

        assert(d);
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        *b = (struct batch) {
                .deliver = d,
                .force = force,
                .queue = {
                        .description = "apply-batch",
                        .run = batch_one,
                        .drained = batch_drained,
                        .userdata = b,
                        .registry = d->registry,
                        .event = d->event,
                        .priority = SD_EVENT_PRIORITY_NORMAL,
                },
        };
        r = vm_queue_reserve(&b->queue, vms ? n : d->registry->n_vms);
        if (r < 0) {
                free(b);
                return r;
        }
        b->waiter = waiter;
        LIST_PREPEND(batches, d->batches, b);
        r = vm_queue_start(&b->queue);
        if (r < 0) {
                /* No turn to wait for: all now rather than lose VMs. */
                if (vms)
                        for (size_t i = 0; i < n; i++)
                                batch_one(vms[i], b);
                else
                        REGISTRY_FOREACH_SAFE(vm, next, d->registry)
                                batch_one(vm, b);
                batch_drained(b);
                return 0;
        }
        /* Room is reserved: pushing cannot fail. */
        if (vms)
                for (size_t i = 0; i < n; i++)
                        (void) vm_queue_push(&b->queue, vms[i]);
        else
                REGISTRY_FOREACH(vm, d->registry)
                        (void) vm_queue_push(&b->queue, vm);
        /* The first batch now: a change to a few VMs needs no turn of the loop. */
        vm_queue_run(&b->queue, VM_QUEUE_BATCH);
        return 0;
}
