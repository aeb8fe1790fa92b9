/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lint-shared.c — the leak lint (pmufilterd.yaml(5), "The leak lint";
 * docs/decisions.md, "The leak lint").  A tenant tier exists to keep other
 * tenants out of sight; an allowlist entry that lets the guest count a
 * last-level-cache, off-core, memory or data-source event undoes that
 * without any error.  The lint reads the compiled filter, not the policy's
 * spelling, so that `cache-misses`, `LONGEST_LAT_CACHE:MISS`, `0x412e` and
 * `{select: 0x2e, umask: any}` are the same finding: what a guest may count
 * is decided by the kernel's rule (compiled_filter_lists()), over every
 * unit mask an entry matches.
 *
 * It warns and does not refuse: the table is a list of known channels, not
 * a proof, and some operators give a tenant a whole socket on purpose.
 * acknowledge_shared records that choice in the policy.
 */
#include <inttypes.h>

#include "kvm-compat.h"
#include "lint-shared.h"
#include "shared-events.h"

struct hit {
        const struct shared_event *event;
        unsigned n;             /* unit masks of it that the entry allows */
        uint64_t first;         /* the first of them, as a plain word */
};

struct hits {
        struct hit *v;
        size_t n, allocated;
};

/* Kept in the table's order, so a named unit mask comes before the rest of
 * its select in the message. */
static int hits_add(struct hits *h, const struct shared_event *event, uint64_t word) {
        size_t i;

        for (i = 0; i < h->n; i++) {
                if (h->v[i].event == event) {
                        h->v[i].n++;
                        return 0;
                }
                if (shared_event_index(h->v[i].event) > shared_event_index(event))
                        break;
        }
        if (!GREEDY_REALLOC(h->v, h->allocated, h->n + 1))
                return -ENOMEM;
        memmove(h->v + i + 1, h->v + i, (h->n - i) * sizeof(h->v[0]));
        h->v[i] = (struct hit) { .event = event, .n = 1, .first = word };
        h->n++;
        return 0;
}

/* One acknowledgement as the masked entry it stands for, the kernel's
 * matching rule then deciding what it covers, exactly as for events:.  A
 * name this PMU does not know acknowledges nothing: like optional:, one
 * policy serves Intel and AMD hosts.  1 with *ret set, 0 to skip, -ENOMEM. */
static int ack_entry(const struct host_pmu *pmu, const struct event_spec *e, uint64_t *ret) {
        uint64_t code;
        int r;

        switch (e->kind) {
        case EVENT_NAME:
                r = event_resolve(pmu, e->name, &code);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return 0;
                break;
        case EVENT_RAW:
                code = e->raw;
                break;
        case EVENT_SELECT_UMASK:
                code = event_code(e->select, e->umask);
                break;
        case EVENT_SELECT_ANY:
                *ret = KVM_PMU_ENCODE_MASKED_ENTRY((uint64_t) e->select, 0, 0, false);
                return 1;
        case EVENT_MASKED:
                *ret = KVM_PMU_ENCODE_MASKED_ENTRY((uint64_t) e->select, (uint64_t) e->mask,
                                                   (uint64_t) e->match, e->exclude);
                return 1;
        default:
                return 0;
        }
        *ret = KVM_PMU_ENCODE_MASKED_ENTRY((uint64_t) event_code_select(code), 0xff,
                                           (uint64_t) event_code_umask(code), false);
        return 1;
}

/* The acknowledgements of prof and of every profile it extends: a child
 * inherits its parent's events, and with them the parent's word on them. */
static int acks_build(const struct policy *p, const struct profile *prof, const struct host_pmu *pmu,
                      struct compiled_filter *ret) {
        _cleanup_free_ const struct profile **chain = NULL;
        _cleanup_free_ uint64_t *words = NULL;
        size_t n_chain = 0, n = 0, allocated = 0;
        int r;

        r = profile_chain(p, prof, &chain, &n_chain);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_chain; i++)
                for (size_t j = 0; j < chain[i]->n_acks; j++) {
                        uint64_t w;

                        r = ack_entry(pmu, &chain[i]->acks[j], &w);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                continue;
                        if (!GREEDY_REALLOC(words, allocated, n + 1))
                                return -ENOMEM;
                        words[n++] = w;
                }
        *ret = (struct compiled_filter) {
                .action = KVM_PMU_EVENT_ALLOW,
                .flags = KVM_PMU_EVENT_FLAG_MASKED_EVENTS,
                .nevents = (uint32_t) n,
                .events = TAKE_PTR(words),
        };
        return 0;
}

static const struct profile *spec_owner(const struct policy *p, const struct event_spec *e) {
        for (size_t i = 0; i < p->n_profiles; i++)
                for (size_t j = 0; j < p->profiles[i].n_events; j++)
                        if (&p->profiles[i].events[j] == e)
                                return &p->profiles[i];
        return NULL;
}

