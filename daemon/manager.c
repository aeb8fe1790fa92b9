/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * manager.c — the decisions: which profile a VM gets, what filter that is,
 * when to push it, and what the VMM's answer means.  Sessions (session.c)
 * and the watchers (watch.c) feed it; it never touches a VM fd itself: KVM
 * lets only the VM's creator issue VM ioctls (DESIGN §1).
 */
#include <inttypes.h>
#include <signal.h>
#include <sys/syscall.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "adopt.h"
#include "batch.h"
#include "bus.h"
#include "changes.h"
#include "log.h"
#include "manager.h"
#include "match.h"
#include "persist.h"
#include "procscan.h"
#include "watch.h"
#include "session.h"
#include "uevent.h"

static void policy_set_free(struct policy_set *s) {
        if (!s)
                return;
        if (s->policy) {
                for (size_t i = 0; i < s->policy->n_profiles; i++)
                        compiled_filter_free(s->filters[i]);
                policy_free(s->policy);
        }
        free(s->filters);
        free(s);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct policy_set *, policy_set_free)

/* Load and compile everything.  On failure *ret_error says why, in one line
 * (the first error), and every diagnostic has been logged. */
static int policy_set_build(struct manager *m, struct policy_set **ret, char **ret_error) {
        _cleanup_(policy_set_freep) struct policy_set *s = NULL;
        struct diags d = {};
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        r = policy_load_files(m->config_path, &s->policy, &d);
        if (r >= 0) {
                s->filters = calloc(s->policy->n_profiles + 1, sizeof(*s->filters));
                if (!s->filters)
                        r = -ENOMEM;
                for (size_t i = 0; r >= 0 && i < s->policy->n_profiles; i++)
                        r = filter_compile(s->policy, s->policy->profiles[i].name, &m->pmu, &m->kvm,
                                           &s->filters[i], &d);
        }
        /* Until the next build, libpfm4's tables would only weigh on us. */
        pmu_libpfm_release();
        for (size_t i = 0; i < d.n; i++)
                if (d.v[i].level != DIAG_NOTE)
                        log_full_errno(d.v[i].level == DIAG_ERROR ? LOG_ERR : LOG_WARNING, 0,
                                       "%s:%u:%u: %s", strna(d.v[i].file), d.v[i].line,
                                       d.v[i].column, d.v[i].message);
        if (r < 0) {
                char *e = diags_first_error(&d);

                if (!e && asprintf(&e, "%s: %s", strna(m->config_path), strerror(-r)) < 0)
                        e = NULL;
                diags_clear(&d);
                *ret_error = e;
                return r;
        }
        diags_clear(&d);
        *ret = TAKE_PTR(s);
        return 0;
}

static void set_last_error(struct manager *m, const char *e) {
        (void) free_and_strdup(&m->last_error, e);
}

int manager_new(sd_event *e, const char *config_path, const char *socket_path, struct manager **ret) {
        struct manager *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(e);
        /* Serials grow across restarts too: an answer to an APPLY of the
         * daemon we replaced can never be taken for one of ours. */
        m->next_serial = now_usec(CLOCK_REALTIME);
        registry_init(&m->registry);
        if (free_and_strdup(&m->config_path, config_path) < 0 ||
            free_and_strdup(&m->socket_path, socket_path) < 0) {
                manager_free(m);
                return -ENOMEM;
        }
        (void) host_pmu_detect(&m->pmu);
        (void) kvm_support_probe(&m->kvm);
        *ret = m;
        return 0;
}

