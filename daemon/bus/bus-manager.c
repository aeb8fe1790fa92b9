/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-manager.c — org.pmufilterd1.Manager at /org/pmufilterd1. */
#include "bus-errors.h"
#include "bus.h"

/* The one VM s names (an id, a claimed NAME or UUID, a machine name or
 * UUID); a name more than one VM claims is refused with the candidates. */
static struct vm *lookup_vm(struct bus *b, const char *s, sd_bus_error *error) {
        struct vm *vms[8];
        size_t n = deliver_find_vms(b->deliver, s, vms, ELEMENTSOF(vms));

        if (n == 1)
                return vms[0];
        if (n == 0)
                (void) bus_error_no_such_vm(error, s);
        else
                (void) bus_error_ambiguous(error, s, vms, n < ELEMENTSOF(vms) ? n : ELEMENTSOF(vms), n);
        return NULL;
}

static int method_list_vms(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct vm_path vp;
        int r;

        vm_path_init(&vp);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssssuo)");
        /* Field by field, with the path made on the stack, its prefix once:
         * the generic sd_bus_message_append() and a malloc'd path per VM
         * were most of this call at 10,000 VMs (docs/benchmarks.md). */
        REGISTRY_FOREACH(vm, b->deliver->registry) {
                uint32_t pid = (uint32_t) vm->pid;
                const char *path;

                if (r < 0)
                        break;
                path = vm_path_of(&vp, vm->id);
                r = path ? sd_bus_message_open_container(reply, 'r', "ssssuo") : -ENOBUFS;
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 's', vm->id);
                if (r >= 0)     /* a claimed NAME has no C0 control, but may have a C1 one */
                        r = bus_append_utf8(reply, vm->name);
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 's', strempty(vm->profile));
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 's', vm_state_to_string(vm->state));
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 'u', &pid);
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 'o', path);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_vm(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        _cleanup_free_ char *path = NULL;
        const char *id;
        struct vm *vm;
        int r;

        r = sd_bus_message_read(msg, "s", &id);
        if (r < 0)
                return r;
        vm = lookup_vm(b, id, error);
        if (!vm)
                return -ENOENT;
        path = bus_vm_path(vm);
        if (!path)
                return -ENOMEM;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int method_list_profiles(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        const struct policy_set *set = b->deliver->decider->set;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sssuo)");
        for (size_t i = 0; r >= 0 && set && i < set->policy->n_profiles; i++) {
                const struct profile *p = &set->policy->profiles[i];
                _cleanup_free_ char *path = bus_profile_path(p->name);

                if (!path)
                        return -ENOMEM;
                r = sd_bus_message_append(reply, "(sssuo)", p->name,
                                          tier_to_string(profile_effective_tier(set->policy, p)),
                                          set->filters[i]->action ? "deny" : "allow",
                                          set->filters[i]->nevents, path);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_profile(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        _cleanup_free_ char *path = NULL;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        if (policy_set_find(b->deliver->decider->set, name) < 0)
                return bus_error_no_such_profile(error, name);
        path = bus_profile_path(name);
        if (!path)
                return -ENOMEM;
        return sd_bus_reply_method_return(msg, "o", path);
}

/* The VM a SetVMProfile* call names, for a profile that must be given. */
static int vm_to_set(struct bus *b, const char *id, const char *profile, struct vm **ret, sd_bus_error *error) {
        if (isempty(profile))
                return bus_error_no_profile_given(error);
        *ret = lookup_vm(b, id, error);
        return *ret ? 0 : -ENOENT;
}

static int method_set_vm_profile(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        const char *id, *profile;
        struct vm *vm = NULL;
        int runtime, r;

        r = sd_bus_message_read(msg, "ssb", &id, &profile, &runtime);
        if (r >= 0)
                r = vm_to_set(b, id, profile, &vm, error);
        if (r < 0)
                return r;
        return change_vm_profile(b, msg, vm, profile, runtime, error);
}

static int method_set_vm_profile_for(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        const char *id, *profile;
        uint64_t usec;
        struct vm *vm = NULL;
        int r;

        r = sd_bus_message_read(msg, "sst", &id, &profile, &usec);
        if (r >= 0)
                r = vm_to_set(b, id, profile, &vm, error);
        if (r < 0)
                return r;
        return change_vm_grant(b, msg, vm, profile, usec, error);
}

static int method_reset_vm_profile(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        const char *id;
        struct vm *vm;
        int runtime, r;

        r = sd_bus_message_read(msg, "sb", &id, &runtime);
        if (r < 0)
                return r;
        vm = lookup_vm(b, id, error);
        if (!vm)
                return -ENOENT;
        return change_vm_profile(b, msg, vm, "", runtime, error);
}

static int method_set_default_profile(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *profile;
        int runtime, r;

        r = sd_bus_message_read(msg, "sb", &profile, &runtime);
        if (r < 0)
                return r;
        return change_default_profile(userdata, msg, profile, runtime, error);
}

static int method_reapply(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        _cleanup_strv_free_ char **ids = NULL;
        _cleanup_free_ struct vm **vms = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_message_read_strv(msg, &ids);
        if (r < 0)
                return r;
        vms = calloc(strv_length(ids) + b->deliver->registry->n_vms + 1, sizeof(*vms));
        if (!vms)
                return -ENOMEM;
        if (strv_length(ids) == 0) {
                REGISTRY_FOREACH(vm, b->deliver->registry)
                        if (deliver_vm_managed(vm))
                                vms[n++] = vm;
        } else
                for (char **i = ids; *i; i++) {
                        vms[n] = lookup_vm(b, *i, error);
                        if (!vms[n++])
                                return -ENOENT;
                }
        return change_reapply(b, msg, vms, n, error);
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return change_reload(userdata, msg, error);
}

static int prop_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        const struct decider *dec = b->deliver->decider;

        if (streq(property, "Version"))
                return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
        if (streq(property, "DefaultProfile"))
                return bus_append_utf8(reply, decider_default_profile(dec, NULL));     /* a state file's: see Explain */
        if (streq(property, "ConfigFiles"))
                return bus_append_strv_utf8(reply, dec->set ? dec->set->policy->files : NULL);
        if (streq(property, "NVMs"))
                return sd_bus_message_append(reply, "u", (uint32_t) b->deliver->registry->n_vms);
        if (streq(property, "Lockdown"))
                return sd_bus_message_append(reply, "b", dec->lockdown);
        if (streq(property, "Warnings"))
                return bus_append_strv_utf8(reply, b->deliver->warnings);
        if (streq(property, "ForeignVMs"))
                return sd_bus_message_append(reply, "u", (uint32_t) b->deliver->foreign_vms);
        if (streq(property, "ReloadWarnings"))
                return bus_append_strv_utf8(reply, dec->reload_warnings);
        if (streq(property, "LastError"))
                return bus_append_utf8(reply, dec->last_error);
        if (streq(property, "HostPMU"))
                return sd_bus_message_append(reply, "s", b->deliver->pmu->name);
        if (streq(property, "FilterSupported"))
                return sd_bus_message_append(reply, "b", b->deliver->kvm->filter);
        if (streq(property, "MaskedEventsSupported"))
                return sd_bus_message_append(reply, "b", b->deliver->kvm->masked);
        if (streq(property, "HostPMUEnabled"))
                return sd_bus_message_append(reply, "b", b->deliver->kvm->enable_pmu);
        if (streq(property, "Kernel")) {
                char summary[256];

                return sd_bus_message_append(reply, "s", kvm_support_summary(b->deliver->kvm, summary, sizeof summary));
        }
        return -EINVAL;
}

const sd_bus_vtable bus_manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DefaultProfile", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ConfigFiles", "as", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NVMs", "u", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Lockdown", "b", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ReloadWarnings", "as", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Rules", "a(uss)", bus_prop_rules, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("Warnings", "as", prop_get, 0, 0),
        SD_BUS_PROPERTY("ForeignVMs", "u", prop_get, 0, 0),
        SD_BUS_PROPERTY("HostPMU", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("FilterSupported", "b", prop_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MaskedEventsSupported", "b", prop_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HostPMUEnabled", "b", prop_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Kernel", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("ListVMs", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssssuo)", vms),
                                method_list_vms, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetVM", SD_BUS_ARGS("s", id_or_name), SD_BUS_RESULT("o", path),
                                method_get_vm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListProfiles", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sssuo)", profiles),
                                method_list_profiles, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetProfile", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", path),
                                method_get_profile, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetVMProfile", SD_BUS_ARGS("s", vm, "s", profile, "b", runtime), SD_BUS_NO_RESULT,
                                method_set_vm_profile, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetVMProfileFor", SD_BUS_ARGS("s", vm, "s", profile, "t", duration_usec),
                                SD_BUS_NO_RESULT, method_set_vm_profile_for, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ResetVMProfile", SD_BUS_ARGS("s", vm, "b", runtime), SD_BUS_NO_RESULT,
                                method_reset_vm_profile, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetDefaultProfile", SD_BUS_ARGS("s", profile, "b", runtime), SD_BUS_NO_RESULT,
                                method_set_default_profile, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reapply", SD_BUS_ARGS("as", vms), SD_BUS_NO_RESULT,
                                method_reapply, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT,
                                method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PreviewReload", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssssb)", vms),
                                bus_method_preview_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("VMNew", SD_BUS_ARGS("s", id, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("VMRemoved", SD_BUS_ARGS("s", id, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("VMUnmanaged", SD_BUS_ARGS("s", id, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("FilterApplied", SD_BUS_ARGS("s", vm, "s", profile, "b", ok, "s", error), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Reloaded", SD_BUS_ARGS("b", ok, "s", error), 0),
        SD_BUS_VTABLE_END
};
