/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-kernel-diff.c — the compiler against the real kernel: every filter the
 * compiler produces is handed to KVM_SET_PMU_EVENT_FILTER on a VM this test
 * creates and must be accepted; the inputs the compiler refuses for the
 * kernel's own reasons are shown to be refused (or silently dropped) by the
 * kernel too; and every profile of the shipped conf/pmufilterd.yaml goes
 * through the kernel.  Needs /dev/kvm; skips with a reason without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "compile.h"
#include "kvm-compat.h"

struct host {
        int vm_fd;
        struct kvm_support k;
        struct host_pmu pmu;
};

/* Event specs, spelled as a policy would (loc: the case table's own line). */
#define LOC_HERE        .loc = { .file = __FILE__, .line = __LINE__ }
#define P(w)            { .kind = EVENT_RAW, .raw = (w), LOC_HERE }
#define S(s, u)         { .kind = EVENT_SELECT_UMASK, .select = (s), .umask = (u), LOC_HERE }
#define A(s)            { .kind = EVENT_SELECT_ANY, .select = (s), LOC_HERE }
#define M(s, m, v, x)   { .kind = EVENT_MASKED, .select = (s), .mask = (m), .match = (v), .exclude = (x), LOC_HERE }
#define SPECS(...)      (struct event_spec[]) { __VA_ARGS__ }
#define NSPECS(...)     (sizeof(SPECS(__VA_ARGS__)) / sizeof(struct event_spec))
#define EVENTS(...)     .events = SPECS(__VA_ARGS__), .n_events = NSPECS(__VA_ARGS__)
#define PARENT(...)     .parent = SPECS(__VA_ARGS__), .n_parent = NSPECS(__VA_ARGS__)

enum fill {
        FILL_NONE,
        FILL_PLAIN,     /* n distinct select+umask entries */
        FILL_UMASKS,    /* every unit mask of select 0x2e */
        FILL_MASKED,    /* n distinct masked entries */
        FILL_AMD,       /* n distinct masked entries with selects 0x100.. */
        FILL_DUPS,      /* n specs, half of them repeats */
};

struct kcase {
        const char *name;
        enum pmu_vendor vendor;         /* the PMU compiled for */
        enum tier tier;
        struct event_spec *events;
        size_t n_events;
        struct event_spec *parent;      /* events of a parent profile, if any */
        size_t n_parent;
        enum fixed_mode fixed;
        uint32_t fixed_bitmap;
        enum pmu_mode pmu;
        enum fill fill;
        size_t n_fill;
        uint32_t want_nevents;
        bool extended;                  /* uses AMD's select bits 11:8 */
};

#define INTEL PMU_VENDOR_INTEL
#define AMD PMU_VENDOR_AMD
#define TENANT TIER_TENANT
#define TRUSTED TIER_TRUSTED