struct manager *manager_free(struct manager *m) {
        if (!m)
                return NULL;
        m->shutting_down = true;
        manager_free_batches(m);
        persist_flush(m);       /* what a restart reads back */
        REGISTRY_FOREACH(vm, &m->registry) {
                sd_event_source_disable_unref(vm->timer);
                vm->timer = NULL;
                if (vm->session)
                        session_free(vm->session);
        }
        session_server_free(m->server);
        uevent_watcher_free(m->watcher);
        bus_stop(m);
        free(m->bus_address);
        state_done(&m->persistent);
        state_done(&m->runtime);
        free(m->state_dir);
        free(m->runtime_dir);
        for (size_t i = 0; i < m->n_listen_fds; i++)
                safe_close(m->listen_fds[i]);
        free(m->listen_fds);
        strv_free(m->listen_names);
        registry_done(&m->registry);
        policy_set_free(m->set);
        free(m->config_path);
        free(m->socket_path);
        free(m->last_error);
        sd_event_source_disable_unref(m->status_event);
        vm_queue_done(&m->records);
        vm_queue_done(&m->announcements);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

int manager_load_policy(struct manager *m) {
        _cleanup_free_ char *error = NULL;
        struct policy_set *s = NULL;
        int r;

        r = policy_set_build(m, &s, &error);
        if (r == -ENOMEM)
                return log_error_errno(r, "Failed to load the policy: %m");
        if (r < 0) {
                m->lockdown = true;
                set_last_error(m, error);
                audit_record(LOG_CRIT, MID_LOCKDOWN, NULL, NULL, 0,
                             "Policy failed to load, LOCKDOWN: every VM gets an empty allowlist until a good reload: %s",
                             strna(error));
                return 0;
        }
        m->set = s;
        m->lockdown = false;
        return 0;
}

static const struct settings *manager_settings(const struct manager *m) {
        static const struct settings defaults = {
                .attach_timeout_ms = POLICY_DEFAULT_ATTACH_TIMEOUT_MS,
                .adopt = ADOPT_NONE,
                .unmanaged = UNMANAGED_WARN,
        };
        return m->set ? &m->set->policy->settings : &defaults;
}

const char *manager_socket_path(const struct manager *m) {
        const struct settings *s = manager_settings(m);

        if (m->socket_path)
                return m->socket_path;
        return s->socket ? s->socket : POLICY_DEFAULT_SOCKET;
}

/* What the policy and the D-Bus changes say for this VM: profile index into
 * set, or -ENOENT for "no rule and no default".  Order: a change made for
 * this VM over D-Bus, the first rule that matches, the default profile. */
static int decide_profile(struct manager *m, struct vm *vm, char *source, size_t size) {
        const struct policy *p = m->set->policy;
        struct match_input in = {
                .name = vm->name,
                .uuid = vm->uuid,
                .client = vm->client,
                .labels = vm->labels,
                .facts = vm->have_facts ? &vm->facts : NULL,
        };
        const char *name = NULL;
        bool overridden;
        int r;

        if (vm->override && policy_find_profile(p, vm->override)) {
                name = vm->override;
                snprintf(source, size, vm->override_runtime ? "runtime" : "persistent");
        } else if ((r = match_rules(p, &in)) >= 0) {
                name = p->rules[r].profile;
                snprintf(source, size, "rule:%d", r + 1);
        } else if ((name = changes_default_profile(m, &overridden))) {
                if (!policy_find_profile(p, name) && overridden) {
                        log_warning("Default profile '%s' set over D-Bus is not in the policy; using settings.default_profile",
                                    name);
                        name = p->settings.default_profile;
                }
                snprintf(source, size, "default");
        }
        if (!name)
                return -ENOENT;
        for (size_t i = 0; i < p->n_profiles; i++)
                if (streq(p->profiles[i].name, name))
                        return (int) i;
        return -ENOENT;
}

int manager_decide(struct manager *m, struct vm *vm) {
        _cleanup_(compiled_filter_freep) struct compiled_filter *f = NULL;
        char source[sizeof(vm->profile_source)] = "lockdown";
        const char *profile = "lockdown";
        bool changed;
        int r;

        if (m->set) {
                r = decide_profile(m, vm, source, sizeof(source));
                if (r >= 0) {
                        f = compiled_filter_ref(m->set->filters[r]);
                        profile = m->set->policy->profiles[r].name;
                } else {
                        /* No rule and no default: nothing may count. */
                        snprintf(source, sizeof(source), "none");
                        profile = "none";
                }
        }
        if (!f) {
                r = filter_lockdown(profile, &f);
                if (r < 0)
                        return r;
        }
        if (!f)
                return -ENOMEM;

        changed = !vm->filter || !compiled_filter_equal(vm->filter, f) || !streq_ptr(vm->profile, profile);
        if (!streq_ptr(vm->profile, profile)) {
                bus_profile_vms_changed(m, vm->profile);
                bus_profile_vms_changed(m, profile);
        }
        if (free_and_strdup(&vm->profile, profile) < 0)
                return -ENOMEM;
        snprintf(vm->profile_source, sizeof(vm->profile_source), "%s", source);
        compiled_filter_free(vm->filter);
        vm->filter = TAKE_PTR(f);
        return changed;
}

int manager_push(struct manager *m, struct vm *vm) {
        uint64_t serial = ++m->next_serial;
        int r;

        if (!vm->session)
                return -ENOTCONN;
        r = session_send_apply(vm->session, vm, serial);
        if (r < 0)
                return r;
        vm->serial_pending = serial;
        if (vm->state != VM_FILTERED && vm->state != VM_FAILED)
                vm_set_state(vm, VM_ATTACHED);
        return 0;
}

void manager_applied(struct manager *m, struct vm *vm, uint64_t serial, int error, int pmu_error) {
        _cleanup_free_ char *msg = NULL;

        if (serial != vm->serial_pending) {
                log_debug("VM %s: ignoring APPLIED for serial %" PRIu64 ", waiting for %" PRIu64,
                          vm->id, serial, vm->serial_pending);
                return;
        }
        vm->serial_pending = 0;
        if (error == 0 && vm->filter && vm->filter->pmu_off && pmu_error != 0 &&
            asprintf(&msg, "vPMU could not be disabled (%s): the fallback empty allowlist is in force",
                     strerror(pmu_error)) < 0)
                msg = NULL;
        manager_record_result(m, vm, error, msg, false, "");
}

void manager_record_result(struct manager *m, struct vm *vm, int error, const char *note, bool injected,
                           const char *detail) {
        const struct compiled_filter *f = vm->filter;
        const char *via = injected ? " by injection" : "";
        _cleanup_free_ char *msg = NULL;

        vm->last_errno = error;
        if (error == 0) {
                vm_set_state(vm, injected ? VM_ADOPTED : VM_FILTERED);
                vm->applied_usec = now_usec(CLOCK_REALTIME);
                (void) free_and_strdup(&vm->last_error, note);
                bus_vm_applied(m, vm, true, note);
                audit_record(LOG_INFO, MID_APPLIED, vm->id, vm->profile, vm->pid,
                             "VM %s%s%s%s: filter of profile '%s' applied%s (%s%s, %u entries)%s%s",
                             vm->id, vm->name ? " (" : "", strempty(vm->name), vm->name ? ")" : "",
                             vm->profile, via, detail, f && f->action ? "deny" : "allow", f ? f->nevents : 0,
                             note ? "; " : "", strempty(note));
        } else {
                vm_set_state(vm, VM_FAILED);
                if (asprintf(&msg, "KVM_SET_PMU_EVENT_FILTER%s failed: %s", injected ? " (injected)" : "",
                             strerror(error)) < 0)
                        msg = NULL;
                (void) free_and_strdup(&vm->last_error, msg);
                bus_vm_applied(m, vm, false, msg);
                audit_record(LOG_ERR, MID_FAILED, vm->id, vm->profile, vm->pid,
                             "VM %s: filter of profile '%s' was NOT applied%s: %s", vm->id, vm->profile, via,
                             strna(msg));
        }
        persist_vm(m, vm);
        manager_notify_status(m);
}

static int pidfd_kill(pid_t pid, uint64_t starttime) {
        _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);

