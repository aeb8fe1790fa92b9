/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * inject-proc.h — what /proc says before anything is stopped: whether the
 * process may be injected into at all (stopped, traced, the fd a KVM VM),
 * and which of its threads to borrow, best first.  Internal to inject.c.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "inject.h"
#include "util.h"

struct inject_task {
        pid_t tid;
        long nr;                /* the call it is blocked in */
        int tier;               /* enum arch_tier */
        int seccomp;            /* Seccomp: 0 none, 1 strict, 2 filter */
};

/* The process as a whole: alive and not stopped, no thread traced, and
 * vm_fd a KVM VM ("anon_inode:kvm-vm").  0, or a refusal in res. */
int inject_check_process(pid_t pid, int vm_fd, struct inject_result *res);

/* Threads blocked (sleeping, not in D state) in a call of a non-NEVER tier,
 * quiet ones first, the main thread first within a tier.  *ret_n may be 0:
 * then res->reason says what the threads were doing.  Negative: refused
 * (gone, or a thread traced meanwhile). */
int inject_list_candidates(pid_t pid, struct inject_task **ret, size_t *ret_n, struct inject_result *res);

/* TracerPid of the thread: > 0 traced, 0 not, -errno. */
pid_t inject_task_tracer(pid_t pid, pid_t tid);

/* A refusal for an EPERM/EACCES from PTRACE_SEIZE, saying which rule it
 * probably was (no CAP_SYS_PTRACE, Yama's ptrace_scope, an LSM). */
int inject_refuse_permission(struct inject_result *res, int r, pid_t pid, pid_t tid);

/* Fill res->reason and return r. */
int inject_refuse(struct inject_result *res, int r, const char *fmt, ...) _printf_(3, 4);

