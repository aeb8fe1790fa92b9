/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vm-holder.c — the "other sessions" of the benchmarks: one process holding
 * many real VMs, each with its own session to pmufilterd, answering every
 * APPLY the way a VMM must (the filter applied on its own VM fd, APPLIED
 * back), and timing its own KVM_SET_PMU_EVENT_FILTER calls, which are the
 * baseline of the runtime-change figure.
 *
 *   vm-holder --socket PATH --count N [--label K=V] [--trace]
 *
 * It speaks the protocol with lib/proto directly (not libpmufilter-client):
 * so that the ioctl alone is timed, and so that a session costs two fds
 * (the VM, the socket), not four.  Prints "ready <n> <t0> <t1>" once every
 * VM is attached, then reads commands on stdin:
 *   stats   "stats <applies> <sum of ioctl ns> <ns of the last APPLIED sent> <failed>"
 *   reset   zero the counters
 * With --trace, also "apply <ioctl ns> <in> <out>" for every APPLY answered:
 * when its handling began (the APPLY read) and when the APPLIED was sent,
 * CLOCK_MONOTONIC ns; written out with the next "stats" answer (64 KiB
 * buffered: nothing is woken per APPLY).
 * and exits, closing every VM and session, when stdin closes.
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"
#include "kvm.h"
#include "proto.h"

struct held {
        int vm;
        int sock;
};

static struct {
        const char *socket;
        unsigned count;
        struct proto_label label;
        bool have_label;
        bool trace;
} arg = { .count = 1 };

static struct {
        uint64_t applies, ioctl_ns, last_ns, failed;
} stats;

/* Apply one APPLY on vm and answer on sock; the ioctl alone is timed. */
static int answer_apply(struct held *h, const char *buf, size_t n) {
        struct proto_apply a = {};
        struct proto_applied ans = {};
        char out[128], reason[PROTO_REASON_MAX];
        uint64_t t_in = now_ns(), t0, dt;
        int r, l;

        r = proto_parse_apply(buf, n, &a, reason, sizeof(reason));
        if (r < 0) {
                fprintf(stderr, "vm-holder: malformed APPLY: %s\n", reason);
                return r;
        }
        t0 = now_ns();
        r = kvm_set_pmu_event_filter(h->vm, a.action, a.flags, a.fixed_counter_bitmap, a.events,
                                     (uint32_t) a.n_events);
        dt = now_ns() - t0;
        stats.ioctl_ns += dt;
        stats.applies++;
        if (r < 0)
                stats.failed++;
        ans = (struct proto_applied) { .serial = a.serial, .error = r < 0 ? -r : 0,
                                       .has_pmu_error = a.pmu_off, .pmu_error = 0 };
        proto_apply_done(&a);
        l = proto_format_applied(out, sizeof(out), &ans);
        if (l < 0 || send(h->sock, out, (size_t) l, MSG_NOSIGNAL) < 0)
                return -EIO;
        stats.last_ns = now_ns();
        /* After the answer, and kept in stdout's buffer until the next
         * "stats": a line per APPLY would wake the harness that reads it,
         * on a CPU the D-Bus reply's relay needs (docs/benchmarks.md). */
        if (arg.trace)
                printf("apply %llu %llu %llu\n", (unsigned long long) dt, (unsigned long long) t_in,
                       (unsigned long long) stats.last_ns);
        return 0;
}

static int attach(struct held *h, int kvm, unsigned i) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char name[64], buf[PROTO_MSG_MAX];
        struct proto_attach m = {};
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = buf };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control.buf) };
        struct cmsghdr *c;
        ssize_t n;
        int l;

        h->vm = ioctl(kvm, KVM_CREATE_VM, 0);
        if (h->vm < 0)
                return -errno;
        h->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        strncpy(sa.sun_path, arg.socket, sizeof(sa.sun_path) - 1);
        if (h->sock < 0 || connect(h->sock, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;

        snprintf(name, sizeof(name), "hold-%d-%u", (int) getpid(), i);
        m = (struct proto_attach) { .vmfd = h->vm, .name = name,
                                    .labels = arg.have_label ? &arg.label : NULL,
                                    .n_labels = arg.have_label ? 1 : 0 };
        l = proto_format_attach(buf, sizeof(buf), &m);
        if (l < 0)
                return l;
        iov.iov_len = (size_t) l;
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &h->vm, sizeof(int));
        if (sendmsg(h->sock, &mh, MSG_NOSIGNAL) < 0)
                return -errno;
        n = recv(h->sock, buf, sizeof(buf), 0);
        if (n <= 0)
                return n < 0 ? -errno : -ECONNRESET;
        if (n < 17 || memcmp(buf, "PMUFILTER/1 APPLY", 17) != 0) {
                fprintf(stderr, "vm-holder: answer to ATTACH: %.*s\n", (int) n, buf);
                return -EPROTO;
        }
        return answer_apply(h, buf, (size_t) n);
}

