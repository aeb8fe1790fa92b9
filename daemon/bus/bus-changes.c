/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-changes.c — the changes orchestration makes over D-Bus, and the
 * state files that keep them (lib/state.c).  Authorisation comes first,
 * before anything is touched; a change is recorded before it is pushed,
 * and the call is answered when the VMMs have applied it.
 */
#include <assert.h>

#include "bus-errors.h"
#include "bus.h"
#include "log.h"
#include "waiter.h"

static int save(struct bus *b, bool runtime, sd_bus_error *error) {
        const struct decider *d = b->deliver->decider;
        _cleanup_free_ char *path = NULL;
        int r;

        if (asprintf(&path, "%s/state.yaml", runtime ? b->runtime_dir : b->state_dir) < 0)
                return -ENOMEM;
        /* A runtime change lasts until the reboot that empties /run: it
         * needs no fsync (two of them, and the directory opened, on the
         * path of every SetVMProfile). */
        r = runtime ? state_save_volatile(path, &d->runtime) : state_save(path, &d->persistent);
        if (r < 0)
                return bus_error_persist_failed(error, path, r);
        return 0;
}

/* What a change replaces, to put back should it not reach the disk: a
 * change that could not be kept is not in force either. */
struct undo {
        char *key;                      /* NULL: the default profile */
        char *persistent, *runtime;
        uint64_t runtime_expires;       /* the runtime one was a grant */
};

static void undo_done(struct undo *u) {
        free(u->persistent);
        free(u->runtime);
}

static int undo_take(const struct decider *d, const char *key, struct undo *ret) {
        const char *p = key ? state_get(&d->persistent, key) : d->persistent.default_profile;
        const char *r = key ? state_get(&d->runtime, key) : d->runtime.default_profile;

        const struct state_entry *e = key ? state_entry_get(&d->runtime, key) : NULL;

        *ret = (struct undo) { .key = (char *) key, .runtime_expires = e ? e->expires_usec : 0 };
        if (free_and_strdup(&ret->persistent, p) < 0 || free_and_strdup(&ret->runtime, r) < 0) {
                undo_done(ret);
                return -ENOMEM;
        }
        return 0;
}

static void undo_apply(struct decider *d, struct undo *u) {
        if (u->key) {
                (void) state_set(&d->persistent, u->key, u->persistent);
                (void) state_set(&d->runtime, u->key, u->runtime);
                if (u->runtime && u->runtime_expires > 0)
                        (void) state_set_expiry(&d->runtime, u->key, u->runtime_expires);
        } else {
                free(d->persistent.default_profile);
                d->persistent.default_profile = TAKE_PTR(u->persistent);
                free(d->runtime.default_profile);
                d->runtime.default_profile = TAKE_PTR(u->runtime);
        }
}

/* Write the stores a change touched: every change touches the runtime one
 * (a persistent change clears the runtime entry that would shadow it).
 * On failure the change is undone, in memory and, as far as it got, on disk. */
static int save_changed(struct bus *b, bool persistent, struct undo *u, sd_bus_error *error) {
        int r = 0;

        if (persistent)
                r = save(b, false, error);
        if (r >= 0)
                r = save(b, true, error);
        if (r < 0) {
                undo_apply(b->deliver->decider, u);
                if (persistent)
                        (void) save(b, false, NULL);
                (void) save(b, true, NULL);
        }
        return r;
}

static enum tier profile_tier_of(const struct decider *d, const char *profile) {
        int i = policy_set_find(d->set, profile);

        return i < 0 ? TIER_TENANT : profile_effective_tier(d->set->policy, &d->set->policy->profiles[i]);
}

static int check_profile(struct bus *b, const char *profile, sd_bus_error *error) {
        const struct decider *d = b->deliver->decider;

        if (!d->set)
                return bus_error_lockdown(error, d->last_error);
        if (policy_set_find(d->set, profile) < 0)
                return bus_error_no_such_profile(error, profile);
        return 0;
}

/* Decide again and push to every given VM whose filter changed (all of
 * them when force), and answer msg when they have applied it. */
static int push_and_wait(struct bus *b, sd_bus_message *msg, struct vm **vms, size_t n, bool force) {
        struct vm_waiter *w = bus_pending_reply(msg);
        int r;

        if (!w)
                return -ENOMEM;
        r = deliver_apply_batched(b->deliver, vms, n, force, w);
        if (r < 0) {
                vm_waiter_cancel(w);
                return r;
        }
        return 1;
}

/* "granted until 2026-12-06T07:12:00Z (for 2h) ", or "" for a change
 * that does not end by itself. */
