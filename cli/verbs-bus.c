/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * verbs-bus.c — the verbs that talk to pmufilterd over D-Bus (DESIGN §8):
 * status, list, show, profile list|show|set|reset, reload, reapply.
 * (monitor is in verbs-monitor.c.)  Reading uses the Manager's methods and
 * one GetAll per object; changes use the Manager's methods with a long
 * timeout, because the daemon replies only once the VMMs have applied.
 *
 * `status` is also useful without the daemon: it then prints what this
 * host can tell by itself — its PMU and KVM's support — and exits 1.
 */
#include <inttypes.h>
#include <time.h>

#include "bus-util.h"
#include "compile.h"
#include "kvm-compat.h"
#include "kvm.h"
#include "output.h"
#include "pmu.h"
#include "verbs.h"

#define LABEL "%-16s"

struct vm_row {
        char *id, *name, *profile, *state, *path;
        uint32_t pid;
};

static void vm_rows_free(struct vm_row *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(v[i].id);
                free(v[i].name);
                free(v[i].profile);
                free(v[i].state);
                free(v[i].path);
        }
        free(v);
}

static int vm_row_compare(const void *a, const void *b) {
        return strverscmp(((const struct vm_row *) a)->id, ((const struct vm_row *) b)->id);
}

/* ListVMs, sorted by id (the daemon's order is its hash table's). */
static int list_vms(sd_bus *bus, sd_bus_error *e, struct vm_row **ret, size_t *ret_n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct vm_row *v = NULL;
        const char *id, *name, *profile, *state, *path;
        uint32_t pid;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                               "ListVMs", e, &reply, NULL);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssssuo)");
        while (r >= 0 &&
               (r = sd_bus_message_read(reply, "(ssssuo)", &id, &name, &profile, &state, &pid, &path)) > 0) {
                struct vm_row *w = reallocarray(v, n + 1, sizeof(*v));

                if (!w) {
                        r = -ENOMEM;
                        break;
                }
                v = w;
                v[n] = (struct vm_row) {
                        .id = strdup(id), .name = strdup(name), .profile = strdup(profile),
                        .state = strdup(state), .path = strdup(path), .pid = pid,
                };
                if (!v[n].id || !v[n].name || !v[n].profile || !v[n].state || !v[n++].path)
                        r = -ENOMEM;
        }
        if (r < 0) {
                vm_rows_free(v, n);
                return r;
        }
        if (n > 0)
                qsort(v, n, sizeof(*v), vm_row_compare);
        *ret = v;
        *ret_n = n;
        return 0;
}

/* ---- status ------------------------------------------------------------- */

static const char *const vm_states[] = {
        "detected", "attached", "filtered", "adopted", "failed", "unmanaged", "detached",
};

static void count_states(const struct vm_row *v, size_t n, unsigned counts[ELEMENTSOF(vm_states) + 1]) {
        for (size_t i = 0; i < n; i++) {
                size_t s = 0;

                while (s < ELEMENTSOF(vm_states) && !streq(v[i].state, vm_states[s]))
                        s++;
                counts[s]++;            /* the last slot: a state this pmufilterctl does not know */
        }
}

static void print_filter_support(bool filter, bool masked, bool enable_pmu) {
        printf(LABEL "%s, masked events %s\n", "Event filter:",
               filter ? "supported" : "NOT SUPPORTED by this kernel (KVM_CAP_PMU_EVENT_FILTER)",
               masked ? "supported" : "not supported");
        printf(LABEL "%s\n", "Host vPMU:", enable_pmu ? "on (kvm.enable_pmu=Y)" :
               "off (kvm.enable_pmu=N): guests get no PMU, whatever their filter");
}

