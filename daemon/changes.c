/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * changes.c — runtime changes over D-Bus, and the state that keeps them.
 * Authorisation comes first, before anything is touched.
 */
#include "bus.h"
#include "changes.h"
#include "batch.h"
#include "log.h"
#include "persist.h"

static char *state_path(const struct manager *m, bool runtime) {
        char *p;

        if (asprintf(&p, "%s/state.yaml", runtime ? m->runtime_dir : m->state_dir) < 0)
                return NULL;
        return p;
}

static void load_one(struct manager *m, bool runtime) {
        _cleanup_free_ char *path = state_path(m, runtime), *error = NULL;
        struct state *s = runtime ? &m->runtime : &m->persistent;
        int r;

        if (!path)
                return;
        r = state_load(path, s, &error);
        if (r < 0) {
                _cleanup_free_ char *aside = NULL;

                if (asprintf(&aside, "%s.corrupt", path) >= 0 && rename(path, aside) >= 0)
                        log_error("%s: %s: set aside as %s; starting without these changes", path,
                                  strna(error), aside);
                else
                        log_error("%s: %s: ignored", path, strna(error));
                *s = (struct state) {};
        }
}

void changes_load(struct manager *m) {
        load_one(m, false);
        load_one(m, true);
}

static int vm_key(const struct vm *vm, char *buf, size_t size) {
        if (vm->uuid)
                snprintf(buf, size, "uuid:%s", vm->uuid);
        else if (vm->name)
                snprintf(buf, size, "name:%s", vm->name);
        else
                return -ENOENT;
        return 0;
}

static const char *vm_override(const struct manager *m, const struct vm *vm, bool *ret_runtime) {
        char key[320];

        /* The UUID is the stabler identity, the name the friendlier one. */
        for (int runtime = 1; runtime >= 0; runtime--) {
                const struct state *s = runtime ? &m->runtime : &m->persistent;
                const char *p = NULL;

                if (vm->uuid) {
                        snprintf(key, sizeof(key), "uuid:%s", vm->uuid);
                        p = state_get(s, key);
                }
                if (!p && vm->name) {
                        snprintf(key, sizeof(key), "name:%s", vm->name);
                        p = state_get(s, key);
                }
                if (p) {
                        *ret_runtime = runtime;
                        return p;
                }
        }
        return NULL;
}

int changes_update_override(const struct manager *m, struct vm *vm) {
        bool runtime = false;
        const char *o = vm_override(m, vm, &runtime);

        if (free_and_strdup(&vm->override, o) < 0)
                return -ENOMEM;
        vm->override_runtime = runtime;
        return 0;
}

const char *changes_default_profile(const struct manager *m, bool *ret_overridden) {
        const char *p = m->runtime.default_profile ? m->runtime.default_profile : m->persistent.default_profile;

        if (ret_overridden)
                *ret_overridden = p != NULL;
        if (p)
                return p;
        return m->set ? m->set->policy->settings.default_profile : NULL;
}

static int save(struct manager *m, bool runtime, sd_bus_error *error) {
        _cleanup_free_ char *path = state_path(m, runtime);
        int r;

        if (!path)
                return -ENOMEM;
        r = state_save(path, runtime ? &m->runtime : &m->persistent);
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR_PERSIST_FAILED, "Failed to write %s: %s", path, strerror(-r));
        return 0;
}

/* Write the stores a change touched: every change touches the runtime one
 * (a persistent change clears the runtime entry that would shadow it). */
static int save_changed(struct manager *m, bool persistent, sd_bus_error *error) {
        int r = 0;

        if (persistent)
                r = save(m, false, error);
        if (r >= 0)
                r = save(m, true, error);
        return r;
}

static int check_profile(struct manager *m, const char *profile, sd_bus_error *error) {
        if (!m->set)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_CONFIG,
                                         "The daemon is in lockdown (the policy failed to load: %s); fix it and reload first",
                                         strna(m->last_error));
        if (!policy_find_profile(m->set->policy, profile))
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROFILE,
                                         "No profile '%s' in the policy (see ListProfiles)", profile);
        return 0;
}

/* Decide again and push to every given VM whose filter changed (all of
 * them when force), and answer msg when they have applied it. */
