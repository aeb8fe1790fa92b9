/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uevent.c — the kvm uevent watcher: a libudev monitor on the kernel's
 * netlink source, filtered to the misc subsystem, drained on each wakeup of
 * the sd-event loop.  It owns two duties beyond parsing: telling the caller
 * when the kernel dropped events (ENOBUFS), and turning the creating thread
 * the kernel names into its process.
 */
#include <assert.h>
#include <limits.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <libudev.h>

#include "procfacts.h"
#include "procscan.h"
#include "uevent.h"

/* Messages handled per wakeup before yielding to the loop's other sources;
 * the source is level-triggered, so the rest wakes it again at once. */
#define UEVENT_BATCH 1024

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
        struct udev *udev;
        struct udev_monitor *monitor;
        sd_event_source *io;
        uevent_handler_t on_event;
        uevent_overflow_t on_overflow;
        void *userdata;
        bool lost;              /* report to on_overflow once drained */
        bool enobufs;           /* ... because the kernel dropped uevents */

        struct creator *creators;
        size_t n_creators, allocated;
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
 * out of it, so its process can be read now. */
static void resolve_create(struct uevent_watcher *w, struct kvm_uevent *ev) {
        pid_t pid;

        if (proc_get_tgid(ev->tid, &pid) < 0) {
                /* The thread is gone; its process may live on with the VM. */
                if (ev->fd < 0)
                        w->lost = true;
                else
                        creator_add(w, ev->tid, ev->fd, 0);
                return;
        }
        ev->pid = pid;
        if (pid != ev->tid && ev->fd >= 0)
                creator_add(w, ev->tid, ev->fd, pid);
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

static void dispatch_device(struct uevent_watcher *w, struct udev_device *d) {
        struct kvm_uevent ev;

        /* The misc filter also passes other devices; kvm itself may send
         * other change events (a written uevent file): no EVENT=, ignored. */
        if (!streq_ptr(udev_device_get_subsystem(d), "misc") ||
            !streq_ptr(udev_device_get_sysname(d), "kvm") ||
            !streq_ptr(udev_device_get_action(d), "change"))
                return;
        if (kvm_uevent_parse(udev_device_get_property_value(d, "EVENT"),
                             udev_device_get_property_value(d, "PID"),
                             udev_device_get_property_value(d, "STATS_PATH"),
                             udev_device_get_property_value(d, "COUNT"),
                             udev_device_get_property_value(d, "CREATED"), &ev) < 0)
                return;

        if (ev.type == KVM_UEVENT_CREATE)
                resolve_create(w, &ev);
        else
                resolve_destroy(w, &ev);
        w->on_event(&ev, w->userdata);
}

static bool socket_readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLERR));
}

/* Receive and dispatch up to max queued events. */
static void receive(struct uevent_watcher *w, int fd, unsigned max) {
        for (unsigned i = 0; i < max; i++) {
                struct udev_device *d;

                errno = 0;
                d = udev_monitor_receive_device(w->monitor);
                if (d) {
                        dispatch_device(w, d);
                        udev_device_unref(d);
                        continue;
                }
                /* libudev passes recvmsg()'s error on: ENOBUFS is the kernel
                 * saying it dropped messages for this socket since the last
                 * read.  It is reported once, ahead of what is still queued. */
                if (errno == ENOBUFS) {
                        w->lost = w->enobufs = true;
                        continue;
                }
                /* EAGAIN means empty, but libudev also says it for a message
                 * it refused (bad sender): look before stopping. */
                if (!socket_readable(fd))
                        break;
        }
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct uevent_watcher *w = userdata;

        receive(w, fd, UEVENT_BATCH);
        if (socket_readable(fd))
                return 0;       /* not drained yet: back soon */
        if (creators_filter(w, is_resolved))
                w->lost = true;
        if (w->lost) {
                bool enobufs = w->enobufs;

                w->lost = w->enobufs = false;
                (void) creators_filter(w, still_open);
                w->on_overflow(enobufs, w->userdata);
        }
        return 0;
}

void uevent_watcher_flush(struct uevent_watcher *w) {
        if (!w)
                return;
        /* A bound, should events keep coming: what is left is seen later,
         * as any event is. */
        receive(w, udev_monitor_get_fd(w->monitor), UEVENT_FLUSH_MAX);
        (void) on_io(NULL, udev_monitor_get_fd(w->monitor), 0, w);
}

int uevent_watcher_set_receive_buffer(struct uevent_watcher *w, int size) {
        int r;

        assert(w);
        /* SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it, take what
         * net.core.rmem_max allows. */
        r = udev_monitor_set_receive_buffer_size(w->monitor, size);
        if (r < 0 && setsockopt(udev_monitor_get_fd(w->monitor), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) < 0)
                return -errno;
        return uevent_watcher_receive_buffer(w);
}

int uevent_watcher_receive_buffer(struct uevent_watcher *w) {
        int granted;
        socklen_t l = sizeof(granted);

        assert(w);

        if (getsockopt(udev_monitor_get_fd(w->monitor), SOL_SOCKET, SO_RCVBUF, &granted, &l) < 0)
                return -errno;
        return granted;
}

struct uevent_watcher *uevent_watcher_free(struct uevent_watcher *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->io);
        udev_monitor_unref(w->monitor);
        udev_unref(w->udev);
        free(w->creators);
        free(w);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct uevent_watcher *, uevent_watcher_free)

int uevent_watcher_new(sd_event *e, uevent_handler_t on_event, uevent_overflow_t on_overflow,
                       void *userdata, struct uevent_watcher **ret) {
        _cleanup_(uevent_watcher_freep) struct uevent_watcher *w = NULL;
        int r;

        if (!e || !on_event || !on_overflow || !ret)
                return -EINVAL;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (struct uevent_watcher) {
                .on_event = on_event,
                .on_overflow = on_overflow,
                .userdata = userdata,
        };

        w->udev = udev_new();
        if (!w->udev)
                return errno > 0 ? -errno : -ENOMEM;
        /* "kernel", not "udev": there may be no udevd to relay events. */
        w->monitor = udev_monitor_new_from_netlink(w->udev, "kernel");
        if (!w->monitor)
                return errno > 0 ? -errno : -ENOMEM;
        /* libudev's socket filter passes every kernel message (it can only
         * match udevd's header); this filter is applied on receipt. */
        r = udev_monitor_filter_add_match_subsystem_devtype(w->monitor, "misc", NULL);
        if (r < 0)
                return r;
        /* A burst of VM starts must not overflow the socket.  Not fatal if
         * refused: an overflow is detected and answered with a rescan. */
        (void) uevent_watcher_set_receive_buffer(w, UEVENT_RECEIVE_BUFFER);
        r = udev_monitor_enable_receiving(w->monitor);
        if (r < 0)
                return r;

        r = sd_event_add_io(e, &w->io, udev_monitor_get_fd(w->monitor), EPOLLIN, on_io, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->io, "kvm-uevent");

        *ret = TAKE_PTR(w);
        return 0;
}
