/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-policy-load.c — the YAML loader against pmufilterd.yaml(5): every
 * settings key, every event form, profiles, rules with every match key,
 * merging of several files, and each error with its exact file:line:column
 * text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "policy.h"

/* Load one buffer named t.yaml into a fresh policy; it must succeed. */
static struct policy *load_ok(const char *yaml) {
        struct policy *p = NULL;
        struct diags d = {};
        int r;

        assert_int_equal(policy_new(&p), 0);
        r = policy_load_buffer(p, "t.yaml", yaml, strlen(yaml), &d);
        if (r < 0)
                diags_print(&d, stderr);
        assert_int_equal(r, 0);
        assert_int_equal(d.n_errors, 0);
        diags_clear(&d);
        return p;
}

/* Load one buffer; it must fail with exactly this first error. */
static void expect_error(const char *yaml, const char *message) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        _cleanup_free_ char *first = NULL;
        struct diags d = {};

        assert_int_equal(policy_new(&p), 0);
        assert_int_equal(policy_load_buffer(p, "t.yaml", yaml, strlen(yaml), &d), -EINVAL);
        first = diags_first_error(&d);
        assert_non_null(first);
        assert_string_equal(first, message);
        diags_clear(&d);
}

/* Load one buffer and validate what loaded: it must fail with exactly
 * these errors, in this order (a NULL-terminated list), nothing more. */
static void expect_errors(const char *yaml, ...) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct diags d = {};
        size_t n = 0;
        va_list ap;

        assert_int_equal(policy_new(&p), 0);
        assert_int_equal(policy_load_buffer(p, "t.yaml", yaml, strlen(yaml), &d), -EINVAL);
        assert_true(policy_validate(p, &d) == 0 || d.n_errors > 0);
        va_start(ap, yaml);
        for (size_t i = 0; i < d.n; i++) {
                _cleanup_free_ char *s = NULL;
                const char *want;

                if (d.v[i].level != DIAG_ERROR)
                        continue;
                assert_true(asprintf(&s, "%s:%u:%u: error: %s", d.v[i].file, d.v[i].line, d.v[i].column,
                                     d.v[i].message) > 0);
                want = va_arg(ap, const char *);
                if (!want)
                        fail_msg("unexpected error %zu: %s", n + 1, s);
                assert_string_equal(s, want);
                n++;
        }
        if (va_arg(ap, const char *))
                fail_msg("only %zu errors", n);
        va_end(ap);
        diags_clear(&d);
}

static void assert_loc(const struct srcloc *loc, unsigned line, unsigned column) {
        assert_string_equal(loc->file, "t.yaml");
        assert_int_equal(loc->line, line);
        assert_int_equal(loc->column, column);
}

static void test_defaults(void **state) {
        _cleanup_(policy_freep) struct policy *p = NULL;

        assert_int_equal(policy_new(&p), 0);
        assert_string_equal(p->settings.socket, "/run/pmufilterd/vmm.sock");
        assert_int_equal(p->settings.attach_timeout_ms, 2000);
        assert_int_equal(p->settings.adopt, ADOPT_NONE);
        assert_int_equal(p->settings.unmanaged, UNMANAGED_WARN);
        assert_null(p->settings.default_profile);
        assert_int_equal(p->n_profiles, 0);
        assert_int_equal(p->n_rules, 0);
        assert_null(p->files);
}

static void test_settings(void **state) {
        _cleanup_(policy_freep) struct policy *p = load_ok(
                "version: 1\n"
                "settings:\n"
                "  socket: /run/x/vmm.sock\n"
                "  attach_timeout_ms: 3600000\n"
                "  adopt: ptrace\n"
                "  unmanaged: kill\n"
                "  default_profile: t\n");

        assert_string_equal(p->settings.socket, "/run/x/vmm.sock");
        assert_int_equal(p->settings.attach_timeout_ms, 3600000);
        assert_int_equal(p->settings.adopt, ADOPT_PTRACE);
        assert_int_equal(p->settings.unmanaged, UNMANAGED_KILL);
        assert_string_equal(p->settings.default_profile, "t");
        assert_loc(&p->settings.default_profile_loc, 7, 20);
        assert_string_equal(p->files[0], "t.yaml");
        assert_ptr_equal(p->settings.default_profile_loc.file, p->files[0]);
}

static void test_settings_errors(void **state) {
        expect_error("settings:\n  socket: run/x.sock\n",
                     "t.yaml:2:11: error: socket: expected an absolute path of at most 107 bytes, got 'run/x.sock'");
        expect_error("settings:\n  attach_timeout_ms: 0\n",
                     "t.yaml:2:22: error: attach_timeout_ms: expected an integer 1-3600000, got '0'");
        expect_error("settings:\n  attach_timeout_ms: 3600001\n",
                     "t.yaml:2:22: error: attach_timeout_ms: expected an integer 1-3600000, got '3600001'");
        expect_error("settings:\n  attach_timeout_ms: \"2000\"\n",
                     "t.yaml:2:22: error: attach_timeout_ms: expected an integer 1-3600000, got '2000'");
        expect_error("settings:\n  adopt: yes\n",
                     "t.yaml:2:10: error: adopt: expected none or ptrace, got 'yes'");
        expect_error("settings:\n  unmanaged: [warn]\n",
                     "t.yaml:2:14: error: unmanaged: expected warn or kill, got a sequence");
        expect_error("settings:\n  default_profile:\n",
                     "t.yaml:2:19: error: default_profile: expected a profile name (letters, digits, '_', '.', '-'; at most 64), "
                     "got an empty value");
        expect_error("settings: [a]\n",
                     "t.yaml:1:11: error: settings: expected a mapping, got a sequence");
        expect_error("version: 2\n", "t.yaml:1:10: error: version: expected 1, got '2'");
}

/* Later files override settings keys they name and keep the others. */
static void test_settings_override(void **state) {
        _cleanup_(policy_freep) struct policy *p = load_ok(
                "settings:\n  socket: /a.sock\n  adopt: ptrace\n  default_profile: x\n");
        struct diags d = {};
        const char *frag = "settings:\n  socket: /b.sock\n  default_profile: y\n";

        assert_int_equal(policy_load_buffer(p, "conf.d/10.yaml", frag, strlen(frag), &d), 0);
        assert_string_equal(p->settings.socket, "/b.sock");
        assert_int_equal(p->settings.adopt, ADOPT_PTRACE);
        assert_string_equal(p->settings.default_profile, "y");
        assert_string_equal(p->settings.default_profile_loc.file, "conf.d/10.yaml");
        assert_int_equal(strv_length(p->files), 2);
        assert_int_equal(d.n, 0);
}

