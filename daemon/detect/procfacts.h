/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * procfacts.h — what the kernel and systemd say about a VMM process: the
 * facts the policy's rules match on (pmufilterd.yaml(5), "Match keys": exe,
 * comm, uid, gid, user, group, cgroup, unit, slice, machine).  Read from /proc and the cgroup
 * tree, never taken from what the VMM claims about itself.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

struct proc_facts {
        pid_t pid;
        uid_t uid;              /* real uid (see docs/decisions.md "Watching VMs") */
        gid_t gid;              /* real gid */
        unsigned loaded;        /* PROC_FACT_* read so far (pid, starttime, comm always) */
        uint64_t starttime;     /* /proc/<pid>/stat field 22: tells a reused pid apart */
        char *exe;              /* /proc/<pid>/exe, " (deleted)" removed: see exe_deleted */
        char *comm;             /* /proc/<pid>/comm */
        char *user, *group;     /* names; the number as text where the name is unknown */
        char *cgroup;           /* unified hierarchy path ("0::" line) or NULL */
        char *unit, *slice;     /* systemd unit and slice, NULL outside any */
        char *machine;          /* systemd-machined name, NULL if none */
        char *machine_uuid;     /* and its UUID (lower case, 8-4-4-4-12), NULL if none or unknown */
        bool exe_deleted;       /* the binary was replaced or removed since it started */
};

/* The facts beyond pid, starttime and comm, in the groups they are read in.
 * Each costs its own /proc or cgroup-tree reads (docs/benchmarks.md), so
 * the daemon reads a group only when a rule asks about one of its keys. */
enum {
        PROC_FACT_EXE     = 1u << 0,    /* exe, exe_deleted */
        PROC_FACT_IDS     = 1u << 1,    /* uid, gid */
        PROC_FACT_NAMES   = 1u << 2,    /* user, group (NSS; implies IDS) */
        PROC_FACT_CGROUP  = 1u << 3,
        PROC_FACT_UNIT    = 1u << 4,
        PROC_FACT_SLICE   = 1u << 5,
        PROC_FACT_MACHINE = 1u << 6,    /* machine, machine_uuid */
        PROC_FACT_ALL     = (1u << 7) - 1,
};

/* The group that holds a rule key's fact: 0 for comm and for keys that are
 * not facts (name, label.*, ...). */
unsigned proc_fact_of_key(const char *key);

/* pid, starttime and comm only; proc_facts_load() adds the rest. */
int proc_facts_open(pid_t pid, struct proc_facts *ret);
/* Read the groups of mask not read yet.  -ESRCH if the process that
 * f->starttime names no longer holds f->pid: nothing is then added.  A
 * group that failed stays unread (and its keys unknown). */
int proc_facts_load(struct proc_facts *f, unsigned mask);
void proc_facts_done(struct proc_facts *f);

/* All facts of pid at once (the daemon reads them by group; the tests read
 * all).  -ESRCH if the process is gone, or was replaced by another one
 * under the same pid while being read (the starttime is read before and
 * after and must agree).  Facts that systemd does not know (unit, slice,
 * machine) are NULL, not errors. */
static inline int proc_facts_read(pid_t pid, struct proc_facts *ret) {
        struct proc_facts f = {};
        int r;

        r = proc_facts_open(pid, &f);
        if (r >= 0)
                r = proc_facts_load(&f, PROC_FACT_ALL);
        if (r < 0) {
                proc_facts_done(&f);
                return r;
        }
        *ret = f;
        return 0;
}

/* Field 22 of /proc/<pid>/stat (clock ticks since boot); 0 if gone. */
uint64_t proc_starttime(pid_t pid);

/* The process (thread group) a task belongs to, with its facts as
 * proc_facts_open() reads them (ret->pid is the process): the uevent's
 * PID= is the *thread* that created the VM.  A thread-group leader is told
 * by the exit_signal of its /proc/<tid>/stat (its facts from that one
 * read), any other thread by the Tgid: of its status file.  -ESRCH if the
 * task is gone; *ret is untouched on failure. */
int proc_facts_open_task(pid_t tid, struct proc_facts *ret);
