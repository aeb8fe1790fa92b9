/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * verbs-monitor.c — `pmufilterctl monitor`: one line for each thing that
 * happens, as it comes.  For people, one sentence per event: a VM added,
 * removed or unmanaged, a filter applied or failed, a reload, the default
 * profile or lockdown changing, the daemon starting or stopping
 * ("12:01:02 VM 4711-12 (web-1) filter applied: profile tenant-a"); VMs
 * are named by the NAME their VMM claimed, kept from ListVMs and each VM's
 * PropertiesChanged.  With --json the raw signals, one JSON document each
 * (one line with --json=short, indented with --json=pretty): VMNew,
 * VMRemoved, VMUnmanaged, FilterApplied, Reloaded, every
 * PropertiesChanged, DaemonStarted, DaemonStopped.  Runs until SIGINT or
 * SIGTERM (exit 0) or until the bus goes away (exit 1).
 */
#include <inttypes.h>
#include <search.h>
#include <signal.h>
#include <stdarg.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "bus-util.h"
#include "output.h"
#include "verbs.h"

/* --- --json: the raw signals ---------------------------------------------- */

/* One JSON document for each signal.  The members of a signal are always
 * the same, those it cannot fill null. */
struct line {
        struct json_writer w;
};

static void line_begin(struct line *l, const struct ctl_options *o, const char *signal) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        json_init(&l->w, stdout, o->json);
        json_object_begin(&l->w);
        json_kv_number(&l->w, "time_usec", (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u);
        json_kv_string(&l->w, "signal", signal);
}

static void line_end(struct line *l) {
        json_object_end(&l->w);
        (void) json_done(&l->w);
}

static void field(struct line *l, const char *key, const char *value) {
        json_kv_string_or_null(&l->w, key, value);
}

static void field_ok(struct line *l, bool ok, const char *error) {
        json_kv_bool(&l->w, "ok", ok);
        json_kv_string_or_null(&l->w, "error", error);
}

/* What an object path names: vm, profile and path, always (null where
 * the path is not of that kind). */
static void field_object(struct line *l, const char *path) {
        _cleanup_free_ char *id = bus_vm_id_of_path(path), *name = NULL;

        if (sd_bus_path_decode(path, PMUFILTERD_BUS_PATH "/profile", &name) <= 0)
                name = NULL;
        field(l, "vm", id);
        field(l, "profile", name);
        field(l, "path", path);
}

static int json_properties_changed(sd_bus_message *m, const struct ctl_options *o) {
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
        line_end(&l);
        return 0;
}

static int on_json_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const struct ctl_options *o = userdata;
        const char *member = sd_bus_message_get_member(m);
        const char *a, *b, *c;
        struct line l;
        int ok, r = 0;

        if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Properties", "PropertiesChanged"))
                r = json_properties_changed(m, o);
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
                        line_begin(&l, o, member);
                        field(&l, "vm", a);
                        field(&l, "path", b);
                        line_end(&l);
                }
        }
        if (r < 0)
                log_error_errno(r, "Failed to read signal %s from %s: %m", strna(member),
                                strna(sd_bus_message_get_path(m)));
        return 0;
}

/* --- for people: one sentence per event ------------------------------------- */

struct vm_name {
        char *id, *name;        /* name "": the VMM claimed none */
};

struct monitor {
        sd_bus *bus;
        void *names;            /* tsearch() tree of struct vm_name, by id */
        char *default_profile;  /* NULL: not known yet */
        int lockdown;           /* -1: not known yet */
};

static int vm_name_compare(const void *a, const void *b) {
        return strcmp(((const struct vm_name *) a)->id, ((const struct vm_name *) b)->id);
}

static void vm_name_free(void *p) {
        struct vm_name *n = p;

        free(n->id);
        free(n->name);
        free(n);
}

static struct vm_name *name_find(struct monitor *mon, const char *id) {
        struct vm_name key = { .id = (char *) id };
        void *found = tfind(&key, &mon->names, vm_name_compare);

        return found ? *(struct vm_name **) found : NULL;
}

static void name_set(struct monitor *mon, const char *id, const char *name) {
        struct vm_name *n = name_find(mon, id);

        if (n) {
                (void) free_and_strdup(&n->name, name);
                return;
        }
        n = calloc(1, sizeof(*n));
        if (!n)
                return;         /* out of memory: the VM goes unnamed */
        n->id = strdup(id);
        n->name = strdup(name);
        if (!n->id || !n->name || !tsearch(n, &mon->names, vm_name_compare))
                vm_name_free(n);
}

