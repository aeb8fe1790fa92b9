/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-vm.c — org.pmufilterd1.VM objects at /org/pmufilterd1/vm/<escaped id>. */
#include "bus.h"

int bus_vm_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                void **ret_found, sd_bus_error *error) {
        struct bus *b = userdata;
        _cleanup_free_ char *id = NULL;
        struct vm *vm;

        if (sd_bus_path_decode(path, BUS_VM_PREFIX, &id) <= 0)
                return 0;
        vm = registry_get_by_id(b->deliver->registry, id);
        if (!vm)
                return 0;
        *ret_found = vm;
        return 1;
}

int bus_vm_enumerate(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes,
                     sd_bus_error *error) {
        struct bus *b = userdata;
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;

        /* Sized once: strv_push() looks for the end each time, O(n²)
         * (docs/benchmarks.md). */
        l = calloc(b->deliver->registry->n_vms + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        REGISTRY_FOREACH(vm, b->deliver->registry) {
                l[n] = bus_vm_path(vm);
                if (!l[n])
                        return -ENOMEM;
                n++;
        }
        *ret_nodes = TAKE_PTR(l);
        return 0;
}

static int prop_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;
        const char *v = NULL;

        if (streq(property, "Id"))
                v = vm->id;
        else if (streq(property, "Name"))
                v = vm->name;
        else if (streq(property, "UUID"))
                v = vm->uuid;
        else if (streq(property, "Client"))
                v = vm->client;
        else if (streq(property, "State"))
                v = vm_state_to_string(vm->state);
        else if (streq(property, "Profile"))
                v = vm->profile;
        else if (streq(property, "ProfileSource"))
                v = vm->profile_source;
        else if (streq(property, "ProfileSourceLocation"))
                v = vm->profile_source_loc;
        else if (streq(property, "Action"))
                v = vm->filter ? (vm->filter->action ? "deny" : "allow") : NULL;
        else if (streq(property, "LastError"))
                v = vm->last_error;
        /* Checked where they come in (ATTACH, records, vm_set_last_error());
         * the location is a policy file's path: any bytes. */
        return bus_append_utf8(reply, v);
}

static int prop_in_force(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;

        return sd_bus_message_append(reply, "b", vm->in_force);
}

static int prop_labels(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{ss}");
        if (r < 0)
                return r;
        if (vm->labels)
                for (char **l = vm->labels; *l; l++) {
                        const char *eq = strchr(*l, '='), *value;
                        _cleanup_free_ char *k = strndup(*l, eq ? (size_t) (eq - *l) : strlen(*l)), *buf = NULL;

                        /* A claimed value has no C0 control, but may have a C1 one. */
                        value = bus_utf8(eq ? eq + 1 : "", &buf);
                        if (!k || !value)
                                return -ENOMEM;
                        r = sd_bus_message_append(reply, "{ss}", k, value);
                        if (r < 0)
                                return r;
                }
        return sd_bus_message_close_container(reply);
}

static int prop_events(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;

        return sd_bus_message_append_array(reply, 't', vm->filter ? vm->filter->events : NULL,
                                           vm->filter ? vm->filter->nevents * sizeof(uint64_t) : 0);
}

static int prop_fixed(sd_bus *bus, const char *path, const char *interface, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;

        return sd_bus_message_append(reply, "u", vm->filter ? vm->filter->fixed_counter_bitmap : 0);
}

static int prop_flags(sd_bus *bus, const char *path, const char *interface, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;

        if (streq(property, "PMU"))
                return sd_bus_message_append(reply, "s", !vm->filter ? "" : vm->filter->pmu_off ? "off" : "on");
        return sd_bus_message_append(reply, "u", vm->filter ? vm->filter->flags : 0);
}

static int append_pair(sd_bus_message *reply, const char *key, const char *value) {
        _cleanup_free_ char *buf = NULL;

        if (isempty(value))
                return 0;
        value = bus_utf8(value, &buf);
        if (!value)
                return -ENOMEM;
        return sd_bus_message_append(reply, "{ss}", key, value);
}

/* What the daemon read of the VM's creator from the kernel and systemd: a
 * rule on these keys rests on facts no VMM can forge (pmufilterd(8),
 * SECURITY).  Read whole when asked: an explicit property, not in GetAll. */
