/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmqueue.c — deferred per-VM work, a batch per idle turn of the loop.
 */
#include <string.h>
#include <time.h>

#include "vmqueue.h"

#define VM_QUEUE_BATCH 256                      /* as batch.c pushes changes */
#define VM_QUEUE_MAX_LAG_USEC (1000 * 1000)

void vm_queue_run(struct vm_queue *q, size_t max) {
        size_t n = max < q->n ? max : q->n;

        for (size_t i = 0; i < n; i++) {
                struct vm *vm = registry_get(q->registry, q->keys[i].pid, q->keys[i].fd);

                if (vm)
                        q->run(vm, q->userdata);
        }
        memmove(q->keys, q->keys + n, (q->n - n) * sizeof(*q->keys));
        q->n -= n;
        q->since = now_usec(CLOCK_MONOTONIC);
        if (q->n > 0 && q->source)
                (void) sd_event_source_set_enabled(q->source, SD_EVENT_ONESHOT);
        if (n > 0 && q->done)
                q->done(q->userdata);
}

static int on_turn(sd_event_source *s, void *userdata) {
        vm_queue_run(userdata, VM_QUEUE_BATCH);
        return 0;
}

int vm_queue_push(struct vm_queue *q, struct vm *vm) {
        int r;

        /* The loop was never idle for this long: take a batch now. */
        if (q->n > 0 && now_usec(CLOCK_MONOTONIC) - q->since > VM_QUEUE_MAX_LAG_USEC)
                vm_queue_run(q, VM_QUEUE_BATCH);
        if (!q->source) {
                r = sd_event_add_defer(q->event, &q->source, on_turn, q);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(q->source, q->description);
                /* After everything else pending: the sessions' APPLIEDs, the bus. */
                (void) sd_event_source_set_priority(q->source, SD_EVENT_PRIORITY_IDLE);
        }
        if (!GREEDY_REALLOC(q->keys, q->allocated, q->n + 1))
                return -ENOMEM;
        if (q->n == 0)
                q->since = now_usec(CLOCK_MONOTONIC);
        q->keys[q->n++] = (struct vm_key) { vm->pid, vm->fd };
        (void) sd_event_source_set_enabled(q->source, SD_EVENT_ONESHOT);
        return 0;
}

void vm_queue_done(struct vm_queue *q) {
        q->source = sd_event_source_disable_unref(q->source);
        free(q->keys);
        q->keys = NULL;
        q->n = q->allocated = 0;
}