static const char *grant_words(uint64_t expires_usec, uint64_t duration_usec, char *buf, size_t size) {
        char until[32], span[64];

        if (duration_usec == 0)
                return "";
        snprintf(buf, size, "granted until %s (for %s) ", format_iso8601(until, sizeof(until), expires_usec),
                 format_timespan(span, sizeof(span), duration_usec));
        return buf;
}

/* SetVMProfile, ResetVMProfile (profile ""), and SetVMProfileFor (a
 * runtime change with duration_usec > 0). */
static int change_vm(struct bus *b, sd_bus_message *msg, struct vm *vm, const char *profile, bool runtime,
                     uint64_t duration_usec, sd_bus_error *error) {
        struct decider *d = b->deliver->decider;
        bool reset = isempty(profile);
        _cleanup_free_ char *key = NULL;
        char bound[512] = "this VM only, until it goes (runtime)";
        char granted[128];
        const char *caution = "";
        struct vm_identity id;
        struct bus_caller caller;
        struct audit_extra x = { .vm_name = vm->name };
        char decided_by[sizeof(vm->profile_source)], decided_at[PATH_MAX + 16];
        uint64_t expires = 0;
        int r;

        assert(vm);
        assert(duration_usec == 0 || (runtime && !reset));
        /* What decided the VM's profile until this change. */
        snprintf(decided_by, sizeof(decided_by), "%s", vm->profile_source);
        snprintf(decided_at, sizeof(decided_at), "%s", strempty(vm->profile_source_loc));
        r = bus_check_manage(b, msg, &caller, error);
        if (r < 0)
                return r;
        if (duration_usec > 0 && duration_usec > STATE_GRANT_MAX_USEC)
                return bus_error_bad_duration(error, duration_usec);
        if (!reset) {
                r = check_profile(b, profile, error);
                if (r < 0)
                        return r;
        }
        if (!deliver_vm_managed(vm))
                return bus_error_not_managed(error, vm, true);
        deliver_vm_identity(vm, &id);
        r = overrides_key(&id, &key);
        if (r == -ENOMEM)
                return r;
        if (r >= 0) {
                _cleanup_(undo_done) struct undo u = {};

                (void) overrides_describe(key, bound, sizeof(bound));
                /* A trusted tier on the strength of what a VMM says about
                 * itself: said where an operator reads it. */
                if (!reset && !overrides_key_verified(key) &&
                    profile_tier_of(d, profile) == TIER_TRUSTED)
                        caution = "; CAUTION: a trusted-tier profile bound to a claimed identity, not a verified one";
                r = undo_take(d, key, &u);
                if (r < 0)
                        return r;
                if (duration_usec > 0) {
                        expires = now_usec(CLOCK_REALTIME) + duration_usec;
                        r = overrides_grant(d, key, profile, expires);
                } else
                        r = overrides_set(d, key, reset ? NULL : profile, runtime);
                if (r < 0) {
                        undo_apply(d, &u);
                        return r;
                }
                r = save_changed(b, !runtime, &u, error);
                /* A grant made, replaced or ended: the timer follows. */
                (void) deliver_grants_arm(b->deliver);
                if (r < 0)
                        return r;
        } else if (duration_usec > 0)
                return bus_error_grant_no_key(error, vm);
        else if (!runtime && !reset)
                return bus_error_no_key(error, vm);
        else if (!reset && profile_tier_of(d, profile) == TIER_TRUSTED)
                caution = "; CAUTION: a trusted-tier profile on a VM known by nothing verified";
        if (reset) {
                /* What is left (a persistent change under a runtime reset) still counts. */
                const struct state_entry *left;
                bool left_runtime = false;

                left = overrides_lookup_entry(d, &id, &left_runtime);
                r = free_and_strdup(&vm->override, left ? left->profile : NULL);
                vm->override_runtime = left_runtime;
                vm->override_expires_usec = left ? left->expires_usec : 0;
        } else {
                r = free_and_strdup(&vm->override, profile);
                vm->override_runtime = runtime;
                vm->override_expires_usec = expires;
        }
        if (r < 0)
                return r;
        /* The APPLY first, the record of the change while the VMM applies
         * it: in the loop's next idle turn, or before the VMM's answer is
         * recorded, whichever comes first (the VMM's answer comes first
         * when it is fast: the record is not on the caller's path). */
        r = push_and_wait(b, msg, &vm, 1, true);
        bus_caller_audit(&caller, &x);
        x.decided_by = decided_by[0] ? decided_by : NULL;
        x.decided_by_location = decided_at[0] ? decided_at : NULL;
        audit_record_extra_later(*caution ? LOG_WARNING : LOG_NOTICE, MID_RUNTIME, vm->id, reset ? NULL : profile, vm->pid,
                           &x, "VM %s%s%s%s: profile %s%s%s %sover D-Bus (%s), bound to %s, by uid %u%s%s%s",
                           vm->id, vm->name ? " (" : "", strempty(vm->name), vm->name ? ")" : "",
                           reset ? "reset to the policy" : "set to '", reset ? "" : profile, reset ? "" : "'",
                           grant_words(expires, duration_usec, granted, sizeof(granted)),
                           runtime ? "runtime" : "persistent", bound, (unsigned) caller.uid,
                           caller.unit[0] ? " of " : "", caller.unit, caution);
        return r;
}

