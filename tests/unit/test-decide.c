/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-decide.c — the decision layer (daemon/decide/) on its own: rule
 * matching (first match, every key, globs, claimed keys, facts known,
 * unknown and read lazily), the source of each decision, overrides set over
 * D-Bus and the default profile they can replace, lockdown, profile "none",
 * tiers and the filters decisions share with the policy set.  Policies are
 * YAML strings compiled for a PMU and a KVM filled in by hand: no /dev/kvm,
 * no bus, no socket, no file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "decide.h"
#include "kvm-compat.h"
#include "procfacts.h"

/* The host is fixed, so that the filters do not depend on the machine
 * running the tests (as in test-compile.c). */
static const struct host_pmu intel = {
        .vendor = PMU_VENDOR_INTEL, .version = 5, .n_gp = 8, .n_fixed = 3, .name = "intel",
};
static const struct kvm_support kvm_masked = { .filter = true, .masked = true, .max_events = 300 };
static const struct kvm_support kvm_plain = { .filter = true, .masked = false, .max_events = 300 };

/* Raw event numbers only: the catalogue's names are test-compile.c's business. */
#define PROFILES                                                                \
        "profiles:\n"                                                           \
        "  tenant-a: { tier: tenant, events: [ 0x00c0, 0x003c ] }\n"            \
        "  tenant-b: { tier: tenant, events: [ 0x00c4 ] }\n"                    \
        "  trusted: { tier: trusted, events: [ { select: 0x2e, umask: 0x41 } ] }\n" \
        "  fallback: { tier: tenant, events: [ 0x00c5 ] }\n"

/* Load main (and a conf.d fragment after it, if any) and validate, as the
 * daemon does; warnings go to warn if given. */
static struct policy *load_policy(const char *main, const char *fragment, struct diags *warn) {
        struct policy *p = NULL;
        struct diags d = {};

        assert_int_equal(policy_new(&p), 0);
        if (policy_load_buffer(p, "pmufilterd.yaml", main, strlen(main), &d) < 0 ||
            (fragment && policy_load_buffer(p, "conf.d/50-test.yaml", fragment, strlen(fragment), &d) < 0) ||
            policy_validate(p, &d) < 0) {
                diags_print(&d, stderr);
                fail_msg("the test policy does not load");
        }
        if (warn)
                *warn = d;
        else
                diags_clear(&d);
        return p;
}

static struct policy_set *compile_set(const char *main, const char *fragment, const struct kvm_support *kvm) {
        struct policy *p = load_policy(main, fragment, NULL);
        struct policy_set *s = NULL;
        struct diags d = {};

        if (policy_set_compile(p, &intel, kvm, &d, &s) < 0) {
                diags_print(&d, stderr);
                fail_msg("the test policy does not compile");
        }
        diags_clear(&d);
        assert_non_null(s);
        assert_ptr_equal(s->policy, p);
        return s;
}

/* A decider out of lockdown with this policy in force. */
static void decider_init(struct decider *d, const char *main, const char *fragment) {
        *d = (struct decider) {};
        assert_null(decider_swap(d, compile_set(main, fragment, &kvm_plain)));
}

/* The source of the decision for a VM known by m ("rule:<n>", "default", ...). */
static const char *source_of(const struct decider *d, const struct match_input *m) {
        static char source[sizeof(((struct decision *) NULL)->source)];
        struct decide_input in = { .match = *m };
        struct decision dec = {};

        assert_int_equal(decide(d, &in, &dec), 0);
        assert_non_null(dec.filter);
        memcpy(source, dec.source, sizeof(source));
        compiled_filter_unref(dec.filter);
        return source;
}

/* The decision for m names the place of its rule: file:line, or none. */
static void expect_rule_at(const struct decider *d, const struct match_input *m, const char *file, unsigned line) {
        struct decide_input in = { .match = *m };
        struct decision dec = {};
        char buf[256];

        assert_int_equal(decide(d, &in, &dec), 0);
        compiled_filter_unref(dec.filter);
        if (!file) {
                assert_null(dec.rule_loc);
                return;
        }
        assert_non_null(dec.rule_loc);
        assert_string_equal(dec.rule_loc->file, file);
        assert_int_equal(dec.rule_loc->line, line);
        srcloc_format(dec.rule_loc, buf, sizeof(buf));
        assert_true(startswith(buf, file) && buf[strlen(file)] == ':' &&
                    (unsigned) atoi(buf + strlen(file) + 1) == line);
}

/* decide() must give profile from source, and that profile's filter. */
static void expect_decision(const struct decider *d, const struct decide_input *in,
                            const char *profile, const char *source) {
        struct decision dec = {};

        assert_int_equal(decide(d, in, &dec), 0);
        assert_string_equal(dec.profile, profile);
        assert_string_equal(dec.source, source);
        assert_non_null(dec.filter);
        assert_string_equal(dec.filter->profile, profile);
        compiled_filter_unref(dec.filter);
}

static void assert_empty_allowlist(const struct compiled_filter *f, const char *profile) {
        assert_non_null(f);
        assert_string_equal(f->profile, profile);
        assert_false(f->pmu_off);
        assert_int_equal(f->action, KVM_PMU_EVENT_ALLOW);
        assert_int_equal(f->flags, 0);
        assert_int_equal(f->fixed_counter_bitmap, 0);
        assert_int_equal(f->nevents, 0);
}

/* The facts a fake "kernel" holds, and what the matcher asked of it. */
static struct {
        struct proc_facts truth;        /* strings not owned */
        int error;                      /* < 0: every load fails so */
        unsigned asked;                 /* the masks asked for, or-ed */
        unsigned calls;
        unsigned last_mask;
} loader;

static void loader_reset(void) {
        loader = (__typeof__(loader)) {};
}

static void set_dup(char **field, const char *v) {
        free(*field);
        *field = v ? strdup(v) : NULL;
        if (v)
                assert_non_null(*field);
}

/* Stands in for detect/'s proc_facts_load(): reads nothing from /proc. */
static int fake_load_facts(struct proc_facts *f, unsigned mask) {
        loader.calls++;
        loader.asked |= mask;
        loader.last_mask = mask;
        if (loader.error < 0)
                return loader.error;    /* a group that failed stays unread */
        if (mask & PROC_FACT_EXE)
                set_dup(&f->exe, loader.truth.exe);
        if (mask & (PROC_FACT_IDS | PROC_FACT_NAMES)) {
                f->uid = loader.truth.uid;
                f->gid = loader.truth.gid;
        }
        if (mask & PROC_FACT_NAMES) {
                set_dup(&f->user, loader.truth.user);
                set_dup(&f->group, loader.truth.group);
        }
        if (mask & PROC_FACT_CGROUP)
                set_dup(&f->cgroup, loader.truth.cgroup);
        if (mask & PROC_FACT_UNIT)
                set_dup(&f->unit, loader.truth.unit);
        if (mask & PROC_FACT_SLICE)
                set_dup(&f->slice, loader.truth.slice);
        if (mask & PROC_FACT_MACHINE)
                set_dup(&f->machine, loader.truth.machine);
        f->loaded |= mask;
        return 0;
}

/* Every fact known, as proc_facts_read() would leave them for a libvirt guest. */
static void facts_all(struct proc_facts *f) {
        proc_facts_done(f);
        f->pid = 4242;
        set_dup(&f->exe, "/usr/bin/qemu-system-x86_64");
        set_dup(&f->comm, "qemu-system-x86");
        f->uid = 107;
        f->gid = 36;
        set_dup(&f->user, "qemu");
        set_dup(&f->group, "kvm");
        set_dup(&f->cgroup, "/machine.slice/machine-qemu-1-web.scope/libvirt/emulator");
        set_dup(&f->unit, "machine-qemu-1-web.scope");
        set_dup(&f->slice, "machine.slice");
        set_dup(&f->machine, "qemu-1-web");
        f->loaded = PROC_FACT_ALL;
}

