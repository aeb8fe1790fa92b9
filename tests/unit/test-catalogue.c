/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-catalogue.c — host PMU detection against /proc/cpuinfo, perf's
 * aliases per vendor and generation (independent of the host, through
 * --pmu models), libpfm4 names and the bits the filter cannot express.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fnmatch.h>
#include <inttypes.h>

#include "pmu.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static struct host_pmu model(const char *name) {
        struct host_pmu p;

        assert_int_equal(host_pmu_from_name(name, &p), 0);
        assert_string_equal(p.name, name);
        return p;
}

static void assert_resolves(const struct host_pmu *p, const char *name, uint64_t expected) {
        uint64_t code = 0;
        int r = event_resolve(p, name, &code);

        if (r != 0)
                fail_msg("%s on %s: %s", name, p->name, strerror(-r));
        if (code != expected)
                fail_msg("%s on %s: 0x%" PRIx64 ", expected 0x%" PRIx64, name, p->name, code, expected);
}

static void assert_resolve_fails(const struct host_pmu *p, const char *name, int expected) {
        uint64_t code = 0xdead;

        assert_int_equal(event_resolve(p, name, &code), expected);
        assert_true(code == 0xdead);            /* ret_* untouched on failure */
}

/* The value of "key\t: value" in /proc/cpuinfo's first processor. */
static bool cpuinfo_field(const char *key, char *buf, size_t size) {
        _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
        char line[512];

        if (!f)
                return false;
        while (fgets(line, sizeof(line), f)) {
                const char *v = startswith(line, key);

                if (!v || (*v != ' ' && *v != '\t'))
                        continue;
                v = strchr(v, ':');
                if (!v)
                        continue;
                snprintf(buf, size, "%s", v + 1 + strspn(v + 1, " "));
                buf[strcspn(buf, "\n")] = 0;
                return true;
        }
        return false;
}

static void assert_cpuinfo_matches(const struct host_pmu *p, const char *vendor) {
        char family[16], model_s[16];

        if (streq(vendor, "GenuineIntel"))
                assert_int_equal(p->vendor, PMU_VENDOR_INTEL);
        else if (streq(vendor, "AuthenticAMD") || streq(vendor, "HygonGenuine"))
                assert_int_equal(p->vendor, PMU_VENDOR_AMD);
        else
                assert_int_equal(p->vendor, PMU_VENDOR_UNKNOWN);

        assert_true(cpuinfo_field("cpu family", family, sizeof(family)));
        assert_true(cpuinfo_field("model", model_s, sizeof(model_s)));
        assert_int_equal(p->family, (unsigned) atoi(family));
        assert_int_equal(p->model, (unsigned) atoi(model_s));
}

static void test_host_detect(void **state) {
        struct host_pmu p;
        char vendor[64];

        assert_int_equal(host_pmu_detect(&p), 0);
        if (RUNNING_ON_VALGRIND)
                /* valgrind answers CPUID itself (a Haswell), so the kernel's
                 * view is not what this process sees. */
                print_message("under valgrind: not compared with /proc/cpuinfo\n");
        else if (!cpuinfo_field("vendor_id", vendor, sizeof(vendor)))
                print_message("no vendor_id in /proc/cpuinfo: not compared\n");
        else
                assert_cpuinfo_matches(&p, vendor);

        assert_true(p.name[0] != 0);
        assert_true(p.description[0] != 0);
        if (p.vendor == PMU_VENDOR_AMD) {
                assert_true(p.n_gp == 4 || p.n_gp == 6 || p.version == 2);
                assert_int_equal(fixed_counter_count(&p), 0);
        }
        if (p.vendor == PMU_VENDOR_INTEL)
                assert_true(fixed_counter_count(&p) <= 3);
        /* --pmu accepts what status shows. */
        if (p.vendor != PMU_VENDOR_UNKNOWN) {
                struct host_pmu again;

                assert_int_equal(host_pmu_from_name(p.name, &again), 0);
                assert_int_equal(again.vendor, p.vendor);
        }
        /* Whatever the host, "instructions" is 0x00c0 on x86. */
        if (p.vendor != PMU_VENDOR_UNKNOWN)
                assert_resolves(&p, "instructions", 0x00c0);
        print_message("host: %s %s family 0x%x model 0x%x stepping %u, version %u, %u gp + %u fixed (%s)\n",
                      pmu_vendor_to_string(p.vendor), p.name, p.family, p.model, p.stepping,
                      p.version, p.n_gp, p.n_fixed, p.description);
}

