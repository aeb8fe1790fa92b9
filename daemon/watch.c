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

/* One VM fd of a process, and whether the registry has that (pid, fd). */
struct fd_entry {
        int fd;
        bool known;
};

/* kcmp(KCMP_FILE) orders open files (1: less, 2: greater), so sorting a
 * process's VM fds by it puts the dups of one VM side by side.  Where it
 * gives no order (the process is gone, no permission) the fd number
 * stands in, and such dups go unnoticed, as a failed comparison did before. */
static int compare_file(const void *a, const void *b, void *userdata) {
        const struct fd_entry *x = a, *y = b;
        pid_t pid = *(const pid_t *) userdata;
        long r = syscall(SYS_kcmp, pid, pid, KCMP_FILE, (unsigned long) x->fd, (unsigned long) y->fd);

        if (r == 0 || r == 1 || r == 2)
                return r == 0 ? 0 : r == 1 ? -1 : 1;
        return x->fd < y->fd ? -1 : x->fd > y->fd;
}

/* Register each VM of pid that the registry does not know under any of its
 * fds (e: every VM fd pid holds now), once, under its lowest fd.  A
 * registered VM's fd that is no VM any more cannot be a dup of one that is,
 * so e covers every fd a dup could match.  Sorting costs O(k log k) kcmp
 * calls for k fds; comparing each new fd with every registered VM of the
 * process was O(k²) (a start-up with 3,000 VMs in one process: 14 s). */
static size_t register_new_fds(struct manager *m, pid_t pid, struct fd_entry *e, size_t n) {
        size_t found = 0;

        if (n > 1)
                qsort_r(e, n, sizeof(*e), compare_file, &pid);
        for (size_t i = 0, j; i < n; i = j) {
                bool known = e[i].known;
                int lowest = e[i].fd;

                for (j = i + 1; j < n && same_file(pid, e[i].fd, pid, e[j].fd) > 0; j++) {
                        known = known || e[j].known;
                        lowest = e[j].fd < lowest ? e[j].fd : lowest;
                }
                if (!known && manager_vm_detected(m, pid, lowest, NULL) > 0)
                        found++;
        }
        return found;
}

int manager_rescan(struct manager *m) {
        _cleanup_free_ struct vm_fd_ref *refs = NULL;
        _cleanup_free_ struct fd_entry *e = NULL;
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

        e = calloc(n + 1, sizeof(*e));
        if (!e)
                return log_error_errno(ENOMEM, "Failed to scan /proc for VMs: %m");
        /* refs is sorted by pid: one process at a time. */
        for (size_t i = 0, j; i < n; i = j) {
                pid_t pid = refs[i].pid;

                for (j = i; j < n && refs[j].pid == pid; j++)
                        e[j - i] = (struct fd_entry) { refs[j].fd, registry_get(&m->registry, pid, refs[j].fd) != NULL };
                /* Our own: the KVM probe's scratch VM, an ATTACH fd not closed yet. */
                if (pid != getpid())
                        found += register_new_fds(m, pid, e, j - i);
        }
        log_info("Scanned /proc: %zu VM fds, %zu VMs newly found, %zu known", n, found, m->registry.n_vms);
        return 0;
}

/* Register every VM fd of pid we do not know yet (dups of known ones aside). */
static void scan_pid(struct manager *m, pid_t pid) {
        _cleanup_free_ struct vm_fd_ref *refs = NULL;
        _cleanup_free_ struct fd_entry *e = NULL;
        size_t n = 0;

        if (procscan_pid(pid, &refs, &n) < 0)
                return;
        e = calloc(n + 1, sizeof(*e));
        if (!e)
                return;
        for (size_t i = 0; i < n; i++)
                e[i] = (struct fd_entry) { refs[i].fd, registry_get(&m->registry, pid, refs[i].fd) != NULL };
        (void) register_new_fds(m, pid, e, n);
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
                vm = NULL;
                if (manager_vm_detected(m, ev->pid, ev->fd, &vm) == -ESRCH)
                        log_debug("VM %d-%d: its process exited before we saw it", (int) ev->pid, ev->fd);
                else if (vm)
                        registry_creator_seen(&m->registry, vm);
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
                /* Gone already (its session or a rescan saw it go), or created
                 * by a thread before we listened: then the event names the
                 * thread, the registry the process.  Only VMs whose CREATE we
                 * never saw can be such: check which of those lost that fd,
                 * and walk nothing in the common case. */
                if (m->registry.n_creator_unknown == 0)
                        break;
                for (struct vm *i = m->registry.head, *next; i; i = next) {
                        next = i->list_next;
                        if (!i->creator_known && i->fd == ev->fd && !proc_fd_is_kvm_vm(i->pid, i->fd))
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

void watch_scan_pid(struct manager *m, pid_t pid) {
        scan_pid(m, pid);
}

int watch_start(struct manager *m) {
        int r;

        /* Listen first, then scan: a VM created in between is seen twice,
         * never not at all. */
        r = uevent_watcher_new(m->event, on_uevent, on_overflow, m, &m->watcher);
        if (r < 0)
                return log_error_errno(r, "Failed to listen to kernel uevents: %m");
        r = uevent_watcher_receive_buffer(m->watcher);
        if (r >= 0 && r < UEVENT_RECEIVE_BUFFER)
                log_notice("The uevent receive buffer is %d KiB, not %d MiB (no CAP_NET_ADMIN: net.core.rmem_max "
                           "caps it); a burst of VM starts may overflow it and cost a /proc rescan",
                           r / 1024, UEVENT_RECEIVE_BUFFER / (1024 * 1024));
        return manager_rescan(m);
}
