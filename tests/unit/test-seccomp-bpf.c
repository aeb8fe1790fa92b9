/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-seccomp-bpf.c — the classic-BPF interpreter that decides whether a
 * VMM's seccomp filters would let an injected ioctl run: decisions by call
 * number, architecture and arguments (JEQ/JGT/JGE/JSET, K and X forms,
 * ALU, scratch memory), the answer of several filters combined as the
 * kernel does, the install-time checks (every program the kernel refuses
 * is refused, and the kernel refuses it too; the answers of accepted ones
 * match the kernel's, which runs them in a child), and real filters dumped from seccomp-vmm (tests/helpers),
 * which needs root (PTRACE_SECCOMP_GET_FILTER: CAP_SYS_ADMIN).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/audit.h>

#include "kvm-compat.h"
#include "seccomp-bpf.h"

#define LEN(p) (sizeof(p) / sizeof((p)[0]))
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (ARG_LO(i) + 4)
#define LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define JEQ(k, t, f) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))

static struct seccomp_data call(int nr, uint64_t a0, uint64_t a1, uint64_t a2) {
        return (struct seccomp_data) {
                .nr = nr, .arch = AUDIT_ARCH_X86_64, .instruction_pointer = 0x401000,
                .args = { a0, a1, a2, 0, 0, 0 },
        };
}

static uint32_t run(const struct sock_filter *prog, size_t len, struct seccomp_data sd) {
        uint32_t ret = 0xdeadbeef;

        assert_int_equal(seccomp_bpf_run(prog, len, &sd, &ret), 0);
        return ret;
}

/* The kernel's own answer: a child installs guard + prog (the guard lets
 * every call but getppid through untouched), then calls getppid with
 * these arguments.  Returns the errno it got (0: it ran), -SIGSYS if it
 * was killed or trapped, -1000 - EINVAL if the kernel refused the
 * program at install, -2000 if the child could not install any. */
static int kernel_answer(const struct sock_filter *prog, size_t len, uint64_t a0, uint64_t a1, uint64_t a2) {
        _cleanup_free_ struct sock_filter *all = calloc(len + 3, sizeof(*all));
        int status;
        pid_t pid;

        assert_non_null(all);
        all[0] = (struct sock_filter) LD(offsetof(struct seccomp_data, nr));
        all[1] = (struct sock_filter) JEQ(SYS_getppid, 1, 0);
        all[2] = (struct sock_filter) RET(SECCOMP_RET_ALLOW);
        if (len > 0)
                memcpy(all + 3, prog, len * sizeof(*prog));
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct sock_fprog fprog = { .len = (unsigned short) (len + 3), .filter = all };

                signal(SIGSYS, SIG_DFL);        /* not cmocka's handler: die of it */
                if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                        _exit(253);
                if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
                        _exit(errno == EINVAL ? 254 : 253);
                _exit(syscall(SYS_getppid, a0, a1, a2) < 0 ? errno : 0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 253)
                return -2000;   /* no seccomp here */
        if (WIFSIGNALED(status)) {
                assert_int_equal(WTERMSIG(status), SIGSYS);
                return -SIGSYS;
        }
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status) == 254 ? -1000 - EINVAL : WEXITSTATUS(status);
}

/* Whether a child can install a filter at all: under valgrind it cannot
 * (valgrind emulates no seccomp); then the kernel is not asked. */
static bool kernel_usable(void) {
        static int usable = -1;

        if (usable < 0) {
                usable = kernel_answer(NULL, 0, 0, 0, 0) == 0;
                if (!usable)
                        print_message("  not compared with the kernel: a child cannot install a filter here\n");
        }
        return usable;
}

