/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * reload.c — the policy in force: loaded at start (a broken one means
 * lockdown, not failure), and swapped on reload only when every file
 * parsed and every profile compiled; then the VMs whose filter changed get
 * the new one, in batches (pmufilterd(8), RELOAD).
 */
#include <assert.h>
#include <inttypes.h>
#include <systemd/sd-daemon.h>

#include "deliver.h"
#include "fileio.h"
#include "log.h"
#include "state.h"
#include "waiter.h"

/* Load and compile everything.  On failure *ret_error says why, in one line
 * (the first error), and every diagnostic has been logged. */
static int policy_set_load(struct deliver *d, struct policy_set **ret, char **ret_error) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        struct diags diags = {};
        int r;

        r = policy_load_files(d->config_path, &p, &diags);
        if (r >= 0) {
                r = policy_set_compile(p, d->pmu, d->kvm, &diags, ret);
                if (r >= 0)
                        p = NULL;       /* the set has it */
        }
        /* Until the next build, libpfm4's tables would only weigh on us. */
        pmu_libpfm_release();
        for (size_t i = 0; i < diags.n; i++)
                if (diags.v[i].level != DIAG_NOTE)
                        log_full_errno(diags.v[i].level == DIAG_ERROR ? LOG_ERR : LOG_WARNING, 0,
                                       "%s:%u:%u: %s", strna(diags.v[i].file), diags.v[i].line,
                                       diags.v[i].column, diags.v[i].message);
        if (r < 0) {
                char *e = diags_first_error(&diags);

                if (!e && asprintf(&e, "%s: %s", strna(d->config_path), strerror(-r)) < 0)
                        e = NULL;
                *ret_error = e;
        }
        diags_clear(&diags);
        return r;
}

/* The settings of a good policy, as a policy file of settings alone, kept
 * in the runtime directory: a later start whose policy does not even parse
 * serves VMMs where this one did (pmufilterd(8), LOCKDOWN). */
#define LAST_GOOD_SETTINGS "settings.last-good.yaml"

static int write_settings(FILE *f, const void *userdata) {
        const struct settings *s = userdata;

        fputs("# The settings of the last policy pmufilterd loaded, for a start whose\n"
              "# policy does not parse (lockdown).  Written by the daemon.\n"
              "version: 1\nsettings:\n  socket: ", f);
        yaml_put_scalar(f, s->socket ?: POLICY_DEFAULT_SOCKET);
        fputs("\n  socket_group: ", f);
        yaml_put_scalar(f, s->socket_group ?: POLICY_DEFAULT_SOCKET_GROUP);
        fprintf(f, "\n  attach_timeout_ms: %u\n  unattached_sessions_per_uid: %u\n"
                "  adopt: %s\n  unmanaged: %s\n", s->attach_timeout_ms, s->unattached_sessions_per_uid,
                s->adopt == ADOPT_PTRACE ? "ptrace" : "none", s->unmanaged == UNMANAGED_KILL ? "kill" : "warn");
        return ferror(f) ? -EIO : 0;
}

static void keep_last_good_settings(struct deliver *d) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (!d->runtime_dir || !d->decider->set)
                return;
        if (asprintf(&path, "%s/" LAST_GOOD_SETTINGS, d->runtime_dir) < 0)
                return (void) log_warning_errno(ENOMEM, "Failed to keep the settings of the policy: %m");
        r = write_file_atomic(path, 0644, WRITE_FILE_MKDIR, write_settings, &d->decider->set->policy->settings);
        if (r < 0)
                log_warning_errno(r, "Failed to keep the settings of the policy in %s: %m", path);
}

/* In lockdown: the settings that still parse of this policy, else those of
 * the last good one, else none (the defaults). */
static void load_lockdown_settings(struct deliver *d) {
        _cleanup_free_ char *path = NULL;
        struct diags ignored = {};

        d->lockdown_settings_last_good = false;
        if (policy_load_settings(d->config_path, &d->lockdown_settings, &ignored) < 0)
                d->lockdown_settings = NULL;
        diags_clear(&ignored);
        if (d->lockdown_settings || !d->runtime_dir ||
            asprintf(&path, "%s/" LAST_GOOD_SETTINGS, d->runtime_dir) < 0)
                return;
        /* Our own file, but a file: read as any policy, errors and all. */
        if (policy_load_settings(path, &d->lockdown_settings, &ignored) < 0) {
                d->lockdown_settings = NULL;
                if (access(path, F_OK) == 0)
                        log_warning("The last good settings in %s do not load either: the defaults serve", path);
        } else
                d->lockdown_settings_last_good = true;
        diags_clear(&ignored);
}

int deliver_load_policy(struct deliver *d) {
        _cleanup_free_ char *error = NULL;
        struct policy_set *s = NULL;
        int r;

        r = policy_set_load(d, &s, &error);
        if (r == -ENOMEM)
                return log_error_errno(r, "Failed to load the policy: %m");
        if (r < 0) {
                d->decider->lockdown = true;
                (void) decider_set_last_error(d->decider, error);
                /* What still parses of the settings (the socket above all):
                 * lockdown must serve VMMs where they look for it. */
                load_lockdown_settings(d);
                audit_record(LOG_CRIT, MID_LOCKDOWN, NULL, NULL, 0,
                             "Policy failed to load, LOCKDOWN: every VM gets an empty allowlist until a good reload: %s",
                             strna(error));
                return 0;
        }
        policy_set_free(decider_swap(d->decider, s));
        keep_last_good_settings(d);
        return 0;
}