static void test_event_forms(void **state) {
        _cleanup_(policy_freep) struct policy *p = load_ok(
                "profiles:\n"
                "  t:\n"
                "    tier: trusted\n"
                "    optional: [ INST_RETIRED:ANY_P ]\n"
                "    events:\n"
                "      - branch-misses\n"
                "      - 0x00c0\n"
                "      - 196\n"
                "      - 0xF0000FFFF\n"
                "      - { select: 0xc4, umask: 0x00 }\n"
                "      - { select: 0xb7, umask: any }\n"
                "      - { select: 0x1d0, mask: 0xf0, match: 0x80 }\n"
                "      - { select: 0xd0, mask: 255, match: 1, exclude: true }\n"
                "      - { select: 0xfff, mask: 0, match: 0, exclude: false }\n");
        const struct profile *t = policy_find_profile(p, "t");
        const struct event_spec *e;

        assert_non_null(t);
        assert_int_equal(t->n_events, 10);
        e = t->events;
        assert_int_equal(e[0].kind, EVENT_NAME);
        assert_string_equal(e[0].name, "branch-misses");
        assert_false(e[0].optional);
        assert_loc(&e[0].loc, 6, 9);
        assert_int_equal(e[1].kind, EVENT_RAW);
        assert_int_equal(e[1].raw, 0xc0);
        assert_int_equal(e[2].kind, EVENT_RAW);
        assert_int_equal(e[2].raw, 196);
        assert_int_equal(e[3].raw, 0xF0000FFFFULL);
        assert_int_equal(e[4].kind, EVENT_SELECT_UMASK);
        assert_int_equal(e[4].select, 0xc4);
        assert_int_equal(e[4].umask, 0);
        assert_loc(&e[4].loc, 10, 9);
        assert_int_equal(e[5].kind, EVENT_SELECT_ANY);
        assert_int_equal(e[5].select, 0xb7);
        assert_int_equal(e[6].kind, EVENT_MASKED);
        assert_int_equal(e[6].select, 0x1d0);
        assert_int_equal(e[6].mask, 0xf0);
        assert_int_equal(e[6].match, 0x80);
        assert_false(e[6].exclude);
        assert_int_equal(e[7].kind, EVENT_MASKED);
        assert_int_equal(e[7].mask, 255);
        assert_int_equal(e[7].match, 1);
        assert_true(e[7].exclude);
        assert_false(e[8].exclude);
        assert_int_equal(e[8].select, 0xfff);
        /* optional: comes after events: whatever the order in the file */
        assert_int_equal(e[9].kind, EVENT_NAME);
        assert_string_equal(e[9].name, "INST_RETIRED:ANY_P");
        assert_true(e[9].optional);
        assert_loc(&e[9].loc, 4, 17);
}

#define EVENT_YAML(ev) "profiles:\n  t:\n    events:\n      - " ev "\n"

static void test_event_errors(void **state) {
        expect_error(EVENT_YAML("{ select: 0xc4, umsk: 1 }"),
                     "t.yaml:4:25: error: event: expected 'umask' (0-255 or 'any') or 'mask'+'match', got key 'umsk'; "
                     "did you mean 'umask'?");
        expect_error(EVENT_YAML("{ umask: 1 }"),
                     "t.yaml:4:9: error: event: expected 'select' (0-0xfff) with 'umask' (0-255 or 'any') or 'mask'+'match'");
        expect_error(EVENT_YAML("{ select: 0x1000, umask: 1 }"),
                     "t.yaml:4:19: error: select: expected an integer 0-0xfff, got '0x1000'");
        expect_error(EVENT_YAML("{ select: 1, umask: 1, mask: 1, match: 1 }"),
                     "t.yaml:4:32: error: event: expected 'umask' (0-255 or 'any') or 'mask'+'match', got both 'umask' and 'mask'");
        expect_error(EVENT_YAML("{ select: 1, umask: 256 }"),
                     "t.yaml:4:29: error: umask: expected an integer 0-255 or 'any', got '256'");
        expect_error(EVENT_YAML("{ select: 1, umask: all }"),
                     "t.yaml:4:29: error: umask: expected an integer 0-255 or 'any', got 'all'");
        expect_error(EVENT_YAML("{ select: 1, umask: 1, exclude: true }"),
                     "t.yaml:4:32: error: event: 'exclude' goes with 'mask', not with 'umask'");
        expect_error(EVENT_YAML("{ select: 1 }"),
                     "t.yaml:4:9: error: event: expected 'umask' (0-255 or 'any') or 'mask'+'match' beside 'select'");
        expect_error(EVENT_YAML("{ select: 1, mask: 1 }"),
                     "t.yaml:4:9: error: event: expected 'umask' (0-255 or 'any') or 'mask'+'match' beside 'select', "
                     "got 'mask' without 'match'");
        expect_error(EVENT_YAML("{ select: 1, mask: 1, match: 0x100 }"),
                     "t.yaml:4:38: error: match: expected an integer 0-255, got '0x100'");
        expect_error(EVENT_YAML("{ select: 1, mask: 1, match: 1, exclude: yes }"),
                     "t.yaml:4:50: error: exclude: expected true or false, got 'yes'");
        expect_error(EVENT_YAML("0x100000"),
                     "t.yaml:4:9: error: raw event 0x100000 has bits outside event select and unit mask "
                     "(expected bits 0-15 and 32-35)");
        expect_error(EVENT_YAML("0x1000000000"),
                     "t.yaml:4:9: error: raw event 0x1000000000 has bits outside event select and unit mask "
                     "(expected bits 0-15 and 32-35)");
        expect_error(EVENT_YAML("99999999999999999999"),
                     "t.yaml:4:9: error: event: raw event '99999999999999999999' does not fit in 64 bits");
        expect_error(EVENT_YAML("0x1g"),
                     "t.yaml:4:9: error: event: expected a raw event (decimal or 0x hex), got '0x1g'");
        expect_error(EVENT_YAML("\"cycles please\""),
                     "t.yaml:4:9: error: event: expected an event name (letters, digits, '_', ':', '.', '-'; at most 256), "
                     "got 'cycles please'");
        expect_error(EVENT_YAML("[ cycles ]"),
                     "t.yaml:4:9: error: event: expected an event name, a raw number or a mapping with 'select', "
                     "got a sequence");
        expect_error(EVENT_YAML(""),
                     "t.yaml:4:8: error: event: expected an event name, a raw number or a mapping with 'select', "
                     "got an empty value");
        expect_error("profiles:\n  t:\n    events: cycles\n",
                     "t.yaml:3:13: error: events: expected a sequence, got 'cycles'");
        expect_error("profiles:\n  t:\n    optional: { a: 1 }\n",
                     "t.yaml:3:15: error: optional: expected a sequence, got a mapping");
}

/* perf's spellings: rNNN is the raw word of the number form, and
 * cpu/event=S,umask=U/ the { select, umask } form; the spelling is kept. */
