/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-compile.c — the filter compiler: every event form's bytes, dedupe and
 * sort, masked promotion, the errors that stop a silent change of meaning,
 * fixed counters, pmu: off, inheritance, and the kernel's matching rule.
 * Profiles are built in C here; the last cases go YAML -> bytes through the loader.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../common/filter-oracle.h"
#include "compile.h"
#include "kvm-compat.h"

#define LOC(l) { .file = "t.yaml", .line = (l), .column = 7 }
#define RAW(v, l) { .kind = EVENT_RAW, .raw = (v), .loc = LOC(l) }
#define SEL(s, u, l) { .kind = EVENT_SELECT_UMASK, .select = (s), .umask = (u), .loc = LOC(l) }
#define ANY(s, l) { .kind = EVENT_SELECT_ANY, .select = (s), .loc = LOC(l) }
#define MASKED(s, m, v, x, l) \
        { .kind = EVENT_MASKED, .select = (s), .mask = (m), .match = (v), .exclude = (x), .loc = LOC(l) }
#define NAME(n, opt, l) { .kind = EVENT_NAME, .name = (char *) (n), .optional = (opt), .loc = LOC(l) }
#define ENC(s, m, v, x) KVM_PMU_ENCODE_MASKED_ENTRY((uint64_t) (s), (uint64_t) (m), (uint64_t) (v), (x))

static const struct host_pmu intel = {
        .vendor = PMU_VENDOR_INTEL, .version = 5, .n_gp = 8, .n_fixed = 3, .name = "intel",
};
static const struct host_pmu amd = {
        .vendor = PMU_VENDOR_AMD, .version = 2, .n_gp = 6, .n_fixed = 0, .name = "amd",
};
static const struct kvm_support kvm_new = { .filter = true, .masked = true, .max_events = 300 };
static const struct kvm_support kvm_old = { .filter = true, .masked = false, .max_events = 300 };

static struct profile prof(const char *name, enum tier tier, const char *extends,
                           struct event_spec *events, size_t n) {
        return (struct profile) {
                .name = (char *) name,
                .loc = LOC(1),
                .tier = tier,
                .extends = (char *) extends,
                .events = events,
                .n_events = n,
        };
}

static int compile1(struct profile *pr, const struct host_pmu *pmu, const struct kvm_support *k,
                    struct compiled_filter **ret, struct diags *d) {
        struct policy p = { .profiles = pr, .n_profiles = 1 };

        return filter_compile(&p, pr->name, pmu, k, ret, d);
}

/* Compile and expect an error whose first message contains `needle`. */
static void expect_error(struct profile *pr, const struct host_pmu *pmu,
                         const struct kvm_support *k, const char *needle) {
        struct compiled_filter *f = NULL;
        struct diags d = {};
        _cleanup_free_ char *msg = NULL;

        assert_int_equal(compile1(pr, pmu, k, &f, &d), -EINVAL);
        assert_null(f);
        msg = diags_first_error(&d);
        assert_non_null(msg);
        if (!strstr(msg, needle))
                fail_msg("expected '%s' in: %s", needle, msg);
        diags_clear(&d);
}

static void assert_words(const struct compiled_filter *f, const uint64_t *w, size_t n) {
        assert_int_equal(f->nevents, n);
        for (size_t i = 0; i < n; i++)
                if (f->events[i] != w[i])
                        fail_msg("entry %zu: 0x%" PRIx64 " != expected 0x%" PRIx64, i, f->events[i], w[i]);
        assert_int_equal(strv_length(f->entry_names), n);
}

static void test_plain_forms(void **state) {
        struct event_spec ev[] = { RAW(0x00c0, 2), SEL(0xc4, 0x00, 3), SEL(0x2e, 0x41, 4), RAW(0x1000000c0ULL, 5) };
        struct profile pr = prof("t", TIER_TENANT, NULL, ev, ELEMENTSOF(ev));
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        const uint64_t want[] = { 0x00c0, 0x00c4, 0x412e, 0x1000000c0ULL };

        assert_int_equal(compile1(&pr, &amd, &kvm_new, &f, NULL), 0);
        assert_string_equal(f->profile, "t");
        assert_false(f->pmu_off);
        assert_int_equal(f->action, KVM_PMU_EVENT_ALLOW);
        assert_int_equal(f->flags, 0);
        assert_int_equal(f->fixed_counter_bitmap, 0);   /* AMD: no fixed counters */
        assert_words(f, want, ELEMENTSOF(want));
        assert_string_equal(f->entry_names[0], "0x00c0");
        assert_string_equal(f->entry_names[1], "{select: 0xc4, umask: 0x00}");
        assert_string_equal(f->entry_names[2], "{select: 0x2e, umask: 0x41}");
        assert_string_equal(f->entry_names[3], "0x1000000c0");
        assert_null(f->entry_names[4]);
}

