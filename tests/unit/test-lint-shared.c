/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-lint-shared.c — the leak lint (lib/lint-shared.c, the table in
 * lib/shared-events.c): a tenant allowlist that lets a guest count a
 * last-level-cache, off-core, memory or data-source event is warned about
 * at the entry's file:line:column, whatever form the entry takes; a
 * trusted denylist never is; acknowledge_shared turns the warning into a
 * note, through extends too; the table follows the PMU compiled for.
 * Policies go YAML -> loader -> validation -> filter_compile() of every
 * profile, as `pmufilterctl check` runs them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "compile.h"
#include "shared-events.h"

static const struct kvm_support kvm = { .filter = true, .masked = true, .max_events = 300 };

/* Hosts as CPUID describes them without libpfm4 (name = vendor), and
 * libpfm4 models that need no library to be named: the table reads only
 * the name of an Intel PMU and the family of an AMD one. */
static struct host_pmu amd_host(unsigned family, unsigned model) {
        return (struct host_pmu) { .vendor = PMU_VENDOR_AMD, .family = family, .model = model, .name = "amd" };
}
static struct host_pmu intel_model(const char *name) {
        struct host_pmu p = { .vendor = PMU_VENDOR_INTEL, .family = 6, .n_fixed = 3 };

        snprintf(p.name, sizeof(p.name), "%s", name);
        return p;
}

/* Load, validate and compile every profile into one list of diagnostics;
 * the policy must be valid and compile. */
static void lint(const char *yaml, const struct host_pmu *pmu, struct diags *d) {
        _cleanup_(policy_freep) struct policy *p = NULL;

        assert_int_equal(policy_new(&p), 0);
        if (policy_load_buffer(p, "p.yaml", yaml, strlen(yaml), d) < 0 || policy_validate(p, d) < 0) {
                diags_print(d, stderr);
                fail_msg("the test policy does not load");
        }
        for (size_t i = 0; i < p->n_profiles; i++) {
                _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;

                if (filter_compile(p, p->profiles[i].name, pmu, &kvm, &f, d) < 0) {
                        diags_print(d, stderr);
                        fail_msg("profile '%s' does not compile for %s", p->profiles[i].name, pmu->name);
                }
        }
}

/* Exactly these diagnostics, in this order, as `pmufilterctl check` prints
 * them.  expected ends with NULL. */
static void expect_diags_v(const char *yaml, const struct host_pmu *pmu, const char *const *expected) {
        struct diags d = {};
        size_t n = 0, w = 0;

        lint(yaml, pmu, &d);
        /* without --verbose: optional events skipped are not shown */
        for (size_t i = 0; i < d.n; i++) {
                if (!d.v[i].verbose) {
                        d.v[w++] = d.v[i];
                        continue;
                }
                free(d.v[i].file);
                free(d.v[i].message);
        }
        d.n = w;
        for (; expected[n]; n++) {
                _cleanup_free_ char *s = NULL;
                static const char *const levels[] = { "error", "warning", "note" };

                if (n >= d.n) {
                        diags_print(&d, stderr);
                        fail_msg("on %s: expected diagnostic %zu missing: %s", pmu->name, n, expected[n]);
                }
                assert_true(asprintf(&s, "%s:%u:%u: %s: %s", d.v[n].file, d.v[n].line, d.v[n].column,
                                     levels[d.v[n].level], d.v[n].message) > 0);
                if (!streq(s, expected[n])) {
                        diags_print(&d, stderr);
                        fail_msg("on %s: diagnostic %zu\n  is       %s\n  expected %s", pmu->name, n, s,
                                 expected[n]);
                }
        }
        if (d.n != n) {
                diags_print(&d, stderr);
                fail_msg("on %s: %zu diagnostics, expected %zu", pmu->name, d.n, n);
        }
        diags_clear(&d);
}
#define expect_diags(yaml, pmu, ...) expect_diags_v((yaml), (pmu), (const char *const[]) { __VA_ARGS__, NULL })
#define expect_clean(yaml, pmu) expect_diags_v((yaml), (pmu), (const char *const[]) { NULL })

