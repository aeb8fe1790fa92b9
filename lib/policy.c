/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy.c — the policy model's lifetime and its read-only queries: defaults,
 * freeing, profile lookup, match-key classes and inheritance through
 * `extends`.  Loading is policy-load.c's, checking policy-validate.c's.
 */
#include "policy.h"

int policy_new(struct policy **ret) {
        _cleanup_(policy_freep) struct policy *p = NULL;

        assert(ret);

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->settings = (struct settings) {
                .socket = strdup(POLICY_DEFAULT_SOCKET),
                .attach_timeout_ms = POLICY_DEFAULT_ATTACH_TIMEOUT_MS,
                .adopt = ADOPT_NONE,
                .unmanaged = UNMANAGED_WARN,
                .unattached_sessions_per_uid = POLICY_DEFAULT_UNATTACHED_SESSIONS_PER_UID,
                .socket_group = strdup(POLICY_DEFAULT_SOCKET_GROUP),
        };
        if (!p->settings.socket || !p->settings.socket_group)
                return -ENOMEM;
        *ret = TAKE_PTR(p);
        return 0;
}

void profile_done(struct profile *prof) {
        for (size_t i = 0; i < prof->n_events; i++)
                free(prof->events[i].name);
        free(prof->events);
        for (size_t i = 0; i < prof->n_acks; i++)
                free(prof->acks[i].name);
        free(prof->acks);
        free(prof->name);
        free(prof->description);
        free(prof->extends);
}

static void rule_done(struct rule *r) {
        for (size_t i = 0; i < r->n_matches; i++) {
                free(r->matches[i].key);
                free(r->matches[i].value);
        }
        free(r->matches);
        free(r->profile);
}

void policy_free(struct policy *p) {
        if (!p)
                return;
        free(p->settings.socket);
        free(p->settings.socket_group);
        free(p->settings.default_profile);
        for (size_t i = 0; i < p->n_profiles; i++)
                profile_done(&p->profiles[i]);
        free(p->profiles);
        for (size_t i = 0; i < p->n_rules; i++)
                rule_done(&p->rules[i]);
        free(p->rules);
        strv_free(p->files);
        free(p);
}

struct profile *policy_find_profile(const struct policy *p, const char *name) {
        assert(p);

        if (!name)
                return NULL;
        for (size_t i = 0; i < p->n_profiles; i++)
                if (streq(p->profiles[i].name, name))
                        return &p->profiles[i];
        return NULL;
}

const char *tier_to_string(enum tier t) {
        switch (t) {
        case TIER_TENANT:
                return "tenant";
        case TIER_TRUSTED:
                return "trusted";
        default:
                return "unset";
        }
}

/* The keys a VMM puts in its own ATTACH message (or that describe how it
 * attached): anyone who can start a VMM can choose them. */
static const char *const claimed_keys[] = { "name", "uuid", "client" };
/* Facts the daemon reads from the kernel and systemd for the peer's pid. */
static const char *const fact_keys[] = {
        "exe", "comm", "uid", "gid", "user", "group",
        "cgroup", "unit", "slice", "machine",
};

static bool in_list(const char *key, const char *const *l, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(key, l[i]))
                        return true;
        return false;
}

bool match_key_is_claimed(const char *key) {
        const char *label;

        assert(key);

        label = startswith(key, "label.");
        if (label)
                return *label != '\0';
        return in_list(key, claimed_keys, ELEMENTSOF(claimed_keys));
}

bool match_key_is_valid(const char *key) {
        assert(key);

        return match_key_is_claimed(key) || in_list(key, fact_keys, ELEMENTSOF(fact_keys));
}

/* The parent of prof, or NULL.  Bounded walks below use this so that even an
 * unvalidated policy (a cycle) cannot make a query spin. */
static const struct profile *profile_parent(const struct policy *p, const struct profile *prof) {
        return prof->extends ? policy_find_profile(p, prof->extends) : NULL;
}

enum pmu_mode profile_effective_pmu(const struct policy *p, const struct profile *prof) {
        size_t steps = 0;

        assert(p);
        assert(prof);

        for (const struct profile *i = prof; i && steps <= p->n_profiles; i = profile_parent(p, i), steps++)
                if (i->pmu != PMU_UNSET)
                        return i->pmu;
        return PMU_ON;
}

enum tier profile_effective_tier(const struct policy *p, const struct profile *prof) {
        size_t steps = 0;

        assert(p);
        assert(prof);

        for (const struct profile *i = prof; i && steps <= p->n_profiles; i = profile_parent(p, i), steps++)
                if (i->tier != TIER_UNSET)
                        return i->tier;
        return profile_effective_pmu(p, prof) == PMU_OFF ? TIER_TENANT : TIER_UNSET;
}

enum fixed_mode profile_effective_fixed(const struct policy *p, const struct profile *prof,
                                        uint32_t *ret_bitmap) {
        size_t steps = 0;

        assert(p);
        assert(prof);

        for (const struct profile *i = prof; i && steps <= p->n_profiles; i = profile_parent(p, i), steps++)
                if (i->fixed_mode != FIXED_UNSET) {
                        if (ret_bitmap)
                                *ret_bitmap = i->fixed_mode == FIXED_LIST ? i->fixed_bitmap : 0;
                        return i->fixed_mode;
                }
        if (ret_bitmap)
                *ret_bitmap = 0;
        return FIXED_AUTO;
}

int profile_chain(const struct policy *p, const struct profile *prof,
                  const struct profile ***ret, size_t *ret_n) {
        _cleanup_free_ const struct profile **v = NULL;
        const struct profile *i = prof;
        size_t n = 0;

        assert(p);
        assert(prof);
        assert(ret);
        assert(ret_n);

        /* A chain without a cycle visits each profile at most once. */
        v = calloc(p->n_profiles + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (;;) {
                if (n > p->n_profiles)
                        return -ELOOP;
                v[n++] = i;
                if (!i->extends)
                        break;
                i = policy_find_profile(p, i->extends);
                if (!i)
                        return -ENOENT;
        }
        for (size_t a = 0, b = n - 1; a < b; a++, b--) {
                const struct profile *t = v[a];
                v[a] = v[b];
                v[b] = t;
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

bool profile_is_sound(const struct policy *p, const struct profile *prof) {
        const struct profile *i = prof;

        assert(p);
        assert(prof);

        for (size_t steps = 0; steps <= p->n_profiles; steps++) {
                if (i->broken)
                        return false;
                if (!i->extends)
                        return profile_effective_tier(p, prof) != TIER_UNSET;
                i = policy_find_profile(p, i->extends);
                if (!i)
                        return false;
        }
        return false;           /* a cycle */
}
