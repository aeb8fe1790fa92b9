/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * compile.c — one profile of a validated policy -> the exact
 * struct kvm_pmu_event_filter the kernel is handed (pmufilterd.yaml(5),
 * "Compilation"; the kernel's rules and our choices in docs/decisions.md,
 * "Filter compiler").
 *
 * The kernel (arch/x86/kvm/pmu.c) is forgiving in ways that change meaning
 * silently: in the plain form it drops every entry with bits outside the
 * event select and unit mask, and the select is bits 7:0 only unless the KVM
 * module is kvm_amd (then 7:0 and 35:32).  The compiler therefore refuses
 * such input with a located error and produces only entries the kernel will
 * keep, so that what `pmufilterctl compile` shows is exactly what filters.
 */
#include <inttypes.h>

#include "compile.h"
#include "kvm-compat.h"
#include "lint-shared.h"

/* The select bits KVM compares: 7:0 everywhere, 35:32 on AMD only. */
#define SELECT_LOW_BITS         UINT64_C(0xff)
#define SELECT_AMD_BITS         (UINT64_C(0xf) << 32)
#define UMASK_BITS              (UINT64_C(0xff) << 8)

/* One entry on its way into the filter: the kernel word and the spelling
 * that produced it; `order` keeps the first spelling first after sorting. */
struct pending {
        uint64_t word;
        size_t order;
        const struct event_spec *spec;
};

struct compile_ctx {
        const struct policy *p;
        const struct profile *prof;
        const struct host_pmu *pmu;
        const struct kvm_support *k;
        struct diags *d;
        bool masked;                    /* the whole profile compiles to masked form */
        struct pending *v;
        size_t n, allocated;
        struct pending *all;            /* v before dedupe, for the leak lint (d only) */
        size_t n_all;
};

struct compiled_filter *compiled_filter_ref(struct compiled_filter *f) {
        if (f)
                f->n_ref = (f->n_ref ? f->n_ref : 1) + 1;
        return f;
}

void compiled_filter_unref(struct compiled_filter *f) {
        if (!f)
                return;
        if (f->n_ref > 1) {
                f->n_ref--;
                return;
        }
        free(f->profile);
        free(f->events);
        strv_free(f->entry_names);
        free(f);
}

static bool pmu_is_amd(const struct host_pmu *pmu) {
        return pmu->vendor == PMU_VENDOR_AMD;
}

static uint64_t masked_entry(uint16_t select, uint8_t mask, uint8_t match, bool exclude) {
        return KVM_PMU_ENCODE_MASKED_ENTRY((uint64_t) select, (uint64_t) mask,
                                           (uint64_t) match, exclude);
}

/* Any form -> the masked encoding the kernel itself converts plain entries
 * to (mask 0xff: the unit mask must match exactly). */
static uint64_t as_masked(uint64_t word, bool is_masked) {
        if (is_masked)
                return word;
        return masked_entry(event_code_select(word), 0xff, event_code_umask(word), false);
}

/* How the policy spelled an entry, for entry_names and messages. */
static char *spec_spelling(const struct event_spec *e) {
        char *s = NULL;
        int r = -1;

        /* Names, and perf's spellings of the other forms, as written. */
        if (e->name)
                return strdup(e->name);
        switch (e->kind) {
        case EVENT_NAME:
                return NULL;
        case EVENT_RAW:
                r = asprintf(&s, "0x%04" PRIx64, e->raw);
                break;
        case EVENT_SELECT_UMASK:
                r = asprintf(&s, "{select: 0x%02x, umask: 0x%02x}", e->select, e->umask);
                break;
        case EVENT_SELECT_ANY:
                r = asprintf(&s, "{select: 0x%02x, umask: any}", e->select);
                break;
        case EVENT_MASKED:
                r = asprintf(&s, "{select: 0x%02x, mask: 0x%02x, match: 0x%02x, exclude: %s}",
                             e->select, e->mask, e->match, e->exclude ? "true" : "false");
                break;
        }
        return r < 0 ? NULL : s;
}