static int command(void) {
        char line[64];
        ssize_t n = read(STDIN_FILENO, line, sizeof(line) - 1);

        if (n <= 0)
                return 0;
        line[n] = 0;
        if (strstr(line, "stats")) {
                printf("stats %llu %llu %llu %llu\n", (unsigned long long) stats.applies,
                       (unsigned long long) stats.ioctl_ns, (unsigned long long) stats.last_ns,
                       (unsigned long long) stats.failed);
                fflush(stdout);
        }
        if (strstr(line, "reset"))
                memset(&stats, 0, sizeof(stats));
        return 1;
}

static int serve(struct held *held) {
        struct epoll_event ev = { .events = EPOLLIN }, events[64];
        char buf[PROTO_MSG_MAX];
        int ep = epoll_create1(EPOLL_CLOEXEC);

        if (ep < 0)
                return -errno;
        ev.data.u32 = UINT32_MAX;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) < 0)
                return -errno;
        for (unsigned i = 0; i < arg.count; i++) {
                ev.data.u32 = i;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, held[i].sock, &ev) < 0)
                        return -errno;
        }
        for (;;) {
                int k = epoll_wait(ep, events, 64, -1);

                if (k < 0 && errno != EINTR)
                        return -errno;
                for (int e = 0; e < k; e++) {
                        uint32_t i = events[e].data.u32;
                        ssize_t n;

                        if (i == UINT32_MAX) {
                                if (!command())
                                        return 0;
                                continue;
                        }
                        n = recv(held[i].sock, buf, sizeof(buf), MSG_DONTWAIT);
                        if (n < 0 && errno == EAGAIN)
                                continue;
                        if (n <= 0) {
                                fprintf(stderr, "vm-holder: pmufilterd closed the session of VM fd %d\n",
                                        held[i].vm);
                                (void) epoll_ctl(ep, EPOLL_CTL_DEL, held[i].sock, NULL);
                                stats.failed++;
                                continue;
                        }
                        if (n >= 17 && memcmp(buf, "PMUFILTER/1 APPLY", 17) == 0)
                                (void) answer_apply(&held[i], buf, (size_t) n);
                }
        }
}

int main(int argc, char *argv[]) {
        enum { ARG_SOCKET = 0x100, ARG_COUNT, ARG_LABEL, ARG_TRACE };
        static const struct option options[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "count", required_argument, NULL, ARG_COUNT },
                { "label", required_argument, NULL, ARG_LABEL },
                { "trace", no_argument, NULL, ARG_TRACE },
                {}
        };
        struct held *held;
        uint64_t t0, t1;
        int c, kvm, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_SOCKET:
                        arg.socket = optarg;
                        break;
                case ARG_COUNT:
                        arg.count = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_LABEL: {
                        char *eq = strchr(optarg, '=');

                        if (!eq) {
                                fprintf(stderr, "vm-holder: --label '%s': expected KEY=VALUE\n", optarg);
                                return 2;
                        }
                        *eq = 0;
                        arg.label = (struct proto_label) { .key = optarg, .value = eq + 1 };
                        arg.have_label = true;
                        break;
                }
                case ARG_TRACE:
                        arg.trace = true;
                        break;
                default:
                        return 2;
                }
        if (!arg.socket || arg.count == 0) {
                fprintf(stderr, "Usage: vm-holder --socket PATH --count N [--label K=V]\n");
                return 2;
        }
        raise_nofile();
        signal(SIGPIPE, SIG_IGN);
        if (arg.trace)
                (void) setvbuf(stdout, NULL, _IOFBF, 1 << 16);
        kvm = open_kvm();
        held = calloc(arg.count, sizeof(*held));
        if (!held)
                return 1;

        t0 = now_ns();
        for (unsigned i = 0; i < arg.count; i++) {
                r = attach(&held[i], kvm, i);
                if (r < 0) {
                        fprintf(stderr, "vm-holder: VM %u of %u: attach failed: %s\n", i, arg.count, strerror(-r));
                        return 1;
                }
        }
        t1 = now_ns();
        printf("ready %u %llu %llu\n", arg.count, (unsigned long long) t0, (unsigned long long) t1);
        fflush(stdout);

        r = serve(held);
        for (unsigned i = 0; i < arg.count; i++) {
                close(held[i].sock);
                close(held[i].vm);
        }
        free(held);
        return r < 0 ? 1 : 0;
}