/* What the child should see under our interpreter's answer. */
static int outcome(uint32_t ret) {
        if (seccomp_action_runs(ret))
                return 0;
        if ((ret & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ERRNO)
                return (int) (ret & SECCOMP_RET_DATA);
        return -SIGSYS;         /* kill-thread, kill-process, trap */
}

/* Our answer for getppid(a0, a1, a2) must be the kernel's. */
static void kernel_agrees(const struct sock_filter *prog, size_t len, uint64_t a0, uint64_t a1, uint64_t a2) {
        if (kernel_usable())
                assert_int_equal(kernel_answer(prog, len, a0, a1, a2),
                                 outcome(run(prog, len, call(SYS_getppid, a0, a1, a2))));
}

static void test_by_nr_and_arch(void **state) {
        const struct sock_filter prog[] = {
                LD(offsetof(struct seccomp_data, arch)),
                JEQ(AUDIT_ARCH_X86_64, 1, 0),
                RET(SECCOMP_RET_KILL_PROCESS),
                LD(offsetof(struct seccomp_data, nr)),
                JEQ(SYS_ioctl, 0, 1),
                RET(SECCOMP_RET_ERRNO | EPERM),
                RET(SECCOMP_RET_ALLOW),
        };
        struct seccomp_data i386 = call(SYS_ioctl, 0, 0, 0);

        assert_int_equal(seccomp_bpf_check(prog, LEN(prog), NULL), 0);
        assert_int_equal(run(prog, LEN(prog), call(SYS_ioctl, 4, 0, 0)), SECCOMP_RET_ERRNO | EPERM);
        assert_int_equal(run(prog, LEN(prog), call(SYS_nanosleep, 0, 0, 0)), SECCOMP_RET_ALLOW);
        i386.arch = AUDIT_ARCH_I386;
        assert_int_equal(run(prog, LEN(prog), i386), SECCOMP_RET_KILL_PROCESS);
}

/* What Cloud Hypervisor-style filters do: ioctl allowed per request code,
 * 64-bit arguments compared in two halves, ranges and flag bits. */
static void test_by_args(void **state) {
        const struct sock_filter prog[] = {
                LD(offsetof(struct seccomp_data, nr)),                  /* 0 */
                JEQ(SYS_ioctl, 1, 0),
                RET(SECCOMP_RET_ALLOW),
                LD(ARG_HI(1)),                                          /* 3 */
                JEQ(0, 0, 9),                                           /* high half must be 0 */
                LD(ARG_LO(1)),
                JEQ(KVM_SET_PMU_EVENT_FILTER, 0, 7),
                LD(ARG_LO(0)),                                          /* 7: fd */
                BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, 100, 3, 0),         /* fd > 100: errno */
                BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 3, 0, 4),           /* fd < 3: kill */
                LD(ARG_LO(2)),
                BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x7, 3, 1),        /* unaligned addr: trap */
                RET(SECCOMP_RET_ERRNO | EBADF),                         /* 12 */
                RET(SECCOMP_RET_ALLOW),                                 /* 13 */
                RET(SECCOMP_RET_KILL_PROCESS),                          /* 14 */
                RET(SECCOMP_RET_TRAP),                                  /* 15 */
        };

        assert_int_equal(seccomp_bpf_check(prog, LEN(prog), NULL), 0);
        assert_int_equal(run(prog, LEN(prog), call(SYS_ioctl, 4, KVM_SET_PMU_EVENT_FILTER, 0x7ffd0000)),
                         SECCOMP_RET_ALLOW);
        assert_int_equal(run(prog, LEN(prog), call(SYS_ioctl, 4, KVM_RUN, 0)), SECCOMP_RET_KILL_PROCESS);
        assert_int_equal(run(prog, LEN(prog), call(SYS_ioctl, 4, KVM_SET_PMU_EVENT_FILTER | (1ULL << 32), 0)),
                         SECCOMP_RET_KILL_PROCESS);
        assert_int_equal(run(prog, LEN(prog), call(SYS_ioctl, 101, KVM_SET_PMU_EVENT_FILTER, 0)),
                         SECCOMP_RET_ERRNO | EBADF);
        assert_int_equal(run(prog, LEN(prog), call(SYS_ioctl, 100, KVM_SET_PMU_EVENT_FILTER, 0x10)),
                         SECCOMP_RET_ALLOW);
        assert_int_equal(run(prog, LEN(prog), call(SYS_ioctl, 2, KVM_SET_PMU_EVENT_FILTER, 0)),
                         SECCOMP_RET_KILL_PROCESS);
        assert_int_equal(run(prog, LEN(prog), call(SYS_ioctl, 4, KVM_SET_PMU_EVENT_FILTER, 0x7ffd0004)),
                         SECCOMP_RET_TRAP);
        assert_int_equal(run(prog, LEN(prog), call(SYS_read, 0, 0, 0)), SECCOMP_RET_ALLOW);

        /* The argument checks (from 3 on) give the kernel's answers. */
        kernel_agrees(prog + 3, LEN(prog) - 3, 4, KVM_SET_PMU_EVENT_FILTER, 0x7ffd0000);
        kernel_agrees(prog + 3, LEN(prog) - 3, 4, KVM_RUN, 0);
        kernel_agrees(prog + 3, LEN(prog) - 3, 4, KVM_SET_PMU_EVENT_FILTER | (1ULL << 32), 0);
        kernel_agrees(prog + 3, LEN(prog) - 3, 101, KVM_SET_PMU_EVENT_FILTER, 0);
        kernel_agrees(prog + 3, LEN(prog) - 3, 2, KVM_SET_PMU_EVENT_FILTER, 0);
        kernel_agrees(prog + 3, LEN(prog) - 3, 4, KVM_SET_PMU_EVENT_FILTER, 0x7ffd0004);
}

