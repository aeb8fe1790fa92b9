/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-profile.c — org.pmufilterd1.Profile objects at
 * /org/pmufilterd1/profile/<escaped name>: each profile of the policy in
 * force, with its compiled filter.  The object's userdata is the bus
 * context; the profile is named by the path (profiles come and go with
 * reloads).
 */
#include "bus-errors.h"
#include "bus.h"

static int profile_of_path(struct bus *b, const char *path, size_t *ret_index) {
        _cleanup_free_ char *name = NULL;
        int i;

        if (sd_bus_path_decode(path, BUS_PROFILE_PREFIX, &name) <= 0)
                return 0;
        i = policy_set_find(b->deliver->decider->set, name);
        if (i < 0)
                return 0;
        *ret_index = (size_t) i;
        return 1;
}

int bus_profile_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                     void **ret_found, sd_bus_error *error) {
        size_t i;

        if (profile_of_path(userdata, path, &i) <= 0)
                return 0;
        *ret_found = userdata;
        return 1;
}

int bus_profile_enumerate(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes,
                          sd_bus_error *error) {
        struct bus *b = userdata;
        const struct policy_set *set = b->deliver->decider->set;
        _cleanup_strv_free_ char **l = NULL;

        for (size_t i = 0; set && i < set->policy->n_profiles; i++) {
                char *p = bus_profile_path(set->policy->profiles[i].name);

                if (!p || strv_push(&l, p) < 0) {
                        free(p);
                        return -ENOMEM;
                }
        }
        *ret_nodes = TAKE_PTR(l);
        return 0;
}

static int prop_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        const struct policy_set *set = b->deliver->decider->set;
        const struct profile *p;
        const struct compiled_filter *f;
        size_t i;
        int r;

        if (profile_of_path(b, path, &i) <= 0)
                return bus_error_profile_gone(error);
        p = &set->policy->profiles[i];
        f = set->filters[i];

        if (streq(property, "Name"))
                return sd_bus_message_append(reply, "s", p->name);
        if (streq(property, "Tier"))
                return sd_bus_message_append(reply, "s", tier_to_string(profile_effective_tier(set->policy, p)));
        if (streq(property, "Action"))
                return sd_bus_message_append(reply, "s", f->action ? "deny" : "allow");
        if (streq(property, "Entries"))
                return sd_bus_message_append_array(reply, 't', f->events, f->nevents * sizeof(uint64_t));
        if (streq(property, "EntryNames"))
                return sd_bus_message_append_strv(reply, f->entry_names);
        if (streq(property, "FixedCounterBitmap"))
                return sd_bus_message_append(reply, "u", f->fixed_counter_bitmap);
        if (streq(property, "Flags"))
                return sd_bus_message_append(reply, "u", f->flags);
        if (streq(property, "PMU"))
                return sd_bus_message_append(reply, "s", f->pmu_off ? "off" : "on");
        if (streq(property, "Source"))
                return bus_append_utf8(reply, p->source_file);      /* a conf.d file's name: any bytes */
        if (streq(property, "VMs")) {
                r = sd_bus_message_open_container(reply, 'a', "o");
                if (r < 0)
                        return r;
                REGISTRY_FOREACH(vm, b->deliver->registry) {
                        _cleanup_free_ char *vp = NULL;

                        if (!streq_ptr(vm->profile, p->name))
                                continue;
                        vp = bus_vm_path(vm);
                        if (!vp)
                                return -ENOMEM;
                        r = sd_bus_message_append(reply, "o", vp);
                        if (r < 0)
                                return r;
                }
                return sd_bus_message_close_container(reply);
        }
        return -EINVAL;
}

const sd_bus_vtable bus_profile_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("Tier", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("Action", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("Entries", "at", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("EntryNames", "as", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("FixedCounterBitmap", "u", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("Flags", "u", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("PMU", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("Source", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("VMs", "ao", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_VTABLE_END
};
