/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * life-floor.c — the floor of a VM's life in a daemon that is not ours: a
 * bare epoll loop doing the I/O that any daemon in pmufilterd's place must
 * do for one VM, and nothing else.  Its CPU per VM life (schedstat) is the
 * floor of the daemon's, measured with the same VMM (bench-vmm life) in the
 * same run.  It shares no code with pmufilterd: no sd-event, no lib/, no
 * registry, no policy; sd-bus (libsystemd) only to put signals on the bus.
 *
 * Per VM life, as pmufilterd(8) and its D-Bus API require:
 *   create uevent      recv(); the creator's /proc/<pid>/stat (open, read,
 *                      close): its start time and command
 *   session            accept4(), SO_PEERCRED, SO_PEERPIDFD, epoll_ctl(ADD)
 *   ATTACH             recvmsg() with the VM fd; readlink() of it (a KVM VM?),
 *                      kcmp() against the creator's fd (the same VM?), close()
 *                      of it; a fixed APPLY sent (the same bytes as
 *                      echo-peer's, so the VMM applies the same filter); one
 *                      audit line
 *   APPLIED            recv(); one audit line; D-Bus VMNew, InterfacesAdded
 *                      (the VM's ~20 properties), FilterApplied; the VM's
 *                      record appended to a file (one write())
 *   session closed     recv() of the end; epoll_ctl(DEL); close() of the
 *                      session and its pidfd; readlinkat() of the creator's
 *                      fd (still open: detached; else gone); one audit line;
 *                      VMRemoved, InterfacesRemoved; the record's end
 *                      appended (one write())
 *   destroy uevent     recv()
 * Audit lines go to stderr, as pmufilterd's do outside the journal.
 *
 *   life-floor --socket PATH --bus ADDRESS --events W,W,... --dir DIR
 *
 * Stops on SIGTERM or SIGINT.
 */
#include <getopt.h>
#include <linux/kcmp.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "bench.h"
#include "peer.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#define MSG_MAX 16384
#define CONNS_MAX 4096
#define VMS_MAX 4096

struct conn {
        int fd, pidfd;
        pid_t pid;
        int vmfd;
        char id[32];
};

/* The VMs the uevents named: creator and fd, as "<pid>-<fd>". */
struct vm {
        pid_t pid;
        int fd;
};

static const char *apply_events = "";
static unsigned long long serial;
static struct conn conns[CONNS_MAX];
static struct vm vms[VMS_MAX];
static sd_bus *bus;
static int records = -1;

static int uevent_socket(void) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
        int size = 8 * 1024 * 1024;

        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -1;
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
        return fd;
}

static void audit(const char *what, const char *id) {
        char line[256];
        int n = snprintf(line, sizeof(line), "life-floor: info: VM %s %s [MESSAGE_ID=0 VM_ID=%s]\n", id, what,
                         id);

        (void) !write(STDERR_FILENO, line, (size_t) n);
}

static void record(const char *id, bool gone) {
        char buf[320];
        int n = gone ? snprintf(buf, sizeof(buf), "G %s\n", id)
                     : snprintf(buf, sizeof(buf), "R %s 250\nPID=1\nFD=1\nSTARTTIME=1\nSTATE=filtered\nVCPUS=0\n"
                                "SERIAL=1\nAPPLIED_USEC=1\nLAST_ERRNO=0\nIN_FORCE=1\nNAME=life\nCLIENT=library\n"
                                "PROFILE=bench-2\nPROFILE_SOURCE=default\nPMU_OFF=0\nACTION=0\nFLAGS=0\nFIXED=0\n"
                                "EVENTS=0xc0,0x76\n", id);

        (void) !write(records, buf, (size_t) n);
}

/* InterfacesAdded with what a VM object carries (org.pmufilterd1.VM's
 * properties, as many and as long). */
static void interfaces_added(const char *id, const char *path) {
        sd_bus_message *m = NULL;
        static const uint64_t events[2] = { 0xc0, 0x76 };
        int r;

        r = sd_bus_message_new_signal(bus, &m, "/org/pmufilterd1", "org.freedesktop.DBus.ObjectManager",
                                      "InterfacesAdded");
        if (r >= 0)
                r = sd_bus_message_append(m, "o", path);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sa{sv}}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sa{sv}}", "org.pmufilterd1.VM", 20,
                                          "Id", "s", id, "Name", "s", "life-0", "UUID", "s", "",
                                          "Pid", "u", 1, "State", "s", "filtered", "Profile", "s", "bench-2",
                                          "ProfileSource", "s", "default", "ProfileSourceLocation", "s", "",
                                          "Action", "s", "allow", "FixedCounterBitmap", "u", 0, "Flags", "u", 0,
                                          "PMU", "s", "on", "AppliedUSec", "t", (uint64_t) 1, "InForce", "b", 1,
                                          "LastError", "s", "", "ProfileExpiresUSec", "t", (uint64_t) 0,
                                          "Client", "s", "library", "Command", "s", "bench-vmm",
                                          "Executable", "s", "/usr/libexec/bench-vmm", "Unit", "s", "");
        if (r >= 0)
                r = sd_bus_message_open_container(m, '{', "sa{sv}");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", "org.pmufilterd1.VMEvents");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_open_container(m, '{', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", "Events");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "at");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 't', events, sizeof(events));
        for (int i = 0; r >= 0 && i < 5; i++)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                (void) sd_bus_send(bus, m, NULL);
        sd_bus_message_unref(m);
}

