/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-policy-validate.c — the checks across a merged policy: extends chains
 * (missing parents, cycles, tiers and their inheritance), rule and default
 * profiles, and the trust lint of `pmufilterctl check`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "policy.h"

/* Load one buffer named v.yaml (it must parse) and validate it into d. */
static int load_validate(const char *yaml, struct policy **ret, struct diags *d) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        int r;

        assert_int_equal(policy_new(&p), 0);
        r = policy_load_buffer(p, "v.yaml", yaml, strlen(yaml), d);
        if (r < 0)
                diags_print(d, stderr);
        assert_int_equal(r, 0);
        r = policy_validate(p, d);
        *ret = TAKE_PTR(p);
        return r;
}

static void expect_invalid(const char *yaml, const char *message) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        _cleanup_free_ char *first = NULL;
        struct diags d = {};

        assert_int_equal(load_validate(yaml, &p, &d), -EINVAL);
        first = diags_first_error(&d);
        assert_non_null(first);
        assert_string_equal(first, message);
        diags_clear(&d);
}

/* Valid, with exactly one diagnostic: this warning. */
static void expect_warning(const char *yaml, const char *message) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct diags d = {};

        assert_int_equal(load_validate(yaml, &p, &d), 0);
        assert_int_equal(d.n_errors, 0);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.v[0].level, DIAG_WARNING);
        assert_string_equal(d.v[0].file, "v.yaml");
        {
                _cleanup_free_ char *s = NULL;

                assert_true(asprintf(&s, "%s:%u:%u: warning: %s", d.v[0].file, d.v[0].line, d.v[0].column,
                                     d.v[0].message) > 0);
                assert_string_equal(s, message);
        }
        diags_clear(&d);
}

static void expect_clean(const char *yaml) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct diags d = {};

        assert_int_equal(load_validate(yaml, &p, &d), 0);
        if (d.n > 0)
                diags_print(&d, stderr);
        assert_int_equal(d.n, 0);
}

#define CHAIN_YAML                                              \
        "profiles:\n"                                           \
        "  root:\n"                                             \
        "    tier: tenant\n"                                    \
        "    events: [instructions]\n"                          \
        "    fixed_counters: [0]\n"                             \
        "  mid:\n"                                              \
        "    extends: root\n"                                   \
        "    events: [cycles]\n"                                \
        "    pmu: on\n"                                         \
        "  leaf:\n"                                             \
        "    extends: mid\n"                                    \
        "    tier: tenant\n"                                    \
        "    fixed_counters: auto\n"                            \
        "  off:\n"                                              \
        "    pmu: off\n"                                        \
        "  off-child:\n"                                        \
        "    extends: off\n"

static void test_chain(void **state) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        _cleanup_free_ const struct profile **chain = NULL;
        const struct profile *root, *mid, *leaf, *off, *off_child;
        struct diags d = {};
        uint32_t bitmap = 0xdead;
        size_t n = 0;

        assert_int_equal(load_validate(CHAIN_YAML, &p, &d), 0);
        assert_int_equal(d.n, 0);
        root = policy_find_profile(p, "root");
        mid = policy_find_profile(p, "mid");
        leaf = policy_find_profile(p, "leaf");
        off = policy_find_profile(p, "off");
        off_child = policy_find_profile(p, "off-child");

        assert_int_equal(profile_chain(p, leaf, &chain, &n), 0);
        assert_int_equal(n, 3);
        assert_ptr_equal(chain[0], root);
        assert_ptr_equal(chain[1], mid);
        assert_ptr_equal(chain[2], leaf);
        free(TAKE_PTR(chain));
        assert_int_equal(profile_chain(p, root, &chain, &n), 0);
        assert_int_equal(n, 1);
        assert_ptr_equal(chain[0], root);

        assert_int_equal(profile_effective_tier(p, mid), TIER_TENANT);
        assert_int_equal(profile_effective_fixed(p, mid, &bitmap), FIXED_LIST);
        assert_int_equal(bitmap, 1);
        assert_int_equal(profile_effective_fixed(p, leaf, &bitmap), FIXED_AUTO);
        assert_int_equal(bitmap, 0);
        assert_int_equal(profile_effective_pmu(p, leaf), PMU_ON);
        assert_int_equal(profile_effective_pmu(p, root), PMU_ON);
        /* pmu: off needs no tier; its fallback is an (empty) allowlist */
        assert_int_equal(profile_effective_pmu(p, off_child), PMU_OFF);
        assert_int_equal(profile_effective_tier(p, off), TIER_TENANT);
        assert_int_equal(profile_effective_tier(p, off_child), TIER_TENANT);
        assert_int_equal(profile_effective_fixed(p, off, NULL), FIXED_AUTO);
        assert_string_equal(tier_to_string(TIER_TRUSTED), "trusted");
        assert_string_equal(tier_to_string(TIER_TENANT), "tenant");
}