static void test_trusted_is_denylist(void **state) {
        struct event_spec ev[] = { SEL(0xb7, 0x01, 2) };
        struct profile pr = prof("trusted", TIER_TRUSTED, NULL, ev, ELEMENTSOF(ev));
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        const uint64_t want[] = { 0x01b7 };

        assert_int_equal(compile1(&pr, &intel, &kvm_new, &f, NULL), 0);
        assert_int_equal(f->action, KVM_PMU_EVENT_DENY);
        assert_words(f, want, 1);
}

static void test_dedupe_sort(void **state) {
        struct event_spec ev[] = {
                RAW(0x412e, 2), SEL(0xc0, 0x00, 3), RAW(0x00c0, 4), RAW(0x003c, 5), SEL(0x2e, 0x41, 6),
        };
        struct profile pr = prof("t", TIER_TENANT, NULL, ev, ELEMENTSOF(ev));
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        const uint64_t want[] = { 0x003c, 0x00c0, 0x412e };

        assert_int_equal(compile1(&pr, &intel, &kvm_new, &f, NULL), 0);
        assert_words(f, want, ELEMENTSOF(want));
        /* the first spelling wins */
        assert_string_equal(f->entry_names[0], "0x003c");
        assert_string_equal(f->entry_names[1], "{select: 0xc0, umask: 0x00}");
        assert_string_equal(f->entry_names[2], "0x412e");
}

static void test_mixing_promotes_to_masked(void **state) {
        struct event_spec ev[] = {
                SEL(0xc0, 0x00, 2), RAW(0x412e, 3), ANY(0xb7, 4), MASKED(0xd0, 0xf0, 0x80, true, 5),
                MASKED(0xc0, 0xff, 0x00, false, 6),     /* the same as the first, once promoted */
        };
        struct profile pr = prof("t", TIER_TRUSTED, NULL, ev, ELEMENTSOF(ev));
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        const uint64_t want[] = {
                ENC(0xb7, 0x00, 0x00, false), ENC(0xd0, 0xf0, 0x80, true),
                ENC(0xc0, 0xff, 0x00, false), ENC(0x2e, 0xff, 0x41, false),
        };
        /* ascending as u64: the mask lives in bits 63:56, the exclude bit in 55 */
        assert_true(want[0] < want[1] && want[1] < want[2] && want[2] < want[3]);
        assert_int_equal(compile1(&pr, &intel, &kvm_new, &f, NULL), 0);
        assert_int_equal(f->flags, KVM_PMU_EVENT_FLAG_MASKED_EVENTS);
        assert_int_equal(f->action, KVM_PMU_EVENT_DENY);
        assert_words(f, want, ELEMENTSOF(want));
        assert_string_equal(f->entry_names[0], "{select: 0xb7, umask: any}");
        assert_string_equal(f->entry_names[1], "{select: 0xd0, mask: 0xf0, match: 0x80, exclude: true}");
        assert_string_equal(f->entry_names[2], "{select: 0xc0, umask: 0x00}");
        assert_string_equal(f->entry_names[3], "0x412e");
}

static void test_masked_needs_kernel_support(void **state) {
        struct event_spec ev[] = { RAW(0x00c0, 2), ANY(0xb7, 3), MASKED(0xd0, 0xf0, 0x80, false, 4) };
        struct profile pr = prof("t", TIER_TENANT, NULL, ev, ELEMENTSOF(ev));
        struct compiled_filter *f = NULL;
        struct diags d = {};

        assert_int_equal(compile1(&pr, &intel, &kvm_old, &f, &d), -EINVAL);
        assert_null(f);
        /* one error per masked entry, each at its own line; no widening */
        assert_int_equal(d.n_errors, 2);
        assert_int_equal(d.v[0].line, 3);
        assert_int_equal(d.v[1].line, 4);
        assert_non_null(strstr(d.v[0].message, "masked events need Linux 6.3+"));
        diags_clear(&d);

        /* plain entries alone still compile on that kernel */
        pr.n_events = 1;
        assert_int_equal(compile1(&pr, &intel, &kvm_old, &f, NULL), 0);
        assert_int_equal(f->flags, 0);
        compiled_filter_unref(f);
}

static void test_amd_bits_on_intel(void **state) {
        struct event_spec raw[] = { RAW(0x1000000c0ULL, 2) };
        struct event_spec sel[] = { SEL(0x1c0, 0x00, 2) };
        struct event_spec any[] = { ANY(0x1c0, 2) };
        struct event_spec msk[] = { MASKED(0x2c0, 0xff, 0x01, false, 2) };
        struct profile pr = prof("t", TIER_TENANT, NULL, raw, 1);

        expect_error(&pr, &intel, &kvm_new, "t.yaml:2:7: error: 0x1000000c0 uses event-select bits 11:8");
        pr.events = sel;
        expect_error(&pr, &intel, &kvm_new, "only AMD PMUs have");
        pr.events = any;
        expect_error(&pr, &intel, &kvm_new, "only AMD PMUs have");
        pr.events = msk;
        expect_error(&pr, &intel, &kvm_new, "only AMD PMUs have");
}

