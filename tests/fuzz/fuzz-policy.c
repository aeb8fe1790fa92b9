/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-policy.c — the policy path from YAML bytes to the kernel's filter:
 * policy_load_buffer() (lib/policy.h), policy_validate(), and
 * filter_compile() of every profile, as `pmufilterctl check --pmu` and the
 * daemon's reload run it.  No /dev/kvm: the PMUs and the kernel support
 * are fixed (an AMD Zen 3 with masked events and the kernel's 300 entries;
 * a generic Intel with neither masked events nor wide selects and a small
 * entry limit, to reach the refusals).
 *
 * Input: up to four YAML documents separated by NUL bytes, merged in order
 * as the main file and conf.d fragments.  As `pmufilterctl check` does,
 * every document is loaded whatever the one before did, the policy is
 * validated after errors too, and then its sound profiles are compiled.
 *
 * Properties: no crash, leak or undefined behaviour; every failure is
 * -EINVAL with an error in the diagnostics (or -ENOMEM), and a success has
 * none; every diagnostic is one line; a compiled filter is one the kernel
 * takes: entries sorted and unique, within the entry limit, named one by
 * one, no reserved bits, no AMD select bits on Intel, masked entries only
 * where the kernel has them, `pmu: off` with the empty-allowlist fallback,
 * `fixed_counters: auto` as the kernel's rule gives it (the oracle of
 * tests/common/filter-oracle.h, written apart from the compiler).
 */
#include <inttypes.h>

#include "../common/filter-oracle.h"
#include "compile.h"
#include "fuzz.h"
#include "kvm-compat.h"
#include "kvm.h"
#include "pmu.h"
#include "policy.h"
#include "yaml-dl.h"

#define FRAGMENTS_MAX 4

/* The bits KVM defines for each kind of entry (KVM_PMU_ENCODE_MASKED_ENTRY
 * and the plain select|umask word); any other set bit is EINVAL. */
#define PLAIN_BITS  UINT64_C(0x0000000f0000ffff)
#define MASKED_BITS (KVM_PMU_MASKED_ENTRY_EVENT_SELECT | KVM_PMU_MASKED_ENTRY_UMASK_MASK | \
                     KVM_PMU_MASKED_ENTRY_UMASK_MATCH | KVM_PMU_MASKED_ENTRY_EXCLUDE)

struct target {
        const char *model, *fallback;
        struct host_pmu pmu;
        struct kvm_support kvm;
};

static struct target targets[] = {
        { "amd64_fam19h_zen3", "amd", .kvm = {
                .filter = true, .masked = true, .pmu_capability = 1, .enable_pmu = true,
                .max_events = KVM_PMU_FILTER_MAX_EVENTS_DEFAULT,
        } },
        { "intel", NULL, .kvm = {
                .filter = true, .masked = false, .pmu_capability = 1, .enable_pmu = true,
                .max_events = 7, .narrow_select = true,
        } },
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        /* libyaml held for the whole run: not loaded again per input. */
        if (yaml_dl_acquire(NULL) < 0) {
                fprintf(stderr, "fuzz-policy: libyaml cannot be loaded\n");
                abort();
        }
        for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
                struct target *t = &targets[i];

                /* Without libpfm4 only the generic models exist. */
                if (host_pmu_from_name(t->model, &t->pmu) < 0 &&
                    (!t->fallback || host_pmu_from_name(t->fallback, &t->pmu) < 0)) {
                        fprintf(stderr, "fuzz-policy: unknown PMU model %s\n", t->model);
                        abort();
                }
        }
        return 0;
}

/* The diagnostics added since `from`: as many errors as the contract says,
 * each one line. */
static void check_diags(const struct diags *d, size_t from, int r, const char *what) {
        fuzz_check(r == 0 || r == -EINVAL || r == -ENOMEM, "%s returned %d", what, r);
        if (r == -EINVAL)
                fuzz_check(d->n_errors > 0, "%s: -EINVAL without an error", what);
        if (r == 0)
                fuzz_check(d->n_errors == 0, "%s: success with %zu errors", what, d->n_errors);
        for (size_t i = from; i < d->n; i++) {
                fuzz_check(d->v[i].message && !strchr(d->v[i].message, '\n'),
                           "%s: diagnostic not one line: %s", what, strna(d->v[i].message));
                fuzz_check(d->v[i].line > 0 || d->v[i].column == 0, "%s: column without a line", what);
        }
}

