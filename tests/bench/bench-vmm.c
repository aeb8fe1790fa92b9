/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-vmm.c — the measuring VMM of the benchmarks.  It owns the timed
 * side of these figures, every timestamp CLOCK_MONOTONIC ns, one line each:
 *
 *   bench-vmm attach --series KIND:PATH [--series KIND:PATH ...] --count N
 *                    [--label K=V] [--gap-us U] [--settle-us S] [--own N --own-socket PATH]
 *      N samples per series: create a VM (not timed), then t0, then the
 *      whole attach (connect, ATTACH with the fd, APPLY, the VMM's own
 *      KVM_SET_PMU_EVENT_FILTER, APPLIED sent), then t1; end the session,
 *      close the VM, wait U µs.  KIND is "min" (min-client.h: the minimal
 *      client of the protocol, no library) or "lib" (pmufilter_attach() of
 *      libpmufilter-client).  The series take turns sample by sample, in
 *      every order in turn (A B C, B C A, C A B, C B A, ...), so that all
 *      share the host's load and none always goes first.  --socket PATH is
 *      --series lib:PATH.  --own N first attaches N VMs of this process
 *      to PATH with the minimal client and keeps them attached throughout:
 *      the measuring VMM is one with many VMs of its own.  --settle-us S
 *      waits S µs between creating the VM and t0: the peer has handled the
 *      VM's create uevent before the ATTACH comes (a VMM that attaches at
 *      once, as the library and the shim do, does not wait).
 *      "held <n>", then "attach <series index> <pid>-<vm fd> <t0> <t1> <rc>",
 *      and for the minimal client "steps <series index> <pid>-<vm fd> <sent>
 *      <received> <applied>": ns after t0 at which the ATTACH was sent, the
 *      APPLY received and the VMM's ioctl done.
 *
 *   bench-vmm life --socket PATH --count N [--gap-us U] [--alive-us A]
 *      N whole VM lives with the minimal client, one at a time: create the
 *      VM, attach it, keep it A µs (default 3000: time for the daemon to
 *      write its record and say it on the bus, as for any VM that runs),
 *      end the session (as the protocol asks, before the VM goes), close
 *      the VM, wait U µs.  What the daemon does for one VM from
 *      its create uevent to its destroy uevent.  "life <pid>-<fd> <t0> <t1>"
 *      around each life, "done" at the end.
 *
 *   bench-vmm create --count N [--gap-us U] [--hold] [--wait-go]
 *      Create N VMs without attaching: "create <pid>-<fd> <t0> <t1>" around
 *      KVM_CREATE_VM.  Without --hold each VM is closed U µs after its
 *      creation and the next one created U µs later; with --hold all stay
 *      open until stdin closes.  --wait-go waits for a line on stdin first,
 *      so several processes start a burst together.
 *
 *   bench-vmm rtt --count N --size S
 *      The protocol's round trip with nothing else in it: a SOCK_SEQPACKET
 *      socketpair to a child, S bytes there, an APPLIED-sized answer back.
 *      "rtt <ns>"
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "min-client.h"
#include "pmufilter-client.h"

#define SERIES_MAX 4

enum client_kind { CLIENT_MIN, CLIENT_MIN_CHECKED, CLIENT_LIB };

static struct {
        const char *sockets[SERIES_MAX];
        enum client_kind kinds[SERIES_MAX];
        unsigned n_series;
        unsigned count;
        const char *labels[2];
        unsigned gap_us;
        unsigned size;
        unsigned hold_n;
        unsigned alive_us;
        unsigned settle_us;
        const char *hold_socket;
        bool hold;
        bool wait_go;
} arg = { .count = 100, .gap_us = 2000, .size = 128, .alive_us = 3000 };

