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

int policy_set_find(const struct policy_set *s, const char *name) {
        assert(name);
        for (size_t i = 0; s && i < s->policy->n_profiles; i++)
                if (streq(s->policy->profiles[i].name, name))
                        return (int) i;
        return -ENOENT;
}