static const struct kcase cases[] = {
        { "allow one plain", INTEL, TENANT, EVENTS(P(0x00c0)), .want_nevents = 1 },
        { "allow several plain", INTEL, TENANT, EVENTS(P(0x00c0), P(0x003c), P(0x412e), S(0xc4, 0), S(0xc5, 0)),
          .want_nevents = 5 },
        { "deny plain", INTEL, TRUSTED, EVENTS(S(0xb7, 0x01), S(0xbb, 0x01), P(0x01b7)), .want_nevents = 2 },
        { "empty allowlist", INTEL, TENANT, .want_nevents = 0 },
        { "empty denylist", INTEL, TRUSTED, .want_nevents = 0 },
        { "allow, fixed list 0-2", INTEL, TENANT, EVENTS(P(0x00c0)), .fixed = FIXED_LIST, .fixed_bitmap = 0x7,
          .want_nevents = 1 },
        { "deny, fixed list 0", INTEL, TRUSTED, .fixed = FIXED_LIST, .fixed_bitmap = 0x1 },
        { "allow, fixed list all 32 bits", INTEL, TENANT, .fixed = FIXED_LIST, .fixed_bitmap = 0xffffffff },
        { "allow, fixed auto", INTEL, TENANT, EVENTS(P(0x00c0), P(0x003c), P(0x0300)), .fixed = FIXED_AUTO,
          .want_nevents = 3 },
        { "deny, fixed auto", INTEL, TRUSTED, EVENTS(P(0x00c0)), .fixed = FIXED_AUTO, .want_nevents = 1 },
        { "masked include any", INTEL, TENANT, EVENTS(A(0xb7)), .want_nevents = 1 },
        { "masked include mask/match", INTEL, TENANT, EVENTS(M(0xd0, 0xf0, 0x80, false)), .want_nevents = 1 },
        { "masked include + exclude", INTEL, TENANT, EVENTS(A(0xd0), M(0xd0, 0xff, 0x83, true)),
          .want_nevents = 2 },
        { "masked deny + exclude", INTEL, TRUSTED, EVENTS(A(0x2e), M(0x2e, 0xff, 0x41, true)), .want_nevents = 2 },
        { "masked exclude alone", INTEL, TENANT, EVENTS(M(0xd0, 0x00, 0x00, true)), .want_nevents = 1 },
        { "masked that never matches", INTEL, TENANT, EVENTS(M(0xd0, 0x0f, 0x80, false)), .want_nevents = 1 },
        { "mixed allow -> masked", INTEL, TENANT, EVENTS(P(0x00c0), S(0x3c, 0), A(0xb7)), .want_nevents = 3 },
        { "mixed deny -> masked", INTEL, TRUSTED, EVENTS(S(0xb7, 1), M(0xbb, 0xf0, 0x10, false), P(0x412e)),
          .want_nevents = 3 },
        { "max size plain", INTEL, TENANT, .fill = FILL_PLAIN, .n_fill = 300, .want_nevents = 300 },
        { "max size masked", INTEL, TRUSTED, .fill = FILL_MASKED, .n_fill = 300, .want_nevents = 300 },
        { "600 specs deduplicated to 300", INTEL, TENANT, .fill = FILL_DUPS, .n_fill = 600, .want_nevents = 300 },
        { "all 256 umasks of one select", INTEL, TRUSTED, .fill = FILL_UMASKS, .n_fill = 256, .want_nevents = 256 },
        { "pmu off fallback", INTEL, TRUSTED, EVENTS(P(0x00c0), A(0xb7)), .pmu = PMU_OFF, .want_nevents = 0 },
        { "extends: parent then child", INTEL, TENANT, EVENTS(S(0x3c, 0)), PARENT(P(0x00c0)), .want_nevents = 2 },
        { "extends: masked child promotes parent", INTEL, TRUSTED, EVENTS(A(0xb7)), PARENT(P(0x00c0), P(0x412e)),
          .want_nevents = 3 },
        { "AMD plain extended select", AMD, TENANT, EVENTS(S(0x1c0, 0x02), P(0x1000000c0ULL), P(0xf000000ffULL)),
          .want_nevents = 3, .extended = true },
        { "AMD masked extended select", AMD, TENANT, EVENTS(A(0x1c0), M(0xf07, 0x0f, 0x03, true)),
          .want_nevents = 2, .extended = true },
        { "AMD deny extended select", AMD, TRUSTED, EVENTS(M(0x4c0, 0xf0, 0x20, false), S(0x0c0, 0)),
          .want_nevents = 2, .extended = true },
        { "AMD max size extended", AMD, TRUSTED, .fill = FILL_AMD, .n_fill = 300, .want_nevents = 300,
          .extended = true },
        { "AMD fixed auto", AMD, TENANT, EVENTS(P(0x00c0), P(0x0076)), .fixed = FIXED_AUTO, .want_nevents = 2 },
};

static int setup(void **state) {
        struct host *h = calloc(1, sizeof(*h));
        int r;

        if (!h)
                return -1;
        h->vm_fd = -1;
        assert_int_equal(kvm_support_probe(&h->k), 0);
        assert_int_equal(host_pmu_detect(&h->pmu), 0);
        if (h->k.open_error == 0 && h->k.filter) {
                r = kvm_create_vm(-1);
                if (r < 0)
                        print_message("kvm_create_vm: %s\n", strerror(-r));
                h->vm_fd = r;
        }
        if (h->vm_fd >= 0 && h->k.masked) {
                /* Does this KVM compare select bits 35:32?  kvm_amd does;
                 * kvm_intel, and kvm_pvm even on an AMD CPU, do not. */
                uint64_t w = KVM_PMU_ENCODE_MASKED_ENTRY(0x1c0ULL, 0ULL, 0ULL, 0);
                bool wide = kvm_set_pmu_event_filter(h->vm_fd, KVM_PMU_EVENT_ALLOW,
                                                     KVM_PMU_EVENT_FLAG_MASKED_EVENTS, 0, &w, 1) == 0;

                if (h->k.narrow_select && wide)
                        return -1;      /* the library's probe and the kernel disagree */
                h->k.narrow_select = !wide;
                print_message("this KVM compares event-select bits %s\n", wide ? "11:0" : "7:0 only");
        }
        *state = h;
        return 0;
}