#define TAIL "; add the entry to the profile's acknowledge_shared if that is intended"
#define LLC ": it observes the last-level cache, shared with other tenants"
#define LLC_MANY ": they observe the last-level cache, shared with other tenants"

static void test_generic_aliases(void **state) {
        struct host_pmu intel;

        assert_int_equal(host_pmu_from_name("intel", &intel), 0);
        /* perf's cache-misses and cache-references are Intel's LLC events */
        expect_diags("profiles:\n"
                     "  tenant-a:\n"
                     "    tier: tenant\n"
                     "    events:\n"
                     "      - instructions\n"
                     "      - cache-misses\n"
                     "      - branches\n"
                     "    optional: [ cache-references ]\n",
                     &intel,
                     "p.yaml:6:9: warning: profile 'tenant-a' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e)"
                     LLC TAIL,
                     "p.yaml:8:17: warning: profile 'tenant-a' (tier tenant) allows "
                     "LONGEST_LAT_CACHE.REFERENCE (0x4f2e)" LLC TAIL);
        /* Today's code passed this without a word: the finding. */
}

/* libpfm4's names for the same events, on a model that has them. */
static void test_libpfm_names(void **state) {
        struct host_pmu skx;

#if !HAVE_LIBPFM
        print_message("skipped: built without libpfm4\n");
        skip();
#endif
        if (host_pmu_from_name("skx", &skx) < 0) {
                print_message("skipped: libpfm.so.4 is not installed\n");
                skip();
        }
        expect_diags("profiles:\n"
                     "  t:\n"
                     "    tier: tenant\n"
                     "    events: [ cycles, LONGEST_LAT_CACHE.MISS, \"LONGEST_LAT_CACHE:REFERENCE\" ]\n",
                     &skx,
                     "p.yaml:4:23: warning: profile 't' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e)"
                     LLC TAIL,
                     "p.yaml:4:47: warning: profile 't' (tier tenant) allows LONGEST_LAT_CACHE.REFERENCE (0x4f2e)"
                     LLC TAIL);
        /* A model-specific event, and every spelling of one word is
         * reported where it is written (the filter holds it once). */
        expect_diags("profiles:\n"
                     "  t:\n"
                     "    tier: tenant\n"
                     "    events:\n"
                     "      - MEM_LOAD_L3_MISS_RETIRED:REMOTE_DRAM\n"
                     "      - { select: 0xd3, umask: 0x02 }\n",
                     &skx,
                     "p.yaml:5:9: warning: profile 't' (tier tenant) allows MEM_LOAD_L3_MISS_RETIRED.* (0x02d3): "
                     "it observes the caches and memory that served its loads, shared with other tenants" TAIL,
                     "p.yaml:6:9: warning: profile 't' (tier tenant) allows MEM_LOAD_L3_MISS_RETIRED.* (0x02d3): "
                     "it observes the caches and memory that served its loads, shared with other tenants" TAIL);
}

/* What an entry lets count is the kernel's matching over every unit mask,
 * exclude entries included, whatever the entry's form. */
