/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kvm-compat.h — KVM definitions newer than the distribution's <linux/kvm.h>
 * (Debian 12 ships 6.1 headers; masked events arrived in 6.3).  Values are the
 * kernel's UAPI; each is guarded so a newer header wins.
 */
#pragma once

#include <linux/kvm.h>

#ifndef KVM_CAP_PMU_EVENT_FILTER
#define KVM_CAP_PMU_EVENT_FILTER 173
#endif
#ifndef KVM_CAP_PMU_CAPABILITY
#define KVM_CAP_PMU_CAPABILITY 212
#endif
#ifndef KVM_PMU_CAP_DISABLE
#define KVM_PMU_CAP_DISABLE (1 << 0)
#endif
#ifndef KVM_CAP_PMU_EVENT_MASKED_EVENTS
#define KVM_CAP_PMU_EVENT_MASKED_EVENTS 226
#endif
#ifndef KVM_PMU_EVENT_ALLOW
#define KVM_PMU_EVENT_ALLOW 0
#define KVM_PMU_EVENT_DENY 1
#endif
#ifndef KVM_PMU_EVENT_FLAG_MASKED_EVENTS
#define KVM_PMU_EVENT_FLAG_MASKED_EVENTS (1u << 0)
#define KVM_PMU_EVENT_FLAGS_VALID_MASK (KVM_PMU_EVENT_FLAG_MASKED_EVENTS)
#endif
#ifndef KVM_PMU_ENCODE_MASKED_ENTRY
#define KVM_PMU_ENCODE_MASKED_ENTRY(event_select, mask, match, exclude) \
        (((event_select) & 0xFFULL) | (((event_select) & 0xF00ULL) << 24) | \
         (((mask) & 0xFFULL) << 56) | \
         (((match) & 0xFFULL) << 8) | \
         ((__u64)(!!(exclude)) << 55))
#define KVM_PMU_MASKED_ENTRY_EVENT_SELECT (0xFFULL | (0xFULL << 32))
#define KVM_PMU_MASKED_ENTRY_UMASK_MASK (0xFFULL << 56)
#define KVM_PMU_MASKED_ENTRY_UMASK_MATCH (0xFFULL << 8)
#define KVM_PMU_MASKED_ENTRY_EXCLUDE (1ULL << 55)
#define KVM_PMU_MASKED_ENTRY_UMASK_MASK_SHIFT 56
#endif