static int push_and_wait(struct manager *m, sd_bus_message *msg, struct vm **vms, size_t n, bool force,
                         sd_bus_error *error) {
        struct pending_call *c = pending_call_new(msg);
        int r;

        if (!c)
                return -ENOMEM;
        r = manager_apply_batched(m, vms, n, force, c);
        if (r < 0) {
                pending_call_cancel(c);
                return r;
        }
        return 1;
}

int change_vm_profile(struct manager *m, sd_bus_message *msg, struct vm *vm, const char *profile,
                      bool runtime, sd_bus_error *error) {
        bool reset = isempty(profile);
        char key[320];
        int r;

        r = bus_check_manage(msg, error);
        if (r < 0)
                return r;
        if (!reset) {
                r = check_profile(m, profile, error);
                if (r < 0)
                        return r;
        }
        if (!manager_vm_managed(vm))
                return sd_bus_error_setf(error, BUS_ERROR_NOT_MANAGED,
                                         "VM %s has no session with pmufilterd (state %s): its VMM must attach before its filter can change",
                                         vm->id, vm_state_to_string(vm->state));
        if (vm_key(vm, key, sizeof(key)) >= 0) {
                /* A change is recorded in one place: the other must not shadow it. */
                r = state_set(runtime ? &m->runtime : &m->persistent, key, reset ? NULL : profile);
                if (r >= 0 && (reset || !runtime))
                        r = state_set(&m->runtime, key, NULL);
                if (r < 0)
                        return r;
                r = save_changed(m, !runtime, error);
                if (r < 0)
                        return r;
        } else if (!runtime && !reset)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "VM %s has neither NAME nor UUID, so a persistent change could not find it again: use runtime=true",
                                         vm->id);
        if (reset)
                /* What is left (a persistent change under a runtime reset) still counts. */
                r = changes_update_override(m, vm);
        else {
                r = free_and_strdup(&vm->override, profile);
                vm->override_runtime = runtime;
        }
        if (r < 0)
                return r;
        /* The APPLY first, the record of the change while the VMM applies it. */
        r = push_and_wait(m, msg, &vm, 1, true, error);
        audit_record(LOG_NOTICE, MID_RUNTIME, vm->id, reset ? NULL : profile, vm->pid,
                     "VM %s: profile %s%s%s over D-Bus (%s)", vm->id, reset ? "reset to the policy" : "set to '",
                     reset ? "" : profile, reset ? "" : "'", runtime ? "runtime" : "persistent");
        return r;
}

int change_default_profile(struct manager *m, sd_bus_message *msg, const char *profile, bool runtime,
                           sd_bus_error *error) {
        _cleanup_free_ struct vm **vms = NULL;
        size_t n = 0;
        int r;

        r = bus_check_manage(msg, error);
        if (r < 0)
                return r;
        r = check_profile(m, profile, error);
        if (r < 0)
                return r;
        r = free_and_strdup(runtime ? &m->runtime.default_profile : &m->persistent.default_profile, profile);
        if (r >= 0 && !runtime)
                r = free_and_strdup(&m->runtime.default_profile, NULL);
        if (r < 0)
                return r;
        r = save_changed(m, !runtime, error);
        if (r < 0)
                return r;
        audit_record(LOG_NOTICE, MID_RUNTIME, NULL, profile, 0, "Default profile set to '%s' over D-Bus (%s)",
                     profile, runtime ? "runtime" : "persistent");
        bus_manager_changed(m);

        vms = calloc(m->registry.n_vms + 1, sizeof(*vms));
        if (!vms)
                return -ENOMEM;
        REGISTRY_FOREACH(vm, &m->registry)
                vms[n++] = vm;
        return push_and_wait(m, msg, vms, n, false, error);
}

int change_reapply(struct manager *m, sd_bus_message *msg, struct vm **vms, size_t n, sd_bus_error *error) {
        int r;

        r = bus_check_manage(msg, error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (!manager_vm_managed(vms[i]))
                        return sd_bus_error_setf(error, BUS_ERROR_NOT_MANAGED,
                                                 "VM %s has no session with pmufilterd (state %s): nothing can apply its filter",
                                                 vms[i]->id, vm_state_to_string(vms[i]->state));
        return push_and_wait(m, msg, vms, n, true, error);
}
