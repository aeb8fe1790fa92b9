/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * inject-proc.c — the look before the injection: /proc/<pid>/status and
 * /proc/<pid>/task/<tid>/{status,syscall} say whether the process may be
 * touched and which thread to borrow; /proc/<pid>/fd/<n> that the fd is a
 * VM.  Nothing here stops anything.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "inject-arch.h"
#include "inject-proc.h"

#define CAP_SYS_PTRACE_BIT 19
#define MAX_THREADS 65536

struct task_status {
        char state;
        pid_t tracer;
        int seccomp;
};

int inject_refuse(struct inject_result *res, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
        va_end(ap);
        return r;
}

/* tid 0: the process's own status file. */
static int read_task_status(pid_t pid, pid_t tid, struct task_status *ret) {
        _cleanup_fclose_ FILE *f = NULL;
        struct task_status s = { .state = '?' };
        char path[64], line[256];

        if (tid > 0)
                snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int) pid, (int) tid);
        else
                snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? -ESRCH : -errno;
        while (fgets(line, sizeof(line), f)) {
                const char *v;

                if ((v = startswith(line, "State:")))
                        (void) sscanf(v, " %c", &s.state);
                else if ((v = startswith(line, "TracerPid:")))
                        s.tracer = (pid_t) atoi(v);
                else if ((v = startswith(line, "Seccomp:")))
                        s.seccomp = atoi(v);
        }
        *ret = s;
        return 0;
}

pid_t inject_task_tracer(pid_t pid, pid_t tid) {
        struct task_status s;
        int r = read_task_status(pid, tid, &s);

        return r < 0 ? r : s.tracer;
}

/* Tasks of the process that never return to user space: KVM's and
 * vhost's workers (kvm-nx-lpage-recovery), io_uring's.  They cannot be
 * borrowed, whatever their syscall file shows (their creator's registers). */
#define PF_IO_WORKER 0x00000010u
#define PF_USER_WORKER 0x00004000u
#define PF_KTHREAD 0x00200000u

static bool is_worker(pid_t pid, pid_t tid) {
        _cleanup_fclose_ FILE *f = NULL;
        char path[64], buf[512];
        const char *p;
        unsigned long flags = 0;

        snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int) pid, (int) tid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f))
                return true;            /* unknown: do not touch */
        p = strrchr(buf, ')');
        /* after "comm)": state ppid pgrp session tty_nr tpgid flags */
        if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
                return true;
        return flags & (PF_IO_WORKER | PF_USER_WORKER | PF_KTHREAD);
}

/* First field of /proc/<pid>/task/<tid>/syscall: the call number, -1
 * blocked outside any call, -2 running (the kernel cannot say). */
static long read_task_syscall(pid_t pid, pid_t tid) {
        _cleanup_fclose_ FILE *f = NULL;
        char path[64], buf[32] = "";

        snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int) pid, (int) tid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f))
                return -2;
        if (startswith(buf, "running"))
                return -2;
        return strtol(buf, NULL, 10);
}

static int list_tids(pid_t pid, pid_t **ret, size_t *ret_n) {
        _cleanup_free_ pid_t *tids = NULL;
        size_t n = 0, allocated = 0;
        char path[64];
        DIR *d;
        struct dirent *de;

        snprintf(path, sizeof(path), "/proc/%d/task", (int) pid);
        d = opendir(path);
        if (!d)
                return errno == ENOENT ? -ESRCH : -errno;
        while ((de = readdir(d)) && n < MAX_THREADS) {
                char *end;
                long tid = strtol(de->d_name, &end, 10);

                if (de->d_name[0] == '.' || *end || tid <= 0)
                        continue;
                if (!GREEDY_REALLOC(tids, allocated, n + 1)) {
                        closedir(d);
                        return -ENOMEM;
                }
                tids[n++] = (pid_t) tid;
        }
        closedir(d);
        *ret = TAKE_PTR(tids);
        *ret_n = n;
        return 0;
}

static int refuse_traced(struct inject_result *res, pid_t pid, pid_t tid, pid_t tracer) {
        return inject_refuse(res, -EBUSY, "thread %d of pid %d is already traced by pid %d "
                             "(a debugger or tracer has it)", (int) tid, (int) pid, (int) tracer);
}