/* Without a policy (it failed to load at start), every VM gets "lockdown":
 * an empty allowlist, whatever it claims or was given over D-Bus. */
static void test_lockdown(void **state) {
        struct decider d = { .lockdown = true };
        char *labels[] = { (char *) "tier=trusted", NULL };
        struct decide_input in = {
                .match = { .name = "vm-1", .uuid = "u-1", .client = "library", .labels = labels },
                .override = "trusted",
                .override_runtime = true,
        };
        const struct settings *s;
        struct policy_set *s1, *s2;
        struct decision dec = {};
        bool overridden = true;

        assert_int_equal(decide(&d, &in, &dec), 0);
        assert_string_equal(dec.profile, "lockdown");
        assert_string_equal(dec.source, "lockdown");
        assert_false(dec.default_missing);
        assert_empty_allowlist(dec.filter, "lockdown");
        compiled_filter_unref(dec.filter);

        s = decider_settings(&d);
        assert_non_null(s);
        assert_int_equal(s->attach_timeout_ms, POLICY_DEFAULT_ATTACH_TIMEOUT_MS);
        assert_int_equal(s->adopt, ADOPT_NONE);
        assert_int_equal(s->unmanaged, UNMANAGED_WARN);
        assert_null(s->default_profile);
        assert_null(decider_default_profile(&d, &overridden));
        assert_false(overridden);
        assert_int_equal(policy_set_find(d.set, "trusted"), -ENOENT);

        assert_int_equal(decider_set_last_error(&d, "t.yaml:1:1: error: no"), 0);
        assert_string_equal(d.last_error, "t.yaml:1:1: error: no");

        /* The first good policy ends lockdown; there was no set before it. */
        s1 = compile_set("settings: { attach_timeout_ms: 5000 }\n" PROFILES, NULL, &kvm_plain);
        assert_null(decider_swap(&d, s1));
        assert_false(d.lockdown);
        assert_ptr_equal(decider_settings(&d), &s1->policy->settings);
        assert_int_equal(decider_settings(&d)->attach_timeout_ms, 5000);
        expect_decision(&d, &in, "trusted", "runtime");

        /* A reload hands back the set it replaces, for the caller to free
         * once nothing uses it. */
        s2 = compile_set(PROFILES, NULL, &kvm_plain);
        assert_ptr_equal(decider_swap(&d, s2), s1);
        assert_ptr_equal(d.set, s2);
        assert_int_equal(decider_settings(&d)->attach_timeout_ms, POLICY_DEFAULT_ATTACH_TIMEOUT_MS);
        policy_set_free(s1);

        decider_done(&d);
        assert_null(d.set);
        assert_null(d.last_error);
}

/* No rule matches and there is no default: profile "none", under which no
 * guest event counts. */
static void test_none(void **state) {
        struct decider d;
        struct decide_input in = { .match = { .name = "db-1" } };
        struct decision dec = {};
        bool overridden = true;

        decider_init(&d, PROFILES "rules:\n  - { match: { name: \"web-*\" }, profile: tenant-a }\n", NULL);
        assert_null(decider_default_profile(&d, &overridden));
        assert_false(overridden);

        assert_int_equal(decide(&d, &in, &dec), 0);
        assert_string_equal(dec.profile, "none");
        assert_string_equal(dec.source, "none");
        assert_false(dec.default_missing);
        assert_empty_allowlist(dec.filter, "none");
        /* not one of the policy's filters: a fresh one */
        for (size_t i = 0; i < d.set->policy->n_profiles; i++)
                assert_ptr_not_equal(dec.filter, d.set->filters[i]);
        compiled_filter_unref(dec.filter);

        in.match.name = "web-1";
        expect_decision(&d, &in, "tenant-a", "rule:1");
        decider_done(&d);

        /* A policy without any rule: the same. */
        decider_init(&d, PROFILES, NULL);
        expect_decision(&d, &in, "none", "none");
        decider_done(&d);
}

/* No rule matches: settings.default_profile. */
static void test_default(void **state) {
        struct decider d;
        struct decide_input in = { .match = { .name = "db-1" } };
        struct decision dec = {};
        bool overridden = true;

        decider_init(&d, "settings: { default_profile: fallback }\n" PROFILES
                         "rules:\n  - { match: { name: \"web-*\" }, profile: tenant-a }\n", NULL);
        assert_string_equal(decider_default_profile(&d, &overridden), "fallback");
        assert_false(overridden);

        assert_int_equal(decide(&d, &in, &dec), 0);
        assert_string_equal(dec.profile, "fallback");
        assert_string_equal(dec.source, "default");
        assert_false(dec.default_missing);
        assert_ptr_equal(dec.filter, d.set->filters[policy_set_find(d.set, "fallback")]);
        compiled_filter_unref(dec.filter);

        in.match.name = "web-2";
        expect_decision(&d, &in, "tenant-a", "rule:1");
        decider_done(&d);
}

/* Rules are tried in order; the first that holds decides, even when a
 * later one would hold too. */
static void test_first_match_wins(void **state) {
        struct decider d;
        char *gold[] = { (char *) "tier=gold", NULL };
        struct match_input m = { .name = "web-1", .labels = gold };

        decider_init(&d, PROFILES
                     "rules:\n"
                     "  - { match: { name: \"db-*\" }, profile: tenant-b }\n"
                     "  - { match: { name: \"web-*\" }, profile: tenant-a }\n"
                     "  - { match: { label.tier: gold }, profile: trusted }\n"
                     "  - { match: {}, profile: fallback }\n", NULL);

        assert_string_equal(source_of(&d, &m), "rule:2");       /* and rule 3 holds too */
        m.name = "other";
        assert_string_equal(source_of(&d, &m), "rule:3");
        m.labels = NULL;
        /* an empty match holds for every VM, even one that claims nothing */
        assert_string_equal(source_of(&d, &m), "rule:4");
        m = (struct match_input) {};
        assert_string_equal(source_of(&d, &m), "rule:4");
        m.name = "db-9";
        assert_string_equal(source_of(&d, &m), "rule:1");
        decider_done(&d);
}

/* Every key of one match must hold: one that does not sinks the rule. */
static void test_all_keys_must_hold(void **state) {
        struct decider d;
        char *labels[] = { (char *) "tier=gold", (char *) "team=db", NULL };
        char *other_team[] = { (char *) "tier=gold", (char *) "team=web", NULL };
        struct match_input m = { .name = "vm-1", .uuid = "1234-5678", .client = "preload", .labels = labels };

        decider_init(&d, "settings: { default_profile: fallback }\n" PROFILES
                     "rules:\n"
                     "  - match: { name: vm-1, uuid: \"1234-*\", client: preload, label.tier: gold, label.team: db }\n"
                     "    profile: tenant-a\n", NULL);

        assert_string_equal(source_of(&d, &m), "rule:1");
        m.name = "vm-2";
        assert_string_equal(source_of(&d, &m), "default");
        m.name = "vm-1";
        m.uuid = "9999-5678";
        assert_string_equal(source_of(&d, &m), "default");
        m.uuid = "1234-5678";
        m.client = "library";
        assert_string_equal(source_of(&d, &m), "default");
        m.client = "preload";
        m.labels = other_team;
        assert_string_equal(source_of(&d, &m), "default");
        m.labels = labels;
        assert_string_equal(source_of(&d, &m), "rule:1");      /* each miss was the one key */
        decider_done(&d);
}

