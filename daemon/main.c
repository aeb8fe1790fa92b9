/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * main.c — pmufilterd: options, the event loop, signals, sd_notify.
 * Start order (manager_startup()): policy (or lockdown), D-Bus, VMM
 * socket, the VMs of the last run, uevents and the /proc scan, then
 * READY=1.  docs/architecture.md describes the layers.
 */
#include <malloc.h>
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "manager.h"

static void help(void) {
        printf("pmufilterd [OPTIONS...]\n\n"
               "Host-wide KVM PMU event filter daemon: matches every VM to a policy\n"
               "profile and has its filter applied by the VMM.\n\n"
               "  -h --help            Show this help\n"
               "     --version         Show the version\n"
               "  -c --config=FILE     Read the policy from FILE only (default:\n"
               "                       " POLICY_DEFAULT_CONFIG " and " POLICY_DEFAULT_CONFIG_DIR "/*.yaml)\n"
               "     --socket=PATH     Listen for VMMs on PATH (default: settings.socket)\n"
               "     --bus-address=ADDRESS\n"
               "                       Serve D-Bus on ADDRESS instead of the system bus\n"
               "     --no-bus          Do not serve D-Bus at all\n"
               "     --state-dir=DIR   Persistent changes (default: /var/lib/pmufilterd)\n"
               "     --runtime-dir=DIR Runtime changes (default: /run/pmufilterd)\n"
               "     --metrics-file=PATH\n"
               "                       Write Prometheus metrics to PATH, for the textfile\n"
               "                       collector of prometheus-node-exporter (default: none)\n"
               "  -v --verbose         Log debug messages\n\n"
               "Signals: SIGHUP reloads the policy; SIGTERM and SIGINT stop the daemon.\n"
               "See pmufilterd(8).\n");
}

static int parse_argv(int argc, char *argv[], struct manager_options *o) {
        enum { ARG_VERSION = 0x100, ARG_SOCKET, ARG_BUS_ADDRESS, ARG_NO_BUS, ARG_STATE_DIR, ARG_RUNTIME_DIR,
               ARG_METRICS_FILE };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, 'c' },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "bus-address", required_argument, NULL, ARG_BUS_ADDRESS },
                { "no-bus", no_argument, NULL, ARG_NO_BUS },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "metrics-file", required_argument, NULL, ARG_METRICS_FILE },
                { "verbose", no_argument, NULL, 'v' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hc:v", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("pmufilterd %s\n", PACKAGE_VERSION);
                        return 0;
                case 'c':
                        o->config_path = optarg;
                        break;
                case ARG_SOCKET:
                        o->socket_path = optarg;
                        break;
                case ARG_BUS_ADDRESS:
                        o->bus_address = optarg;
                        break;
                case ARG_NO_BUS:
                        o->no_bus = true;
                        break;
                case ARG_STATE_DIR:
                        o->state_dir = optarg;
                        break;
                case ARG_RUNTIME_DIR:
                        o->runtime_dir = optarg;
                        break;
                case ARG_METRICS_FILE:
                        /* "" turns off one given before (a drop-in's ExecStart=). */
                        if (!isempty(optarg) && optarg[0] != '/') {
                                fprintf(stderr, "pmufilterd: --metrics-file needs an absolute path, not '%s'.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        o->metrics_file = isempty(optarg) ? NULL : optarg;
                        break;
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "pmufilterd: unexpected argument '%s'. See --help.\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct manager *m = userdata;

        (void) deliver_reload(&m->deliver, NULL);
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down");
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int run(const struct manager_options *o) {
        _cleanup_(fdstore_done) struct fdstore fdstore = {};
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(manager_freep) struct manager *m = NULL;
        struct rlimit rl;
        sigset_t mask;
        int r;

        /* One session socket per attached VM: take the hard limit, as
         * systemd services are expected to (the soft 1024 is for select()). */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* Socket activation and the fd store, first of all (fdstore.h). */
        r = fdstore_take_passed(&fdstore);
        if (r < 0)
                return r;
        /* Not sd_event_default(): that one checks its thread with a
         * gettid() system call on every turn of the loop (4 per VM life). */
        r = sd_event_new(&e);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = manager_new(e, o, &fdstore, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up: %m");
        r = manager_startup(m);
        if (r < 0)
                return r;

        (void) sd_event_add_signal(e, NULL, SIGHUP, on_sighup, m);
        (void) sd_event_add_signal(e, NULL, SIGTERM, on_exit_signal, m);
        (void) sd_event_add_signal(e, NULL, SIGINT, on_exit_signal, m);
        r = sd_event_set_watchdog(e, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog: %m");

        log_info("pmufilterd %s running: PMU %s, %s%s, socket %s", PACKAGE_VERSION, m->pmu.name,
                 m->kvm.filter ? "filter supported" : "NO filter support",
                 m->kvm.masked ? ", masked events" : "", deliver_socket_path(&m->deliver));
        /* The start-up's garbage (the policy's parse and compile, libpfm4's
         * tables before it was unloaded) lies free in the heap: give its
         * pages back before a long idle life (docs/benchmarks.md, idle RSS). */
        (void) malloc_trim(0);
        (void) sd_notify(false, "READY=1");

        r = sd_event_loop(e);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        struct manager_options o = {
                .state_dir = "/var/lib/pmufilterd",
                .runtime_dir = "/run/pmufilterd",
                .bus_address = getenv("DBUS_SYSTEM_BUS_ADDRESS"),
        };
        int r;

        /* A fixed threshold: buffers of 128 KiB and more (a ListVMs or
         * GetManagedObjects reply at 10,000 VMs, the records log rewritten)
         * are mapped apart and given back when freed.  glibc's default
         * raises it to the largest such buffer freed, after which they come
         * from the heap and its pages stay (docs/benchmarks.md, memory). */
        (void) mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        log_open();
        r = parse_argv(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        return run(&o) < 0 ? 1 : 0;
}