/* Select bits 11:8 (35:32 of the word) mean something only where KVM
 * compares them: an AMD PMU under a KVM that is not narrow (kvm_amd).
 * Returns 0, 1 to skip an optional event this host's KVM cannot filter
 * (with a note), or -EINVAL. */
static int check_high_select(struct compile_ctx *c, const struct event_spec *e,
                             const char *what, unsigned high) {
        if (high == 0)
                return 0;
        if (!pmu_is_amd(c->pmu))
                return diags_error(c->d, &e->loc,
                                   "%s uses event-select bits 11:8 (0x%x), which only AMD PMUs have; "
                                   "KVM on PMU %s would drop or refuse it", what, high, c->pmu->name);
        if (!c->k->narrow_select)
                return 0;
        if (e->optional) {
                /* Skipping it is what `optional:` asks for: said only when
                 * asked (check --verbose), like an optional name the PMU
                 * lacks. */
                int r = diags_note_verbose(c->d, &e->loc,
                                           "%s is optional and skipped: it uses event-select bits 11:8 (0x%x), "
                                           "which this host's KVM does not compare", what, high);
                return r < 0 ? r : 1;
        }
        return diags_error(c->d, &e->loc,
                           "%s uses event-select bits 11:8 (0x%x), which this host's KVM does "
                           "not compare (it filters on bits 7:0 only); it would drop or refuse it",
                           what, high);
}

/* A plain select+umask word must carry only bits the kernel compares:
 * anything else makes KVM drop the entry without a word. */
static int check_plain_word(struct compile_ctx *c, const struct event_spec *e,
                            const char *what, uint64_t word) {
        uint64_t stray = word & ~(SELECT_LOW_BITS | SELECT_AMD_BITS | UMASK_BITS);

        if (stray)
                return diags_error(c->d, &e->loc,
                                   "%s sets bits 0x%" PRIx64 " outside the event select and unit mask "
                                   "(counter-mask/invert/edge/...); KVM's filter would silently ignore "
                                   "the entry", what, stray);
        return check_high_select(c, e, what, (unsigned) (word >> 32 & 0xf));
}

static int check_select(struct compile_ctx *c, const struct event_spec *e, const char *what) {
        if (e->select > 0xfff)
                return diags_error(c->d, &e->loc,
                                   "%s: event select 0x%x is wider than 12 bits", what, e->select);
        return check_high_select(c, e, what, e->select >> 8);
}

/* One spec -> its kernel word.  Returns 1 with *ret_word set, 0 if the
 * entry is skipped (an optional event this host cannot offer), -EINVAL
 * after a diagnostic, -ENOMEM. */