static void test_generic_models(void **state) {
        struct host_pmu intel = model("intel"), amd = model("amd");

        assert_int_equal(intel.vendor, PMU_VENDOR_INTEL);
        assert_int_equal(amd.vendor, PMU_VENDOR_AMD);

        /* intel_perfmon_event_map */
        assert_resolves(&intel, "instructions", 0x00c0);
        assert_resolves(&intel, "cycles", 0x003c);
        assert_resolves(&intel, "cpu-cycles", 0x003c);
        assert_resolves(&intel, "ref-cycles", 0x0300);
        assert_resolves(&intel, "bus-cycles", 0x013c);
        assert_resolves(&intel, "branches", 0x00c4);
        assert_resolves(&intel, "branch-instructions", 0x00c4);
        assert_resolves(&intel, "branch-misses", 0x00c5);
        assert_resolves(&intel, "cache-references", 0x4f2e);
        assert_resolves(&intel, "cache-misses", 0x412e);
        assert_resolve_fails(&intel, "stalled-cycles-frontend", -ENOENT);
        assert_resolve_fails(&intel, "topdown-slots", -ENOENT);  /* v5+ hosts only */

        /* "amd": only what every AMD map agrees on */
        assert_resolves(&amd, "instructions", 0x00c0);
        assert_resolves(&amd, "cycles", 0x0076);
        assert_resolves(&amd, "branches", 0x00c2);
        assert_resolves(&amd, "branch-misses", 0x00c3);
        assert_resolve_fails(&amd, "cache-misses", -ENOENT);
        assert_resolve_fails(&amd, "ref-cycles", -ENOENT);
        assert_resolve_fails(&amd, "bus-cycles", -ENOENT);

        /* Aliases are exact and case-sensitive; generic models know no
         * libpfm4 names. */
        assert_resolve_fails(&intel, "Instructions", -ENOENT);
        assert_resolve_fails(&intel, "INST_RETIRED:ANY_P", -ENOENT);
        assert_resolve_fails(&amd, "RETIRED_INSTRUCTIONS", -ENOENT);
        assert_resolve_fails(&intel, "", -EINVAL);

        struct host_pmu none;
        assert_int_equal(host_pmu_from_name("no-such-pmu", &none), -ENOENT);
        assert_int_equal(host_pmu_from_name("", &none), -ENOENT);

        assert_string_equal(pmu_vendor_to_string(PMU_VENDOR_INTEL), "intel");
        assert_string_equal(pmu_vendor_to_string(PMU_VENDOR_AMD), "amd");
        assert_string_equal(pmu_vendor_to_string(PMU_VENDOR_UNKNOWN), "unknown");
}