/* Values are fnmatch(3) globs without flags: case matters, '*' crosses '/'. */
static void test_globs(void **state) {
        static const struct {
                const char *name, *path, *source;
        } cases[] = {
                { "web-1", NULL, "rule:1" },
                { "web-12", NULL, "default" },          /* '?' is one character */
                { "web-", NULL, "default" },
                { "WEB-1", NULL, "default" },
                { "db-a", NULL, "rule:2" },
                { "db-b", NULL, "rule:2" },
                { "db-c", NULL, "rule:3" },
                { "db-ab", NULL, "default" },
                { "db-", NULL, "default" },
                { "cache-7x", NULL, "rule:4" },
                { "cache-x7", NULL, "default" },
                { "x", "/srv/a/b/c", "rule:5" },
                { "x", "/srv/", "rule:5" },             /* '*' is also nothing */
                { "x", "/srv", "default" },
                { "x", "/var/srv/a", "default" },       /* anchored at both ends */
                { "lit*", NULL, "rule:6" },             /* "\\*" is a literal '*' */
                { "lit-", NULL, "default" },
        };
        struct decider d;

        decider_init(&d, "settings: { default_profile: fallback }\n" PROFILES
                     "rules:\n"
                     "  - { match: { name: \"web-?\" }, profile: tenant-a }\n"
                     "  - { match: { name: \"db-[ab]\" }, profile: tenant-a }\n"
                     "  - { match: { name: \"db-[!ab]\" }, profile: tenant-a }\n"
                     "  - { match: { name: \"cache-[0-9]*\" }, profile: tenant-a }\n"
                     "  - { match: { label.path: \"/srv/*\" }, profile: tenant-a }\n"
                     "  - { match: { name: 'lit\\*' }, profile: tenant-a }\n", NULL);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char label[64];
                char *labels[] = { label, NULL };
                struct match_input m = { .name = cases[i].name, .labels = cases[i].path ? labels : NULL };
                const char *got;

                snprintf(label, sizeof(label), "path=%s", cases[i].path ? cases[i].path : "");
                got = source_of(&d, &m);
                if (!streq(got, cases[i].source))
                        fail_msg("name '%s' path '%s': got %s, expected %s", cases[i].name,
                                 strna(cases[i].path), got, cases[i].source);
        }
        decider_done(&d);
}

/* name, uuid, client and label.<key>: what the VMM claims.  A claim that is
 * absent is unknown, and unknown matches nothing, not even "*". */
static void test_claimed_keys(void **state) {
        struct decider d;
        char *gold[] = { (char *) "team=db", (char *) "tier=gold", NULL };
        char *golden[] = { (char *) "tier=golden", NULL };
        char *prefixed[] = { (char *) "tiers=gold", (char *) "tier2=gold", (char *) "tier", NULL };
        char *short_key[] = { (char *) "t=1", NULL };
        char *equals[] = { (char *) "k=a=b", NULL };
        struct match_input m = {};

        decider_init(&d, "settings: { default_profile: fallback }\n" PROFILES
                     "rules:\n"
                     "  - { match: { uuid: \"5678-*\" }, profile: tenant-a }\n"      /* 1 */
                     "  - { match: { client: preload }, profile: tenant-a }\n"       /* 2 */
                     "  - { match: { label.tier: gold }, profile: tenant-a }\n"      /* 3 */
                     "  - { match: { label.t: \"*\" }, profile: tenant-a }\n"        /* 4 */
                     "  - { match: { label.k: \"a=*\" }, profile: tenant-a }\n"      /* 5 */
                     "  - { match: { name: \"*\" }, profile: tenant-b }\n",          /* 6 */
                     NULL);

        /* nothing claimed: not even name "*" */
        assert_string_equal(source_of(&d, &m), "default");
        m.name = "";
        assert_string_equal(source_of(&d, &m), "rule:6");       /* empty is a value */
        m.name = NULL;
        m.uuid = "5678-abcd";
        assert_string_equal(source_of(&d, &m), "rule:1");
        m.uuid = "1234-5678";
        assert_string_equal(source_of(&d, &m), "default");
        m.uuid = NULL;
        m.client = "preload";
        assert_string_equal(source_of(&d, &m), "rule:2");
        m.client = "library";
        assert_string_equal(source_of(&d, &m), "default");
        m.client = NULL;

        m.labels = gold;
        assert_string_equal(source_of(&d, &m), "rule:3");
        m.labels = golden;
        assert_string_equal(source_of(&d, &m), "default");
        /* label.tier is the label called exactly "tier"; label.t is not a
         * prefix of it either */
        m.labels = prefixed;
        assert_string_equal(source_of(&d, &m), "default");
        m.labels = short_key;
        assert_string_equal(source_of(&d, &m), "rule:4");
        m.labels = equals;
        assert_string_equal(source_of(&d, &m), "rule:5");       /* the value runs to the end */
        decider_done(&d);
}

/* The facts the daemon reads itself, each on its own rule; then each one
 * unknown, as for a VMM outside any unit, or with no facts at all. */
static void test_fact_keys(void **state) {
        static const struct {
                const char *key, *glob;
                unsigned group;
        } keys[] = {
                { "exe", "/usr/bin/qemu-*", PROC_FACT_EXE },
                { "comm", "qemu-*", 0 },
                { "uid", "107", PROC_FACT_IDS },
                { "gid", "3?", PROC_FACT_IDS },
                { "user", "qemu", PROC_FACT_NAMES },
                { "group", "kvm", PROC_FACT_NAMES },
                { "cgroup", "/machine.slice/*", PROC_FACT_CGROUP },
                { "unit", "machine-qemu-*.scope", PROC_FACT_UNIT },
                { "slice", "machine.slice", PROC_FACT_SLICE },
                { "machine", "qemu-[0-9]-*", PROC_FACT_MACHINE },
        };
        _cleanup_(proc_facts_done) struct proc_facts f = {};
        _cleanup_free_ char *yaml = NULL;
        size_t size = 0;
        struct decider d;
        FILE *y;

        /* Rule i + 1: { label.k: <key>, <key>: <glob> }; rule n + i + 1 the
         * same with "*", which any known value matches. */
        y = open_memstream(&yaml, &size);
        assert_non_null(y);
        fputs("settings: { default_profile: fallback }\n" PROFILES "rules:\n", y);
        for (int any = 0; any <= 1; any++)
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        fprintf(y, "  - { match: { label.k: %s%s, %s: \"%s\" }, profile: tenant-a }\n",
                                any ? "any-" : "", keys[i].key, keys[i].key, any ? "*" : keys[i].glob);
        assert_int_equal(fclose(y), 0);
        decider_init(&d, yaml, NULL);

        for (int any = 0; any <= 1; any++)
                for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                        char label[32], rule[16];
                        char *labels[] = { label, NULL };
                        struct match_input m = { .labels = labels, .facts = &f };
                        char **field = NULL;

                        snprintf(label, sizeof(label), "k=%s%s", any ? "any-" : "", keys[i].key);
                        snprintf(rule, sizeof(rule), "rule:%zu", any * ELEMENTSOF(keys) + i + 1);

                        facts_all(&f);
                        if (!streq(source_of(&d, &m), rule))
                                fail_msg("%s: known fact: %s, expected %s", label, source_of(&d, &m), rule);

                        /* no facts at all (the process could not be read) */
                        m.facts = NULL;
                        if (!streq(source_of(&d, &m), "default"))
                                fail_msg("%s: no facts: %s", label, source_of(&d, &m));
                        m.facts = &f;

                        /* the one fact unknown: its field NULL, or its group not read */
                        if (streq(keys[i].key, "exe"))
                                field = &f.exe;
                        else if (streq(keys[i].key, "comm"))
                                field = &f.comm;
                        else if (streq(keys[i].key, "user"))
                                field = &f.user;
                        else if (streq(keys[i].key, "group"))
                                field = &f.group;
                        else if (streq(keys[i].key, "cgroup"))
                                field = &f.cgroup;
                        else if (streq(keys[i].key, "unit"))
                                field = &f.unit;
                        else if (streq(keys[i].key, "slice"))
                                field = &f.slice;
                        else if (streq(keys[i].key, "machine"))
                                field = &f.machine;
                        if (field) {
                                set_dup(field, NULL);
                                if (!streq(source_of(&d, &m), "default"))
                                        fail_msg("%s: NULL field: %s", label, source_of(&d, &m));
                        }
                        if (keys[i].group != 0) {
                                /* Read, say, uid 107 back, but the group not marked
                                 * read, and nothing to read it with: unknown. */
                                facts_all(&f);
                                f.loaded &= ~keys[i].group;
                                if (!streq(source_of(&d, &m), "default"))
                                        fail_msg("%s: group unread: %s", label, source_of(&d, &m));
                        }
                }
        decider_done(&d);
}