static void test_missing_parent(void **state) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        _cleanup_free_ const struct profile **chain = NULL;
        struct diags d = {};
        size_t n = 0;

        expect_invalid("profiles:\n  a:\n    tier: tenant\n    extends: nope\n",
                       "v.yaml:4:14: error: profile 'a' extends 'nope', which is not defined");

        /* the child of a broken profile is not reported again */
        assert_int_equal(load_validate("profiles:\n  a: { extends: nope }\n  b: { extends: a }\n", &p, &d), -EINVAL);
        assert_int_equal(d.n_errors, 1);
        assert_int_equal(profile_chain(p, policy_find_profile(p, "b"), &chain, &n), -ENOENT);
        assert_null(chain);
        diags_clear(&d);
}

static void test_cycles(void **state) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        _cleanup_free_ const struct profile **chain = NULL;
        _cleanup_free_ char *first = NULL;
        struct diags d = {};
        size_t n = 0;

        expect_invalid("profiles:\n  a:\n    tier: tenant\n    extends: a\n",
                       "v.yaml:4:14: error: profile 'a' extends itself through a -> a");

        /* one error per cycle, none for the profile that merely leads into it */
        assert_int_equal(load_validate("profiles:\n"
                                       "  x: { extends: a, tier: tenant }\n"
                                       "  a: { extends: b }\n"
                                       "  b: { extends: c }\n"
                                       "  c: { extends: a, tier: trusted }\n", &p, &d), -EINVAL);
        assert_int_equal(d.n_errors, 1);
        first = diags_first_error(&d);
        assert_string_equal(first, "v.yaml:3:17: error: profile 'a' extends itself through a -> b -> c -> a");
        assert_int_equal(profile_chain(p, policy_find_profile(p, "x"), &chain, &n), -ELOOP);
        assert_int_equal(profile_chain(p, policy_find_profile(p, "b"), &chain, &n), -ELOOP);
        /* the queries stay bounded on such a policy */
        assert_int_equal(profile_effective_tier(p, policy_find_profile(p, "a")), TIER_TRUSTED);
        assert_int_equal(profile_effective_pmu(p, policy_find_profile(p, "a")), PMU_ON);
        diags_clear(&d);
}

static void test_tiers(void **state) {
        expect_invalid("profiles:\n  a:\n    events: [cycles]\n",
                       "v.yaml:2:3: error: profile 'a' has no tier (tenant or trusted) and extends none that has one");
        expect_invalid("profiles:\n  a: { events: [cycles] }\n  b: { extends: a }\n",
                       "v.yaml:2:3: error: profile 'a' has no tier (tenant or trusted) and extends none that has one");
        /* a tenant child of a trusted profile would turn its denylist into an allowlist */
        expect_invalid("profiles:\n"
                       "  t: { tier: trusted, events: [0xc0] }\n"
                       "  m: { extends: t }\n"
                       "  c:\n"
                       "    extends: m\n"
                       "    tier: tenant\n",
                       "v.yaml:6:11: error: profile 'c' is tier tenant but inherits tier trusted from 't': "
                       "expected tier trusted or no tier");
        expect_clean("profiles:\n"
                     "  t: { tier: trusted, events: [0xc0] }\n"
                     "  c: { extends: t, tier: trusted }\n");
}

static void test_references(void **state) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct diags d = {};

        expect_invalid("profiles:\n  a: { tier: tenant }\nrules:\n  - match: { uid: 0 }\n    profile: b\n",
                       "v.yaml:5:14: error: rule 1: profile 'b' is not defined");
        expect_invalid("settings:\n  default_profile: nope\nprofiles:\n  a: { tier: tenant }\n",
                       "v.yaml:2:20: error: default_profile: profile 'nope' is not defined");

        /* every problem is reported, not only the first */
        assert_int_equal(load_validate("settings: { default_profile: d }\n"
                                       "profiles:\n"
                                       "  a: { extends: x }\n"
                                       "  b: { events: [cycles] }\n"
                                       "rules:\n"
                                       "  - { match: {}, profile: y }\n"
                                       "  - { match: { unit: u }, profile: z }\n", &p, &d), -EINVAL);
        assert_int_equal(d.n_errors, 5);
        assert_int_equal(d.n_warnings, 0);
        diags_clear(&d);
}