static void test_entry_forms(void **state) {
        struct host_pmu intel;

        assert_int_equal(host_pmu_from_name("intel", &intel), 0);
        expect_diags("profiles:\n"
                     "  t:\n"
                     "    tier: tenant\n"
                     "    events:\n"
                     "      - { select: 0x2e, umask: 0x41 }\n"
                     "      - 0x4f2e\n",
                     &intel,
                     "p.yaml:5:9: warning: profile 't' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e)" LLC TAIL,
                     "p.yaml:6:9: warning: profile 't' (tier tenant) allows LONGEST_LAT_CACHE.REFERENCE (0x4f2e)"
                     LLC TAIL);
        expect_diags("profiles:\n"
                     "  t:\n"
                     "    tier: tenant\n"
                     "    events:\n"
                     "      - { select: 0x2e, umask: any }\n",
                     &intel,
                     "p.yaml:5:9: warning: profile 't' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e), "
                     "LONGEST_LAT_CACHE.REFERENCE (0x4f2e) and LONGEST_LAT_CACHE.* (254 unit masks of select 0x2e)"
                     LLC_MANY TAIL);
        /* mask/match: unit masks with bit 6, which both named ones have */
        expect_diags("profiles:\n"
                     "  t:\n"
                     "    tier: tenant\n"
                     "    events: [ { select: 0x2e, mask: 0x40, match: 0x40 } ]\n",
                     &intel,
                     "p.yaml:4:15: warning: profile 't' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e), "
                     "LONGEST_LAT_CACHE.REFERENCE (0x4f2e) and LONGEST_LAT_CACHE.* (126 unit masks of select 0x2e)"
                     LLC_MANY TAIL);
        /* An exclude entry takes the miss back: the rest is still allowed. */
        expect_diags("profiles:\n"
                     "  t:\n"
                     "    tier: tenant\n"
                     "    events:\n"
                     "      - { select: 0x2e, umask: any }\n"
                     "      - { select: 0x2e, mask: 0xff, match: 0x41, exclude: true }\n",
                     &intel,
                     "p.yaml:5:9: warning: profile 't' (tier tenant) allows LONGEST_LAT_CACHE.REFERENCE (0x4f2e) "
                     "and LONGEST_LAT_CACHE.* (254 unit masks of select 0x2e)" LLC_MANY TAIL);
        /* Unit-mask bits of MEM_LOAD_RETIRED: L3_HIT and L3_MISS in any
         * combination; excluding every unit mask with bit 5 leaves the hits. */
        expect_diags("profiles:\n"
                     "  t:\n"
                     "    tier: tenant\n"
                     "    events:\n"
                     "      - { select: 0xd1, umask: 0x01 }\n"
                     "      - { select: 0xd1, umask: 0x24 }\n"
                     "      - { select: 0xd1, umask: any }\n"
                     "      - { select: 0xd1, mask: 0x20, match: 0x20, exclude: true }\n",
                     &intel,
                     "p.yaml:7:9: warning: profile 't' (tier tenant) allows MEM_LOAD_RETIRED.L3_HIT "
                     "(64 unit masks of select 0xd1)" LLC_MANY TAIL);
        /* Events the table does not name stay quiet, whatever their form. */
        expect_clean("profiles:\n"
                     "  t:\n"
                     "    tier: tenant\n"
                     "    events: [ 0x00c0, { select: 0x3c, umask: any }, { select: 0xc4, mask: 0, match: 0 } ]\n",
                     &intel);
}

static void test_amd(void **state) {
        struct host_pmu zen3 = amd_host(0x19, 0x01), zen2 = amd_host(0x17, 0x31), k10 = amd_host(0x10, 0x02),
                        amd;
        static const char fills[] =
                "profiles:\n"
                "  t:\n"
                "    tier: tenant\n"
                "    events:\n"
                "      - cycles\n"
                "      - cache-misses\n"                        /* Zen: the core's own L2 */
                "      - { select: 0x43, umask: 0x01 }\n"       /* a fill from the core's own L2 */
                "      - { select: 0x43, umask: 0x08 }\n"       /* ... from DRAM */
                "      - { select: 0x44, umask: any }\n"
                "      - { select: 0x72, umask: 0x1f }\n";

        expect_diags(fills, &zen3,
                     "p.yaml:8:9: warning: profile 't' (tier tenant) allows LsDmndFillsFromSys (0x0843): it observes "
                     "the caches and memory that served its loads, shared with other tenants" TAIL,
                     "p.yaml:9:9: warning: profile 't' (tier tenant) allows LsAnyFillsFromSys (254 unit masks of "
                     "select 0x44): they observe the caches and memory that served its loads, shared with other "
                     "tenants" TAIL,
                     "p.yaml:10:9: warning: profile 't' (tier tenant) allows L2PfMissL2L3 (0x1f72)" LLC TAIL);
        /* PMCx044 is Zen 3's; before Zen nothing is in the table. */
        expect_diags(fills, &zen2,
                     "p.yaml:8:9: warning: profile 't' (tier tenant) allows LsDmndFillsFromSys (0x0843): it observes "
                     "the caches and memory that served its loads, shared with other tenants" TAIL,
                     "p.yaml:10:9: warning: profile 't' (tier tenant) allows L2PfMissL2L3 (0x1f72)" LLC TAIL);
        expect_clean(fills, &k10);
        /* --pmu amd: the vendor's parts include Zen 3; Intel's select 0x2e
         * means nothing shared there. */
        assert_int_equal(host_pmu_from_name("amd", &amd), 0);
        expect_diags("profiles:\n"
                     "  t:\n"
                     "    tier: tenant\n"
                     "    events: [ { select: 0x2e, umask: any }, { select: 0x44, umask: 0x02 } ]\n",
                     &amd,
                     "p.yaml:4:45: warning: profile 't' (tier tenant) allows LsAnyFillsFromSys (0x0244): it observes "
                     "the caches and memory that served its loads, shared with other tenants" TAIL);
}

