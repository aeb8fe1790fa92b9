/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uevent.c — the kvm uevent watcher: the kernel's NETLINK_KOBJECT_UEVENT
 * socket read directly (docs/decisions.md, "Watching VMs"), each message's
 * few keys parsed in place, drained last in each round of the loop's
 * VMM-facing fds, after what the sessions said (base/iomux.h).
 * It owns two duties beyond parsing: telling the caller when the kernel
 * dropped events (ENOBUFS), and turning the creating thread the kernel
 * names into its process.
 */
#include <assert.h>
#include <limits.h>
#include <poll.h>
#include <linux/netlink.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "iomux.h"
#include "procfacts.h"
#include "procscan.h"
#include "uevent.h"

/* Messages handled per wakeup before yielding to the loop's other sources;
 * the entry is level-triggered, so the rest comes in the next round. */
#define UEVENT_BATCH 1024

/* Messages taken per recvmmsg(2): one call whatever the wakeup brings, up
 * to this many.  A batch that comes back short ran into EAGAIN inside the
 * kernel, so the socket was empty then: no read follows to learn it. */
#define UEVENT_RECV_BATCH 16

/* The kernel's uevents go to multicast group 1 of NETLINK_KOBJECT_UEVENT
 * (udevd relays its own to group 2, which we do not join). */
#define UEVENT_GROUP_KERNEL 1u

/* A VM created by a thread other than its process's main thread: its
 * destroy event names the thread again, which may be gone by then.  pid 0:
 * the thread was gone before its create event was read; unless the destroy
 * follows in the same drain, the process must be found by a rescan. */
struct creator {
        pid_t tid;
        int fd;
        pid_t pid;
};

struct uevent_watcher {
        int fd;
        struct iomux_entry io;
        uevent_handler_t on_event;
        uevent_overflow_t on_overflow;
        void *userdata;
        bool lost;              /* report to on_overflow once drained */
        bool enobufs;           /* ... because the kernel dropped uevents */
        /* on_io() stopped at UEVENT_BATCH with more queued: the loop's
         * last poll no longer vouches for an empty socket (flush()). */
        bool backlog;

        struct creator *creators;
        size_t n_creators, allocated;

        /* recvmmsg(2)'s buffers: each message its own, and its own room for
         * the credentials checked on each (receive()).  Allocated apart and
         * not cleared: a page counts in the daemon's memory only once a
         * uevent was written to it. */
        char (*bufs)[UEVENT_MSG_MAX + 1];
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(struct ucred))];
        } controls[UEVENT_RECV_BATCH];
        struct sockaddr_nl addrs[UEVENT_RECV_BATCH];
        struct iovec iovs[UEVENT_RECV_BATCH];
        struct mmsghdr msgs[UEVENT_RECV_BATCH];
};