/* An unread uid is 0 in the struct, not root: a rule for uid 0 must not
 * take it for one. */
static void test_unread_uid_is_not_root(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = { .pid = 4242 };
        struct match_input m = { .facts = &f };
        struct decider d;

        decider_init(&d, "settings: { default_profile: fallback }\n" PROFILES
                     "rules:\n  - { match: { uid: \"0\" }, profile: tenant-a }\n", NULL);
        assert_string_equal(source_of(&d, &m), "default");
        f.loaded = PROC_FACT_IDS;
        assert_string_equal(source_of(&d, &m), "rule:1");
        f.uid = 1000;
        assert_string_equal(source_of(&d, &m), "default");
        decider_done(&d);
}

/* Facts are read only when a rule asks about them, after the rule's claimed
 * keys held (whatever order the file gives them in), and once. */
static void test_facts_read_lazily(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = { .pid = 4242 };
        char *standard[] = { (char *) "tier=standard", NULL };
        char *plain[] = { (char *) "tier=plain", NULL };
        char *names[] = { (char *) "tier=names", NULL };
        struct match_input m = { .labels = standard, .facts = &f, .load_facts = fake_load_facts };
        struct decider d;

        decider_init(&d, "settings: { default_profile: fallback }\n" PROFILES
                     "rules:\n"
                     "  - { match: { exe: \"*\", label.tier: trusted }, profile: trusted }\n"
                     "  - { match: { label.tier: standard, unit: \"machine-*\" }, profile: tenant-b }\n"
                     "  - { match: { user: qemu, label.tier: names }, profile: tenant-a }\n"
                     "  - { match: { uid: \"0\" }, profile: tenant-a }\n", NULL);
        loader_reset();
        loader.truth = (struct proc_facts) { .uid = 0, .gid = 0, .exe = (char *) "/usr/bin/qemu",
                                             .unit = (char *) "machine-qemu-1-web.scope",
                                             .user = (char *) "qemu", .group = (char *) "kvm" };

        /* Rule 1 fails on its label before its exe is read; rule 2 reads the unit. */
        assert_string_equal(source_of(&d, &m), "rule:2");
        assert_int_equal(loader.calls, 1);
        assert_int_equal(loader.asked, PROC_FACT_UNIT);
        assert_null(f.exe);
        assert_string_equal(f.unit, "machine-qemu-1-web.scope");

        /* Read once: the next decision for the same VM reads nothing. */
        assert_string_equal(source_of(&d, &m), "rule:2");
        assert_int_equal(loader.calls, 1);

        /* Neither rule 1 nor 2 nor 3 gets past its label: only rule 4's ids are read. */
        proc_facts_done(&f);
        f.pid = 4242;
        loader_reset();
        loader.truth = (struct proc_facts) { .uid = 0, .unit = (char *) "machine-qemu-1-web.scope",
                                             .user = (char *) "root" };
        m.labels = plain;
        assert_string_equal(source_of(&d, &m), "rule:4");
        assert_int_equal(loader.calls, 1);
        assert_int_equal(loader.asked, PROC_FACT_IDS);
        assert_null(f.unit);

        /* user asks for the names group only (proc_facts_load() adds the ids) */
        proc_facts_done(&f);
        f.pid = 4242;
        loader_reset();
        loader.truth = (struct proc_facts) { .uid = 107, .user = (char *) "qemu", .group = (char *) "kvm" };
        m.labels = names;
        assert_string_equal(source_of(&d, &m), "rule:3");
        assert_int_equal(loader.calls, 1);
        assert_int_equal(loader.last_mask, PROC_FACT_NAMES);

        /* Without a loader, what is not read yet stays unknown: no rule 3 or 4. */
        proc_facts_done(&f);
        f.pid = 4242;
        loader_reset();
        m.load_facts = NULL;
        assert_string_equal(source_of(&d, &m), "default");
        assert_int_equal(f.loaded, 0);
        decider_done(&d);
}

/* A fact that cannot be read (the process went away, systemd did not
 * answer) is unknown: its rule does not match, later rules still can. */
static void test_loader_error_is_unknown(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = { .pid = 4242 };
        char *standard[] = { (char *) "tier=standard", NULL };
        struct match_input m = { .labels = standard, .facts = &f, .load_facts = fake_load_facts };
        struct decider d;

        decider_init(&d, "settings: { default_profile: fallback }\n" PROFILES
                     "rules:\n"
                     "  - { match: { unit: \"*\" }, profile: tenant-b }\n"
                     "  - { match: { uid: \"*\" }, profile: tenant-b }\n"
                     "  - { match: { label.tier: standard }, profile: tenant-a }\n", NULL);
        loader_reset();
        loader.truth = (struct proc_facts) { .uid = 107, .unit = (char *) "machine-qemu-1-web.scope" };
        loader.error = -ESRCH;

        assert_string_equal(source_of(&d, &m), "rule:3");
        assert_int_equal(loader.calls, 2);
        assert_int_equal(loader.asked, PROC_FACT_UNIT | PROC_FACT_IDS);
        assert_int_equal(f.loaded, 0);
        assert_null(f.unit);

        /* Not remembered as unknown for good: the next decision asks again. */
        loader.error = 0;
        assert_string_equal(source_of(&d, &m), "rule:1");
        assert_int_equal(loader.calls, 3);
        decider_done(&d);
}

/* "rule:<n>" counts from 1 across the whole policy: a conf.d fragment's
 * rules follow those of the main file. */
static void test_rule_numbers_across_files(void **state) {
        struct decider d;
        struct match_input m = { .name = "ci-7" };

        decider_init(&d, PROFILES
                     "rules:\n"
                     "  - { match: { name: \"web-*\" }, profile: tenant-a }\n"
                     "  - { match: { name: \"db-*\" }, profile: tenant-b }\n",
                     "profiles:\n  ci: { extends: tenant-a }\n"
                     "rules:\n  - { match: { name: \"ci-*\" }, profile: ci }\n");
        assert_int_equal(d.set->policy->n_rules, 3);
        expect_decision(&d, &(struct decide_input) { .match = m }, "ci", "rule:3");
        /* Where each is written, which is what people are shown. */
        expect_rule_at(&d, &m, "conf.d/50-test.yaml", 4);
        m.name = "db-1";
        assert_string_equal(source_of(&d, &m), "rule:2");
        expect_rule_at(&d, &m, "pmufilterd.yaml", 8);
        m.name = "web-1";
        assert_string_equal(source_of(&d, &m), "rule:1");
        expect_rule_at(&d, &m, "pmufilterd.yaml", 7);
        m.name = "other";                               /* no rule: no place */
        expect_rule_at(&d, &m, NULL, 0);
        decider_done(&d);
}

/* A profile set over D-Bus for this VM beats every rule and the default. */
static void test_override_beats_rules(void **state) {
        struct decider d;
        struct decide_input in = { .match = { .name = "web-1" }, .override = "tenant-b", .override_runtime = true };

        decider_init(&d, "settings: { default_profile: fallback }\n" PROFILES
                     "rules:\n  - { match: { name: \"web-*\" }, profile: tenant-a }\n", NULL);
        expect_decision(&d, &in, "tenant-b", "runtime");
        in.override_runtime = false;
        expect_decision(&d, &in, "tenant-b", "persistent");
        in.match.name = "db-1";                         /* beats the default too */
        expect_decision(&d, &in, "tenant-b", "persistent");

        /* A profile no longer in the policy (removed by a reload) is ignored:
         * the rules and the default decide as if there were none. */
        in.override = "gone";
        in.override_runtime = true;
        expect_decision(&d, &in, "fallback", "default");
        in.match.name = "web-1";
        expect_decision(&d, &in, "tenant-a", "rule:1");
        decider_done(&d);
}

