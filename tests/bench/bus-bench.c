/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-bench.c — the timed D-Bus side of the benchmarks (sd-bus, as
 * pmufilterctl uses), one line per sample, times in ns:
 *
 *   bus-bench ping       --address A --count N           "ping <ns>"
 *       org.freedesktop.DBus.Peer.Ping to pmufilterd: a bus round trip with
 *       nothing in it (sd-bus answers it inside the daemon's loop).
 *   bus-bench set-vm     --address A --vm ID --profiles P,Q --count N
 *       SetVMProfile(ID, P|Q alternately, runtime) — it replies when the
 *       VMM has answered APPLIED.                         "setvm <ns> <t0>"
 *   bus-bench set-default --address A --profile P [--probe-ms M] [--mirror-dest NAME]
 *       SetDefaultProfile(P, runtime) on one connection; meanwhile, on a
 *       second one, ListVMs every M ms until the first call returns.
 *       "setdefault <t0> <t1>", "listvms <t0> <ns> <entries>" per probe;
 *       with --mirror-dest (an echo-serve --mirror), every other probe is
 *       its ListVMsMirror instead: "mirror <t0> <ns> <entries>"
 *   bus-bench call       --address A --method ListVMs|GetManagedObjects --count N
 *                        [--dest NAME --path P --interface I]
 *       "call <ns> <entries>"
 *   bus-bench emit       --address A --count N [--gap-us U]
 *       The floor of the daemon's signals: sd_bus_emit_signal() of a signal
 *       like VMNew ("so": a VM id and its object path) on this connection,
 *       timed around the call (sd-bus marshals and writes it there, waking
 *       dbus-daemon), U µs apart (default 300: dbus-daemon sleeps again).
 *       "emit <ns>"
 *   bus-bench echo-serve --address A --list-bytes N --objects-bytes M [--mirror]
 *       The floor of the D-Bus reads: answers org.pmufilterd1.BenchEcho
 *       ListVMs and GetManagedObjects at /bench with one byte array of N
 *       (M) bytes, as large as pmufilterd's reply: the same bytes through the
 *       same bus, with nothing to walk or marshal behind them.  With
 *       --mirror, also ListVMsMirror: pmufilterd's own ListVMs entries
 *       (asked once, at start) built again field by field as the daemon
 *       builds them, "a(ssssuo)": the same reply from a service that has
 *       them ready, so what sd-bus and dbus-daemon cost for its 6 fields per
 *       VM is apart from the daemon's walk; and GetManagedObjectsMirror,
 *       the daemon's GetManagedObjects reply (asked once) copied field by
 *       field with sd_bus_message_copy().  Prints "serving <unique name>";
 *       stops on SIGTERM.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "bench.h"

#define NAME "org.pmufilterd1"
#define PATH "/org/pmufilterd1"
#define MANAGER "org.pmufilterd1.Manager"
#define OBJECT_MANAGER "org.freedesktop.DBus.ObjectManager"

static struct {
        const char *address, *vm, *profiles, *profile, *method;
        const char *dest, *path, *interface, *mirror_dest;
        unsigned count, probe_ms, gap_us;
        bool mirror;
} arg = { .count = 10, .probe_ms = 20, .gap_us = 300, .dest = NAME, .path = PATH };

static sd_bus *connect_bus(void) {
        sd_bus *bus = NULL;
        int r = sd_bus_new(&bus);

        if (r >= 0)
                r = sd_bus_set_address(bus, arg.address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, true);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                fprintf(stderr, "bus-bench: cannot connect to %s: %s\n", arg.address, strerror(-r));
                exit(1);
        }
        return bus;
}

static int fail(const char *what, int r, const sd_bus_error *e) {
        fprintf(stderr, "bus-bench: %s failed: %s\n", what, e && e->message ? e->message : strerror(-r));
        return 1;
}

/* Elements of the reply's first array: VMs or objects. */
static unsigned count_entries(sd_bus_message *m) {
        char type;
        const char *contents;
        unsigned n = 0;

        if (sd_bus_message_peek_type(m, &type, &contents) <= 0 || type != 'a')
                return 0;
        if (sd_bus_message_enter_container(m, 'a', contents) < 0)
                return 0;
        while (sd_bus_message_skip(m, contents) > 0)
                n++;
        return n;
}