static int attach_one(unsigned series, unsigned i, int kvm) {
        struct pmufilter_attach_args a = PMUFILTER_ATTACH_ARGS_INIT;
        struct pmufilter_session *s = NULL;
        char name[64];
        uint64_t t0, t1;
        int vm, sock = -1, r;

        vm = ioctl(kvm, KVM_CREATE_VM, 0);
        if (vm < 0) {
                fprintf(stderr, "bench-vmm: KVM_CREATE_VM: %m\n");
                return -errno;
        }
        snprintf(name, sizeof(name), "bench-%d-%u", (int) getpid(), i);
        if (arg.settle_us > 0)
                sleep_us(arg.settle_us);
        if (arg.kinds[series] == CLIENT_LIB) {
                a.socket_path = arg.sockets[series];
                a.name = name;
                a.labels = arg.labels[0] ? arg.labels : NULL;
                a.timeout_ms = 10000;

                t0 = now_ns();
                r = pmufilter_attach(vm, &a, &s);
                t1 = now_ns();
        } else {
                t0 = now_ns();
                r = min_attach_checked(vm, arg.sockets[series], name, arg.labels[0],
                                       arg.kinds[series] == CLIENT_MIN_CHECKED, &sock);
                t1 = now_ns();
        }

        printf("attach %u %d-%d %llu %llu %d\n", series, (int) getpid(), vm, (unsigned long long) t0,
               (unsigned long long) t1, r);
        if (arg.kinds[series] != CLIENT_LIB && r >= 0)
                printf("steps %u %d-%d %llu %llu %llu\n", series, (int) getpid(), vm,
                       (unsigned long long) (min_steps.sent - t0), (unsigned long long) (min_steps.received - t0),
                       (unsigned long long) (min_steps.applied - t0));
        if (r < 0)
                fprintf(stderr, "bench-vmm: attach to %s: %s\n", arg.sockets[series],
                        arg.kinds[series] == CLIENT_LIB ? pmufilter_last_error() : strerror(-r));
        pmufilter_session_free(s);
        if (sock >= 0)
                close(sock);
        close(vm);
        sleep_us(arg.gap_us);
        return r;
}

/* The VMs this process holds attached meanwhile (--own). */
static int hold_own(int kvm, int **ret_fds) {
        int *fds = calloc(2 * (size_t) arg.hold_n + 1, sizeof(int));
        char name[64];

        if (!fds)
                return -ENOMEM;
        for (unsigned i = 0; i < arg.hold_n; i++) {
                int r;

                fds[2 * i] = ioctl(kvm, KVM_CREATE_VM, 0);
                if (fds[2 * i] < 0)
                        return -errno;
                snprintf(name, sizeof(name), "own-%d-%u", (int) getpid(), i);
                r = min_attach(fds[2 * i], arg.hold_socket, name, NULL, &fds[2 * i + 1]);
                if (r < 0) {
                        fprintf(stderr, "bench-vmm: holding VM %u of %u: %s\n", i, arg.hold_n, strerror(-r));
                        return r;
                }
        }
        printf("held %u\n", arg.hold_n);
        fflush(stdout);
        *ret_fds = fds;
        return 0;
}

static int run_attach(void) {
        int kvm = open_kvm(), failed = 0, *held = NULL;
        unsigned order[SERIES_MAX], n = arg.n_series;

        if (n == 0) {
                fprintf(stderr, "bench-vmm attach: --series (or --socket) is required\n");
                return 2;
        }
        if (arg.hold_n > 0 && (!arg.hold_socket || hold_own(kvm, &held) < 0))
                return 1;
        for (unsigned i = 0; i < arg.count; i++) {
                /* Rotated by i, reversed every other round: for up to three
                 * series every order comes in turn. */
                for (unsigned k = 0; k < n; k++)
                        order[k] = (k + i) % n;
                if ((i / n) & 1)
                        for (unsigned k = 0; k < n / 2; k++) {
                                unsigned t = order[k];

                                order[k] = order[n - 1 - k];
                                order[n - 1 - k] = t;
                        }
                for (unsigned k = 0; k < n; k++)
                        if (attach_one(order[k], i, kvm) < 0)
                                failed++;
        }
        fflush(stdout);
        for (unsigned i = 0; held && i < arg.hold_n; i++) {
                close(held[2 * i + 1]);
                close(held[2 * i]);
        }
        free(held);
        close(kvm);
        return failed ? 1 : 0;
}