/* The rest of the instruction set: X forms, ALU, scratch memory, TAX/TXA,
 * NEG, LEN loads, RET A, and division by a zero X (the kernel returns 0). */
static void test_alu_memory_and_x(void **state) {
        const struct sock_filter prog[] = {
                LD(offsetof(struct seccomp_data, nr)),
                BPF_STMT(BPF_ST, 3),                            /* M[3] = nr */
                BPF_STMT(BPF_LDX | BPF_W | BPF_LEN, 0),         /* X = 64 */
                BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_X, 0, 1, 0),   /* A == X == 64 */
                RET(SECCOMP_RET_KILL_THREAD),
                BPF_STMT(BPF_LD | BPF_MEM, 3),
                BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 4),
                BPF_STMT(BPF_ALU | BPF_ADD | BPF_K, 2),         /* A = nr * 4 + 2 */
                BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 1),         /* A = nr * 2 + 1 */
                BPF_STMT(BPF_MISC | BPF_TAX, 0),
                BPF_STMT(BPF_LD | BPF_IMM, 0),
                BPF_STMT(BPF_ALU | BPF_SUB | BPF_X, 0),
                BPF_STMT(BPF_ALU | BPF_NEG, 0),                 /* A = nr * 2 + 1 */
                BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xffff),
                BPF_STMT(BPF_ALU | BPF_OR | BPF_K, SECCOMP_RET_ERRNO),
                BPF_STMT(BPF_MISC | BPF_TAX, 0),
                BPF_STMT(BPF_STX, 0),                           /* M[0] = X = A */
                BPF_STMT(BPF_LDX | BPF_IMM, 0),
                BPF_STMT(BPF_LD | BPF_IMM, 0),
                BPF_STMT(BPF_LDX | BPF_MEM, 0),
                BPF_STMT(BPF_MISC | BPF_TXA, 0),
                BPF_STMT(BPF_RET | BPF_A, 0),                   /* ERRNO(nr * 2 + 1) */
        };
        const struct sock_filter div_by_x[] = {
                LD(ARG_LO(0)),
                BPF_STMT(BPF_LDX | BPF_IMM, 0),
                BPF_STMT(BPF_ALU | BPF_DIV | BPF_X, 0),
                RET(SECCOMP_RET_ALLOW),
        };
        const struct sock_filter shifts[] = {
                BPF_STMT(BPF_LD | BPF_IMM, 1),
                BPF_STMT(BPF_LDX | BPF_IMM, 33),                /* 32-bit shifts take the count mod 32 */
                BPF_STMT(BPF_ALU | BPF_LSH | BPF_X, 0),
                BPF_STMT(BPF_ALU | BPF_XOR | BPF_K, SECCOMP_RET_ALLOW ^ 2),
                BPF_STMT(BPF_RET | BPF_A, 0),
        };

        assert_int_equal(run(prog, LEN(prog), call(SYS_ioctl, 0, 0, 0)), SECCOMP_RET_ERRNO | (SYS_ioctl * 2 + 1));
        assert_int_equal(run(div_by_x, LEN(div_by_x), call(SYS_ioctl, 7, 0, 0)), SECCOMP_RET_KILL_THREAD);
        assert_int_equal(run(shifts, LEN(shifts), call(0, 0, 0, 0)), SECCOMP_RET_ALLOW);

        kernel_agrees(prog, LEN(prog), 0, 0, 0);
        kernel_agrees(div_by_x, LEN(div_by_x), 7, 0, 0);
        kernel_agrees(shifts, LEN(shifts), 0, 0, 0);
}

