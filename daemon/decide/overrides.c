/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * overrides.c — the changes made over D-Bus, as the decision sees them: a
 * profile per VM, found again by the NAME or UUID the VM claims, and the
 * default profile.  The files that keep them are lib/state.c's.
 */
#include <assert.h>

#include "decide.h"

int overrides_key(const char *name, const char *uuid, char **ret) {
        char *k;

        assert(ret);
        if (!uuid && !name)
                return -ENOENT;
        /* The UUID is the stabler identity, the name the friendlier one.
         * Whole, however long: a key cut short would be another VM's. */
        if (asprintf(&k, "%s:%s", uuid ? "uuid" : "name", uuid ? uuid : name) < 0)
                return -ENOMEM;
        *ret = k;
        return 0;
}

static const char *lookup_one(const struct state *s, const char *kind, const char *value) {
        _cleanup_free_ char *key = NULL;

        if (!value || asprintf(&key, "%s:%s", kind, value) < 0)
                return NULL;
        return state_get(s, key);
}

const char *overrides_lookup(const struct decider *d, const char *name, const char *uuid, bool *ret_runtime) {
        assert(d);
        for (int runtime = 1; runtime >= 0; runtime--) {
                const struct state *s = runtime ? &d->runtime : &d->persistent;
                const char *p = lookup_one(s, "uuid", uuid);

                if (!p)
                        p = lookup_one(s, "name", name);
                if (p) {
                        if (ret_runtime)
                                *ret_runtime = runtime;
                        return p;
                }
        }
        return NULL;
}

int overrides_set(struct decider *d, const char *key, const char *profile, bool runtime) {
        int r;

        assert(d);
        assert(key);
        /* A change is recorded in one place: the other must not shadow it. */
        r = state_set(runtime ? &d->runtime : &d->persistent, key, profile);
        if (r >= 0 && (!profile || !runtime))
                r = state_set(&d->runtime, key, NULL);
        return r;
}

int overrides_set_default(struct decider *d, const char *profile, bool runtime) {
        int r;

        assert(d);
        assert(profile);
        r = free_and_strdup(runtime ? &d->runtime.default_profile : &d->persistent.default_profile, profile);
        if (r >= 0 && !runtime)
                r = free_and_strdup(&d->runtime.default_profile, NULL);
        return r;
}
