/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus.c — connecting to the bus, authorisation, signals, and pending calls
 * (replies that wait for the VMMs' APPLIED).  The vtables live in
 * bus-manager.c, bus-vm.c and bus-profile.c.
 */
#include <inttypes.h>

#include "bus.h"
#include "log.h"

struct pending_call {
        sd_bus_message *msg;
        unsigned outstanding;
        unsigned n_failed;
        char *first_error;
        bool armed;
        bool replied;
};

static void pending_call_reply(struct pending_call *c) {
        if (c->replied || !c->armed || c->outstanding > 0)
                return;
        c->replied = true;
        if (c->n_failed > 0)
                (void) sd_bus_reply_method_errorf(c->msg, BUS_ERROR_APPLY_FAILED, "%s%s",
                                                  c->first_error ? c->first_error : "filter not applied",
                                                  c->n_failed > 1 ? " (and more VMs failed)" : "");
        else
                (void) sd_bus_reply_method_return(c->msg, NULL);
        sd_bus_message_unref(c->msg);
        free(c->first_error);
        free(c);
}

struct pending_call *pending_call_new(sd_bus_message *msg) {
        struct pending_call *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->msg = sd_bus_message_ref(msg);
        return c;
}

int pending_call_wait(struct pending_call *c, struct vm *vm) {
        struct pending_call **w = reallocarray(vm->waiters, vm->n_waiters + 1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        vm->waiters = w;
        w[vm->n_waiters++] = c;
        c->outstanding++;
        return 0;
}

void pending_call_cancel(struct pending_call *c) {
        if (!c)
                return;
        sd_bus_message_unref(c->msg);
        free(c->first_error);
        free(c);
}

void pending_call_arm(struct pending_call *c) {
        c->armed = true;
        pending_call_reply(c);
}

static void complete_waiters(struct vm *vm, bool ok, const char *error) {
        size_t n = vm->n_waiters;
        struct pending_call **w = vm->waiters;

        vm->waiters = NULL;
        vm->n_waiters = 0;
        for (size_t i = 0; i < n; i++) {
                struct pending_call *c = w[i];

                if (!ok) {
                        c->n_failed++;
                        if (!c->first_error && asprintf(&c->first_error, "VM %s: %s", vm->id,
                                                        error ? error : "filter not applied") < 0)
                                c->first_error = NULL;
                }
                c->outstanding--;
                pending_call_reply(c);
        }
        free(w);
}

/* The uids of the last callers, by unique bus name.  dbus-daemon never
 * reuses a unique name while it runs, so an entry cannot come to mean
 * another client; it saves a synchronous GetConnectionCredentials round
 * trip to the bus on every changing call of the same client. */
#define SENDER_CACHE_SIZE 16
static struct {
        char name[64];
        uid_t uid;
} sender_cache[SENDER_CACHE_SIZE];
static unsigned sender_cache_next;

static int sender_uid(sd_bus_message *msg, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender = sd_bus_message_get_sender(msg);
        int r;

        if (sender && strlen(sender) < sizeof(sender_cache[0].name))
                for (unsigned i = 0; i < SENDER_CACHE_SIZE; i++)
                        if (streq(sender_cache[i].name, sender)) {
                                *ret = sender_cache[i].uid;
                                return 0;
                        }
        r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID, &creds);
        if (r >= 0)
                r = sd_bus_creds_get_euid(creds, ret);
        if (r < 0)
                return r;
        if (sender && sender[0] == ':' && strlen(sender) < sizeof(sender_cache[0].name)) {
                unsigned i = sender_cache_next++ % SENDER_CACHE_SIZE;

                strcpy(sender_cache[i].name, sender);
                sender_cache[i].uid = *ret;
        }
        return 0;
}

int bus_check_manage(sd_bus_message *msg, sd_bus_error *error) {
        uid_t uid;
        int r;

        r = sender_uid(msg, &uid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot tell who is calling: %s", strerror(-r));
        if (uid != 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Changing the PMU policy needs root (caller has uid %u)", (unsigned) uid);
        return 1;
}

char *bus_vm_path(const struct vm *vm) {
        char buf[VM_PATH_MAX];

        /* An id is "<pid>-<fd>": its path always fits. */
        return vm_object_path(BUS_VM_PREFIX, vm->id, buf, sizeof(buf)) < 0 ? NULL : strdup(buf);
}

char *bus_profile_path(const char *name) {
        char *p = NULL;

        return sd_bus_path_encode(BUS_PROFILE_PREFIX, name, &p) < 0 ? NULL : p;
}

static void emit_vm_signal_raw(struct manager *m, const char *member, struct vm *vm) {
        char path[VM_PATH_MAX];

        if (vm_object_path(BUS_VM_PREFIX, vm->id, path, sizeof(path)) >= 0)
                (void) sd_bus_emit_signal(m->bus, BUS_PATH, "org.pmufilterd1.Manager", member, "so", vm->id, path);
}

static void announce(struct manager *m, struct vm *vm) {
        char path[VM_PATH_MAX];

        vm->unannounced = false;
        emit_vm_signal_raw(m, "VMNew", vm);
        if (vm_object_path(BUS_VM_PREFIX, vm->id, path, sizeof(path)) >= 0)
                (void) sd_bus_emit_object_added(m->bus, path);
}

/* Whatever is said about a VM comes after VMNew and InterfacesAdded. */
static bool vm_said(struct manager *m, struct vm *vm) {
        if (!m->bus)
                return false;
        if (vm->unannounced)
                announce(m, vm);
        return true;
}

static void emit_vm_signal(struct manager *m, const char *member, struct vm *vm) {
        if (vm_said(m, vm))
                emit_vm_signal_raw(m, member, vm);
}

static void announce_run(struct vm *vm, void *userdata) {
        vm_said(userdata, vm);
}

static void announce_done(void *userdata) {
        bus_manager_changed(userdata);          /* NVMs, once per batch */
}

/* A new VM is said on the bus when the loop has nothing more urgent: a
 * VMM's ATTACH, right behind its VM's creation, then finds the daemon (and
 * dbus-daemon, which routes three signals per VM) free. */
void bus_vm_new(struct manager *m, struct vm *vm) {
        if (!m->bus)
                return;
        if (!m->announcements.run)
                m->announcements = (struct vm_queue) {
                        .description = "vm-announcements",
                        .run = announce_run,
                        .done = announce_done,
                        .userdata = m,
                        .registry = &m->registry,
                        .event = m->event,
                };
        if (vm_queue_push(&m->announcements, vm) < 0) {
                announce(m, vm);
                bus_manager_changed(m);
                return;
        }
        vm->unannounced = true;
}

void bus_vm_removed(struct manager *m, struct vm *vm) {
        _cleanup_free_ char *path = NULL;

        complete_waiters(vm, false, "the VM is gone");
        if (!m->bus)
                return;
        emit_vm_signal(m, "VMRemoved", vm);
        path = bus_vm_path(vm);
        if (path)
                (void) sd_bus_emit_object_removed(m->bus, path);
        /* NVMs changes once the registry has dropped it: manager_vm_gone() says so. */
}

void bus_vm_unmanaged(struct manager *m, struct vm *vm) {
        emit_vm_signal(m, "VMUnmanaged", vm);
        bus_vm_changed(m, vm);
}

void bus_vm_changed(struct manager *m, struct vm *vm) {
        _cleanup_free_ char *path = NULL;

        if (!vm_said(m, vm))
                return;
        path = bus_vm_path(vm);
        if (path)
                (void) sd_bus_emit_properties_changed(m->bus, path, "org.pmufilterd1.VM",
                                                      "State", "Profile", "ProfileSource", "Action",
                                                      "Events", "FixedCounterBitmap", "Flags", "PMU", "AppliedUSec",
                                                      "LastError", "Name", "UUID", "Labels", "Client", NULL);
}

void bus_vm_applied(struct manager *m, struct vm *vm, bool ok, const char *error) {
        complete_waiters(vm, ok, error);
        if (!vm_said(m, vm))
                return;
        (void) sd_bus_emit_signal(m->bus, BUS_PATH, "org.pmufilterd1.Manager", "FilterApplied", "ssbs",
                                  vm->id, strempty(vm->profile), ok, strempty(error));
        bus_vm_changed(m, vm);
}

void bus_vm_session_lost(struct manager *m, struct vm *vm, const char *why) {
        complete_waiters(vm, false, why);
        bus_vm_changed(m, vm);
}

/* After a reload: profiles that went, came, or may have changed. */
void bus_profiles_changed(struct manager *m, char **old_names) {
        const struct policy *p = m->set ? m->set->policy : NULL;

        if (!m->bus)
                return;
        if (old_names)
                for (char **n = old_names; *n; n++)
                        if (!p || !policy_find_profile(p, *n)) {
                                _cleanup_free_ char *path = bus_profile_path(*n);
                                if (path)
                                        (void) sd_bus_emit_object_removed(m->bus, path);
                        }
        for (size_t i = 0; p && i < p->n_profiles; i++) {
                _cleanup_free_ char *path = bus_profile_path(p->profiles[i].name);

                if (!path)
                        continue;
                if (!strv_contains(old_names, p->profiles[i].name))
                        (void) sd_bus_emit_object_added(m->bus, path);
                else
                        (void) sd_bus_emit_properties_changed(m->bus, path, "org.pmufilterd1.Profile", "Name",
                                                              "Tier", "Action", "Entries", "EntryNames",
                                                              "FixedCounterBitmap", "Flags", "PMU", "Source", "VMs", NULL);
        }
}

static void emit_profile_vms_changed(struct manager *m, const char *name) {
        _cleanup_free_ char *path = NULL;

        if (!m->bus || !m->set || !policy_find_profile(m->set->policy, name))
                return;
        path = bus_profile_path(name);
        if (path)
                (void) sd_bus_emit_properties_changed(m->bus, path, "org.pmufilterd1.Profile", "VMs", NULL);
}

static int on_profiles_changed(sd_event_source *s, void *userdata) {
        struct manager *m = userdata;
        char **names = TAKE_PTR(m->dirty_profiles);

        for (char **n = names; n && *n; n++)
                emit_profile_vms_changed(m, *n);
        strv_free(names);
        return 0;
}

/* A Profile's VMs changed.  Said once per profile at the end of the turn of
 * the loop: a change that moves 10,000 VMs says it once, not 20,000 times,
 * and no VMM waits for its APPLY behind it. */
void bus_profile_vms_changed(struct manager *m, const char *name) {
        if (!m->bus || !name || strv_contains(m->dirty_profiles, name))
                return;
        if (!m->profiles_event) {
                if (sd_event_add_defer(m->event, &m->profiles_event, on_profiles_changed, m) < 0)
                        return emit_profile_vms_changed(m, name);
                (void) sd_event_source_set_description(m->profiles_event, "profile-vms-changed");
                (void) sd_event_source_set_priority(m->profiles_event, SD_EVENT_PRIORITY_IDLE);
        }
        if (strv_extend(&m->dirty_profiles, name) < 0)
                return emit_profile_vms_changed(m, name);
        (void) sd_event_source_set_enabled(m->profiles_event, SD_EVENT_ONESHOT);
}

void bus_reloaded(struct manager *m, bool ok, const char *error) {
        if (!m->bus)
                return;
        (void) sd_bus_emit_signal(m->bus, BUS_PATH, "org.pmufilterd1.Manager", "Reloaded", "bs", ok, strempty(error));
        bus_manager_changed(m);
}

void bus_manager_changed(struct manager *m) {
        if (!m->bus)
                return;
        (void) sd_bus_emit_properties_changed(m->bus, BUS_PATH, "org.pmufilterd1.Manager",
                                              "NVMs", "Lockdown", "LastError", "DefaultProfile",
                                              "ConfigFiles", NULL);
}

int bus_start(struct manager *m) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (m->bus_address) {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, m->bus_address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_negotiate_creds(bus, true, SD_BUS_CREDS_EUID);
                if (r >= 0)
                        r = sd_bus_start(bus);
        } else
                r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the bus %s: %m", m->bus_address ? m->bus_address : "(system)");
        /* Unique names are unique per bus instance only. */
        memset(sender_cache, 0, sizeof(sender_cache));

        /* Objects first, then the name, then the loop. */
        r = sd_bus_add_object_vtable(bus, NULL, BUS_PATH, "org.pmufilterd1.Manager", bus_manager_vtable, m);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(bus, NULL, BUS_VM_PREFIX, "org.pmufilterd1.VM", bus_vm_vtable,
                                               bus_vm_find, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(bus, NULL, BUS_VM_PREFIX, bus_vm_enumerate, m);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(bus, NULL, BUS_PROFILE_PREFIX, "org.pmufilterd1.Profile",
                                               bus_profile_vtable, bus_profile_find, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(bus, NULL, BUS_PROFILE_PREFIX, bus_profile_enumerate, m);
        if (r >= 0)
                r = sd_bus_add_object_manager(bus, NULL, BUS_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to register the D-Bus objects: %m");

        r = sd_bus_request_name(bus, BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to take the bus name " BUS_NAME ": %m");
        /* Before the VMM sessions: a change answered by thousands of VMMs
         * must not keep a ListVMs waiting behind every APPLIED. */
        r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        m->bus = TAKE_PTR(bus);
        return 0;
}

void bus_stop(struct manager *m) {
        m->profiles_event = sd_event_source_disable_unref(m->profiles_event);
        strv_free(m->dirty_profiles);
        m->dirty_profiles = NULL;
        m->bus = sd_bus_flush_close_unref(m->bus);
}
