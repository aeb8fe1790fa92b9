/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * compile.h — profile -> the kernel's struct kvm_pmu_event_filter, byte
 * exact (the rules: pmufilterd.yaml(5), "Compilation").  The output is what
 * the VMM hands to KVM_SET_PMU_EVENT_FILTER, and what `pmufilterctl
 * compile` prints.
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
 * profile).  Warnings: among others the leak lint of a tenant profile
 * (lint-shared.h), run only where d is not NULL.  Returns 0, -ENOENT (no
 * such profile), -EINVAL, -ENOMEM.
 */
int filter_compile(const struct policy *p, const char *name,
                   const struct host_pmu *pmu, const struct kvm_support *k,
                   struct compiled_filter **ret, struct diags *d);

/* The filter for lockdown and for `pmu: off` where it is refused:
 * an empty allowlist with no fixed counters. */
int filter_lockdown(const char *profile_name, struct compiled_filter **ret);

/* Do two compiled filters hand the kernel the same thing? */
bool compiled_filter_equal(const struct compiled_filter *a, const struct compiled_filter *b);

/* One entry of a filter, decoded: the one place that knows the kernel's
 * layout of both forms.  A plain word also gets the masked reading the
 * kernel converts it to (mask 0xff, match its unit mask, include), so the
 * fields mask, match and exclude are meaningful for every entry. */
struct filter_entry {
        bool masked;                    /* the filter has KVM_PMU_EVENT_FLAG_MASKED_EVENTS */
        uint16_t select;                /* event select 11:0 (word bits 7:0 and 35:32) */
        uint8_t umask;                  /* plain: the unit mask; masked: 0 */
        uint8_t mask, match;
        bool exclude;
};

/* Decode `word`, an entry of f (f's flags say which form it is). */
void filter_entry_decode(const struct compiled_filter *f, uint64_t word, struct filter_entry *ret);

/* Does f list the guest event `code` (select + unit mask, as event_code())?
 * The kernel's own test: an include entry matches it and no exclude entry
 * does.  Listed means allowed under an allowlist, denied under a denylist. */
bool compiled_filter_lists(const struct compiled_filter *f, uint64_t code);

/* Decode one kernel word for humans: "0x00c0 (select 0xc0 umask 0x00)" or the
 * masked form "select 0xb7 mask 0x00 match 0x00 include".  0, or -ENOBUFS
 * when size is too small. */
int filter_entry_describe(const struct compiled_filter *f, uint64_t word, char *buf, size_t size);