static bool is_linted(const struct policy *p, const struct profile *prof) {
        return profile_effective_tier(p, prof) == TIER_TENANT && profile_effective_pmu(p, prof) != PMU_OFF;
}

/* "LONGEST_LAT_CACHE.MISS (0x412e) and LONGEST_LAT_CACHE.* (254 unit masks
 * of select 0x2e): they observe the last-level cache" */
static void describe(FILE *f, const struct hits *h) {
        bool seen[_SHARED_RESOURCE_MAX] = {};
        size_t n_resources = 0, k = 0, total = 0;

        for (size_t i = 0; i < h->n; i++) {
                const struct hit *x = &h->v[i];

                fputs(i == 0 ? "" : i + 1 == h->n ? " and " : ", ", f);
                if (x->n == 1)
                        fprintf(f, "%s (0x%04" PRIx64 ")", x->event->name, x->first);
                else
                        fprintf(f, "%s (%u unit masks of select 0x%02x)", x->event->name, x->n,
                                (unsigned) x->event->select);
                total += x->n;
                if (!seen[x->event->resource]) {
                        seen[x->event->resource] = true;
                        n_resources++;
                }
        }
        fprintf(f, ": %s ", total == 1 ? "it observes" : "they observe");
        for (int r = 0; r < _SHARED_RESOURCE_MAX; r++)
                if (seen[r]) {
                        fputs(k == 0 ? "" : k + 1 == n_resources ? " and " : ", ", f);
                        fputs(shared_resource_to_string(r), f);
                        k++;
                }
        fputs(", shared with other tenants", f);
}

static int report(struct diags *d, enum diag_level level, const struct profile *prof,
                  const struct event_spec *e, const struct hits *h) {
        _cleanup_free_ char *what = NULL;
        size_t size = 0;
        FILE *f;

        if (h->n == 0)
                return 0;
        f = open_memstream(&what, &size);
        if (!f)
                return -ENOMEM;
        describe(f, h);
        if (fclose(f) != 0)
                return -ENOMEM;
        if (level == DIAG_WARNING)
                return diags_warning(d, &e->loc,
                                     "profile '%s' (tier tenant) allows %s; add the entry to the profile's "
                                     "acknowledge_shared if that is intended",
                                     prof->name, what);
        return diags_add(d, DIAG_NOTE, &e->loc, "profile '%s' (tier tenant) allows %s; acknowledged",
                         prof->name, what);
}

/* Every unit mask the include entry matches, as the kernel matches it; a
 * table event among them that the whole filter lets count (no exclude
 * entry takes it back) is a hit, acknowledged or not. */
static int lint_entry(const struct host_pmu *pmu, const struct compiled_filter *f,
                      const struct compiled_filter *acks, const struct filter_entry *e,
                      struct hits *warn, struct hits *ack) {
        for (unsigned u = 0; u <= 0xff; u++) {
                const struct shared_event *event;
                uint64_t word;
                int r;

                if ((u & e->mask) != e->match)
                        continue;
                event = shared_event_lookup(pmu, e->select, (uint8_t) u);
                if (!event)
                        continue;
                word = event_code(e->select, (uint8_t) u);
                if (!compiled_filter_lists(f, word))
                        continue;
                r = hits_add(compiled_filter_lists(acks, word) ? ack : warn, event, word);
                if (r < 0)
                        return r;
        }
        return 0;
}

int filter_lint_shared(const struct policy *p, const struct profile *prof, const struct host_pmu *pmu,
                       const struct compiled_filter *f, const uint64_t *words,
                       const struct event_spec *const *specs, size_t n, struct diags *d) {
        struct compiled_filter acks = {};
        bool have_acks = false;
        int r = 0;

        assert(p);
        assert(prof);
        assert(pmu);
        assert(f);
        assert((words && specs) || n == 0);

        if (f->action != KVM_PMU_EVENT_ALLOW)
                return 0;

        for (size_t i = 0; i < n && r >= 0; i++) {
                struct hits warn = {}, ack = {};
                const struct profile *owner;
                struct filter_entry e;

                filter_entry_decode(f, words[i], &e);
                if (e.exclude || !shared_event_select_known(pmu, e.select))
                        continue;
                /* Reported where it is written, once: a linted ancestor
                 * allows the same events through it (its exclude entries
                 * are a subset of ours) and reports them itself. */
                owner = spec_owner(p, specs[i]);
                if (owner && owner != prof && is_linted(p, owner))
                        continue;
                if (!have_acks) {
                        r = acks_build(p, prof, pmu, &acks);
                        if (r < 0)
                                break;
                        have_acks = true;
                }
                r = lint_entry(pmu, f, &acks, &e, &warn, &ack);
                if (r >= 0)
                        r = report(d, DIAG_WARNING, prof, specs[i], &warn);
                if (r >= 0)
                        r = report(d, DIAG_NOTE, prof, specs[i], &ack);
                free(warn.v);
                free(ack.v);
        }
        free(acks.events);
        return r < 0 ? r : 0;
}
