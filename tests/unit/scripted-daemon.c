/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* scripted-daemon.c — the stand-in daemon of the client tests (see the header). */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
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

/* What a hostile daemon would like a VMM to apply: a denylist of nothing,
 * with every fixed counter allowed. */
const char apply_permissive[] =
        "PMUFILTER/1 APPLY\nVM=evil\nSERIAL=1\nPROFILE=permissive\nPMU=on\nACTION=deny\n"
        "FLAGS=0\nFIXED=0xffffffff\nEVENTS=\n";

_printf_(2, 3)
static _Noreturn void impostor_die(int report_fd, const char *fmt, ...) {
        char buf[256];
        va_list ap;
        int n;

        buf[0] = 'F';
        va_start(ap, fmt);
        n = vsnprintf(buf + 1, sizeof(buf) - 1, fmt, ap);
        va_end(ap);
        if (n > 0)
                (void) !write(report_fd, buf, strlen(buf));
        _exit(1);
}

/* One connection, until the client hangs up or goes quiet. */
static void impostor_serve(int conn, struct impostor_seen *seen) {
        for (;;) {
                char buf[PROTO_MSG_MAX + 1];
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * 8)];
                } control;
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof(control.buf) };
                enum proto_verb v;
                ssize_t n;

                if (!wait_readable(conn, SCRIPT_WAIT_MS))
                        return;
                n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
                if (n <= 0)
                        return;
                seen->messages++;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                char link[64];
                                ssize_t l;
                                int fd;

                                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
                                if (seen->fds++ == 0 &&
                                    (l = readlink(link, seen->fd_kind, sizeof(seen->fd_kind) - 1)) > 0)
                                        seen->fd_kind[l] = 0;
                                safe_close(fd);
                        }
                }
                if (proto_parse_verb(buf, n, &v, NULL, 0) == 0 && v == PROTO_ATTACH) {
                        seen->attaches++;
                        (void) send(conn, apply_permissive, strlen(apply_permissive), MSG_NOSIGNAL);
                }
        }
}

static _Noreturn void impostor_main(const char *path, int stop_fd, int report_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct impostor_seen seen = {};
        socklen_t salen;
        int fd;

        /* nobody before the socket exists: the listener's credentials are
         * taken at listen() and are what every client sees. */
        if (setgroups(0, NULL) < 0 || setresgid(NOBODY_GID, NOBODY_GID, NOBODY_GID) < 0 ||
            setresuid(NOBODY_UID, NOBODY_UID, NOBODY_UID) < 0)
                impostor_die(report_fd, "cannot become uid %d: %m", NOBODY_UID);

        memcpy(sa.sun_path, path, strnlen(path, sizeof(sa.sun_path) - 1));
        salen = offsetof(struct sockaddr_un, sun_path) + strlen(path) + (path[0] == '@' ? 0 : 1);
        if (path[0] == '@')
                sa.sun_path[0] = 0;
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, salen) < 0 || listen(fd, 8) < 0)
                impostor_die(report_fd, "cannot listen on %s as uid %d: %m", path, NOBODY_UID);
        if (write(report_fd, "R", 1) != 1)
                _exit(1);

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = fd, .events = POLLIN },
                        { .fd = stop_fd, .events = POLLIN },
                };
                int conn;

                if (poll(p, 2, -1) < 0)
                        continue;
                /* Connections made before the stop first: the client may
                 * have connected and gone just before the test stops us. */
                if (p[0].revents) {
                        conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                        if (conn < 0)
                                continue;
                        seen.connections++;
                        impostor_serve(conn, &seen);
                        close(conn);
                        continue;
                }
                if (p[1].revents)
                        break;
        }
        (void) !write(report_fd, &seen, sizeof(seen));
        _exit(0);
}

static void impostor_reap(struct impostor *m) {
        int status;

        m->stop_fd = safe_close(m->stop_fd);
        m->report_fd = safe_close(m->report_fd);
        if (m->pid > 0)
                (void) waitpid(m->pid, &status, 0);
        m->pid = 0;
        if (m->dir[0]) {
                unlink(m->path);
                rmdir(m->dir);
                m->dir[0] = 0;
        }
}

void impostor_start(struct impostor *m, const char *path) {
        int stop[2], report[2];
        char c, why[256];
        ssize_t n;

        *m = (struct impostor) { .stop_fd = -1, .report_fd = -1 };
        if (path)
                snprintf(m->path, sizeof(m->path), "%s", path);
        else {
                /* nobody's own directory: what any user can make of /tmp. */
                strcpy(m->dir, "/tmp/test-client-impostor.XXXXXX");
                assert_non_null(mkdtemp(m->dir));
                assert_int_equal(chown(m->dir, NOBODY_UID, NOBODY_GID), 0);
                snprintf(m->path, sizeof(m->path), "%s/vmm.sock", m->dir);
        }
        assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
        assert_int_equal(pipe2(report, O_CLOEXEC), 0);
        fflush(NULL);
        m->pid = fork();
        assert_true(m->pid >= 0);
        if (m->pid == 0) {
                close(stop[1]);
                close(report[0]);
                impostor_main(m->path, stop[0], report[1]);
        }
        close(stop[0]);
        close(report[1]);
        m->stop_fd = stop[1];
        m->report_fd = report[0];

        n = read(m->report_fd, &c, 1);
        if (n == 1 && c == 'R')
                return;
        n = n == 1 ? read(m->report_fd, why, sizeof(why) - 1) : 0;
        why[n > 0 ? n : 0] = 0;
        impostor_reap(m);
        fail_msg("impostor: %s", n > 0 ? why : "exited before listening");
}

void impostor_stop(struct impostor *m) {
        ssize_t n;

        /* Closing stop_fd tells the child to report. */
        m->stop_fd = safe_close(m->stop_fd);
        n = read(m->report_fd, &m->seen, sizeof(m->seen));
        impostor_reap(m);
        if (n != (ssize_t) sizeof(m->seen))
                fail_msg("impostor: no report of what it received");
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