static int status_print_daemon(const struct props *p, const struct vm_row *v, size_t n,
                               const char *where, const struct ctl_options *o) {
        unsigned counts[ELEMENTSOF(vm_states) + 1] = {};
        const char *pmu_name = props_string(p, "HostPMU");
        bool lockdown = props_bool(p, "Lockdown");
        struct host_pmu pmu;

        count_states(v, n, counts);

        if (o->json) {
                bool first = true;

                printf("{");
                json_member(stdout, &first, "running");
                printf("true");
                props_print_json_members(p, stdout, &first);
                json_member(stdout, &first, "vms_by_state");
                printf("{");
                for (size_t s = 0, k = 0; s < ELEMENTSOF(counts); s++)
                        if (counts[s] > 0)
                                printf("%s\"%s\":%u", k++ > 0 ? "," : "",
                                       s < ELEMENTSOF(vm_states) ? vm_states[s] : "other", counts[s]);
                printf("}}\n");
                return 0;
        }

        printf(LABEL "running%s, version %s, on %s\n", "pmufilterd:", lockdown ? " IN LOCKDOWN" : "",
               props_string(p, "Version"), where);
        if (lockdown)
                printf(LABEL "YES: the policy failed to load; every VM gets an empty allowlist until a reload succeeds\n",
                       "Lockdown:");
        if (host_pmu_from_name(pmu_name, &pmu) >= 0 && !streq(pmu.description, pmu_name))
                printf(LABEL "%s (%s)\n", "Host PMU:", pmu_name, pmu.description);
        else
                printf(LABEL "%s\n", "Host PMU:", pmu_name);
        print_filter_support(props_bool(p, "FilterSupported"), props_bool(p, "MaskedEventsSupported"),
                             props_bool(p, "HostPMUEnabled"));
        printf(LABEL "%s\n", "Default:", strna(empty_to_null(props_string(p, "DefaultProfile"))));

        printf(LABEL "%" PRIu64, "VMs:", props_number(p, "NVMs"));
        for (size_t s = 0, k = 0; s < ELEMENTSOF(counts); s++)
                if (counts[s] > 0)
                        printf("%s%u %s", k++ == 0 ? " (" : ", ", counts[s],
                               s < ELEMENTSOF(vm_states) ? vm_states[s] : "other");
        printf("%s\n", n > 0 ? ")" : "");

        if (!lockdown)
                printf(LABEL "no\n", "Lockdown:");
        printf(LABEL "%s\n", "Last error:", strna(empty_to_null(props_string(p, "LastError"))));
        printf(LABEL, "Config files:");
        for (char **f = props_strv(p, "ConfigFiles"); f && *f; f++)
                printf("%s%s\n", f == props_strv(p, "ConfigFiles") ? "" : "                ", *f);
        if (strv_length(props_strv(p, "ConfigFiles")) == 0)
                printf("-\n");
        return 0;
}

/* What this host tells by itself when the daemon cannot be asked. */
static int status_print_local(const char *reason, const struct ctl_options *o) {
        struct host_pmu pmu;
        struct kvm_support k;
        char summary[256];
        bool local = !o->host;  /* facts of this host say nothing about another */

        if (local) {
                (void) host_pmu_detect(&pmu);
                (void) kvm_support_probe(&k);
                kvm_support_summary(&k, summary, sizeof summary);
        }

        if (o->json) {
                bool first = true;

                printf("{");
                json_member(stdout, &first, "running");
                printf("false");
                json_member(stdout, &first, "reason");
                json_print_string(stdout, reason);
                if (local) {
                        json_member(stdout, &first, "host_pmu");
                        json_print_string(stdout, pmu.name);
                        json_member(stdout, &first, "host_pmu_description");
                        json_print_string(stdout, pmu.description);
                        json_member(stdout, &first, "filter_supported");
                        printf("%s", k.filter ? "true" : "false");
                        json_member(stdout, &first, "masked_events_supported");
                        printf("%s", k.masked ? "true" : "false");
                        json_member(stdout, &first, "host_pmu_enabled");
                        printf("%s", k.enable_pmu ? "true" : "false");
                        json_member(stdout, &first, "max_events");
                        printf("%u", k.filter ? k.max_events : 0);
                        json_member(stdout, &first, "kernel");
                        json_print_string(stdout, summary);
                }
                printf("}\n");
        } else {
                printf(LABEL "not running (%s)\n", "pmufilterd:", reason);
                if (local) {
                        printf(LABEL "%s (%s)\n", "Host PMU:", pmu.name, pmu.description);
                        print_filter_support(k.filter, k.masked, k.enable_pmu);
                        printf(LABEL "%s\n", "Kernel:", summary);
                }
        }
        return -ESRCH;
}

int verb_status(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(props_clear) struct props p = {};
        struct vm_row *v = NULL;
        char where[256], reason[512];
        size_t n = 0;
        int r;

        bus_where(o, where, sizeof where);
        r = bus_connect(o, &bus);
        if (r < 0 && o->host)
                return log_error_errno(r, "Failed to connect to %s: %m", where);
        if (r < 0) {
                snprintf(reason, sizeof reason, "cannot connect to %s: %s", where, strerror(-r));
                return status_print_local(reason, o);
        }

        r = bus_get_all(bus, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE, &e, &p);
        if (r < 0 && bus_error_daemon_absent(&e)) {
                snprintf(reason, sizeof reason, "nobody owns %s on %s", PMUFILTERD_BUS_NAME, where);
                return status_print_local(reason, o);
        }
        if (r < 0)
                return bus_log_error(r, &e, "Failed to read the daemon's properties on %s", where);
        r = list_vms(bus, &e, &v, &n);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to list the VMs");
        r = status_print_daemon(&p, v, n, where, o);
        vm_rows_free(v, n);
        return r;
}

