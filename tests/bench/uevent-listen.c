/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uevent-listen.c — the floor of detection: the kernel's kvm uevent read by
 * a listener that does nothing else (a raw NETLINK_KOBJECT_UEVENT socket, a
 * receive buffer as large as root can force).  One line per message:
 *   "<ns> kvm <create|destroy> <tid>-<fd>"  the kvm misc device's events
 *   "<ns> other <ACTION>@<DEVPATH>"          anything else (idle wake-ups)
 *   "<ns> lost"                              ENOBUFS: the kernel dropped some
 * Prints "listening" once bound.  Stops on SIGTERM/SIGINT (stdout is
 * flushed after every read, so nothing is lost either way).
 */
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

int main(void) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
        int size = 128 * 1024 * 1024;
        static char buf[16384];
        int fd;

        fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                fprintf(stderr, "uevent-listen: cannot listen to kernel uevents: %m\n");
                return 1;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        printf("listening\n");
        fflush(stdout);

        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
                unsigned long long t = now_ns();
                const char *event, *path, *sys;

                if (n < 0) {
                        if (errno == ENOBUFS)
                                printf("%llu lost\n", t);
                        else if (errno != EINTR)
                                return 1;
                        fflush(stdout);
                        continue;
                }
                buf[n] = 0;
                sys = uevent_prop(buf, (size_t) n, "SUBSYSTEM=");
                event = uevent_prop(buf, (size_t) n, "EVENT=");
                path = uevent_prop(buf, (size_t) n, "STATS_PATH=/kvm/");
                if (sys && strcmp(sys, "misc") == 0 && event && strstr(buf, "@/devices/virtual/misc/kvm"))
                        printf("%llu kvm %s %s\n", t, event, path ? path : "?");
                else
                        printf("%llu other %s\n", t, buf);
                fflush(stdout);
        }
}