static int run_life(void) {
        int kvm = open_kvm(), failed = 0;
        char name[64];

        if (arg.n_series != 1) {
                fprintf(stderr, "bench-vmm life: one --socket\n");
                return 2;
        }
        for (unsigned i = 0; i < arg.count; i++) {
                uint64_t t0 = now_ns(), t1;
                int vm = ioctl(kvm, KVM_CREATE_VM, 0), sock = -1, r;

                if (vm < 0) {
                        fprintf(stderr, "bench-vmm: KVM_CREATE_VM: %m\n");
                        return 1;
                }
                snprintf(name, sizeof(name), "life-%d-%u", (int) getpid(), i);
                r = min_attach(vm, arg.sockets[0], name, arg.labels[0], &sock);
                if (r < 0) {
                        fprintf(stderr, "bench-vmm: life %u: attach: %s\n", i, strerror(-r));
                        failed++;
                }
                sleep_us(arg.alive_us);
                if (sock >= 0)
                        close(sock);
                close(vm);
                t1 = now_ns();
                printf("life %d-%d %llu %llu\n", (int) getpid(), vm, (unsigned long long) t0,
                       (unsigned long long) t1);
                sleep_us(arg.gap_us);
        }
        printf("done\n");
        fflush(stdout);
        close(kvm);
        return failed ? 1 : 0;
}

static int run_create(void) {
        int kvm = open_kvm();
        int *fds = calloc(arg.count, sizeof(int));
        char line[64];

        if (!fds)
                return 1;
        if (arg.wait_go) {
                printf("waiting\n");
                fflush(stdout);
                if (!fgets(line, sizeof(line), stdin))
                        return 1;
        }
        for (unsigned i = 0; i < arg.count; i++) {
                uint64_t t0 = now_ns(), t1;

                fds[i] = ioctl(kvm, KVM_CREATE_VM, 0);
                t1 = now_ns();
                if (fds[i] < 0) {
                        fprintf(stderr, "bench-vmm: KVM_CREATE_VM #%u: %m\n", i);
                        return 1;
                }
                printf("create %d-%d %llu %llu\n", (int) getpid(), fds[i], (unsigned long long) t0,
                       (unsigned long long) t1);
                if (!arg.hold) {
                        sleep_us(arg.gap_us);
                        close(fds[i]);
                        sleep_us(arg.gap_us);
                }
        }
        printf("done\n");
        fflush(stdout);
        if (arg.hold)
                while (fgets(line, sizeof(line), stdin))
                        ;
        for (unsigned i = 0; arg.hold && i < arg.count; i++)
                close(fds[i]);
        free(fds);
        close(kvm);
        return 0;
}