        if (pidfd < 0)
                return -errno;
        /* Signals through the pidfd reach this process whatever happens to the
         * pid number; check the process is still the VM's before it is used. */
        if (proc_starttime(pid) != starttime)
                return -ESRCH;
        if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0)
                return -errno;
        return 0;
}

void manager_vm_unmanaged(struct manager *m, struct vm *vm) {
        const struct settings *s = manager_settings(m);

        vm_set_state(vm, VM_UNMANAGED);
        if (s->unmanaged == UNMANAGED_KILL) {
                int r = pidfd_kill(vm->pid, vm->starttime);

                audit_record(LOG_WARNING, MID_UNMANAGED, vm->id, NULL, vm->pid,
                             "VM %s (%s, pid %d) is unmanaged: no ATTACH within %u ms; %s%s",
                             vm->id, strna(vm->have_facts ? vm->facts.comm : NULL), (int) vm->pid,
                             s->attach_timeout_ms, r < 0 ? "failed to kill its VMM: " : "killed its VMM (SIGKILL)",
                             r < 0 ? strerror(-r) : "");
        } else
                audit_record(LOG_WARNING, MID_UNMANAGED, vm->id, NULL, vm->pid,
                             "VM %s (%s, pid %d) is unmanaged: no ATTACH within %u ms; its guest PMU is not filtered",
                             vm->id, strna(vm->have_facts ? vm->facts.comm : NULL), (int) vm->pid,
                             s->attach_timeout_ms);
        bus_vm_unmanaged(m, vm);
        persist_vm(m, vm);
        manager_notify_status(m);
}

