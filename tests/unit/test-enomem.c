/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-enomem.c — allocation failure injection in the loader, the compiler
 * and the daemon's registry.  The N-th allocation fails, for N = 1, 2, 3, …
 * until a run makes fewer than N: every run before that must end in -ENOMEM
 * (or, for a policy that is wrong anyway, its own -EINVAL), never crash,
 * write no output parameter, and leave nothing allocated.
 *
 * The injector is the linker's --wrap (tests/unit/meson.build) on malloc,
 * calloc, realloc, free, strdup, strndup, asprintf, vasprintf and
 * open_memstream: every call the project's own objects make goes through
 * the __wrap_ functions here.  libyaml, libpfm and libsystemd allocate
 * inside their own shared objects, straight from libc, where --wrap cannot
 * reach: those allocations are neither counted nor failed, so this proves
 * the project's own paths only.  Each pointer the project allocates is
 * remembered until it is freed, which is the leak check of every run
 * (valgrind on top catches what libc or the libraries keep).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "compile.h"
#include "kvm.h"
#include "pmu.h"
#include "policy.h"
#include "registry.h"

/* ---- the injector --------------------------------------------------- */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **ret, const char *fmt, va_list ap);
FILE *__real_open_memstream(char **bufp, size_t *sizep);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_vasprintf(char **ret, const char *fmt, va_list ap);
int __wrap_asprintf(char **ret, const char *fmt, ...);
FILE *__wrap_open_memstream(char **bufp, size_t *sizep);

static struct {
        bool armed;             /* count (and fail) allocations now */
        unsigned long count;    /* allocations seen since armed */
        unsigned long fail_at;  /* the one that fails, 1-based */
        bool failed;            /* it did */
} inj;

/* Open addressing over the live pointers the project allocated while armed. */
#define LIVE_SLOTS (1u << 18)
#define TOMBSTONE ((void *) 1)
static void *live[LIVE_SLOTS];
static size_t n_live;

static size_t slot_of(const void *p) {
        uint64_t h = (uint64_t) (uintptr_t) p;

        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        return (size_t) (h & (LIVE_SLOTS - 1));
}

static void live_add(void *p) {
        if (!p || !inj.armed)
                return;
        for (size_t i = slot_of(p), k = 0; k < LIVE_SLOTS; i = (i + 1) & (LIVE_SLOTS - 1), k++)
                if (!live[i] || live[i] == TOMBSTONE) {
                        live[i] = p;
                        n_live++;
                        return;
                }
        abort();        /* the table is sized for far more than any run here */
}

static void live_remove(void *p) {
        if (!p)
                return;
        for (size_t i = slot_of(p), k = 0; k < LIVE_SLOTS && live[i]; i = (i + 1) & (LIVE_SLOTS - 1), k++)
                if (live[i] == p) {
                        live[i] = TOMBSTONE;
                        n_live--;
                        return;
                }
        /* Not ours: allocated before arming, or by libc/libyaml/libsystemd. */
}

static void live_reset(void) {
        memset(live, 0, sizeof(live));
        n_live = 0;
}

/* Should this allocation fail? */
static bool inject(void) {
        if (!inj.armed)
                return false;
        if (++inj.count != inj.fail_at)
                return false;
        inj.failed = true;
        errno = ENOMEM;
        return true;
}

void *__wrap_malloc(size_t size) {
        void *p;

        if (inject())
                return NULL;
        p = __real_malloc(size);
        live_add(p);
        return p;
}

void *__wrap_calloc(size_t n, size_t size) {
        void *p;

        if (inject())
                return NULL;
        p = __real_calloc(n, size);
        live_add(p);
        return p;
}

void *__wrap_realloc(void *p, size_t size) {
        void *q;

        if (inject())
                return NULL;    /* p stays valid and allocated, as realloc does */
        q = __real_realloc(p, size);
        if (q) {
                live_remove(p);
                live_add(q);
        }
        return q;
}

void __wrap_free(void *p) {
        live_remove(p);
        __real_free(p);
}

char *__wrap_strdup(const char *s) {
        char *p;

        if (inject())
                return NULL;
        p = __real_strdup(s);
        live_add(p);
        return p;
}

char *__wrap_strndup(const char *s, size_t n) {
        char *p;

        if (inject())
                return NULL;
        p = __real_strndup(s, n);
        live_add(p);
        return p;
}

int __wrap_vasprintf(char **ret, const char *fmt, va_list ap) {
        int r;

        if (inject())
                return -1;      /* *ret undefined, as glibc leaves it */
        r = __real_vasprintf(ret, fmt, ap);
        if (r >= 0)
                live_add(*ret);
        return r;
}

int __wrap_asprintf(char **ret, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = __wrap_vasprintf(ret, fmt, ap);
        va_end(ap);
        return r;
}

/* Counted and failed, not tracked: libc allocates the buffer on fclose(). */
FILE *__wrap_open_memstream(char **bufp, size_t *sizep) {
        if (inject())
                return NULL;
        return __real_open_memstream(bufp, sizep);
}

static void arm(unsigned long fail_at) {
        live_reset();
        inj = (__typeof__(inj)) { .armed = true, .fail_at = fail_at };
}