/* An identity: the VMM's uid (verified), a machine (verified) or none, claims. */
#define ID(u, m, uu, n) ((struct vm_identity) { .have_uid = true, .uid = (u), .machine_uuid = (m), .uuid = (uu), .name = (n) })

/* What the decider finds for a VM: within one store the machine, else the
 * claimed UUID before the name, each with the VMM's uid; the runtime store
 * before the persistent one. */
static void test_overrides_lookup(void **state) {
        struct decider d = {};
        struct vm_identity vm1 = ID(0, NULL, "u-1", "vm-1"), anon = { .have_uid = true };
        bool runtime = true;

        assert_null(overrides_lookup(&d, &vm1, &runtime));
        assert_null(overrides_lookup(&d, &anon, NULL));

        assert_int_equal(overrides_set(&d, "uid:0/name:vm-1", "tenant-a", false), 0);
        assert_string_equal(overrides_lookup(&d, &ID(0, NULL, NULL, "vm-1"), &runtime), "tenant-a");
        assert_false(runtime);
        /* a UUID with nothing recorded under it falls back to the name */
        assert_string_equal(overrides_lookup(&d, &vm1, NULL), "tenant-a");
        assert_null(overrides_lookup(&d, &ID(0, NULL, "u-1", NULL), NULL));
        assert_null(overrides_lookup(&d, &ID(0, NULL, "u-2", "vm-2"), NULL));

        assert_int_equal(overrides_set(&d, "uid:0/uuid:u-1", "tenant-b", false), 0);
        assert_string_equal(overrides_lookup(&d, &vm1, NULL), "tenant-b");
        assert_string_equal(overrides_lookup(&d, &ID(0, NULL, "u-9", "vm-1"), NULL), "tenant-a");
        assert_string_equal(overrides_lookup(&d, &ID(0, NULL, "u-1", NULL), NULL), "tenant-b");

        /* A runtime change by name beats a persistent one by UUID. */
        assert_int_equal(overrides_set(&d, "uid:0/name:vm-1", "trusted", true), 0);
        runtime = false;
        assert_string_equal(overrides_lookup(&d, &vm1, &runtime), "trusted");
        assert_true(runtime);
        assert_string_equal(overrides_lookup(&d, &ID(0, NULL, "u-1", NULL), &runtime), "tenant-b");
        assert_false(runtime);

        /* Within the runtime store, the UUID again first. */
        assert_int_equal(overrides_set(&d, "uid:0/uuid:u-1", "fallback", true), 0);
        assert_string_equal(overrides_lookup(&d, &vm1, &runtime), "fallback");
        assert_true(runtime);

        /* A name is not a UUID: the prefixes keep them apart. */
        assert_null(overrides_lookup(&d, &ID(0, NULL, NULL, "u-1"), NULL));
        assert_null(overrides_lookup(&d, &ID(0, NULL, "vm-1", NULL), NULL));
        decider_done(&d);
}

/* The theft a hostile test found: a change set on one VM must not reach
 * another VM that merely claims the same UUID or name from another uid,
 * nor one without a verified uid at all; a VM in a machine is known by the
 * machine alone, whatever it claims. */
static void test_overrides_follow_verified_identity(void **state) {
        struct decider d = {};
        struct vm_identity machine = ID(107, "6f1c2d3e-0000-4000-8000-000000000001", "u-1", "ops-vm");
        char *key = NULL;

        assert_int_equal(overrides_key(&machine, &key), 0);
        assert_string_equal(key, "machine:6f1c2d3e-0000-4000-8000-000000000001");
        assert_true(overrides_key_verified(key));
        assert_int_equal(overrides_set(&d, key, "trusted", false), 0);
        free(key);

        assert_string_equal(overrides_lookup(&d, &machine, NULL), "trusted");
        /* the same domain started again: another pid, the same machine UUID */
        assert_string_equal(overrides_lookup(&d, &ID(107, "6f1c2d3e-0000-4000-8000-000000000001", NULL, NULL), NULL),
                            "trusted");
        /* a VMM outside that machine claiming its UUID and name, as root too */
        assert_null(overrides_lookup(&d, &ID(107, NULL, "u-1", "ops-vm"), NULL));
        assert_null(overrides_lookup(&d, &ID(0, NULL, "u-1", "ops-vm"), NULL));
        /* another machine */
        assert_null(overrides_lookup(&d, &ID(107, "6f1c2d3e-0000-4000-8000-000000000002", "u-1", "ops-vm"), NULL));

        /* Without a machine: bound to the uid with the claim. */
        assert_int_equal(overrides_key(&ID(1000, NULL, "u-7", "db"), &key), 0);
        assert_string_equal(key, "uid:1000/uuid:u-7");
        assert_false(overrides_key_verified(key));
        assert_int_equal(overrides_set(&d, key, "trusted", false), 0);
        free(key);
        assert_string_equal(overrides_lookup(&d, &ID(1000, NULL, "u-7", "other"), NULL), "trusted");
        assert_null(overrides_lookup(&d, &ID(1001, NULL, "u-7", "db"), NULL));         /* another user */
        assert_null(overrides_lookup(&d, &ID(0, NULL, "u-7", "db"), NULL));            /* root claiming it */
        assert_null(overrides_lookup(&d, &(struct vm_identity) { .uuid = "u-7", .name = "db" }, NULL));
        decider_done(&d);
}

/* The identity the daemon builds when it reads only the facts of mask
 * (deliver_update_override()): a fact not read is absent. */
static struct vm_identity identity_with(const struct vm_identity *full, unsigned mask) {
        struct vm_identity id = *full;

        if (!(mask & PROC_FACT_MACHINE))
                id.machine_uuid = NULL;
        if (!(mask & PROC_FACT_IDS))
                id.have_uid = false;
        return id;
}

/* Reading only the facts overrides_facts_needed() asks for finds exactly
 * what reading them all finds: no change reaches a VM it would not reach
 * otherwise, none is missed.  Every identity against every store. */