static int teardown(void **state) {
        struct host *h = *state;

        safe_close(h->vm_fd);
        free(h);
        return 0;
}

/* Skip, with the reason printed, where the kernel cannot be asked. */
static struct host *need_kvm(void **state) {
        struct host *h = *state;

        if (h->k.open_error < 0) {
                print_message("SKIP: cannot open /dev/kvm: %s\n", strerror(-h->k.open_error));
                skip();
        }
        if (!h->k.filter) {
                print_message("SKIP: KVM lacks KVM_CAP_PMU_EVENT_FILTER\n");
                skip();
        }
        if (h->vm_fd < 0) {
                print_message("SKIP: cannot create a VM: %s\n", strerror(-h->vm_fd));
                skip();
        }
        return h;
}

static int push(const struct host *h, const struct compiled_filter *f) {
        return kvm_set_pmu_event_filter(h->vm_fd, f->action, f->flags, f->fixed_counter_bitmap,
                                        f->events, f->nevents);
}

static void fill_specs(const struct kcase *c, struct event_spec *v) {
        for (size_t i = 0; i < c->n_fill; i++) {
                size_t j = c->fill == FILL_DUPS ? i / 2 : i;

                switch (c->fill) {
                case FILL_PLAIN:
                case FILL_DUPS:
                        v[i] = (struct event_spec) { .kind = EVENT_SELECT_UMASK,
                                                     .select = j & 0xff, .umask = j >> 8 };
                        break;
                case FILL_UMASKS:
                        v[i] = (struct event_spec) { .kind = EVENT_SELECT_UMASK,
                                                     .select = 0x2e, .umask = j };
                        break;
                case FILL_MASKED:
                        v[i] = (struct event_spec) { .kind = EVENT_MASKED, .select = j & 0xff,
                                                     .mask = 0xff, .match = j >> 8 };
                        break;
                case FILL_AMD:
                        v[i] = (struct event_spec) { .kind = EVENT_MASKED, .select = 0x100 + j,
                                                     .mask = 0xf0, .match = 0x10 };
                        break;
                default:
                        break;
                }
        }
}

/* Compile one case: 0 and *ret, or the compiler's error. */
static int compile_case(const struct kcase *c, const struct kvm_support *k, struct compiled_filter **ret,
                        struct diags *d) {
        _cleanup_free_ struct event_spec *filled = NULL;
        struct host_pmu pmu = {
                .vendor = c->vendor,
                .n_fixed = c->vendor == INTEL ? 3 : 0,
        };
        struct profile pr[2] = {
                {
                        .name = (char *) "case",
                        .tier = c->tier,
                        .events = c->events,
                        .n_events = c->n_events,
                        .fixed_mode = c->fixed,
                        .fixed_bitmap = c->fixed_bitmap,
                        .pmu = c->pmu,
                },
                { .name = (char *) "parent", .tier = c->tier, .events = c->parent, .n_events = c->n_parent },
        };
        struct policy p = { .profiles = pr, .n_profiles = c->parent ? 2 : 1 };

        snprintf(pmu.name, sizeof(pmu.name), "%s", pmu_vendor_to_string(c->vendor));
        if (c->parent) {
                pr[0].extends = (char *) "parent";
                pr[0].tier = TIER_UNSET;
        }
        if (c->fill != FILL_NONE) {
                filled = calloc(c->n_fill, sizeof(*filled));
                assert_non_null(filled);
                fill_specs(c, filled);
                pr[0].events = filled;
                pr[0].n_events = c->n_fill;
        }
        return filter_compile(&p, "case", &pmu, k, ret, d);
}

static bool case_needs_masked(const struct kcase *c) {
        if (c->fill == FILL_MASKED || c->fill == FILL_AMD)
                return true;
        for (size_t i = 0; i < c->n_events; i++)
                if (c->events[i].kind == EVENT_SELECT_ANY || c->events[i].kind == EVENT_MASKED)
                        return true;
        return false;
}

/* An extended-select case on a KVM that compares bits 7:0 only: the
 * compiler refuses it, and the bytes it would have made for a kvm_amd host
 * are refused (masked) or silently dropped (plain) by this kernel. */
