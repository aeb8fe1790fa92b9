/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-pmu.c — libpfm4 loaded on demand: it is mapped once a libpfm4 name
 * is used, unmapped by pmu_libpfm_release(), loaded again on the next use
 * with the same answers, nothing we return points into it after the
 * release, and a libpfm.so.4 that is not there is a build without libpfm4.
 * Its own process: the maps it reads must be this library's doing alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <inttypes.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "compile.h"
#include "pmu.h"

/* A --pmu model libpfm4 encodes for on any host (LIBPFM_ENCODE_INACTIVE),
 * and an event only libpfm4 names: select 0x1d0, bits 35:32 set. */
#define MODEL "amd64_fam19h_zen3"
#define EVENT "RETIRED_FUSED_INSTRUCTIONS"
#define EVENT_CODE UINT64_C(0x1000000d0)

/* Is libpfm.so mapped into this process?  Its path in *path if so. */
static bool libpfm_mapped(char *path, size_t size) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/maps", "re");
        char line[4096];

        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                const char *p = strchr(line, '/');

                if (!p || !strstr(p, "/libpfm.so"))
                        continue;
                if (path)
                        snprintf(path, size, "%.*s", (int) strcspn(p, "\n"), p);
                return true;
        }
        return false;
}

static void require_libpfm(void) {
#if !HAVE_LIBPFM
        print_message("skipped: built without libpfm4\n");
        skip();
#endif
}

static void test_nothing_loaded_for_aliases(void **state) {
        struct host_pmu amd;
        uint64_t code;

        require_libpfm();
        pmu_libpfm_release();
        assert_false(libpfm_mapped(NULL, 0));

        /* The generic models and their aliases never need libpfm4. */
        assert_int_equal(host_pmu_from_name("amd", &amd), 0);
        assert_int_equal(event_resolve(&amd, "instructions", &code), 0);
        assert_true(code == 0x00c0);
        assert_string_equal(event_name_for_code(&amd, 0x0076), "cycles");
        assert_false(libpfm_mapped(NULL, 0));
}

static void test_release_and_reload(void **state) {
        struct host_pmu zen3, again;
        uint64_t code = 0, code2 = 0;
        char path[4096];

        require_libpfm();
        pmu_libpfm_release();
        assert_false(libpfm_mapped(NULL, 0));

        assert_int_equal(host_pmu_from_name(MODEL, &zen3), 0);
        assert_true(libpfm_mapped(path, sizeof(path)));
        assert_int_equal(event_resolve(&zen3, EVENT, &code), 0);
        assert_true(code == EVENT_CODE);
        print_message("%s mapped after resolving %s\n", path, EVENT);

        pmu_libpfm_release();
        assert_false(libpfm_mapped(NULL, 0));
        /* host_pmu keeps copies of libpfm4's strings, not its pointers. */
        assert_string_equal(zen3.name, MODEL);
        assert_true(zen3.description[0] != 0);

        /* The next use loads it anew, and it knows the same. */
        assert_int_equal(event_resolve(&zen3, EVENT, &code2), 0);
        assert_true(code2 == code);
        assert_true(libpfm_mapped(NULL, 0));
        assert_int_equal(host_pmu_from_name(MODEL, &again), 0);
        assert_memory_equal(&again, &zen3, sizeof(zen3));

        /* Released twice, or when not loaded: nothing to do. */
        pmu_libpfm_release();
        pmu_libpfm_release();
        assert_false(libpfm_mapped(NULL, 0));
}

static void test_host_release(void **state) {
        struct host_pmu host, again;

        require_libpfm();
        pmu_libpfm_release();
        assert_int_equal(host_pmu_detect(&host), 0);
        if (host.vendor == PMU_VENDOR_UNKNOWN) {
                print_message("skipped: not an x86 CPU libpfm4 could name\n");
                skip();
        }
        /* Detection asks libpfm4 for the host's PMU name. */
        assert_true(libpfm_mapped(NULL, 0));
        pmu_libpfm_release();
        assert_false(libpfm_mapped(NULL, 0));
        assert_int_equal(host_pmu_detect(&again), 0);
        assert_string_equal(again.name, host.name);
        assert_string_equal(again.description, host.description);
        pmu_libpfm_release();
        print_message("host PMU %s, detected twice across a release\n", host.name);
}