static void test_overrides_facts_needed(void **state) {
        static const char *const keys[] = {
                "machine:6f1c2d3e-0000-4000-8000-000000000001",
                "uid:107/uuid:u-1", "uid:0/uuid:u-1", "uid:107/name:ops-vm", "uid:0/name:db",
                "uid:107/name:u-1", "uid:107/uuid:ops-vm",      /* a claim under the other kind */
                "uuid:u-1", "name:db",                          /* version 1, not migrated */
        };
        static const char *const machines[] = { NULL, "6f1c2d3e-0000-4000-8000-000000000001",
                                                "6f1c2d3e-0000-4000-8000-000000000002" };
        static const char *const uuids[] = { NULL, "u-1", "u-2", "ops-vm" }, *const names[] = { NULL, "ops-vm", "db", "u-1" };
        static const uid_t uids[] = { 0, 107 };
        unsigned checked = 0, saved = 0;

        /* Each subset of the keys, each key runtime or persistent by a bit of
         * a hash of the subset (not another key's bit: every key is both). */
        for (unsigned set = 0; set < (1u << ELEMENTSOF(keys)); set++) {
                struct decider d = {};

                for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                        if (set & (1u << k))
                                assert_int_equal(overrides_set(&d, keys[k], k % 2 ? "tenant-a" : "tenant-b",
                                                               ((set * 2654435761u) >> (k + 7)) & 1), 0);
                for (size_t m = 0; m < ELEMENTSOF(machines); m++)
                        for (size_t u = 0; u < ELEMENTSOF(uuids); u++)
                                for (size_t n = 0; n < ELEMENTSOF(names); n++)
                                        for (size_t i = 0; i < ELEMENTSOF(uids) * 2; i++) {
                                                struct vm_identity full = {
                                                        .machine_uuid = machines[m],
                                                        .have_uid = i % 2,
                                                        .uid = uids[i / 2],
                                                        .uuid = uuids[u],
                                                        .name = names[n],
                                                }, part;
                                                unsigned mask = overrides_facts_needed(&d, full.uuid, full.name);
                                                bool rt_full = false, rt_part = false;
                                                const char *a, *b;

                                                assert_int_equal(mask & ~(PROC_FACT_IDS | PROC_FACT_MACHINE), 0);
                                                part = identity_with(&full, mask);
                                                a = overrides_lookup(&d, &full, &rt_full);
                                                b = mask ? overrides_lookup(&d, &part, &rt_part) : NULL;
                                                if (!streq_ptr(a, b) || (a && rt_full != rt_part))
                                                        fail_msg("keys 0x%x, machine %s uuid %s name %s uid %s%u: "
                                                                 "mask 0x%x finds %s, all facts find %s", set,
                                                                 strna(full.machine_uuid), strna(full.uuid),
                                                                 strna(full.name), full.have_uid ? "" : "unknown ",
                                                                 (unsigned) full.uid, mask, strna(b), strna(a));
                                                checked++;
                                                saved += mask != (PROC_FACT_IDS | PROC_FACT_MACHINE);
                                        }
                decider_done(&d);
        }
        assert_true(checked > 0 && saved > 0);

        /* No change at all, or none naming the claims: no facts. */
        {
                struct decider d = {};

                assert_int_equal(overrides_facts_needed(&d, "u-1", "web"), 0);
                assert_int_equal(overrides_set(&d, "uid:0/uuid:u-9", "tenant-a", true), 0);
                assert_int_equal(overrides_facts_needed(&d, "u-1", "web"), 0);
                assert_int_equal(overrides_facts_needed(&d, NULL, NULL), 0);
                assert_int_equal(overrides_facts_needed(&d, "u-9", NULL), PROC_FACT_IDS | PROC_FACT_MACHINE);
                /* a claimed name equal to a UUID key's value is not that claim */
                assert_int_equal(overrides_facts_needed(&d, NULL, "u-9"), 0);
                assert_int_equal(overrides_set(&d, "machine:6f1c2d3e-0000-4000-8000-000000000001", "trusted", false), 0);
                assert_int_equal(overrides_facts_needed(&d, "u-1", "web"), PROC_FACT_MACHINE);
                decider_done(&d);
        }
}

static void test_overrides_set(void **state) {
        struct decider d = {};
        bool runtime = false;

        assert_int_equal(overrides_set(&d, "uid:0/uuid:u-1", "tenant-a", true), 0);
        assert_string_equal(state_get(&d.runtime, "uid:0/uuid:u-1"), "tenant-a");
        assert_null(state_get(&d.persistent, "uid:0/uuid:u-1"));

        /* A persistent change clears the runtime one that would shadow it. */
        assert_int_equal(overrides_set(&d, "uid:0/uuid:u-1", "tenant-b", false), 0);
        assert_string_equal(overrides_lookup(&d, &ID(0, NULL, "u-1", NULL), &runtime), "tenant-b");
        assert_false(runtime);
        assert_null(state_get(&d.runtime, "uid:0/uuid:u-1"));

        /* A runtime change on top leaves the persistent one underneath. */
        assert_int_equal(overrides_set(&d, "uid:0/uuid:u-1", "trusted", true), 0);
        assert_string_equal(overrides_lookup(&d, &ID(0, NULL, "u-1", NULL), &runtime), "trusted");
        assert_true(runtime);
        assert_string_equal(state_get(&d.persistent, "uid:0/uuid:u-1"), "tenant-b");

        /* A runtime reset drops the runtime change only... */
        assert_int_equal(overrides_set(&d, "uid:0/uuid:u-1", NULL, true), 0);
        assert_string_equal(overrides_lookup(&d, &ID(0, NULL, "u-1", NULL), &runtime), "tenant-b");
        assert_false(runtime);

        /* ...a persistent reset both. */
        assert_int_equal(overrides_set(&d, "uid:0/uuid:u-1", "trusted", true), 0);
        assert_int_equal(overrides_set(&d, "uid:0/uuid:u-1", NULL, false), 0);
        assert_null(overrides_lookup(&d, &ID(0, NULL, "u-1", NULL), NULL));
        assert_null(state_get(&d.runtime, "uid:0/uuid:u-1"));
        assert_null(state_get(&d.persistent, "uid:0/uuid:u-1"));

        /* Another key is left alone. */
        assert_int_equal(overrides_set(&d, "uid:0/name:vm-1", "tenant-a", false), 0);
        assert_int_equal(overrides_set(&d, "uid:0/uuid:u-1", NULL, false), 0);
        assert_string_equal(overrides_lookup(&d, &ID(0, NULL, NULL, "vm-1"), NULL), "tenant-a");
        decider_done(&d);
}

/* An override found by overrides_lookup() is what decide() takes. */
static void test_overrides_decide(void **state) {
        struct decider d;
        struct decide_input in = { .match = { .name = "web-1", .uuid = "u-1" } };
        struct vm_identity id = ID(0, NULL, "u-1", "web-1");
        _cleanup_free_ char *key = NULL;

        decider_init(&d, PROFILES "rules:\n  - { match: { name: \"web-*\" }, profile: tenant-a }\n", NULL);
        assert_int_equal(overrides_key(&id, &key), 0);
        assert_int_equal(overrides_set(&d, key, "tenant-b", false), 0);
        in.override = overrides_lookup(&d, &id, &in.override_runtime);
        expect_decision(&d, &in, "tenant-b", "persistent");

        assert_int_equal(overrides_set(&d, key, "trusted", true), 0);
        in.override = overrides_lookup(&d, &id, &in.override_runtime);
        expect_decision(&d, &in, "trusted", "runtime");

        assert_int_equal(overrides_set(&d, key, NULL, false), 0);
        in.override = overrides_lookup(&d, &id, &in.override_runtime);
        assert_null(in.override);
        expect_decision(&d, &in, "tenant-a", "rule:1");
        decider_done(&d);
}

static void test_overrides_key(void **state) {
        char *key = NULL, long_a[400], long_b[400], buf[512];

        assert_int_equal(overrides_key(&ID(0, NULL, "u-1", "vm-1"), &key), 0);
        assert_string_equal(key, "uid:0/uuid:u-1");     /* the stabler claim */
        assert_string_equal(overrides_describe(key, buf, sizeof(buf)), "uid 0 with the claimed uuid 'u-1'");
        free(key);
        assert_int_equal(overrides_key(&ID(0, NULL, "u-1", NULL), &key), 0);
        assert_string_equal(key, "uid:0/uuid:u-1");
        free(key);
        assert_int_equal(overrides_key(&ID(5, NULL, NULL, "vm-1"), &key), 0);
        assert_string_equal(key, "uid:5/name:vm-1");
        assert_string_equal(overrides_describe(key, buf, sizeof(buf)), "uid 5 with the claimed name 'vm-1'");
        free(key);
        assert_int_equal(overrides_key(&ID(5, "m-1", NULL, "vm-1"), &key), 0);
        assert_string_equal(overrides_describe(key, buf, sizeof(buf)), "machine m-1");
        free(key);
        key = NULL;
        assert_int_equal(overrides_key(&ID(0, NULL, NULL, NULL), &key), -ENOENT);
        assert_null(key);
        /* claims with no verified uid bind to nothing */
        assert_int_equal(overrides_key(&(struct vm_identity) { .uuid = "u-1" }, &key), -ENOENT);
        assert_null(key);

        /* Long names are kept whole: two that differ only at the end are
         * two keys, and a change for one is not found for the other. */
        memset(long_a, 'x', sizeof(long_a) - 1);
        long_a[sizeof(long_a) - 1] = 0;
        memcpy(long_b, long_a, sizeof(long_b));
        long_b[sizeof(long_b) - 2] = 'y';
        assert_int_equal(overrides_key(&ID(0, NULL, NULL, long_a), &key), 0);
        assert_int_equal(strlen(key), strlen("uid:0/name:") + sizeof(long_a) - 1);
        {
                struct decider d;

                decider_init(&d, PROFILES, NULL);
                assert_int_equal(overrides_set(&d, key, "tenant-b", false), 0);
                assert_string_equal(overrides_lookup(&d, &ID(0, NULL, NULL, long_a), NULL), "tenant-b");
                assert_null(overrides_lookup(&d, &ID(0, NULL, NULL, long_b), NULL));
                decider_done(&d);
        }
        free(key);
}