static int resolve_spec(struct compile_ctx *c, const struct event_spec *e, uint64_t *ret_word) {
        _cleanup_free_ char *what = NULL;
        char *described;
        uint64_t word;
        int r;

        what = spec_spelling(e);
        if (!what)
                return -ENOMEM;

        switch (e->kind) {
        case EVENT_NAME:
                r = event_resolve(c->pmu, e->name, &word);
                if (r == -ENOENT) {
                        _cleanup_free_ char *best = NULL;

                        if (c->d && event_suggest(c->pmu, e->name, &best) < 0)
                                return -ENOMEM;
                        if (e->optional) {
                                r = diags_note_verbose(c->d, &e->loc,
                                                       "event '%s' is optional and skipped: PMU %s does not "
                                                       "name it%s%s%s", e->name, c->pmu->name,
                                                       best ? "; did you mean '" : "", strempty(best),
                                                       best ? "'?" : "");
                                return r < 0 ? r : 0;
                        }
                        return diags_error(c->d, &e->loc, "unknown event '%s' for PMU %s%s%s%s",
                                           e->name, c->pmu->name, best ? "; did you mean '" : "",
                                           strempty(best), best ? "'?" : "");
                }
                if (r == -EINVAL)
                        return diags_error(c->d, &e->loc,
                                           "event '%s' cannot be filtered: it needs counter-mask/"
                                           "invert/edge bits that KVM's filter ignores", e->name);
                if (r == -ENOMEM)
                        return r;       /* not the policy's fault: no diagnostic */
                if (r < 0)
                        return diags_error(c->d, &e->loc, "cannot resolve event '%s' for PMU %s: %s",
                                           e->name, c->pmu->name, strerror(-r));
                /* Not into `what` itself: asprintf() leaves its target undefined on
                 * failure, and the cleanup would free the old pointer twice. */
                if (asprintf(&described, "event '%s' (0x%04" PRIx64 ")", e->name, word) < 0)
                        return -ENOMEM;
                free(what);
                what = described;
                r = check_plain_word(c, e, what, word);
                break;
        case EVENT_RAW:
                word = e->raw;
                r = check_plain_word(c, e, what, word);
                break;
        case EVENT_SELECT_UMASK:
                word = event_code(e->select, e->umask);
                r = check_select(c, e, what);
                break;
        case EVENT_SELECT_ANY:
                word = masked_entry(e->select, 0, 0, false);
                r = check_select(c, e, what);
                break;
        case EVENT_MASKED:
                word = masked_entry(e->select, e->mask, e->match, e->exclude);
                r = check_select(c, e, what);
                if (r == 0 && (e->match & ~e->mask))
                        r = diags_warning(c->d, &e->loc,
                                          "%s: match has bits outside mask, so no unit mask "
                                          "can ever match this entry", what);
                break;
        default:
                return diags_error(c->d, &e->loc, "event of unknown kind %d", (int) e->kind);
        }
        if (r != 0)
                return r < 0 ? r : 0;

        if (e->kind == EVENT_SELECT_ANY || e->kind == EVENT_MASKED)
                *ret_word = word;
        else
                *ret_word = c->masked ? as_masked(word, false) : word;
        return 1;
}

static bool spec_needs_masked(const struct event_spec *e) {
        return e->kind == EVENT_SELECT_ANY || e->kind == EVENT_MASKED;
}

static int add_chain_events(struct compile_ctx *c, const struct profile *const *chain, size_t n_chain) {
        int r, ret = 0;

        for (size_t i = 0; i < n_chain; i++)
                for (size_t j = 0; j < chain[i]->n_events; j++) {
                        const struct event_spec *e = &chain[i]->events[j];
                        uint64_t word = 0;

                        r = resolve_spec(c, e, &word);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                ret = r;        /* keep going: report every bad event at once */
                                continue;
                        }
                        if (r == 0)
                                continue;
                        if (!GREEDY_REALLOC(c->v, c->allocated, c->n + 1))
                                return -ENOMEM;
                        c->v[c->n] = (struct pending) { .word = word, .order = c->n, .spec = e };
                        c->n++;
                }
        return ret;
}

static int check_masked_support(struct compile_ctx *c, const struct profile *const *chain, size_t n_chain) {
        int ret = 0;

        for (size_t i = 0; i < n_chain; i++)
                for (size_t j = 0; j < chain[i]->n_events; j++) {
                        const struct event_spec *e = &chain[i]->events[j];

                        if (!spec_needs_masked(e))
                                continue;
                        c->masked = true;
                        if (!c->k->masked)
                                ret = diags_error(c->d, &e->loc,
                                                  "masked events need Linux 6.3+ "
                                                  "(KVM_CAP_PMU_EVENT_MASKED_EVENTS); this kernel lacks them");
                }
        return ret;
}

static int pending_cmp(const void *a, const void *b) {
        const struct pending *x = a, *y = b;

        if (x->word != y->word)
                return x->word < y->word ? -1 : 1;
        return (x->order > y->order) - (x->order < y->order);
}

/* Sort ascending as u64 and keep the first spelling of each word. */
static void sort_unique(struct compile_ctx *c) {
        size_t w = 0;

        if (c->n == 0)
                return;
        qsort(c->v, c->n, sizeof(c->v[0]), pending_cmp);
        for (size_t i = 1; i < c->n; i++)
                if (c->v[i].word != c->v[w].word)
                        c->v[++w] = c->v[i];
        c->n = w + 1;
}