static void vm_path(const char *id, char *path, size_t size) {
        snprintf(path, size, "/org/pmufilterd1/vm/_%s", id);
        for (char *c = path + strlen("/org/pmufilterd1/vm/_"); *c; c++)
                if (*c == '-')
                        *c = '_';
}

static void on_uevent(int fd) {
        char buf[8192], path[64];
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        const char *event, *pid, *stats;

        if (n <= 0)
                return;
        buf[n] = 0;
        event = uevent_prop(buf, (size_t) n, "EVENT=");
        pid = uevent_prop(buf, (size_t) n, "PID=");
        stats = uevent_prop(buf, (size_t) n, "STATS_PATH=");
        if (!event || strcmp(event, "create") != 0 || !pid || !stats)
                return;
        /* the creator's facts */
        snprintf(path, sizeof(path), "/proc/%s/stat", pid);
        int f = open(path, O_RDONLY | O_CLOEXEC);
        if (f >= 0) {
                char st[1024];

                (void) !read(f, st, sizeof(st));
                close(f);
        }
        const char *dash = strrchr(stats, '-');
        for (unsigned i = 0; i < VMS_MAX; i++)
                if (vms[i].pid == 0) {
                        vms[i] = (struct vm) { atoi(pid), dash ? atoi(dash + 1) : -1 };
                        break;
                }
}

static void forget_vm(pid_t pid, int fd) {
        for (unsigned i = 0; i < VMS_MAX; i++)
                if (vms[i].pid == pid && vms[i].fd == fd)
                        vms[i].pid = 0;
}

static void on_closed(struct conn *c) {
        char link[64], target[32], path[96];

        close(c->fd);
        close(c->pidfd);
        c->fd = -1;
        if (c->vmfd < 0)
                return;
        snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int) c->pid, c->vmfd);
        if (readlinkat(AT_FDCWD, link, target, sizeof(target)) < 0)
                forget_vm(c->pid, c->vmfd);
        audit("is gone: its VMM closed it", c->id);
        vm_path(c->id, path, sizeof(path));
        (void) sd_bus_emit_signal(bus, "/org/pmufilterd1", "org.pmufilterd1.Manager", "VMRemoved", "so", c->id,
                                  path);
        (void) sd_bus_emit_signal(bus, "/org/pmufilterd1", "org.freedesktop.DBus.ObjectManager",
                                  "InterfacesRemoved", "oas", path, 2, "org.pmufilterd1.VM",
                                  "org.pmufilterd1.VMEvents");
        record(c->id, true);
}