/* ---- list ----------------------------------------------------------------- */

int verb_list(int argc, char *argv[], const struct ctl_options *o) {
        static const struct column columns[] = {
                { "ID" },
                { "NAME" },
                { "PROFILE" },
                { "SOURCE" },
                { "STATE" },
                { "PID", COLUMN_NUMBER },
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_table_ struct libscols_table *t = NULL;
        struct vm_row *v = NULL;
        size_t n = 0;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = list_vms(bus, &e, &v, &n);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to list the VMs");

        r = table_new("vms", columns, ELEMENTSOF(columns), &t);
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_free_ char *source = NULL;
                char pid[16];

                /* A VM may go between ListVMs and this: its source is then unknown. */
                (void) sd_bus_get_property_string(bus, PMUFILTERD_BUS_NAME, v[i].path, PMUFILTERD_VM_IFACE,
                                                  "ProfileSource", NULL, &source);
                snprintf(pid, sizeof pid, "%" PRIu32, v[i].pid);
                r = table_add_row(t, v[i].id, empty_to_null(v[i].name), empty_to_null(v[i].profile),
                                  empty_to_null(source), v[i].state, pid);
        }
        vm_rows_free(v, n);
        if (r < 0)
                return log_error_errno(r, "Failed to fill the table: %m");
        r = table_print(t, o);
        if (r >= 0 && o->legend && !o->json)
                printf("\n%zu VM%s listed.\n", n, n == 1 ? "" : "s");
        return r;
}

/* ---- show, profile show: the filter decoded -------------------------------- */

/* The PMU the daemon compiles for, to name events and fixed counters: by
 * the daemon's HostPMU, not this host's (-H). */
static void daemon_pmu(sd_bus *bus, struct host_pmu *ret) {
        _cleanup_free_ char *name = NULL;

        *ret = (struct host_pmu) {};
        if (sd_bus_get_property_string(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                                       "HostPMU", NULL, &name) >= 0 &&
            host_pmu_from_name(name, ret) < 0)
                snprintf(ret->name, sizeof ret->name, "%s", name);
}

/* The VM and Profile objects carry a filter's words but not its flags
 * (DESIGN §8 has no Flags property): use the daemon's Flags where a newer
 * one sends it, else tell from the words.  A masked word is one with bits a
 * plain event cannot have (mask, exclude); only a masked filter made of
 * `umask: any` entries alone looks plain, and decodes to the same selects. */
static uint32_t filter_flags(const struct props *p, const struct prop *words) {
        const uint64_t plain = 0xffffULL | 0xfULL << 32;

        if (props_get(p, "Flags"))
                return (uint32_t) props_number(p, "Flags");
        for (size_t i = 0; words && i < words->n_words; i++)
                if (words->words[i] & ~plain)
                        return KVM_PMU_EVENT_FLAG_MASKED_EVENTS;
        return 0;
}

static int filter_print(const struct props *p, const char *words_property, char **names,
                        const struct host_pmu *pmu, const struct ctl_options *o) {
        const struct prop *w = props_get(p, words_property);
        bool deny = streq(props_string(p, "Action"), "deny");
        struct compiled_filter f = {
                .profile = (char *) props_string(p, "Profile"),
                .action = deny ? KVM_PMU_EVENT_DENY : KVM_PMU_EVENT_ALLOW,
                .flags = filter_flags(p, w),
                .fixed_counter_bitmap = (uint32_t) props_number(p, "FixedCounterBitmap"),
                .nevents = w ? (uint32_t) w->n_words : 0,
                .events = w ? w->words : NULL,
                .entry_names = names,
        };

        if (isempty(props_string(p, "Action"))) {
                printf(LABEL "none yet\n", "Filter:");
                return 0;
        }
        printf(LABEL "%s\n", "Action:", deny ?
               "deny (KVM_PMU_EVENT_DENY: every event but these counts)" :
               "allow (KVM_PMU_EVENT_ALLOW: only these events count)");
        printf(LABEL "%" PRIu32 " (%s)\n", "Flags:", f.flags,
               f.flags & KVM_PMU_EVENT_FLAG_MASKED_EVENTS ? "KVM_PMU_EVENT_FLAG_MASKED_EVENTS" : "plain events");
        fixed_counters_print(pmu, f.fixed_counter_bitmap);
        printf(LABEL "%" PRIu32 "\n", "Entries:", f.nevents);
        if (f.nevents == 0)
                return 0;
        printf("\n");
        return compile_print_table(&f, pmu, o);
}