/* A denylist listing them denies them: nothing to warn about, on either
 * vendor; nor about a tenant profile whose PMU is off. */
static void test_trusted_and_pmu_off(void **state) {
        static const char yaml[] =
                "profiles:\n"
                "  trusted:\n"
                "    tier: trusted\n"
                "    events:\n"
                "      - { select: 0x2e, umask: any }\n"
                "      - { select: 0x43, umask: any }\n"
                "      - { select: 0xb7, umask: any }\n"
                "    optional: [ cache-misses, cache-references, LONGEST_LAT_CACHE.MISS ]\n"
                "  trusted-child:\n"
                "    extends: trusted\n"
                "    events: [ { select: 0xd3, umask: 0x01 } ]\n"
                "  off:\n"
                "    pmu: off\n";
        struct host_pmu intel, zen3 = amd_host(0x19, 0x01);

        assert_int_equal(host_pmu_from_name("intel", &intel), 0);
        expect_clean(yaml, &intel);
        expect_clean(yaml, &zen3);
        expect_diags("profiles:\n"
                     "  off:\n"
                     "    pmu: off\n"
                     "    events: [ cache-misses ]\n",
                     &intel,
                     "p.yaml:4:15: warning: profile 'off' has pmu: off: its events are never used");
}

#define ACK ": it observes the last-level cache, shared with other tenants; acknowledged"

static void test_acknowledged(void **state) {
        struct host_pmu intel;

        assert_int_equal(host_pmu_from_name("intel", &intel), 0);
        /* The same spelling, another spelling of the same event, a wider
         * entry: each acknowledges what it matches, as events: would. */
        expect_diags("profiles:\n"
                     "  hpc:\n"
                     "    tier: tenant\n"
                     "    events: [ instructions, cache-misses, 0x4f2e ]\n"
                     "    acknowledge_shared: [ cache-misses, { select: 0x2e, umask: any } ]\n",
                     &intel,
                     "p.yaml:4:29: note: profile 'hpc' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e)" ACK,
                     "p.yaml:4:43: note: profile 'hpc' (tier tenant) allows LONGEST_LAT_CACHE.REFERENCE (0x4f2e)"
                     ACK);
        /* Acknowledging one event of a wide entry leaves the rest warned. */
        expect_diags("profiles:\n"
                     "  hpc:\n"
                     "    tier: tenant\n"
                     "    events: [ { select: 0x2e, umask: any } ]\n"
                     "    acknowledge_shared: [ cache-misses, LONGEST_LAT_CACHE.REFERENCE ]\n",
                     &intel,
                     "p.yaml:4:15: warning: profile 'hpc' (tier tenant) allows LONGEST_LAT_CACHE.REFERENCE "
                     "(0x4f2e) and LONGEST_LAT_CACHE.* (254 unit masks of select 0x2e)" LLC_MANY TAIL,
                     "p.yaml:4:15: note: profile 'hpc' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e)" ACK);
        /* An empty list acknowledges nothing. */
        expect_diags("profiles:\n"
                     "  hpc:\n"
                     "    tier: tenant\n"
                     "    events: [ cache-misses ]\n"
                     "    acknowledge_shared: []\n",
                     &intel,
                     "p.yaml:4:15: warning: profile 'hpc' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e)"
                     LLC TAIL);
}

