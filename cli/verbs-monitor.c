/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * verbs-monitor.c — `pmufilterctl monitor`: one line for each signal of
 * the daemon as it comes (VMNew, VMRemoved, VMUnmanaged, FilterApplied,
 * Reloaded, PropertiesChanged of any of its objects), and for the daemon
 * starting or stopping; with --json one JSON document each (one line with
 * --json=short; indented with --json=pretty).  Runs until
 * SIGINT or SIGTERM (exit 0) or until the bus goes away (exit 1).
 */
#include <inttypes.h>
#include <signal.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "bus-util.h"
#include "output.h"
#include "verbs.h"

/* One line (with --json, one document) for each signal.  The JSON members
 * of a signal are always the same, those it cannot fill null. */
struct line {
        const struct ctl_options *o;
        struct json_writer w;
};

static void line_begin(struct line *l, const struct ctl_options *o, const char *signal) {
        struct timespec ts;
        struct tm tm;
        char buf[32];

        l->o = o;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (o->json != JSON_OFF) {
                json_init(&l->w, stdout, o->json);
                json_object_begin(&l->w);
                json_kv_number(&l->w, "time_usec", (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u);
                json_kv_string(&l->w, "signal", signal);
                return;
        }
        if (!localtime_r(&ts.tv_sec, &tm) || strftime(buf, sizeof buf, "%H:%M:%S", &tm) == 0)
                snprintf(buf, sizeof buf, "?");
        printf("%s.%03ld %-17s", buf, ts.tv_nsec / 1000000, signal);
}

static void line_end(struct line *l) {
        if (l->o->json != JSON_OFF) {
                json_object_end(&l->w);
                (void) json_done(&l->w);
                return;
        }
        printf("\n");
        fflush(stdout);
}

/* A string field: key=value for people, "key":"value" in JSON ("" and
 * NULL: null, and left out for people). */
static void field(struct line *l, const char *key, const char *value) {
        if (l->o->json != JSON_OFF)
                json_kv_string_or_null(&l->w, key, value);
        else if (!isempty(value))
                printf(" %s=%s", key, value);
}

static void field_ok(struct line *l, bool ok, const char *error) {
        if (l->o->json != JSON_OFF) {
                json_kv_bool(&l->w, "ok", ok);
                json_kv_string_or_null(&l->w, "error", error);
        } else if (ok)
                printf(" ok");
        else
                printf(" %sFAILED%s: %s", ansi_red(), ansi_normal(), error);
}

/* What an object path names: the VM's id, the profile's name, or (the
 * manager) neither; in JSON vm, profile and path, always. */
static void field_object(struct line *l, const char *path) {
        _cleanup_free_ char *id = bus_vm_id_of_path(path), *name = NULL;

        if (sd_bus_path_decode(path, PMUFILTERD_BUS_PATH "/profile", &name) <= 0)
                name = NULL;
        if (l->o->json != JSON_OFF) {
                field(l, "vm", id);
                field(l, "profile", name);
                field(l, "path", path);
        } else if (id)
                field(l, "vm", id);
        else if (name)
                field(l, "profile", name);
        else if (!streq(path, PMUFILTERD_BUS_PATH))
                field(l, "path", path);
}

static int on_properties_changed(sd_bus_message *m, const struct ctl_options *o) {
        _cleanup_(props_clear) struct props p = {};
        _cleanup_strv_free_ char **invalidated = NULL;
        const char *interface;
        struct line l;
        int r;

        r = sd_bus_message_read(m, "s", &interface);
        if (r >= 0)
                r = props_read(m, &p);
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &invalidated);
        if (r < 0)
                return r;

        line_begin(&l, o, "PropertiesChanged");
        field_object(&l, sd_bus_message_get_path(m));
        if (o->json != JSON_OFF) {
                field(&l, "interface", interface);
                json_key(&l.w, "changed");
                json_object_begin(&l.w);
                props_json_members(&p, &l.w);
                json_object_end(&l.w);
                /* Named as the properties are in `changed`. */
                json_key(&l.w, "invalidated");
                json_array_begin(&l.w);
                for (size_t i = 0; invalidated && invalidated[i]; i++) {
                        char key[128];

                        prop_json_key(invalidated[i], key, sizeof key);
                        json_string(&l.w, key);
                }
                json_array_end(&l.w);
        } else {
                for (size_t i = 0; i < p.n; i++) {
                        bool bad = streq(p.v[i].name, "State") && p.v[i].kind == PROP_STRING &&
                                   state_is_bad(p.v[i].str);

                        printf(" %s=%s", p.v[i].name, bad ? ansi_red() : "");
                        prop_print_value(&p.v[i], stdout);
                        printf("%s", bad ? ansi_normal() : "");
                }
                for (size_t i = 0; invalidated && invalidated[i]; i++)
                        printf(" %s (changed)", invalidated[i]);
        }
        line_end(&l);
        return 0;
}

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const struct ctl_options *o = userdata;
        const char *member = sd_bus_message_get_member(m);
        const char *a, *b, *c;
        struct line l;
        int ok, r = 0;

        if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Properties", "PropertiesChanged"))
                r = on_properties_changed(m, o);
        else if (sd_bus_message_is_signal(m, "org.freedesktop.DBus", "NameOwnerChanged")) {
                r = sd_bus_message_read(m, "sss", &a, &b, &c);
                if (r >= 0) {
                        line_begin(&l, o, isempty(c) ? "DaemonStopped" : "DaemonStarted");
                        line_end(&l);
                }
        } else if (sd_bus_message_is_signal(m, PMUFILTERD_MANAGER_IFACE, "FilterApplied")) {
                r = sd_bus_message_read(m, "ssbs", &a, &b, &ok, &c);
                if (r >= 0) {
                        line_begin(&l, o, member);
                        field(&l, "vm", a);
                        field(&l, "profile", b);
                        field_ok(&l, ok, c);
                        line_end(&l);
                }
        } else if (sd_bus_message_is_signal(m, PMUFILTERD_MANAGER_IFACE, "Reloaded")) {
                r = sd_bus_message_read(m, "bs", &ok, &c);
                if (r >= 0) {
                        line_begin(&l, o, member);
                        field_ok(&l, ok, c);
                        line_end(&l);
                }
        } else if (streq_ptr(sd_bus_message_get_signature(m, true), "so")) {
                /* VMNew, VMRemoved, VMUnmanaged, and any later signal of this shape. */
                r = sd_bus_message_read(m, "so", &a, &b);
                if (r >= 0) {
                        bool bad = streq_ptr(member, "VMUnmanaged") && o->json == JSON_OFF;

                        line_begin(&l, o, member);
                        printf("%s", bad ? ansi_red() : "");
                        field(&l, "vm", a);
                        printf("%s", bad ? ansi_normal() : "");
                        if (o->json != JSON_OFF)
                                field(&l, "path", b);
                        line_end(&l);
                }
        }
        if (r < 0)
                log_error_errno(r, "Failed to read signal %s from %s: %m", strna(member),
                                strna(sd_bus_message_get_path(m)));
        return 0;
}

