/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy-validate.c — what the loader cannot see one file at a time: the
 * references between profiles and rules once every file is merged, and the
 * lint that `pmufilterctl check` shows (trust decided on what a VMM can
 * claim about itself).  Every problem is reported, not only the first.
 *
 * It also runs on a policy that had load errors (policy-load.c says how
 * far loading goes on), and then reports nothing those errors caused: no
 * undefined profile where a definition may have been lost
 * (policy.incomplete), nothing about the content of a broken profile or of
 * one extending it (profile.broken: its tier may be the key that failed),
 * no trust lint of a broken rule (rule.broken: its match is incomplete).
 */
#include "policy.h"

/* Keep the worst result: -ENOMEM beats -EINVAL beats 0. */
static void note(int *ret, int r) {
        if (r == -ENOMEM || (r < 0 && *ret == 0))
                *ret = r;
}

static const struct profile *parent_of(const struct policy *p, const struct profile *prof) {
        return prof->extends ? policy_find_profile(p, prof->extends) : NULL;
}

/* Every parent exists and the walk ends: the queries in policy.c give
 * meaningful answers.  Errors for the other cases are reported once, where
 * they are written. */
static bool chain_is_sound(const struct policy *p, const struct profile *prof) {
        for (size_t steps = 0; steps <= p->n_profiles; steps++) {
                if (!prof->extends)
                        return true;
                prof = parent_of(p, prof);
                if (!prof)
                        return false;
        }
        return false;
}

static bool in_cycle(const struct policy *p, const struct profile *prof) {
        const struct profile *i = parent_of(p, prof);

        for (size_t steps = 0; i && steps < p->n_profiles; steps++, i = parent_of(p, i))
                if (i == prof)
                        return true;
        return false;
}

/* "a -> b -> a", reported at the member of the cycle defined first, so
 * each cycle gives one error. */
