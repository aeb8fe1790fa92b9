/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-syscalls.c — the floor of each step of a VM's life in the daemon:
 * the bare system calls that step cannot do without, timed here, in the
 * bench's own process, with nothing around them.  One line per sample:
 * "<name> <ns>".
 *
 *   bench-syscalls --dir DIR --count N [--apply-sizes S,S]
 *
 *   uevent-recv      recv() of a kvm uevent (create or destroy) from a bare
 *                    NETLINK_KOBJECT_UEVENT socket, for a VM made here
 *   proc-stat        open + read + close of /proc/<pid>/stat (start time, comm)
 *   proc-fd-link     readlink() of /proc/<pid>/fd/<vm fd> (is it a VM?)
 *   kcmp             kcmp(KCMP_FILE) of two fds
 *   accept           accept4() of a connection, SO_PEERCRED, SO_PEERPIDFD
 *                    and epoll_ctl(ADD) of the new socket
 *   recv-attach      recvmsg() of an ATTACH carrying a VM fd as SCM_RIGHTS,
 *                    then close() of that fd
 *   send-apply-S     send() of an S-byte datagram on a SOCK_SEQPACKET pair,
 *                    to a reader (another process) asleep in read(): the
 *                    wake-up of the peer is part of the send's cost
 *   recv-applied     recvmsg() of an APPLIED (a reader that asks for a batch
 *                    of messages and gets fewer knows the socket empty)
 *   record-append    write() of 400 B (a record and its entry's header) to
 *                    a file in DIR (the daemon's tmpfs runtime directory)
 *                    opened O_APPEND once: what the daemon does per batch of
 *                    records, and per VM gone
 *   record-write     open(O_CREAT|O_EXCL) + write(400 B) + close + rename
 *                    of a file in DIR: what a compaction of the records log
 *                    does (with more bytes), and an open() to append again
 *   log-write        write() of a 250-byte line to a pipe whose reader sleeps
 *                    (the daemon's stderr here, read by bench-stamp; the
 *                    journal's socket under systemd)
 *   close-session    close() of a connected socket and of a pidfd
 *   wake             CPU time of one wake-up: a child sleeping in
 *                    epoll_wait() on an eventfd, woken, reading it (the
 *                    child's schedstat run time over 5 rounds of wake-ups,
 *                    one sample a round)
 */
#include <getopt.h>
#include <linux/kcmp.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

static const char *dir;
static unsigned count = 1000;

static void out(const char *name, uint64_t ns) {
        printf("%s %llu\n", name, (unsigned long long) ns);
}

static int die(const char *what) {
        fprintf(stderr, "bench-syscalls: %s: %m\n", what);
        exit(1);
}

/* recv() of the kvm uevent of a VM made (and closed) here. */
static void uevent_recv(int kvm) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
        int size = 16 * 1024 * 1024, fd;
        char buf[8192], pidkey[32];

        fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                die("netlink uevent socket");
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
        snprintf(pidkey, sizeof(pidkey), "PID=%d", (int) getpid());
        for (unsigned i = 0; i < count; i++) {
                int vm = ioctl(kvm, KVM_CREATE_VM, 0);

                if (vm < 0)
                        die("KVM_CREATE_VM");
                for (int pass = 0; pass < 2; pass++) {
                        if (pass == 1)
                                close(vm);      /* the destroy uevent is sent before close() returns */
                        for (;;) {
                                uint64_t t0 = now_ns();
                                ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                                uint64_t t1 = now_ns();
                                bool ours = false;

                                if (n < 0) {
                                        if (errno == EAGAIN)
                                                break;          /* not queued: missed, no sample */
                                        continue;
                                }
                                buf[n] = 0;
                                for (ssize_t k = 0; k < n; k += (ssize_t) strlen(buf + k) + 1)
                                        if (strcmp(buf + k, pidkey) == 0)
                                                ours = true;
                                if (ours && strstr(buf, "@/devices/virtual/misc/kvm")) {
                                        out("uevent-recv", t1 - t0);
                                        break;
                                }
                        }
                }
        }
        close(fd);
}

static void proc_reads(int kvm) {
        char path[64], link[64], buf[1024];
        pid_t pid = getpid();
        int vm = ioctl(kvm, KVM_CREATE_VM, 0), vm2 = dup(vm);

        if (vm < 0 || vm2 < 0)
                die("KVM_CREATE_VM");
        for (unsigned i = 0; i < count; i++) {
                uint64_t t0 = now_ns();
                int fd;

                snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0)
                        die("/proc/<pid>/stat");
                close(fd);
                out("proc-stat", now_ns() - t0);

                t0 = now_ns();
                snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, vm);
                if (readlink(path, link, sizeof(link) - 1) < 0)
                        die("readlink");
                out("proc-fd-link", now_ns() - t0);

                t0 = now_ns();
                if (syscall(SYS_kcmp, pid, pid, KCMP_FILE, vm, vm2) != 0)
                        die("kcmp");
                out("kcmp", now_ns() - t0);
        }
        close(vm2);
        close(vm);
}

