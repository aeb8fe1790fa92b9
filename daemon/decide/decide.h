/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * decide.h — which profile a VM gets and which filter that is.  Pure: no
 * file, socket or bus is touched here; the caller gives what is known of
 * the VM (decide_input) and gets the decision back.  Order (pmufilterd(8),
 * HOW A VM'S PROFILE IS DECIDED): a change made for this VM over D-Bus (runtime before
 * persistent), the first rule that matches, the default profile (one set
 * over D-Bus before settings.default_profile), else profile "none": an
 * empty allowlist.  Without a policy (lockdown) every VM gets "lockdown",
 * an empty allowlist too: nothing counts until a good reload.
 */
#pragma once

#include "match.h"
#include "policyset.h"
#include "state.h"

struct decider {
        struct policy_set *set;         /* NULL only in lockdown with no good policy */
        bool lockdown;                  /* the policy failed to load at start */
        char *last_error;               /* why the last load or reload failed */
        char **reload_warnings;         /* how the last good reload loosened the policy (strv) */
        /* Changes made over D-Bus (lib/state.h): runtime ones beat
         * persistent ones, both beat the rules and the default. */
        struct state persistent, runtime;
};

void decider_done(struct decider *d);

/* The settings in force: the policy's, or the defaults in lockdown. */
const struct settings *decider_settings(const struct decider *d);
/* Put s in force (taken), and leave lockdown; returns the set it replaces. */
struct policy_set *decider_swap(struct decider *d, struct policy_set *s);
int decider_set_last_error(struct decider *d, const char *error);

struct decide_input {
        /* claimed by the VMM, and facts read from the kernel (match.h) */
        struct match_input match;
        /* set over D-Bus for this VM (overrides_lookup()), NULL: none */
        const char *override;
        bool override_runtime;
};

struct decision {
        /* Valid until the policy set is swapped: copy it. */
        const char *profile;
        char source[16];                /* "rule:<n>", "default", "runtime", "persistent", "none", "lockdown" */
        const struct srcloc *rule_loc;  /* where rule <n> is written; NULL for any other source */
        struct compiled_filter *filter; /* a reference: compiled_filter_unref() */
        /* The default profile set over D-Bus is not in this policy:
         * settings.default_profile was used instead. */
        bool default_missing;
};

/* -ENOMEM only. */
int decide(const struct decider *d, const struct decide_input *in, struct decision *ret);

/* The default profile in force: D-Bus override, else settings.default_profile. */
const char *decider_default_profile(const struct decider *d, bool *ret_overridden);

/* What a change made for a VM is bound to (pmufilterd(8), D-BUS API):
 * its machined registration where it has one, else the uid of its VMM
 * together with the UUID (or else the name) the VMM claimed.  A later VM
 * gets the change only when those parts match: claiming another VM's name
 * is not enough. */
struct vm_identity {
        const char *machine_uuid;       /* verified: machined (root) registered it */
        bool have_uid;
        uid_t uid;                      /* verified: the creating process's uid */
        const char *uuid, *name;        /* claimed by the VMM */
};

/* What the state files record for a VM of this identity: runtime before
 * persistent; the machine, else the claimed UUID, else the name.  NULL:
 * nothing. */
const char *overrides_lookup(const struct decider *d, const struct vm_identity *id, bool *ret_runtime);
/* The same, as the entry (its expiry too), or NULL. */
const struct state_entry *overrides_lookup_entry(const struct decider *d, const struct vm_identity *id,
                                                 bool *ret_runtime);
/* The facts (PROC_FACT_IDS, PROC_FACT_MACHINE) overrides_lookup() needs
 * for a VM claiming uuid and name (either NULL), given the keys recorded
 * now: 0 when no key can match it whatever its facts say.  Reading fewer
 * facts never changes what is found (docs/architecture.md, "The life of
 * one VM"): a VM's uid is read only when a key names its claim, its
 * machine only when a key could then match. */
unsigned overrides_facts_needed(const struct decider *d, const char *uuid, const char *name);
/* The key a change for this VM is recorded under: "machine:<uuid>",
 * "uid:<uid>/uuid:<uuid>" or "uid:<uid>/name:<name>", allocated.  -ENOENT
 * when there is nothing to bind it to. */
int overrides_key(const struct vm_identity *id, char **ret);
/* Does key rest on a machined registration (verified) rather than on
 * what a VMM claimed? */
bool overrides_key_verified(const char *key);
/* key in words ("machine 1b4e…", "uid 107 with the claimed name 'web'"),
 * into buf. */
const char *overrides_describe(const char *key, char *buf, size_t size);
/* A key of the old form ("uuid:…", "name:…": claims only, bound to nothing
 * verified), which a start-up migrates (manager.c); the claim in it into
 * *ret_kind ("uuid", "name") and *ret_value. */
bool overrides_key_legacy(const char *key, const char **ret_kind, const char **ret_value);
/* Record profile (NULL: reset) for key; a persistent change also clears
 * the runtime entry that would shadow it.  -ENOMEM. */
int overrides_set(struct decider *d, const char *key, const char *profile, bool runtime);
/* A time-limited grant (pmufilterd(8), TIME-LIMITED GRANTS): a runtime
 * change for key that ends at expires_usec (CLOCK_REALTIME).  -ENOMEM. */
int overrides_grant(struct decider *d, const char *key, const char *profile, uint64_t expires_usec);
/* The same for the default profile (NULL profile: not allowed). */
int overrides_set_default(struct decider *d, const char *profile, bool runtime);