static void test_fixed_counters(void **state) {
        struct host_pmu intel = model("intel"), amd = model("amd");
        uint64_t code;

        assert_int_equal(fixed_counter_count(&intel), 3);
        assert_int_equal(fixed_counter_event(&intel, 0, &code), 0);
        assert_int_equal(code, 0x00c0);
        assert_int_equal(fixed_counter_event(&intel, 1, &code), 0);
        assert_int_equal(code, 0x003c);
        assert_int_equal(fixed_counter_event(&intel, 2, &code), 0);
        assert_int_equal(code, 0x0300);
        assert_int_equal(fixed_counter_event(&intel, 3, &code), -ENOENT);

        /* Each fixed counter's event is what its alias resolves to, so
         * fixed_counters: auto follows the profile's events. */
        for (unsigned i = 0; i < 3; i++) {
                uint64_t alias;

                assert_int_equal(fixed_counter_event(&intel, i, &code), 0);
                assert_int_equal(event_resolve(&intel, (const char *[]) { "instructions", "cycles", "ref-cycles" }[i], &alias), 0);
                assert_true(alias == code);
        }

        assert_int_equal(fixed_counter_count(&amd), 0);
        assert_int_equal(fixed_counter_event(&amd, 0, &code), -ENOENT);

        /* A host reporting fewer fixed counters gets fewer. */
        intel.n_fixed = 1;
        assert_int_equal(fixed_counter_count(&intel), 1);
        assert_int_equal(fixed_counter_event(&intel, 1, &code), -ENOENT);
        intel.n_fixed = 4;
        assert_int_equal(fixed_counter_count(&intel), 3);
}

static void test_reverse(void **state) {
        struct host_pmu intel = model("intel"), amd = model("amd");

        assert_string_equal(event_name_for_code(&intel, 0x00c0), "instructions");
        assert_string_equal(event_name_for_code(&intel, 0x003c), "cycles");
        assert_string_equal(event_name_for_code(&intel, 0x0300), "ref-cycles");
        assert_string_equal(event_name_for_code(&amd, 0x0076), "cycles");
        assert_null(event_name_for_code(&intel, 0x0076));
        assert_null(event_name_for_code(&amd, 0x1234));
}

struct collect {
        const char *glob;
        unsigned n, n_generic;
        bool saw[8];
        const char *want[8];
        unsigned stop_after;
};

static int collect(const struct event_info *e, void *userdata) {
        struct collect *c = userdata;

        assert_non_null(e->name);
        if (c->glob)
                assert_int_equal(fnmatch(c->glob, e->name, FNM_CASEFOLD), 0);
        c->n++;
        if (e->generic)
                c->n_generic++;
        for (unsigned i = 0; i < ELEMENTSOF(c->want) && c->want[i]; i++)
                if (streq(e->name, c->want[i]))
                        c->saw[i] = true;
        return c->stop_after && c->n == c->stop_after ? 42 : 0;
}

static void test_foreach_generic(void **state) {
        struct host_pmu intel = model("intel");
        struct collect c = {
                .glob = "*cycles",
                .want = { "cycles", "cpu-cycles", "ref-cycles", "bus-cycles" },
        };

        assert_int_equal(event_foreach(&intel, c.glob, collect, &c), 0);
        assert_int_equal(c.n, 4);
        assert_int_equal(c.n_generic, 4);
        for (unsigned i = 0; i < 4; i++)
                assert_true(c.saw[i]);

        c = (struct collect) { .stop_after = 2 };
        assert_int_equal(event_foreach(&intel, NULL, collect, &c), 42);
        assert_int_equal(c.n, 2);

        c = (struct collect) { .glob = "nothing-matches-*" };
        assert_int_equal(event_foreach(&intel, c.glob, collect, &c), 0);
        assert_int_equal(c.n, 0);
}

/* libpfm4's names, and its --pmu models, exist only when built with it. */
static void require_libpfm(void) {
#if !HAVE_LIBPFM
        print_message("skipped: built without libpfm4\n");
        skip();
#endif
}

/* An AMD host as CPUID describes it (name "amd": built without libpfm4,
 * or a part libpfm4 does not know). */
static struct host_pmu amd_host(unsigned family, unsigned model) {
        return (struct host_pmu) { .vendor = PMU_VENDOR_AMD, .family = family, .model = model, .name = "amd" };
}