static void test_perf_spellings(void **state) {
        _cleanup_(policy_freep) struct policy *p = load_ok(
                "profiles:\n"
                "  t:\n"
                "    tier: trusted\n"
                "    events:\n"
                "      - r412e\n"
                "      - r100000120\n"
                "      - \"r00c0\"\n"
                "      - cpu/event=0x2e,umask=0x41/\n"
                "      - cpu/event=0x2e,umask=0x41,name=llc-misses/\n"
                "      - cpu/umask=65,event=46/\n"
                "      - cpu/event=0x120/\n"
                "    optional: [ \"cpu/name=x,event=0xc0,umask=0/\", ref-cycles ]\n");
        const struct event_spec *e = policy_find_profile(p, "t")->events;

        assert_int_equal(policy_find_profile(p, "t")->n_events, 9);
        assert_int_equal(e[0].kind, EVENT_RAW);
        assert_true(e[0].raw == 0x412e);
        assert_string_equal(e[0].name, "r412e");
        assert_int_equal(e[1].kind, EVENT_RAW);
        assert_true(e[1].raw == UINT64_C(0x100000120));
        assert_int_equal(e[2].kind, EVENT_RAW);
        assert_true(e[2].raw == 0xc0);
        for (size_t i = 3; i <= 5; i++) {
                assert_int_equal(e[i].kind, EVENT_SELECT_UMASK);
                assert_int_equal(e[i].select, 0x2e);
                assert_int_equal(e[i].umask, 0x41);
        }
        assert_string_equal(e[4].name, "cpu/event=0x2e,umask=0x41,name=llc-misses/");
        assert_loc(&e[4].loc, 9, 9);
        assert_int_equal(e[6].kind, EVENT_SELECT_UMASK);
        assert_int_equal(e[6].select, 0x120);
        assert_int_equal(e[6].umask, 0);
        assert_int_equal(e[7].kind, EVENT_SELECT_UMASK);
        assert_true(e[7].optional);
        assert_int_equal(e[7].select, 0xc0);
        /* ref-cycles: a name starting with r, not hex */
        assert_int_equal(e[8].kind, EVENT_NAME);
        assert_string_equal(e[8].name, "ref-cycles");

        expect_error(EVENT_YAML("r1d3c0412e"),
                     "t.yaml:4:9: error: event: raw event 'r1d3c0412e' sets en (bit 22), inv (bit 23), cmask (bits 24-31), "
                     "which KVM's filter does not compare (only the event select and unit mask: bits 0-15 and 32-35)");
        expect_error(EVENT_YAML("r4412e"),
                     "t.yaml:4:9: error: event: raw event 'r4412e' sets edge (bit 18), which KVM's filter does not compare "
                     "(only the event select and unit mask: bits 0-15 and 32-35)");
        expect_error(EVENT_YAML("r1000000000c0"),
                     "t.yaml:4:9: error: event: raw event 'r1000000000c0' sets bits 36-63, which KVM's filter does not "
                     "compare (only the event select and unit mask: bits 0-15 and 32-35)");
        expect_error(EVENT_YAML("r10000000000000000"),
                     "t.yaml:4:9: error: event: raw event 'r10000000000000000' does not fit in 64 bits");
        expect_error(EVENT_YAML("cpu/event=0x2e,umask=0x41,cmask=1/"),
                     "t.yaml:4:9: error: event: 'cpu/event=0x2e,umask=0x41,cmask=1/': term 'cmask' cannot be filtered: "
                     "KVM's filter compares only the event select (event=) and unit mask (umask=)");
        expect_error(EVENT_YAML("cpu/event=0x3c,inv/"),
                     "t.yaml:4:9: error: event: 'cpu/event=0x3c,inv/': term 'inv' cannot be filtered: "
                     "KVM's filter compares only the event select (event=) and unit mask (umask=)");
        expect_error(EVENT_YAML("cpu/event=0x3c,edge/"),
                     "t.yaml:4:9: error: event: 'cpu/event=0x3c,edge/': term 'edge' cannot be filtered: "
                     "KVM's filter compares only the event select (event=) and unit mask (umask=)");
        expect_error(EVENT_YAML("cpu/event=0x3c,any=1/"),
                     "t.yaml:4:9: error: event: 'cpu/event=0x3c,any=1/': term 'any' cannot be filtered: "
                     "KVM's filter compares only the event select (event=) and unit mask (umask=)");
        expect_error(EVENT_YAML("cpu/umask=0x41/"),
                     "t.yaml:4:9: error: event: expected cpu/event=N,umask=N/ with event=, got 'cpu/umask=0x41/'");
        expect_error(EVENT_YAML("cpu/event=0x1000/"),
                     "t.yaml:4:9: error: event: 'cpu/event=0x1000/': expected event=0-0xfff, got '0x1000'");
        expect_error(EVENT_YAML("cpu/event=1,umask=0x100/"),
                     "t.yaml:4:9: error: event: 'cpu/event=1,umask=0x100/': expected umask=0-0xff, got '0x100'");
        expect_error(EVENT_YAML("cpu/event=1,umask=x/"),
                     "t.yaml:4:9: error: event: 'cpu/event=1,umask=x/': expected umask=0-0xff, got 'x'");
        expect_error(EVENT_YAML("cpu/event=1,event=2/"),
                     "t.yaml:4:9: error: event: 'cpu/event=1,event=2/': term 'event' given twice");
        expect_error(EVENT_YAML("cpu/event=1,name=/"),
                     "t.yaml:4:9: error: event: 'cpu/event=1,name=/': expected name=NAME");
        expect_error(EVENT_YAML("cpu/event=1/u"),
                     "t.yaml:4:9: error: event: expected cpu/event=N,umask=N/ (ending in '/'), got 'cpu/event=1/u'");
        expect_error(EVENT_YAML("cpu/event=1,,umask=1/"),
                     "t.yaml:4:9: error: event: expected cpu/event=N,umask=N/ (terms separated by one ','), "
                     "got 'cpu/event=1,,umask=1/'");
        expect_error(EVENT_YAML("uncore_imc/event=0x4/"),
                     "t.yaml:4:9: error: event: expected the core PMU, cpu/event=N,umask=N/, got 'uncore_imc/event=0x4/': "
                     "KVM filters the events of the core PMU only");
}

static void test_profile_fields(void **state) {
        _cleanup_(policy_freep) struct policy *p = load_ok(
                "profiles:\n"
                "  base:\n"
                "    description: \"the base: for all\"\n"
                "    tier: tenant\n"
                "    fixed_counters: auto\n"
                "    pmu: on\n"
                "  child.1_x-y:\n"
                "    extends: base\n"
                "    fixed_counters: [0, 2, 31]\n"
                "  none:\n"
                "    fixed_counters: []\n"
                "    pmu: off\n");
        const struct profile *base = policy_find_profile(p, "base");
        const struct profile *child = policy_find_profile(p, "child.1_x-y");
        const struct profile *none = policy_find_profile(p, "none");

        assert_int_equal(p->n_profiles, 3);
        assert_ptr_equal(base, &p->profiles[0]);
        assert_loc(&base->loc, 2, 3);
        assert_string_equal(base->description, "the base: for all");
        assert_int_equal(base->tier, TIER_TENANT);
        assert_loc(&base->tier_loc, 4, 11);
        assert_int_equal(base->fixed_mode, FIXED_AUTO);
        assert_int_equal(base->pmu, PMU_ON);
        assert_null(base->extends);
        assert_ptr_equal(base->source_file, p->files[0]);

        assert_string_equal(child->extends, "base");
        assert_loc(&child->extends_loc, 8, 14);
        assert_int_equal(child->tier, TIER_UNSET);
        assert_int_equal(child->pmu, PMU_UNSET);
        assert_int_equal(child->fixed_mode, FIXED_LIST);
        assert_int_equal(child->fixed_bitmap, 0x80000005u);
        assert_loc(&child->fixed_loc, 9, 21);

        assert_int_equal(none->fixed_mode, FIXED_LIST);
        assert_int_equal(none->fixed_bitmap, 0);
        assert_int_equal(none->pmu, PMU_OFF);
        assert_int_equal(none->n_events, 0);
        assert_null(policy_find_profile(p, "missing"));
}

static void test_profile_errors(void **state) {
        expect_error("profiles:\n  t:\n    tier: tennant\n",
                     "t.yaml:3:11: error: tier: expected tenant or trusted, got 'tennant'");
        expect_error("profiles:\n  t:\n    pmu: false\n", "t.yaml:3:10: error: pmu: expected on or off, got 'false'");
        expect_error("profiles:\n  t:\n    fixed_counters: 32\n",
                     "t.yaml:3:21: error: fixed_counters: expected 'auto' or a list of indices 0-31, got '32'");
        expect_error("profiles:\n  t:\n    fixed_counters: [1, 32]\n",
                     "t.yaml:3:25: error: fixed_counters: expected an index 0-31, got '32'");
        expect_error("profiles:\n  t:\n    extends: [a]\n",
                     "t.yaml:3:14: error: extends: expected a profile name (letters, digits, '_', '.', '-'; at most 64), got a sequence");
        expect_error("profiles:\n  t:\n",
                     "t.yaml:2:5: error: profile: expected a mapping, got an empty value");
        expect_error("profiles:\n  \"a b\": {}\n",
                     "t.yaml:2:3: error: profile: expected a profile name (letters, digits, '_', '.', '-'; at most 64), got 'a b'");
        expect_error("profiles:\n  a12345678901234567890123456789012345678901234567890123456789012345: {}\n",
                     "t.yaml:2:3: error: profile: expected a profile name (letters, digits, '_', '.', '-'; at most 64), "
                     "got 'a123456789012345678901234567890123456789...'");
        expect_error("profiles: [a]\n", "t.yaml:1:11: error: profiles: expected a mapping, got a sequence");
}