int change_vm_profile(struct bus *b, sd_bus_message *msg, struct vm *vm, const char *profile, bool runtime,
                      sd_bus_error *error) {
        return change_vm(b, msg, vm, profile, runtime, 0, error);
}

int change_vm_grant(struct bus *b, sd_bus_message *msg, struct vm *vm, const char *profile, uint64_t duration_usec,
                    sd_bus_error *error) {
        assert(!isempty(profile));
        if (duration_usec == 0) {
                /* Authorisation still comes first. */
                int r = bus_check_manage(b, msg, NULL, error);

                return r < 0 ? r : bus_error_bad_duration(error, 0);
        }
        return change_vm(b, msg, vm, profile, true, duration_usec, error);
}

int change_default_profile(struct bus *b, sd_bus_message *msg, const char *profile, bool runtime,
                           sd_bus_error *error) {
        struct registry *reg = b->deliver->registry;
        _cleanup_(undo_done) struct undo u = {};
        _cleanup_free_ struct vm **vms = NULL;
        struct bus_caller caller;
        struct audit_extra x = {};
        size_t n = 0;
        int r;

        r = bus_check_manage(b, msg, &caller, error);
        if (r < 0)
                return r;
        r = check_profile(b, profile, error);
        if (r < 0)
                return r;
        r = undo_take(b->deliver->decider, NULL, &u);
        if (r < 0)
                return r;
        r = overrides_set_default(b->deliver->decider, profile, runtime);
        if (r < 0) {
                undo_apply(b->deliver->decider, &u);
                return r;
        }
        r = save_changed(b, !runtime, &u, error);
        if (r < 0)
                return r;
        /* The attaches whose VMMs are still applying were decided by the
         * default before: their records come before the change's. */
        deliver_say_held_attaches(b->deliver);
        bus_caller_audit(&caller, &x);
        audit_record_extra(LOG_NOTICE, MID_RUNTIME, NULL, profile, 0, &x,
                           "Default profile set to '%s' over D-Bus (%s), by uid %u%s%s", profile,
                           runtime ? "runtime" : "persistent", (unsigned) caller.uid, caller.unit[0] ? " of " : "",
                           caller.unit);
        registry_notify(reg, REGISTRY_SETTINGS_CHANGED, NULL, NULL);

        vms = calloc(reg->n_vms + 1, sizeof(*vms));
        if (!vms)
                return -ENOMEM;
        REGISTRY_FOREACH(vm, reg)
                vms[n++] = vm;
        return push_and_wait(b, msg, vms, n, false);
}

int change_reapply(struct bus *b, sd_bus_message *msg, struct vm **vms, size_t n, sd_bus_error *error) {
        int r;

        r = bus_check_manage(b, msg, NULL, error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (!deliver_vm_managed(vms[i]))
                        return bus_error_not_managed(error, vms[i], false);
        return push_and_wait(b, msg, vms, n, true);
}

int change_reload(struct bus *b, sd_bus_message *msg, sd_bus_error *error) {
        struct bus_caller caller;
        struct audit_extra x = {};
        struct vm_waiter *w;
        int r;

        r = bus_check_manage(b, msg, &caller, error);
        if (r < 0)
                return r;
        bus_caller_audit(&caller, &x);
        audit_record_extra(LOG_INFO, MID_RELOAD, NULL, NULL, 0, &x, "Reload asked for over D-Bus by uid %u%s%s",
                           (unsigned) caller.uid, caller.unit[0] ? " of " : "", caller.unit);
        w = bus_pending_reply(msg);
        if (!w)
                return -ENOMEM;
        r = deliver_reload(b->deliver, w);
        if (r < 0) {
                vm_waiter_cancel(w);
                if (r == -ENOMEM)
                        return r;
                return bus_error_reload_failed(error, b->deliver->decider->last_error);
        }
        /* Answered when every VM whose filter changed has applied it (the
         * batches arm the waiter when they are done). */
        return 1;
}