static void name_forget(struct monitor *mon, const char *id) {
        struct vm_name *n = name_find(mon, id);

        if (n) {
                (void) tdelete(n, &mon->names, vm_name_compare);
                vm_name_free(n);
        }
}

/* The NAME the VM's VMM claimed: known, else asked for (a VM whose first
 * filter this is has not been described yet).  "" for none. */
static const char *vm_name(struct monitor *mon, const char *id) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(props_clear) struct props p = {};
        _cleanup_free_ char *path = NULL;
        struct vm_name *n = name_find(mon, id);

        if (n)
                return n->name;
        if (sd_bus_path_encode(PMUFILTERD_VM_PREFIX, id, &path) < 0 ||
            bus_get_one(mon->bus, path, PMUFILTERD_VM_IFACE, "Name", &e, &p) < 0)
                return "";      /* gone already: not cached, the next event asks again */
        name_set(mon, id, props_string(&p, "Name"));
        n = name_find(mon, id);
        return n ? n->name : "";
}

/* A claimed name is the VMM's text: no control character reaches the terminal. */
static void print_clean(const char *s) {
        for (; *s; s++)
                putchar((unsigned char) *s < 0x20 || *s == 0x7f ? '?' : *s);
}

static void say_begin(void) {
        struct tm tm;
        time_t t = time(NULL);
        char buf[32];

        if (!localtime_r(&t, &tm) || strftime(buf, sizeof buf, "%H:%M:%S", &tm) == 0)
                snprintf(buf, sizeof buf, "?");
        printf("%s ", buf);
}

static void say_vm(struct monitor *mon, const char *id, bool look_up) {
        const char *name;

        if (look_up)
                name = vm_name(mon, id);
        else {
                struct vm_name *n = name_find(mon, id);

                name = n ? n->name : "";
        }
        printf("VM ");
        print_clean(id);
        if (!isempty(name)) {
                printf(" (");
                print_clean(name);
                printf(")");
        }
}

static void say_end(const char *fmt, ...) _printf_(1, 2);
static void say_end(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
}

/* What the daemon holds now that a change is told against: the VMs' names,
 * the default profile, lockdown.  Without the daemon: nothing yet. */
static void load_state(struct monitor *mon) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(props_clear) struct props p = {};
        struct vm_row *rows = NULL;
        size_t n = 0;

        tdestroy(mon->names, vm_name_free);
        mon->names = NULL;
        if (bus_list_vms(mon->bus, &e, &rows, &n) >= 0) {
                for (size_t i = 0; i < n; i++)
                        name_set(mon, rows[i].id, strempty(rows[i].name));
                vm_rows_free(rows, n);
        }
        sd_bus_error_free(&e);
        free(mon->default_profile);
        mon->default_profile = NULL;
        mon->lockdown = -1;
        if (bus_get_all(mon->bus, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE, &e, &p) >= 0) {
                mon->default_profile = strdup(props_string(&p, "DefaultProfile"));
                mon->lockdown = props_bool(&p, "Lockdown");
        }
}

static void manager_changed(struct monitor *mon, const struct props *p) {
        const struct prop *v;

        v = props_get(p, "DefaultProfile");
        if (v && v->str && !streq_ptr(v->str, mon->default_profile)) {
                if (mon->default_profile) {
                        say_begin();
                        printf("default profile changed: ");
                        print_clean(isempty(v->str) ? "(none)" : v->str);
                        printf(" (was ");
                        print_clean(isempty(mon->default_profile) ? "(none)" : mon->default_profile);
                        say_end(")");
                }
                (void) free_and_strdup(&mon->default_profile, v->str);
        }
        v = props_get(p, "Lockdown");
        if (v && (int) !!v->num != mon->lockdown) {
                if (mon->lockdown >= 0) {
                        say_begin();
                        say_end(v->num ? "LOCKDOWN: no good policy; every VM gets an empty allowlist"
                                       : "lockdown left: a good policy is in force");
                }
                mon->lockdown = !!v->num;
        }
}