static int run_ping(sd_bus *bus) {
        for (unsigned i = 0; i < arg.count; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                uint64_t t0 = now_ns();
                int r = sd_bus_call_method(bus, NAME, PATH, "org.freedesktop.DBus.Peer", "Ping", &e, NULL, "");

                if (r < 0)
                        return fail("Ping", r, &e);
                printf("ping %llu\n", (unsigned long long) (now_ns() - t0));
        }
        return 0;
}

static int run_set_vm(sd_bus *bus) {
        char *p = strdupa(arg.profiles), *q = strchr(p, ',');

        if (!arg.vm || !q) {
                fprintf(stderr, "bus-bench set-vm: needs --vm ID --profiles P,Q\n");
                return 2;
        }
        *q++ = 0;
        for (unsigned i = 0; i < arg.count; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                uint64_t t0 = now_ns();
                int r = sd_bus_call_method(bus, NAME, PATH, MANAGER, "SetVMProfile", &e, NULL, "ssb", arg.vm,
                                           (i & 1) ? p : q, 1);

                if (r < 0)
                        return fail("SetVMProfile", r, &e);
                printf("setvm %llu %llu\n", (unsigned long long) (now_ns() - t0), (unsigned long long) t0);
        }
        return 0;
}

static int run_emit(sd_bus *bus) {
        for (unsigned i = 0; i < arg.count; i++) {
                uint64_t t0 = now_ns();
                int r = sd_bus_emit_signal(bus, "/bench", "org.pmufilterd1.BenchEcho", "VMNew", "so", "123456-789",
                                           "/org/pmufilterd1/vm/_3123456_2d789");

                if (r < 0)
                        return fail("emitting a signal", r, NULL);
                printf("emit %llu\n", (unsigned long long) (now_ns() - t0));
                (void) sd_bus_flush(bus);
                sleep_us(arg.gap_us);
        }
        return 0;
}

static volatile bool change_done;

static void *probe_list_vms(void *userdata) {
        sd_bus *bus = connect_bus();

        for (unsigned i = 0; !change_done; i++) {
                /* With --mirror-dest, every other probe asks echo-serve's
                 * ListVMsMirror: the same reply from a bare service, under
                 * the same load. */
                bool theirs = arg.mirror_dest && (i & 1);
                sd_bus_message *reply = NULL;
                uint64_t t0 = now_ns();
                int r = theirs ? sd_bus_call_method(bus, arg.mirror_dest, "/bench", "org.pmufilterd1.BenchEcho",
                                                    "ListVMsMirror", NULL, &reply, "")
                               : sd_bus_call_method(bus, NAME, PATH, MANAGER, "ListVMs", NULL, &reply, "");
                uint64_t t1 = now_ns();

                if (r >= 0)
                        printf("%s %llu %llu %u\n", theirs ? "mirror" : "listvms", (unsigned long long) t0,
                               (unsigned long long) (t1 - t0), count_entries(reply));
                sd_bus_message_unref(reply);
                sleep_us(arg.probe_ms * 1000u);
        }
        sd_bus_flush_close_unref(bus);
        return NULL;
}

static int run_set_default(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        pthread_t probe;
        uint64_t t0, t1;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, NAME, PATH, MANAGER, "SetDefaultProfile");
        if (r >= 0)
                r = sd_bus_message_append(m, "sb", arg.profile, 1);
        if (r < 0)
                return fail("SetDefaultProfile", r, NULL);
        pthread_create(&probe, NULL, probe_list_vms, NULL);
        /* Let the probe connect first: its set-up is not the daemon's doing. */
        sleep_us(50000);
        t0 = now_ns();
        r = sd_bus_call(bus, m, 600 * 1000000ULL, &e, &reply);
        t1 = now_ns();
        change_done = true;
        pthread_join(probe, NULL);
        if (r < 0)
                return fail("SetDefaultProfile", r, &e);
        printf("setdefault %llu %llu\n", (unsigned long long) t0, (unsigned long long) t1);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return 0;
}

