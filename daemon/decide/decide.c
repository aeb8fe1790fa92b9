/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * decide.c — the decision, and the policy in force.
 */
#include <assert.h>

#include "decide.h"

void decider_done(struct decider *d) {
        d->set = policy_set_free(d->set);
        free(d->last_error);
        d->last_error = NULL;
        strv_free(d->reload_warnings);
        d->reload_warnings = NULL;
        state_done(&d->persistent);
        state_done(&d->runtime);
}

const struct settings *decider_settings(const struct decider *d) {
        static const struct settings defaults = {
                .attach_timeout_ms = POLICY_DEFAULT_ATTACH_TIMEOUT_MS,
                .adopt = ADOPT_NONE,
                .unmanaged = UNMANAGED_WARN,
                .unattached_sessions_per_uid = POLICY_DEFAULT_UNATTACHED_SESSIONS_PER_UID,
        };

        assert(d);
        return d->set ? &d->set->policy->settings : &defaults;
}

struct policy_set *decider_swap(struct decider *d, struct policy_set *s) {
        struct policy_set *old = d->set;

        assert(s);
        d->set = s;
        d->lockdown = false;
        return old;
}

int decider_set_last_error(struct decider *d, const char *error) {
        return free_and_strdup(&d->last_error, error);
}

const char *decider_default_profile(const struct decider *d, bool *ret_overridden) {
        const char *p = d->runtime.default_profile ? d->runtime.default_profile : d->persistent.default_profile;

        if (ret_overridden)
                *ret_overridden = p != NULL;
        if (p)
                return p;
        return d->set ? d->set->policy->settings.default_profile : NULL;
}

/* The profile for in under d's policy: its index, or -ENOENT when no rule
 * holds and there is no default. */
static int decide_profile(const struct decider *d, const struct decide_input *in, struct decision *ret) {
        const struct policy *p = d->set->policy;
        const char *name = NULL;
        bool overridden;
        int r;

        if (in->override && policy_find_profile(p, in->override)) {
                name = in->override;
                snprintf(ret->source, sizeof(ret->source), in->override_runtime ? "runtime" : "persistent");
        } else if ((r = match_rules(p, &in->match)) >= 0) {
                name = p->rules[r].profile;
                snprintf(ret->source, sizeof(ret->source), "rule:%d", r + 1);
                ret->rule_loc = &p->rules[r].loc;
        } else if ((name = decider_default_profile(d, &overridden))) {
                if (!policy_find_profile(p, name) && overridden) {
                        ret->default_missing = true;
                        name = p->settings.default_profile;
                }
                snprintf(ret->source, sizeof(ret->source), "default");
        }
        return name ? policy_set_find(d->set, name) : -ENOENT;
}

int decide(const struct decider *d, const struct decide_input *in, struct decision *ret) {
        struct decision dec = { .profile = "lockdown", .source = "lockdown" };
        int r;

        assert(d);
        assert(in);
        assert(ret);
        if (d->set) {
                r = decide_profile(d, in, &dec);
                if (r >= 0) {
                        dec.filter = compiled_filter_ref(d->set->filters[r]);
                        dec.profile = d->set->policy->profiles[r].name;
                } else {
                        /* No rule and no default: nothing may count. */
                        snprintf(dec.source, sizeof(dec.source), "none");
                        dec.profile = "none";
                }
        }
        if (!dec.filter) {
                r = filter_lockdown(dec.profile, &dec.filter);
                if (r < 0)
                        return r;
                if (!dec.filter)
                        return -ENOMEM;
        }
        *ret = dec;
        return 0;
}
