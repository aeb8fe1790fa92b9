/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * watch.c — feeds the registry from the kernel: `create`/`destroy` uevents
 * of the kvm misc device, and the /proc scan.  The scan runs at start-up
 * (VMs created while the daemon was down) and after the uevent socket
 * overflowed (ENOBUFS: events were lost, so the truth is read from /proc).
 */
#include "deliver.h"
#include "log.h"
#include "procscan.h"
#include "uevent.h"

/* After a rescan: the uevents of unseen creators it did not explain were
 * VMs of other PID namespaces. */
static void count_foreign(struct deliver *d, size_t found) {
        unsigned foreign = d->unseen_pending > found ? d->unseen_pending - (unsigned) found : 0;

        d->unseen_pending = 0;
        if (foreign == 0)
                return;
        d->foreign_vms += foreign;
        if (ratelimit_below(&d->foreign_said, NULL))
                log_notice("%u VMs so far were created by processes this daemon cannot see (another PID namespace: "
                           "it runs in a container); they are not filtered from here", d->foreign_vms);
}

int deliver_rescan(struct deliver *d) {
        _cleanup_free_ struct vm_fd_ref *refs = NULL;
        size_t n = 0, found;
        int r;

        d->last_rescan = now_usec(CLOCK_MONOTONIC);
        r = procscan_all(&refs, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to scan /proc for VMs: %m");
        if (r > 0 && !d->warned_unreadable) {
                /* Without CAP_DAC_READ_SEARCH (or under hidepid=) VMs of other users go unseen. */
                log_warning("Could not read the fd table of %d processes: their VMs are not seen "
                            "(missing CAP_DAC_READ_SEARCH or CAP_SYS_PTRACE?)", r);
                d->warned_unreadable = true;
        }

        /* Entries whose process is gone lost their destroy uevent. */
        REGISTRY_FOREACH_SAFE(vm, next, d->registry)
                if (proc_starttime(vm->pid) != vm->starttime)
                        deliver_vm_gone(d, vm, "its process exited");

        found = deliver_register_fds(d, refs, n);
        count_foreign(d, found);
        log_info("Scanned /proc: %zu VM fds, %zu VMs newly found, %zu known", n, found, d->registry->n_vms);
        return 0;
}

/* Drop the VMs of pid whose fd no longer is a VM (their destroy uevent named no fd). */
static void prune_pid(struct deliver *d, pid_t pid) {
        REGISTRY_FOREACH_SAFE(vm, next, d->registry)
                if (vm->pid == pid && !proc_fd_is_kvm_vm(pid, vm->fd))
                        deliver_vm_gone(d, vm, "destroyed (last reference closed)");
}

struct deferred_scan {
        struct deliver *deliver;
        pid_t pid;
        sd_event_source *source;
};

static int on_deferred_scan(sd_event_source *s, uint64_t usec, void *userdata) {
        struct deferred_scan *d = userdata;

        deliver_scan_pid(d->deliver, d->pid);
        sd_event_source_unref(d->source);
        free(d);
        return 0;
}

static void defer_scan_pid(struct deliver *dl, pid_t pid) {
        struct deferred_scan *d = calloc(1, sizeof(*d));

        if (!d)
                return;
        d->deliver = dl;
        d->pid = pid;
        if (sd_event_add_time_relative(dl->event, &d->source, CLOCK_MONOTONIC, 50 * 1000, 0,
                                       on_deferred_scan, d) < 0)
                free(d);
}

static void on_uevent(const struct kvm_uevent *ev, void *userdata) {
        struct deliver *d = userdata;
        struct vm *vm;

        if (ev->pid == getpid_cached())
                return;
        switch (ev->type) {
        case KVM_UEVENT_CREATE:
                if (ev->fd < 0) {
                        /* No STATS_PATH: the fd number is unknown, and not installed yet
                         * either (the uevent comes first).  Look now, and once more a
                         * little later. */
                        deliver_scan_pid(d, ev->pid);
                        defer_scan_pid(d, ev->pid);
                        break;
                }
                vm = NULL;
                if (deliver_vm_detected(d, ev->pid, ev->fd, ev->facts, &vm) == -ESRCH)
                        log_debug("VM %d-%d: its process exited before we saw it", (int) ev->pid, ev->fd);
                else if (vm)
                        registry_creator_seen(d->registry, vm);
                break;
        case KVM_UEVENT_DESTROY:
                if (ev->fd < 0) {
                        prune_pid(d, ev->pid);
                        break;
                }
                vm = registry_get(d->registry, ev->pid, ev->fd);
                if (vm) {
                        deliver_vm_gone(d, vm, "destroyed (last reference closed)");
                        break;
                }
                /* Gone already (its session or a rescan saw it go), or created
                 * by a thread before we listened: then the event names the
                 * thread, the registry the process.  Only VMs whose CREATE we
                 * never saw can be such: check which of those lost that fd,
                 * and walk nothing in the common case. */
                if (d->registry->n_creator_unknown == 0)
                        break;
                REGISTRY_FOREACH_SAFE(i, next, d->registry)
                        if (!i->creator_known && i->fd == ev->fd && !proc_fd_is_kvm_vm(i->pid, i->fd))
                                deliver_vm_gone(d, i, "destroyed (last reference closed)");
                break;
        }
}

/* Is this daemon in a PID namespace below the host's (a container)?  The
 * kernel's initial PID namespace has a fixed inode, PROC_PID_INIT_INO. */
static bool in_child_pid_namespace(void) {
        char link[64] = "";

        if (readlink("/proc/self/ns/pid", link, sizeof(link) - 1) < 0)
                return false;
        return !streq(link, "pid:[4026531836]");
}

#define RESCAN_INTERVAL_USEC (1000 * 1000ULL)

static int on_rescan_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) deliver_rescan(userdata);
        return 0;
}