static void narrow_case(const struct host *h, const struct kcase *c) {
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        struct kvm_support wide = h->k;
        struct diags d = {};
        int r;

        assert_int_equal(compile_case(c, &h->k, &f, &d), -EINVAL);
        assert_non_null(strstr(d.v[0].message, "does not compare"));
        diags_clear(&d);
        wide.narrow_select = false;
        assert_int_equal(compile_case(c, &wide, &f, &d), 0);
        r = push(h, f);
        if (f->flags & KVM_PMU_EVENT_FLAG_MASKED_EVENTS)
                assert_int_equal(r, -EINVAL);
        else
                assert_int_equal(r, 0);
        print_message("'%s': refused by the compiler; the kernel %s\n", c->name,
                      r < 0 ? "refuses it too" : "accepts it and drops the entries silently");
}

static void test_compiled_filters_accepted(void **state) {
        struct host *h = need_kvm(state);
        unsigned ran = 0;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct kcase *c = &cases[i];
                _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
                struct diags d = {};
                int r;

                if (c->extended && h->k.narrow_select) {
                        narrow_case(h, c);
                        ran++;
                        continue;
                }
                if (case_needs_masked(c) && !h->k.masked) {
                        print_message("skip '%s': the kernel lacks masked events\n", c->name);
                        continue;
                }
                r = compile_case(c, &h->k, &f, &d);
                if (r < 0) {
                        diags_print(&d, stderr);
                        fail_msg("case '%s' does not compile: %s", c->name, strerror(-r));
                }
                diags_clear(&d);
                assert_int_equal(f->nevents, c->want_nevents);
                r = push(h, f);
                if (r != 0)
                        fail_msg("case '%s': KVM_SET_PMU_EVENT_FILTER failed: %s", c->name, strerror(-r));
                ran++;
        }
        print_message("%u of %zu cases agree with the kernel\n", ran, ELEMENTSOF(cases));
        assert_true(ran >= 25);
}

static void test_lockdown_accepted(void **state) {
        struct host *h = need_kvm(state);
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;

        assert_int_equal(filter_lockdown("lockdown", &f), 0);
        assert_int_equal(push(h, f), 0);
}

/* The refusals the compiler makes for the kernel's reasons, side by side
 * with what the kernel does given the same thing directly. */
static void test_kernel_refuses_what_compiler_refuses(void **state) {
        struct host *h = need_kvm(state);
        unsigned max = h->k.max_events ? h->k.max_events : KVM_PMU_FILTER_MAX_EVENTS_DEFAULT;
        _cleanup_free_ uint64_t *many = calloc(max + 1, sizeof(uint64_t));
        struct kcase too_many = { "too many", INTEL, TENANT, .fill = FILL_PLAIN, .n_fill = max + 1 };
        struct kcase stray = { "stray bits", INTEL, TENANT, EVENTS(P(0xc0 | 1ULL << 20)) };
        struct kcase amd_on_intel = { "AMD bits on Intel", INTEL, TENANT, EVENTS(A(0x1c0)) };
        struct compiled_filter *f = NULL;
        struct diags d = {};
        uint64_t w;
        int r;

        assert_non_null(many);
        for (unsigned i = 0; i <= max; i++)
                many[i] = event_code(i & 0xff, i >> 8);

        /* nevents = max + 1 */
        assert_int_equal(compile_case(&too_many, &h->k, &f, &d), -EINVAL);
        assert_non_null(strstr(d.v[0].message, "the kernel accepts at most"));
        diags_clear(&d);
        assert_int_equal(kvm_set_pmu_event_filter(h->vm_fd, KVM_PMU_EVENT_ALLOW, 0, 0, many, max + 1), -E2BIG);
        assert_int_equal(kvm_set_pmu_event_filter(h->vm_fd, KVM_PMU_EVENT_ALLOW, 0, 0, many, max), 0);

        /* a bit outside select/umask (bit 20, INT): in masked form refused;
         * in plain form accepted and the entry silently dropped */
        assert_int_equal(compile_case(&stray, &h->k, &f, &d), -EINVAL);
        diags_clear(&d);
        w = 0xc0 | 1ULL << 20;
        assert_int_equal(kvm_set_pmu_event_filter(h->vm_fd, KVM_PMU_EVENT_ALLOW,
                                                  KVM_PMU_EVENT_FLAG_MASKED_EVENTS, 0, &w, 1), -EINVAL);
        assert_int_equal(kvm_set_pmu_event_filter(h->vm_fd, KVM_PMU_EVENT_ALLOW, 0, 0, &w, 1), 0);
        w = KVM_PMU_ENCODE_MASKED_ENTRY(0xc0ULL, 0xffULL, 0ULL, 0) | 1ULL << 40;
        assert_int_equal(kvm_set_pmu_event_filter(h->vm_fd, KVM_PMU_EVENT_DENY,
                                                  KVM_PMU_EVENT_FLAG_MASKED_EVENTS, 0, &w, 1), -EINVAL);

        /* select bits 35:32: refused for an Intel PMU, and by a KVM whose
         * event-select mask is 7:0 (setup() asked this kernel) */
        assert_int_equal(compile_case(&amd_on_intel, &h->k, &f, &d), -EINVAL);
        diags_clear(&d);
        amd_on_intel.vendor = AMD;
        r = compile_case(&amd_on_intel, &h->k, &f, &d);
        diags_clear(&d);
        compiled_filter_unref(TAKE_PTR(f));
        w = KVM_PMU_ENCODE_MASKED_ENTRY(0x1c0ULL, 0ULL, 0ULL, 0);
        assert_int_equal(kvm_set_pmu_event_filter(h->vm_fd, KVM_PMU_EVENT_ALLOW,
                                                  KVM_PMU_EVENT_FLAG_MASKED_EVENTS, 0, &w, 1), r);

        /* invalid action, unknown flag */
        w = 0x00c0;
        assert_int_equal(kvm_set_pmu_event_filter(h->vm_fd, KVM_PMU_EVENT_DENY + 1, 0, 0, &w, 1), -EINVAL);
        assert_int_equal(kvm_set_pmu_event_filter(h->vm_fd, KVM_PMU_EVENT_ALLOW,
                                                  KVM_PMU_EVENT_FLAGS_VALID_MASK << 1, 0, &w, 1), -EINVAL);
        assert_null(f);
}

