/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * seccomp-vmm.c — a VMM that locks itself down the way Firecracker and
 * Cloud Hypervisor do: creates its VM, then installs a seccomp filter on
 * ioctl(2) and sleeps in checked nanosleep rounds (see sleepy-vmm) until
 * stdin closes.  What the filter answers to ioctl:
 *
 *   --deny=kill       SECCOMP_RET_KILL_PROCESS (the default)
 *   --deny=errno      SECCOMP_RET_ERRNO(EPERM)
 *   --deny=trap       SECCOMP_RET_TRAP
 *   --deny=allow-pmu  allow ioctl(*, KVM_SET_PMU_EVENT_FILTER, ...) only
 *                     (args[1] compared in both halves), kill otherwise
 *   --deny=log        SECCOMP_RET_LOG (runs, logged)
 *
 * A second filter allowing everything is stacked on top with --stack, so
 * the kernel's combination of several filters is exercised.  Every other
 * call is allowed; a foreign architecture is killed.
 * Prints "vm-fds: N", then "OK <rounds> rounds" or "FAIL <why>".
 */
#include <stddef.h>
#include <sys/prctl.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "bare-vmm.h"
#include "kvm-compat.h"

#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (ARG_LO(i) + 4)

static uint32_t deny_action(const char *mode) {
        if (strcmp(mode, "errno") == 0)
                return SECCOMP_RET_ERRNO | EPERM;
        if (strcmp(mode, "trap") == 0)
                return SECCOMP_RET_TRAP;
        if (strcmp(mode, "log") == 0)
                return SECCOMP_RET_LOG;
        return SECCOMP_RET_KILL_PROCESS;
}

static void install(struct sock_filter *prog, unsigned short len) {
        struct sock_fprog fprog = { .len = len, .filter = prog };

        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
                bare_fail("seccomp(SECCOMP_SET_MODE_FILTER): %m");
}

int main(int argc, char *argv[]) {
        const char *mode = "kill";
        unsigned rounds = 0;

        for (int i = 1; i < argc; i++)
                if (strncmp(argv[i], "--deny=", 7) == 0)
                        mode = argv[i] + 7;
        bool pmu_only = strcmp(mode, "allow-pmu") == 0;
        uint32_t deny = deny_action(mode);

        struct sock_filter prog[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
                /* ioctl: with allow-pmu, only KVM_SET_PMU_EVENT_FILTER */
                BPF_JUMP(BPF_JMP | BPF_JA, pmu_only ? 0 : 4, 0, 0),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(1)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, KVM_SET_PMU_EVENT_FILTER, 0, 2),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_HI(1)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, deny),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_filter allow_all[] = {
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };

        bare_create_vms(1);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                bare_fail("PR_SET_NO_NEW_PRIVS: %m");
        install(prog, (unsigned short) (sizeof(prog) / sizeof(prog[0])));
        if (bare_arg_flag(argc, argv, "--stack"))
                install(allow_all, 1);

        for (; !bare_stdin_closed(); rounds++)
                bare_sleep_round(200, rounds);
        printf("OK %u rounds\n", rounds);
        return 0;
}