static void check_filter(const struct compiled_filter *f, const struct target *t, const char *name,
                         enum fixed_mode fixed) {
        uint64_t reserved = f->flags & KVM_PMU_EVENT_FLAG_MASKED_EVENTS ? ~MASKED_BITS : ~PLAIN_BITS;
        char buf[256];

        fuzz_check(streq_ptr(f->profile, name), "profile %s compiled as %s", name, strna(f->profile));
        fuzz_check(f->action == KVM_PMU_EVENT_ALLOW || f->action == KVM_PMU_EVENT_DENY, "%s: action %u", name, f->action);
        fuzz_check((f->flags & ~KVM_PMU_EVENT_FLAG_MASKED_EVENTS) == 0, "%s: flags 0x%x", name, f->flags);
        fuzz_check(t->kvm.masked || f->flags == 0, "%s: masked events on a kernel without them", name);
        fuzz_check(f->nevents <= t->kvm.max_events, "%s: %u entries over the limit of %u", name, f->nevents, t->kvm.max_events);
        fuzz_check(strv_length(f->entry_names) == f->nevents, "%s: %zu names for %u entries",
                   name, strv_length(f->entry_names), f->nevents);
        if (f->pmu_off)
                fuzz_check(f->action == KVM_PMU_EVENT_ALLOW && f->nevents == 0 && f->fixed_counter_bitmap == 0,
                           "%s: pmu: off without the empty-allowlist fallback", name);
        /* fixed_counters: auto: a counter counts exactly when the filter lets
         * its architectural event count (bitmap: allowed ones on an
         * allowlist, denied ones on a denylist). */
        for (unsigned i = 0; fixed == FIXED_AUTO && !f->pmu_off && i < fixed_counter_count(&t->pmu); i++) {
                bool bit = f->fixed_counter_bitmap & (UINT32_C(1) << i);
                uint64_t code;

                if (fixed_counter_event(&t->pmu, i, &code) < 0)
                        continue;
                fuzz_check((f->action == KVM_PMU_EVENT_ALLOW ? bit : !bit) == filter_oracle_allows(f, code),
                           "%s: fixed counter %u %s but its event 0x%" PRIx64 " is %s", name, i,
                           bit ? "in the bitmap" : "not in the bitmap", code,
                           filter_oracle_allows(f, code) ? "allowed" : "not allowed");
        }
        for (uint32_t i = 0; i < f->nevents; i++) {
                uint64_t e = f->events[i];

                fuzz_check(i == 0 || f->events[i - 1] < e, "%s: entries not sorted and unique at %u", name, i);
                fuzz_check((e & reserved) == 0, "%s: entry 0x%" PRIx64 " sets reserved bits", name, e);
                fuzz_check(t->pmu.vendor == PMU_VENDOR_AMD || (e >> 32 & 0xf) == 0,
                           "%s: entry 0x%" PRIx64 " has AMD select bits on %s", name, e, t->pmu.name);
                fuzz_check(filter_entry_describe(f, e, buf, sizeof(buf)) >= 0, "%s: entry 0x%" PRIx64 " not describable", name, e);
                (void) filter_oracle_allows(f, e & PLAIN_BITS);
        }
        fuzz_check(compiled_filter_equal(f, f), "%s: not equal to itself", name);
}

/* Every profile of a policy that loaded; only the sound ones of one that
 * had errors, as check does. */
static void compile_all(const struct policy *p, bool valid) {
        for (size_t i = 0; i < p->n_profiles; i++) {
                const struct profile *prof = &p->profiles[i];
                _cleanup_free_ const struct profile **chain = NULL;
                size_t n_chain;
                enum fixed_mode fixed;
                uint32_t bitmap;
                int r;

                fuzz_check(!valid || profile_is_sound(p, prof), "%s: not sound in a valid policy", prof->name);
                if (!profile_is_sound(p, prof))
                        continue;

                (void) profile_effective_tier(p, prof);
                fixed = profile_effective_fixed(p, prof, &bitmap);
                (void) profile_effective_pmu(p, prof);
                r = profile_chain(p, prof, &chain, &n_chain);
                fuzz_check(r == 0 || r == -ENOMEM, "%s: profile_chain() of a valid policy returned %d", prof->name, r);
                if (r == 0)
                        fuzz_check(n_chain > 0 && chain[n_chain - 1] == prof, "%s: chain does not end at itself", prof->name);

                for (size_t j = 0; j < ELEMENTSOF(targets); j++) {
                        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
                        struct diags d = {};

                        r = filter_compile(p, prof->name, &targets[j].pmu, &targets[j].kvm, &f, &d);
                        check_diags(&d, 0, r, "filter_compile");
                        if (r == 0)
                                check_filter(f, &targets[j], prof->name, fixed);
                        else
                                fuzz_check(!f, "%s: filter written on failure", prof->name);
                        diags_clear(&d);
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const names[FRAGMENTS_MAX] = {
                "pmufilterd.yaml", "conf.d/10-a.yaml", "conf.d/20-b.yaml", "conf.d/30-c.yaml",
        };
        _cleanup_(policy_freep) struct policy *p = NULL;
        char *pieces[FRAGMENTS_MAX];
        size_t lens[FRAGMENTS_MAX], n;
        struct diags d = {};
        int r = 0, failed = 0;

        if (targets[0].pmu.vendor == PMU_VENDOR_UNKNOWN)
                (void) LLVMFuzzerInitialize(NULL, NULL);
        if (policy_new(&p) < 0)
                return 0;

        n = fuzz_split(data, size, FRAGMENTS_MAX, pieces, lens);
        /* Each file's own diagnostics, as many errors as its result says. */
        for (size_t i = 0; i < n && r != -ENOMEM; i++) {
                r = policy_load_buffer(p, names[i], pieces[i], lens[i], &d);
                check_diags(&d, 0, r, "policy_load_buffer");
                free(diags_first_error(&d));
                diags_clear(&d);
                if (r < 0)
                        failed = r;
        }
        if (r != -ENOMEM) {
                r = policy_validate(p, &d);
                check_diags(&d, 0, r, "policy_validate");
        }
        if (r != -ENOMEM)
                compile_all(p, failed == 0 && r == 0);

        free(diags_first_error(&d));
        diags_clear(&d);
        fuzz_pieces_free(pieces, n);
        return 0;
}