static int run_call(sd_bus *bus) {
        const char *iface = arg.interface ? arg.interface
                            : streq(arg.method, "GetManagedObjects") ? OBJECT_MANAGER : MANAGER;

        for (unsigned i = 0; i < arg.count; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                uint64_t t0 = now_ns(), t1;
                int r = sd_bus_call_method(bus, arg.dest, arg.path, iface, arg.method, &e, &reply, "");

                t1 = now_ns();
                if (r < 0)
                        return fail(arg.method, r, &e);
                printf("call %llu %u\n", (unsigned long long) (t1 - t0), count_entries(reply));
                sd_bus_message_unref(reply);
        }
        return 0;
}

static size_t blob_list, blob_objects;
static uint8_t *blob;

static int echo_method(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        size_t n = streq(sd_bus_message_get_member(m), "ListVMs") ? blob_list : blob_objects;
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', blob, n);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

/* pmufilterd's ListVMs entries, for ListVMsMirror. */
struct mirror_entry {
        char *id, *name, *profile, *state, *path;
        uint32_t pid;
};
static struct mirror_entry *mirror;
static size_t n_mirror;
static sd_bus_message *mirror_objects;          /* the daemon's GetManagedObjects reply */

static int mirror_load(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *id, *name, *profile, *state, *path;
        uint32_t pid;
        int r;

        r = sd_bus_call_method(bus, NAME, PATH, MANAGER, "ListVMs", &e, &reply, "");
        if (r < 0)
                return fail("ListVMs", r, &e);
        r = sd_bus_message_enter_container(reply, 'a', "(ssssuo)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssssuo)", &id, &name, &profile, &state, &pid, &path)) > 0) {
                struct mirror_entry *m = realloc(mirror, (n_mirror + 1) * sizeof(*mirror));

                if (!m)
                        return 1;
                mirror = m;
                mirror[n_mirror++] = (struct mirror_entry) { strdup(id), strdup(name), strdup(profile),
                                                             strdup(state), strdup(path), pid };
        }
        sd_bus_message_unref(reply);
        if (r < 0)
                return fail("ListVMs", r, NULL);
        r = sd_bus_call_method(bus, NAME, PATH, OBJECT_MANAGER, "GetManagedObjects", &e, &mirror_objects, "");
        return r < 0 ? fail("GetManagedObjects", r, &e) : 0;
}

/* GetManagedObjects' reply, copied field by field into a new one: sd-bus
 * marshals every object, interface and property as the daemon's does. */
static int mirror_objects_method(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_rewind(mirror_objects, true);
        if (r >= 0)
                r = sd_bus_message_copy(reply, mirror_objects, true);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

/* As pmufilterd's method_list_vms() builds it (daemon/bus/bus-manager.c). */
static int mirror_method(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssssuo)");
        for (size_t i = 0; r >= 0 && i < n_mirror; i++) {
                r = sd_bus_message_open_container(reply, 'r', "ssssuo");
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 's', mirror[i].id);
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 's', mirror[i].name);
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 's', mirror[i].profile);
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 's', mirror[i].state);
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 'u', &mirror[i].pid);
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 'o', mirror[i].path);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static const sd_bus_vtable echo_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("ListVMs", "", "ay", echo_method, 0),
        SD_BUS_METHOD("GetManagedObjects", "", "ay", echo_method, 0),
        SD_BUS_METHOD("ListVMsMirror", "", "a(ssssuo)", mirror_method, 0),
        SD_BUS_METHOD("GetManagedObjectsMirror", "", "a{oa{sa{sv}}}", mirror_objects_method, 0),
        SD_BUS_VTABLE_END
};

static int run_echo_serve(sd_bus *bus) {
        const char *unique = NULL;
        sd_event *event = NULL;
        sigset_t mask;
        int r;

        blob = calloc(1, (blob_list > blob_objects ? blob_list : blob_objects) + 1);
        if (!blob)
                return 1;
        memset(blob, 'x', blob_list > blob_objects ? blob_list : blob_objects);
        if (arg.mirror && mirror_load(bus) != 0)
                return 1;
        r = sd_bus_add_object_vtable(bus, NULL, "/bench", "org.pmufilterd1.BenchEcho", echo_vtable, NULL);
        if (r >= 0)
                r = sd_bus_get_unique_name(bus, &unique);
        if (r >= 0)
                r = sd_event_default(&event);
        if (r < 0)
                return fail("serving /bench", r, NULL);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        (void) sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        (void) sd_bus_attach_event(bus, event, 0);
        printf("serving %s\n", unique);
        fflush(stdout);
        return sd_event_loop(event) < 0;
}

