/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * procfacts.h — what the kernel and systemd say about a VMM process: the
 * facts the policy's rules match on (DESIGN §4: exe, comm, uid, gid, user,
 * group, cgroup, unit, slice, machine).  Read from /proc and the cgroup
 * tree, never taken from what the VMM claims about itself.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

struct proc_facts {
        pid_t pid;
        uint64_t starttime;     /* /proc/<pid>/stat field 22: tells a reused pid apart */
        char *exe;              /* /proc/<pid>/exe, " (deleted)" removed: see exe_deleted */
        bool exe_deleted;       /* the binary was replaced or removed since it started */
        char *comm;             /* /proc/<pid>/comm */
        uid_t uid;              /* real uid (see docs/decisions.md "Watching VMs") */
        gid_t gid;              /* real gid */
        char *user, *group;     /* names; the number as text where the name is unknown */
        char *cgroup;           /* unified hierarchy path ("0::" line) or NULL */
        char *unit, *slice;     /* systemd unit and slice, NULL outside any */
        char *machine;          /* systemd-machined name, NULL if none */
};

/* Read all facts of pid.  -ESRCH if the process is gone, or was replaced
 * by another one under the same pid while being read (the starttime is
 * read before and after and must agree).  Facts that systemd does not know
 * (unit, slice, machine) are NULL, not errors. */
int proc_facts_read(pid_t pid, struct proc_facts *ret);
void proc_facts_done(struct proc_facts *f);

/* Field 22 of /proc/<pid>/stat (clock ticks since boot); 0 if gone. */
uint64_t proc_starttime(pid_t pid);

/* The process (thread group) a task belongs to: the uevent's PID= is the
 * *thread* that created the VM.  -ESRCH if the task is gone. */
int proc_get_tgid(pid_t tid, pid_t *ret);
