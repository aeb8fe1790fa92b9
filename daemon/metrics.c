/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * metrics.c — the metrics file (metrics.h; pmufilterd(8), METRICS): what
 * the registry and the decider hold now, and what the registry's events
 * counted, in Prometheus' text exposition format (version 0.0.4).
 */
#include <assert.h>
#include <inttypes.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "metrics.h"

void metrics_print_label_value(FILE *f, const char *s) {
        for (; *s; s++)
                switch (*s) {
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                default:
                        fputc(*s, f);
                }
}

static void header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(FILE *f, const char *name, const char *label, const char *value, uint64_t n) {
        fputs(name, f);
        if (label) {
                fprintf(f, "{%s=\"", label);
                metrics_print_label_value(f, value);
                fputs("\"}", f);
        }
        fprintf(f, " %" PRIu64 "\n", n);
}

struct profile_count {
        const char *name;
        uint64_t n;
};

/* Every profile of the policy in force (0 too: a series does not vanish
 * when its last VM goes), then any other a VM still has (one of a policy
 * before the last reload, "none", "lockdown"), each once.  Profiles are
 * few: a linear search per VM. */
static int count_profiles(const struct metrics *m, struct profile_count **ret, size_t *ret_n) {
        const struct policy *p = m->decider->set ? m->decider->set->policy : NULL;
        _cleanup_free_ struct profile_count *c = NULL;
        size_t n = 0, allocated = 0;

        for (size_t i = 0; p && i < p->n_profiles; i++) {
                if (!GREEDY_REALLOC(c, allocated, n + 1))
                        return -ENOMEM;
                c[n++] = (struct profile_count) { .name = p->profiles[i].name };
        }
        REGISTRY_FOREACH(vm, m->registry) {
                size_t i;

                if (!vm->profile)
                        continue;
                for (i = 0; i < n && !streq(c[i].name, vm->profile); i++)
                        ;
                if (i == n) {
                        if (!GREEDY_REALLOC(c, allocated, n + 1))
                                return -ENOMEM;
                        c[n++] = (struct profile_count) { .name = vm->profile };
                }
                c[i].n++;
        }
        *ret = TAKE_PTR(c);
        *ret_n = n;
        return 0;
}

int metrics_format(const struct metrics *m, FILE *f) {
        _cleanup_free_ struct profile_count *profiles = NULL;
        size_t n_profiles = 0;
        int r;

        r = count_profiles(m, &profiles, &n_profiles);
        if (r < 0)
                return r;

        header(f, "pmufilterd_vms", "gauge", "VMs the daemon knows, by state (pmufilterd(8), VM STATES).");
        for (enum vm_state s = 0; s < _VM_STATE_MAX; s++)
                sample(f, "pmufilterd_vms", "state", vm_state_to_string(s), m->registry->n_state[s]);
        header(f, "pmufilterd_unmanaged_vms", "gauge",
               "VMs whose VMM did not attach in time: their guest PMU is not filtered.");
        sample(f, "pmufilterd_unmanaged_vms", NULL, NULL, m->registry->n_state[VM_UNMANAGED]);
        header(f, "pmufilterd_profile_vms", "gauge",
               "VMs by the profile decided for them; every profile of the policy in force is listed.");
        for (size_t i = 0; i < n_profiles; i++)
                sample(f, "pmufilterd_profile_vms", "profile", profiles[i].name, profiles[i].n);
        header(f, "pmufilterd_filter_applies_total", "counter",
               "Filters the kernel took (APPLIED without an error, or applied by injection) since the daemon started.");
        sample(f, "pmufilterd_filter_applies_total", NULL, NULL, m->applies);
        header(f, "pmufilterd_filter_failures_total", "counter",
               "Filters not applied since the daemon started: APPLIED with an error, or no answer before the session "
               "was dropped.");
        sample(f, "pmufilterd_filter_failures_total", NULL, NULL, m->failures);
        header(f, "pmufilterd_reloads_total", "counter",
               "Policy reloads (SIGHUP, Reload) since the daemon started, by result; a failed one keeps the policy "
               "in force.");
        sample(f, "pmufilterd_reloads_total", "result", "ok", m->reloads_ok);
        sample(f, "pmufilterd_reloads_total", "result", "failed", m->reloads_failed);
        header(f, "pmufilterd_last_reload_timestamp_seconds", "gauge",
               "When the last reload ended (seconds since the epoch), whatever its result; 0 before the first.");
        fprintf(f, "pmufilterd_last_reload_timestamp_seconds %" PRIu64 ".%03" PRIu64 "\n",
                m->last_reload_usec / 1000000, m->last_reload_usec / 1000 % 1000);
        header(f, "pmufilterd_last_reload_success", "gauge",
               "0 if the last reload failed (the policy in force is not what the files say), else 1.");
        sample(f, "pmufilterd_last_reload_success", NULL, NULL, !m->last_reload_failed);
        header(f, "pmufilterd_lockdown", "gauge",
               "1 while the daemon runs without a good policy: every VM gets an empty allowlist.");
        sample(f, "pmufilterd_lockdown", NULL, NULL, m->decider->lockdown);
        return ferror(f) ? -EIO : 0;
}