static void on_message(int ep, struct conn *c) {
        char buf[MSG_MAX], cbuf[CMSG_SPACE(sizeof(int) * 8)], path[96];
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                             .msg_controllen = sizeof(cbuf) };
        ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        int sent = -1;

        if (n < 0 && errno == EAGAIN)
                return;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); n >= 0 && h; h = CMSG_NXTHDR(&mh, h))
                if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
                        memcpy(&sent, CMSG_DATA(h), sizeof(int));
        if (n <= 0) {
                if (sent >= 0)
                        close(sent);
                (void) epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                on_closed(c);
                return;
        }
        buf[n] = 0;
        if (strncmp(buf, "PMUFILTER/1 ATTACH", 18) == 0) {
                const char *v = strstr(buf, "\nVMFD=");
                char link[64], target[32];

                c->vmfd = v ? atoi(v + 6) : -1;
                snprintf(c->id, sizeof(c->id), "%d-%d", (int) c->pid, c->vmfd);
                if (sent >= 0) {
                        snprintf(link, sizeof(link), "/proc/self/fd/%d", sent);
                        (void) readlink(link, target, sizeof(target));
                        (void) syscall(SYS_kcmp, getpid(), c->pid, KCMP_FILE, sent, c->vmfd);
                        close(sent);
                }
                n = snprintf(buf, sizeof(buf), "PMUFILTER/1 APPLY\nVM=%s\nSERIAL=%llu\nPROFILE=bench-2\n"
                             "PMU=on\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=%s\n", c->id, ++serial, apply_events);
                if (n > 0 && (size_t) n < sizeof(buf))
                        (void) send(c->fd, buf, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL);
                audit("attached: profile 'bench-2' (default)", c->id);
        } else if (strncmp(buf, "PMUFILTER/1 APPLIED", 19) == 0) {
                audit("filter of profile 'bench-2' applied (allow, 2 entries)", c->id);
                vm_path(c->id, path, sizeof(path));
                (void) sd_bus_emit_signal(bus, "/org/pmufilterd1", "org.pmufilterd1.Manager", "VMNew", "so",
                                          c->id, path);
                interfaces_added(c->id, path);
                (void) sd_bus_emit_signal(bus, "/org/pmufilterd1", "org.pmufilterd1.Manager", "FilterApplied",
                                          "ssbs", c->id, "bench-2", 1, "");
                record(c->id, false);
        } else if (sent >= 0)
                close(sent);
}

static int bus_connect(const char *address) {
        int r = sd_bus_new(&bus);

        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        return r;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "bus", required_argument, NULL, 'b' },
                { "events", required_argument, NULL, 'e' },
                { "dir", required_argument, NULL, 'd' },
                {}
        };
        const char *path = NULL, *address = NULL, *dir = NULL;
        struct epoll_event ev = { .events = EPOLLIN }, events[64];
        char rec[4096];
        struct timespec ts;
        int c, lfd = -1, ufd, ep, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        path = optarg;
                        break;
                case 'b':
                        address = optarg;
                        break;
                case 'e':
                        apply_events = optarg;
                        break;
                case 'd':
                        dir = optarg;
                        break;
                default:
                        return 2;
                }
        if (!path || !address || !dir) {
                fprintf(stderr, "Usage: life-floor --socket PATH --bus ADDRESS --events W,W,... --dir DIR\n");
                return 2;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        serial = (unsigned long long) ts.tv_sec * 1000000u + (unsigned long long) ts.tv_nsec / 1000u;
        raise_nofile();
        r = bus_connect(address);
        if (r < 0) {
                fprintf(stderr, "life-floor: cannot connect to %s: %s\n", address, strerror(-r));
                return 1;
        }
        snprintf(rec, sizeof(rec), "%s/records", dir);
        records = open(rec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

        ep = peer_start(path, &lfd);
        ufd = uevent_socket();
        if (ep < 0 || ufd < 0 || records < 0) {
                fprintf(stderr, "life-floor: cannot set up (%s, %s): %m\n", path, rec);
                return 1;
        }
        ev.data.u32 = UINT32_MAX - 2;   /* the uevents */
        (void) epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
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
                        if (i == UINT32_MAX - 2) {
                                on_uevent(ufd);
                                continue;
                        }
                        if (i == PEER_LISTEN) {
                                struct ucred cred;
                                socklen_t l = sizeof(cred), pl = sizeof(int);
                                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), pidfd = -1;
                                unsigned j;

                                if (fd < 0)
                                        continue;
                                for (j = 0; j < CONNS_MAX && conns[j].fd >= 0; j++)
                                        ;
                                if (j == CONNS_MAX || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &l) < 0 ||
                                    getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &pl) < 0) {
                                        close(fd);
                                        continue;
                                }
                                conns[j] = (struct conn) { .fd = fd, .pidfd = pidfd, .pid = cred.pid, .vmfd = -1 };
                                ev.data.u32 = j;
                                (void) epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                                continue;
                        }
                        on_message(ep, &conns[i]);
                }
        }
}