/* fixed_counters: auto — KVM applies the bitmap with the filter's action,
 * so a counter's bit is set exactly when its architectural event is listed:
 * allowed under an allowlist, denied under a denylist. */
static uint32_t fixed_auto_bitmap(const struct compiled_filter *f, const struct host_pmu *pmu) {
        unsigned n = fixed_counter_count(pmu);
        uint32_t bitmap = 0;

        for (unsigned i = 0; i < n && i < 32; i++) {
                uint64_t code;

                if (fixed_counter_event(pmu, i, &code) < 0)
                        continue;
                if (compiled_filter_lists(f, code))
                        bitmap |= UINT32_C(1) << i;
        }
        return bitmap;
}

static int fill_entries(struct compiled_filter *f, const struct compile_ctx *c) {
        f->nevents = c->n;
        f->entry_names = calloc(c->n + 1, sizeof(char *));
        if (!f->entry_names)
                return -ENOMEM;
        if (c->n == 0)
                return 0;
        f->events = calloc(c->n, sizeof(uint64_t));
        if (!f->events)
                return -ENOMEM;
        for (size_t i = 0; i < c->n; i++) {
                f->events[i] = c->v[i].word;
                f->entry_names[i] = spec_spelling(c->v[i].spec);
                if (!f->entry_names[i])
                        return -ENOMEM;
        }
        return 0;
}

static int compile_profile(struct compile_ctx *c, struct compiled_filter *f) {
        _cleanup_free_ const struct profile **chain = NULL;
        const struct profile *prof = c->prof;
        unsigned max_events = c->k->max_events > 0 ? c->k->max_events : KVM_PMU_FILTER_MAX_EVENTS_DEFAULT;
        size_t n_chain = 0;
        enum fixed_mode fixed;
        uint32_t fixed_list = 0;
        int r, ret = 0;

        switch (profile_effective_tier(c->p, prof)) {
        case TIER_TENANT:
                f->action = KVM_PMU_EVENT_ALLOW;
                break;
        case TIER_TRUSTED:
                f->action = KVM_PMU_EVENT_DENY;
                break;
        default:
                ret = diags_error(c->d, &prof->loc,
                                  "profile '%s' has no tier: expected tier: tenant or tier: trusted "
                                  "in it or in a profile it extends", prof->name);
        }

        r = profile_chain(c->p, prof, &chain, &n_chain);
        if (r == -ENOMEM)
                return r;
        if (r < 0)      /* policy_validate() reports these; never compile half a chain */
                return diags_error(c->d, &prof->extends_loc,
                                   "profile '%s': its extends chain %s", prof->name,
                                   r == -ELOOP ? "is a cycle" : "names a profile that does not exist");
        r = check_masked_support(c, chain, n_chain);
        if (r < 0)
                ret = r;
        r = add_chain_events(c, chain, n_chain);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                ret = r;
        if (ret < 0)
                return ret;

        if (c->d && c->n > 0) {
                c->all = calloc(c->n, sizeof(c->all[0]));
                if (!c->all)
                        return -ENOMEM;
                memcpy(c->all, c->v, c->n * sizeof(c->all[0]));
                c->n_all = c->n;
        }
        sort_unique(c);
        if (c->n > max_events)
                return diags_error(c->d, &prof->loc,
                                   "profile '%s' compiles to %zu entries; the kernel accepts at most %u",
                                   prof->name, c->n, max_events);

        f->flags = c->masked ? KVM_PMU_EVENT_FLAG_MASKED_EVENTS : 0;
        r = fill_entries(f, c);
        if (r < 0)
                return r;

        fixed = profile_effective_fixed(c->p, prof, &fixed_list);
        f->fixed_counter_bitmap = fixed == FIXED_LIST ? fixed_list : fixed_auto_bitmap(f, c->pmu);
        return 0;
}

/* The leak lint needs to know which policy entry each word came from, to
 * warn where it is written: every entry, duplicates too (c->all, the words
 * before sort_unique() kept one spelling of each). */