static void test_amd_bits_on_amd(void **state) {
        struct event_spec ev[] = { SEL(0x1c0, 0x02, 2), RAW(0xf000000ffULL, 3) };
        struct event_spec mev[] = { ANY(0x1c0, 2), MASKED(0xf07, 0x0f, 0x03, true, 3) };
        struct profile pr = prof("t", TIER_TENANT, NULL, ev, ELEMENTSOF(ev));
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL, *m = NULL;
        const uint64_t want[] = { 0x1000002c0ULL, 0xf000000ffULL };
        const uint64_t mwant[] = { 0x1000000c0ULL, ENC(0xf07, 0x0f, 0x03, true) };

        assert_int_equal(compile1(&pr, &amd, &kvm_new, &f, NULL), 0);
        assert_words(f, want, ELEMENTSOF(want));
        pr.events = mev;
        assert_int_equal(compile1(&pr, &amd, &kvm_new, &m, NULL), 0);
        assert_words(m, mwant, ELEMENTSOF(mwant));
        assert_int_equal(m->events[1] >> 32 & 0xf, 0xf);
}

/* An AMD CPU under a KVM that compares select bits 7:0 only (kvm_pvm): the
 * extended selects would be dropped or refused, so they are errors too. */
static void test_amd_bits_on_narrow_kvm(void **state) {
        struct event_spec ev[] = { SEL(0x1c0, 0x02, 2) };
        struct event_spec raw[] = { RAW(0x1000000c0ULL, 3) };
        struct event_spec ok[] = { SEL(0xc0, 0x02, 2), ANY(0x76, 3) };
        struct profile pr = prof("t", TIER_TENANT, NULL, ev, 1);
        struct kvm_support narrow = kvm_new;
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        struct diags d = {};

        narrow.narrow_select = true;
        expect_error(&pr, &amd, &narrow, "which this host's KVM does not compare");
        pr.events = raw;
        expect_error(&pr, &amd, &narrow, "t.yaml:3:7: error: 0x1000000c0 uses event-select bits 11:8 (0x1)");
        pr.events = ok;
        pr.n_events = ELEMENTSOF(ok);
        assert_int_equal(compile1(&pr, &amd, &narrow, &f, NULL), 0);
        assert_int_equal(f->nevents, 2);

        /* optional: skipped with a note shown only on request (check
         * --verbose), as an unknown optional name is skipped */
        compiled_filter_unref(TAKE_PTR(f));
        ev[0].optional = true;
        pr.events = ev;
        pr.n_events = 1;
        assert_int_equal(compile1(&pr, &amd, &narrow, &f, &d), 0);
        assert_int_equal(f->nevents, 0);
        assert_int_equal(d.n_errors, 0);
        assert_int_equal(d.n_warnings, 0);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.v[0].level, DIAG_NOTE);
        assert_true(d.v[0].verbose);
        assert_non_null(strstr(d.v[0].message, "{select: 0x1c0, umask: 0x02} is optional and skipped"));
        diags_clear(&d);
}

static void test_stray_bits_rejected(void **state) {
        struct event_spec ev[] = { RAW(0x010000c0ULL, 2) };     /* cmask 1 */
        struct event_spec high[] = { RAW(1ULL << 40, 2) };
        struct profile pr = prof("t", TIER_TENANT, NULL, ev, 1);

        expect_error(&pr, &amd, &kvm_new, "sets bits 0x1000000 outside the event select and unit mask");
        pr.events = high;
        expect_error(&pr, &amd, &kvm_new, "silently ignore");
}

static void test_too_many_entries(void **state) {
        _cleanup_free_ struct event_spec *ev = calloc(301, sizeof(*ev));
        struct profile pr = prof("big", TIER_TENANT, NULL, ev, 300);
        struct kvm_support small = kvm_new;
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;

        assert_non_null(ev);
        for (size_t i = 0; i < 301; i++)
                ev[i] = (struct event_spec) SEL(i & 0xff, i >> 8, (unsigned) i + 2);
        assert_int_equal(compile1(&pr, &amd, &kvm_new, &f, NULL), 0);
        assert_int_equal(f->nevents, 300);
        for (size_t i = 1; i < f->nevents; i++)
                assert_true(f->events[i - 1] < f->events[i]);

        pr.n_events = 301;
        expect_error(&pr, &amd, &kvm_new, "profile 'big' compiles to 301 entries; the kernel accepts at most 300");
        /* the limit is the probed one, not a constant */
        small.max_events = 10;
        pr.n_events = 11;
        expect_error(&pr, &amd, &small, "profile 'big' compiles to 11 entries; the kernel accepts at most 10");
        /* duplicates do not count */
        for (size_t i = 0; i < 11; i++)
                ev[i] = (struct event_spec) RAW(0x00c0, 2);
        compiled_filter_unref(TAKE_PTR(f));
        assert_int_equal(compile1(&pr, &amd, &small, &f, NULL), 0);
        assert_int_equal(f->nevents, 1);
}

