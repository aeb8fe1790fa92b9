/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmqueue.c — deferred per-VM work, a batch per turn of the loop.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "vmqueue.h"

/* The idle-priority queues of one loop, run in one dispatch.  Few loops,
 * few queues: lists. */
struct vm_queue_turn {
        sd_event *event;
        sd_event_source *source;
        struct vm_queue *queues, *queues_tail;  /* in order of their first push */
        struct vm_queue_turn *next;
};

static struct vm_queue_turn *turns;

static void turn_enable(struct vm_queue *q) {
        sd_event_source *s = q->turn ? q->turn->source : q->source;

        if (s)
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* Entries at the head that have nothing left to do: their VM is gone, or
 * its owner did the work by other means (still_wanted says no). */
static void drop_stale_heads(struct vm_queue *q) {
        size_t k = 0;

        if (!q->still_wanted)
                return;
        while (k < q->n) {
                struct vm *vm = registry_get(q->registry, q->entries[k].key.pid, q->entries[k].key.fd);

                if (vm && q->still_wanted(vm, q->userdata))
                        break;
                k++;
        }
        if (k == 0)
                return;
        memmove(q->entries, q->entries + k, (q->n - k) * sizeof(*q->entries));
        q->n -= k;
}

/* The oldest entry is due max lag after it was queued, idle or not.  The
 * timer stays as it is when the entries it was armed for go (deadline.h). */
static void arm_late(struct vm_queue *q) {
        drop_stale_heads(q);
        if (q->n > 0)
                deadline_arm(q->late, &q->late_due, q->entries[0].queued + q->max_lag_usec);
}

void vm_queue_run(struct vm_queue *q, size_t max) {
        size_t n;

        assert(q);
        n = max < q->n ? max : q->n;
        for (size_t i = 0; i < n; i++) {
                struct vm *vm = registry_get(q->registry, q->entries[i].key.pid, q->entries[i].key.fd);

                if (vm)
                        q->run(vm, q->userdata);
        }
        if (n > 0) {
                memmove(q->entries, q->entries + n, (q->n - n) * sizeof(*q->entries));
                q->n -= n;
                if (q->n > 0 && !q->only_late)
                        turn_enable(q);
                arm_late(q);
                if (q->turn_done)
                        q->turn_done(q->userdata);
        }
        if (q->n == 0 && q->drained)
                q->drained(q->userdata);
}

static int on_turn(sd_event_source *s, void *userdata) {
        vm_queue_run(userdata, VM_QUEUE_BATCH);
        return 0;
}

static int on_shared_turn(sd_event_source *s, void *userdata) {
        struct vm_queue_turn *t = userdata;

        LIST_FOREACH_SAFE(turn, q, next, t->queues)
                if (q->n > 0)
                        vm_queue_run(q, VM_QUEUE_BATCH);
        return 0;
}

static int turn_join(struct vm_queue *q) {
        struct vm_queue_turn *t;
        int r;

        for (t = turns; t && t->event != q->event; t = t->next)
                ;
        if (!t) {
                t = calloc(1, sizeof(*t));
                if (!t)
                        return -ENOMEM;
                r = sd_event_add_defer(q->event, &t->source, on_shared_turn, t);
                if (r < 0) {
                        free(t);
                        return r;
                }
                (void) sd_event_source_set_description(t->source, "vm-queues");
                (void) sd_event_source_set_priority(t->source, SD_EVENT_PRIORITY_IDLE);
                (void) sd_event_source_set_enabled(t->source, SD_EVENT_OFF);
                t->event = q->event;
                t->next = turns;
                turns = t;
        }
        LIST_APPEND(turn, t->queues, t->queues_tail, q);
        q->turn = t;
        return 0;
}

static void turn_leave(struct vm_queue *q) {
        struct vm_queue_turn *t = q->turn, **p;

        if (!t)
                return;
        LIST_REMOVE_TAIL(turn, t->queues, t->queues_tail, q);
        q->turn = NULL;
        if (t->queues)
                return;
        for (p = &turns; *p != t; p = &(*p)->next)
                ;
        *p = t->next;
        sd_event_source_disable_unref(t->source);
        free(t);
}

/* The loop was never idle for max lag: a batch of the late ones now, and
 * (re-armed in the past) another at the next turn until none is late. */
static int on_late(sd_event_source *s, uint64_t usec, void *userdata) {
        struct vm_queue *q = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        size_t n = 0;

        deadline_fired(&q->late_due);
        drop_stale_heads(q);
        while (n < q->n && n < VM_QUEUE_BATCH && now - q->entries[n].queued >= q->max_lag_usec)
                n++;
        vm_queue_run(q, n);
        arm_late(q);            /* a queue with a max lag never frees itself when drained */
        return 0;
}

int vm_queue_start(struct vm_queue *q) {
        int r;

        assert(q);
        assert(q->event);
        assert(!q->only_late || q->max_lag_usec > 0);
        if (q->only_late)
                ;       /* its late timer alone runs it */
        else if (q->priority == SD_EVENT_PRIORITY_IDLE) {
                if (!q->turn) {
                        r = turn_join(q);
                        if (r < 0)
                                return r;
                }
        } else if (!q->source) {
                r = sd_event_add_defer(q->event, &q->source, on_turn, q);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(q->source, q->description);
                (void) sd_event_source_set_priority(q->source, q->priority);
                (void) sd_event_source_set_enabled(q->source, SD_EVENT_OFF);
        }
        if (!q->late && q->max_lag_usec > 0) {
                r = sd_event_add_time(q->event, &q->late, CLOCK_MONOTONIC, UINT64_MAX, 1, on_late, q);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(q->late, q->description);
                (void) sd_event_source_set_enabled(q->late, SD_EVENT_OFF);
        }
        return 0;
}

int vm_queue_reserve(struct vm_queue *q, size_t n) {
        assert(q);
        if (q->n + n <= q->allocated)
                return 0;       /* GREEDY_REALLOC() gives NULL for "nothing yet, none needed" */
        if (!GREEDY_REALLOC(q->entries, q->allocated, q->n + n))
                return -ENOMEM;
        return 0;
}

int vm_queue_push(struct vm_queue *q, const struct vm *vm) {
        int r;

        assert(q);
        assert(vm);
        r = vm_queue_start(q);
        if (r < 0)
                return r;
        r = vm_queue_reserve(q, 1);
        if (r < 0)
                return r;
        q->entries[q->n++] = (struct vm_queue_entry) { { vm->pid, vm->fd }, now_usec(CLOCK_MONOTONIC) };
        if (q->n == 1)
                arm_late(q);
        if (!q->only_late)
                turn_enable(q);
        return 0;
}

void vm_queue_done(struct vm_queue *q) {
        turn_leave(q);
        q->source = sd_event_source_disable_unref(q->source);
        q->late = sd_event_source_disable_unref(q->late);
        q->late_due = 0;
        free(q->entries);
        q->entries = NULL;
        q->n = q->allocated = 0;
}