static void test_match_keys(void **state) {
        static const char *const facts[] = {
                "exe", "comm", "uid", "gid", "user", "group", "cgroup", "unit", "slice", "machine",
        };
        static const char *const claimed[] = { "name", "uuid", "client", "label.tier", "label.x.y" };
        static const char *const invalid[] = { "label.", "label", "owner", "", "UID", "labels.x" };

        for (size_t i = 0; i < ELEMENTSOF(facts); i++) {
                assert_true(match_key_is_valid(facts[i]));
                assert_false(match_key_is_claimed(facts[i]));
        }
        for (size_t i = 0; i < ELEMENTSOF(claimed); i++) {
                assert_true(match_key_is_valid(claimed[i]));
                assert_true(match_key_is_claimed(claimed[i]));
        }
        for (size_t i = 0; i < ELEMENTSOF(invalid); i++)
                assert_false(match_key_is_valid(invalid[i]));
}

#define TRUST_PROFILES                                          \
        "profiles:\n"                                           \
        "  trusted:\n"                                          \
        "    tier: trusted\n"                                   \
        "    events: [{ select: 0xb7, umask: any }]\n"          \
        "  tenant: { tier: tenant, events: [cycles] }\n"        \
        "  child: { extends: trusted }\n"                       \
        "rules:\n"                                              \
        "  - match: { unit: \"*tenant*\" }\n"                   \
        "    profile: tenant\n"

static void test_trust_lint(void **state) {
        expect_warning(TRUST_PROFILES
                       "  - match: { label.tier: trusted }\n"
                       "    profile: trusted\n",
                       "v.yaml:10:5: warning: rule 2 selects trusted profile 'trusted' on VMM-claimed keys only "
                       "(label.tier); a VMM could claim it: add a fact such as uid, unit or exe");
        /* through extends, and with several claimed keys */
        expect_warning(TRUST_PROFILES
                       "  - match: { name: \"db-*\", uuid: \"*\", client: preload }\n"
                       "    profile: child\n",
                       "v.yaml:10:5: warning: rule 2 selects trusted profile 'child' on VMM-claimed keys only "
                       "(name, uuid, client); a VMM could claim it: add a fact such as uid, unit or exe");
        expect_warning(TRUST_PROFILES
                       "  - match: {}\n"
                       "    profile: trusted\n",
                       "v.yaml:10:5: warning: rule 2 selects trusted profile 'trusted' with an empty match, "
                       "which matches every VM");
        expect_warning("settings: { default_profile: trusted }\n" TRUST_PROFILES,
                       "v.yaml:1:30: warning: default_profile 'trusted' is trusted: every VM that no rule selects "
                       "gets a denylist");
        /* one fact is enough; tenant profiles may be selected on anything */
        expect_clean(TRUST_PROFILES
                     "  - match: { label.tier: trusted, uid: 0 }\n"
                     "    profile: trusted\n"
                     "  - match: { label.tier: gold }\n"
                     "    profile: tenant\n"
                     "  - match: {}\n"
                     "    profile: tenant\n");
}

static void test_lint_profiles(void **state) {
        expect_warning("profiles:\n  t: { tier: trusted }\n",
                       "v.yaml:2:3: warning: profile 't' is trusted (a denylist) with no events: it denies nothing");
        expect_warning("profiles:\n  n:\n    pmu: off\n    events: [cycles]\n",
                       "v.yaml:4:14: warning: profile 'n' has pmu: off: its events are never used");
        /* pmu: off needs neither events nor a tier */
        expect_clean("profiles:\n  n: { pmu: off }\n  t: { tier: trusted, pmu: off }\n");
        /* acknowledge_shared means something in a tenant allowlist only */
        expect_warning("profiles:\n"
                       "  t:\n"
                       "    tier: trusted\n"
                       "    events: [ cache-misses ]\n"
                       "    acknowledge_shared: [ cache-misses ]\n",
                       "v.yaml:5:5: warning: profile 't' is trusted (a denylist): acknowledge_shared has no effect "
                       "there, since only tenant allowlists are checked for shared-resource events");
        expect_warning("profiles:\n"
                       "  t: { tier: trusted, events: [ 0x412e ] }\n"
                       "  c:\n"
                       "    extends: t\n"
                       "    acknowledge_shared: []\n",
                       "v.yaml:5:5: warning: profile 'c' is trusted (a denylist): acknowledge_shared has no effect "
                       "there, since only tenant allowlists are checked for shared-resource events");
        expect_clean("profiles:\n"
                     "  t:\n"
                     "    tier: tenant\n"
                     "    events: [ cache-misses ]\n"
                     "    acknowledge_shared: [ cache-misses ]\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_chain),
                cmocka_unit_test(test_missing_parent),
                cmocka_unit_test(test_cycles),
                cmocka_unit_test(test_tiers),
                cmocka_unit_test(test_references),
                cmocka_unit_test(test_match_keys),
                cmocka_unit_test(test_trust_lint),
                cmocka_unit_test(test_lint_profiles),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