static bool have_intel_fixed_events(void) {
        uint64_t code;

        return fixed_counter_event(&intel, 0, &code) == 0 && code == 0x00c0 &&
               fixed_counter_event(&intel, 1, &code) == 0 && code == 0x003c;
}

static uint32_t fixed_of(struct event_spec *ev, size_t n, enum tier tier, const struct host_pmu *pmu) {
        struct profile pr = prof("t", tier, NULL, ev, n);
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;

        assert_int_equal(compile1(&pr, pmu, &kvm_new, &f, NULL), 0);
        return f->fixed_counter_bitmap;
}

static void test_fixed_auto(void **state) {
        struct event_spec both[] = { RAW(0x00c0, 2), RAW(0x003c, 3), RAW(0x412e, 4) };
        struct event_spec insn[] = { RAW(0x00c0, 2) };
        struct event_spec anyc[] = { ANY(0x3c, 2), MASKED(0x3c, 0xff, 0x00, true, 3), ANY(0xc0, 4) };

        if (!have_intel_fixed_events())
                skip();         /* the catalogue does not know Intel's fixed counters yet */
        assert_int_equal(fixed_of(both, ELEMENTSOF(both), TIER_TENANT, &intel), 0x3);
        assert_int_equal(fixed_of(insn, ELEMENTSOF(insn), TIER_TRUSTED, &intel), 0x1);
        assert_int_equal(fixed_of(insn, ELEMENTSOF(insn), TIER_TENANT, &intel), 0x1);
        /* cycles (0x3c umask 0) is included by `any` but excluded again */
        assert_int_equal(fixed_of(anyc, ELEMENTSOF(anyc), TIER_TENANT, &intel), 0x1);
        assert_int_equal(fixed_of(both, 0, TIER_TENANT, &intel), 0);
        assert_int_equal(fixed_of(both, ELEMENTSOF(both), TIER_TENANT, &amd), 0);
}

static void test_fixed_list(void **state) {
        struct event_spec ev[] = { RAW(0x00c0, 2) };
        struct profile pr = prof("t", TIER_TENANT, NULL, ev, ELEMENTSOF(ev));
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;

        pr.fixed_mode = FIXED_LIST;
        pr.fixed_bitmap = 0x5;
        assert_int_equal(compile1(&pr, &intel, &kvm_new, &f, NULL), 0);
        assert_int_equal(f->fixed_counter_bitmap, 0x5);
        compiled_filter_unref(TAKE_PTR(f));
        pr.fixed_bitmap = 0;
        assert_int_equal(compile1(&pr, &intel, &kvm_new, &f, NULL), 0);
        assert_int_equal(f->fixed_counter_bitmap, 0);
}

static void test_pmu_off(void **state) {
        struct event_spec ev[] = { RAW(0x00c0, 2), ANY(0xb7, 3) };
        struct profile pr = prof("no-pmu", TIER_TRUSTED, NULL, ev, ELEMENTSOF(ev));
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL, *l = NULL;

        pr.pmu = PMU_OFF;
        assert_int_equal(compile1(&pr, &intel, &kvm_new, &f, NULL), 0);
        assert_true(f->pmu_off);
        assert_int_equal(f->action, KVM_PMU_EVENT_ALLOW);
        assert_int_equal(f->flags, 0);
        assert_int_equal(f->fixed_counter_bitmap, 0);
        assert_int_equal(f->nevents, 0);
        assert_non_null(f->entry_names);
        assert_null(f->entry_names[0]);
        assert_string_equal(f->profile, "no-pmu");

        assert_int_equal(filter_lockdown("lockdown", &l), 0);
        assert_false(l->pmu_off);
        assert_int_equal(l->action, KVM_PMU_EVENT_ALLOW);
        assert_int_equal(l->nevents, 0);
        assert_int_equal(l->fixed_counter_bitmap, 0);
        assert_false(compiled_filter_equal(f, l));     /* pmu_off differs */
        l->pmu_off = true;
        assert_true(compiled_filter_equal(f, l));
        /* nothing counts under the fallback */
        assert_false(filter_oracle_allows(l, 0x00c0));
}

