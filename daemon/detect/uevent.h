/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uevent.h — the kernel's word on VMs coming and going: `change` uevents of
 * the misc device kvm with EVENT=create|destroy, read from the kernel's
 * netlink socket (there may be no udevd), and the parsers for them.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

struct proc_facts;

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
        /* CREATE from the watcher: pid's start time and comm, from the read
         * that named the process (proc_facts_open_task()); NULL where
         * none was made.  The handler may take them over (and leave an
         * empty struct); the watcher frees what is left. */
        struct proc_facts *facts;
};

/* Pure: from the uevent's property values (any may be NULL).  EVENT, PID,
 * COUNT and CREATED are required; STATS_PATH is optional, but if present
 * must name PID.  Sets pid = tid = PID.  -EBADMSG on anything else. */
int kvm_uevent_parse(const char *event, const char *pid, const char *stats_path,
                     const char *count, const char *created, struct kvm_uevent *ret);

/* Pure: one message of the kernel's uevent socket, len bytes ("ACTION@DEVPATH"
 * and "KEY=value" strings, each NUL-terminated).  0 for a kvm event
 * (ACTION=change, SUBSYSTEM=misc, DEVPATH ending in /kvm and agreeing with
 * the header), then as kvm_uevent_parse() of its EVENT, PID, STATS_PATH,
 * COUNT and CREATED; -ENOENT for a well-formed message of anything else;
 * -EBADMSG for a malformed one (no header, not NUL-terminated, a key
 * twice, more than UEVENT_PROPS_MAX strings, a bad kvm event). */
#define UEVENT_MSG_MAX 8192
#define UEVENT_PROPS_MAX 64
int kvm_uevent_parse_message(const char *buf, size_t len, struct kvm_uevent *ret);

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

/* Dispatch what is queued, before the loop would: an ATTACH is judged on
 * the CREATE uevent of its VM, which the kernel sent before the VMM even
 * had the fd.  Everything queued before the loop last polled is
 * dispatched when this returns; with nothing of that left (the common
 * case: its entry not pending, base/iomux.h), it reads nothing (docs/decisions.md, "No
 * read only to hear EAGAIN").  Called from a dispatch of the loop, about
 * something that poll saw.  NULL is fine. */
#define UEVENT_FLUSH_MAX 65536
void uevent_watcher_flush(struct uevent_watcher *w);

/* The socket's receive buffer; the default is UEVENT_RECEIVE_BUFFER.
 * Tests shrink it to provoke an overflow.  Returns the size granted. */
#define UEVENT_RECEIVE_BUFFER (128 * 1024 * 1024)
int uevent_watcher_set_receive_buffer(struct uevent_watcher *w, int size);
/* What the kernel granted (it doubles what is asked, for its bookkeeping). */
int uevent_watcher_receive_buffer(struct uevent_watcher *w);
