/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uevent.h — the kernel's word on VMs coming and going: `change` uevents of
 * the misc device kvm with EVENT=create|destroy, read from the kernel's
 * netlink source (there may be no udevd), and the parser for them.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

enum kvm_uevent_type {
        KVM_UEVENT_CREATE,
        KVM_UEVENT_DESTROY,
};

struct kvm_uevent {
        enum kvm_uevent_type type;
        /* The VMM process.  The kernel's PID= is the *thread* that issued
         * KVM_CREATE_VM (initial pid namespace); the watcher turns it into
         * its process (see tid).  Where it cannot, pid == tid. */
        pid_t pid;
        pid_t tid;              /* PID= as sent */
        /* The VM's fd number in that process at creation, from
         * STATS_PATH=/kvm/<tid>-<fd>; -1 when the kernel sent no
         * STATS_PATH (no debugfs, or "<tid>-<fd>" still taken by an
         * older VM): scan the process to find it. */
        int fd;
        uint64_t count;         /* COUNT=: VMs alive on the host after this event */
        uint64_t created;       /* CREATED=: VMs ever created since boot */
};

/* Pure: from the uevent's property values (any may be NULL).  EVENT, PID,
 * COUNT and CREATED are required; STATS_PATH is optional, but if present
 * must name PID.  Sets pid = tid = PID.  -EBADMSG on anything else. */
int kvm_uevent_parse(const char *event, const char *pid, const char *stats_path,
                     const char *count, const char *created, struct kvm_uevent *ret);

typedef void (*uevent_handler_t)(const struct kvm_uevent *ev, void *userdata);
/* The watcher cannot vouch that every VM was reported: the kernel dropped
 * uevents (ENOBUFS), or a VM's creator vanished before it could be told
 * which process it belonged to.  Called once the queued events have been
 * delivered; the caller rescans /proc. */
typedef void (*uevent_overflow_t)(bool enobufs, void *userdata);   /* enobufs: the kernel dropped some */

struct uevent_watcher;

/* Listen on e.  Root gets the large receive buffer (SO_RCVBUFFORCE).  The
 * callbacks run from the loop and must not free the watcher. */
int uevent_watcher_new(sd_event *e, uevent_handler_t on_event, uevent_overflow_t on_overflow,
                       void *userdata, struct uevent_watcher **ret);
struct uevent_watcher *uevent_watcher_free(struct uevent_watcher *w);

/* Dispatch what is queued now, before the loop would: an ATTACH is
 * judged on the CREATE uevent of its VM, which the kernel sent before the
 * VMM even had the fd.  NULL is fine. */
#define UEVENT_FLUSH_MAX 65536
void uevent_watcher_flush(struct uevent_watcher *w);

/* The socket's receive buffer; the default is UEVENT_RECEIVE_BUFFER.
 * Tests shrink it to provoke an overflow.  Returns the size granted. */
#define UEVENT_RECEIVE_BUFFER (128 * 1024 * 1024)
int uevent_watcher_set_receive_buffer(struct uevent_watcher *w, int size);
/* What the kernel granted (it doubles what is asked, for its bookkeeping). */
int uevent_watcher_receive_buffer(struct uevent_watcher *w);
