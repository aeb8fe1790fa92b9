/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * echo-peer.c — the protocol's floor: a peer on a VMM socket that does no
 * work.  It answers every ATTACH with a fixed APPLY of the events given
 * (the same words, keys and sizes as pmufilterd's APPLY for that profile,
 * so the VMM applies the same filter; only VM= and SERIAL= are filled in
 * per ATTACH), closes the VM fd it was sent, and on APPLIED writes one line
 * to stderr as pmufilterd writes its record: "applied <pid>-<VMFD>".  No
 * checks, no matching, no state.  Its code shares nothing with pmufilterd.
 *
 *   echo-peer --socket PATH --events 0xc0,0x76,... [--profile NAME]
 *
 * Stops on SIGTERM or SIGINT.
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"
#include "peer.h"

#define MSG_MAX 16384
#define CONNS_MAX 4096

struct conn {
        int fd;
        pid_t pid;
        int vmfd;
};

static const char *apply_events = "", *profile = "bench";
static unsigned long long serial;
static struct conn conns[CONNS_MAX];

static void on_message(struct conn *c) {
        char buf[MSG_MAX], cbuf[CMSG_SPACE(sizeof(int) * 8)];
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                             .msg_controllen = sizeof(cbuf) };
        ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        const char *v;

        if (n < 0 && errno == EAGAIN)
                return;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); n >= 0 && h; h = CMSG_NXTHDR(&mh, h))
                if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
                        for (size_t i = 0; i < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                int fd;

                                memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
                                close(fd);
                        }
        if (n <= 0) {
                close(c->fd);
                c->fd = -1;
                return;
        }
        buf[n] = 0;
        if (strncmp(buf, "PMUFILTER/1 ATTACH", 18) == 0) {
                v = strstr(buf, "\nVMFD=");
                c->vmfd = v ? atoi(v + 6) : -1;
                n = snprintf(buf, sizeof(buf), "PMUFILTER/1 APPLY\nVM=%d-%d\nSERIAL=%llu\nPROFILE=%s\n"
                             "PMU=on\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=%s\n", (int) c->pid, c->vmfd, ++serial,
                             profile, apply_events);
                if (n > 0 && (size_t) n < sizeof(buf))
                        (void) send(c->fd, buf, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else if (strncmp(buf, "PMUFILTER/1 APPLIED", 19) == 0)
                fprintf(stderr, "applied %d-%d\n", (int) c->pid, c->vmfd);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "events", required_argument, NULL, 'e' },
                { "profile", required_argument, NULL, 'p' },
                {}
        };
        const char *path = NULL;
        struct timespec ts;
        struct epoll_event ev = { .events = EPOLLIN }, events[64];
        int c, lfd = -1, ep;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        path = optarg;
                        break;
                case 'e':
                        apply_events = optarg;
                        break;
                case 'p':
                        profile = optarg;
                        break;
                default:
                        return 2;
                }
        if (!path) {
                fprintf(stderr, "Usage: echo-peer --socket PATH --events W,W,... [--profile NAME]\n");
                return 2;
        }
        /* Serials as pmufilterd's start: the wall clock in µs (as many digits). */
        clock_gettime(CLOCK_REALTIME, &ts);
        serial = (unsigned long long) ts.tv_sec * 1000000u + (unsigned long long) ts.tv_nsec / 1000u;
        raise_nofile();
        ep = peer_start(path, &lfd);
        if (ep < 0) {
                fprintf(stderr, "echo-peer: cannot listen on %s: %m\n", path);
                return 1;
        }
        for (unsigned i = 0; i < CONNS_MAX; i++)
                conns[i].fd = -1;

        for (;;) {
                int k = epoll_wait(ep, events, 64, -1);

                for (int e = 0; e < k; e++) {
                        uint32_t i = events[e].data.u32;

                        if (i == PEER_STOP) {
                                unlink(path);
                                return 0;
                        }
                        if (i == PEER_LISTEN) {
                                struct ucred cred;
                                socklen_t l = sizeof(cred);
                                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                                unsigned j;

                                if (fd < 0)
                                        continue;
                                for (j = 0; j < CONNS_MAX && conns[j].fd >= 0; j++)
                                        ;
                                if (j == CONNS_MAX || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &l) < 0) {
                                        close(fd);
                                        continue;
                                }
                                conns[j] = (struct conn) { .fd = fd, .pid = cred.pid, .vmfd = -1 };
                                ev.data.u32 = j;
                                (void) epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                                continue;
                        }
                        on_message(&conns[i]);
                }
        }
}
