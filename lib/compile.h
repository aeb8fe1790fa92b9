/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * compile.h — profile -> the kernel's struct kvm_pmu_event_filter, byte
 * exact (DESIGN §4 "Compilation rules").  The output is what the VMM hands
 * to KVM_SET_PMU_EVENT_FILTER, and what `pmufilterctl compile` prints.
 */
#pragma once

#include <stdint.h>

#include "kvm.h"
#include "pmu.h"
#include "policy.h"

struct compiled_filter {
        char *profile;
        bool pmu_off;                   /* VMM should disable the vPMU first;
                                         * the fields below are then the fallback
                                         * (empty allowlist, no fixed counters) */
        uint32_t action;                /* KVM_PMU_EVENT_ALLOW / _DENY */
        uint32_t flags;                 /* KVM_PMU_EVENT_FLAG_MASKED_EVENTS or 0 */
        uint32_t fixed_counter_bitmap;
        uint32_t nevents;
        uint64_t *events;               /* sorted, deduplicated kernel words */
        char **entry_names;             /* parallel to events: how the policy
                                         * spelled each (first spelling), strv */
        unsigned n_ref;                 /* 0 and 1 both mean one holder */
};

/* Another holder of f, which nobody may change from now on: the daemon's
 * VMs share their profile's filter instead of copying it.  Returns f. */
struct compiled_filter *compiled_filter_ref(struct compiled_filter *f);
/* Drop a holder; the last one frees. */
void compiled_filter_unref(struct compiled_filter *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct compiled_filter *, compiled_filter_unref)

/*
 * Compile profile `name` of a validated policy for this PMU and kernel.
 * Errors (into d, with the event's file:line:column): unknown symbolic name
 * that is not optional, AMD select bits on Intel, masked forms on a kernel
 * without masked events, more entries than k->max_events (naming the
 * profile).  Returns 0, -ENOENT (no such profile), -EINVAL, -ENOMEM.
 */
int filter_compile(const struct policy *p, const char *name,
                   const struct host_pmu *pmu, const struct kvm_support *k,
                   struct compiled_filter **ret, struct diags *d);

/* The filter for lockdown and for `pmu: off` where it is refused:
 * an empty allowlist with no fixed counters. */
int filter_lockdown(const char *profile_name, struct compiled_filter **ret);

/* Do two compiled filters hand the kernel the same thing? */
bool compiled_filter_equal(const struct compiled_filter *a, const struct compiled_filter *b);

/* Would the kernel let guest event select+umask `code` count under f?
 * (The kernel's own matching, for fixed_counters: auto, tests and `show`.) */
bool compiled_filter_allows(const struct compiled_filter *f, uint64_t code);

/* Decode one kernel word for humans: "0x00c0 (select 0xc0 umask 0x00)" or the
 * masked form "select 0xb7 mask 0x00 match 0x00 include". */
int filter_entry_describe(const struct compiled_filter *f, uint64_t word, char *buf, size_t size);