/* GetVM / GetProfile: the object path of a name, or a logged error. */
static int lookup_path(sd_bus *bus, const char *method, const char *what, const char *name, char **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                               method, &e, &reply, "s", name);
        if (r >= 0)
                r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to look up %s %s", what, name);
        *ret = strdup(path);
        return *ret ? 0 : log_error_errno(-ENOMEM, "Out of memory.");
}

static int get_all_or_log(sd_bus *bus, const char *path, const char *interface, const char *what,
                          struct props *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = bus_get_all(bus, path, interface, &e, ret);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to read the properties of %s", what);
        return 0;
}

static int print_json_object(const struct props *p) {
        bool first = true;

        printf("{");
        props_print_json_members(p, stdout, &first);
        printf("}\n");
        return 0;
}

/* The policy's spellings of a VM's entries, from its profile when the VM
 * has that profile's filter (not so in lockdown, or after a reload that
 * has not reached the VM yet). */
static char **vm_entry_names(sd_bus *bus, const struct props *vm, struct props *profile) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const struct prop *a, *b;
        const char *path;

        if (isempty(props_string(vm, "Profile")) ||
            sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                               "GetProfile", &e, &reply, "s", props_string(vm, "Profile")) < 0 ||
            sd_bus_message_read(reply, "o", &path) < 0 ||
            bus_get_all(bus, path, PMUFILTERD_PROFILE_IFACE, &e, profile) < 0)
                return NULL;
        a = props_get(vm, "Events");
        b = props_get(profile, "Entries");
        if (!a || !b || a->n_words != b->n_words ||
            (a->n_words > 0 && memcmp(a->words, b->words, a->n_words * sizeof(uint64_t)) != 0))
                return NULL;
        return props_strv(profile, "EntryNames");
}

static void print_time(const char *label, uint64_t usec) {
        time_t t = (time_t) (usec / 1000000);
        char buf[64];
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                printf(LABEL "-\n", label);
        else
                printf(LABEL "%s\n", label, buf);
}

int verb_show(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(props_clear) struct props p = {}, profile = {};
        _cleanup_free_ char *path = NULL;
        const struct prop *labels;
        struct host_pmu pmu;
        const char *s;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r >= 0)
                r = lookup_path(bus, "GetVM", "VM", argv[1], &path);
        if (r >= 0)
                r = get_all_or_log(bus, path, PMUFILTERD_VM_IFACE, argv[1], &p);
        if (r < 0)
                return r;
        if (o->json)
                return print_json_object(&p);

        printf(LABEL "%s\n", "VM:", props_string(&p, "Id"));
        printf(LABEL "%s\n", "Name:", strna(empty_to_null(props_string(&p, "Name"))));
        printf(LABEL "%s\n", "UUID:", strna(empty_to_null(props_string(&p, "UUID"))));
        printf(LABEL "%" PRIu64 "\n", "PID:", props_number(&p, "PID"));
        labels = props_get(&p, "Labels");
        printf(LABEL, "Labels:");
        if (labels && strv_length(labels->strv) > 0)
                prop_print_value(labels, stdout, false);
        else
                printf("-");
        printf("\n" LABEL "%s\n", "Client:", strna(empty_to_null(props_string(&p, "Client"))));
        printf(LABEL "%s\n", "State:", props_string(&p, "State"));
        s = props_string(&p, "Profile");
        if (isempty(s))
                printf(LABEL "- (not decided yet)\n", "Profile:");
        else
                printf(LABEL "%s (from %s)\n", "Profile:", s, strna(empty_to_null(props_string(&p, "ProfileSource"))));
        print_time("Applied:", props_number(&p, "AppliedUSec"));
        printf(LABEL "%s\n", "Last error:", strna(empty_to_null(props_string(&p, "LastError"))));

        daemon_pmu(bus, &pmu);
        return filter_print(&p, "Events", vm_entry_names(bus, &p, &profile), &pmu, o);
}

/* ---- profile list | show --------------------------------------------------- */