static void test_actions_combine(void **state) {
        /* Precedence, highest first; LOG and ALLOW let the call run. */
        const uint32_t order[] = {
                SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP, SECCOMP_RET_ERRNO | 1,
                SECCOMP_RET_USER_NOTIF, SECCOMP_RET_TRACE, SECCOMP_RET_LOG, SECCOMP_RET_ALLOW,
        };
        char buf[96];

        for (size_t i = 0; i < LEN(order); i++)
                for (size_t j = 0; j < LEN(order); j++)
                        assert_int_equal(seccomp_action_combine(order[i], order[j]), order[i < j ? i : j]);
        /* A tie keeps the first (newer) answer's data. */
        assert_int_equal(seccomp_action_combine(SECCOMP_RET_ERRNO | 1, SECCOMP_RET_ERRNO | 13),
                         SECCOMP_RET_ERRNO | 1);
        for (size_t i = 0; i < LEN(order); i++)
                assert_int_equal(seccomp_action_runs(order[i]), order[i] == SECCOMP_RET_LOG ||
                                                                order[i] == SECCOMP_RET_ALLOW);
        /* An action the kernel does not know kills the process. */
        assert_false(seccomp_action_runs(0x7ffe0000));
        assert_string_equal(seccomp_action_format(SECCOMP_RET_KILL_PROCESS, buf, sizeof(buf)), "kill-process");
        assert_string_equal(seccomp_action_format(SECCOMP_RET_ERRNO | EPERM, buf, sizeof(buf)), "errno 1 (EPERM)");
        assert_non_null(strstr(seccomp_action_format(0x7ffe0000, buf, sizeof(buf)), "kills the process"));
}

static void refused(const struct sock_filter *prog, size_t len, size_t want_pc) {
        struct seccomp_data sd = call(SYS_ioctl, 0, 0, 0);
        size_t pc = 999;
        uint32_t ret;

        assert_int_equal(seccomp_bpf_check(prog, len, &pc), -EINVAL);
        assert_int_equal(pc, want_pc);
        assert_int_equal(seccomp_bpf_run(prog, len, &sd, &ret), -EINVAL);
        /* ... and the kernel refuses it too (behind a 3-instruction guard). */
        if (len > 0 && len < BPF_MAXINSNS - 3 && kernel_usable())
                assert_int_equal(kernel_answer(prog, len, 0, 0, 0), -1000 - EINVAL);
}

#define REFUSED(want_pc, ...) do {                                                      \
                const struct sock_filter _p[] = { __VA_ARGS__ };                        \
                refused(_p, LEN(_p), (want_pc));                                        \
        } while (0)

static void test_malformed_refused(void **state) {
        _cleanup_free_ struct sock_filter *huge = NULL;

        REFUSED(1, LD(0), JEQ(0, 5, 0), RET(0));                        /* jt out of range */
        REFUSED(1, LD(0), JEQ(0, 0, 1), RET(0));                        /* jf to len */
        REFUSED(0, BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0), RET(0));        /* JA past the end */
        REFUSED(0, LD(0));                                              /* no RET */
        REFUSED(1, RET(0), LD(0));                                      /* RET not last */
        REFUSED(0, LD(2), RET(0));                                      /* unaligned load */
        REFUSED(0, LD(sizeof(struct seccomp_data)), RET(0));            /* beyond seccomp_data */
        REFUSED(0, BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0), RET(0));      /* half-word loads */
        REFUSED(0, BPF_STMT(BPF_LD | BPF_W | BPF_IND, 0), RET(0));
        REFUSED(0, BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, 3), RET(0));     /* not on seccomp's list */
        REFUSED(0, BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0), RET(0));
        REFUSED(0, BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 32), RET(0));
        REFUSED(0, BPF_STMT(BPF_ST, BPF_MEMWORDS), RET(0));
        REFUSED(0, BPF_STMT(BPF_LD | BPF_MEM, 0), RET(0));              /* read before written */
        /* written on one path only */
        REFUSED(4, LD(0), JEQ(0, 0, 1), BPF_STMT(BPF_ST, 2), BPF_STMT(BPF_LDX | BPF_IMM, 0),
                BPF_STMT(BPF_LD | BPF_MEM, 2), RET(0));

        refused(NULL, 0, 0);
        huge = calloc(BPF_MAXINSNS + 1, sizeof(*huge));
        assert_non_null(huge);
        for (size_t i = 0; i <= BPF_MAXINSNS; i++)
                huge[i] = (struct sock_filter) RET(SECCOMP_RET_ALLOW);
        refused(huge, BPF_MAXINSNS + 1, 0);
        assert_int_equal(seccomp_bpf_check(huge, BPF_MAXINSNS, NULL), 0);
}