static int on_attach_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct vm *vm = userdata;
        struct manager *m = vm->manager;
        pid_t pid = vm->pid;

        sd_event_source_disable_unref(vm->timer);
        vm->timer = NULL;
        if (vm->state != VM_DETECTED)
                return 0;
        /* 0, not < 0: when /proc cannot tell (EACCES: no CAP_SYS_PTRACE, a
         * non-dumpable VMM), the VM is still to be reported. */
        if (proc_fd_kvm_vm(pid, vm->fd) == 0) {
                /* The number the VM was created on is closed: the VM is gone
                 * (its DESTROY is on its way) or lives on under another one
                 * (the VMM moved it, and may have attached with that).  This
                 * entry says nothing either way: drop it, and let a scan of
                 * the process register any VM fd it does not know. */
                manager_vm_gone(m, vm, "the fd it was created on was closed");
                watch_scan_pid(m, pid);
                return 0;
        }
        if (manager_settings(m)->adopt == ADOPT_PTRACE && manager_adopt(m, vm) >= 0)
                return 0;
        manager_vm_unmanaged(m, vm);
        return 0;
}

void manager_arm_attach_timeout(struct manager *m, struct vm *vm) {
        int r;

        r = sd_event_add_time_relative(m->event, (sd_event_source **) &vm->timer, CLOCK_MONOTONIC,
                                       (uint64_t) manager_settings(m)->attach_timeout_ms * 1000u, 0,
                                       on_attach_timeout, vm);
        if (r < 0)
                log_warning_errno(r, "VM %s: failed to arm the attach timeout: %m", vm->id);
}

int manager_vm_detected(struct manager *m, pid_t pid, int fd, struct vm **ret) {
        struct vm *vm = registry_get(&m->registry, pid, fd);
        uint64_t st;
        int r;

        st = proc_starttime(pid);
        if (st == 0)
                return -ESRCH;
        if (vm && vm->starttime == st) {
                if (ret)
                        *ret = vm;
                return 0;
        }
        if (vm)         /* same pid and fd, another process: the old one is gone */
                manager_vm_gone(m, vm, "its process was replaced");

        r = registry_add(&m->registry, pid, fd, &vm);
        if (r < 0)
                return r;
        vm->starttime = st;
        vm->manager = m;
        r = proc_facts_open(pid, &vm->facts);
        if (r == -ESRCH) {
                registry_remove(&m->registry, vm);
                return r;
        }
        vm->have_facts = r >= 0;

        manager_arm_attach_timeout(m, vm);
        log_debug("VM %s detected (pid %d, %s)", vm->id, (int) pid, strna(vm->facts.comm));
        bus_vm_new(m, vm);
        manager_notify_status(m);
        if (ret)
                *ret = vm;
        return 1;
}

void manager_vm_gone(struct manager *m, struct vm *vm, const char *why) {
        audit_record(LOG_INFO, MID_GONE, vm->id, vm->profile, vm->pid, "VM %s is gone: %s", vm->id, why);
        sd_event_source_disable_unref(vm->timer);
        vm->timer = NULL;
        if (vm->session)
                session_free(vm->session);
        bus_vm_removed(m, vm);
        persist_forget_vm(m, vm);
        registry_remove(&m->registry, vm);
        bus_manager_changed(m);
        manager_notify_status(m);
}