static int properties_changed(struct monitor *mon, sd_bus_message *m) {
        _cleanup_(props_clear) struct props p = {};
        _cleanup_free_ char *id = NULL;
        const char *interface, *path = sd_bus_message_get_path(m);
        const struct prop *v;
        int r;

        r = sd_bus_message_read(m, "s", &interface);
        if (r >= 0)
                r = props_read(m, &p);
        if (r < 0)
                return r;
        if (streq_ptr(path, PMUFILTERD_BUS_PATH) && streq(interface, PMUFILTERD_MANAGER_IFACE))
                manager_changed(mon, &p);
        else if ((id = bus_vm_id_of_path(path)) && (v = props_get(&p, "Name")) && v->str)
                name_set(mon, id, v->str);
        return 0;
}

static int on_human_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct monitor *mon = userdata;
        const char *member = sd_bus_message_get_member(m);
        const char *a, *b, *c;
        int ok, r = 0;

        if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Properties", "PropertiesChanged"))
                r = properties_changed(mon, m);
        else if (sd_bus_message_is_signal(m, "org.freedesktop.DBus", "NameOwnerChanged")) {
                r = sd_bus_message_read(m, "sss", &a, &b, &c);
                if (r >= 0) {
                        say_begin();
                        say_end("pmufilterd %s", isempty(c) ? "stopped" : "started");
                        if (!isempty(c))
                                load_state(mon);
                }
        } else if (sd_bus_message_is_signal(m, PMUFILTERD_MANAGER_IFACE, "FilterApplied")) {
                r = sd_bus_message_read(m, "ssbs", &a, &b, &ok, &c);
                if (r >= 0) {
                        say_begin();
                        say_vm(mon, a, true);
                        printf(" filter %s: profile ", ok ? "applied" : "FAILED");
                        print_clean(b);
                        if (!isempty(c)) {
                                printf(ok ? " (" : ": ");
                                print_clean(c);
                        }
                        say_end("%s", ok && !isempty(c) ? ")" : "");
                }
        } else if (sd_bus_message_is_signal(m, PMUFILTERD_MANAGER_IFACE, "Reloaded")) {
                r = sd_bus_message_read(m, "bs", &ok, &c);
                if (r >= 0) {
                        say_begin();
                        if (ok)
                                say_end("policy reloaded");
                        else {
                                printf("policy reload FAILED, the policy in force stays: ");
                                print_clean(c);
                                say_end("%s", "");
                        }
                }
        } else if (sd_bus_message_is_signal(m, PMUFILTERD_MANAGER_IFACE, "VMNew") ||
                   sd_bus_message_is_signal(m, PMUFILTERD_MANAGER_IFACE, "VMRemoved") ||
                   sd_bus_message_is_signal(m, PMUFILTERD_MANAGER_IFACE, "VMUnmanaged")) {
                r = sd_bus_message_read(m, "so", &a, &b);
                if (r >= 0) {
                        bool added = streq(member, "VMNew"), removed = streq(member, "VMRemoved");

                        say_begin();
                        /* A new VM has claimed nothing yet; a removed one
                         * cannot be asked any more. */
                        say_vm(mon, a, !added && !removed);
                        say_end("%s", added ? " added" : removed ? " removed" :
                                " unmanaged: its VMM did not attach, its guest PMU is not filtered");
                        if (removed)
                                name_forget(mon, a);
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
        struct monitor mon = { .lockdown = -1 };
        sigset_t mask;
        char where[256];
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;

        /* Matches are in place when sd_bus_add_match returns: nothing the
         * daemon sends after the line below is missed. */
        for (size_t i = 0; i < ELEMENTSOF(matches); i++) {
                r = o->json != JSON_OFF ? sd_bus_add_match(bus, NULL, matches[i], on_json_signal, (void *) o)
                                      : sd_bus_add_match(bus, NULL, matches[i], on_human_signal, &mon);
                if (r < 0)
                        return log_error_errno(r, "Failed to subscribe to the daemon's signals: %m");
        }
        /* After the matches: a change from now on is told against this. */
        mon.bus = bus;
        if (o->json == JSON_OFF)
                load_state(&mon);

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
        tdestroy(mon.names, vm_name_free);
        free(mon.default_profile);
        if (r < 0)
                return log_error_errno(r, "Failed to run the event loop: %m");
        if (r > 0)
                return log_error_errno(-ECONNRESET, "Lost the connection to %s.", bus_where(o, where, sizeof where));
        return 0;
}