static void disarm(void) {
        inj.armed = false;
}

/* The pointers a run left allocated, as a failure message. */
static void assert_nothing_live(const char *what, unsigned long n) {
        if (n_live > 0)
                fail_msg("%s: with allocation %lu failing, %zu of the project's allocations were not freed",
                         what, n, n_live);
}

/* ---- the paths under test ------------------------------------------- */

static struct host_pmu pmu;
static struct kvm_support kvm;
static char *shipped;
static size_t shipped_len;

static int setup(void **state) {
        FILE *f = fopen(SRCDIR "/conf/pmufilterd.yaml", "re");
        long n;

        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        assert_true(n > 0);
        rewind(f);
        shipped = __real_malloc((size_t) n + 1);
        assert_non_null(shipped);
        assert_int_equal(fread(shipped, 1, (size_t) n, f), (size_t) n);
        shipped[n] = 0;
        shipped_len = (size_t) n;
        fclose(f);

        /* The host's PMU names what the shipped policy spells by name. */
        if (host_pmu_detect(&pmu) < 0)
                assert_int_equal(host_pmu_from_name("amd", &pmu), 0);
        if (kvm_support_probe(&kvm) < 0 || !kvm.filter)
                kvm = (struct kvm_support) { .filter = true, .masked = true, .max_events = 300 };
        return 0;
}

static int teardown(void **state) {
        __real_free(shipped);
        return 0;
}

/* Load, validate and compile every profile, as the daemon's reload does.
 * ret_filters (n_profiles of them) only on success. */
static int load_compile(const char *buf, size_t len, struct compiled_filter ***ret_filters, size_t *ret_n) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct compiled_filter **filters = NULL;
        struct diags d = {};
        size_t n = 0;
        int r;

        r = policy_new(&p);
        if (r >= 0)
                r = policy_load_buffer(p, "pmufilterd.yaml", buf, len, &d);
        if (r >= 0)
                r = policy_validate(p, &d);
        if (r >= 0) {
                filters = calloc(p->n_profiles + 1, sizeof(*filters));
                if (!filters)
                        r = -ENOMEM;
        }
        for (; r >= 0 && n < p->n_profiles; n++) {
                struct compiled_filter *f = NULL;

                r = filter_compile(p, p->profiles[n].name, &pmu, &kvm, &f, &d);
                if (r < 0)
                        assert_null(f);         /* ret_* written only on success */
                else
                        filters[n] = f;
        }
        diags_clear(&d);
        if (r < 0) {
                for (size_t i = 0; filters && i < n; i++)
                        compiled_filter_unref(filters[i]);
                free(filters);
                return r;
        }
        *ret_filters = filters;
        *ret_n = n;
        return 0;
}

static void filters_free(struct compiled_filter **f, size_t n) {
        for (size_t i = 0; f && i < n; i++)
                compiled_filter_unref(f[i]);
        free(f);
}

/* Run one path with allocation 1, 2, 3, … failing; expect `error` from
 * each run that had a failure, and the reference result from the first
 * run that had none.  Returns how many allocations a whole run makes. */
static unsigned long sweep_load(const char *buf, size_t len, int error) {
        struct compiled_filter **ref = NULL, **got = NULL;
        size_t n_ref = 0, n_got = 0;
        int r;

        arm(0);
        r = load_compile(buf, len, &ref, &n_ref);
        disarm();
        assert_int_equal(r, error);

        for (unsigned long n = 1;; n++) {
                arm(n);
                r = load_compile(buf, len, &got, &n_got);
                disarm();
                if (!inj.failed) {
                        /* Fewer than n allocations: this run is the whole one. */
                        assert_int_equal(r, error);
                        if (r >= 0) {
                                assert_int_equal(n_got, n_ref);
                                for (size_t i = 0; i < n_got; i++)
                                        assert_true(compiled_filter_equal(got[i], ref[i]));
                                filters_free(got, n_got);
                        }
                        assert_nothing_live("load+compile (no failure)", n);
                        filters_free(ref, n_ref);
                        return n - 1;
                }
                if (r != -ENOMEM && r != error)
                        fail_msg("load+compile: allocation %lu failing gave %d (%s), expected -ENOMEM", n, r,
                                 strerror(-r));
                if (r >= 0)
                        fail_msg("load+compile: allocation %lu failed and the run succeeded all the same", n);
                assert_nothing_live("load+compile", n);
        }
}

static void test_shipped_policy_load_and_compile(void **state) {
        unsigned long n = sweep_load(shipped, shipped_len, 0);

        /* The shipped policy has four profiles and three rules: far more than this. */
        assert_true(n >= 50);
        print_message("shipped policy: %lu allocations, each failed in turn: -ENOMEM, nothing leaked\n", n);
}

/* A policy with mistakes: its error paths allocate diagnostics, and those
 * allocations fail too.  Either its own -EINVAL or -ENOMEM, never more. */
