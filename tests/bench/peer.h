/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * peer.h — what the bench's stand-ins for pmufilterd (echo-peer,
 * life-floor) share: the VMM socket they listen on and the epoll loop's
 * start, with SIGTERM and SIGINT as an fd that ends it.  No code of
 * pmufilterd's.
 */
#pragma once

#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define PEER_LISTEN UINT32_MAX          /* epoll data of the listening socket */
#define PEER_STOP (UINT32_MAX - 1)      /* ... of the stop signals' fd */

static inline int peer_listen_on(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
                return -1;
        strcpy(sa.sun_path, path);
        (void) unlink(path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, SOMAXCONN) < 0)
                return -1;
        return fd;
}

/* An epoll fd watching a socket listening on path (PEER_LISTEN) and the
 * stop signals (PEER_STOP); *ret_listen: the socket.  -1 on failure. */
static inline int peer_start(const char *path, int *ret_listen) {
        struct epoll_event ev = { .events = EPOLLIN };
        sigset_t mask;
        int sfd, lfd, ep;

        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        lfd = peer_listen_on(path);
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (sfd < 0 || lfd < 0 || ep < 0)
                return -1;
        ev.data.u32 = PEER_LISTEN;
        (void) epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
        ev.data.u32 = PEER_STOP;
        (void) epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
        *ret_listen = lfd;
        return ep;
}