static void test_extends_order(void **state) {
        struct event_spec root_ev[] = { RAW(0x00c0, 2) };
        struct event_spec mid_ev[] = { SEL(0xc0, 0x00, 5), SEL(0x3c, 0x00, 6) };
        struct event_spec leaf_ev[] = { ANY(0xb7, 9) };
        struct profile pr[] = {
                prof("leaf", TIER_UNSET, "mid", leaf_ev, ELEMENTSOF(leaf_ev)),
                prof("root", TIER_TRUSTED, NULL, root_ev, ELEMENTSOF(root_ev)),
                prof("mid", TIER_UNSET, "root", mid_ev, ELEMENTSOF(mid_ev)),
        };
        struct policy p = { .profiles = pr, .n_profiles = ELEMENTSOF(pr) };
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *m = NULL, *l = NULL;
        const uint64_t want_mid[] = { 0x003c, 0x00c0 };

        assert_int_equal(filter_compile(&p, "mid", &intel, &kvm_new, &m, NULL), 0);
        assert_int_equal(m->action, KVM_PMU_EVENT_DENY);       /* tier inherited */
        assert_words(m, want_mid, ELEMENTSOF(want_mid));
        /* the parent's spelling comes first, so it names the shared entry */
        assert_string_equal(m->entry_names[1], "0x00c0");

        /* a masked entry in the leaf promotes the inherited ones too */
        assert_int_equal(filter_compile(&p, "leaf", &intel, &kvm_new, &l, NULL), 0);
        assert_int_equal(l->flags, KVM_PMU_EVENT_FLAG_MASKED_EVENTS);
        assert_int_equal(l->nevents, 3);
        assert_true(filter_oracle_allows(l, 0x01b7) == false);         /* listed under deny */
        assert_true(filter_oracle_allows(l, 0x00c0) == false);
        assert_true(filter_oracle_allows(l, 0x00c4));

        assert_int_equal(filter_compile(&p, "nope", &intel, &kvm_new, &l, NULL), -ENOENT);
}

static void test_names(void **state) {
        struct event_spec ev[] = { NAME("instructions", false, 2), NAME("no-such-event-xyz", true, 3) };
        struct event_spec bad[] = { NAME("no-such-event-xyz", false, 4) };
        struct profile pr = prof("t", TIER_TENANT, NULL, ev, ELEMENTSOF(ev));
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        struct diags d = {};
        uint64_t code;

        if (event_resolve(&intel, "instructions", &code) < 0)
                skip();         /* the catalogue has not landed yet */
        assert_int_equal(compile1(&pr, &intel, &kvm_new, &f, &d), 0);
        assert_int_equal(f->nevents, 1);                /* the optional unknown one is skipped */
        assert_true(f->events[0] == code);
        assert_string_equal(f->entry_names[0], "instructions");
        /* ... saying so only on request */
        assert_int_equal(d.n, 1);
        assert_int_equal(d.v[0].level, DIAG_NOTE);
        assert_true(d.v[0].verbose);
        assert_string_equal(d.v[0].message, "event 'no-such-event-xyz' is optional and skipped: PMU intel does not name it");
        diags_clear(&d);

        /* a skipped optional name close to one of the PMU's: perhaps a typo */
        compiled_filter_unref(TAKE_PTR(f));
        ev[1].name = (char *) "ref-cycels";
        assert_int_equal(compile1(&pr, &intel, &kvm_new, &f, &d), 0);
        assert_int_equal(f->nevents, 1);
        assert_int_equal(d.n_errors + d.n_warnings, 0);
        assert_string_equal(d.v[0].message, "event 'ref-cycels' is optional and skipped: PMU intel does not name it; "
                            "did you mean 'ref-cycles'?");
        diags_clear(&d);

        pr.events = bad;
        pr.n_events = 1;
        expect_error(&pr, &intel, &kvm_new, "t.yaml:4:7: error: unknown event 'no-such-event-xyz' for PMU intel");

        /* with the closest name of the PMU, where one is close */
        bad[0].name = (char *) "brnch-misses";
        expect_error(&pr, &intel, &kvm_new,
                     "t.yaml:4:7: error: unknown event 'brnch-misses' for PMU intel; did you mean 'branch-misses'?");
}

static struct compiled_filter cf(uint32_t action, uint32_t flags, uint64_t *w, uint32_t n) {
        return (struct compiled_filter) { .action = action, .flags = flags, .events = w, .nevents = n };
}

/* The tests' oracle (tests/common/filter-oracle.h) against the kernel's rule
 * worked out by hand: fuzz-policy trusts it to check fixed_counters: auto,
 * the compiler's own use of the rule (tested directly in test_fixed_auto). */