/* extends: a parent's acknowledgement covers what the child inherits; a
 * child's own entries need their own; an inherited entry is reported once,
 * for the profile that lists it, unless that one is not linted itself. */
static void test_extends(void **state) {
        struct host_pmu intel;

        assert_int_equal(host_pmu_from_name("intel", &intel), 0);
        expect_diags("profiles:\n"
                     "  base:\n"
                     "    tier: tenant\n"
                     "    events: [ cache-misses ]\n"
                     "    acknowledge_shared: [ cache-misses ]\n"
                     "  child:\n"
                     "    extends: base\n"
                     "    events: [ cache-references ]\n"
                     "  grandchild:\n"
                     "    extends: child\n"
                     "    acknowledge_shared: [ cache-references ]\n",
                     &intel,
                     "p.yaml:4:15: note: profile 'base' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e)" ACK,
                     "p.yaml:8:15: warning: profile 'child' (tier tenant) allows LONGEST_LAT_CACHE.REFERENCE "
                     "(0x4f2e)" LLC TAIL);
        /* Not acknowledged anywhere: one warning, at the parent's entry. */
        expect_diags("profiles:\n"
                     "  base:\n"
                     "    tier: tenant\n"
                     "    events: [ cache-misses ]\n"
                     "  child:\n"
                     "    extends: base\n"
                     "    events: [ cycles ]\n",
                     &intel,
                     "p.yaml:4:15: warning: profile 'base' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e)"
                     LLC TAIL);
        /* A parent with pmu: off is not linted: its child, which uses the
         * events, is warned about, at the parent's entry. */
        expect_diags("profiles:\n"
                     "  quiet:\n"
                     "    pmu: off\n"
                     "    events: [ cache-misses ]\n"
                     "  loud:\n"
                     "    extends: quiet\n"
                     "    tier: tenant\n"
                     "    pmu: on\n",
                     &intel,
                     "p.yaml:4:15: warning: profile 'quiet' has pmu: off: its events are never used",
                     "p.yaml:4:15: warning: profile 'loud' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e)"
                     LLC TAIL);
}

/* The table follows the PMU's generation where its name says it: a select
 * that is an off-core response on one part is something else on another,
 * and a PMU of unknown generation gets every meaning. */
static void test_generations(void **state) {
        static const char yaml[] =
                "profiles:\n"
                "  t:\n"
                "    tier: tenant\n"
                "    events:\n"
                "      - { select: 0xb7, umask: 0x02 }\n"       /* EXE.AMX_BUSY on Sapphire Rapids */
                "      - { select: 0x2a, umask: 0x01 }\n"       /* Sapphire Rapids' OCR */
                "      - { select: 0xd2, umask: 0x01 }\n";      /* RAT_STALLS on Nehalem */
        struct host_pmu spr = intel_model("spr"), nhm = intel_model("nhm"), slm = intel_model("slm"),
                        future = intel_model("ix86arch");

        expect_diags(yaml, &spr,
                     "p.yaml:6:9: warning: profile 't' (tier tenant) allows OCR.* (OFFCORE_RESPONSE_0) (0x012a): "
                     "it observes the uncore's off-core responses, shared with other tenants" TAIL,
                     "p.yaml:7:9: warning: profile 't' (tier tenant) allows MEM_LOAD_L3_HIT_RETIRED.* (0x01d2): "
                     "it observes the caches and memory that served its loads, shared with other tenants" TAIL);
        expect_diags(yaml, &nhm,
                     "p.yaml:5:9: warning: profile 't' (tier tenant) allows OFFCORE_RESPONSE_0 (0x02b7): "
                     "it observes the uncore's off-core responses, shared with other tenants" TAIL);
        /* The Atoms' second off-core response is 0xb7 with unit mask 0x02. */
        expect_diags(yaml, &slm,
                     "p.yaml:5:9: warning: profile 't' (tier tenant) allows OFFCORE_RESPONSE_1 (0x02b7): "
                     "it observes the uncore's off-core responses, shared with other tenants" TAIL);
        expect_diags(yaml, &future,
                     "p.yaml:5:9: warning: profile 't' (tier tenant) allows OFFCORE_RESPONSE_1 (0x02b7): "
                     "it observes the uncore's off-core responses, shared with other tenants" TAIL,
                     "p.yaml:6:9: warning: profile 't' (tier tenant) allows OCR.* (OFFCORE_RESPONSE_0) (0x012a): "
                     "it observes the uncore's off-core responses, shared with other tenants" TAIL,
                     "p.yaml:7:9: warning: profile 't' (tier tenant) allows MEM_LOAD_L3_HIT_RETIRED.* (0x01d2): "
                     "it observes the caches and memory that served its loads, shared with other tenants" TAIL);
}