void reload_preview_free(struct reload_preview *p, size_t n) {
        for (size_t i = 0; p && i < n; i++)
                free(p[i].new_profile);
        free(p);
}

int deliver_preview_reload(struct deliver *d, struct reload_preview **ret, size_t *ret_n, char **ret_error) {
        _cleanup_(policy_set_freep) struct policy_set *s = NULL;
        struct reload_preview *p = NULL;
        struct decider next;
        size_t n = 0;
        int r;

        assert(ret);
        r = policy_set_load(d, &s, ret_error);
        if (r < 0)
                return r == -ENOMEM ? r : -EINVAL;
        /* The decider as it would be: the new policy, the same changes. */
        next = *d->decider;
        next.set = s;
        next.lockdown = false;
        p = calloc(d->registry->n_vms + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        REGISTRY_FOREACH(vm, d->registry) {
                struct decide_input in;
                struct decision dec;

                deliver_decide_input(vm, &in);
                r = decide(&next, &in, &dec);
                if (r < 0) {
                        reload_preview_free(p, n);
                        return r;
                }
                p[n] = (struct reload_preview) {
                        .vm = vm,
                        .old_profile = vm->profile,
                        .new_profile = strdup(dec.profile),
                        /* Only a VM something applies filters to can get another. */
                        .filter_changes = deliver_vm_managed(vm) &&
                                          (!vm->filter || !compiled_filter_equal(vm->filter, dec.filter)),
                };
                compiled_filter_unref(dec.filter);
                if (!p[n++].new_profile) {
                        reload_preview_free(p, n);
                        return -ENOMEM;
                }
        }
        *ret = p;
        *ret_n = n;
        return 0;
}

int deliver_reload(struct deliver *d, struct vm_waiter *waiter) {
        _cleanup_(policy_set_freep) struct policy_set *old = NULL;
        _cleanup_strv_free_ char **old_names = NULL;
        _cleanup_free_ char *error = NULL;
        struct policy_set *s = NULL;
        bool was_lockdown = d->decider->lockdown;
        int r;

        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now_usec(CLOCK_MONOTONIC));
        /* The attaches whose VMMs are still applying were decided by the
         * policy before: their records come before the reload's. */
        deliver_say_held_attaches(d);
        r = policy_set_load(d, &s, &error);
        if (r < 0) {
                (void) decider_set_last_error(d->decider, error);
                audit_record(LOG_ERR, MID_RELOAD, NULL, NULL, 0, "Reload failed, keeping the %s: %s",
                             was_lockdown ? "lockdown" : "current policy", strna(error));
                registry_notify(d->registry, REGISTRY_POLICY_RELOADED, NULL,
                                &(struct registry_event_data) { .ok = false, .error = error });
                (void) sd_notify(false, "READY=1");
                return r == -ENOMEM ? r : -EINVAL;
        }
        for (size_t i = 0; d->decider->set && i < d->decider->set->policy->n_profiles; i++)
                (void) strv_extend(&old_names, d->decider->set->policy->profiles[i].name);
        /* Applied, since the operator asked for it, but said loudly. */
        strv_free(d->decider->reload_warnings);
        d->decider->reload_warnings = NULL;
        r = policy_set_loosenings(d->decider->set, s, &d->decider->reload_warnings);
        if (r < 0) {
                policy_set_free(s);
                return r;
        }
        for (char **w = d->decider->reload_warnings; w && *w; w++)
                audit_record(LOG_WARNING, MID_RELOAD, NULL, NULL, 0, "The reloaded policy loosens the one before: %s", *w);
        old = decider_swap(d->decider, s);
        policy_free(TAKE_PTR(d->lockdown_settings));
        keep_last_good_settings(d);
        registry_notify(d->registry, REGISTRY_POLICY_SWAPPED, NULL,
                        &(struct registry_event_data) { .old_names = old_names });
        if (was_lockdown)
                audit_record(LOG_NOTICE, MID_LOCKDOWN, NULL, NULL, 0, "Policy loaded: leaving lockdown");
        (void) decider_set_last_error(d->decider, NULL);
        audit_record(LOG_INFO, MID_RELOAD, NULL, NULL, 0, "Reloaded the policy: %zu profiles, %zu rules",
                     s->policy->n_profiles, s->policy->n_rules);
        r = deliver_apply_batched(d, NULL, 0, false, waiter);
        if (r < 0) {
                log_error_errno(r, "Failed to apply the new policy to the VMs: %m");
                if (waiter)
                        vm_waiter_arm(waiter);
        }
        registry_notify(d->registry, REGISTRY_POLICY_RELOADED, NULL,
                        &(struct registry_event_data) { .ok = true });
        (void) sd_notify(false, "READY=1");
        return 0;
}
