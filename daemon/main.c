/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * main.c — pmufilterd: options, the event loop, signals, sd_notify.
 * Start order: policy (or lockdown), VMM socket, uevents and the /proc scan,
 * then READY=1.
 */
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "bus.h"
#include "changes.h"
#include "log.h"
#include "persist.h"
#include "manager.h"
#include "session.h"
#include "watch.h"

static const char *arg_config;
static const char *arg_socket;
static const char *arg_bus_address;
static bool arg_no_bus;
static const char *arg_state_dir = "/var/lib/pmufilterd";
static const char *arg_runtime_dir = "/run/pmufilterd";

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
               "  -v --verbose         Log debug messages\n\n"
               "Signals: SIGHUP reloads the policy; SIGTERM and SIGINT stop the daemon.\n"
               "See pmufilterd(8).\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_SOCKET, ARG_BUS_ADDRESS, ARG_NO_BUS, ARG_STATE_DIR, ARG_RUNTIME_DIR };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, 'c' },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "bus-address", required_argument, NULL, ARG_BUS_ADDRESS },
                { "no-bus", no_argument, NULL, ARG_NO_BUS },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
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
                        arg_config = optarg;
                        break;
                case ARG_SOCKET:
                        arg_socket = optarg;
                        break;
                case ARG_BUS_ADDRESS:
                        arg_bus_address = optarg;
                        break;
                case ARG_NO_BUS:
                        arg_no_bus = true;
                        break;
                case ARG_STATE_DIR:
                        arg_state_dir = optarg;
                        break;
                case ARG_RUNTIME_DIR:
                        arg_runtime_dir = optarg;
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
        (void) manager_reload(userdata, NULL);
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down");
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

/* Socket activation and the fd store, with their names, taken once and
 * first of all: sd_listen_fds() refuses numbers that are not open (EBADF),
 * which it can tell only before the event loop's own fds may take them. */
static int take_listen_fds(int **ret_fds, char ***ret_names) {
        char **names = NULL;
        int *fds, n;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return log_error_errno(n, "Failed to take the fds passed by systemd: %m");
        fds = calloc(n + 1, sizeof(int));
        if (!fds) {
                strv_free(names);
                return log_error_errno(ENOMEM, "Failed to take the fds passed by systemd: %m");
        }
        for (int i = 0; i < n; i++)
                fds[i] = SD_LISTEN_FDS_START + i;
        *ret_fds = fds;
        *ret_names = names;
        return n;
}

static int run(void) {
        _cleanup_free_ int *listen_fds = NULL;
        _cleanup_strv_free_ char **listen_names = NULL;
        int n_listen_fds;
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(manager_freep) struct manager *m = NULL;
        sigset_t mask;
        int r;

        /* One session socket per attached VM: take the hard limit, as
         * systemd services are expected to (the soft 1024 is for select()). */
        struct rlimit rl;
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

        n_listen_fds = take_listen_fds(&listen_fds, &listen_names);
        if (n_listen_fds < 0)
                return n_listen_fds;
        r = sd_event_default(&e);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = manager_new(e, arg_config, arg_socket, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up: %m");
        if (free_and_strdup(&m->state_dir, arg_state_dir) < 0 ||
            free_and_strdup(&m->runtime_dir, arg_runtime_dir) < 0 ||
            free_and_strdup(&m->bus_address, arg_bus_address ? arg_bus_address : getenv("DBUS_SYSTEM_BUS_ADDRESS")) < 0)
                return log_error_errno(ENOMEM, "Failed to set up: %m");
        m->listen_fds = TAKE_PTR(listen_fds);
        m->listen_names = TAKE_PTR(listen_names);
        m->n_listen_fds = (size_t) n_listen_fds;
        r = manager_load_policy(m);
        if (r < 0)
                return r;
        changes_load(m);
        if (!arg_no_bus) {
                r = bus_start(m);
                if (r < 0)
                        return r;
        }
        r = session_server_start(m);
        if (r < 0)
                return r;
        r = persist_restore(m);
        if (r < 0)
                return r;
        r = watch_start(m);
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
                 m->kvm.masked ? ", masked events" : "", manager_socket_path(m));
        (void) sd_notify(false, "READY=1");
        manager_notify_status(m);

        r = sd_event_loop(e);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        int r;

        log_open();
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        return run() < 0 ? 1 : 0;
}