static void test_allows_truth_table(void **state) {
        uint64_t plain[] = { 0x00c0, 0x412e };
        uint64_t masked[] = {
                ENC(0xd0, 0xf0, 0x80, false),   /* umask 0x8? */
                ENC(0xd0, 0xff, 0x83, true),    /* ... but not 0x83 */
                ENC(0xb7, 0x00, 0x00, false),   /* any umask */
                ENC(0x1c0, 0xff, 0x00, false),  /* AMD extended select */
        };
        struct compiled_filter a = cf(KVM_PMU_EVENT_ALLOW, 0, plain, 2);
        struct compiled_filter dn = cf(KVM_PMU_EVENT_DENY, 0, plain, 2);
        struct compiled_filter ma = cf(KVM_PMU_EVENT_ALLOW, KVM_PMU_EVENT_FLAG_MASKED_EVENTS, masked, 4);
        struct compiled_filter md = cf(KVM_PMU_EVENT_DENY, KVM_PMU_EVENT_FLAG_MASKED_EVENTS, masked, 4);
        const struct { uint64_t code; bool plain_listed, masked_listed; } t[] = {
                { 0x00c0,       true,  false },
                { 0x01c0,       false, false },         /* plain is exact on umask */
                { 0x412e,       true,  false },
                { 0x402e,       false, false },
                { 0x80d0,       false, true },
                { 0x8fd0,       false, true },
                { 0x83d0,       false, false },         /* excluded */
                { 0x70d0,       false, false },
                { 0x00b7,       false, true },
                { 0xffb7,       false, true },
                { 0x1000000c0ULL, false, true },
                { 0x1000001c0ULL, false, false },
                { 0x1000000b7ULL, false, false },       /* select 0x1b7 is not 0xb7 */
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                assert_int_equal(filter_oracle_allows(&a, t[i].code), t[i].plain_listed);
                assert_int_equal(filter_oracle_allows(&dn, t[i].code), !t[i].plain_listed);
                assert_int_equal(filter_oracle_allows(&ma, t[i].code), t[i].masked_listed);
                assert_int_equal(filter_oracle_allows(&md, t[i].code), !t[i].masked_listed);
        }
        /* an exclude entry alone lists nothing */
        md.events = &masked[1];
        md.nevents = 1;
        assert_true(filter_oracle_allows(&md, 0x83d0));
}