/* The table's own consistency: every entry names a vendor, a resource and
 * a select the filter can express, and each one is reachable (no earlier
 * entry covers all its unit masks). */
static void test_table(void **state) {
        struct host_pmu intel, amd;
        bool reached[64] = {};
        size_t n_reached = 0, last = 0;
        unsigned found = 0;

        assert_int_equal(host_pmu_from_name("intel", &intel), 0);
        assert_int_equal(host_pmu_from_name("amd", &amd), 0);
        for (unsigned select = 0; select <= 0xfff; select++) {
                if (!shared_event_select_known(&intel, select) && !shared_event_select_known(&amd, select)) {
                        assert_null(shared_event_lookup(&intel, select, 0x41));
                        assert_null(shared_event_lookup(&amd, select, 0xff));
                        continue;
                }
                for (unsigned u = 0; u <= 0xff; u++) {
                        const struct shared_event *i = shared_event_lookup(&intel, select, u),
                                                  *a = shared_event_lookup(&amd, select, u);

                        for (size_t k = 0; k < 2; k++) {
                                const struct shared_event *e = k == 0 ? i : a;
                                size_t idx;

                                if (!e)
                                        continue;
                                idx = shared_event_index(e);
                                assert_true(idx < ELEMENTSOF(reached));
                                n_reached += !reached[idx];
                                reached[idx] = true;
                                if (idx > last)
                                        last = idx;
                        }
                        if (i) {
                                assert_int_equal(i->vendor, PMU_VENDOR_INTEL);
                                assert_true(select <= 0xff);
                                assert_true(shared_event_select_known(&intel, select));
                                found |= 1u << i->resource;
                        }
                        if (a) {
                                assert_int_equal(a->vendor, PMU_VENDOR_AMD);
                                found |= 1u << a->resource;
                        }
                }
        }
        assert_int_equal(found, (1u << _SHARED_RESOURCE_MAX) - 1);
        /* --pmu intel and amd: every entry applies, and each is reached */
        assert_int_equal(n_reached, last + 1);
        assert_string_equal(shared_event_lookup(&intel, 0x2e, 0x41)->name, "LONGEST_LAT_CACHE.MISS");
        assert_string_equal(shared_event_lookup(&intel, 0x2e, 0x4f)->name, "LONGEST_LAT_CACHE.REFERENCE");
        assert_string_equal(shared_event_lookup(&intel, 0x2e, 0x42)->name, "LONGEST_LAT_CACHE.*");
        assert_null(shared_event_lookup(&amd, 0x43, 0x01));
        assert_null(shared_event_lookup(&amd, 0x2e, 0x41));
        assert_null(shared_event_lookup(&intel, 0xc0, 0x00));
        assert_false(shared_event_select_known(&intel, 0xc0));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_generic_aliases),
                cmocka_unit_test(test_libpfm_names),
                cmocka_unit_test(test_entry_forms),
                cmocka_unit_test(test_amd),
                cmocka_unit_test(test_trusted_and_pmu_off),
                cmocka_unit_test(test_acknowledged),
                cmocka_unit_test(test_extends),
                cmocka_unit_test(test_generations),
                cmocka_unit_test(test_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
