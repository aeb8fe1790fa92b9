/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policyset.c — the compiled policy.
 */
#include <assert.h>

#include "policyset.h"

struct policy_set *policy_set_free(struct policy_set *s) {
        if (!s)
                return NULL;
        if (s->policy) {
                for (size_t i = 0; s->filters && i < s->policy->n_profiles; i++)
                        compiled_filter_unref(s->filters[i]);
                policy_free(s->policy);
        }
        free(s->filters);
        free(s);
        return NULL;
}

int policy_set_compile(struct policy *policy, const struct host_pmu *pmu, const struct kvm_support *kvm,
                       struct diags *d, struct policy_set **ret) {
        _cleanup_(policy_set_freep) struct policy_set *s = NULL;
        int r;

        assert(policy);
        assert(ret);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->filters = calloc(policy->n_profiles + 1, sizeof(*s->filters));
        if (!s->filters)
                return -ENOMEM;
        for (size_t i = 0; i < policy->n_profiles; i++) {
                r = filter_compile(policy, policy->profiles[i].name, pmu, kvm, &s->filters[i], d);
                if (r < 0) {
                        for (size_t j = 0; j < i; j++)
                                compiled_filter_unref(s->filters[j]);
                        return r;
                }
        }
        s->policy = policy;
        *ret = TAKE_PTR(s);
        return 0;
}

static enum tier default_tier(const struct policy_set *s) {
        int i = s->policy->settings.default_profile ? policy_set_find(s, s->policy->settings.default_profile) : -ENOENT;

        return i < 0 ? TIER_UNSET : profile_effective_tier(s->policy, &s->policy->profiles[i]);
}

int policy_set_loosenings(const struct policy_set *old, const struct policy_set *new, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        const struct settings *a, *b;

        assert(new);
        assert(ret);
        if (!old) {
                *ret = NULL;
                return 0;
        }
        a = &old->policy->settings;
        b = &new->policy->settings;
        if (old->policy->n_profiles > 0 && new->policy->n_profiles == 0 &&
            strv_extend(&l, "the new policy defines no profile: every VM gets profile 'none'") < 0)
                return -ENOMEM;
        if (a->unmanaged == UNMANAGED_KILL && b->unmanaged != UNMANAGED_KILL &&
            strv_extend(&l, "settings.unmanaged goes from kill to warn: unmanaged VMs now run unfiltered") < 0)
                return -ENOMEM;
        if (a->adopt == ADOPT_PTRACE && b->adopt != ADOPT_PTRACE &&
            strv_extend(&l, "settings.adopt goes from ptrace to none: VMs that do not attach are no longer filtered") < 0)
                return -ENOMEM;
        if (default_tier(old) == TIER_TENANT && default_tier(new) == TIER_TRUSTED) {
                char *m;

                if (asprintf(&m, "the default profile goes from tenant-tier '%s' to trusted-tier '%s'",
                             a->default_profile, b->default_profile) < 0 || strv_push(&l, m) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int policy_set_find(const struct policy_set *s, const char *name) {
        assert(name);
        for (size_t i = 0; s && i < s->policy->n_profiles; i++)
                if (streq(s->policy->profiles[i].name, name))
                        return (int) i;
        return -ENOENT;
}