/* The kernel sorts a private copy; the order we hand it does not matter to
 * it (we sort anyway, for byte-stable output). */
static void test_kernel_takes_unsorted(void **state) {
        struct host *h = need_kvm(state);
        uint64_t w[] = { 0x412e, 0x00c0, 0x003c, 0x00c0 };

        assert_int_equal(kvm_set_pmu_event_filter(h->vm_fd, KVM_PMU_EVENT_ALLOW, 0, 0, w, ELEMENTSOF(w)), 0);
}

static void test_shipped_config(void **state) {
        struct host *h = need_kvm(state);
        _cleanup_(policy_freep) struct policy *p = NULL;
        const char *path = SRCDIR "/conf/pmufilterd.yaml";
        struct diags d = {};
        uint64_t code;
        int r;

        if (access(path, R_OK) < 0) {
                print_message("SKIP: %s: %s\n", path, strerror(errno));
                skip();
        }
        if (event_resolve(&h->pmu, "instructions", &code) == -ENOSYS) {
                print_message("SKIP: the event catalogue is still a stub\n");
                skip();
        }
        r = policy_load_files(path, &p, &d);
        if (r == -ENOSYS) {
                print_message("SKIP: the policy loader is still a stub\n");
                skip();
        }
        if (r < 0)
                diags_print(&d, stderr);
        assert_int_equal(r, 0);
        diags_clear(&d);

        for (size_t i = 0; i < p->n_profiles; i++) {
                _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;

                r = filter_compile(p, p->profiles[i].name, &h->pmu, &h->k, &f, &d);
                diags_print(&d, stderr);        /* warnings too: what was skipped here */
                diags_clear(&d);
                if (r < 0)
                        fail_msg("profile '%s' does not compile for this host", p->profiles[i].name);
                r = push(h, f);
                if (r != 0)
                        fail_msg("profile '%s': KVM_SET_PMU_EVENT_FILTER failed: %s",
                                 p->profiles[i].name, strerror(-r));
                print_message("profile '%s': %u entries, accepted\n", p->profiles[i].name, f->nevents);
        }
        assert_true(p->n_profiles > 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_compiled_filters_accepted),
                cmocka_unit_test(test_lockdown_accepted),
                cmocka_unit_test(test_kernel_refuses_what_compiler_refuses),
                cmocka_unit_test(test_kernel_takes_unsorted),
                cmocka_unit_test(test_shipped_config),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
