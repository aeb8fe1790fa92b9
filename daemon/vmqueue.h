/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmqueue.h — work on VMs that need not hold up the VMM it is about: a VM's
 * record file, its announcement on the bus.  Queued as it comes up, done
 * once per VM when the event loop has nothing more urgent, a batch per turn
 * (so that a change over 10,000 VMs never holds a D-Bus call for all of
 * them), and at most max_lag late under a load that never lets it idle.
 * VMs are held by (pid, fd): one that goes away meanwhile is skipped.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "registry.h"

struct vm_queue_entry {
        struct vm_key key;
        uint64_t queued;                /* CLOCK_MONOTONIC */
};

struct vm_queue {
        /* set by the owner before the first push */
        const char *description;
        void (*run)(struct vm *vm, void *userdata);     /* one queued VM, still registered */
        void (*done)(void *userdata);                   /* after each batch; may be NULL */
        void *userdata;

        struct registry *registry;
        sd_event *event;
        sd_event_source *source;        /* idle: a batch per turn */
        sd_event_source *late;          /* the oldest is max lag old: run anyway */
        struct vm_queue_entry *entries;
        size_t n, allocated;
};

/* Queue vm (its owner tells by its own flag whether it is queued already).
 * < 0 when it could not be queued: the caller then does the work now. */
int vm_queue_push(struct vm_queue *q, struct vm *vm);
/* Run up to max entries now, oldest first (SIZE_MAX: all). */
void vm_queue_run(struct vm_queue *q, size_t max);
void vm_queue_done(struct vm_queue *q);
