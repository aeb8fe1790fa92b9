/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * wire.c — the transport under a client session: the SOCK_SEQPACKET
 * connection to pmufilterd (connect with a timeout, the listener's uid
 * checked, one datagram out with an optional fd, one datagram in with stray
 * fds closed), and the per-thread record behind pmufilter_last_error().
 * libc only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pmufilter-client.h"
#include "util.h"
#include "wire.h"

static _Thread_local char last_error[512];

const char *pmufilter_last_error(void) {
        return last_error;
}

int client_fail(int r, bool with_errno, const char *fmt, ...) {
        va_list ap;
        size_t l;

        assert(fmt);

        va_start(ap, fmt);
        (void) vsnprintf(last_error, sizeof(last_error), fmt, ap);
        va_end(ap);
        l = strlen(last_error);
        if (with_errno && l < sizeof(last_error)) {
                errno = -r;
                (void) snprintf(last_error + l, sizeof(last_error) - l, ": %m");
        }
        return r;
}

/* 0 when the peer of the connected sock is expected_uid, else -EPERM
 * naming path, the peer's uid and pid, and expected_uid (recorded). */
static int check_peer(int sock, const char *path, uid_t expected_uid) {
        struct ucred cred = {};
        socklen_t l = sizeof(cred);

        assert(path);

        /* The kernel's word on who called listen() on the other end, taken
         * at connect() time: the only thing a stranger cannot fake.  Any
         * user can bind a path it may write, or any abstract name, and
         * answer with a permissive filter. */
        if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &l) < 0)
                return fail_errno(-errno, "reading SO_PEERCRED of the socket to %s", path);
        if (cred.uid != expected_uid)
                return fail(-EPERM, "refusing to attach: the peer on %s is uid %u (pid %d), not pmufilterd's uid %u",
                            path, (unsigned) cred.uid, (int) cred.pid, (unsigned) expected_uid);
        return 0;
}

int wire_connect(const char *path, int timeout_ms, int *ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
        _cleanup_close_ int fd = -1;
        socklen_t salen;
        size_t l;
        int r;

        assert(path);
        assert(ret);

        l = strlen(path);
        if (l == 0 || l >= sizeof(sa.sun_path))
                return fail(-ENAMETOOLONG, "socket path '%s' is empty or longer than %zu bytes",
                            path, sizeof(sa.sun_path) - 1);
        memcpy(sa.sun_path, path, l);
        if (path[0] == '@')
                sa.sun_path[0] = 0;     /* abstract namespace */
        salen = offsetof(struct sockaddr_un, sun_path) + l + (path[0] == '@' ? 0 : 1);

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return fail_errno(-errno, "socket(AF_UNIX, SOCK_SEQPACKET)");
        /* Bounds connect() too: it blocks while a socket-activated daemon's
         * backlog is full. */
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                return fail_errno(-errno, "setsockopt(SO_SNDTIMEO) on the socket to %s", path);
        while (connect(fd, (struct sockaddr *) &sa, salen) < 0) {
                if (errno == EINTR)
                        continue;
                if (errno == EISCONN)
                        break;
                if (errno == EAGAIN || errno == EINPROGRESS)
                        return fail(-ETIMEDOUT, "connect to %s: no room in its backlog within %d ms", path, timeout_ms);
                return fail_errno(-errno, "connect to pmufilterd at %s", path);
        }
        /* Here, on every connect and re-connect, before anything (the VM fd
         * above all) is sent. */
        r = check_peer(fd, path, (uid_t) PMUFILTER_DAEMON_UID);
        if (r < 0)
                return r;
        *ret = TAKE_FD(fd);
        return 0;
}

int wire_send(int sock, const char *buf, size_t n, int pass_fd, int flags) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = n };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        assert(buf || n == 0);

        if (pass_fd >= 0) {
                struct cmsghdr *c;

                mh.msg_control = &control;
                mh.msg_controllen = sizeof(control.buf);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
        }
        while (sendmsg(sock, &mh, MSG_NOSIGNAL | flags) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

ssize_t wire_recv_once(int sock, char *buf, size_t size, int flags) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 8)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = &control, .msg_controllen = sizeof(control.buf),
        };
        ssize_t n;

        assert(buf);

        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                int fd;

                                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                safe_close(fd);
                        }
        if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                return -EBADMSG;
        return n;
}

ssize_t wire_recv(int sock, char *buf, size_t size, int flags) {
        ssize_t n;

        do
                n = wire_recv_once(sock, buf, size, flags);
        while (n == -EINTR);
        return n;
}