/* acknowledge_shared: a list in the forms of events:, kept apart from the
 * profile's events, with each item's location; bad values are errors where
 * they are written. */
static void test_acknowledge_shared(void **state) {
        _cleanup_(policy_freep) struct policy *p = load_ok(
                "profiles:\n"
                "  hpc:\n"
                "    tier: tenant\n"
                "    events: [ cache-misses ]\n"
                "    acknowledge_shared:\n"
                "      - cache-misses\n"
                "      - 0x4f2e\n"
                "      - { select: 0x2e, umask: any }\n"
                "      - { select: 0x43, mask: 0xfe, match: 0x08 }\n"
                "  none:\n"
                "    tier: tenant\n"
                "    acknowledge_shared: []\n");
        const struct profile *hpc = policy_find_profile(p, "hpc"), *none = policy_find_profile(p, "none");

        assert_int_equal(hpc->n_events, 1);
        assert_int_equal(hpc->n_acks, 4);
        assert_loc(&hpc->acks_loc, 5, 5);
        assert_int_equal(hpc->acks[0].kind, EVENT_NAME);
        assert_string_equal(hpc->acks[0].name, "cache-misses");
        assert_loc(&hpc->acks[0].loc, 6, 9);
        assert_int_equal(hpc->acks[1].kind, EVENT_RAW);
        assert_int_equal(hpc->acks[1].raw, 0x4f2e);
        assert_int_equal(hpc->acks[2].kind, EVENT_SELECT_ANY);
        assert_int_equal(hpc->acks[2].select, 0x2e);
        assert_int_equal(hpc->acks[3].kind, EVENT_MASKED);
        assert_int_equal(hpc->acks[3].mask, 0xfe);
        assert_int_equal(hpc->acks[3].match, 0x08);
        assert_false(hpc->acks[3].optional);
        /* present but empty: acknowledges nothing, and is known to be there */
        assert_int_equal(none->n_acks, 0);
        assert_loc(&none->acks_loc, 12, 5);

        expect_error("profiles:\n  t:\n    acknowledge_shared: cache-misses\n",
                     "t.yaml:3:25: error: acknowledge_shared: expected a sequence, got 'cache-misses'");
        expect_error("profiles:\n  t:\n    acknowledge_shared: yes\n",
                     "t.yaml:3:25: error: acknowledge_shared: expected a sequence, got 'yes'");
        expect_error("profiles:\n  t:\n    acknowledge_shared:\n      - { select: 0x2e, umask: 0x141 }\n",
                     "t.yaml:4:32: error: umask: expected an integer 0-255 or 'any', got '0x141'");
        expect_error("profiles:\n  t:\n    acknowledge_shared: [ \"cache misses\" ]\n",
                     "t.yaml:3:27: error: event: expected an event name (letters, digits, '_', ':', '.', '-'; "
                     "at most 256), got 'cache misses'");
        expect_error("profiles:\n  t:\n    acknowledge_shared: [ 0x1000000 ]\n",
                     "t.yaml:3:27: error: raw event 0x1000000 has bits outside event select and unit mask "
                     "(expected bits 0-15 and 32-35)");
}

static void test_rules(void **state) {
        static const char *const keys[] = {
                "name", "uuid", "label.tier", "exe", "comm", "uid", "gid", "user", "group",
                "cgroup", "unit", "slice", "machine", "client",
        };
        _cleanup_(policy_freep) struct policy *p = load_ok(
                "rules:\n"
                "  - match: { unit: \"machine-qemu*tenant-a*.scope\" }\n"
                "    profile: a\n"
                "  - match:\n"
                "      name: vm-*\n"
                "      uuid: \"*\"\n"
                "      label.tier: trusted\n"
                "      exe: /usr/bin/qemu-*\n"
                "      comm: qemu*\n"
                "      uid: 0\n"
                "      gid: 0x10\n"
                "      user: root\n"
                "      group: kvm\n"
                "      cgroup: /machine.slice/*\n"
                "      unit: '*.scope'\n"
                "      slice: machine.slice\n"
                "      machine: qemu-1-*\n"
                "      client: preload\n"
                "    profile: b\n"
                "  - match: {}\n"
                "    profile: c\n");
        const struct rule *r;

        assert_int_equal(p->n_rules, 3);
        r = &p->rules[0];
        assert_int_equal(r->n_matches, 1);
        assert_string_equal(r->matches[0].key, "unit");
        assert_string_equal(r->matches[0].value, "machine-qemu*tenant-a*.scope");
        assert_string_equal(r->profile, "a");
        assert_loc(&r->loc, 2, 5);
        assert_loc(&r->profile_loc, 3, 14);

        r = &p->rules[1];
        assert_int_equal(r->n_matches, ELEMENTSOF(keys));
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                assert_string_equal(r->matches[i].key, keys[i]);
                assert_loc(&r->matches[i].loc, 5 + i, 7);
        }
        /* numbers stay text, as written: they are globs */
        assert_string_equal(r->matches[5].value, "0");
        assert_string_equal(r->matches[6].value, "0x10");
        assert_string_equal(r->matches[10].value, "*.scope");

        assert_int_equal(p->rules[2].n_matches, 0);
        assert_string_equal(p->rules[2].profile, "c");
}

static void test_rule_errors(void **state) {
        expect_error("rules:\n  - match: { uid: 0, owner: x }\n    profile: a\n",
                     "t.yaml:2:22: error: match: unknown key 'owner' (expected name, uuid, label.<key>, exe, comm, "
                     "uid, gid, user, group, cgroup, unit, slice, machine or client)");
        expect_error("rules:\n  - match: { label.: x }\n    profile: a\n",
                     "t.yaml:2:14: error: match: unknown key 'label.' (expected name, uuid, label.<key>, exe, comm, "
                     "uid, gid, user, group, cgroup, unit, slice, machine or client)");
        expect_error("rules:\n  - match: { uid: [0] }\n    profile: a\n",
                     "t.yaml:2:19: error: uid: expected a glob, got a sequence");
        expect_error("rules:\n  - match: { uid: }\n    profile: a\n",
                     "t.yaml:2:19: error: uid: expected a glob, got an empty value");
        expect_error("rules:\n  - match: [uid]\n    profile: a\n",
                     "t.yaml:2:12: error: match: expected a mapping, got a sequence");
        expect_error("rules:\n  - profile: a\n",
                     "t.yaml:2:5: error: rule: missing 'match' (expected 'match' and 'profile')");
        expect_error("rules:\n  - match: {}\n",
                     "t.yaml:2:5: error: rule: missing 'profile' (expected 'match' and 'profile')");
        expect_error("rules:\n  - match: {}\n    profile: {}\n",
                     "t.yaml:3:14: error: profile: expected a profile name (letters, digits, '_', '.', '-'; at most 64), got a mapping");
        expect_error("rules:\n  - a\n", "t.yaml:2:5: error: rule: expected a mapping, got 'a'");
        expect_error("rules:\n  - match: {}\n    profile: \"no such\"\n",
                     "t.yaml:3:14: error: profile: expected a profile name (letters, digits, '_', '.', '-'; at most 64), got 'no such'");
        expect_error("rules: {}\n", "t.yaml:1:8: error: rules: expected a sequence, got a mapping");
}

/* Unknown keys, each with the closest known key where one is close: at
 * most 2 edits (a swap of neighbours is one) and fewer than a third of the
 * key's length. */
