/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * inject-x86_64.c — the x86-64 half of the injection (inject-arch.h): the
 * register layout, `syscall` (0f 05), the system call ABI (rax = number,
 * rdi/rsi/rdx/r10/r8/r9 = arguments, orig_rax = the call being made), the
 * 128-byte red zone of the SysV ABI, and which blocking calls the kernel
 * restarts on its own after a ptrace stop.
 */
#include <elf.h>
#include <errno.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <linux/audit.h>

#include "inject-arch.h"
#include "util.h"

/* The kernel's __USER_CS: a 64-bit code segment.  A 64-bit task can far
 * jump into 32-bit code (0x23); then its calls are not ours to make. */
#define USER64_CS 0x33
#define RED_ZONE 128
#define STACK_ALIGN 16

static const struct {
        long nr;
        const char *name;
        enum arch_tier tier;
} calls[] = {
        /* -ERESTARTNOHAND, -ERESTARTSYS or -ERESTART_RESTARTBLOCK when a
         * ptrace stop interrupts them: with no signal to deliver, the
         * kernel rewinds to the instruction and calls again. */
        { SYS_poll,            "poll",            ARCH_TIER_QUIET },
        { SYS_ppoll,           "ppoll",           ARCH_TIER_QUIET },
        { SYS_select,          "select",          ARCH_TIER_QUIET },
        { SYS_pselect6,        "pselect6",        ARCH_TIER_QUIET },
        { SYS_nanosleep,       "nanosleep",       ARCH_TIER_QUIET },
        { SYS_clock_nanosleep, "clock_nanosleep", ARCH_TIER_QUIET },
        { SYS_futex,           "futex",           ARCH_TIER_QUIET },
        { SYS_futex_waitv,     "futex_waitv",     ARCH_TIER_QUIET },
        { SYS_pause,           "pause",           ARCH_TIER_QUIET },
        { SYS_rt_sigsuspend,   "rt_sigsuspend",   ARCH_TIER_QUIET },
        { SYS_wait4,           "wait4",           ARCH_TIER_QUIET },
        { SYS_waitid,          "waitid",          ARCH_TIER_QUIET },
        { SYS_restart_syscall, "restart_syscall", ARCH_TIER_QUIET },
        /* These return EINTR to the program, as they do after any
         * SIGSTOP/SIGCONT (signal(7)); loops around them retry. */
        { SYS_epoll_wait,      "epoll_wait",      ARCH_TIER_EINTR },
        { SYS_epoll_pwait,     "epoll_pwait",     ARCH_TIER_EINTR },
        { SYS_epoll_pwait2,    "epoll_pwait2",    ARCH_TIER_EINTR },
        { SYS_read,            "read",            ARCH_TIER_EINTR },
        { SYS_recvfrom,        "recvfrom",        ARCH_TIER_EINTR },
        { SYS_recvmsg,         "recvmsg",         ARCH_TIER_EINTR },
        { SYS_rt_sigtimedwait, "rt_sigtimedwait", ARCH_TIER_EINTR },
};

enum arch_tier arch_syscall_tier(long nr) {
        for (size_t i = 0; i < ELEMENTSOF(calls); i++)
                if (calls[i].nr == nr)
                        return calls[i].tier;
        return ARCH_TIER_NEVER;
}

const char *arch_syscall_name(long nr) {
        for (size_t i = 0; i < ELEMENTSOF(calls); i++)
                if (calls[i].nr == nr)
                        return calls[i].name;
        return nr == SYS_ioctl ? "ioctl" : NULL;
}

int arch_regs_get(pid_t tid, arch_regs_t *ret) {
        arch_regs_t r;
        struct iovec iov = { .iov_base = &r, .iov_len = sizeof(r) };

        /* NT_PRSTATUS answers in the task's own view: a 32-bit task's set
         * is shorter, where PTRACE_GETREGS would show it in 64-bit form. */
        if (ptrace(PTRACE_GETREGSET, tid, (void *) NT_PRSTATUS, &iov) < 0)
                return -errno;
        if (iov.iov_len != sizeof(r) || r.cs != USER64_CS)
                return -ENOEXEC;
        *ret = r;
        return 0;
}

int arch_regs_set(pid_t tid, const arch_regs_t *regs) {
        struct iovec iov = { .iov_base = (void *) regs, .iov_len = sizeof(*regs) };

        if (ptrace(PTRACE_SETREGSET, tid, (void *) NT_PRSTATUS, &iov) < 0)
                return -errno;
        return 0;
}

long arch_regs_syscall_nr(const arch_regs_t *r) {
        return (long) r->orig_rax;
}

uint64_t arch_regs_syscall_insn(const arch_regs_t *r) {
        /* rip points after the instruction; the kernel's own restart logic
         * rewinds by the same 2 bytes. */
        return r->rip - ARCH_SYSCALL_INSN_LEN;
}

bool arch_is_syscall_insn(const uint8_t *bytes) {
        return bytes[0] == 0x0f && bytes[1] == 0x05;
}

uint64_t arch_scratch_address(const arch_regs_t *r, size_t size) {
        return (r->rsp - RED_ZONE - size) & ~(uint64_t) (STACK_ALIGN - 1);
}

void arch_regs_set_syscall(arch_regs_t *r, uint64_t insn, long nr, const uint64_t args[3]) {
        r->rip = insn;
        r->rax = (uint64_t) nr;
        r->rdi = args[0];
        r->rsi = args[1];
        r->rdx = args[2];
        /* The thread is stopped on its way out of the interrupted call;
         * with orig_rax = -1 the kernel sees no call to restart, and the
         * `syscall` at rip makes ours instead. */
        r->orig_rax = (uint64_t) -1;
}

void arch_seccomp_data(const arch_regs_t *r, struct seccomp_data *ret) {
        *ret = (struct seccomp_data) {
                .nr = (int) r->rax,
                .arch = AUDIT_ARCH_X86_64,
                /* The kernel reports the user rip at entry: after the insn. */
                .instruction_pointer = r->rip + ARCH_SYSCALL_INSN_LEN,
                .args = { r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9 },
        };
}

long arch_regs_syscall_result(const arch_regs_t *r) {
        return (long) r->rax;
}

long arch_nr_ioctl(void) {
        return SYS_ioctl;
}