/* Version 1's keys are told apart from the current ones, to be migrated. */
static void test_overrides_legacy_keys(void **state) {
        const char *kind = NULL, *value = NULL;

        assert_true(overrides_key_legacy("uuid:6F1C", &kind, &value));
        assert_string_equal(kind, "uuid");
        assert_string_equal(value, "6F1C");
        assert_true(overrides_key_legacy("name:ops-db", &kind, &value));
        assert_string_equal(kind, "name");
        assert_string_equal(value, "ops-db");
        assert_false(overrides_key_legacy("uid:0/name:ops-db", &kind, &value));
        assert_false(overrides_key_legacy("machine:6f1c", &kind, &value));
}

/* The default profile: runtime beats persistent beats settings.default_profile. */
static void test_default_overrides(void **state) {
        struct decider d;
        struct decide_input in = { .match = { .name = "db-1" } };
        bool overridden = true;

        decider_init(&d, "settings: { default_profile: fallback }\n" PROFILES
                     "rules:\n  - { match: { name: \"web-*\" }, profile: tenant-a }\n", NULL);
        assert_string_equal(decider_default_profile(&d, &overridden), "fallback");
        assert_false(overridden);

        assert_int_equal(overrides_set_default(&d, "tenant-b", false), 0);
        assert_string_equal(decider_default_profile(&d, &overridden), "tenant-b");
        assert_true(overridden);
        expect_decision(&d, &in, "tenant-b", "default");

        assert_int_equal(overrides_set_default(&d, "trusted", true), 0);
        assert_string_equal(decider_default_profile(&d, NULL), "trusted");
        expect_decision(&d, &in, "trusted", "default");
        assert_string_equal(d.persistent.default_profile, "tenant-b");

        /* A persistent change clears the runtime one that would shadow it. */
        assert_int_equal(overrides_set_default(&d, "tenant-a", false), 0);
        assert_string_equal(decider_default_profile(&d, &overridden), "tenant-a");
        assert_true(overridden);
        assert_null(d.runtime.default_profile);

        /* A VM a rule matches does not get the default. */
        in.match.name = "web-1";
        expect_decision(&d, &in, "tenant-a", "rule:1");
        decider_done(&d);

        /* In lockdown the default set over D-Bus is still what is reported. */
        d = (struct decider) { .lockdown = true };
        assert_int_equal(overrides_set_default(&d, "tenant-b", true), 0);
        assert_string_equal(decider_default_profile(&d, &overridden), "tenant-b");
        assert_true(overridden);
        expect_decision(&d, &in, "lockdown", "lockdown");
        decider_done(&d);
}

/* A default set over D-Bus that this policy does not have (a reload removed
 * it): settings.default_profile is used, and the decision says so. */
static void test_default_missing(void **state) {
        struct decider d;
        struct decide_input in = { .match = { .name = "db-1" } };
        struct decision dec = {};

        decider_init(&d, "settings: { default_profile: fallback }\n" PROFILES
                     "rules:\n  - { match: { name: \"web-*\" }, profile: tenant-a }\n", NULL);
        assert_int_equal(overrides_set_default(&d, "gone", true), 0);
        assert_string_equal(decider_default_profile(&d, NULL), "gone");

        assert_int_equal(decide(&d, &in, &dec), 0);
        assert_string_equal(dec.profile, "fallback");
        assert_string_equal(dec.source, "default");
        assert_true(dec.default_missing);
        assert_ptr_equal(dec.filter, d.set->filters[policy_set_find(d.set, "fallback")]);
        compiled_filter_unref(dec.filter);

        /* Only the VMs that fall to the default are concerned. */
        in.match.name = "web-1";
        dec = (struct decision) {};
        assert_int_equal(decide(&d, &in, &dec), 0);
        assert_string_equal(dec.source, "rule:1");
        assert_false(dec.default_missing);
        compiled_filter_unref(dec.filter);
        decider_done(&d);

        /* Nor a settings.default_profile: profile "none". */
        decider_init(&d, PROFILES, NULL);
        assert_int_equal(overrides_set_default(&d, "gone", false), 0);
        in.match.name = "db-1";
        dec = (struct decision) {};
        assert_int_equal(decide(&d, &in, &dec), 0);
        assert_string_equal(dec.profile, "none");
        assert_string_equal(dec.source, "none");
        assert_true(dec.default_missing);
        assert_empty_allowlist(dec.filter, "none");
        compiled_filter_unref(dec.filter);
        decider_done(&d);
}

/* A tenant profile is an allowlist, a trusted one a denylist; a decision
 * holds the set's own filter by reference, and names the profile. */
static void test_tiers(void **state) {
        struct decider d;
        char *trusted[] = { (char *) "tier=trusted", NULL };
        struct decide_input in = { .match = { .name = "web-1" } };
        struct decision dec = {}, dec2 = {};
        int i;

        decider_init(&d, PROFILES
                     "rules:\n"
                     "  - { match: { uid: \"0\", label.tier: trusted }, profile: trusted }\n"
                     "  - { match: { name: \"web-*\" }, profile: tenant-a }\n", NULL);

        i = policy_set_find(d.set, "tenant-a");
        assert_true(i >= 0);
        assert_int_equal(decide(&d, &in, &dec), 0);
        assert_ptr_equal(dec.filter, d.set->filters[i]);
        assert_ptr_equal(dec.profile, d.set->policy->profiles[i].name);
        assert_int_equal(dec.filter->action, KVM_PMU_EVENT_ALLOW);
        assert_int_equal(dec.filter->flags, 0);
        assert_int_equal(dec.filter->nevents, 2);
        assert_true(dec.filter->events[0] == 0x003c && dec.filter->events[1] == 0x00c0);
        /* the set's reference and the decision's */
        assert_int_equal(dec.filter->n_ref, 2);
        assert_int_equal(decide(&d, &in, &dec2), 0);
        assert_ptr_equal(dec2.filter, dec.filter);
        assert_int_equal(dec.filter->n_ref, 3);
        compiled_filter_unref(dec2.filter);
        compiled_filter_unref(dec.filter);
        assert_true(d.set->filters[i]->n_ref <= 1);     /* back to the set's alone */

        /* The trusted rule needs a fact: a label alone does not reach it. */
        in.match.labels = trusted;
        expect_decision(&d, &in, "tenant-a", "rule:2");

        in.match.facts = &(struct proc_facts) { .uid = 0, .loaded = PROC_FACT_IDS };
        i = policy_set_find(d.set, "trusted");
        assert_true(i >= 0);
        dec = (struct decision) {};
        assert_int_equal(decide(&d, &in, &dec), 0);
        assert_string_equal(dec.source, "rule:1");
        assert_ptr_equal(dec.filter, d.set->filters[i]);
        assert_string_equal(dec.profile, "trusted");
        assert_int_equal(dec.filter->action, KVM_PMU_EVENT_DENY);
        assert_int_equal(dec.filter->nevents, 1);
        assert_true(dec.filter->events[0] == 0x412e);
        compiled_filter_unref(dec.filter);
        decider_done(&d);
}

/* A rule that gives a trusted profile on a claimed label alone is the
 * operator's choice, warned about by policy_validate(): the decision does
 * what the policy says. */