static void test_unknown_keys(void **state) {
        expect_error("version: 1\nsetings: {}\n",
                     "t.yaml:2:1: error: top level: unknown key 'setings' (expected version, settings, profiles or rules); "
                     "did you mean 'settings'?");
        expect_error("settings:\n  socket: /a\n  timeout: 5\n",
                     "t.yaml:3:3: error: settings: unknown key 'timeout' (expected socket, attach_timeout_ms, adopt, "
                     "unmanaged, default_profile, unattached_sessions_per_uid or socket_group)");
        expect_error("settings:\n  atach_timeout_ms: 5\n",
                     "t.yaml:2:3: error: settings: unknown key 'atach_timeout_ms' (expected socket, attach_timeout_ms, "
                     "adopt, unmanaged, default_profile, unattached_sessions_per_uid or socket_group); "
                     "did you mean 'attach_timeout_ms'?");
        expect_error("profiles:\n  t:\n    tier: tenant\n    event: [cycles]\n",
                     "t.yaml:4:5: error: profile: unknown key 'event' (expected description, tier, extends, events, "
                     "optional, fixed_counters, pmu or acknowledge_shared); did you mean 'events'?");
        expect_error("profiles:\n  t:\n    tire: tenant\n",
                     "t.yaml:3:5: error: profile: unknown key 'tire' (expected description, tier, extends, events, "
                     "optional, fixed_counters, pmu or acknowledge_shared); did you mean 'tier'?");
        /* two letters: one edit is half of it, a guess */
        expect_error("profiles:\n  t:\n    pm: off\n",
                     "t.yaml:3:5: error: profile: unknown key 'pm' (expected description, tier, extends, events, "
                     "optional, fixed_counters, pmu or acknowledge_shared)");
        expect_error("rules:\n  - match: {}\n    profile: a\n    continue: true\n",
                     "t.yaml:4:5: error: rule: unknown key 'continue' (expected match or profile)");
        expect_error("rules:\n  - match: {}\n    profiel: a\n",
                     "t.yaml:3:5: error: rule: unknown key 'profiel' (expected match or profile); did you mean 'profile'?");
        expect_error("rules:\n  - match: { uidd: 0 }\n    profile: a\n",
                     "t.yaml:2:14: error: match: unknown key 'uidd' (expected name, uuid, label.<key>, exe, comm, "
                     "uid, gid, user, group, cgroup, unit, slice, machine or client); did you mean 'uid'?");
        /* a misspelt label keeps its own key */
        expect_error("rules:\n  - match: { lable.tier: trusted }\n    profile: a\n",
                     "t.yaml:2:14: error: match: unknown key 'lable.tier' (expected name, uuid, label.<key>, exe, comm, "
                     "uid, gid, user, group, cgroup, unit, slice, machine or client); did you mean 'label.tier'?");
        expect_error("rules:\n  - match: { labels.tier: trusted }\n    profile: a\n",
                     "t.yaml:2:14: error: match: unknown key 'labels.tier' (expected name, uuid, label.<key>, exe, comm, "
                     "uid, gid, user, group, cgroup, unit, slice, machine or client); did you mean 'label.tier'?");
}

/* Three mistakes of different kinds in one file: three errors, each where
 * it is written, in one load. */
static void test_every_error_in_one_run(void **state) {
        expect_errors("version: 1\n"
                      "settings:\n"
                      "  attach_timeout_ms: 0\n"
                      "  default_profile: tenant\n"
                      "profiles:\n"
                      "  tenant:\n"
                      "    tier: tenant\n"
                      "    event: [ instructions ]\n"
                      "  trusted:\n"
                      "    tier: trusted\n"
                      "    events:\n"
                      "      - { select: 0xb7, umask: 256 }\n"
                      "rules:\n"
                      "  - match: { uid: \"0\" }\n"
                      "    profile: trusted\n",
                      "t.yaml:3:22: error: attach_timeout_ms: expected an integer 1-3600000, got '0'",
                      "t.yaml:8:5: error: profile: unknown key 'event' (expected description, tier, extends, events, "
                      "optional, fixed_counters, pmu or acknowledge_shared); did you mean 'events'?",
                      "t.yaml:12:32: error: umask: expected an integer 0-255 or 'any', got '256'",
                      NULL);
        /* every key of one mapping, every item of one list */
        expect_errors("settings:\n  socket: run\n  adopt: yes\n  unmanaged: kil\n",
                      "t.yaml:2:11: error: socket: expected an absolute path of at most 107 bytes, got 'run'",
                      "t.yaml:3:10: error: adopt: expected none or ptrace, got 'yes'",
                      "t.yaml:4:14: error: unmanaged: expected warn or kill, got 'kil'",
                      NULL);
        expect_errors(EVENT_YAML("0x100000\n      - \"cycles please\"\n      - cycles\n      - { select: 1, umask: 256 }"),
                      "t.yaml:4:9: error: raw event 0x100000 has bits outside event select and unit mask "
                      "(expected bits 0-15 and 32-35)",
                      "t.yaml:5:9: error: event: expected an event name (letters, digits, '_', ':', '.', '-'; "
                      "at most 256), got 'cycles please'",
                      "t.yaml:7:29: error: umask: expected an integer 0-255 or 'any', got '256'",
                      NULL);
        expect_errors("profiles:\n  t:\n    tier: tenant\n    fixed_counters: [32, 1, 40]\n",
                      "t.yaml:4:22: error: fixed_counters: expected an index 0-31, got '32'",
                      "t.yaml:4:29: error: fixed_counters: expected an index 0-31, got '40'",
                      NULL);
        /* every repeat, not only the first */
        expect_errors("settings:\n  adopt: none\n  adopt: none\n  adopt: ptrace\n",
                      "t.yaml:3:3: error: settings: duplicate key 'adopt' (first at t.yaml:2:3)",
                      "t.yaml:4:3: error: settings: duplicate key 'adopt' (first at t.yaml:2:3)",
                      NULL);
        /* every rule */
        expect_errors("rules:\n  - match: { owner: x }\n    profile: a\n  - a\n  - match: {}\n    profile: \"b c\"\n",
                      "t.yaml:2:14: error: match: unknown key 'owner' (expected name, uuid, label.<key>, exe, comm, "
                      "uid, gid, user, group, cgroup, unit, slice, machine or client)",
                      "t.yaml:4:5: error: rule: expected a mapping, got 'a'",
                      "t.yaml:6:14: error: profile: expected a profile name (letters, digits, '_', '.', '-'; "
                      "at most 64), got 'b c'",
                      /* and then the references, of what loaded */
                      "t.yaml:3:14: error: rule 1: profile 'a' is not defined",
                      NULL);
}

