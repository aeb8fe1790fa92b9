/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * batch.c — a change that reaches many VMs (a reload, a new default
 * profile) is decided and pushed in batches, one per turn of the event
 * loop, so the bus and the VMM sockets are served in between (DESIGN §7).
 * VMs are named by (pid, fd): one that goes away meanwhile is skipped.
 */
#include "batch.h"
#include "bus.h"
#include "log.h"
#include "persist.h"

#define BATCH_SIZE 256

struct batch {
        struct manager *manager;
        struct pending_call *waiter;    /* armed when the last batch is done */
        bool force;                     /* push even where the filter did not change */
        struct vm_key *keys;
        size_t n, next;
        sd_event_source *source;
        struct batch *next_batch;
};

static void batch_free(struct batch *b) {
        struct batch **p = &b->manager->batches;

        while (*p && *p != b)
                p = &(*p)->next_batch;
        if (*p)
                *p = b->next_batch;
        sd_event_source_disable_unref(b->source);
        pending_call_cancel(b->waiter);         /* only when the daemon stops mid-way */
        free(b->keys);
        free(b);
}

void manager_free_batches(struct manager *m) {
        while (m->batches)
                batch_free(m->batches);
}

static void batch_one(struct batch *b, struct vm *vm) {
        struct manager *m = b->manager;
        int r;

        r = manager_decide(m, vm);
        if (r < 0) {
                log_error_errno(r, "VM %s: failed to decide its filter: %m", vm->id);
                return;
        }
        if (r == 0 && !b->force)
                return;
        /* A VM we can reach is told first, and its answer (APPLIED, a
         * failure, or the end of its session) tells the bus, once, with the
         * new state, and writes its record: the VMM's ioctl waits for no
         * signal of ours.  Should we die before the answer, the record
         * still shows the old decision, and the next start decides again
         * and pushes the difference. */
        if (manager_vm_managed(vm)) {
                r = manager_apply(m, vm, b->waiter);
                if (r >= 0)
                        return;
                log_warning_errno(r, "VM %s: failed to apply the new filter: %m", vm->id);
        }
        bus_vm_changed(m, vm);
        persist_vm(m, vm);
}

/* One batch; true when every VM has had its turn (and the waiter is armed). */
static bool batch_step(struct batch *b) {
        size_t end = b->next + BATCH_SIZE < b->n ? b->next + BATCH_SIZE : b->n;

        for (; b->next < end; b->next++) {
                struct vm *vm = registry_get(&b->manager->registry, b->keys[b->next].pid, b->keys[b->next].fd);

                if (vm)
                        batch_one(b, vm);
        }
        if (b->next < b->n)
                return false;
        if (b->waiter)
                pending_call_arm(TAKE_PTR(b->waiter));
        return true;
}

static int on_batch(sd_event_source *s, void *userdata) {
        struct batch *b = userdata;

        if (batch_step(b))
                batch_free(b);
        return 0;
}

int manager_apply_batched(struct manager *m, struct vm **vms, size_t n, bool force, struct pending_call *waiter) {
        struct batch *b;
        int r;

        if (!vms)
                n = m->registry.n_vms;
        b = calloc(1, sizeof(*b));
        if (!b || !(b->keys = calloc(n + 1, sizeof(*b->keys)))) {
                free(b);
                return -ENOMEM;
        }
        b->manager = m;
        b->waiter = waiter;
        b->force = force;
        b->next_batch = m->batches;
        m->batches = b;
        if (vms)
                for (size_t i = 0; i < n; i++)
                        b->keys[b->n++] = (struct vm_key) { vms[i]->pid, vms[i]->fd };
        else
                REGISTRY_FOREACH(vm, &m->registry)
                        b->keys[b->n++] = (struct vm_key) { vm->pid, vm->fd };

        /* The first batch now: a change to a few VMs needs no turn of the loop. */
        if (batch_step(b)) {
                batch_free(b);
                return 0;
        }
        r = sd_event_add_defer(m->event, &b->source, on_batch, b);
        if (r < 0) {
                /* No turn to wait for: finish now rather than lose VMs. */
                while (!batch_step(b))
                        ;
                batch_free(b);
                return 0;
        }
        (void) sd_event_source_set_description(b->source, "apply-batch");
        (void) sd_event_source_set_enabled(b->source, SD_EVENT_ON);
        return 0;
}