int verb_profile_list(int argc, char *argv[], const struct ctl_options *o) {
        static const struct column columns[] = {
                { "NAME" },
                { "TIER" },
                { "ACTION" },
                { "ENTRIES", COLUMN_NUMBER },
                { "DEFAULT", COLUMN_BOOLEAN },
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_table_ struct libscols_table *t = NULL;
        _cleanup_free_ char *def = NULL;
        const char *name, *tier, *action, *path;
        uint32_t entries;
        size_t n = 0;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                               "ListProfiles", &e, &reply, NULL);
        if (r >= 0)
                r = sd_bus_get_property_string(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH,
                                               PMUFILTERD_MANAGER_IFACE, "DefaultProfile", &e, &def);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to list the profiles");

        r = table_new("profiles", columns, ELEMENTSOF(columns), &t);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(sssuo)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sssuo)", &name, &tier, &action, &entries, &path)) > 0) {
                char b[16];

                snprintf(b, sizeof b, "%" PRIu32, entries);
                r = table_add_row(t, name, tier, action, b, yes_no(streq(name, def)));
                n++;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to read the profiles: %m");
        r = table_print(t, o);
        if (r >= 0 && o->legend && !o->json)
                printf("\n%zu profile%s listed.\n", n, n == 1 ? "" : "s");
        return r;
}

int verb_profile_show(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(props_clear) struct props p = {};
        _cleanup_free_ char *path = NULL;
        struct host_pmu pmu;
        char **vms;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r >= 0)
                r = lookup_path(bus, "GetProfile", "profile", argv[1], &path);
        if (r >= 0)
                r = get_all_or_log(bus, path, PMUFILTERD_PROFILE_IFACE, argv[1], &p);
        if (r < 0)
                return r;
        if (o->json)
                return print_json_object(&p);

        printf(LABEL "%s (tier %s)\n", "Profile:", props_string(&p, "Name"), props_string(&p, "Tier"));
        printf(LABEL "%s\n", "Source:", strna(empty_to_null(props_string(&p, "Source"))));
        printf(LABEL, "VMs:");
        vms = props_strv(&p, "VMs");
        for (size_t i = 0; vms && vms[i]; i++) {
                _cleanup_free_ char *id = bus_vm_id_of_path(vms[i]);

                printf("%s%s", i > 0 ? ", " : "", id ? id : vms[i]);
        }
        printf("%s\n", strv_length(vms) == 0 ? "none" : "");

        daemon_pmu(bus, &pmu);
        return filter_print(&p, "Entries", props_strv(&p, "EntryNames"), &pmu, o);
}

/* ---- changes ---------------------------------------------------------------- */

int verb_profile_set(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *profile = argv[1];
        int r, ret = 0;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;

        if (argc == 2) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

                r = bus_manager_change(bus, &e, "SetDefaultProfile", "sb", profile, o->runtime);
                if (r < 0)
                        return bus_log_error(r, &e, "Failed to set the default profile to '%s'", profile);
                return 0;
        }

        /* Each VM on its own, as systemctl does with units: one that fails
         * does not keep the others from their profile. */
        for (int i = 2; i < argc; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

                r = bus_manager_change(bus, &e, "SetVMProfile", "ssb", argv[i], profile, o->runtime);
                if (r < 0) {
                        r = bus_log_error(r, &e, "Failed to set profile of VM %s", argv[i]);
                        if (ret == 0)
                                ret = r;
                }
        }
        return ret;
}

int verb_profile_reset(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r, ret = 0;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;

        for (int i = 1; i < argc; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

                r = bus_manager_change(bus, &e, "ResetVMProfile", "sb", argv[i], o->runtime);
                if (r < 0) {
                        r = bus_log_error(r, &e, "Failed to reset the profile of VM %s", argv[i]);
                        if (ret == 0)
                                ret = r;
                }
        }
        return ret;
}

int verb_reload(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = bus_manager_change(bus, &e, "Reload", "");
        if (r < 0)
                return bus_log_error(r, &e, "Failed to reload the policy");
        return 0;
}

int verb_reapply(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(bus, &m, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH,
                                           PMUFILTERD_MANAGER_IFACE, "Reapply");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, argv + 1);
        if (r >= 0)
                r = sd_bus_call(bus, m, BUS_CHANGE_TIMEOUT_USEC, &e, NULL);
        if (r < 0 && argc == 1)
                return bus_log_error(r, &e, "Failed to reapply the filters of every VM");
        if (r < 0)
                return bus_log_error(r, &e, "Failed to reapply the filter of VM%s %s%s", argc > 2 ? "s" : "",
                                     argv[1], argc > 2 ? " ..." : "");
        return 0;
}
