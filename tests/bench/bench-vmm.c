/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-vmm.c — the measuring VMM of the benchmarks.  It owns the timed
 * side of three figures, every timestamp CLOCK_MONOTONIC ns, one line each:
 *
 *   bench-vmm attach --socket A [--socket B] --count N [--label K=V] [--gap-us U]
 *      N times per socket: create a VM (not timed), then t0, then
 *      pmufilter_attach() (connect, ATTACH with the fd, APPLY, the VMM's own
 *      KVM_SET_PMU_EVENT_FILTER, APPLIED), then t1; free the session, close
 *      the VM, wait U µs.  The sockets alternate sample by sample (A B, B A,
 *      ...), so the daemon and the echo peer share the host's load.
 *      "attach <socket index> <pid>-<vm fd> <t0> <t1> <rc>"
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
#include "pmufilter-client.h"

#define SOCKETS_MAX 2

static struct {
        const char *sockets[SOCKETS_MAX];
        unsigned n_sockets;
        unsigned count;
        const char *labels[2];
        unsigned gap_us;
        unsigned size;
        bool hold;
        bool wait_go;
} arg = { .count = 100, .gap_us = 2000, .size = 128 };

static int attach_one(unsigned sock, unsigned i, int kvm) {
        struct pmufilter_attach_args a = PMUFILTER_ATTACH_ARGS_INIT;
        struct pmufilter_session *s = NULL;
        char name[64];
        uint64_t t0, t1;
        int vm, r;

        vm = ioctl(kvm, KVM_CREATE_VM, 0);
        if (vm < 0) {
                fprintf(stderr, "bench-vmm: KVM_CREATE_VM: %m\n");
                return -errno;
        }
        snprintf(name, sizeof(name), "bench-%d-%u", (int) getpid(), i);
        a.socket_path = arg.sockets[sock];
        a.name = name;
        a.labels = arg.labels[0] ? arg.labels : NULL;
        a.timeout_ms = 10000;

        t0 = now_ns();
        r = pmufilter_attach(vm, &a, &s);
        t1 = now_ns();

        printf("attach %u %d-%d %llu %llu %d\n", sock, (int) getpid(), vm, (unsigned long long) t0,
               (unsigned long long) t1, r);
        if (r < 0)
                fprintf(stderr, "bench-vmm: attach to %s: %s\n", arg.sockets[sock], pmufilter_last_error());
        pmufilter_session_free(s);
        close(vm);
        sleep_us(arg.gap_us);
        return r;
}

static int run_attach(void) {
        int kvm = open_kvm(), failed = 0;

        if (arg.n_sockets == 0) {
                fprintf(stderr, "bench-vmm attach: --socket is required\n");
                return 2;
        }
        for (unsigned i = 0; i < arg.count; i++)
                for (unsigned k = 0; k < arg.n_sockets; k++) {
                        /* A B, then B A: neither always goes first. */
                        unsigned sock = (i & 1) ? arg.n_sockets - 1 - k : k;

                        if (attach_one(sock, i, kvm) < 0)
                                failed++;
                }
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
        enum { ARG_SOCKET = 0x100, ARG_COUNT, ARG_LABEL, ARG_GAP, ARG_SIZE, ARG_HOLD, ARG_WAIT_GO };
        static const struct option options[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "count", required_argument, NULL, ARG_COUNT },
                { "label", required_argument, NULL, ARG_LABEL },
                { "gap-us", required_argument, NULL, ARG_GAP },
                { "size", required_argument, NULL, ARG_SIZE },
                { "hold", no_argument, NULL, ARG_HOLD },
                { "wait-go", no_argument, NULL, ARG_WAIT_GO },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_SOCKET:
                        if (arg.n_sockets == SOCKETS_MAX) {
                                fprintf(stderr, "bench-vmm: at most %d --socket\n", SOCKETS_MAX);
                                return -EINVAL;
                        }
                        arg.sockets[arg.n_sockets++] = optarg;
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
                fprintf(stderr, "Usage: bench-vmm attach|create|rtt [OPTIONS] (see the source's header)\n");
                return 2;
        }
        raise_nofile();
        signal(SIGPIPE, SIG_IGN);
        if (strcmp(mode, "attach") == 0)
                return run_attach();
        if (strcmp(mode, "create") == 0)
                return run_create();
        if (strcmp(mode, "rtt") == 0)
                return run_rtt();
        fprintf(stderr, "bench-vmm: unknown mode '%s': expected attach, create or rtt\n", mode);
        return 2;
}