int main(int argc, char *argv[]) {
        enum { ARG_ADDRESS = 0x100, ARG_COUNT, ARG_VM, ARG_PROFILES, ARG_PROFILE, ARG_PROBE, ARG_METHOD,
               ARG_DEST, ARG_PATH, ARG_INTERFACE, ARG_LIST_BYTES, ARG_OBJECTS_BYTES, ARG_GAP, ARG_MIRROR, ARG_MIRROR_DEST };
        static const struct option options[] = {
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "count", required_argument, NULL, ARG_COUNT },
                { "vm", required_argument, NULL, ARG_VM },
                { "profiles", required_argument, NULL, ARG_PROFILES },
                { "profile", required_argument, NULL, ARG_PROFILE },
                { "probe-ms", required_argument, NULL, ARG_PROBE },
                { "method", required_argument, NULL, ARG_METHOD },
                { "dest", required_argument, NULL, ARG_DEST },
                { "path", required_argument, NULL, ARG_PATH },
                { "interface", required_argument, NULL, ARG_INTERFACE },
                { "list-bytes", required_argument, NULL, ARG_LIST_BYTES },
                { "objects-bytes", required_argument, NULL, ARG_OBJECTS_BYTES },
                { "gap-us", required_argument, NULL, ARG_GAP },
                { "mirror", no_argument, NULL, ARG_MIRROR },
                { "mirror-dest", required_argument, NULL, ARG_MIRROR_DEST },
                {}
        };
        const char *mode = argc > 1 ? argv[1] : "";
        sd_bus *bus;
        int c, r;

        while ((c = getopt_long(argc - 1, argv + 1, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_ADDRESS: arg.address = optarg; break;
                case ARG_COUNT: arg.count = (unsigned) strtoul(optarg, NULL, 10); break;
                case ARG_VM: arg.vm = optarg; break;
                case ARG_PROFILES: arg.profiles = optarg; break;
                case ARG_PROFILE: arg.profile = optarg; break;
                case ARG_PROBE: arg.probe_ms = (unsigned) strtoul(optarg, NULL, 10); break;
                case ARG_METHOD: arg.method = optarg; break;
                case ARG_DEST: arg.dest = optarg; break;
                case ARG_PATH: arg.path = optarg; break;
                case ARG_INTERFACE: arg.interface = optarg; break;
                case ARG_LIST_BYTES: blob_list = strtoul(optarg, NULL, 10); break;
                case ARG_OBJECTS_BYTES: blob_objects = strtoul(optarg, NULL, 10); break;
                case ARG_GAP: arg.gap_us = (unsigned) strtoul(optarg, NULL, 10); break;
                case ARG_MIRROR: arg.mirror = true; break;
                case ARG_MIRROR_DEST: arg.mirror_dest = optarg; break;
                default: return 2;
                }
        if (!arg.address) {
                fprintf(stderr, "Usage: bus-bench ping|emit|set-vm|set-default|call|echo-serve --address A ... (see the source)\n");
                return 2;
        }
        bus = connect_bus();
        if (streq(mode, "ping"))
                r = run_ping(bus);
        else if (streq(mode, "emit"))
                r = run_emit(bus);
        else if (streq(mode, "set-vm") && arg.profiles)
                r = run_set_vm(bus);
        else if (streq(mode, "set-default") && arg.profile)
                r = run_set_default(bus);
        else if (streq(mode, "call") && arg.method)
                r = run_call(bus);
        else if (streq(mode, "echo-serve"))
                r = run_echo_serve(bus);
        else {
                fprintf(stderr, "bus-bench: unknown mode '%s' or missing option\n", mode);
                r = 2;
        }
        fflush(stdout);
        sd_bus_flush_close_unref(bus);
        return r;
}