/* What the daemon keeps from a policy build: the compiled filter. */
static void test_compiled_filter_outlives(void **state) {
        static const char yaml[] =
                "version: 1\n"
                "profiles:\n"
                "  t:\n"
                "    tier: tenant\n"
                "    events: [ instructions, " EVENT " ]\n";
        static const struct kvm_support kvm = { .filter = true, .masked = true, .max_events = 300 };
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct diags d = {};
        struct host_pmu zen3;
        const char *name;

        require_libpfm();
        assert_int_equal(host_pmu_from_name(MODEL, &zen3), 0);
        assert_int_equal(policy_new(&p), 0);
        assert_int_equal(policy_load_buffer(p, "t.yaml", yaml, strlen(yaml), &d), 0);
        assert_int_equal(policy_validate(p, &d), 0);
        assert_int_equal(filter_compile(p, "t", &zen3, &kvm, &f, &d), 0);
        assert_int_equal(d.n_errors, 0);
        diags_clear(&d);
        name = event_name_for_code(&zen3, EVENT_CODE);
        assert_non_null(name);

        pmu_libpfm_release();
        assert_false(libpfm_mapped(NULL, 0));
        /* Read after the unmapping: a pointer into libpfm4 would fault here
         * (or be reported by ASan / valgrind). */
        assert_int_equal(f->nevents, 2);
        assert_string_equal(f->entry_names[0], "instructions");
        assert_string_equal(f->entry_names[1], EVENT);
        assert_string_equal(name, EVENT);
        /* And the reverse lookup answers from its own copy, not loading. */
        assert_ptr_equal(event_name_for_code(&zen3, EVENT_CODE), name);
        assert_false(libpfm_mapped(NULL, 0));
}

/* In a child with libpfm.so.4 not installed (an empty tmpfs over its
 * directory, in a mount namespace of its own: everything else this process
 * needs from there is mapped already), as a build without libpfm4 answers.
 * The PMU is zen4: the parent's reverse lookups, cached and inherited, were
 * zen3's. */
static int run_without_libpfm(const char *dir) {
        struct host_pmu host, zen4 = { .vendor = PMU_VENDOR_AMD, .family = 0x19, .model = 0x11,
                                       .name = "amd64_fam19h_zen4" };
        uint64_t code = 0xdead;

        if (unshare(CLONE_NEWNS) < 0 ||
            mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, NULL) < 0)
                return 77;

        if (host_pmu_from_name("amd64_fam19h_zen4", &host) != -ENOENT) /* --pmu MODEL: unknown */
                return 11;
        if (host_pmu_from_name("amd", &host) != 0)
                return 12;
        if (event_resolve(&zen4, EVENT, &code) != -ENOENT || code != 0xdead)
                return 13;
        if (event_resolve(&zen4, "instructions", &code) != 0 || code != 0x00c0)
                return 14;
        if (event_name_for_code(&zen4, EVENT_CODE))
                return 15;
        if (host_pmu_detect(&host) != 0 || !streq(host.name, pmu_vendor_to_string(host.vendor)))
                return 16;                      /* "amd" / "intel": CPUID only */
        if (libpfm_mapped(NULL, 0))
                return 17;
        pmu_libpfm_release();
        return 0;
}

static void test_library_missing(void **state) {
        char path[4096], real[4096];
        struct host_pmu zen3;
        int status;
        pid_t pid;

        require_libpfm();
        /* The directory dlopen() finds it in, from the maps of a loaded one. */
        assert_int_equal(host_pmu_from_name(MODEL, &zen3), 0);
        assert_true(libpfm_mapped(path, sizeof(path)));
        assert_non_null(realpath(path, real));
        *strrchr(real, '/') = 0;
        pmu_libpfm_release();

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(run_without_libpfm(real));
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77) {
                print_message("skipped: cannot hide %s in a mount namespace (not root?)\n", real);
                skip();
        }
        if (WEXITSTATUS(status) != 0)
                fail_msg("without libpfm4 (%s hidden): exit status %d, expected 0", real, WEXITSTATUS(status));

        /* This process still has it. */
        assert_int_equal(event_resolve(&zen3, EVENT, &(uint64_t) {0}), 0);
        pmu_libpfm_release();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nothing_loaded_for_aliases),
                cmocka_unit_test(test_release_and_reload),
                cmocka_unit_test(test_host_release),
                cmocka_unit_test(test_compiled_filter_outlives),
                cmocka_unit_test(test_library_missing),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