/* What follows from an error already reported is not reported again. */
static void test_no_cascade(void **state) {
        /* A broken profile still resolves for the rule and the child naming
         * it, and says nothing of its tier, nor of its child's. */
        expect_errors("settings:\n  default_profile: base\n"
                      "profiles:\n  base:\n    tier: tennant\n  child:\n    extends: base\n"
                      "rules:\n  - match: {}\n    profile: base\n",
                      "t.yaml:5:11: error: tier: expected tenant or trusted, got 'tennant'",
                      NULL);
        /* A misspelt `profiles`: every profile may be in it, so no rule's
         * profile is called undefined. */
        expect_errors("profile:\n  a: { tier: tenant }\nrules:\n  - match: {}\n    profile: a\n",
                      "t.yaml:1:1: error: top level: unknown key 'profile' (expected version, settings, profiles or "
                      "rules); did you mean 'profiles'?",
                      NULL);
        expect_errors("profiles: [ a ]\nsettings:\n  default_profile: a\n",
                      "t.yaml:1:11: error: profiles: expected a mapping, got a sequence",
                      NULL);
        /* A misspelt key may be the one that seems missing. */
        expect_errors(EVENT_YAML("{ selct: 0x2e, umask: any }"),
                      "t.yaml:4:11: error: event: expected 'umask' (0-255 or 'any') or 'mask'+'match', got key "
                      "'selct'; did you mean 'select'?",
                      NULL);
        expect_errors(EVENT_YAML("{ select: 0x2e, mask: 1, mtch: 1 }"),
                      "t.yaml:4:34: error: event: expected 'umask' (0-255 or 'any') or 'mask'+'match', got key "
                      "'mtch'; did you mean 'match'?",
                      NULL);
        expect_errors("rules:\n  - match: {}\n    profle: a\n",
                      "t.yaml:3:5: error: rule: unknown key 'profle' (expected match or profile); did you mean 'profile'?",
                      NULL);
        /* With nothing misspelt, missing is missing. */
        expect_errors("rules:\n  - match: {}\n", "t.yaml:2:5: error: rule: missing 'profile' (expected 'match' and 'profile')",
                      NULL);
        /* A profile that cannot be kept still has its body checked. */
        expect_errors("profiles:\n  a: { tier: tenant }\n  a: { tier: tennant }\n",
                      "t.yaml:3:3: error: profiles: duplicate key 'a' (first at t.yaml:2:3)",
                      "t.yaml:3:14: error: tier: expected tenant or trusted, got 'tennant'",
                      NULL);
        expect_errors("profiles:\n  \"a b\": {}\n  \"a b\": {}\n",
                      "t.yaml:2:3: error: profile: expected a profile name (letters, digits, '_', '.', '-'; "
                      "at most 64), got 'a b'",
                      "t.yaml:3:3: error: profiles: duplicate key 'a b' (first at t.yaml:2:3)",
                      NULL);
        expect_errors("profiles:\n  \"a b\": { pmu: of }\n",
                      "t.yaml:2:3: error: profile: expected a profile name (letters, digits, '_', '.', '-'; "
                      "at most 64), got 'a b'",
                      "t.yaml:2:17: error: pmu: expected on or off, got 'of'",
                      NULL);
        /* A rule with an unknown match key gets no trust lint (the key may
         * have been the fact it needs), and its profile is still looked up. */
        expect_errors("profiles:\n  t: { tier: trusted, events: [0xc0] }\n"
                      "rules:\n  - match: { uidd: 0, label.tier: t }\n    profile: t\n"
                      "  - match: { uidd: 0 }\n    profile: nope\n",
                      "t.yaml:4:14: error: match: unknown key 'uidd' (expected name, uuid, label.<key>, exe, comm, "
                      "uid, gid, user, group, cgroup, unit, slice, machine or client); did you mean 'uid'?",
                      "t.yaml:6:14: error: match: unknown key 'uidd' (expected name, uuid, label.<key>, exe, comm, "
                      "uid, gid, user, group, cgroup, unit, slice, machine or client); did you mean 'uid'?",
                      "t.yaml:7:14: error: rule 2: profile 'nope' is not defined",
                      NULL);
}

/* What loaded after errors: broken definitions marked, the rest sound. */
static void test_partial_policy(void **state) {
        static const char yaml[] =
                "profiles:\n"
                "  base: { tier: tenant, events: [cycles] }\n"
                "  bad: { tier: tenant, colour: blue }\n"
                "  child: { extends: bad }\n"
                "  orphan: { extends: nowhere }\n"
                "  ok: { extends: base }\n"
                "rules:\n"
                "  - { match: { owner: x }, profile: base }\n"
                "  - { match: { uid: 0 }, profile: ok }\n";
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct diags d = {};

        assert_int_equal(policy_new(&p), 0);
        assert_int_equal(policy_load_buffer(p, "t.yaml", yaml, strlen(yaml), &d), -EINVAL);
        assert_int_equal(d.n_errors, 2);       /* colour, owner */
        assert_int_equal(policy_validate(p, &d), -EINVAL);
        assert_int_equal(d.n_errors, 3);       /* nowhere */
        assert_int_equal(p->n_profiles, 5);
        assert_false(p->incomplete);
        assert_true(profile_is_sound(p, policy_find_profile(p, "base")));
        assert_true(profile_is_sound(p, policy_find_profile(p, "ok")));
        assert_true(policy_find_profile(p, "bad")->broken);
        assert_false(profile_is_sound(p, policy_find_profile(p, "bad")));
        assert_false(profile_is_sound(p, policy_find_profile(p, "child")));
        assert_false(profile_is_sound(p, policy_find_profile(p, "orphan")));
        assert_int_equal(p->n_rules, 2);
        assert_true(p->rules[0].broken);
        assert_string_equal(p->rules[0].profile, "base");
        assert_false(p->rules[1].broken);
        diags_clear(&d);
}

static void test_duplicates(void **state) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct diags d = {};
        const char *yaml = "settings:\n  socket: /a\n  socket: /b\n";

        expect_error("settings:\n  socket: /a\n  adopt: none\n  socket: /b\n",
                     "t.yaml:4:3: error: settings: duplicate key 'socket' (first at t.yaml:2:3)");
        /* the first of repeated keys is the one read */
        assert_int_equal(policy_new(&p), 0);
        assert_int_equal(policy_load_buffer(p, "t.yaml", yaml, strlen(yaml), &d), -EINVAL);
        assert_string_equal(p->settings.socket, "/a");
        diags_clear(&d);
        expect_error("profiles:\n  a: {}\n  b: {}\n  a: {}\n  b: {}\n",
                     "t.yaml:4:3: error: profiles: duplicate key 'a' (first at t.yaml:2:3)");
        expect_error("rules:\n  - match: { uid: 0, uid: 1 }\n    profile: a\n",
                     "t.yaml:2:22: error: match: duplicate key 'uid' (first at t.yaml:2:14)");
        expect_error("version: 1\nversion: 1\n", "t.yaml:2:1: error: top level: duplicate key 'version' (first at t.yaml:1:1)");
}

/* Profiles accumulate across files; the same name twice names both places. */
static void test_profile_across_files(void **state) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        _cleanup_free_ char *first = NULL;
        const char *a = "profiles:\n  x: { tier: tenant }\nrules:\n  - { match: {}, profile: x }\n";
        const char *b = "profiles:\n  y: { tier: tenant }\nrules:\n  - { match: {}, profile: y }\n";
        const char *c = "profiles:\n  z: {}\n  x: { tier: trusted }\n";
        struct diags d = {};

        assert_int_equal(policy_new(&p), 0);
        assert_int_equal(policy_load_buffer(p, "a.yaml", a, strlen(a), &d), 0);
        assert_int_equal(policy_load_buffer(p, "b.yaml", b, strlen(b), &d), 0);
        assert_int_equal(p->n_profiles, 2);
        assert_int_equal(p->n_rules, 2);
        assert_string_equal(p->rules[1].profile, "y");
        assert_string_equal(p->profiles[1].source_file, "b.yaml");

        assert_int_equal(policy_load_buffer(p, "c.yaml", c, strlen(c), &d), -EINVAL);
        first = diags_first_error(&d);
        assert_string_equal(first, "c.yaml:3:3: error: profile 'x' already defined at a.yaml:2:3");
        diags_clear(&d);
}

