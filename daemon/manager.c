/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * manager.c — start-up and shut-down of the daemon, and its status line.
 * Restoring the last run's VMs is one straight sequence here, from the top:
 * the records say which VMs there were, the fd store gives their sessions
 * back, and each layer is called for its part.
 */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <systemd/sd-daemon.h>

#include "fileio.h"
#include "log.h"
#include "manager.h"
#include "session.h"

static int on_notify_status(sd_event_source *s, uint64_t usec, void *userdata) {
        struct manager *m = userdata;
        const size_t *n = m->registry.n_state;

        (void) sd_notifyf(false,
                          "STATUS=%s%zu VMs: %zu filtered, %zu adopted, %zu failed, %zu unmanaged, %zu detected, %zu attached, %zu detached",
                          m->decider.lockdown ? "LOCKDOWN; " : "", m->registry.n_vms, n[VM_FILTERED], n[VM_ADOPTED],
                          n[VM_FAILED], n[VM_UNMANAGED], n[VM_DETECTED], n[VM_ATTACHED], n[VM_DETACHED]);
        return 0;
}

/* Counting once per event would put STATUS= on the path of the next
 * ATTACH (docs/benchmarks.md): count at most once per STATUS_DELAY_USEC,
 * after a change; no timer runs while nothing happens. */
#define STATUS_DELAY_USEC (100 * 1000)

