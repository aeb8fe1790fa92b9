/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * overrides.c — the changes made over D-Bus, as the decision sees them: a
 * profile per VM, found again by the NAME or UUID the VM claims, and the
 * default profile.  The files that keep them are lib/state.c's.
 */
#include <assert.h>

#include "decide.h"

int overrides_key(const char *name, const char *uuid, char *buf, size_t size) {
        if (uuid)
                snprintf(buf, size, "uuid:%s", uuid);
        else if (name)
                snprintf(buf, size, "name:%s", name);
        else
                return -ENOENT;
        return 0;
}

const char *overrides_lookup(const struct decider *d, const char *name, const char *uuid, bool *ret_runtime) {
        char key[320];

        assert(d);
        /* The UUID is the stabler identity, the name the friendlier one. */
        for (int runtime = 1; runtime >= 0; runtime--) {
                const struct state *s = runtime ? &d->runtime : &d->persistent;
                const char *p = NULL;

                if (uuid) {
                        snprintf(key, sizeof(key), "uuid:%s", uuid);
                        p = state_get(s, key);
                }
                if (!p && name) {
                        snprintf(key, sizeof(key), "name:%s", name);
                        p = state_get(s, key);
                }
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