static void test_syntax(void **state) {
        expect_error("version: 1\nsettings:\n\tsocket: /x\n",
                     "t.yaml:3:1: error: YAML: found character that cannot start any token: a tab, "
                     "expected spaces for indentation");
        expect_error("rules: [ { match: {}, profile: a }\n",
                     "t.yaml:2:1: error: YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 1)");
        expect_error("key: value\n  bad: indent\n", "t.yaml:2:6: error: YAML: mapping values are not allowed in this context");
        expect_error("@@@ garbage\n", "t.yaml:1:1: error: YAML: found character that cannot start any token");
        expect_error("just some words\n", "t.yaml:1:1: error: top level: expected a mapping, got 'just some words'");
        expect_error("version: 1\n\xff\xfe\n", "t.yaml:2:1: error: YAML: invalid leading UTF-8 octet: #FF");
        expect_error("profiles:\n  a: &x { tier: tenant }\n",
                     "t.yaml:2:6: error: YAML anchors (&x) are not supported: write the value out");
        expect_error("rules:\n  - *x\n", "t.yaml:2:5: error: YAML aliases (*x) are not supported: write the value out");
        expect_error("version: !!int 1\n",
                     "t.yaml:1:10: error: YAML tags (tag:yaml.org,2002:int) are not supported: remove the tag");
        expect_error("version: 1\n---\nversion: 1\n", "t.yaml:2:1: error: expected one YAML document, found a second one");
        expect_error("settings:\n  socket: \"/a\\0b\"\n",
                     "t.yaml:2:11: error: expected text, got a scalar containing a NUL character");
        expect_error("? [a]\n: b\n", "t.yaml:1:3: error: expected a scalar as mapping key, got a sequence");
        expect_error("\"a\\nb\": 1\n", "t.yaml:1:1: error: expected a key without control characters");
        /* diagnostics stay one line, whatever a block scalar holds */
        expect_error("settings:\n  adopt: |\n    none\n    ptrace\n",
                     "t.yaml:2:10: error: adopt: expected none or ptrace, got 'none ptrace '");
        expect_error("a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
                     "t.yaml:1:35: error: nesting deeper than 32 levels");
}

/* An empty file, comments only or a bare `---` are valid, empty fragments. */
static void test_empty(void **state) {
        static const char *const inputs[] = { "", "# nothing\n", "---\n", "---\n...\n", "~\n" };

        for (size_t i = 0; i < ELEMENTSOF(inputs); i++) {
                _cleanup_(policy_freep) struct policy *p = load_ok(inputs[i]);

                assert_int_equal(p->n_profiles, 0);
                assert_int_equal(strv_length(p->files), 1);
        }
}

