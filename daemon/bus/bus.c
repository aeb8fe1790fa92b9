/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus.c — connecting to the bus, and what the bus is told: the registry's
 * events become signals and PropertiesChanged.  The vtables live in
 * bus-manager.c, bus-vm.c and bus-profile.c.
 */
#include <assert.h>

#include "bus.h"
#include "log.h"

/* Armed, it fires BUS_COALESCE_USEC after the first change since it last
 * fired: whatever changes meanwhile is said once. */
static void coalesce(sd_event_source *s) {
        int enabled = SD_EVENT_OFF;

        if (sd_event_source_get_enabled(s, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        (void) sd_event_source_set_time_relative(s, BUS_COALESCE_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_nvms(sd_event_source *s, uint64_t usec, void *userdata) {
        struct bus *b = userdata;
        uint32_t n = (uint32_t) b->deliver->registry->n_vms;

        /* A VM that came and went meanwhile changed nothing to say. */
        if (n != b->nvms_said) {
                b->nvms_said = n;
                (void) sd_bus_emit_properties_changed(b->bus, BUS_PATH, "org.pmufilterd1.Manager", "NVMs", NULL);
        }
        return 0;
}

/* What a reload or a change of the default profile may change; NVMs has its
 * own timer. */
static void settings_changed(struct bus *b) {
        (void) sd_bus_emit_properties_changed(b->bus, BUS_PATH, "org.pmufilterd1.Manager", "Lockdown",
                                              "LastError", "ReloadWarnings", "DefaultProfile", "ConfigFiles",
                                              NULL);
}

static void emit_vm_signal_raw(struct bus *b, const char *member, struct vm *vm, const char *path) {
        (void) sd_bus_emit_signal(b->bus, BUS_PATH, "org.pmufilterd1.Manager", member, "so", vm->id, path);
}

/* InterfacesAdded carries every property: the claims are said if it has
 * had them (an ATTACH, a record, an adoption).  Only a new session brings
 * new claims, and a session ends with REGISTRY_VM_SESSION_LOST. */
static void announce(struct bus *b, struct vm *vm) {
        char path[VM_PATH_MAX];

        vm->unannounced = false;
        if (vm_object_path(BUS_VM_PREFIX, vm->id, path, sizeof(path)) < 0)
                return;
        emit_vm_signal_raw(b, "VMNew", vm, path);
        (void) sd_bus_emit_object_added(b->bus, path);
        vm->claims_said = vm->session != NULL;
}

/* Whatever is said about a VM comes after VMNew and InterfacesAdded.  True
 * if they were said now: they carry every property as it is. */
static bool vm_said(struct bus *b, struct vm *vm) {
        if (!vm->unannounced)
                return false;
        announce(b, vm);
        return true;
}

/* After an answer (APPLIED, a lost session, unmanaged) or a change that
 * reached no VMM: the state, the decision and the answer, and the claims
 * only if they have not been said for this session. */
static void vm_changed(struct bus *b, struct vm *vm) {
        char path[VM_PATH_MAX];

        if (vm_said(b, vm) || vm_object_path(BUS_VM_PREFIX, vm->id, path, sizeof(path)) < 0)
                return;
        if (vm->claims_said)
                (void) sd_bus_emit_properties_changed(b->bus, path, "org.pmufilterd1.VM",
                                                      "State", "Profile", "ProfileSource", "ProfileSourceLocation",
                                                      "Action", "Events", "FixedCounterBitmap", "Flags", "PMU",
                                                      "AppliedUSec", "InForce", "LastError", "ProfileExpiresUSec",
                                                      NULL);
        else
                (void) sd_bus_emit_properties_changed(b->bus, path, "org.pmufilterd1.VM",
                                                      "State", "Profile", "ProfileSource", "ProfileSourceLocation",
                                                      "Action", "Events", "FixedCounterBitmap", "Flags", "PMU",
                                                      "AppliedUSec", "InForce", "LastError", "ProfileExpiresUSec",
                                                      "Name", "UUID", "Labels", "Client", NULL);
        vm->claims_said = vm->session != NULL;
}

static void announce_run(struct vm *vm, void *userdata) {
        vm_said(userdata, vm);
}

/* A new VM is said on the bus BUS_COALESCE_USEC after it was detected, or
 * with the first thing said about it (its VMM's answer, mostly), whichever
 * comes first: a VMM's ATTACH, right behind its VM's creation, then finds
 * the daemon (and dbus-daemon) free, and the announcement carries the
 * answer's properties, with no PropertiesChanged of its own. */
static void vm_new(struct bus *b, struct vm *vm) {
        coalesce(b->nvms_event);
        vm->unannounced = true;
        if (vm_queue_push(&b->announcements, vm) < 0)
                announce(b, vm);
}

/* Said already with its first answer: the queue has nothing left for it. */
static bool announce_wanted(struct vm *vm, void *userdata) {
        return vm->unannounced;
}

static void vm_removed(struct bus *b, struct vm *vm) {
        char path[VM_PATH_MAX];

        vm_said(b, vm);
        if (vm_object_path(BUS_VM_PREFIX, vm->id, path, sizeof(path)) < 0)
                return;
        emit_vm_signal_raw(b, "VMRemoved", vm, path);
        (void) sd_bus_emit_object_removed(b->bus, path);
        /* NVMs changes once the registry has dropped it: REGISTRY_COUNT_CHANGED. */
}

/* After a reload: profiles that went, came, or may have changed. */
static void profiles_changed(struct bus *b, char *const *old_names) {
        const struct policy_set *set = b->deliver->decider->set;
        const struct policy *p = set ? set->policy : NULL;

        for (char *const *n = old_names; n && *n; n++)
                if (!p || !policy_find_profile(p, *n)) {
                        _cleanup_free_ char *path = bus_profile_path(*n);

                        if (path)
                                (void) sd_bus_emit_object_removed(b->bus, path);
                }
        for (size_t i = 0; p && i < p->n_profiles; i++) {
                _cleanup_free_ char *path = bus_profile_path(p->profiles[i].name);

                if (!path)
                        continue;
                if (!strv_contains(old_names, p->profiles[i].name))
                        (void) sd_bus_emit_object_added(b->bus, path);
                else
                        (void) sd_bus_emit_properties_changed(b->bus, path, "org.pmufilterd1.Profile", "Name",
                                                              "Tier", "Action", "Entries", "EntryNames",
                                                              "FixedCounterBitmap", "Flags", "PMU", "Source", "VMs", NULL);
        }
}

static void emit_profile_vms_changed(struct bus *b, const char *name) {
        _cleanup_free_ char *path = NULL;

        if (policy_set_find(b->deliver->decider->set, name) < 0)
                return;
        path = bus_profile_path(name);
        if (path)
                (void) sd_bus_emit_properties_changed(b->bus, path, "org.pmufilterd1.Profile", "VMs", NULL);
}

static int on_profiles_changed(sd_event_source *s, uint64_t usec, void *userdata) {
        struct bus *b = userdata;
        _cleanup_strv_free_ char **names = TAKE_PTR(b->dirty_profiles);

        for (char **n = names; n && *n; n++)
                emit_profile_vms_changed(b, *n);
        return 0;
}

/* A Profile's VMs changed.  Said once per profile at most every
 * BUS_COALESCE_USEC: a change that moves 10,000 VMs says it once, not
 * 20,000 times, VMs that come and go say it ten times a second at most, and
 * no VMM waits for its APPLY behind it. */
static void profile_vms_changed(struct bus *b, const char *name) {
        if (!name || strv_contains(b->dirty_profiles, name))
                return;
        if (strv_extend(&b->dirty_profiles, name) < 0)
                return emit_profile_vms_changed(b, name);
        coalesce(b->profiles_event);
}

static void on_registry(struct registry *r, enum registry_event ev, struct vm *vm,
                        const struct registry_event_data *data, void *userdata) {
        struct bus *b = userdata;

        switch (ev) {
        case REGISTRY_VM_NEW:
                vm_new(b, vm);
                break;
        case REGISTRY_VM_CHANGED:
        case REGISTRY_VM_SESSION_LOST:
                vm_changed(b, vm);
                break;
        case REGISTRY_VM_APPLIED: {
                bool announced = vm_said(b, vm);
                _cleanup_free_ char *buf = NULL;
                const char *error = bus_utf8(strempty(data->error), &buf);

                if (error)
                        (void) sd_bus_emit_signal(b->bus, BUS_PATH, "org.pmufilterd1.Manager", "FilterApplied",
                                                  "ssbs", vm->id, strempty(vm->profile), data->ok, error);
                if (!announced)
                        vm_changed(b, vm);
                break;
        }
        case REGISTRY_VM_UNMANAGED: {
                bool announced = vm_said(b, vm);
                char path[VM_PATH_MAX];

                if (vm_object_path(BUS_VM_PREFIX, vm->id, path, sizeof(path)) >= 0)
                        emit_vm_signal_raw(b, "VMUnmanaged", vm, path);
                if (!announced)
                        vm_changed(b, vm);
                break;
        }
        case REGISTRY_VM_PROFILE_MOVED:
                profile_vms_changed(b, data->old_profile);
                profile_vms_changed(b, vm->profile);
                break;
        case REGISTRY_VM_REMOVED:
                vm_removed(b, vm);
                break;
        case REGISTRY_COUNT_CHANGED:
                coalesce(b->nvms_event);
                break;
        case REGISTRY_SETTINGS_CHANGED:
                settings_changed(b);
                break;
        case REGISTRY_POLICY_SWAPPED:
                profiles_changed(b, data->old_names);
                break;
        case REGISTRY_POLICY_RELOADED: {
                _cleanup_free_ char *buf = NULL;
                const char *error = bus_utf8(strempty(data->error), &buf);      /* may quote a file's bytes */

                if (error)
                        (void) sd_bus_emit_signal(b->bus, BUS_PATH, "org.pmufilterd1.Manager", "Reloaded", "bs",
                                                  data->ok, error);
                settings_changed(b);
                break;
        }
        case REGISTRY_VM_RECORDED:
        case _REGISTRY_EVENT_MAX:
                break;
        }
}

static int bus_connect(const char *address, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (!address)
                return sd_bus_open_system(ret);
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r < 0)
                return r;
        r = sd_bus_set_bus_client(bus, true);
        if (r < 0)
                return r;
        r = sd_bus_negotiate_creds(bus, true, SD_BUS_CREDS_EUID);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

static int bus_add_objects(struct bus *b) {
        int r;

        r = sd_bus_add_object_vtable(b->bus, NULL, BUS_PATH, "org.pmufilterd1.Manager", bus_manager_vtable, b);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(b->bus, NULL, BUS_VM_PREFIX, "org.pmufilterd1.VM", bus_vm_vtable,
                                       bus_vm_find, b);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(b->bus, NULL, BUS_VM_PREFIX, bus_vm_enumerate, b);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(b->bus, NULL, BUS_PROFILE_PREFIX, "org.pmufilterd1.Profile",
                                       bus_profile_vtable, bus_profile_find, b);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(b->bus, NULL, BUS_PROFILE_PREFIX, bus_profile_enumerate, b);
        if (r < 0)
                return r;
        return sd_bus_add_object_manager(b->bus, NULL, BUS_PATH);
}

int bus_start(struct bus *b, struct deliver *d, const char *address) {
        sd_event *e = d->event;
        int r;

        assert(b);
        assert(d);
        b->deliver = d;
        b->announcements = (struct vm_queue) {
                .description = "vm-announcements",
                .run = announce_run,
                .still_wanted = announce_wanted,
                .userdata = b,
                .registry = d->registry,
                .event = e,
                .max_lag_usec = BUS_COALESCE_USEC,
                .only_late = true,
        };
        b->nvms_said = (uint32_t) d->registry->n_vms;
        r = sd_event_add_time(e, &b->profiles_event, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_profiles_changed, b);
        if (r >= 0)
                r = sd_event_add_time(e, &b->nvms_event, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_nvms, b);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the bus: %m");
        (void) sd_event_source_set_description(b->profiles_event, "profile-vms-changed");
        (void) sd_event_source_set_priority(b->profiles_event, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_enabled(b->profiles_event, SD_EVENT_OFF);
        (void) sd_event_source_set_description(b->nvms_event, "nvms-changed");
        (void) sd_event_source_set_priority(b->nvms_event, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_enabled(b->nvms_event, SD_EVENT_OFF);

        r = bus_connect(address, &b->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the bus %s: %m", address ? address : "(system)");
        /* Objects first, then the name, then the loop. */
        r = bus_add_objects(b);
        if (r < 0)
                return log_error_errno(r, "Failed to register the D-Bus objects: %m");
        r = sd_bus_request_name(b->bus, BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to take the bus name " BUS_NAME ": %m");
        /* Before the VMM sessions: a change answered by thousands of VMMs
         * must not keep a ListVMs waiting behind every APPLIED. */
        r = sd_bus_attach_event(b->bus, e, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        r = registry_subscribe(d->registry, on_registry, b);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the bus: %m");
        return 0;
}

void bus_stop(struct bus *b) {
        vm_queue_done(&b->announcements);
        b->profiles_event = sd_event_source_disable_unref(b->profiles_event);
        b->nvms_event = sd_event_source_disable_unref(b->nvms_event);
        strv_free(b->dirty_profiles);
        b->dirty_profiles = NULL;
        b->bus = sd_bus_flush_close_unref(b->bus);
}