static int check_cycle(const struct policy *p, const struct profile *prof, struct diags *d) {
        _cleanup_free_ char *path = NULL;
        size_t size = 0;
        FILE *f;

        if (!in_cycle(p, prof))
                return 0;
        for (const struct profile *i = parent_of(p, prof); i != prof; i = parent_of(p, i))
                if (i < prof)
                        return 0;

        f = open_memstream(&path, &size);
        if (!f)
                return -ENOMEM;
        fputs(prof->name, f);
        for (const struct profile *i = parent_of(p, prof);; i = parent_of(p, i)) {
                fprintf(f, " -> %s", i->name);
                if (i == prof)
                        break;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        return diags_error(d, &prof->extends_loc, "profile '%s' extends itself through %s", prof->name, path);
}

/* The tier set explicitly by the nearest ancestor, and who set it. */
static enum tier inherited_tier(const struct policy *p, const struct profile *prof,
                                const struct profile **ret_from) {
        for (const struct profile *i = parent_of(p, prof); i; i = parent_of(p, i))
                if (i->tier != TIER_UNSET) {
                        *ret_from = i;
                        return i->tier;
                }
        return TIER_UNSET;
}

static bool chain_has_events(const struct policy *p, const struct profile *prof) {
        for (const struct profile *i = prof; i; i = parent_of(p, i))
                if (i->n_events > 0)
                        return true;
        return false;
}

static bool chain_has_broken(const struct policy *p, const struct profile *prof) {
        for (size_t steps = 0; prof && steps <= p->n_profiles; steps++, prof = parent_of(p, prof))
                if (prof->broken)
                        return true;
        return false;
}

static int check_profile(const struct policy *p, const struct profile *prof, struct diags *d) {
        const struct profile *from = NULL;
        enum tier inherited;
        bool pmu_off;
        int ret = 0;

        if (prof->extends && !parent_of(p, prof))
                return p->incomplete ? 0 :
                        diags_error(d, &prof->extends_loc, "profile '%s' extends '%s', which is not defined",
                                    prof->name, prof->extends);
        if (!chain_is_sound(p, prof))
                return check_cycle(p, prof, d);
        if (chain_has_broken(p, prof))
                return 0;

        /* A child that changed its parent's tier would turn a denylist into
         * an allowlist (or back) without anyone noticing. */
        inherited = inherited_tier(p, prof, &from);
        if (prof->tier != TIER_UNSET && inherited != TIER_UNSET && prof->tier != inherited)
                note(&ret, diags_error(d, &prof->tier_loc,
                                       "profile '%s' is tier %s but inherits tier %s from '%s': "
                                       "expected tier %s or no tier",
                                       prof->name, tier_to_string(prof->tier), tier_to_string(inherited),
                                       from->name, tier_to_string(inherited)));

        pmu_off = profile_effective_pmu(p, prof) == PMU_OFF;
        if (profile_effective_tier(p, prof) == TIER_UNSET)
                note(&ret, diags_error(d, &prof->loc,
                                       "profile '%s' has no tier (tenant or trusted) and extends none that has one",
                                       prof->name));
        else if (pmu_off && prof->n_events > 0)
                note(&ret, diags_warning(d, &prof->events[0].loc,
                                         "profile '%s' has pmu: off: its events are never used", prof->name));
        else if (!pmu_off && profile_effective_tier(p, prof) == TIER_TRUSTED && !chain_has_events(p, prof))
                note(&ret, diags_warning(d, &prof->loc,
                                         "profile '%s' is trusted (a denylist) with no events: it denies nothing",
                                         prof->name));

        /* The leak lint reads tenant allowlists only: in a denylist an
         * acknowledgement would read as a permission it is not. */
        if (prof->acks_loc.line > 0 && profile_effective_tier(p, prof) == TIER_TRUSTED)
                note(&ret, diags_warning(d, &prof->acks_loc,
                                         "profile '%s' is trusted (a denylist): acknowledge_shared has no "
                                         "effect there, since only tenant allowlists are checked for "
                                         "shared-resource events", prof->name));
        return ret;
}

static bool selects_trusted(const struct policy *p, const struct profile *prof) {
        return prof && profile_is_sound(p, prof) &&
                profile_effective_tier(p, prof) == TIER_TRUSTED &&
                profile_effective_pmu(p, prof) != PMU_OFF;
}

/* Trust must rest on at least one fact the daemon reads itself: labels,
 * name, uuid and client are whatever the VMM says they are. */
static int lint_rule(const struct policy *p, const struct rule *rule, size_t number, struct diags *d) {
        _cleanup_free_ char *keys = NULL;
        size_t size = 0;
        FILE *f;

        if (rule->broken || !selects_trusted(p, policy_find_profile(p, rule->profile)))
                return 0;
        if (rule->n_matches == 0)
                return diags_warning(d, &rule->loc,
                                     "rule %zu selects trusted profile '%s' with an empty match, "
                                     "which matches every VM", number, rule->profile);
        for (size_t i = 0; i < rule->n_matches; i++)
                if (!match_key_is_claimed(rule->matches[i].key))
                        return 0;

        f = open_memstream(&keys, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < rule->n_matches; i++)
                fprintf(f, "%s%s", i > 0 ? ", " : "", rule->matches[i].key);
        if (fclose(f) != 0)
                return -ENOMEM;
        return diags_warning(d, &rule->loc,
                             "rule %zu selects trusted profile '%s' on VMM-claimed keys only (%s); "
                             "a VMM could claim it: add a fact such as uid, unit or exe",
                             number, rule->profile, keys);
}

static int check_rule(const struct policy *p, const struct rule *rule, size_t number, struct diags *d) {
        int ret = 0;

        for (size_t i = 0; i < rule->n_matches; i++)
                if (!match_key_is_valid(rule->matches[i].key))
                        note(&ret, diags_error(d, &rule->matches[i].loc,
                                               "rule %zu: unknown match key '%s'", number, rule->matches[i].key));
        if (rule->profile && !policy_find_profile(p, rule->profile) && !p->incomplete)
                note(&ret, diags_error(d, &rule->profile_loc, "rule %zu: profile '%s' is not defined",
                                       number, rule->profile));
        note(&ret, lint_rule(p, rule, number, d));
        return ret;
}

static int check_settings(const struct policy *p, struct diags *d) {
        const struct settings *s = &p->settings;
        const struct profile *prof;

        if (!s->default_profile)
                return 0;
        prof = policy_find_profile(p, s->default_profile);
        if (!prof && p->incomplete)
                return 0;
        if (!prof)
                return diags_error(d, &s->default_profile_loc, "default_profile: profile '%s' is not defined",
                                   s->default_profile);
        if (selects_trusted(p, prof))
                return diags_warning(d, &s->default_profile_loc,
                                     "default_profile '%s' is trusted: every VM that no rule selects "
                                     "gets a denylist", s->default_profile);
        return 0;
}

int policy_validate(const struct policy *p, struct diags *d) {
        int ret = 0;

        assert(p);

        for (size_t i = 0; i < p->n_profiles; i++)
                note(&ret, check_profile(p, &p->profiles[i], d));
        for (size_t i = 0; i < p->n_rules; i++)
                note(&ret, check_rule(p, &p->rules[i], i + 1, d));
        note(&ret, check_settings(p, d));
        return ret;
}