static char *write_temp(const char *dir, const char *name, const char *content) {
        char *path = NULL;
        FILE *f;

        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fputs(content, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        return path;
}

static void test_files(void **state) {
        char dir[] = "/tmp/test-policy-load.XXXXXX";
        _cleanup_free_ char *main_path = NULL, *frag1 = NULL, *frag2 = NULL, *big = NULL, *missing = NULL,
                *bad1 = NULL, *bad2 = NULL;
        _cleanup_(policy_freep) struct policy *p = NULL;
        _cleanup_free_ char *first = NULL;
        struct diags d = {};
        FILE *f;

        assert_non_null(mkdtemp(dir));
        main_path = write_temp(dir, "main.yaml",
                               "version: 1\nsettings:\n  default_profile: a\n  socket: /a\n"
                               "profiles:\n  a: { tier: tenant, events: [cycles] }\n");
        frag1 = write_temp(dir, "10-b.yaml", "settings:\n  socket: /b\nprofiles:\n  b: { extends: a }\n");
        frag2 = write_temp(dir, "20-c.yaml", "rules:\n  - { match: { uid: 0 }, profile: b }\n");

        {
                char *paths[] = { main_path, frag1, frag2, NULL };

                assert_int_equal(policy_load_paths(paths, &p, &d), 0);
                assert_int_equal(d.n_errors, 0);
                assert_int_equal(strv_length(p->files), 3);
                assert_string_equal(p->files[0], main_path);
                assert_string_equal(p->files[2], frag2);
                assert_string_equal(p->settings.socket, "/b");
                assert_int_equal(p->n_profiles, 2);
                assert_string_equal(p->rules[0].loc.file, frag2);
                assert_ptr_equal(p->rules[0].loc.file, p->files[2]);
                policy_free(TAKE_PTR(p));
        }

        /* `config` is one file only: its fragments are not read */
        assert_int_equal(policy_load_files(main_path, &p, &d), 0);
        assert_int_equal(strv_length(p->files), 1);
        assert_string_equal(p->settings.socket, "/a");
        policy_free(TAKE_PTR(p));

        /* the loaded policy is validated: b's rule needs profile b */
        {
                char *paths[] = { main_path, frag2, NULL };

                assert_int_equal(policy_load_paths(paths, &p, &d), -EINVAL);
                assert_null(p);
                first = diags_first_error(&d);
                assert_non_null(strstr(first, "20-c.yaml:2:35: error: rule 1: profile 'b' is not defined"));
                free(TAKE_PTR(first));
                diags_clear(&d);
        }

        assert_true(asprintf(&missing, "%s/none.yaml", dir) > 0);
        assert_int_equal(policy_load_files(missing, &p, &d), -ENOENT);
        first = diags_first_error(&d);
        assert_non_null(strstr(first, "none.yaml: error: cannot read policy file: No such file or directory"));
        free(TAKE_PTR(first));
        diags_clear(&d);

        assert_int_equal(policy_load_files(dir, &p, &d), -EISDIR);
        diags_clear(&d);

        big = write_temp(dir, "big.yaml", "# big\n");
        f = fopen(big, "ae");
        assert_non_null(f);
        for (size_t i = 0; i < 4 * 1024 * 1024 / 64 + 1; i++)
                fputs("# 64 bytes of comment, to make a file larger than four mebibyte\n", f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(policy_load_files(big, &p, &d), -EINVAL);
        first = diags_first_error(&d);
        assert_non_null(strstr(first, "big.yaml: error: cannot read policy file: larger than 4194304 bytes"));
        diags_clear(&d);

        {
                char *none[] = { NULL };

                assert_int_equal(policy_load_paths(none, &p, &d), -EINVAL);
                diags_clear(&d);
        }

        /* Every file is loaded, whatever the one before it did: errors of
         * both are reported at once.  The rule's profile, which may have
         * been in the file that did not parse, is not called undefined. */
        bad1 = write_temp(dir, "bad1.yaml", "profiles:\n  a: { tier: tenant\n");
        bad2 = write_temp(dir, "bad2.yaml", "rules:\n  - { match: { uid: 0 }, profile: a }\n  - { match: {}, profle: a }\n");
        {
                char *paths[] = { bad1, bad2, NULL };

                assert_int_equal(policy_load_paths(paths, &p, &d), -EINVAL);
                assert_null(p);
                assert_int_equal(d.n_errors, 2);
                assert_non_null(strstr(d.v[0].message, "YAML: "));
                assert_string_equal(d.v[1].file, bad2);
                assert_int_equal(d.v[1].line, 3);
                assert_non_null(strstr(d.v[1].message, "unknown key 'profle'"));
                diags_clear(&d);

                /* check's variant hands back what loaded, never for use */
                assert_int_equal(policy_check_paths(paths, &p, &d), -EINVAL);
                assert_non_null(p);
                assert_true(p->incomplete);
                assert_int_equal(p->n_rules, 2);
                assert_int_equal(d.n_errors, 2);
                policy_free(TAKE_PTR(p));
                diags_clear(&d);

                assert_int_equal(policy_check_files(main_path, &p, &d), 0);
                assert_non_null(p);
                policy_free(TAKE_PTR(p));
        }
        assert_int_equal(unlink(bad1), 0);
        assert_int_equal(unlink(bad2), 0);
        assert_int_equal(unlink(main_path), 0);
        assert_int_equal(unlink(frag1), 0);
        assert_int_equal(unlink(frag2), 0);
        assert_int_equal(unlink(big), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* Every settings key and event form, inheritance, pmu: off, and rules on a
 * unit and on a label with a uid, in one file as an operator writes it,
 * comments included. */
static void test_every_form_together(void **state) {
        static const char yaml[] =
                "version: 1\n"
                "settings:\n"
                "  socket: /run/pmufilterd/vmm.sock\n"
                "  attach_timeout_ms: 2000  # how long a detected VM may wait\n"
                "  adopt: none              # none | ptrace\n"
                "  unmanaged: warn          # warn or kill\n"
                "  default_profile: tenant-minimal\n"
                "profiles:\n"
                "  tenant-minimal:\n"
                "    tier: tenant           # tenant => allowlist\n"
                "    events:\n"
                "      - instructions       # generic alias\n"
                "      - cycles\n"
                "      - INST_RETIRED:ANY_P # libpfm4 name\n"
                "      - 0x00c0             # raw\n"
                "      - { select: 0xc4, umask: 0x00 }\n"
                "    fixed_counters: auto   # or a list of indices\n"
                "  tenant-a:\n"
                "    extends: tenant-minimal\n"
                "    events: [ branch-misses ]          # added to the parent's\n"
                "  trusted:\n"
                "    tier: trusted          # trusted => denylist\n"
                "    events:\n"
                "      - { select: 0xb7, umask: any }   # every unit mask\n"
                "      - { select: 0xd0, mask: 0xf0, match: 0x80, exclude: false }\n"
                "  no-pmu:\n"
                "    pmu: off               # the VMM disables the vPMU\n"
                "rules:                     # first match wins\n"
                "  - match: { unit: \"machine-qemu*tenant-a*.scope\" }\n"
                "    profile: tenant-a\n"
                "  - match: { label.tier: trusted, uid: 0 }\n"
                "    profile: trusted\n";
        _cleanup_(policy_freep) struct policy *p = load_ok(yaml);
        struct diags d = {};

        assert_int_equal(policy_validate(p, &d), 0);
        assert_int_equal(d.n, 0);
        assert_int_equal(p->n_profiles, 4);
        assert_int_equal(p->n_rules, 2);
        assert_int_equal(policy_find_profile(p, "tenant-minimal")->n_events, 5);
        assert_int_equal(profile_effective_tier(p, policy_find_profile(p, "tenant-a")), TIER_TENANT);
        assert_int_equal(profile_effective_pmu(p, policy_find_profile(p, "no-pmu")), PMU_OFF);
        assert_string_equal(p->rules[1].matches[1].key, "uid");
        assert_string_equal(p->rules[1].matches[1].value, "0");
}

/* The example of pmufilterd.yaml(5), EXAMPLES, and its conf.d fragment as
 * printed there: the page must not show a policy the loader refuses. */
static void test_man_page_example(void **state) {
        static const char main_file[] =
                "version: 1\n"
                "settings:\n"
                "  default_profile: tenant-minimal\n"
                "profiles:\n"
                "  tenant-minimal:\n"
                "    tier: tenant\n"
                "    events: [ instructions, cycles, branches, branch-misses ]\n"
                "    fixed_counters: auto\n"
                "  tenant-standard:\n"
                "    extends: tenant-minimal\n"
                "    optional: [ ref-cycles, stalled-cycles-frontend ]\n"
                "  trusted:\n"
                "    tier: trusted\n"
                "    optional: [ cache-references, cache-misses ]\n"
                "    events:\n"
                "      - { select: 0x2e, umask: any }       # Intel: every L3 access\n"
                "      - { select: 0xd1, mask: 0x20, match: 0x20 }\n"
                "      - { select: 0x43, umask: any }       # AMD: fills by source...\n"
                "      - { select: 0x43, mask: 0xff, match: 0x01, exclude: true }\n"
                "  no-pmu:\n"
                "    pmu: off\n"
                "rules:\n"
                "  - match: { label.pmu: \"off\" }\n"
                "    profile: no-pmu\n"
                "  - match: { uid: \"0\", label.tier: trusted }\n"
                "    profile: trusted\n"
                "  - match: { unit: \"machine-qemu*.scope\", label.tier: standard }\n"
                "    profile: tenant-standard\n";
        static const char fragment[] =
                "profiles:\n"
                "  ci:\n"
                "    extends: no-pmu\n"
                "rules:\n"
                "  - match: { machine: \"qemu-*-ci-*\", user: libvirt-qemu }\n"
                "    profile: ci\n";
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct diags d = {};

        assert_int_equal(policy_new(&p), 0);
        assert_int_equal(policy_load_buffer(p, "pmufilterd.yaml", main_file, strlen(main_file), &d), 0);
        assert_int_equal(policy_load_buffer(p, "50-ci.yaml", fragment, strlen(fragment), &d), 0);
        assert_int_equal(policy_validate(p, &d), 0);
        if (d.n > 0)
                diags_print(&d, stderr);
        assert_int_equal(d.n, 0);
        assert_int_equal(p->n_profiles, 5);
        assert_int_equal(p->n_rules, 4);
        assert_int_equal(profile_effective_pmu(p, policy_find_profile(p, "ci")), PMU_OFF);
        diags_clear(&d);
}

/* The shipped default must load and validate without warnings, alone and
 * with each shipped example fragment. */
static void test_shipped_config(void **state) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        const char *path = SRCDIR "/conf/pmufilterd.yaml";
        static const char *const examples[] = {
                SRCDIR "/conf/examples/denylist-trusted.yaml",
                SRCDIR "/conf/examples/libvirt-tenants.yaml",
        };
        struct diags d = {};

        if (access(path, R_OK) < 0) {
                print_message("skipped: %s does not exist yet\n", path);
                skip();
        }
        if (policy_load_files(path, &p, &d) < 0 || d.n_warnings > 0)
                diags_print(&d, stderr);
        assert_non_null(p);
        assert_int_equal(d.n_errors, 0);
        assert_int_equal(d.n_warnings, 0);
        assert_true(p->n_profiles > 0);
        diags_clear(&d);

        for (size_t i = 0; i < ELEMENTSOF(examples); i++) {
                char *paths[] = { (char *) path, (char *) examples[i], NULL };

                if (access(examples[i], R_OK) < 0) {
                        print_message("not checked: %s does not exist\n", examples[i]);
                        continue;
                }
                policy_free(TAKE_PTR(p));
                if (policy_load_paths(paths, &p, &d) < 0 || d.n_warnings > 0)
                        diags_print(&d, stderr);
                assert_int_equal(d.n_errors, 0);
                assert_int_equal(d.n_warnings, 0);
                diags_clear(&d);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_settings),
                cmocka_unit_test(test_settings_errors),
                cmocka_unit_test(test_settings_override),
                cmocka_unit_test(test_event_forms),
                cmocka_unit_test(test_event_errors),
                cmocka_unit_test(test_perf_spellings),
                cmocka_unit_test(test_profile_fields),
                cmocka_unit_test(test_profile_errors),
                cmocka_unit_test(test_acknowledge_shared),
                cmocka_unit_test(test_rules),
                cmocka_unit_test(test_rule_errors),
                cmocka_unit_test(test_unknown_keys),
                cmocka_unit_test(test_every_error_in_one_run),
                cmocka_unit_test(test_no_cascade),
                cmocka_unit_test(test_partial_policy),
                cmocka_unit_test(test_duplicates),
                cmocka_unit_test(test_profile_across_files),
                cmocka_unit_test(test_syntax),
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_files),
                cmocka_unit_test(test_every_form_together),
                cmocka_unit_test(test_man_page_example),
                cmocka_unit_test(test_shipped_config),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
