/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * verbs-status.c — `pmufilterctl status`: the daemon's manager properties
 * and its VMs counted by state; and, when the daemon cannot be reached,
 * what this host tells by itself — its PMU and KVM's support — with exit
 * status 1, so that `status` is useful before the daemon ever ran.
 */
#include <inttypes.h>

#include "bus-util.h"
#include "kvm.h"
#include "output.h"
#include "pmu.h"
#include "verbs.h"

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
        if (props_number(p, "ForeignVMs") > 0)
                printf(LABEL "%" PRIu64 " VMs of processes in another PID namespace (the daemon runs in a container); "
                       "not filtered from here\n", "Not visible:", props_number(p, "ForeignVMs"));
        for (char **w = props_strv(p, "Warnings"); w && *w; w++)
                printf(LABEL "%s\n", "Warning:", *w);
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
        r = bus_list_vms(bus, &e, &v, &n);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to list the VMs");
        r = status_print_daemon(&p, v, n, where, o);
        vm_rows_free(v, n);
        return r;
}