static void test_amd_generations(void **state) {
        struct host_pmu k10 = amd_host(0x10, 0x02), zen1 = amd_host(0x17, 0x01),
                        zen2 = amd_host(0x17, 0x31), zen3 = amd_host(0x19, 0x01),
                        zen3_am5 = amd_host(0x19, 0x21), zen4 = amd_host(0x19, 0x11),
                        zen4_mobile = amd_host(0x19, 0x74), zen5 = amd_host(0x1a, 0x02),
                        hygon = amd_host(0x18, 0x01);

        /* amd_perfmon_event_map */
        assert_resolves(&k10, "cache-references", 0x077d);
        assert_resolves(&k10, "stalled-cycles-backend", 0x00d1);
        /* amd_zen1_perfmon_event_map */
        assert_resolves(&zen1, "cache-references", 0xff60);
        assert_resolves(&zen1, "stalled-cycles-frontend", 0x0287);
        assert_resolves(&zen1, "stalled-cycles-backend", 0x0187);
        assert_resolves(&hygon, "stalled-cycles-backend", 0x0187);
        /* amd_zen2_perfmon_event_map: Zen 2 and Zen 3 */
        assert_resolves(&zen2, "stalled-cycles-frontend", 0x00a9);
        assert_resolve_fails(&zen2, "stalled-cycles-backend", -ENOENT);
        assert_resolves(&zen3, "cache-misses", 0x0964);
        assert_resolves(&zen3, "stalled-cycles-frontend", 0x00a9);
        assert_resolve_fails(&zen3, "ref-cycles", -ENOENT);
        assert_resolve_fails(&zen3_am5, "ref-cycles", -ENOENT);
        /* amd_zen4_perfmon_event_map: ref-cycles is PMCx120, select bit 32 */
        assert_resolves(&zen4, "ref-cycles", 0x100000120);
        assert_resolves(&zen4_mobile, "ref-cycles", 0x100000120);
        assert_resolves(&zen5, "ref-cycles", 0x100000120);
        assert_int_equal(event_code_select(0x100000120), 0x120);
        assert_string_equal(event_name_for_code(&zen4, 0x100000120), "ref-cycles");
        /* Intel-only aliases are not AMD's */
        assert_resolve_fails(&zen4, "bus-cycles", -ENOENT);
}

static void test_amd_models(void **state) {
        require_libpfm();
        struct host_pmu zen1 = model("amd64_fam17h_zen1"), zen2 = model("amd64_fam17h_zen2"),
                        zen3 = model("amd64_fam19h_zen3"), zen4 = model("amd64_fam19h_zen4"),
                        k10 = model("amd64_fam10h_barcelona");

        /* --pmu names pick the same maps as the hosts they name */
        assert_int_equal(zen3.vendor, PMU_VENDOR_AMD);
        assert_int_equal(zen3.family, 0x19);
        assert_int_equal(fixed_counter_count(&zen3), 0);
        assert_resolves(&k10, "cache-references", 0x077d);
        assert_resolves(&zen1, "stalled-cycles-backend", 0x0187);
        assert_resolves(&zen2, "stalled-cycles-frontend", 0x00a9);
        assert_resolve_fails(&zen3, "ref-cycles", -ENOENT);
        assert_resolves(&zen4, "ref-cycles", 0x100000120);
        /* libpfm4's name for the same event gives the same word */
        assert_resolves(&zen4, "P0_FREQ_CYCLES_NOT_IN_HALT", 0x100000120);
}