/* Decimal as the kernel prints it: digits only, no sign, no leading zero. */
static int parse_dec(const char *s, size_t len, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                if (v > (max - (uint64_t) (s[i] - '0')) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        *ret = v;
        return 0;
}

static int parse_pid(const char *s, size_t len, pid_t *ret) {
        uint64_t v;

        if (parse_dec(s, len, INT_MAX, &v) < 0 || v == 0)
                return -EBADMSG;
        *ret = (pid_t) v;
        return 0;
}

/* STATS_PATH=/kvm/<tid>-<fd>: the VM's debugfs directory, named by the
 * kernel after the creating thread and the fd it reserved for the VM. */
static int parse_stats_path(const char *s, pid_t tid, int *ret_fd) {
        const char *name = startswith(s, "/kvm/"), *dash;
        uint64_t fd;
        pid_t p;

        if (!name)
                return -EBADMSG;
        dash = strchr(name, '-');
        if (!dash || parse_pid(name, (size_t) (dash - name), &p) < 0 || p != tid)
                return -EBADMSG;
        if (parse_dec(dash + 1, strlen(dash + 1), INT_MAX, &fd) < 0)
                return -EBADMSG;
        *ret_fd = (int) fd;
        return 0;
}

int kvm_uevent_parse(const char *event, const char *pid, const char *stats_path,
                     const char *count, const char *created, struct kvm_uevent *ret) {
        struct kvm_uevent ev = { .fd = -1 };

        assert(ret);
        if (!event || !pid || !count || !created)
                return -EBADMSG;
        if (streq(event, "create"))
                ev.type = KVM_UEVENT_CREATE;
        else if (streq(event, "destroy"))
                ev.type = KVM_UEVENT_DESTROY;
        else
                return -EBADMSG;

        if (parse_pid(pid, strlen(pid), &ev.tid) < 0 ||
            parse_dec(count, strlen(count), UINT64_MAX, &ev.count) < 0 ||
            parse_dec(created, strlen(created), UINT64_MAX, &ev.created) < 0)
                return -EBADMSG;
        if (stats_path && parse_stats_path(stats_path, ev.tid, &ev.fd) < 0)
                return -EBADMSG;
        ev.pid = ev.tid;

        *ret = ev;
        return 0;
}

/* The value of key ("EVENT=") among the "KEY=value" strings of a uevent;
 * -EBADMSG if it is there twice (one message, one meaning). */
static int message_value(const char *const *props, size_t n, const char *key, const char **ret) {
        const char *v = NULL;

        for (size_t i = 0; i < n; i++) {
                const char *p = startswith(props[i], key);

                if (!p)
                        continue;
                if (v)
                        return -EBADMSG;
                v = p;
        }
        *ret = v;
        return 0;
}

int kvm_uevent_parse_message(const char *buf, size_t len, struct kvm_uevent *ret) {
        static const char *const keys[] = { "ACTION=", "SUBSYSTEM=", "DEVPATH=", "EVENT=", "PID=",
                                            "STATS_PATH=", "COUNT=", "CREATED=" };
        const char *v[ELEMENTSOF(keys)], *props[UEVENT_PROPS_MAX], *header, *at, *sysname;
        size_t n = 0, i = 0;

        assert(buf || len == 0);
        assert(ret);
        /* "ACTION@DEVPATH", then "KEY=value" strings, each NUL-terminated
         * (the last one too, as the kernel sends them). */
        if (len == 0 || buf[len - 1] != 0)
                return -EBADMSG;
        header = buf;
        at = strchr(header, '@');
        if (!at)
                return -EBADMSG;
        for (i = strlen(header) + 1; i < len; i += strlen(buf + i) + 1) {
                if (n >= ELEMENTSOF(props))
                        return -EBADMSG;
                props[n++] = buf + i;
        }
        for (i = 0; i < ELEMENTSOF(keys); i++)
                if (message_value(props, n, keys[i], &v[i]) < 0)
                        return -EBADMSG;

        /* Only the misc device kvm's change events are ours; kvm itself may
         * send other change events (a written uevent file): no EVENT=. */
        if (!streq_ptr(v[0], "change") || !streq_ptr(v[1], "misc") || !v[2])
                return -ENOENT;
        sysname = strrchr(v[2], '/');
        if (!streq(sysname ? sysname + 1 : v[2], "kvm") || !streq(at + 1, v[2]) ||
            (size_t) (at - header) != strlen(v[0]) || strncmp(header, v[0], (size_t) (at - header)) != 0)
                return -ENOENT;
        return kvm_uevent_parse(v[3], v[4], v[5], v[6], v[7], ret);
}

static struct creator *creator_find(struct uevent_watcher *w, pid_t tid, int fd) {
        for (size_t i = 0; i < w->n_creators; i++)
                if (w->creators[i].tid == tid && w->creators[i].fd == fd)
                        return &w->creators[i];
        return NULL;
}

static void creator_remove(struct uevent_watcher *w, struct creator *c) {
        *c = w->creators[--w->n_creators];
}

static void creator_add(struct uevent_watcher *w, pid_t tid, int fd, pid_t pid) {
        if (!GREEDY_REALLOC(w->creators, w->allocated, w->n_creators + 1)) {
                w->lost = true;
                return;
        }
        w->creators[w->n_creators++] = (struct creator) { .tid = tid, .fd = fd, .pid = pid };
}

/* CREATE: the thread that created the VM is still inside the ioctl or just
 * out of it, so its process can be read now, and the facts of that read
 * go with the event (facts: the caller's, filled in). */
static void resolve_create(struct uevent_watcher *w, struct kvm_uevent *ev, struct proc_facts *facts) {
        if (proc_facts_open_task(ev->tid, facts) < 0) {
                /* The thread is gone; its process may live on with the VM. */
                if (ev->fd < 0)
                        w->lost = true;
                else
                        creator_add(w, ev->tid, ev->fd, 0);
                return;
        }
        ev->pid = facts->pid;
        ev->facts = facts;
        if (ev->pid != ev->tid && ev->fd >= 0)
                creator_add(w, ev->tid, ev->fd, ev->pid);
}

/* DESTROY: only what CREATE learnt can be trusted; reading the tid now
 * could name an unrelated process that reused it. */
static void resolve_destroy(struct uevent_watcher *w, struct kvm_uevent *ev) {
        struct creator *c = creator_find(w, ev->tid, ev->fd);

        if (!c)
                return;
        if (c->pid > 0)
                ev->pid = c->pid;
        creator_remove(w, c);
}

/* Forget the creators keep() rejects; true if there were any. */
static bool creators_filter(struct uevent_watcher *w, bool (*keep)(const struct creator *c)) {
        bool dropped = false;

        for (size_t i = 0; i < w->n_creators;)
                if (keep(&w->creators[i]))
                        i++;
                else {
                        creator_remove(w, &w->creators[i]);
                        dropped = true;
                }
        return dropped;
}

/* Rejects a VM whose creator vanished and that is not known gone either. */
static bool is_resolved(const struct creator *c) {
        return c->pid > 0;
}

/* After lost events: a remembered creator's destroy may be among them. */
static bool still_open(const struct creator *c) {
        return proc_fd_is_kvm_vm(c->pid, c->fd);
}

static void dispatch_device(struct uevent_watcher *w, const char *buf, size_t len) {
        _cleanup_(proc_facts_done) struct proc_facts facts = {};
        struct kvm_uevent ev;

        if (kvm_uevent_parse_message(buf, len, &ev) < 0)
                return;

        if (ev.type == KVM_UEVENT_CREATE)
                resolve_create(w, &ev, &facts);
        else
                resolve_destroy(w, &ev);
        w->on_event(&ev, w->userdata);
}

/* One message of a batch, if the kernel sent it: netlink port 0, and uid 0
 * in the credentials it attaches (what libudev checks for its "kernel"
 * monitor; only CAP_NET_ADMIN could send to this group at all).  Checked
 * for each message, whatever came with the others. */
static void receive_one(struct uevent_watcher *w, size_t i) {
        struct msghdr *mh = &w->msgs[i].msg_hdr;
        const struct sockaddr_nl *sa = &w->addrs[i];
        const struct ucred *cred = NULL;
        size_t n = w->msgs[i].msg_len;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
                    c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
                        cred = (const struct ucred *) CMSG_DATA(c);
        if (mh->msg_namelen != sizeof(*sa) || sa->nl_pid != 0 || !cred || cred->uid != 0 ||
            (mh->msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n > UEVENT_MSG_MAX)
                return;
        w->bufs[i][n] = 0;
        dispatch_device(w, w->bufs[i], n);
}

/* Receive and dispatch up to max queued events, UEVENT_RECV_BATCH a
 * call: true once the socket is empty (a short batch, or EAGAIN). */
static bool receive(struct uevent_watcher *w, unsigned max) {
        for (unsigned done = 0; done < max;) {
                int n;

                /* recvmmsg() writes back each header's lengths and flags. */
                for (size_t i = 0; i < UEVENT_RECV_BATCH; i++) {
                        w->iovs[i] = (struct iovec) { .iov_base = w->bufs[i], .iov_len = UEVENT_MSG_MAX };
                        w->msgs[i] = (struct mmsghdr) { .msg_hdr = {
                                .msg_name = &w->addrs[i],
                                .msg_namelen = sizeof(w->addrs[i]),
                                .msg_iov = &w->iovs[i],
                                .msg_iovlen = 1,
                                .msg_control = &w->controls[i],
                                .msg_controllen = sizeof(w->controls[i]),
                        } };
                }
                n = recvmmsg(w->fd, w->msgs, UEVENT_RECV_BATCH, MSG_DONTWAIT, NULL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        /* ENOBUFS: the kernel dropped messages for this
                         * socket since the last read.  It is reported once,
                         * ahead of what is still queued (an error met after
                         * some messages of a batch comes with the next
                         * call, recvmmsg(2)). */
                        if (errno == ENOBUFS) {
                                w->lost = w->enobufs = true;
                                continue;
                        }
                        return true;    /* EAGAIN: empty (anything else: nothing to read either) */
                }
                for (int i = 0; i < n; i++)
                        receive_one(w, (size_t) i);
                if (n < UEVENT_RECV_BATCH)
                        return true;    /* the kernel ran into EAGAIN: empty */
                done += (unsigned) n;
        }
        return false;
}

/* What is left after a drain of the queue (or all of it): the creators
 * that could not be resolved, and lost events, reported once. */
static void drained(struct uevent_watcher *w) {
        if (creators_filter(w, is_resolved))
                w->lost = true;
        if (w->lost) {
                bool enobufs = w->enobufs;

                w->lost = w->enobufs = false;
                (void) creators_filter(w, still_open);
                w->on_overflow(enobufs, w->userdata);
        }
}

static void on_io(struct iomux_entry *e, uint32_t revents) {
        struct uevent_watcher *w = e->userdata;

        w->backlog = !receive(w, UEVENT_BATCH);
        if (!w->backlog)
                drained(w);
        /* else not drained yet: back soon (the socket is level-triggered) */
}

void uevent_watcher_flush(struct uevent_watcher *w) {
        if (!w)
                return;
        /* The socket is level-triggered: had anything been queued when the
         * loop last polled, the entry would be pending (iomux.h), or on_io()
         * have left a backlog since.  Neither: everything queued before
         * that poll has been read, and reading now would say EAGAIN for it. */
        if (!w->backlog && !iomux_maybe_pending(&w->io))
                return;
        /* A bound, should events keep coming: what is left is seen later,
         * as any event is. */
        if (receive(w, UEVENT_FLUSH_MAX)) {
                w->backlog = false;
                /* Read to empty: on_io(), later in this round, would only
                 * hear EAGAIN. */
                iomux_handled(&w->io);
                drained(w);
        }
}

int uevent_watcher_set_receive_buffer(struct uevent_watcher *w, int size) {
        int r;

        assert(w);
        /* SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it, take what
         * net.core.rmem_max allows. */
        r = setsockopt(w->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
        if (r < 0 && setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) < 0)
                return -errno;
        return uevent_watcher_receive_buffer(w);
}

int uevent_watcher_receive_buffer(struct uevent_watcher *w) {
        int granted;
        socklen_t l = sizeof(granted);

        assert(w);

        if (getsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &granted, &l) < 0)
                return -errno;
        return granted;
}

struct uevent_watcher *uevent_watcher_free(struct uevent_watcher *w) {
        if (!w)
                return NULL;
        iomux_remove(&w->io);
        safe_close(w->fd);
        free(w->creators);
        free(w->bufs);
        free(w);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct uevent_watcher *, uevent_watcher_free)

int uevent_watcher_new(sd_event *e, uevent_handler_t on_event, uevent_overflow_t on_overflow,
                       void *userdata, struct uevent_watcher **ret) {
        _cleanup_(uevent_watcher_freep) struct uevent_watcher *w = NULL;
        struct sockaddr_nl sa;
        int r;

        if (!e || !on_event || !on_overflow || !ret)
                return -EINVAL;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (struct uevent_watcher) {
                .fd = -1,
                .on_event = on_event,
                .on_overflow = on_overflow,
                .userdata = userdata,
                .bufs = malloc(sizeof(*w->bufs) * UEVENT_RECV_BATCH),
        };
        if (!w->bufs)
                return -ENOMEM;

        w->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
        if (w->fd < 0)
                return -errno;
        /* The sender's credentials with each message, checked on receipt. */
        if (setsockopt(w->fd, SOL_SOCKET, SO_PASSCRED, &(int) { 1 }, sizeof(int)) < 0)
                return -errno;
        /* A burst of VM starts must not overflow the socket.  Not fatal if
         * refused: an overflow is detected and answered with a rescan. */
        (void) uevent_watcher_set_receive_buffer(w, UEVENT_RECEIVE_BUFFER);
        /* The kernel's group only: there may be no udevd to relay events. */
        sa = (struct sockaddr_nl) { .nl_family = AF_NETLINK, .nl_groups = UEVENT_GROUP_KERNEL };
        if (bind(w->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;

        w->io = (struct iomux_entry) {
                .fd = w->fd,
                .events = EPOLLIN,
                .rank = IOMUX_RANK_UEVENT,
                .handler = on_io,
                .userdata = w,
        };
        r = iomux_add(e, &w->io);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(w);
        return 0;
}
