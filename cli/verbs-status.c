/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * verbs-status.c — `pmufilterctl status`: the daemon's manager properties
 * and its VMs counted by state, with exit status 1 when something is not
 * protected (lockdown, a VM unmanaged or failed); and, when the daemon
 * cannot be reached, what this host tells by itself — its PMU and KVM's
 * support — with exit status 1, so that `status` is useful before the
 * daemon ever ran.
 */
#include <errno.h>
#include <inttypes.h>

#include "bus-util.h"
#include "kvm.h"
#include "output.h"
#include "pmu.h"
#include "verbs.h"

const char *const vm_states[N_VM_STATES] = {
        "detected", "attached", "filtered", "adopted", "failed", "unmanaged", "detached",
};

static void count_states(const struct vm_row *v, size_t n, unsigned counts[N_VM_STATES + 1]) {
        for (size_t i = 0; i < n; i++) {
                size_t s = 0;

                while (s < N_VM_STATES && !streq(v[i].state, vm_states[s]))
                        s++;
                counts[s]++;            /* the last slot: a state this pmufilterctl does not know */
        }
}

/* What the kernel supports, as far as this host could tell: known is
 * false when /dev/kvm could not be opened (not root, not in group kvm),
 * and then nothing is known of the filter. */
struct support {
        bool known;
        bool filter, masked;
        int enable_pmu;         /* -1: unknown */
        unsigned max_events;
        char why[128];          /* !known: "/dev/kvm: Permission denied" */
};

static void print_filter_support(const struct support *s) {
        if (!s->known)
                printf(LABEL "unknown: %s (root or group kvm can probe it)\n", "Event filter:", s->why);
        else
                printf(LABEL "%s%s%s, masked events %s\n", "Event filter:",
                       s->filter ? "" : ansi_red(),
                       s->filter ? "supported" : "NOT SUPPORTED by this kernel (KVM_CAP_PMU_EVENT_FILTER)",
                       s->filter ? "" : ansi_normal(), s->masked ? "supported" : "not supported");
        if (s->enable_pmu < 0)
                printf(LABEL "unknown\n", "Host vPMU:");
        else
                printf(LABEL "%s\n", "Host vPMU:", s->enable_pmu ? "on (kvm.enable_pmu=Y)" :
                       "off (kvm.enable_pmu=N): guests get no PMU, whatever their filter");
}

/* kvm.enable_pmu, readable without /dev/kvm: -1 if not. */
static int read_enable_pmu(void) {
        _cleanup_fclose_ FILE *f = fopen("/sys/module/kvm/parameters/enable_pmu", "re");
        int c;

        if (!f)
                return -1;
        c = fgetc(f);
        return c == 'Y' || c == 'y' || c == '1' ? 1 : c == 'N' || c == 'n' || c == '0' ? 0 : -1;
}

/* The members every `status --json` has, in this order, whether or not
 * the daemon answered: those it cannot tell are null. */
static const char *const status_keys[] = {
        "running", "reason", "version", "host_pmu", "host_pmu_description", "filter_supported",
        "masked_events_supported", "host_pmu_enabled", "max_events", "kernel", "default_profile",
        "n_vms", "vms_by_state", "lockdown", "last_error", "reload_warnings", "config_files",
        "foreign_vms", "warnings",
};

/* The manager property behind a status key, or NULL. */
static const struct prop *status_prop(const struct props *p, const char *key) {
        for (size_t i = 0; p && i < p->n; i++) {
                char k[128];

                prop_json_key(p->v[i].name, k, sizeof k);
                if (streq(k, key))
                        return &p->v[i];
        }
        return NULL;
}

struct status_json {
        const char *reason;                     /* not running: why */
        const struct props *daemon;             /* running: the manager's properties */
        const unsigned *counts;                 /* running: VMs by state */
        const struct host_pmu *pmu;             /* the PMU, if known */
        const struct support *support;          /* not running, this host */
        const char *kernel;                     /* not running, this host: the probe's summary */
};

static int status_print_json(const struct status_json *s, const struct ctl_options *o) {
        struct json_writer w;
        int r;

        json_init(&w, stdout, o->json);
        json_object_begin(&w);
        for (size_t i = 0; i < ELEMENTSOF(status_keys); i++) {
                const char *key = status_keys[i];
                const struct prop *p = status_prop(s->daemon, key);

                if (p) {
                        prop_json_member(p, &w);
                        continue;
                }
                json_key(&w, key);
                if (streq(key, "running"))
                        json_bool(&w, s->daemon);
                else if (streq(key, "reason"))
                        json_string(&w, s->reason);
                else if (streq(key, "host_pmu"))
                        json_string(&w, s->pmu ? s->pmu->name : NULL);
                else if (streq(key, "host_pmu_description"))
                        json_string(&w, s->pmu ? empty_to_null(s->pmu->description) : NULL);
                else if (streq(key, "vms_by_state") && s->counts) {
                        json_object_begin(&w);
                        for (size_t k = 0; k <= N_VM_STATES; k++)
                                if (s->counts[k] > 0)
                                        json_kv_number(&w, k < N_VM_STATES ? vm_states[k] : "other", s->counts[k]);
                        json_object_end(&w);
                } else if (s->support && s->support->known && streq(key, "filter_supported"))
                        json_bool(&w, s->support->filter);
                else if (s->support && s->support->known && streq(key, "masked_events_supported"))
                        json_bool(&w, s->support->masked);
                else if (s->support && s->support->known && streq(key, "max_events"))
                        json_number(&w, s->support->filter ? s->support->max_events : 0);
                else if (s->support && s->support->enable_pmu >= 0 && streq(key, "host_pmu_enabled"))
                        json_bool(&w, s->support->enable_pmu);
                else if (streq(key, "kernel"))
                        json_string(&w, s->kernel);
                else
                        json_null(&w);
        }
        /* A property of a newer daemon: shown unasked, by the same convention. */
        for (size_t i = 0; s->daemon && i < s->daemon->n; i++) {
                bool known = false;
                char k[128];

                prop_json_key(s->daemon->v[i].name, k, sizeof k);
                for (size_t j = 0; j < ELEMENTSOF(status_keys) && !known; j++)
                        known = streq(k, status_keys[j]);
                if (!known)
                        prop_json_member(&s->daemon->v[i], &w);
        }
        json_object_end(&w);
        r = json_done(&w);
        if (r < 0)
                return log_error_errno(r, "Failed to write to stdout: %m");
        return 0;
}

