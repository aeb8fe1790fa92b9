/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shared-events.h — the events a guest can count on its core PMU that
 * observe what other tenants share: the last-level cache, the off-core
 * (uncore) responses, the memory subsystem, and the source that served a
 * load.  One table per vendor (shared-events.c); the leak lint of
 * `pmufilterctl check` and the daemon's policy load (lint-shared.c) warns
 * when a tenant-tier allowlist lets any of them count.
 */
#pragma once

#include <stdint.h>

#include "pmu.h"

enum shared_resource {
        SHARED_LLC,             /* the last-level cache */
        SHARED_OFFCORE,         /* off-core responses: L3, other cores' caches, memory */
        SHARED_MEMORY,          /* the memory controllers: bandwidth, latency */
        SHARED_FILL_SOURCE,     /* where a load was served: other cores, dies, sockets, memory */
        _SHARED_RESOURCE_MAX,
};

struct shared_event {
        enum pmu_vendor vendor;
        /* Intel: the libpfm4 PMUs (space-separated) on which the SDM gives
         * the select this meaning; NULL on every Intel part. */
        const char *pmus;
        /* AMD: from this family on (0x17: Zen).  0 on Intel. */
        unsigned min_family;
        uint16_t select;
        /* The unit masks U it covers: (U & mask) == match and, where any_of
         * is not 0, (U & any_of) != 0. */
        uint8_t mask, match, any_of;
        enum shared_resource resource;
        const char *name;               /* the SDM's or the PPR's name */
};

/* The table's entry for event select + unit mask on this PMU (the first
 * that covers it: a named unit mask before the rest of its select), or NULL
 * for an event that observes nothing shared as far as the table knows. */
const struct shared_event *shared_event_lookup(const struct host_pmu *pmu, uint16_t select, uint8_t umask);

/* The entry's place in the table, to order messages by it. */
size_t shared_event_index(const struct shared_event *e);

/* Whether any entry of this PMU's table has this event select: the cheap
 * test before looking at 256 unit masks. */
bool shared_event_select_known(const struct host_pmu *pmu, uint16_t select);

/* "the last-level cache", ... for messages. */
const char *shared_resource_to_string(enum shared_resource r);