static int run_rtt(void) {
        char *buf = calloc(1, arg.size + 1);
        int sv[2];
        pid_t child;

        if (!buf || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return 1;
        memset(buf, 'x', arg.size);
        child = fork();
        if (child < 0)
                return 1;
        if (child == 0) {
                static const char answer[] = "PMUFILTER/1 APPLIED\nSERIAL=123456\nERRNO=0\n";

                close(sv[0]);
                while (recv(sv[1], buf, arg.size + 1, 0) > 0)
                        if (send(sv[1], answer, sizeof(answer) - 1, MSG_NOSIGNAL) < 0)
                                break;
                _exit(0);
        }
        close(sv[1]);
        for (unsigned i = 0; i < arg.count; i++) {
                uint64_t t0 = now_ns();

                if (send(sv[0], buf, arg.size, MSG_NOSIGNAL) < 0 || recv(sv[0], buf, arg.size + 1, 0) <= 0)
                        return 1;
                printf("rtt %llu\n", (unsigned long long) (now_ns() - t0));
        }
        close(sv[0]);
        (void) waitpid(child, NULL, 0);
        free(buf);
        fflush(stdout);
        return 0;
}

static int parse_args(int argc, char *argv[]) {
        enum { ARG_SOCKET = 0x100, ARG_SERIES, ARG_COUNT, ARG_LABEL, ARG_GAP, ARG_SIZE, ARG_HOLD, ARG_WAIT_GO,
               ARG_HOLD_SOCKET, ARG_OWN, ARG_ALIVE, ARG_SETTLE };
        static const struct option options[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "series", required_argument, NULL, ARG_SERIES },
                { "own-socket", required_argument, NULL, ARG_HOLD_SOCKET },
                { "count", required_argument, NULL, ARG_COUNT },
                { "label", required_argument, NULL, ARG_LABEL },
                { "gap-us", required_argument, NULL, ARG_GAP },
                { "size", required_argument, NULL, ARG_SIZE },
                { "hold", no_argument, NULL, ARG_HOLD },
                { "own", required_argument, NULL, ARG_OWN },
                { "alive-us", required_argument, NULL, ARG_ALIVE },
                { "settle-us", required_argument, NULL, ARG_SETTLE },
                { "wait-go", no_argument, NULL, ARG_WAIT_GO },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_SOCKET:
                case ARG_SERIES: {
                        enum client_kind kind = CLIENT_LIB;
                        const char *path = optarg;

                        if (arg.n_series == SERIES_MAX) {
                                fprintf(stderr, "bench-vmm: at most %d series\n", SERIES_MAX);
                                return -EINVAL;
                        }
                        if (c == ARG_SERIES) {
                                if (strncmp(optarg, "min:", 4) == 0)
                                        kind = CLIENT_MIN;
                                else if (strncmp(optarg, "minchk:", 7) == 0)
                                        kind = CLIENT_MIN_CHECKED;
                                else if (strncmp(optarg, "lib:", 4) != 0) {
                                        fprintf(stderr, "bench-vmm: --series min:PATH, minchk:PATH or lib:PATH\n");
                                        return -EINVAL;
                                }
                                path = strchr(optarg, ':') + 1;
                        }
                        arg.kinds[arg.n_series] = kind;
                        arg.sockets[arg.n_series++] = path;
                        break;
                }
                case ARG_HOLD_SOCKET:
                        arg.hold_socket = optarg;
                        break;
                case ARG_COUNT:
                        arg.count = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_LABEL:
                        arg.labels[0] = optarg;
                        break;
                case ARG_GAP:
                        arg.gap_us = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_SIZE:
                        arg.size = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_HOLD:
                        arg.hold = true;
                        break;
                case ARG_ALIVE:
                        arg.alive_us = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_SETTLE:
                        arg.settle_us = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_OWN:
                        arg.hold_n = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_WAIT_GO:
                        arg.wait_go = true;
                        break;
                default:
                        return -EINVAL;
                }
        if (arg.count == 0 || arg.size == 0) {
                fprintf(stderr, "bench-vmm: --count and --size must be positive\n");
                return -EINVAL;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        const char *mode = argc > 1 ? argv[1] : "";

        if (argc < 2 || parse_args(argc - 1, argv + 1) < 0) {
                fprintf(stderr, "Usage: bench-vmm attach|life|create|rtt [OPTIONS] (see the source's header)\n");
                return 2;
        }
        raise_nofile();
        signal(SIGPIPE, SIG_IGN);
        if (strcmp(mode, "attach") == 0)
                return run_attach();
        if (strcmp(mode, "life") == 0)
                return run_life();
        if (strcmp(mode, "create") == 0)
                return run_create();
        if (strcmp(mode, "rtt") == 0)
                return run_rtt();
        fprintf(stderr, "bench-vmm: unknown mode '%s': expected attach, life, create or rtt\n", mode);
        return 2;
}