int verb_monitor(int argc, char *argv[], const struct ctl_options *o) {
        static const char *const matches[] = {
                "type='signal',sender='" PMUFILTERD_BUS_NAME "',path='" PMUFILTERD_BUS_PATH "',"
                "interface='" PMUFILTERD_MANAGER_IFACE "'",
                "type='signal',sender='" PMUFILTERD_BUS_NAME "',interface='org.freedesktop.DBus.Properties',"
                "member='PropertiesChanged',path_namespace='" PMUFILTERD_BUS_PATH "'",
                "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" PMUFILTERD_BUS_NAME "'",
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        sigset_t mask;
        char where[256];
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;

        /* Matches are in place when sd_bus_add_match returns: nothing the
         * daemon sends after the line below is missed. */
        for (size_t i = 0; i < ELEMENTSOF(matches); i++) {
                r = sd_bus_add_match(bus, NULL, matches[i], on_signal, (void *) o);
                if (r < 0)
                        return log_error_errno(r, "Failed to subscribe to the daemon's signals: %m");
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(-errno, "Failed to block SIGINT and SIGTERM: %m");
        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to create the event loop: %m");
        /* No handler: the signal ends the loop with exit code 0. */
        r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to watch for SIGINT: %m");
        r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to watch for SIGTERM: %m");
        r = sd_bus_attach_event(bus, event, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r < 0)
                return log_error_errno(r, "Failed to make a disconnect end the event loop: %m");

        if (o->legend && o->json == JSON_OFF)
                info(o, "Monitoring %s on %s; press Ctrl-C to stop.", PMUFILTERD_BUS_NAME,
                     bus_where(o, where, sizeof where));

        r = sd_event_loop(event);
        if (r < 0)
                return log_error_errno(r, "Failed to run the event loop: %m");
        if (r > 0)
                return log_error_errno(-ECONNRESET, "Lost the connection to %s.", bus_where(o, where, sizeof where));
        return 0;
}