static void test_trusted_on_claimed_label(void **state) {
        static const char yaml[] = PROFILES
                "rules:\n  - { match: { label.tier: trusted }, profile: trusted }\n";
        struct policy *p;
        struct policy_set *s = NULL;
        struct diags warn = {};
        struct decider d = {};
        char *labels[] = { (char *) "tier=trusted", NULL };
        struct decide_input in = { .match = { .labels = labels } };
        struct decision dec = {};

        p = load_policy(yaml, NULL, &warn);
        assert_int_equal(warn.n_errors, 0);
        assert_int_equal(warn.n_warnings, 1);
        assert_non_null(strstr(warn.v[0].message, "VMM-claimed keys only"));
        diags_clear(&warn);
        assert_int_equal(policy_set_compile(p, &intel, &kvm_plain, NULL, &s), 0);
        assert_null(decider_swap(&d, s));

        assert_int_equal(decide(&d, &in, &dec), 0);
        assert_string_equal(dec.profile, "trusted");
        assert_string_equal(dec.source, "rule:1");
        assert_int_equal(dec.filter->action, KVM_PMU_EVENT_DENY);
        compiled_filter_unref(dec.filter);
        decider_done(&d);
}

/* The daemon's load and reload compile the set with policy_set_compile()
 * and log every diagnostic that is not a note (deliver/reload.c): the leak
 * lint is among them, as in `pmufilterctl check`, and the set still loads. */
static void test_leak_lint_reaches_the_daemon(void **state) {
        static const char yaml[] =
                "profiles:\n"
                "  tenant-a:\n"
                "    tier: tenant\n"
                "    events: [ 0x00c0, 0x412e ]\n"
                "  tenant-b:\n"
                "    tier: tenant\n"
                "    events: [ 0x4f2e ]\n"
                "    acknowledge_shared: [ 0x4f2e ]\n"
                "  trusted: { tier: trusted, events: [ 0x412e ] }\n";
        struct policy *p = load_policy(yaml, NULL, NULL);
        struct policy_set *s = NULL;
        struct diags d = {};

        assert_int_equal(policy_set_compile(p, &intel, &kvm_plain, &d, &s), 0);
        assert_non_null(s);
        assert_int_equal(d.n_errors, 0);
        assert_int_equal(d.n_warnings, 1);
        assert_int_equal(d.n, 2);
        assert_int_equal(d.v[0].level, DIAG_WARNING);
        assert_string_equal(d.v[0].file, "pmufilterd.yaml");
        assert_int_equal(d.v[0].line, 4);
        assert_int_equal(d.v[0].column, 23);
        assert_non_null(strstr(d.v[0].message, "profile 'tenant-a' (tier tenant) allows LONGEST_LAT_CACHE.MISS"));
        /* acknowledged: a note, which the daemon does not log */
        assert_int_equal(d.v[1].level, DIAG_NOTE);
        assert_non_null(strstr(d.v[1].message, "profile 'tenant-b' (tier tenant) allows LONGEST_LAT_CACHE.REFERENCE"));
        diags_clear(&d);
        policy_set_free(s);
}

/* Masked events compile for a kernel that has them (the decision carries
 * the flag); a kernel without them fails the whole set, and the policy
 * stays the caller's. */
static void test_masked_events(void **state) {
        static const char yaml[] =
                "profiles:\n"
                "  masked:\n"
                "    tier: tenant\n"
                "    events: [ 0x00c0, { select: 0xb7, umask: any } ]\n"
                "rules:\n  - { match: {}, profile: masked }\n";
        struct decide_input in = {};
        struct decision dec = {};
        struct policy_set *s = NULL;
        _cleanup_free_ char *msg = NULL;
        struct diags diags = {};
        struct decider d = {};
        struct policy *p;

        assert_null(decider_swap(&d, compile_set(yaml, NULL, &kvm_masked)));
        assert_int_equal(decide(&d, &in, &dec), 0);
        assert_string_equal(dec.profile, "masked");
        assert_int_equal(dec.filter->action, KVM_PMU_EVENT_ALLOW);
        assert_int_equal(dec.filter->flags, KVM_PMU_EVENT_FLAG_MASKED_EVENTS);
        assert_int_equal(dec.filter->nevents, 2);
        compiled_filter_unref(dec.filter);
        decider_done(&d);

        p = load_policy(yaml, NULL, NULL);
        assert_int_equal(policy_set_compile(p, &intel, &kvm_plain, &diags, &s), -EINVAL);
        assert_null(s);
        msg = diags_first_error(&diags);
        assert_non_null(msg);
        assert_non_null(strstr(msg, "masked events need Linux 6.3+"));
        diags_clear(&diags);
        policy_free(p);
}

/* A decision's filter outlives the set it came from: a reload must not pull
 * it from under an APPLY in flight. */
static void test_filter_outlives_swap(void **state) {
        struct decider d;
        struct decide_input in = { .match = { .name = "web-1" } };
        struct decision dec = {};
        struct policy_set *old;

        decider_init(&d, PROFILES "rules:\n  - { match: { name: \"web-*\" }, profile: tenant-a }\n", NULL);
        assert_int_equal(decide(&d, &in, &dec), 0);

        old = decider_swap(&d, compile_set(PROFILES "rules:\n  - { match: { name: \"web-*\" }, profile: tenant-b }\n",
                                           NULL, &kvm_plain));
        assert_non_null(old);
        policy_set_free(old);
        /* read after the old set is gone: ASan would tell */
        assert_string_equal(dec.filter->profile, "tenant-a");
        assert_int_equal(dec.filter->nevents, 2);
        assert_true(dec.filter->events[1] == 0x00c0);
        compiled_filter_unref(dec.filter);

        expect_decision(&d, &in, "tenant-b", "rule:1");
        decider_done(&d);
}

static void test_policy_set_find(void **state) {
        struct policy_set *s = compile_set(PROFILES, NULL, &kvm_plain);

        assert_int_equal(s->policy->n_profiles, 4);
        assert_int_equal(policy_set_find(s, "tenant-a"), 0);
        assert_int_equal(policy_set_find(s, "fallback"), 3);
        assert_string_equal(s->policy->profiles[policy_set_find(s, "trusted")].name, "trusted");
        assert_int_equal(policy_set_find(s, "tenant"), -ENOENT);       /* no prefix match */
        assert_int_equal(policy_set_find(s, "TENANT-A"), -ENOENT);
        assert_int_equal(policy_set_find(s, ""), -ENOENT);
        assert_int_equal(policy_set_find(NULL, "tenant-a"), -ENOENT);
        for (size_t i = 0; i < s->policy->n_profiles; i++) {
                assert_non_null(s->filters[i]);
                assert_string_equal(s->filters[i]->profile, s->policy->profiles[i].name);
        }
        assert_null(policy_set_free(s));
        assert_null(policy_set_free(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lockdown),
                cmocka_unit_test(test_none),
                cmocka_unit_test(test_default),
                cmocka_unit_test(test_first_match_wins),
                cmocka_unit_test(test_all_keys_must_hold),
                cmocka_unit_test(test_globs),
                cmocka_unit_test(test_claimed_keys),
                cmocka_unit_test(test_fact_keys),
                cmocka_unit_test(test_unread_uid_is_not_root),
                cmocka_unit_test(test_facts_read_lazily),
                cmocka_unit_test(test_loader_error_is_unknown),
                cmocka_unit_test(test_rule_numbers_across_files),
                cmocka_unit_test(test_override_beats_rules),
                cmocka_unit_test(test_overrides_lookup),
                cmocka_unit_test(test_overrides_facts_needed),
                cmocka_unit_test(test_overrides_set),
                cmocka_unit_test(test_overrides_decide),
                cmocka_unit_test(test_overrides_key),
                cmocka_unit_test(test_overrides_follow_verified_identity),
                cmocka_unit_test(test_overrides_legacy_keys),
                cmocka_unit_test(test_default_overrides),
                cmocka_unit_test(test_default_missing),
                cmocka_unit_test(test_tiers),
                cmocka_unit_test(test_trusted_on_claimed_label),
                cmocka_unit_test(test_masked_events),
                cmocka_unit_test(test_leak_lint_reaches_the_daemon),
                cmocka_unit_test(test_filter_outlives_swap),
                cmocka_unit_test(test_policy_set_find),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
