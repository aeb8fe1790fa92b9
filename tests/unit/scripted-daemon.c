/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* scripted-daemon.c — the stand-in daemon of the client tests (see the header). */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/kvm.h>

#include "scripted-daemon.h"

const char apply_ok[] =
        "PMUFILTER/1 APPLY\nVM=vm-1\nSERIAL=7\nPROFILE=tenant\nPMU=on\nACTION=allow\n"
        "FLAGS=0\nFIXED=0x3\nEVENTS=0xc0,0x3c\n";

void d_fail(struct daemon *d, const char *fmt, ...) {
        va_list ap;

        if (d->failure[0])
                return;
        va_start(ap, fmt);
        vsnprintf(d->failure, sizeof(d->failure), fmt, ap);
        va_end(ap);
}

bool wait_readable(int fd, int ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        return poll(&p, 1, ms) > 0;
}

void d_listen(struct daemon *d) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        strcpy(sa.sun_path, d->path);
        d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(d->listen_fd >= 0);
        assert_int_equal(bind(d->listen_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(d->listen_fd, 8), 0);
}

int d_accept(struct daemon *d) {
        int fd;

        if (!wait_readable(d->listen_fd, SCRIPT_WAIT_MS)) {
                d_fail(d, "no connection within %d ms", SCRIPT_WAIT_MS);
                return -1;
        }
        fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                d_fail(d, "accept: %m");
        return fd;
}

/* One datagram; *ret_fd gets a passed fd (or -1).  0: hang-up; -1: failure. */
ssize_t d_recv(struct daemon *d, int conn, char *buf, size_t size, int *ret_fd) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control.buf) };
        struct cmsghdr *c;
        ssize_t n;

        *ret_fd = -1;
        if (!wait_readable(conn, SCRIPT_WAIT_MS)) {
                d_fail(d, "nothing received within %d ms", SCRIPT_WAIT_MS);
                return -1;
        }
        n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0) {
                d_fail(d, "recvmsg: %m");
                return -1;
        }
        buf[n] = 0;
        c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_type == SCM_RIGHTS)
                memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
        return n;
}

void d_send(struct daemon *d, int conn, const char *msg) {
        if (send(conn, msg, strlen(msg), MSG_NOSIGNAL) < 0)
                d_fail(d, "send: %m");
}

/* Receive ATTACH with its fd; note what the fd is, then close it as the
 * real daemon does. */
bool d_expect_attach(struct daemon *d, int conn) {
        char buf[PROTO_MSG_MAX + 1], reason[PROTO_REASON_MAX], link[64];
        unsigned i = d->n_attach;
        ssize_t n, l;
        int fd;

        n = d_recv(d, conn, buf, sizeof(buf), &fd);
        if (n <= 0 || i >= ELEMENTSOF(d->attach))
                return d_fail(d, "no ATTACH"), false;
        if (proto_parse_attach(buf, n, &d->attach[i], reason, sizeof(reason)) < 0) {
                safe_close(fd);
                return d_fail(d, "bad ATTACH: %s", reason), false;
        }
        d->n_attach++;
        if (fd < 0)
                return d_fail(d, "ATTACH without an fd"), false;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        l = readlink(link, d->fd_kind[i], sizeof(d->fd_kind[i]) - 1);
        if (l > 0)
                d->fd_kind[i][l] = 0;
        safe_close(fd);
        return true;
}

bool d_expect_applied(struct daemon *d, int conn) {
        char buf[PROTO_MSG_MAX + 1], reason[PROTO_REASON_MAX];
        ssize_t n;
        int fd;

        n = d_recv(d, conn, buf, sizeof(buf), &fd);
        safe_close(fd);
        if (n <= 0 || d->n_applied >= ELEMENTSOF(d->applied))
                return d_fail(d, "no APPLIED"), false;
        if (proto_parse_applied(buf, n, &d->applied[d->n_applied], reason, sizeof(reason)) < 0)
                return d_fail(d, "bad APPLIED: %s", reason), false;
        d->n_applied++;
        return true;
}

/* Until the client hangs up; note a DETACH on the way. */
void d_wait_close(struct daemon *d, int conn) {
        char buf[PROTO_MSG_MAX + 1];
        enum proto_verb v;
        ssize_t n;
        int fd;

        while ((n = d_recv(d, conn, buf, sizeof(buf), &fd)) > 0) {
                safe_close(fd);
                if (proto_parse_verb(buf, n, &v, NULL, 0) == 0 && v == PROTO_DETACH)
                        d->detached = true;
        }
}

static void *d_main(void *p) {
        struct daemon *d = p;

        d->script(d);
        return NULL;
}

void daemon_start(struct daemon *d, void (*script)(struct daemon *d)) {
        *d = (struct daemon) { .script = script, .apply = apply_ok };
        assert_int_equal(pipe2(d->go, O_CLOEXEC), 0);
        strcpy(d->dir, "/tmp/test-client.XXXXXX");
        assert_non_null(mkdtemp(d->dir));
        snprintf(d->path, sizeof(d->path), "%s/vmm.sock", d->dir);
        d_listen(d);
        assert_int_equal(pthread_create(&d->thread, NULL, d_main, d), 0);
}

void daemon_stop(struct daemon *d) {
        assert_int_equal(pthread_join(d->thread, NULL), 0);
        safe_close(d->listen_fd);
        safe_close(d->go[0]);
        safe_close(d->go[1]);
        unlink(d->path);
        rmdir(d->dir);
        if (d->failure[0])
                fail_msg("scripted daemon: %s", d->failure);
}

/* After the test looked at what the daemon saw. */
void daemon_done(struct daemon *d) {
        for (unsigned i = 0; i < d->n_attach; i++)
                proto_attach_done(&d->attach[i]);
        d->n_attach = 0;
}

int create_vm(void) {
        int kvm, vm;

        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0)
                return -errno;
        vm = ioctl(kvm, KVM_CREATE_VM, 0);
        vm = vm < 0 ? -errno : vm;
        close(kvm);
        return vm;
}


int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