static int write_metrics(FILE *f, const void *userdata) {
        return metrics_format(userdata, f);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct metrics *m = userdata;
        int r;

        m->last_write_usec = now_usec(CLOCK_MONOTONIC);
        r = write_file_atomic(m->path, 0644, 0, write_metrics, m);
        if (r < 0 && r != m->write_error) {
                /* Said once, until it works again or fails otherwise. */
                if (r == -ENOENT)
                        log_info("Metrics not written: the directory of %s does not exist (is "
                                 "prometheus-node-exporter installed?); tried again on every change", m->path);
                else
                        log_warning_errno(r, "Failed to write the metrics to %s: %m%s; tried again on every change",
                                          m->path, r == -EROFS ? " (a directory made after pmufilterd started "
                                                                 "is writable after its restart)" : "");
        } else if (r >= 0 && m->write_error != 0)
                log_info("Metrics written to %s again", m->path);
        else if (r >= 0)
                log_debug("Metrics written to %s", m->path);
        m->write_error = r < 0 ? r : 0;
        return 0;
}

static void schedule(struct metrics *m) {
        uint64_t due = m->last_write_usec ? m->last_write_usec + METRICS_INTERVAL_USEC : 0;
        int enabled = SD_EVENT_OFF;

        if (!m->timer) {
                if (sd_event_add_time(m->event, &m->timer, CLOCK_MONOTONIC, due, 0, on_timer, m) < 0) {
                        (void) on_timer(NULL, 0, m);
                        return;
                }
                (void) sd_event_source_set_priority(m->timer, SD_EVENT_PRIORITY_IDLE);
                (void) sd_event_source_set_description(m->timer, "metrics");
                return;
        }
        if (sd_event_source_get_enabled(m->timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;         /* due already: it will write this change too */
        (void) sd_event_source_set_time(m->timer, due);
        (void) sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
}

void metrics_changed(struct metrics *m) {
        if (m->path)
                schedule(m);
}

static void on_registry(struct registry *r, enum registry_event ev, struct vm *vm,
                        const struct registry_event_data *data, void *userdata) {
        struct metrics *m = userdata;

        if (!m->path)           /* done */
                return;
        switch (ev) {
        case REGISTRY_VM_APPLIED:
                if (data->ok)
                        m->applies++;
                else
                        m->failures++;
                break;
        case REGISTRY_VM_SESSION_LOST:
                /* Dropped with an APPLY in flight (its timeout, a protocol
                 * error); a session the VMM closed clears that first. */
                if (vm->state == VM_FAILED && vm->serial_pending)
                        m->failures++;
                break;
        case REGISTRY_POLICY_RELOADED:
                if (data->ok)
                        m->reloads_ok++;
                else
                        m->reloads_failed++;
                m->last_reload_failed = !data->ok;
                m->last_reload_usec = now_usec(CLOCK_REALTIME);
                break;
        case REGISTRY_VM_NEW:
        case REGISTRY_VM_CHANGED:
        case REGISTRY_VM_UNMANAGED:
        case REGISTRY_VM_PROFILE_MOVED:
        case REGISTRY_COUNT_CHANGED:
        case REGISTRY_POLICY_SWAPPED:
        case REGISTRY_SETTINGS_CHANGED:
                break;
        case REGISTRY_VM_REMOVED:       /* counted by COUNT_CHANGED, once it is gone */
        case REGISTRY_VM_RECORDED:
        case _REGISTRY_EVENT_MAX:
                return;
        }
        schedule(m);
}

int metrics_init(struct metrics *m, sd_event *e, struct registry *r, const struct decider *d, const char *path) {
        assert(m && r && d && (e || !path));
        *m = (struct metrics) { .event = e, .registry = r, .decider = d };
        if (!path)
                return 0;
        m->path = strdup(path);
        if (!m->path)
                return -ENOMEM;
        return registry_subscribe(r, on_registry, m);
}

void metrics_done(struct metrics *m) {
        m->timer = sd_event_source_disable_unref(m->timer);
        if (m->path && m->last_write_usec && unlink(m->path) < 0 && errno != ENOENT)
                log_debug("Failed to remove %s: %m", m->path);
        free(m->path);
        m->path = NULL;
}
