/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * watch.c — feeds the registry from the kernel: `create`/`destroy` uevents
 * of the kvm misc device, and the /proc scan.  The scan runs at start-up
 * (VMs created while the daemon was down) and after the uevent socket
 * overflowed (ENOBUFS: events were lost, so the truth is read from /proc).
 */
#include <linux/kcmp.h>
#include <sys/syscall.h>

#include "log.h"
#include "manager.h"
#include "procscan.h"
#include "uevent.h"
#include "watch.h"

int same_file(pid_t pid_a, int fd_a, pid_t pid_b, int fd_b) {
        long r = syscall(SYS_kcmp, pid_a, pid_b, KCMP_FILE, (unsigned long) fd_a, (unsigned long) fd_b);

        if (r < 0)
                return -errno;
        return r == 0;
}

/* Another fd of the same process already registered for this VM (a dup)? */
static bool known_as_other_fd(struct manager *m, pid_t pid, int fd) {
        REGISTRY_FOREACH(vm, &m->registry)
                if (vm->pid == pid && vm->fd != fd && same_file(pid, fd, pid, vm->fd) > 0)
                        return true;
        return false;
}

int manager_rescan(struct manager *m) {
        _cleanup_free_ struct vm_fd_ref *refs = NULL;
        size_t n = 0, found = 0;
        int r;

        r = procscan_all(&refs, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to scan /proc for VMs: %m");
        if (r > 0 && !m->warned_unreadable) {
                /* Without CAP_DAC_READ_SEARCH (or under hidepid=) VMs of other users go unseen. */
                log_warning("Could not read the fd table of %d processes: their VMs are not seen "
                            "(missing CAP_DAC_READ_SEARCH or CAP_SYS_PTRACE?)", r);
                m->warned_unreadable = true;
        }

        /* Entries whose process is gone lost their destroy uevent. */
        for (struct vm *vm = m->registry.head, *next; vm; vm = next) {
                next = vm->list_next;
                if (proc_starttime(vm->pid) != vm->starttime)
                        manager_vm_gone(m, vm, "its process exited");
        }

        for (size_t i = 0; i < n; i++) {
                /* Our own: the KVM probe's scratch VM, an ATTACH fd not closed yet. */
                if (refs[i].pid == getpid())
                        continue;
                if (registry_get(&m->registry, refs[i].pid, refs[i].fd))
                        continue;
                if (known_as_other_fd(m, refs[i].pid, refs[i].fd))
                        continue;
                r = manager_vm_detected(m, refs[i].pid, refs[i].fd, NULL);
                if (r > 0)
                        found++;
        }
        log_info("Scanned /proc: %zu VM fds, %zu VMs newly found, %zu known", n, found, m->registry.n_vms);
        return 0;
}

/* Register every VM fd of pid we do not know yet (dups of known ones aside). */
static void scan_pid(struct manager *m, pid_t pid) {
        _cleanup_free_ struct vm_fd_ref *refs = NULL;
        size_t n = 0;

        if (procscan_pid(pid, &refs, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++)
                if (!registry_get(&m->registry, pid, refs[i].fd) && !known_as_other_fd(m, pid, refs[i].fd))
                        (void) manager_vm_detected(m, pid, refs[i].fd, NULL);
}

/* Drop the VMs of pid whose fd no longer is a VM (their destroy uevent named no fd). */
static void prune_pid(struct manager *m, pid_t pid) {
        for (struct vm *vm = m->registry.head, *next; vm; vm = next) {
                next = vm->list_next;
                if (vm->pid == pid && !proc_fd_is_kvm_vm(pid, vm->fd))
                        manager_vm_gone(m, vm, "destroyed (last reference closed)");
        }
}

struct deferred_scan {
        struct manager *manager;
        pid_t pid;
        sd_event_source *source;
};

static int on_deferred_scan(sd_event_source *s, uint64_t usec, void *userdata) {
        struct deferred_scan *d = userdata;

        scan_pid(d->manager, d->pid);
        sd_event_source_unref(d->source);
        free(d);
        return 0;
}

static void defer_scan_pid(struct manager *m, pid_t pid) {
        struct deferred_scan *d = calloc(1, sizeof(*d));

        if (!d)
                return;
        d->manager = m;
        d->pid = pid;
        if (sd_event_add_time_relative(m->event, &d->source, CLOCK_MONOTONIC, 50 * 1000, 0,
                                       on_deferred_scan, d) < 0)
                free(d);
}

static void on_uevent(const struct kvm_uevent *ev, void *userdata) {
        struct manager *m = userdata;
        struct vm *vm;

        if (ev->pid == getpid())
                return;
        switch (ev->type) {
        case KVM_UEVENT_CREATE:
                if (ev->fd < 0) {
                        /* No STATS_PATH: the fd number is unknown, and not installed yet
                         * either (the uevent comes first).  Look now, and once more a
                         * little later. */
                        scan_pid(m, ev->pid);
                        defer_scan_pid(m, ev->pid);
                        break;
                }
                if (manager_vm_detected(m, ev->pid, ev->fd, NULL) == -ESRCH)
                        log_debug("VM %d-%d: its process exited before we saw it", (int) ev->pid, ev->fd);
                break;
        case KVM_UEVENT_DESTROY:
                if (ev->fd < 0) {
                        prune_pid(m, ev->pid);
                        break;
                }
                vm = registry_get(&m->registry, ev->pid, ev->fd);
                if (vm) {
                        manager_vm_gone(m, vm, "destroyed (last reference closed)");
                        break;
                }
                /* Created by a thread before we listened: the event names the
                 * thread, the registry the process.  Check who lost that fd. */
                for (struct vm *i = m->registry.head, *next; i; i = next) {
                        next = i->list_next;
                        if (i->fd == ev->fd && !proc_fd_is_kvm_vm(i->pid, i->fd))
                                manager_vm_gone(m, i, "destroyed (last reference closed)");
                }
                break;
        }
}

static void on_overflow(bool enobufs, void *userdata) {
        struct manager *m = userdata;

        if (enobufs)
                log_warning("Kernel uevents were lost (receive buffer overflow): rescanning /proc");
        else    /* another PID namespace (a container), or its creator is gone already */
                log_info("A uevent named a VM whose process is not visible here: rescanning /proc");
        (void) manager_rescan(m);
}

int watch_start(struct manager *m) {
        int r;

        /* Listen first, then scan: a VM created in between is seen twice,
         * never not at all. */
        r = uevent_watcher_new(m->event, on_uevent, on_overflow, m, &m->watcher);
        if (r < 0)
                return log_error_errno(r, "Failed to listen to kernel uevents: %m");
        return manager_rescan(m);
}
