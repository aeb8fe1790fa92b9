/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * inject.h — adoption by injection (pmufilterd(8), ADOPTION BY INJECTION): make a
 * VMM's own process
 * issue KVM_SET_PMU_EVENT_FILTER on its VM, by ptrace, because KVM takes VM
 * ioctls only from the process that created the VM.  One call, self
 * contained; the daemon decides when (settings.adopt: ptrace) and reports
 * the result.  x86-64 only (the architecture's part is inject-x86_64.c).
 * The refusal rules and the risks are in docs/decisions.md, "Adoption by
 * injection".
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

struct inject_result {
        int error;              /* the ioctl's errno as the VMM's kernel returned it, 0 ok */
        char reason[256];       /* why refused (empty when the ioctl ran) */
        pid_t tid;              /* the thread that made the call, 0 if none did */
        uint32_t stopped_us;    /* how long that thread was held stopped, µs */
};

/* Issue KVM_SET_PMU_EVENT_FILTER(vm_fd, {action, flags, fixed, events}) inside
 * process pid.  Returns 0 when the ioctl ran (its own result in ret->error),
 * or a negative errno when injection was refused or failed, with ret->reason
 * saying why:
 *   -EBUSY   a thread is traced already, or the process is stopped;
 *   -EPERM   seccomp would not allow the call, or ptrace is not permitted
 *            (capabilities, Yama, LSM);
 *   -EACCES  a seccomp filter is present and cannot be evaluated;
 *   -ENOEXEC not an x86-64 process;
 *   -EBADF   vm_fd is not a KVM VM in pid;
 *   -ETIME   no thread could be stopped safely within timeout_ms;
 *   -EFAULT  no room below the borrowed thread's stack pointer;
 *   -ESRCH   the process is gone;  -E2BIG  too many events to carry.
 * The caller checks that pid is still the VMM it means (its start time)
 * just before: the fd check here cannot tell a reused pid.
 * Never leaves a thread stopped: every wait is bounded, and the tracing is
 * done by a short-lived thread whose exit makes the kernel let go of
 * anything still held.  ret is always written. */
int inject_pmu_filter(pid_t pid, int vm_fd, uint32_t action, uint32_t flags, uint32_t fixed_counter_bitmap,
                      const uint64_t *events, uint32_t nevents, int timeout_ms, struct inject_result *ret);