/* True when something is not protected: lockdown, or a VM whose filter is
 * not in force because nothing attached it or the kernel refused it. */
static bool status_degraded(bool lockdown, const unsigned counts[N_VM_STATES + 1]) {
        bool bad = lockdown;

        for (size_t s = 0; s < N_VM_STATES; s++)
                bad = bad || (counts[s] > 0 && state_is_bad(vm_states[s]));
        return bad;
}

static int status_print_daemon(const struct props *p, const struct vm_row *v, size_t n,
                               const char *where, const struct ctl_options *o) {
        unsigned counts[N_VM_STATES + 1] = {};
        const char *pmu_name = props_string(p, "HostPMU");
        bool lockdown = props_bool(p, "Lockdown");
        struct host_pmu pmu;
        bool have_pmu = host_pmu_from_name(pmu_name, &pmu) >= 0;
        int r;

        count_states(v, n, counts);

        if (o->json != JSON_OFF) {
                r = status_print_json(&(const struct status_json) {
                        .daemon = p, .counts = counts, .pmu = have_pmu ? &pmu : NULL,
                }, o);
                if (r < 0)
                        return r;
                return status_degraded(lockdown, counts) ? EXIT_FAILURE : EXIT_SUCCESS;
        }

        printf(LABEL "running%s%s%s, version %s, on %s\n", "pmufilterd:", ansi_red(),
               lockdown ? " IN LOCKDOWN" : "", ansi_normal(), props_string(p, "Version"), where);
        if (lockdown)
                printf(LABEL "%sYES: the policy failed to load; every VM gets an empty allowlist until a reload succeeds%s\n",
                       "Lockdown:", ansi_red(), ansi_normal());
        if (have_pmu && !streq(pmu.description, pmu_name))
                printf(LABEL "%s (%s)\n", "Host PMU:", pmu_name, pmu.description);
        else
                printf(LABEL "%s\n", "Host PMU:", pmu_name);
        print_filter_support(&(const struct support) {
                .known = true,
                .filter = props_bool(p, "FilterSupported"),
                .masked = props_bool(p, "MaskedEventsSupported"),
                .enable_pmu = props_bool(p, "HostPMUEnabled"),
        });
        if (!isempty(props_string(p, "Kernel")))
                printf(LABEL "%s\n", "Kernel:", props_string(p, "Kernel"));
        printf(LABEL "%s\n", "Default:", strna(empty_to_null(props_string(p, "DefaultProfile"))));

        printf(LABEL "%" PRIu64, "VMs:", props_number(p, "NVMs"));
        for (size_t s = 0, k = 0; s < ELEMENTSOF(counts); s++) {
                bool bad = s < N_VM_STATES && state_is_bad(vm_states[s]);

                if (counts[s] > 0)
                        printf("%s%s%u %s%s", k++ == 0 ? " (" : ", ", bad ? ansi_red() : "", counts[s],
                               s < N_VM_STATES ? vm_states[s] : "other", bad ? ansi_normal() : "");
        }
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
        return status_degraded(lockdown, counts) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* What this host tells by itself when the daemon cannot be asked. */
static int status_print_local(const char *reason, const struct ctl_options *o) {
        struct host_pmu pmu;
        struct kvm_support k;
        struct support s = { .enable_pmu = -1 };
        char summary[256];
        bool local = !o->host;  /* facts of this host say nothing about another */
        int r;

        if (local) {
                (void) host_pmu_detect(&pmu);
                (void) kvm_support_probe(&k);
                s.enable_pmu = read_enable_pmu();
                if (k.open_error < 0) {
                        /* Not "no filter": nothing could be asked.  Say what stopped it. */
                        snprintf(s.why, sizeof s.why, "/dev/kvm: %s", strerror(-k.open_error));
                        snprintf(summary, sizeof summary, "%s", s.why);
                } else {
                        s = (struct support) {
                                .known = true, .filter = k.filter, .masked = k.masked,
                                .enable_pmu = k.enable_pmu, .max_events = k.max_events,
                        };
                        kvm_support_summary(&k, summary, sizeof summary);
                }
        }

        if (o->json != JSON_OFF) {
                r = status_print_json(&(const struct status_json) {
                        .reason = reason, .pmu = local ? &pmu : NULL, .support = local ? &s : NULL,
                        .kernel = local ? summary : NULL,
                }, o);
                if (r < 0)
                        return r;
        } else {
                printf(LABEL "%snot running%s (%s)\n", "pmufilterd:", ansi_red(), ansi_normal(), reason);
                if (local) {
                        printf(LABEL "%s (%s)\n", "Host PMU:", pmu.name, pmu.description);
                        print_filter_support(&s);
                        printf(LABEL "%s\n", "Kernel:", summary);
                }
        }
        return EXIT_FAILURE;
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