static void test_equal_and_describe(void **state) {
        uint64_t w1[] = { 0x00c0, 0x003c }, w2[] = { 0x00c0, 0x003c }, w3[] = { 0x00c0, 0x013c };
        struct compiled_filter a = cf(KVM_PMU_EVENT_ALLOW, 0, w1, 2), b = cf(KVM_PMU_EVENT_ALLOW, 0, w2, 2);
        char *names[] = { (char *) "x", NULL };
        char buf[96];

        a.entry_names = names;                  /* names are not what the kernel sees */
        assert_true(compiled_filter_equal(&a, &b));
        b.fixed_counter_bitmap = 1;
        assert_false(compiled_filter_equal(&a, &b));
        b.fixed_counter_bitmap = 0;
        b.action = KVM_PMU_EVENT_DENY;
        assert_false(compiled_filter_equal(&a, &b));
        b.action = KVM_PMU_EVENT_ALLOW;
        b.events = w3;
        assert_false(compiled_filter_equal(&a, &b));
        b.nevents = 1;
        a.nevents = 1;
        assert_true(compiled_filter_equal(&a, &b));
        b.flags = KVM_PMU_EVENT_FLAG_MASKED_EVENTS;
        assert_false(compiled_filter_equal(&a, &b));

        assert_int_equal(filter_entry_describe(&a, 0x00c0, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "0x00c0 (select 0xc0 umask 0x00)");
        assert_int_equal(filter_entry_describe(&a, 0x1000002c0ULL, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "0x1000002c0 (select 0x1c0 umask 0x02)");
        assert_int_equal(filter_entry_describe(&b, ENC(0xb7, 0, 0, false), buf, sizeof(buf)), 0);
        assert_string_equal(buf, "select 0xb7 mask 0x00 match 0x00 include");
        assert_int_equal(filter_entry_describe(&b, ENC(0xd0, 0xf0, 0x80, true), buf, sizeof(buf)), 0);
        assert_string_equal(buf, "select 0xd0 mask 0xf0 match 0x80 exclude");
        assert_int_equal(filter_entry_describe(&b, ENC(0xd0, 0xf0, 0x80, true), buf, 8), -ENOBUFS);
}

/* The one decoder of both forms, which the describer and pmufilterctl's
 * tables read: a plain word also reads as the kernel's masked conversion. */
static void test_entry_decode(void **state) {
        struct compiled_filter p = cf(KVM_PMU_EVENT_ALLOW, 0, NULL, 0);
        struct compiled_filter m = cf(KVM_PMU_EVENT_ALLOW, KVM_PMU_EVENT_FLAG_MASKED_EVENTS, NULL, 0);
        struct filter_entry e;

        filter_entry_decode(&p, 0x1000002c0ULL, &e);
        assert_false(e.masked);
        assert_int_equal(e.select, 0x1c0);
        assert_int_equal(e.umask, 0x02);
        assert_int_equal(e.mask, 0xff);
        assert_int_equal(e.match, 0x02);
        assert_false(e.exclude);

        filter_entry_decode(&m, ENC(0x1d0, 0xf0, 0x80, true), &e);
        assert_true(e.masked);
        assert_int_equal(e.select, 0x1d0);
        assert_int_equal(e.umask, 0);
        assert_int_equal(e.mask, 0xf0);
        assert_int_equal(e.match, 0x80);
        assert_true(e.exclude);

        filter_entry_decode(&m, ENC(0xb7, 0, 0, false), &e);
        assert_int_equal(e.select, 0xb7);
        assert_int_equal(e.mask, 0);
        assert_int_equal(e.match, 0);
        assert_false(e.exclude);
}

static void test_masked_never_matching_warns(void **state) {
        struct event_spec ev[] = { MASKED(0xd0, 0x0f, 0x80, false, 2) };
        struct profile pr = prof("t", TIER_TENANT, NULL, ev, ELEMENTSOF(ev));
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        struct diags d = {};

        assert_int_equal(compile1(&pr, &amd, &kvm_new, &f, &d), 0);
        assert_int_equal(d.n_errors, 0);
        assert_int_equal(d.n_warnings, 1);
        assert_non_null(strstr(d.v[0].message, "can ever match"));
        diags_clear(&d);
}

/* YAML -> policy -> bytes, through the real loader. */
static int compile_yaml(const char *yaml, const char *profile, const struct host_pmu *pmu,
                        struct compiled_filter **ret, struct diags *d) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct diags load = {};

        assert_int_equal(policy_new(&p), 0);
        if (policy_load_buffer(p, "t.yaml", yaml, strlen(yaml), &load) < 0 ||
            policy_validate(p, &load) < 0) {
                diags_print(&load, stderr);
                fail_msg("the test policy does not load");
        }
        diags_clear(&load);
        return filter_compile(p, profile, pmu, &kvm_new, ret, d);
}

static const char yaml_policy[] =
        "version: 1\n"
        "profiles:\n"
        "  base:\n"
        "    tier: tenant\n"
        "    events:\n"
        "      - instructions\n"
        "      - cycles\n"
        "      - 0x412e\n"
        "      - { select: 0xc4, umask: 0x00 }\n"
        "  more:\n"
        "    extends: base\n"
        "    events: [ 0x00c0, { select: 0xc5, umask: 0x00 } ]\n"
        "    optional: [ no-such-event-xyz ]\n"
        "  masked:\n"
        "    extends: base\n"
        "    events:\n"
        "      - { select: 0xb7, umask: any }\n"
        "      - { select: 0xd0, mask: 0xf0, match: 0x80, exclude: true }\n"
        "    fixed_counters: [ 2 ]\n"
        "  broken:\n"
        "    tier: tenant\n"
        "    events:\n"
        "      - instructions\n"
        "      - no-such-event-xyz\n"
        "  off:\n"
        "    extends: base\n"
        "    pmu: off\n";

static void test_yaml_to_bytes(void **state) {
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *b = NULL, *m = NULL, *x = NULL, *o = NULL;
        const uint64_t want_base[] = { 0x003c, 0x00c0, 0x00c4, 0x412e };
        const uint64_t want_more[] = { 0x003c, 0x00c0, 0x00c4, 0x00c5, 0x412e };
        const uint64_t want_masked[] = {
                ENC(0xb7, 0x00, 0x00, false), ENC(0xd0, 0xf0, 0x80, true),
                ENC(0x3c, 0xff, 0x00, false), ENC(0xc0, 0xff, 0x00, false),
                ENC(0xc4, 0xff, 0x00, false), ENC(0x2e, 0xff, 0x41, false),
        };
        struct diags d = {};
        _cleanup_free_ char *msg = NULL;
        uint64_t code;

        if (event_resolve(&intel, "instructions", &code) < 0 || code != 0x00c0)
                skip();         /* the catalogue has not landed yet */

        assert_int_equal(compile_yaml(yaml_policy, "base", &intel, &b, NULL), 0);
        assert_int_equal(b->action, KVM_PMU_EVENT_ALLOW);
        assert_words(b, want_base, ELEMENTSOF(want_base));
        assert_string_equal(b->entry_names[0], "cycles");
        assert_string_equal(b->entry_names[2], "{select: 0xc4, umask: 0x00}");
        if (have_intel_fixed_events())
                assert_int_equal(b->fixed_counter_bitmap, 0x3);

        assert_int_equal(compile_yaml(yaml_policy, "more", &intel, &m, NULL), 0);
        assert_words(m, want_more, ELEMENTSOF(want_more));
        assert_string_equal(m->entry_names[1], "instructions");        /* the parent spelled it first */

        assert_int_equal(compile_yaml(yaml_policy, "masked", &intel, &x, NULL), 0);
        assert_int_equal(x->action, KVM_PMU_EVENT_ALLOW);
        assert_int_equal(x->flags, KVM_PMU_EVENT_FLAG_MASKED_EVENTS);
        assert_int_equal(x->fixed_counter_bitmap, 0x4);
        assert_words(x, want_masked, ELEMENTSOF(want_masked));

        assert_int_equal(compile_yaml(yaml_policy, "off", &intel, &o, NULL), 0);
        assert_true(o->pmu_off);
        assert_int_equal(o->nevents, 0);

        assert_int_equal(compile_yaml(yaml_policy, "broken", &intel, &o, &d), -EINVAL);
        msg = diags_first_error(&d);
        assert_string_equal(msg, "t.yaml:24:9: error: unknown event 'no-such-event-xyz' for PMU intel");
        diags_clear(&d);
}

/* perf's spellings compile to the words of the number and {select, umask}
 * forms, and keep their spelling for `compile`'s NAME column. */
static void test_perf_spellings(void **state) {
        static const char yaml[] =
                "profiles:\n"
                "  p:\n"
                "    tier: trusted\n"
                "    events:\n"
                "      - r412e\n"
                "      - cpu/event=0x2e,umask=0x4f,name=llc-refs/\n"
                "      - cpu/event=0xc0/\n"
                "      - r100000120\n"
                "      - \"cpu/event=0x1c0,umask=0x01/\"\n"
                "  same:\n"
                "    tier: trusted\n"
                "    events: [ 0x412e, { select: 0x2e, umask: 0x4f }, 0x00c0, 0x100000120, { select: 0x1c0, umask: 1 } ]\n";
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL, *g = NULL;
        struct diags d = {};

        assert_int_equal(compile_yaml(yaml, "p", &amd, &f, &d), 0);
        assert_int_equal(compile_yaml(yaml, "same", &amd, &g, &d), 0);
        assert_true(compiled_filter_equal(f, g));
        assert_int_equal(f->nevents, 5);
        assert_true(f->events[0] == 0xc0);
        assert_string_equal(f->entry_names[0], "cpu/event=0xc0/");
        assert_true(f->events[1] == 0x412e);
        assert_string_equal(f->entry_names[1], "r412e");
        assert_true(f->events[2] == 0x4f2e);
        assert_string_equal(f->entry_names[2], "cpu/event=0x2e,umask=0x4f,name=llc-refs/");
        assert_true(f->events[3] == UINT64_C(0x100000120));
        assert_string_equal(f->entry_names[3], "r100000120");
        assert_true(f->events[4] == UINT64_C(0x1000001c0));
        assert_string_equal(f->entry_names[4], "cpu/event=0x1c0,umask=0x01/");
        diags_clear(&d);

        /* select bits 11:8 are AMD's alone, whichever spelling */
        compiled_filter_unref(TAKE_PTR(f));
        assert_int_equal(compile_yaml("profiles:\n  p:\n    tier: trusted\n    events: [ r100000120 ]\n",
                                      "p", &intel, &f, &d), -EINVAL);
        assert_non_null(strstr(d.v[0].message, "r100000120 uses event-select bits 11:8 (0x1), which only AMD PMUs have"));
        diags_clear(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_perf_spellings),
                cmocka_unit_test(test_plain_forms),
                cmocka_unit_test(test_trusted_is_denylist),
                cmocka_unit_test(test_dedupe_sort),
                cmocka_unit_test(test_mixing_promotes_to_masked),
                cmocka_unit_test(test_masked_needs_kernel_support),
                cmocka_unit_test(test_amd_bits_on_intel),
                cmocka_unit_test(test_amd_bits_on_amd),
                cmocka_unit_test(test_amd_bits_on_narrow_kvm),
                cmocka_unit_test(test_stray_bits_rejected),
                cmocka_unit_test(test_too_many_entries),
                cmocka_unit_test(test_fixed_auto),
                cmocka_unit_test(test_fixed_list),
                cmocka_unit_test(test_pmu_off),
                cmocka_unit_test(test_extends_order),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_allows_truth_table),
                cmocka_unit_test(test_equal_and_describe),
                cmocka_unit_test(test_entry_decode),
                cmocka_unit_test(test_masked_never_matching_warns),
                cmocka_unit_test(test_yaml_to_bytes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