static void test_libpfm_names(void **state) {
        require_libpfm();
        struct host_pmu skx = model("skx"), zen3 = model("amd64_fam19h_zen3");

        assert_int_equal(skx.vendor, PMU_VENDOR_INTEL);
        assert_int_equal(fixed_counter_count(&skx), 3);
        assert_resolves(&skx, "INST_RETIRED:ANY_P", 0x00c0);
        assert_resolves(&skx, "skx::INST_RETIRED:ANY_P", 0x00c0);
        assert_resolves(&skx, "SKX::inst_retired:any_p", 0x00c0);      /* libpfm4 ignores case */
        assert_resolves(&skx, "instructions", 0x00c0);                 /* aliases still first */
        assert_resolves(&zen3, "RETIRED_INSTRUCTIONS", 0x00c0);
        assert_resolves(&zen3, "cycles", 0x0076);

        /* Not this PMU's, or nobody's */
        assert_resolve_fails(&skx, "NO_SUCH_EVENT", -ENOENT);
        assert_resolve_fails(&skx, "INST_RETIRED:NO_SUCH_UMASK", -ENOENT);
        assert_resolve_fails(&skx, "amd64_fam19h_zen3::RETIRED_INSTRUCTIONS", -ENOENT);
        assert_resolve_fails(&zen3, "INST_RETIRED:ANY_P", -ENOENT);

        /* The filter sees select + umask: cmask/inv/edge cannot be expressed. */
        assert_resolve_fails(&skx, "UOPS_ISSUED:STALL_CYCLES", -EINVAL);      /* inv + cmask=1 */
        assert_resolve_fails(&skx, "INST_RETIRED:ANY_P:c=1", -EINVAL);
        assert_resolve_fails(&skx, "INST_RETIRED:ANY_P:e=1:c=1", -EINVAL);
        assert_resolve_fails(&zen3, "RETIRED_INSTRUCTIONS:c=2", -EINVAL);
        assert_resolve_fails(&zen3, "RETIRED_INSTRUCTIONS:i=1:c=1", -EINVAL);
        /* ...but privilege levels are the guest's to choose */
        assert_resolves(&zen3, "RETIRED_INSTRUCTIONS:u=1:k=0", 0x00c0);

        /* Not a core PMU */
        struct host_pmu none;
        assert_int_equal(host_pmu_from_name("perf", &none), -ENOENT);
        assert_int_equal(host_pmu_from_name("amd64_fam19h_zen3_l3", &none), -ENOENT);
}

struct find_extended {
        uint64_t code;
        char name[256];
};

static int find_extended(const struct event_info *e, void *userdata) {
        struct find_extended *x = userdata;

        if (event_code_select(e->code) <= 0xff)
                return 0;
        x->code = e->code;
        snprintf(x->name, sizeof(x->name), "%s", e->name);
        return 1;
}

static void test_amd_extended_select(void **state) {
        require_libpfm();
        struct host_pmu zen3 = model("amd64_fam19h_zen3");
        struct find_extended x = {};
        uint64_t again;

        /* An event with select > 0xff keeps select[11:8] in bits 35:32. */
        assert_resolves(&zen3, "RETIRED_FUSED_INSTRUCTIONS", event_code(0x1d0, 0));
        assert_resolves(&zen3, "RETIRED_FUSED_INSTRUCTIONS", 0x1000000d0);

        /* And the catalogue lists such events with their high bits. */
        assert_int_equal(event_foreach(&zen3, NULL, find_extended, &x), 1);
        assert_true((x.code >> 32 & 0xf) != 0);
        assert_true((x.code & ~(UINT64_C(0xf) << 32 | 0xffff)) == 0);
        assert_int_equal(event_resolve(&zen3, x.name, &again), 0);
        assert_true(again == x.code);
        print_message("zen3: %s = 0x%" PRIx64 " (select 0x%x)\n", x.name, x.code, event_code_select(x.code));
}

static void test_foreach_libpfm(void **state) {
        require_libpfm();
        struct host_pmu zen3 = model("amd64_fam19h_zen3");
        struct collect c = {
                .glob = "retired_instructions*",
                .want = { "RETIRED_INSTRUCTIONS" },
        };
        const char *name;
        uint64_t code;

        assert_int_equal(event_foreach(&zen3, c.glob, collect, &c), 0);
        assert_true(c.saw[0]);
        assert_int_equal(c.n_generic, 0);

        /* Every listed name resolves back to its listed code. */
        c = (struct collect) { .glob = "*" };
        assert_int_equal(event_foreach(&zen3, c.glob, collect, &c), 0);
        assert_true(c.n > c.n_generic + 50);
        print_message("zen3: %u events (%u generic)\n", c.n, c.n_generic);

        /* Reverse lookup finds a libpfm4 name for a code without an alias. */
        assert_int_equal(event_resolve(&zen3, "RETIRED_FUSED_INSTRUCTIONS", &code), 0);
        name = event_name_for_code(&zen3, code);
        assert_non_null(name);
        assert_string_equal(name, "RETIRED_FUSED_INSTRUCTIONS");
        assert_ptr_equal(event_name_for_code(&zen3, code), name);      /* cached */
        assert_null(event_name_for_code(&zen3, 0xffff));
}

