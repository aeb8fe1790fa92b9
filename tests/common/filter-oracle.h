/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * filter-oracle.h — the kernel's matching rule, for test-compile and
 * fuzz-policy: would KVM let a guest count event select+umask `code` under
 * filter f?  The compiler applies the same rule for fixed_counters: auto;
 * this is written apart from it, after arch/x86/kvm/pmu.c
 * (convert_to_masked_filter(), filter_masked_event_match(),
 * is_gp_event_allowed()), so that comparing the two checks the library
 * instead of repeating it.  Header only: each test includes it, and the
 * library does not carry code only tests call.
 *
 *   an event is listed when an include entry matches it and no exclude
 *   entry does; a listed event counts under an allowlist, an unlisted one
 *   under a denylist; a plain entry is the masked entry with mask 0xff and
 *   match its unit mask.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "compile.h"
#include "kvm-compat.h"

static inline bool filter_oracle_allows(const struct compiled_filter *f, uint64_t code) {
        bool masked = f->flags & KVM_PMU_EVENT_FLAG_MASKED_EVENTS;
        bool included = false, excluded = false;

        for (uint32_t i = 0; i < f->nevents; i++) {
                uint64_t e = f->events[i];

                /* Plain: select and unit mask already sit where the masked
                 * form has select and match. */
                if (!masked)
                        e = (e & (KVM_PMU_MASKED_ENTRY_EVENT_SELECT | KVM_PMU_MASKED_ENTRY_UMASK_MATCH)) |
                            KVM_PMU_MASKED_ENTRY_UMASK_MASK;
                if ((e & KVM_PMU_MASKED_ENTRY_EVENT_SELECT) != (code & KVM_PMU_MASKED_ENTRY_EVENT_SELECT))
                        continue;
                /* The kernel's own arithmetic: the mask shifted onto the unit
                 * mask's bits 15:8. */
                if ((code & UINT64_C(0xff00) & e >> (KVM_PMU_MASKED_ENTRY_UMASK_MASK_SHIFT - 8)) !=
                    (e & KVM_PMU_MASKED_ENTRY_UMASK_MATCH))
                        continue;
                if (e & KVM_PMU_MASKED_ENTRY_EXCLUDE)
                        excluded = true;
                else
                        included = true;
        }
        if (included && !excluded)
                return f->action == KVM_PMU_EVENT_ALLOW;
        return f->action == KVM_PMU_EVENT_DENY;
}