/* Push the current decision to every session whose filter changed. */
bool manager_vm_managed(const struct vm *vm) {
        return vm->session || vm->state == VM_ADOPTED;
}

int manager_apply(struct manager *m, struct vm *vm, struct pending_call *waiter) {
        int r;

        if (vm->session) {
                r = manager_push(m, vm);
                if (r >= 0 && waiter)
                        r = pending_call_wait(waiter, vm);
                return r;
        }
        if (vm->state != VM_ADOPTED)
                return -ENOTCONN;
        /* Adopted: inject again, now.  The waiter is answered by the result. */
        if (waiter) {
                r = pending_call_wait(waiter, vm);
                if (r < 0)
                        return r;
        }
        r = manager_adopt(m, vm);
        if (r < 0)
                bus_vm_session_lost(m, vm, vm->last_error);
        return r;
}

void manager_repush_changed(struct manager *m, struct pending_call *waiter) {
        int r = manager_apply_batched(m, NULL, 0, false, waiter);

        if (r < 0) {
                log_error_errno(r, "Failed to apply the new policy to the VMs: %m");
                if (waiter)
                        pending_call_arm(waiter);
        }
}

int manager_reload(struct manager *m, struct pending_call *waiter) {
        _cleanup_free_ char *error = NULL;
        struct policy_set *s = NULL;
        int r;

        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now_usec(CLOCK_MONOTONIC));
        r = policy_set_build(m, &s, &error);
        if (r < 0) {
                set_last_error(m, error);
                audit_record(LOG_ERR, MID_RELOAD, NULL, NULL, 0,
                             "Reload failed, keeping the %s: %s",
                             m->lockdown ? "lockdown" : "current policy", strna(error));
                bus_reloaded(m, false, error);
                (void) sd_notify(false, "READY=1");
                manager_notify_status(m);
                return r == -ENOMEM ? r : -EINVAL;
        }
        _cleanup_strv_free_ char **old_names = NULL;
        for (size_t i = 0; m->set && i < m->set->policy->n_profiles; i++)
                (void) strv_extend(&old_names, m->set->policy->profiles[i].name);
        policy_set_free(m->set);
        m->set = s;
        bus_profiles_changed(m, old_names);
        if (m->lockdown)
                audit_record(LOG_NOTICE, MID_LOCKDOWN, NULL, NULL, 0, "Policy loaded: leaving lockdown");
        m->lockdown = false;
        set_last_error(m, NULL);
        audit_record(LOG_INFO, MID_RELOAD, NULL, NULL, 0, "Reloaded the policy: %zu profiles, %zu rules",
                     s->policy->n_profiles, s->policy->n_rules);
        manager_repush_changed(m, waiter);
        bus_reloaded(m, true, NULL);
        (void) sd_notify(false, "READY=1");
        manager_notify_status(m);
        return 0;
}

static int on_notify_status(sd_event_source *s, uint64_t usec, void *userdata) {
        struct manager *m = userdata;
        const size_t *n = m->registry.n_state;

        (void) sd_notifyf(false,
                          "STATUS=%s%zu VMs: %zu filtered, %zu adopted, %zu failed, %zu unmanaged, %zu detected, %zu attached, %zu detached",
                          m->lockdown ? "LOCKDOWN; " : "", m->registry.n_vms, n[VM_FILTERED], n[VM_ADOPTED], n[VM_FAILED],
                          n[VM_UNMANAGED], n[VM_DETECTED], n[VM_ATTACHED], n[VM_DETACHED]);
        return 0;
}

/* Every VM event changes the counts, but counting walks the registry: a
 * change pushed to n VMs walked it n times, O(n²); and once per event, even
 * at idle priority, the walk lay on the path of the next ATTACH (37% of the
 * daemon's samples attaching beside 9,800 sessions).  Count at most once
 * per STATUS_DELAY_USEC, after a change: no timer runs while nothing happens. */
#define STATUS_DELAY_USEC (100 * 1000)

void manager_notify_status(struct manager *m) {
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