static void assert_suggests(const struct host_pmu *p, const char *name, const char *expected) {
        _cleanup_free_ char *best = NULL;

        assert_int_equal(event_suggest(p, name, &best), 0);
        if (!streq_ptr(best, expected))
                fail_msg("%s on %s: suggested %s, expected %s", name, p->name, strna(best), strna(expected));
}

/* "Did you mean": the closest name of the PMU in force, when close (at
 * most 2 edits, less than a third of the length; a swap is one edit). */
static void test_suggest_generic(void **state) {
        struct host_pmu intel = model("intel"), amd = model("amd");

        assert_suggests(&intel, "cylces", "cycles");            /* a swap */
        assert_suggests(&intel, "Cycles", "cycles");            /* aliases keep their case */
        assert_suggests(&intel, "instrutions", "instructions");
        assert_suggests(&intel, "brnch-misses", "branch-misses");
        assert_suggests(&intel, "ref-cycels", "ref-cycles");
        assert_suggests(&intel, "cache-mises", "cache-misses");
        assert_suggests(&intel, "xyzzy", NULL);                 /* nothing close */
        assert_suggests(&intel, "cyc", NULL);                   /* too short to guess */
        assert_suggests(&intel, "cycle", "cycles");
        assert_suggests(&intel, "cylcs", NULL);                 /* 2 edits of 5 letters: a guess */
        assert_suggests(&intel, "cyclesss", "cycles");         /* 2 edits of 8 are fine */
        /* the PMU in force decides: AMD's generic model does not name
         * ref-cycles, and nothing else is close */
        assert_suggests(&amd, "ref-cycels", NULL);
        assert_suggests(&amd, "branchs", "branches");
}

static void test_suggest_libpfm(void **state) {
        require_libpfm();
        struct host_pmu skx = model("skx"), zen3 = model("amd64_fam19h_zen3");

        assert_suggests(&skx, "INST_RETIRD:ANY_P", "INST_RETIRED:ANY_P");
        assert_suggests(&skx, "inst_retired:any_pp", "INST_RETIRED:ANY_P");     /* case ignored */
        assert_suggests(&skx, "skx::INST_RETIRED:ANYP", "skx::INST_RETIRED:ANY_P");
        assert_suggests(&skx, "LONGEST_LAT_CACHE:MISSS", "LONGEST_LAT_CACHE:MISS");
        assert_suggests(&skx, "cylces", "cycles");              /* aliases too */
        assert_suggests(&zen3, "RETIRED_INSTRUCTION", "RETIRED_INSTRUCTIONS");
        assert_suggests(&zen3, "INST_RETIRD:ANY_P", NULL);      /* Intel's name, not this PMU's */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_host_detect),
                cmocka_unit_test(test_generic_models),
                cmocka_unit_test(test_fixed_counters),
                cmocka_unit_test(test_reverse),
                cmocka_unit_test(test_foreach_generic),
                cmocka_unit_test(test_amd_generations),
                cmocka_unit_test(test_amd_models),
                cmocka_unit_test(test_libpfm_names),
                cmocka_unit_test(test_amd_extended_select),
                cmocka_unit_test(test_foreach_libpfm),
                cmocka_unit_test(test_suggest_generic),
                cmocka_unit_test(test_suggest_libpfm),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