static void test_broken_policy_load(void **state) {
        static const char broken[] =
                "version: 1\n"
                "settings: { default_profile: a }\n"
                "profiles:\n"
                "  a: { extends: b, events: [ instructions ] }\n"
                "  b: { extends: a, tier: tenant }\n"
                "  c: { tier: tenant, events: [ no-such-event ] }\n"
                "rules:\n"
                "  - match: { label.x: y }\n"
                "    profile: nowhere\n";
        unsigned long n = sweep_load(broken, sizeof(broken) - 1, -EINVAL);

        assert_true(n >= 10);
        print_message("broken policy: %lu allocations, each failed in turn: -ENOMEM or -EINVAL, nothing leaked\n", n);
}

/* A tenant tier that allows shared-resource events, some acknowledged:
 * the leak lint's warnings and notes allocate too.  Raw selects of both
 * vendors, so that the host's PMU, Intel or AMD, finds both kinds. */
static void test_leaky_policy_load_and_compile(void **state) {
        static const char leaky[] =
                "version: 1\n"
                "profiles:\n"
                "  base:\n"
                "    tier: tenant\n"
                "    events: [ instructions, { select: 0x2e, umask: 0x41 }, { select: 0x43, umask: 0x08 } ]\n"
                "    acknowledge_shared: [ { select: 0x43, umask: 0x08 }, cache-references ]\n"
                "  child:\n"
                "    extends: base\n"
                "    events: [ { select: 0x2e, umask: 0x4f }, { select: 0x59, umask: 0x08 } ]\n"
                "    acknowledge_shared: [ 0x4f2e ]\n";
        unsigned long n = sweep_load(leaky, sizeof(leaky) - 1, 0);

        assert_true(n >= 20);
        print_message("leaky policy: %lu allocations, each failed in turn: -ENOMEM, nothing leaked\n", n);
}

/* The daemon's registry: add many VMs with their process facts, as
 * manager_vm_detected() does, across several rehashes.  As there, facts
 * that cannot be read for want of memory leave the VM registered without
 * them (have_facts false); a failed registry_add() registers nothing. */
#define REGISTRY_VMS 130         /* past two rehashes (64, 128 buckets) */
#define FACTS_EVERY 32          /* reading /proc is slow; its paths need few VMs */

static int registry_fill(struct registry *reg, unsigned *ret_added, unsigned *ret_without_facts) {
        for (unsigned i = 0; i < REGISTRY_VMS; i++) {
                struct vm *vm = NULL;
                int r;

                r = registry_add(reg, 100000 + (pid_t) i, 10 + (int) i, &vm);
                if (r < 0) {
                        assert_null(vm);        /* ret_* written only on success */
                        return r;
                }
                (*ret_added)++;
                if (i % FACTS_EVERY != 0)
                        continue;
                r = proc_facts_read(getpid(), &vm->facts);
                if (r < 0) {
                        assert_int_equal(r, -ENOMEM);
                        /* Nothing half-read is left behind in the entry. */
                        assert_null(vm->facts.exe);
                        assert_null(vm->facts.comm);
                        assert_null(vm->facts.user);
                        assert_null(vm->facts.cgroup);
                        (*ret_without_facts)++;
                        continue;
                }
                vm->have_facts = true;
        }
        return 0;
}

static void test_registry_add(void **state) {
        unsigned long n;

        for (n = 1;; n++) {
                struct registry reg;
                unsigned added = 0, without_facts = 0, i = 0;
                int r;

                registry_init(&reg);
                arm(n);
                r = registry_fill(&reg, &added, &without_facts);
                disarm();
                if (!inj.failed) {
                        assert_int_equal(r, 0);
                        assert_int_equal(reg.n_vms, REGISTRY_VMS);
                        assert_int_equal(without_facts, 0);
                        registry_done(&reg);
                        assert_nothing_live("registry (no failure)", n);
                        break;
                }
                if (r < 0) {
                        assert_int_equal(r, -ENOMEM);
                        assert_int_equal(without_facts, 0);
                        /* The one that failed is not there. */
                        assert_null(registry_get(&reg, 100000 + (pid_t) added, 10 + (int) added));
                } else {
                        assert_int_equal(added, REGISTRY_VMS);
                        assert_int_equal(without_facts, 1);
                }
                /* The table holds exactly the VMs added, each found by key
                 * and by id, in the order they came. */
                assert_int_equal(reg.n_vms, added);
                REGISTRY_FOREACH(vm, &reg) {
                        assert_int_equal(vm->pid, 100000 + (pid_t) i);
                        assert_ptr_equal(registry_get(&reg, vm->pid, vm->fd), vm);
                        assert_ptr_equal(registry_get_by_id(&reg, vm->id), vm);
                        i++;
                }
                assert_int_equal(i, added);
                registry_done(&reg);
                assert_nothing_live("registry", n);
        }
        print_message("registry: %lu allocations for %d VMs, each failed in turn: -ENOMEM (facts: the VM kept without them), nothing leaked\n",
                      n - 1, REGISTRY_VMS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_shipped_policy_load_and_compile),
                cmocka_unit_test(test_broken_policy_load),
                cmocka_unit_test(test_leaky_policy_load_and_compile),
                cmocka_unit_test(test_registry_add),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