static int prop_verified(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;
        const struct proc_facts *f = &vm->facts;
        char uid[16], gid[16];
        int r;

        if (vm->have_facts)
                (void) proc_facts_load(&vm->facts, PROC_FACT_ALL);
        snprintf(uid, sizeof(uid), "%u", (unsigned) f->uid);
        snprintf(gid, sizeof(gid), "%u", (unsigned) f->gid);
        r = sd_bus_message_open_container(reply, 'a', "{ss}");
        if (r < 0)
                return r;
        if (vm->have_facts) {
                bool ids = f->loaded & PROC_FACT_IDS;
                const struct {
                        const char *key, *value;
                } facts[] = {
                        { "uid", ids ? uid : NULL }, { "gid", ids ? gid : NULL },
                        { "user", f->user }, { "group", f->group },
                        { "exe", f->exe }, { "comm", f->comm },
                        { "cgroup", f->cgroup }, { "unit", f->unit }, { "slice", f->slice },
                        { "machine", f->machine }, { "machine_uuid", f->machine_uuid },
                };

                for (size_t i = 0; i < ELEMENTSOF(facts); i++) {
                        r = append_pair(reply, facts[i].key, facts[i].value);
                        if (r < 0)
                                return r;
                }
        }
        return sd_bus_message_close_container(reply);
}

/* What the VMM said of its VM in ATTACH: anything it likes. */
static int prop_claimed(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{ss}");
        if (r < 0)
                return r;
        r = append_pair(reply, "name", vm->name);
        if (r >= 0)
                r = append_pair(reply, "uuid", vm->uuid);
        if (r >= 0)
                r = append_pair(reply, "client", vm->client);
        for (char **l = vm->labels; r >= 0 && l && *l; l++) {
                const char *eq = strchr(*l, '=');
                _cleanup_free_ char *k = NULL;

                if (asprintf(&k, "label.%.*s", eq ? (int) (eq - *l) : (int) strlen(*l), *l) < 0)
                        return -ENOMEM;
                r = append_pair(reply, k, eq ? eq + 1 : "");
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* What a change made for this VM over D-Bus is bound to, in words. */
static int prop_bound_to(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *key = NULL;
        struct vm_identity id;
        char buf[512];

        deliver_vm_identity(userdata, &id);
        if (overrides_key(&id, &key) < 0)
                return sd_bus_message_append(reply, "s", "");
        /* Cut at 512 bytes, maybe in the middle of a claimed name's character. */
        return bus_append_utf8(reply, overrides_describe(key, buf, sizeof(buf)));
}

static int method_set_profile(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;
        const char *profile;
        int runtime, r;

        r = sd_bus_message_read(msg, "sb", &profile, &runtime);
        if (r < 0)
                return r;
        return change_vm_profile(bus_current(msg), msg, vm, profile, runtime, error);
}

static int method_reapply(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;

        return change_reapply(bus_current(msg), msg, &vm, 1, error);
}

const sd_bus_vtable bus_vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UUID", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PID", "u", NULL, offsetof(struct vm, pid), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Labels", "a{ss}", prop_labels, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Client", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Profile", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ProfileSource", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ProfileSourceLocation", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Action", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Events", "at", prop_events, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FixedCounterBitmap", "u", prop_fixed, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Flags", "u", prop_flags, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PMU", "s", prop_flags, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("AppliedUSec", "t", NULL, offsetof(struct vm, applied_usec), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("InForce", "b", prop_in_force, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ProfileExpiresUSec", "t", NULL, offsetof(struct vm, override_expires_usec),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("VerifiedFacts", "a{ss}", prop_verified, 0, SD_BUS_VTABLE_PROPERTY_EXPLICIT),
        SD_BUS_PROPERTY("ClaimedFacts", "a{ss}", prop_claimed, 0, SD_BUS_VTABLE_PROPERTY_EXPLICIT),
        SD_BUS_PROPERTY("BoundTo", "s", prop_bound_to, 0, SD_BUS_VTABLE_PROPERTY_EXPLICIT),
        SD_BUS_METHOD_WITH_ARGS("SetProfile", SD_BUS_ARGS("s", profile, "b", runtime), SD_BUS_NO_RESULT,
                                method_set_profile, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reapply", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT,
                                method_reapply, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Explain", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(usbs)", rules, "s", override, "s", override_scope, "s", bound_to,
                                              "s", default_profile, "s", profile, "s", source),
                                bus_method_explain, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};
