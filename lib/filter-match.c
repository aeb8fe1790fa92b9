/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * filter-match.c — reading a compiled filter as the kernel does: its words
 * decoded (filter_entry_decode()) and the kernel's matching rule over them
 * (compiled_filter_lists()).  Apart from compile.c, which produces filters,
 * so that what reads them (the leak lint, pmufilterctl) does not call back
 * into the compiler.
 */
#include <assert.h>

#include "compile.h"
#include "kvm-compat.h"

void filter_entry_decode(const struct compiled_filter *f, uint64_t word, struct filter_entry *ret) {
        bool masked;

        assert(f);
        assert(ret);

        masked = f->flags & KVM_PMU_EVENT_FLAG_MASKED_EVENTS;
        *ret = (struct filter_entry) {
                .masked = masked,
                .select = event_code_select(word),      /* the same bits in both forms */
        };
        if (masked) {
                ret->mask = (uint8_t) (word >> KVM_PMU_MASKED_ENTRY_UMASK_MASK_SHIFT);
                ret->match = (uint8_t) ((word & KVM_PMU_MASKED_ENTRY_UMASK_MATCH) >> 8);
                ret->exclude = word & KVM_PMU_MASKED_ENTRY_EXCLUDE;
        } else {
                /* as the kernel converts it: the unit mask must match exactly */
                ret->umask = event_code_umask(word);
                ret->mask = 0xff;
                ret->match = ret->umask;
        }
}

/* The kernel's own test: an include entry matches and no exclude entry
 * does (arch/x86/kvm/pmu.c, is_gp_event_allowed), on select + umask. */
bool compiled_filter_lists(const struct compiled_filter *f, uint64_t code) {
        uint16_t select = event_code_select(code);
        uint8_t umask = event_code_umask(code);
        bool included = false;

        for (uint32_t i = 0; i < f->nevents; i++) {
                struct filter_entry e;

                filter_entry_decode(f, f->events[i], &e);
                if (e.select != select)
                        continue;
                if ((umask & e.mask) != e.match)
                        continue;
                if (e.exclude)
                        return false;
                included = true;
        }
        return included;
}