/* seccomp-vmm under ptrace: started, its filter installed, then stopped. */
static pid_t start_seccomp_vmm(const char *deny, bool stack, unsigned want_filters) {
        char arg[64], path[64], line[256];
        int in[2], status;
        pid_t pid;

        snprintf(arg, sizeof(arg), "--deny=%s", deny);
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(in[0], STDIN_FILENO);
                dup2(open("/dev/null", O_WRONLY), STDOUT_FILENO);
                execl(SECCOMP_VMM_PATH, SECCOMP_VMM_PATH, arg, stack ? "--stack" : NULL, NULL);
                _exit(127);
        }
        close(in[0]);           /* in[1] leaks on purpose: closing it ends the helper */

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        for (int i = 0; i < 500; i++) {
                _cleanup_fclose_ FILE *f = fopen(path, "re");
                unsigned n = 0;

                while (f && fgets(line, sizeof(line), f))
                        if (startswith(line, "Seccomp_filters:"))
                                n = (unsigned) atoi(line + 16);
                if (n == want_filters)
                        break;
                usleep(10000);
        }
        assert_int_equal(ptrace(PTRACE_SEIZE, pid, NULL, NULL), 0);
        assert_int_equal(ptrace(PTRACE_INTERRUPT, pid, NULL, NULL), 0);
        assert_int_equal(waitpid(pid, &status, __WALL), pid);
        assert_true(WIFSTOPPED(status));
        return pid;
}

static void stop_seccomp_vmm(pid_t pid) {
        int status;

        assert_int_equal(ptrace(PTRACE_DETACH, pid, NULL, NULL), 0);
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
}

static bool can_dump_filters(void) {
        char line[256];
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");

        if (geteuid() != 0) {
                print_message("skipped: PTRACE_SECCOMP_GET_FILTER needs root (CAP_SYS_ADMIN)\n");
                return false;
        }
        while (f && fgets(line, sizeof(line), f))
                if (startswith(line, "Seccomp:") && atoi(line + 8) != 0) {
                        print_message("skipped: this test runs under seccomp itself: no filter dumps\n");
                        return false;
                }
        return true;
}

static void test_real_filter_dumped(void **state) {
        struct seccomp_data pmu = call(SYS_ioctl, 4, KVM_SET_PMU_EVENT_FILTER, 0x7ffd1230);
        struct seccomp_data run_vcpu = call(SYS_ioctl, 4, KVM_RUN, 0);
        struct seccomp_data sleep = call(SYS_nanosleep, 0, 0, 0);
        _cleanup_free_ struct sock_filter *prog = NULL;
        size_t len;
        unsigned n;
        uint32_t ret;
        pid_t pid;

        if (!can_dump_filters())
                skip();

        pid = start_seccomp_vmm("allow-pmu", true, 2);
        assert_int_equal(seccomp_filter_dump(pid, 0, &prog, &len), 0);
        assert_int_equal(seccomp_bpf_check(prog, len, NULL), 0);
        assert_int_equal(len, 13);                      /* as seccomp-vmm.c builds it */
        assert_int_equal(seccomp_filters_evaluate(pid, &pmu, &ret, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ret, SECCOMP_RET_ALLOW);
        assert_int_equal(seccomp_filters_evaluate(pid, &run_vcpu, &ret, NULL), 0);
        assert_int_equal(ret, SECCOMP_RET_KILL_PROCESS);
        assert_int_equal(seccomp_filters_evaluate(pid, &sleep, &ret, NULL), 0);
        assert_int_equal(ret, SECCOMP_RET_ALLOW);
        free(TAKE_PTR(prog));
        assert_int_equal(seccomp_filter_dump(pid, 2, &prog, &len), -ENOENT);
        stop_seccomp_vmm(pid);

        pid = start_seccomp_vmm("errno", false, 1);
        assert_int_equal(seccomp_filters_evaluate(pid, &pmu, &ret, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(ret, SECCOMP_RET_ERRNO | EPERM);
        stop_seccomp_vmm(pid);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_by_nr_and_arch),
                cmocka_unit_test(test_by_args),
                cmocka_unit_test(test_alu_memory_and_x),
                cmocka_unit_test(test_actions_combine),
                cmocka_unit_test(test_malformed_refused),
                cmocka_unit_test(test_real_filter_dumped),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
