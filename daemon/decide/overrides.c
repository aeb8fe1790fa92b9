/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * overrides.c — the changes made over D-Bus, as the decision sees them: a
 * profile per VM, bound to what can be verified of the VM it was set on
 * (its machined registration, else its VMM's uid with its claimed UUID or
 * name), and the default profile.  The files that keep them are
 * lib/state.c's.
 */
#include <assert.h>
#include <ctype.h>

#include "decide.h"
#include "procfacts.h"

static int key_of(const struct vm_identity *id, const char *kind, char **ret) {
        const char *v = streq(kind, "machine") ? id->machine_uuid : streq(kind, "uuid") ? id->uuid : id->name;
        int r;

        if (!v || (!streq(kind, "machine") && !id->have_uid))
                return -ENOENT;
        /* Whole, however long: a key cut short would be another VM's. */
        if (streq(kind, "machine"))
                r = asprintf(ret, "machine:%s", v);
        else
                r = asprintf(ret, "uid:%u/%s:%s", (unsigned) id->uid, kind, v);
        return r < 0 ? -ENOMEM : 0;
}

/* The kinds of key a VM of this identity is found by, in order: a VM in a
 * machine is known by the machine only. */
static const char *const *kinds_of(const struct vm_identity *id) {
        static const char *const machine[] = { "machine", NULL }, *const claims[] = { "uuid", "name", NULL };

        return id->machine_uuid ? machine : claims;
}

int overrides_key(const struct vm_identity *id, char **ret) {
        assert(id);
        assert(ret);
        for (const char *const *k = kinds_of(id); *k; k++) {
                int r = key_of(id, *k, ret);

                if (r != -ENOENT)
                        return r;
        }
        return -ENOENT;
}

bool overrides_key_verified(const char *key) {
        return key && startswith(key, "machine:");
}

const char *overrides_describe(const char *key, char *buf, size_t size) {
        const char *v, *slash;
        unsigned long uid;

        assert(key);
        if ((v = startswith(key, "machine:")))
                snprintf(buf, size, "machine %s", v);
        else if ((v = startswith(key, "uid:")) && sscanf(v, "%lu", &uid) == 1 && (slash = strchr(v, '/')) &&
                 strchr(slash, ':'))
                snprintf(buf, size, "uid %lu with the claimed %.*s '%s'", uid, (int) (strchr(slash, ':') - slash - 1),
                         slash + 1, strchr(slash, ':') + 1);
        else
                snprintf(buf, size, "'%s'", key);
        return buf;
}

bool overrides_key_legacy(const char *key, const char **ret_kind, const char **ret_value) {
        const char *v;

        assert(key);
        if ((v = startswith(key, "uuid:")))
                *ret_kind = "uuid";
        else if ((v = startswith(key, "name:")))
                *ret_kind = "name";
        else
                return false;
        *ret_value = v;
        return true;
}

const char *overrides_lookup(const struct decider *d, const struct vm_identity *id, bool *ret_runtime) {
        const struct state_entry *e = overrides_lookup_entry(d, id, ret_runtime);

        return e ? e->profile : NULL;
}

const struct state_entry *overrides_lookup_entry(const struct decider *d, const struct vm_identity *id,
                                                 bool *ret_runtime) {
        assert(d);
        assert(id);
        for (int runtime = 1; runtime >= 0; runtime--) {
                const struct state *s = runtime ? &d->runtime : &d->persistent;

                if (s->n == 0)
                        continue;
                for (const char *const *k = kinds_of(id); *k; k++) {
                        _cleanup_free_ char *key = NULL;
                        const struct state_entry *p;

                        if (key_of(id, *k, &key) < 0)
                                continue;
                        p = state_entry_get(s, key);
                        if (p) {
                                if (ret_runtime)
                                        *ret_runtime = runtime;
                                return p;
                        }
                }
        }
        return NULL;
}

/* Which facts a lookup for a VM claiming uuid and name needs: a key on
 * its claims (of any uid) needs the uid, and the machine too (a VM in a
 * machine is known by the machine alone, kinds_of(), so a key on its
 * claims must not reach it); a machine key anywhere needs the machine.
 * Each a binary search (state.h), not a walk of the stores. */
unsigned overrides_facts_needed(const struct decider *d, const char *uuid, const char *name) {
        bool machine = false;

        assert(d);
        for (int runtime = 1; runtime >= 0; runtime--) {
                const struct state *s = runtime ? &d->runtime : &d->persistent;

                if ((uuid && state_has_claim(s, "uuid", uuid)) || (name && state_has_claim(s, "name", name)))
                        return PROC_FACT_MACHINE | PROC_FACT_IDS;
                machine = machine || state_has_claim(s, "machine", NULL);
        }
        return machine ? PROC_FACT_MACHINE : 0;
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

int overrides_grant(struct decider *d, const char *key, const char *profile, uint64_t expires_usec) {
        int r;

        assert(profile);
        assert(expires_usec > 0);
        r = overrides_set(d, key, profile, true);
        if (r >= 0)
                r = state_set_expiry(&d->runtime, key, expires_usec);
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
