/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * inject-arch.h — what inject.c needs to know about one architecture, and
 * nothing more: the register set, where the thread is in a system call, the
 * system call instruction and ABI, the stack's red zone, and which blocking
 * calls can be interrupted without the program noticing.  One
 * implementation: inject-x86_64.c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/seccomp.h>

#if defined(__x86_64__)
#include <sys/user.h>
typedef struct user_regs_struct arch_regs_t;
#else
#error "pmufilterd's injection is written for x86-64 only"
#endif

/* Bytes of the system call instruction the thread is stopped after. */
#define ARCH_SYSCALL_INSN_LEN 2

/* How safe it is to stop a thread blocked in call nr (the first field of
 * /proc/<pid>/task/<tid>/syscall).  Everything not listed is NEVER: above
 * all ioctl, which is what a vCPU thread sits in (KVM_RUN), and which
 * would return EINTR and leave the guest. */
enum arch_tier {
        ARCH_TIER_NEVER = 0,    /* e.g. ioctl(KVM_RUN): never touch */
        ARCH_TIER_QUIET = 1,    /* the kernel restarts it: the program sees nothing */
        ARCH_TIER_EINTR = 2,    /* returns EINTR, as after any stop/continue */
};
enum arch_tier arch_syscall_tier(long nr);

/* Name of a call in that table, for reasons ("ppoll"); NULL otherwise. */
const char *arch_syscall_name(long nr);

/* Read the stopped thread's registers.  -ENOEXEC when it is not a 64-bit
 * x86-64 task (32-bit regset view, or running in a 32-bit code segment). */
int arch_regs_get(pid_t tid, arch_regs_t *ret);
int arch_regs_set(pid_t tid, const arch_regs_t *regs);

/* The call the thread was in when it stopped, -1 if none. */
long arch_regs_syscall_nr(const arch_regs_t *r);

/* Address of the system call instruction the thread is stopped after. */
uint64_t arch_regs_syscall_insn(const arch_regs_t *r);

/* Whether these bytes (ARCH_SYSCALL_INSN_LEN of them) are that instruction. */
bool arch_is_syscall_insn(const uint8_t *bytes);

/* Where size bytes may be written for the injected call: below the red
 * zone under the stack pointer, aligned for any use. */
uint64_t arch_scratch_address(const arch_regs_t *r, size_t size);

/* Point the registers at syscall(nr, args[0..2]) executed at insn, and so
 * that the kernel does not restart the call the thread was in instead
 * (the other argument registers are left as they are). */
void arch_regs_set_syscall(arch_regs_t *r, uint64_t insn, long nr, const uint64_t args[3]);

/* The seccomp_data the kernel will build when registers r enter the call. */
void arch_seccomp_data(const arch_regs_t *r, struct seccomp_data *ret);

/* Result of the call, at its syscall-exit stop: >= 0, or -errno. */
long arch_regs_syscall_result(const arch_regs_t *r);

/* The ioctl(2) number. */
long arch_nr_ioctl(void);