int inject_check_process(pid_t pid, int vm_fd, struct inject_result *res) {
        _cleanup_free_ pid_t *tids = NULL;
        struct task_status s;
        char path[64], target[PATH_MAX];
        size_t n;
        ssize_t l;
        int r;

        r = read_task_status(pid, 0, &s);
        if (r < 0 || s.state == 'Z' || s.state == 'X')
                return inject_refuse(res, -ESRCH, "pid %d is gone", (int) pid);
        if (s.state == 'T')
                return inject_refuse(res, -EBUSY, "pid %d is stopped (job control): injecting would run it",
                                     (int) pid);

        /* The fd may have been closed and its number reused by anything;
         * KVM's ioctl numbers mean nothing to another driver. */
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, vm_fd);
        l = readlink(path, target, sizeof(target) - 1);
        if (l < 0)
                return inject_refuse(res, errno == ENOENT ? -EBADF : -errno, "pid %d has no fd %d: %m",
                                     (int) pid, vm_fd);
        target[l] = '\0';
        if (!streq(target, "anon_inode:kvm-vm"))
                return inject_refuse(res, -EBADF, "fd %d of pid %d is %s, not a KVM VM", vm_fd, (int) pid,
                                     target);

        /* A process under a debugger is someone else's to stop. */
        r = list_tids(pid, &tids, &n);
        if (r < 0)
                return inject_refuse(res, r, "cannot list the threads of pid %d: %s", (int) pid, strerror(-r));
        for (size_t i = 0; i < n; i++)
                if (read_task_status(pid, tids[i], &s) >= 0 && s.tracer > 0)
                        return refuse_traced(res, pid, tids[i], s.tracer);
        return 0;
}

static int compare_tasks(const void *a, const void *b) {
        const struct inject_task *x = a, *y = b;

        if (x->tier != y->tier)
                return x->tier - y->tier;
        return (x->tid > y->tid) - (x->tid < y->tid);   /* the main thread has the lowest tid */
}

static void describe(char *buf, size_t size, long nr) {
        const char *name = arch_syscall_name(nr);

        if (nr == -2)
                snprintf(buf, size, "running");
        else if (nr == -1)
                snprintf(buf, size, "blocked outside a call");
        else if (name)
                snprintf(buf, size, "in %s", name);
        else
                snprintf(buf, size, "in call %ld", nr);
}

int inject_list_candidates(pid_t pid, struct inject_task **ret, size_t *ret_n, struct inject_result *res) {
        _cleanup_free_ struct inject_task *tasks = NULL;
        _cleanup_free_ pid_t *tids = NULL;
        size_t n_tids, n = 0;
        long main_nr = -2;
        char main_what[64];
        int r;

        r = list_tids(pid, &tids, &n_tids);
        if (r < 0)
                return inject_refuse(res, r, "cannot list the threads of pid %d: %s", (int) pid, strerror(-r));
        tasks = calloc(n_tids ? n_tids : 1, sizeof(*tasks));
        if (!tasks)
                return inject_refuse(res, -ENOMEM, "out of memory");

        for (size_t i = 0; i < n_tids; i++) {
                struct task_status s;
                long nr;

                if (read_task_status(pid, tids[i], &s) < 0)
                        continue;               /* exited meanwhile */
                if (s.tracer > 0)
                        return refuse_traced(res, pid, tids[i], s.tracer);
                nr = read_task_syscall(pid, tids[i]);
                if (tids[i] == pid)
                        main_nr = nr;
                /* 'S' only: a thread in D state would not stop in time. */
                if (s.state != 'S' || arch_syscall_tier(nr) == ARCH_TIER_NEVER || is_worker(pid, tids[i]))
                        continue;
                tasks[n++] = (struct inject_task) {
                        .tid = tids[i], .nr = nr, .tier = arch_syscall_tier(nr), .seccomp = s.seccomp,
                };
        }
        if (n_tids == 0)
                return inject_refuse(res, -ESRCH, "pid %d is gone", (int) pid);
        qsort(tasks, n, sizeof(*tasks), compare_tasks);

        if (n == 0) {
                describe(main_what, sizeof(main_what), main_nr);
                (void) inject_refuse(res, 0, "main thread %s, %zu other thread%s; none blocked in a call "
                                     "that is safe to interrupt", main_what, n_tids - 1, n_tids == 2 ? "" : "s");
        }
        *ret = TAKE_PTR(tasks);
        *ret_n = n;
        return 0;
}

static bool have_cap_sys_ptrace(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
        char line[256];

        while (f && fgets(line, sizeof(line), f)) {
                const char *v = startswith(line, "CapEff:");

                if (v)
                        return (strtoull(v, NULL, 16) >> CAP_SYS_PTRACE_BIT) & 1;
        }
        return false;
}

static int yama_scope(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
        int scope = -1;

        if (f && fscanf(f, "%d", &scope) != 1)
                scope = -1;
        return scope;
}

int inject_refuse_permission(struct inject_result *res, int r, pid_t pid, pid_t tid) {
        int scope = yama_scope();
        const char *why;

        if (r != -EPERM && r != -EACCES)
                return inject_refuse(res, r, "PTRACE_SEIZE of thread %d of pid %d failed: %s", (int) tid,
                                     (int) pid, strerror(-r));
        if (!have_cap_sys_ptrace())
                why = "pmufilterd lacks CAP_SYS_PTRACE";
        else if (scope == 3)
                why = "Yama's kernel.yama.ptrace_scope=3 forbids every attach";
        else
                why = "an LSM (AppArmor, SELinux) or the process's user namespace forbids it";
        return inject_refuse(res, -EPERM, "ptrace of thread %d of pid %d not permitted: %s", (int) tid,
                             (int) pid, why);
}