static int lint_shared(const struct compile_ctx *c, const struct compiled_filter *f) {
        _cleanup_free_ const struct event_spec **specs = NULL;
        _cleanup_free_ uint64_t *words = NULL;

        if (f->action != KVM_PMU_EVENT_ALLOW || c->n_all == 0)
                return 0;
        specs = calloc(c->n_all, sizeof(specs[0]));
        words = calloc(c->n_all, sizeof(words[0]));
        if (!specs || !words)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_all; i++) {
                specs[i] = c->all[i].spec;
                words[i] = c->all[i].word;
        }
        return filter_lint_shared(c->p, c->prof, c->pmu, f, words, specs, c->n_all, c->d);
}

static int compiled_filter_new(const char *profile_name, struct compiled_filter **ret) {
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;

        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        if (profile_name) {
                f->profile = strdup(profile_name);
                if (!f->profile)
                        return -ENOMEM;
        }
        f->action = KVM_PMU_EVENT_ALLOW;
        *ret = TAKE_PTR(f);
        return 0;
}

int filter_lockdown(const char *profile_name, struct compiled_filter **ret) {
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        int r;

        assert(ret);

        r = compiled_filter_new(profile_name, &f);
        if (r < 0)
                return r;
        f->entry_names = calloc(1, sizeof(char *));
        if (!f->entry_names)
                return -ENOMEM;
        *ret = TAKE_PTR(f);
        return 0;
}

int filter_compile(const struct policy *p, const char *name,
                   const struct host_pmu *pmu, const struct kvm_support *k,
                   struct compiled_filter **ret, struct diags *d) {
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        _cleanup_free_ struct pending *v = NULL, *all = NULL;
        struct compile_ctx c = { .p = p, .pmu = pmu, .k = k, .d = d };
        int r;

        assert(p);
        assert(pmu);
        assert(k);
        assert(ret);

        c.prof = policy_find_profile(p, name);
        if (!c.prof)
                return -ENOENT;

        r = compiled_filter_new(name, &f);
        if (r < 0)
                return r;
        r = compile_profile(&c, f);
        v = c.v;
        all = c.all;
        if (r < 0)
                return r;

        if (d && profile_effective_pmu(p, c.prof) != PMU_OFF) {
                r = lint_shared(&c, f);
                if (r < 0)
                        return r;
        }

        if (profile_effective_pmu(p, c.prof) == PMU_OFF) {
                /* The events were still compiled above, so mistakes in a
                 * pmu: off profile are reported where they are written; the
                 * filter is the fallback for a kernel that refuses to turn
                 * the vPMU off: nothing may count. */
                compiled_filter_unref(TAKE_PTR(f));
                r = filter_lockdown(name, &f);
                if (r < 0)
                        return r;
                f->pmu_off = true;
        }
        *ret = TAKE_PTR(f);
        return 0;
}

bool compiled_filter_equal(const struct compiled_filter *a, const struct compiled_filter *b) {
        if (a == b)
                return true;
        if (!a || !b)
                return false;
        if (a->pmu_off != b->pmu_off || a->action != b->action || a->flags != b->flags ||
            a->fixed_counter_bitmap != b->fixed_counter_bitmap || a->nevents != b->nevents)
                return false;
        return a->nevents == 0 ||
               memcmp(a->events, b->events, a->nevents * sizeof(uint64_t)) == 0;
}

int filter_entry_describe(const struct compiled_filter *f, uint64_t word, char *buf, size_t size) {
        struct filter_entry e;
        int n;

        assert(buf);

        filter_entry_decode(f, word, &e);
        if (e.masked)
                n = snprintf(buf, size, "select 0x%02x mask 0x%02x match 0x%02x %s",
                             (unsigned) e.select, (unsigned) e.mask, (unsigned) e.match,
                             e.exclude ? "exclude" : "include");
        else
                n = snprintf(buf, size, "0x%04" PRIx64 " (select 0x%02x umask 0x%02x)", word,
                             (unsigned) e.select, (unsigned) e.umask);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n >= size)
                return -ENOBUFS;
        return 0;
}