static void notify_status(struct manager *m) {
        int enabled = SD_EVENT_OFF;

        if (!m->status_event) {
                if (sd_event_add_time_relative(m->event, &m->status_event, CLOCK_MONOTONIC, STATUS_DELAY_USEC, 0,
                                               on_notify_status, m) < 0) {
                        (void) on_notify_status(NULL, 0, m);
                        return;
                }
                (void) sd_event_source_set_priority(m->status_event, SD_EVENT_PRIORITY_IDLE);
                (void) sd_event_source_set_description(m->status_event, "notify-status");
                return;
        }
        if (sd_event_source_get_enabled(m->status_event, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;         /* due already: it will count this change too */
        (void) sd_event_source_set_time_relative(m->status_event, STATUS_DELAY_USEC);
        (void) sd_event_source_set_enabled(m->status_event, SD_EVENT_ONESHOT);
}

static void on_registry(struct registry *r, enum registry_event ev, struct vm *vm,
                        const struct registry_event_data *data, void *userdata) {
        switch (ev) {
        case REGISTRY_VM_NEW:
        case REGISTRY_VM_APPLIED:
        case REGISTRY_VM_SESSION_LOST:
        case REGISTRY_VM_UNMANAGED:
        case REGISTRY_COUNT_CHANGED:
        case REGISTRY_POLICY_RELOADED:
                notify_status(userdata);
                break;
        default:
                break;
        }
}

static int strdup_options(struct manager_options *dst, const struct manager_options *src) {
        *dst = (struct manager_options) { .no_bus = src->no_bus };
        if (free_and_strdup((char **) &dst->config_path, src->config_path) < 0 ||
            free_and_strdup((char **) &dst->socket_path, src->socket_path) < 0 ||
            free_and_strdup((char **) &dst->bus_address, src->bus_address) < 0 ||
            free_and_strdup((char **) &dst->state_dir, src->state_dir) < 0 ||
            free_and_strdup((char **) &dst->runtime_dir, src->runtime_dir) < 0 ||
            free_and_strdup((char **) &dst->metrics_file, src->metrics_file) < 0)
                return -ENOMEM;
        return 0;
}

static void free_options(struct manager_options *o) {
        free((char *) o->config_path);
        free((char *) o->socket_path);
        free((char *) o->bus_address);
        free((char *) o->state_dir);
        free((char *) o->runtime_dir);
        free((char *) o->metrics_file);
}

/* Audit records made on a path someone waits on (audit_record_extra_later()):
 * written in the next idle turn of the loop, if nothing said first. */
static int on_audit_later(sd_event_source *s, void *userdata) {
        audit_flush();
        return 0;
}

static void audit_later_schedule(void *userdata) {
        struct manager *m = userdata;

        (void) sd_event_source_set_enabled(m->audit_event, SD_EVENT_ONESHOT);
}

int manager_new(sd_event *e, const struct manager_options *o, struct fdstore *fdstore, struct manager **ret) {
        _cleanup_(manager_freep) struct manager *m = NULL;
        int r;

        assert(e);
        assert(o && o->state_dir && o->runtime_dir);
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(e);
        registry_init(&m->registry);
        r = deliver_init(&m->deliver, e, &m->registry, &m->records, &m->decider);
        if (r < 0)
                return r;
        m->deliver.fdstore = *fdstore;
        *fdstore = (struct fdstore) {};
        r = strdup_options(&m->options, o);
        if (r < 0)
                return r;
        r = records_init(&m->records, &m->registry, e, m->options.runtime_dir);
        if (r < 0)
                return r;
        (void) host_pmu_detect(&m->pmu);
        (void) kvm_support_probe(&m->kvm);
        m->deliver.pmu = &m->pmu;
        m->deliver.kvm = &m->kvm;
        m->deliver.config_path = m->options.config_path;
        m->deliver.socket_path = m->options.socket_path;
        m->deliver.runtime_dir = m->options.runtime_dir;
        m->bus.state_dir = m->options.state_dir;
        m->bus.runtime_dir = m->options.runtime_dir;
        r = registry_subscribe(&m->registry, on_registry, m);
        if (r < 0)
                return r;
        r = metrics_init(&m->metrics, e, &m->registry, &m->decider, m->options.metrics_file);
        if (r < 0)
                return r;
        r = sd_event_add_defer(e, &m->audit_event, on_audit_later, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(m->audit_event, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_description(m->audit_event, "audit-later");
        (void) sd_event_source_set_enabled(m->audit_event, SD_EVENT_OFF);
        log_set_later(audit_later_schedule, m);
        *ret = TAKE_PTR(m);
        return 0;
}

struct manager *manager_free(struct manager *m) {
        if (!m)
                return NULL;
        /* What a restart reads back, while the sessions still are there to
         * go to the fd store with their records. */
        deliver_free_batches(&m->deliver);
        /* A VMM still applying its first filter has no record yet (its
         * answer writes it): written now, with the APPLY the next start
         * sends again, and its session goes to the fd store with it. */
        REGISTRY_FOREACH(vm, &m->registry)
                if (vm->session_unstored)
                        records_mark(&m->records, vm);
        records_flush(&m->records);
        deliver_done(&m->deliver);
        if (m->have_bus)
                bus_stop(&m->bus);
        records_done(&m->records);
        registry_done(&m->registry);
        metrics_done(&m->metrics);
        decider_done(&m->decider);
        sd_event_source_disable_unref(m->status_event);
        if (m->audit_event) {
                log_set_later(NULL, NULL);
                audit_flush();
                sd_event_source_disable_unref(m->audit_event);
        }
        free_options(&m->options);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

/* One state file (lib/state.h); a corrupt one is reported and set aside.
 * Grants are runtime changes only: one in the persistent file is corrupt. */
static int load_state(const char *dir, struct state *s, bool runtime) {
        _cleanup_free_ char *path = NULL, *error = NULL, *aside = NULL;
        int r;

        if (asprintf(&path, "%s/state.yaml", dir) < 0)
                return log_error_errno(ENOMEM, "Failed to read the state files: %m");
        r = state_load(path, s, &error);
        if (r >= 0 && !runtime && state_next_expiry(s) > 0) {
                state_done(s);
                error = strdup("'expires_usec': a grant ends with the runtime state, it is never persistent");
                r = -EINVAL;
        }
        if (r >= 0) {
                if (!state_fits(s))
                        log_error("%s: as pmufilterd writes it, it would be over %u MiB: every change that "
                                  "writes it is refused until changes of VMs that are gone are removed from it, "
                                  "with the daemon stopped", path, STATE_FILE_MAX / (1024 * 1024));
                return 0;
        }
        /* A file that could not be read now (no memory, an I/O error, no
         * permission) is not corrupt: starting without its changes would
         * write over them with the next one.  Better not to start. */
        if (r != -EINVAL)
                return log_error_errno(r, "Failed to read %s: %s", path, error ? error : strerror(-r));
        if (asprintf(&aside, "%s.corrupt", path) >= 0 && rename(path, aside) >= 0)
                log_error("%s: %s: set aside as %s; starting without these changes", path, strna(error), aside);
        else
                log_error("%s: %s: ignored", path, strna(error));
        *s = (struct state) {};
        return 0;
}

/* One VM of the last run, registered from its record: its override, its
 * facts, its session from the fd store, and the APPLY that was in flight. */
static void restore_vm(struct manager *m, struct vm *vm) {
        struct deliver *d = &m->deliver;
        int sfd;

        /* The state files, written before any change was answered, say
         * what was set for this VM; its record may lag them.  (A VM bound
         * to nothing is in no state file: its record holds it.) */
        if ((vm->name || vm->uuid) && deliver_update_override(d, vm) < 0) {
                records_forget(&m->records, vm);
                return registry_remove(&m->registry, vm);
        }

        /* Even with a clock that went back, no serial of ours repeats one of
         * the daemon we replace. */
        if (vm->serial_pending >= d->next_serial)
                d->next_serial = vm->serial_pending;
        sfd = fdstore_take_session(&d->fdstore, vm->id);
        if (sfd >= 0 && session_restore(d->server, sfd, vm) < 0) {
                /* Closed by session_restore(): let systemd drop its copy too. */
                fdstore_forget_session(vm->id);
                sfd = -1;
        }
        if (sfd >= 0) {
                log_info("VM %s: session taken back from the fd store (%s, profile %s)", vm->id,
                         vm_state_to_string(vm->state), strna(vm->profile));
                /* An APPLY was in flight, or its answer came after the record
                 * was written (records lag the loop): whether the VMM got it
                 * is unknown, so send it again.  An answer to the old one,
                 * if queued, has an older serial and is ignored. */
                if (vm->serial_pending)
                        (void) deliver_push(d, vm);
                return;
        }
        /* No session survived: the filter stays in the kernel; its client will reconnect. */
        vm->serial_pending = 0;
        if (vm->state == VM_FILTERED || vm->state == VM_ATTACHED || vm->state == VM_FAILED)
                registry_set_state(&m->registry, vm, VM_DETACHED);
        log_info("VM %s: restored without a session (%s)", vm->id, vm_state_to_string(vm->state));
        if (vm->state == VM_DETECTED)
                deliver_arm_attach_timeout(d, vm);
}

/* Version 1 of state.yaml keyed a VM's change by a UUID or name alone,
 * which any VMM may claim.  Each such change is bound now to the verified
 * identity of the one running VM that claims it, or dropped with the
 * reason: what it was meant for cannot be known otherwise. */
static int migrate_state(struct manager *m, bool runtime) {
        struct state *s = runtime ? &m->decider.runtime : &m->decider.persistent;
        const char *dir = runtime ? m->options.runtime_dir : m->options.state_dir;
        _cleanup_free_ char *path = NULL;
        bool changed = false;
        int r;

        for (size_t i = 0; i < s->n;) {
                _cleanup_free_ char *old = NULL, *profile = NULL, *key = NULL, *value = NULL;
                struct vm *vms[2], *vm = NULL;
                const char *kind, *v;
                char bound[512];
                size_t n, claimants = 0;

                if (!overrides_key_legacy(s->v[i].key, &kind, &v)) {
                        i++;
                        continue;
                }
                old = strdup(s->v[i].key);
                profile = strdup(s->v[i].profile);
                value = strdup(v);
                if (!old || !profile || !value)
                        return log_error_errno(ENOMEM, "Failed to migrate the state files: %m");
                if (streq(kind, "uuid"))
                        for (char *c = value; *c; c++)
                                *c = (char) tolower((unsigned char) *c);
                n = registry_lookup_all(&m->registry, value, vms, ELEMENTSOF(vms));
                for (size_t j = 0; j < n && j < ELEMENTSOF(vms); j++)
                        if (streq_ptr(streq(kind, "uuid") ? vms[j]->uuid : vms[j]->name, value)) {
                                vm = vms[j];
                                claimants++;
                        }
                if (claimants == 1) {
                        struct vm_identity id;

                        deliver_vm_identity(vm, &id);
                        if (overrides_key(&id, &key) == -ENOMEM)
                                return log_error_errno(ENOMEM, "Failed to migrate the state files: %m");
                }
                if (state_set(s, old, NULL) < 0 || (key && state_set(s, key, profile) < 0))
                        return log_error_errno(ENOMEM, "Failed to migrate the state files: %m");
                changed = true;
                if (key)
                        log_warning("%s/state.yaml: the change '%s' (profile %s) is now bound to %s, what VM %s is",
                                    dir, old, profile, overrides_describe(key, bound, sizeof(bound)), vm->id);
                else
                        log_warning("%s/state.yaml: the change '%s' (profile %s) is dropped: %s", dir, old, profile,
                                    claimants == 0 ? "no running VM claims it, so what it was set on cannot be "
                                                     "verified; set it again on the VM" :
                                    claimants > 1 ? "several running VMs claim it" :
                                                    "the VM claiming it is bound to nothing verified");
        }
        if (!changed)
                return 0;
        if (asprintf(&path, "%s/state.yaml", dir) < 0)
                return log_error_errno(ENOMEM, "Failed to migrate the state files: %m");
        r = state_save(path, s);
        if (r < 0)
                log_warning_errno(r, "Failed to write %s after its migration: %m", path);
        return 0;
}

static int write_guard(FILE *f, const void *userdata) {
        fprintf(f, "PID=%d\n", (int) getpid());
        return ferror(f) ? -EIO : 0;
}

/* A start that died restoring must not be fed the same records again
 * (systemd restarts it at once: a crash loop, and no VMM can start while
 * the daemon is down).  The marker says a restore was under way; finding
 * it, this start restores nothing from the records and moves them aside,
 * dropping the stored sessions too: the /proc scan finds every VM, and
 * their VMMs attach again. */
static bool restore_guard_tripped(struct manager *m, const char *guard) {
        _cleanup_free_ char *aside = NULL, *legacy_aside = NULL;
        int r;

        if (access(guard, F_OK) < 0)
                return false;
        if (asprintf(&aside, "%s.unrestored", m->records.path) < 0 ||
            asprintf(&legacy_aside, "%s.unrestored", m->records.legacy_dir) < 0)
                return true;
        /* The per-VM files of an earlier version, if any, too. */
        (void) rm_rf_shallow(legacy_aside);
        (void) rename(m->records.legacy_dir, legacy_aside);
        r = rename(m->records.path, aside) < 0 ? -errno : 0;
        log_full_errno(LOG_CRIT, 0, "The last start of pmufilterd died while restoring its VM records (%s is there): "
                       "restoring none this time%s%s; every VM is found by the /proc scan and its VMM attaches again",
                       guard, r >= 0 ? ", they are kept in " : "", r >= 0 ? aside : "");
        return true;
}

static int restore(struct manager *m) {
        _cleanup_free_ struct vm **vms = NULL;
        _cleanup_free_ char *guard = NULL;
        unsigned n_records = 0;
        size_t n = 0;
        int r;

        if (asprintf(&guard, "%s/restoring", m->options.runtime_dir) < 0)
                return log_error_errno(ENOMEM, "Failed to restore: %m");
        if (restore_guard_tripped(m, guard)) {
                fdstore_drop_sessions(&m->deliver.fdstore);
                (void) unlink(guard);
                return 0;
        }
        r = write_file_atomic(guard, 0600, WRITE_FILE_MKDIR, write_guard, NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to write %s (restoring without the guard against a crash loop): %m", guard);

        r = records_restore(&m->records, &vms, &n, &n_records);
        if (r < 0)
                return log_error_errno(r, "Failed to read the VM records of %s: %m", m->records.path);
        for (size_t i = 0; i < n; i++)
                vms[i]->have_facts = proc_facts_open(vms[i]->pid, &vms[i]->facts) >= 0;
        /* Old state files first: the VMs restored are what their changes
         * get bound to. */
        r = migrate_state(m, false);
        if (r >= 0)
                r = migrate_state(m, true);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                restore_vm(m, vms[i]);
        /* Stored connections whose VM is gone: let systemd drop them too. */
        fdstore_drop_sessions(&m->deliver.fdstore);
        if (n_records > 0)
                log_info("Restored %zu of %u VM records from %s", m->registry.n_vms, n_records, m->records.path);
        /* Decided under the policy in force now: push what changed. */
        r = deliver_apply_batched(&m->deliver, NULL, 0, false, NULL);
        if (r < 0)
                log_error_errno(r, "Failed to apply the new policy to the VMs: %m");
        (void) unlink(guard);
        return 0;
}

int manager_startup(struct manager *m) {
        int r;

        r = deliver_load_policy(&m->deliver);
        if (r < 0)
                return r;
        r = load_state(m->options.state_dir, &m->decider.persistent, false);
        if (r < 0)
                return r;
        r = load_state(m->options.runtime_dir, &m->decider.runtime, true);
        if (r < 0)
                return r;
        if (!m->options.no_bus) {
                r = bus_start(&m->bus, &m->deliver, m->options.bus_address);
                m->have_bus = true;
                if (r < 0)
                        return r;
        }
        r = deliver_listen(&m->deliver);
        if (r < 0)
                return r;
        r = restore(m);
        if (r < 0)
                return r;
        /* Grants that ended while we were down end now; the others wait. */
        deliver_grants_expire(&m->deliver, true);
        r = deliver_watch(&m->deliver);
        if (r < 0)
                return r;
        notify_status(m);
        metrics_changed(&m->metrics);
        return 0;
}
