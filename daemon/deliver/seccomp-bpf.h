/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * seccomp-bpf.h — what a process's seccomp filters would answer to one
 * system call, decided before the call is made.  A small classic-BPF
 * interpreter that accepts exactly the programs the kernel accepts for
 * seccomp (bpf_check_classic() + seccomp_check_filter()) and runs them over
 * the exact struct seccomp_data; the filters come from
 * PTRACE_SECCOMP_GET_FILTER, which hands back the programs as installed.
 * Used by inject.c to refuse an injection a filter would punish.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include "util.h"

/* Check prog as the kernel does when it is installed: 1..4096
 * instructions, only the opcodes seccomp allows, loads aligned inside
 * seccomp_data, jumps inside the program, scratch memory written before it
 * is read, and a RET last.  0, or -EINVAL with *ret_pc (if not NULL) the
 * first offending instruction. */
int seccomp_bpf_check(const struct sock_filter *prog, size_t len, size_t *ret_pc);

/* Run prog (checked first: -EINVAL if the kernel would not have taken it)
 * on sd and store the filter's 32-bit return value in *ret. */
int seccomp_bpf_run(const struct sock_filter *prog, size_t len, const struct seccomp_data *sd,
                    uint32_t *ret);

/* The kernel's combination of two filters' answers: the one whose action
 * takes precedence (KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > USER_NOTIF >
 * TRACE > LOG > ALLOW); on a tie, a (the newer filter's answer). */
uint32_t seccomp_action_combine(uint32_t a, uint32_t b);

/* Whether the system call runs under this answer: ALLOW or LOG only.
 * (TRACE does not: without a tracer asking for seccomp events it fails the
 * call with ENOSYS.) */
bool seccomp_action_runs(uint32_t ret);

/* "allow", "kill-process", "errno 1 (EPERM)" ... into buf; returns buf. */
const char *seccomp_action_format(uint32_t ret, char *buf, size_t size);

/* Filter number index (0: the oldest) of tid, which must be ptrace-stopped
 * by the caller; needs CAP_SYS_ADMIN and a caller not under seccomp itself
 * (else -EACCES).  -ENOENT past the last filter, -EINVAL when tid has no
 * filter mode.  *ret_prog is owned by the caller. */
int seccomp_filter_dump(pid_t tid, unsigned index, struct sock_filter **ret_prog, size_t *ret_len);

/* Run every filter of the stopped tid on sd, as the kernel does on entry
 * to the call, and store the combined answer in *ret.  *ret_nfilters (if
 * not NULL) gets how many filters were evaluated.  Errors from dumping are
 * passed on; -EINVAL when a dumped program does not check. */
int seccomp_filters_evaluate(pid_t tid, const struct seccomp_data *sd, uint32_t *ret,
                             unsigned *ret_nfilters);