/* One rescan for however many uevents ask for it, a second after the last
 * at the earliest: each costs a walk of every process's fds. */
static void rescan_soon(struct deliver *d, const char *why) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), at = d->last_rescan + RESCAN_INTERVAL_USEC;
        int enabled = SD_EVENT_OFF;

        if (at < now)
                at = now;
        if (d->rescan_timer)
                (void) sd_event_source_get_enabled(d->rescan_timer, &enabled);
        if (enabled != SD_EVENT_OFF)
                return;         /* one is coming: it sees this VM too */
        log_info("%s: rescanning /proc", why);
        if (d->rescan_timer) {
                (void) sd_event_source_set_time(d->rescan_timer, at);
                (void) sd_event_source_set_enabled(d->rescan_timer, SD_EVENT_ONESHOT);
        } else if (sd_event_add_time(d->event, &d->rescan_timer, CLOCK_MONOTONIC, at, 0, on_rescan_timer, d) >= 0)
                (void) sd_event_source_set_description(d->rescan_timer, "proc-rescan");
        else
                (void) deliver_rescan(d);       /* out of memory: now, then */
}

static void on_overflow(bool enobufs, void *userdata) {
        struct deliver *d = userdata;

        if (enobufs) {
                log_warning("Kernel uevents were lost (receive buffer overflow)");
                rescan_soon(d, "Uevents were lost");
                return;
        }
        if (!in_child_pid_namespace()) {
                /* Its creator is gone already: where did the VM go? */
                rescan_soon(d, "A uevent named a VM whose creating thread is gone");
                return;
        }
        /* In a container the kernel names every VM's creator by its PID on
         * the host, which this namespace cannot see: a VM of a process here
         * and one of the host or of another container look the same.  The
         * rescan (at most one a second) finds ours; the rest are counted
         * (pmufilterd(8), CONTAINERS). */
        d->unseen_pending++;
        rescan_soon(d, "A uevent named a VM whose creator is not visible in this PID namespace");
}

int deliver_watch(struct deliver *d) {
        int r;

        /* Listen first, then scan: a VM created in between is seen twice,
         * never not at all. */
        r = uevent_watcher_new(d->event, on_uevent, on_overflow, d, &d->watcher);
        if (r < 0)
                return log_error_errno(r, "Failed to listen to kernel uevents: %m");
        r = uevent_watcher_receive_buffer(d->watcher);
        if (r >= 0 && r < UEVENT_RECEIVE_BUFFER)
                log_notice("The uevent receive buffer is %d KiB, not %d MiB (no CAP_NET_ADMIN: net.core.rmem_max "
                           "caps it); a burst of VM starts may overflow it and cost a /proc rescan",
                           r / 1024, UEVENT_RECEIVE_BUFFER / (1024 * 1024));
        return deliver_rescan(d);
}