static int listen_at(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (strlen(path) >= sizeof(sa.sun_path))
                die(path);
        memcpy(sa.sun_path, path, strlen(path));
        (void) unlink(path);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, SOMAXCONN) < 0)
                die("listen");
        return fd;
}

static int connect_to(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        if (strlen(path) >= sizeof(sa.sun_path))
                die(path);
        memcpy(sa.sun_path, path, strlen(path));
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                die("connect");
        return fd;
}

/* A session's whole socket life on the daemon's side. */
static void session_calls(int kvm) {
        char path[256], attach[128], buf[16385];
        int lfd, ep = epoll_create1(EPOLL_CLOEXEC), vm = ioctl(kvm, KVM_CREATE_VM, 0), n;

        if (ep < 0 || vm < 0)
                die("epoll/KVM_CREATE_VM");
        snprintf(path, sizeof(path), "%s/bench-syscalls.sock", dir);
        lfd = listen_at(path);
        n = snprintf(attach, sizeof(attach), "PMUFILTER/1 ATTACH\nVMFD=%d\nNAME=bench-%u\n", vm, 123456u);
        for (unsigned i = 0; i < count; i++) {
                struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * 8)];
                } control;
                struct iovec iov = { .iov_base = attach, .iov_len = (size_t) n };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                                     .msg_controllen = CMSG_SPACE(sizeof(int)) };
                struct cmsghdr *c;
                struct ucred cred;
                socklen_t sl;
                int client = connect_to(path), sfd, pidfd = -1;
                uint64_t t0;

                /* accept, as the daemon takes a new session */
                t0 = now_ns();
                sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                sl = sizeof(cred);
                if (sfd < 0 || getsockopt(sfd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0)
                        die("accept");
                sl = sizeof(pidfd);
                if (getsockopt(sfd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &sl) < 0)
                        pidfd = (int) syscall(SYS_pidfd_open, cred.pid, 0);
                if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) < 0)
                        die("epoll_ctl");
                out("accept", now_ns() - t0);

                /* the ATTACH with the VM fd */
                memset(&control, 0, sizeof(control));
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &vm, sizeof(int));
                if (sendmsg(client, &mh, MSG_NOSIGNAL) < 0)
                        die("sendmsg");
                iov = (struct iovec) { .iov_base = buf, .iov_len = sizeof(buf) };
                mh = (struct msghdr) { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                                       .msg_controllen = sizeof(control.buf) };
                t0 = now_ns();
                if (recvmsg(sfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
                        die("recvmsg");
                c = CMSG_FIRSTHDR(&mh);
                if (c && c->cmsg_type == SCM_RIGHTS) {
                        int fd;

                        memcpy(&fd, CMSG_DATA(c), sizeof(int));
                        close(fd);
                }
                out("recv-attach", now_ns() - t0);

                /* the APPLIED */
                if (send(client, "PMUFILTER/1 APPLIED\nSERIAL=1764987654321012\nERRNO=0\n", 52, MSG_NOSIGNAL) < 0)
                        die("send");
                mh = (struct msghdr) { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                                       .msg_controllen = sizeof(control.buf) };
                t0 = now_ns();
                if (recvmsg(sfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
                        die("recvmsg");
                out("recv-applied", now_ns() - t0);

                close(client);
                t0 = now_ns();
                close(sfd);
                close(pidfd);
                out("close-session", now_ns() - t0);
        }
        close(lfd);
        unlink(path);
        close(ep);
        close(vm);
}

/* A child that reads fd until EOF and drops what it reads: the sleeping
 * receiver every send of the daemon wakes (the VMM, bench-stamp). */
static pid_t drain(int fd, int other) {
        pid_t child = fork();

        if (child < 0)
                die("fork");
        if (child == 0) {
                static char buf[65536];

                close(other);
                while (read(fd, buf, sizeof(buf)) > 0)
                        ;
                _exit(0);
        }
        close(fd);
        return child;
}

static void send_apply(unsigned size) {
        char name[32], *buf = calloc(1, size + 1);
        int sv[2];
        pid_t child;

        if (!buf || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair");
        memset(buf, 'x', size);
        snprintf(name, sizeof(name), "send-apply-%u", size);
        child = drain(sv[1], sv[0]);
        for (unsigned i = 0; i < count; i++) {
                uint64_t t0 = now_ns();

                if (send(sv[0], buf, size, MSG_NOSIGNAL) < 0)
                        die("send");
                out(name, now_ns() - t0);
                sleep_us(300);          /* the reader sleeps again */
        }
        close(sv[0]);
        (void) waitpid(child, NULL, 0);
        free(buf);
}

static void records(void) {
        char tmp[512], path[512], data[400];
        int log;

        memset(data, 'r', sizeof(data));
        snprintf(path, sizeof(path), "%s/bench-syscalls-records", dir);
        log = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (log < 0)
                die("records log");
        for (unsigned i = 0; i < count; i++) {
                uint64_t t0;

                if (i % 1024 == 0 && ftruncate(log, 0) < 0)     /* as compactions keep it small */
                        die("ftruncate");
                t0 = now_ns();
                if (write(log, data, sizeof(data)) != sizeof(data))
                        die("append");
                out("record-append", now_ns() - t0);
        }
        close(log);
        (void) unlink(path);

        snprintf(path, sizeof(path), "%s/bench-syscalls-record", dir);
        snprintf(tmp, sizeof(tmp), "%s/.#bench-syscalls-recordXXXXXX", dir);
        for (unsigned i = 0; i < count; i++) {
                uint64_t t0 = now_ns();
                int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

                if (fd < 0 || write(fd, data, sizeof(data)) != sizeof(data))
                        die("record");
                close(fd);
                if (rename(tmp, path) < 0)
                        die("rename");
                out("record-write", now_ns() - t0);
        }
        (void) unlink(path);
}

static void log_write(void) {
        char line[250];
        int p[2];
        pid_t child;

        memset(line, 'l', sizeof(line));
        line[sizeof(line) - 1] = '\n';
        if (pipe2(p, O_CLOEXEC) < 0)
                die("pipe");
        child = drain(p[0], p[1]);
        for (unsigned i = 0; i < count; i++) {
                uint64_t t0 = now_ns();

                if (write(p[1], line, sizeof(line)) < 0)
                        die("write");
                out("log-write", now_ns() - t0);
                sleep_us(300);
        }
        close(p[1]);
        (void) waitpid(child, NULL, 0);
}

static uint64_t schedstat_ns(pid_t pid) {
        char path[64];
        unsigned long long ns = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/schedstat", (int) pid);
        f = fopen(path, "re");
        if (!f || fscanf(f, "%llu", &ns) != 1)
                die("schedstat");
        fclose(f);
        return ns;
}

/* The CPU a sleeping process spends to be woken once and take the event.
 * Wake-ups that come together under load add up in the eventfd's count:
 * only a count of STOP or more ends the child. */
#define STOP (UINT64_C(1) << 40)
static void wake(void) {
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), ack[2];
        uint64_t one = 1, before, after;
        unsigned n = count > 2000 ? 2000 : count;
        pid_t child;
        char c;

        if (efd < 0 || pipe2(ack, O_CLOEXEC) < 0)
                die("eventfd");
        child = fork();
        if (child < 0)
                die("fork");
        if (child == 0) {
                struct epoll_event ev = { .events = EPOLLIN }, got;
                int ep = epoll_create1(EPOLL_CLOEXEC);
                uint64_t v;

                if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0)
                        _exit(1);
                (void) write(ack[1], "r", 1);
                for (;;)
                        if (epoll_wait(ep, &got, 1, -1) == 1 && read(efd, &v, sizeof(v)) == sizeof(v) &&
                            v >= STOP)
                                _exit(0);
        }
        if (read(ack[0], &c, 1) != 1)
                die("child");
        sleep_us(20000);
        /* Rounds of n/5 wake-ups, one sample each: the run time per wake-up. */
        for (unsigned round = 0; round < 5; round++) {
                before = schedstat_ns(child);
                for (unsigned i = 0; i < n / 5; i++) {
                        if (write(efd, &one, sizeof(one)) < 0)
                                die("write");
                        sleep_us(300);          /* the child sleeps again before the next one */
                }
                after = schedstat_ns(child);
                out("wake", (after - before) / (n / 5));
        }
        one = STOP;
        (void) write(efd, &one, sizeof(one));
        (void) waitpid(child, NULL, 0);
        close(efd);
        close(ack[0]);
        close(ack[1]);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "dir", required_argument, NULL, 'd' },
                { "count", required_argument, NULL, 'c' },
                { "apply-sizes", required_argument, NULL, 's' },
                {}
        };
        const char *sizes = "124,2528";
        int c, kvm;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                case 'c':
                        count = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 's':
                        sizes = optarg;
                        break;
                default:
                        return 2;
                }
        if (!dir || count == 0) {
                fprintf(stderr, "Usage: bench-syscalls --dir DIR --count N [--apply-sizes S,S]\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        kvm = open_kvm();
        uevent_recv(kvm);
        proc_reads(kvm);
        session_calls(kvm);
        for (const char *s = sizes; s && *s; s = strchr(s, ','), s = s ? s + 1 : NULL)
                send_apply((unsigned) strtoul(s, NULL, 10));
        records();
        log_write();
        wake();
        close(kvm);
        fflush(stdout);
        return 0;
}
