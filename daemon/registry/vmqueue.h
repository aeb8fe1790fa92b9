/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmqueue.h — the one batching engine for work over many VMs: a change
 * pushed to every VM (deliver/batch.c), the VM records (records.c), new VMs
 * announced on the bus (bus/bus.c).  Work is queued per VM and done a batch
 * per turn of the event loop, so that a change over 10,000 VMs never holds
 * a D-Bus call or an ATTACH behind all of them.  At idle priority a queue
 * may set max_lag_usec: under a load that never lets the loop idle, the
 * oldest entries run anyway once they are that late; with only_late they
 * run then and no sooner.  VMs are held by (pid, fd): one that goes away
 * meanwhile is skipped.  The idle-priority queues of one loop (other than
 * only_late ones) share one turn: a batch of each in the same iteration of
 * the loop, not an iteration each (docs/architecture.md, "The life of one
 * VM").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "list.h"
#include "registry.h"

#define VM_QUEUE_BATCH 256

struct vm_queue_entry {
        struct vm_key key;
        uint64_t queued;                /* CLOCK_MONOTONIC */
};

struct vm_queue {
        /* set by the owner before the first push */
        const char *description;
        void (*run)(struct vm *vm, void *userdata);     /* one queued VM, still registered */
        void (*turn_done)(void *userdata);              /* after each batch; may be NULL */
        /* The queue ran empty.  Last thing vm_queue_run() does: it may free
         * the queue.  May be NULL. */
        void (*drained)(void *userdata);
        /* The entry of vm still has work to do: false when its owner did
         * it by other means (the bus said a new VM with its first answer).
         * Entries that have none are dropped from the head before the
         * late timer is armed for them.  May be NULL: all have. */
        bool (*still_wanted)(struct vm *vm, void *userdata);
        void *userdata;
        int64_t priority;               /* of the turns: SD_EVENT_PRIORITY_* */
        uint64_t max_lag_usec;          /* 0: no bound */
        /* Run entries only once they are max_lag_usec old: a delay, not a
         * bound (the bus's announcements, said sooner when anything else
         * about the VM is said). */
        bool only_late;

        struct registry *registry;
        sd_event *event;
        sd_event_source *source;        /* a batch per turn (not at idle priority: see turn) */
        struct vm_queue_turn *turn;     /* idle priority: the turn shared with the loop's other such queues */
        LIST_FIELDS(struct vm_queue, turn);
        sd_event_source *late;          /* the oldest is max lag old: run anyway */
        uint64_t late_due;              /* when late fires; 0: off */
        struct vm_queue_entry *entries;
        size_t n, allocated;
};

/* Make the event sources now, so that later pushes fail only for memory. */
int vm_queue_start(struct vm_queue *q);
/* Room for n more entries. */
int vm_queue_reserve(struct vm_queue *q, size_t n);
/* Queue vm (its owner tells by its own flag whether it is queued already).
 * < 0 when it could not be queued: the caller then does the work now. */
int vm_queue_push(struct vm_queue *q, const struct vm *vm);
/* Run up to max entries now, oldest first (SIZE_MAX: all). */
void vm_queue_run(struct vm_queue *q, size_t max);
void vm_queue_done(struct vm_queue *q);
