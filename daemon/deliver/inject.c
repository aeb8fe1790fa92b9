/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * inject.c — the generic half of adoption by injection: which thread to
 * borrow, seizing and stopping it within a deadline, the seccomp and
 * architecture checks, the call itself, and putting everything back.
 *
 * The sequence, for one thread blocked in a call the kernel restarts by
 * itself (inject-x86_64.c lists them):
 *   PTRACE_SEIZE, PTRACE_INTERRUPT, wait (bounded) for the interrupt stop;
 *   read the registers (must be a 64-bit task stopped just after a
 *   `syscall` instruction); run the task's seccomp filters on the exact
 *   call; save the stack bytes below the red zone and write the filter
 *   there; point the registers at ioctl(vm_fd, KVM_SET_PMU_EVENT_FILTER,
 *   addr) at that `syscall`; PTRACE_SYSCALL to its entry and to its exit;
 *   read the result; put back the bytes and the registers; PTRACE_DETACH.
 * Detaching sets the task's signal-pending flag, so on its way out it runs
 * the kernel's restart logic on the restored registers: the interrupted
 * call restarts as if nothing had happened.
 *
 * PTRACE_SYSCALL rather than PTRACE_SINGLESTEP: should pmufilterd die while
 * the call runs, the kernel detaches; a pending single-step would then
 * kill the VMM with SIGTRAP, a syscall trace flag is simply dropped.
 *
 * All of it runs on a thread of its own: ptrace ties a tracee to the
 * tracing *thread*, and that thread's exit detaches whatever it still
 * holds, even a task seized but not yet stopped (which PTRACE_DETACH
 * cannot release).  So no error path can leave a VMM thread stopped.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include "inject-arch.h"
#include "inject-proc.h"
#include "inject.h"
#include "kvm-compat.h"
#include "seccomp-bpf.h"

/* Largest filter carried: 8 KiB below the red zone.  The kernel's limit
 * (300 today) is the kernel's to enforce: it answers E2BIG itself. */
#define INJECT_MAX_EVENTS 1024u
/* Once the registers point at our call, abandoning the thread would hand
 * the VMM our result in place of its own call's: wait longer for the end
 * of the ioctl (it takes kvm->lock and an SRCU grace period, no more). */
#define INJECT_CALL_WAIT_US (5u * 1000u * 1000u)

struct injection {
        pid_t pid;
        int vm_fd;
        const void *filter;
        size_t size;
        uint64_t deadline;
        struct inject_result *res;
        int r;
};

static void sleep_usec(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t) (usec / 1000000u), .tv_nsec = (long) (usec % 1000000u) * 1000 };

        (void) nanosleep(&ts, NULL);
}

/* waitpid() with a deadline: polls with WNOHANG, backing off from 10 µs
 * to 1 ms (a blocked thread stops within tens of µs of the interrupt). */
static int wait_status(pid_t tid, uint64_t deadline, int *ret_status) {
        for (uint64_t delay = 10;; delay = delay < 1000 ? delay * 2 : 1000) {
                int status = 0;
                pid_t w = waitpid(tid, &status, __WALL | WNOHANG);

                if (w == tid) {
                        if (!WIFSTOPPED(status))
                                return -ESRCH;  /* it exited: nothing left to hold */
                        *ret_status = status;
                        return 0;
                }
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (now_usec(CLOCK_MONOTONIC) >= deadline)
                        return -ETIME;
                sleep_usec(delay);
        }
}

/* Wait for the stop PTRACE_INTERRUPT asked for.  A signal that reached the
 * thread first is delivered as it would have been (the interrupt stays
 * pending and comes next); a group stop (SIGSTOP...) is left to stop. */
static int wait_interrupt_stop(struct injection *inj, pid_t tid) {
        for (;;) {
                int status = 0, sig, r;

                r = wait_status(tid, inj->deadline, &status);
                if (r == -ETIME)
                        return inject_refuse(inj->res, r, "thread %d of pid %d did not stop within the timeout "
                                             "(uninterruptible sleep?); let go", (int) tid, (int) inj->pid);
                if (r < 0) {
                        /* Threads come and go: another one may do. */
                        (void) inject_refuse(inj->res, r, "thread %d of pid %d exited while being stopped",
                                             (int) tid, (int) inj->pid);
                        return r == -ESRCH ? -EAGAIN : r;
                }
                sig = WSTOPSIG(status);
                if (status >> 16 == PTRACE_EVENT_STOP) {
                        if (sig == SIGTRAP)
                                return 0;
                        (void) ptrace(PTRACE_DETACH, tid, NULL, NULL);
                        return inject_refuse(inj->res, -EBUSY, "pid %d is being stopped by %s (job control); "
                                             "injecting would run it", (int) inj->pid, strsignal(sig));
                }
                if (ptrace(PTRACE_CONT, tid, NULL, (void *) (uintptr_t) (status >> 16 ? 0 : sig)) < 0)
                        return inject_refuse(inj->res, -errno, "thread %d of pid %d: PTRACE_CONT failed: %m",
                                             (int) tid, (int) inj->pid);
        }
}

/* Wait for a syscall stop (SIGTRAP|0x80 under PTRACE_O_TRACESYSGOOD).
 * Returns 0, or the number of a signal that arrived before the call was
 * entered (> 0), or -errno. */
static int wait_syscall_stop(pid_t tid, uint64_t deadline) {
        int status = 0, r;

        r = wait_status(tid, deadline, &status);
        if (r < 0)
                return r;
        if (WSTOPSIG(status) == (SIGTRAP | 0x80))
                return 0;
        return status >> 16 ? -EIO : WSTOPSIG(status);
}

/* Memory of the stopped task: process_vm_*v, or word by word through
 * ptrace where that is not permitted (a seccomp'd daemon, no CMA). */
static int mem_rw(pid_t tid, uint64_t addr, void *buf, size_t size, bool write) {
        struct iovec local = { .iov_base = buf, .iov_len = size };
        struct iovec remote = { .iov_base = (void *) (uintptr_t) addr, .iov_len = size };
        ssize_t n;

        n = write ? process_vm_writev(tid, &local, 1, &remote, 1, 0)
                  : process_vm_readv(tid, &local, 1, &remote, 1, 0);
        if (n == (ssize_t) size)
                return 0;
        if (n >= 0)
                return -EFAULT;
        if (errno != ENOSYS && errno != EPERM)
                return -errno;

        for (size_t off = 0; off < size; off += sizeof(long)) {
                uint64_t a = addr + off;
                long word;

                /* Callers pass whole words, except for reads of the
                 * instruction: those take what they need of each word. */
                errno = 0;
                word = ptrace(PTRACE_PEEKDATA, tid, (void *) (uintptr_t) a, NULL);
                if (errno != 0)
                        return -errno;
                if (!write) {
                        memcpy((uint8_t *) buf + off, &word, size - off < sizeof(word) ? size - off : sizeof(word));
                        continue;
                }
                memcpy(&word, (uint8_t *) buf + off, size - off < sizeof(word) ? size - off : sizeof(word));
                if (ptrace(PTRACE_POKEDATA, tid, (void *) (uintptr_t) a, (void *) word) < 0)
                        return -errno;
        }
        return 0;
}

static int check_seccomp(struct injection *inj, pid_t tid, int mode, const arch_regs_t *call) {
        struct seccomp_data sd;
        unsigned nfilters = 0;
        uint32_t action;
        char name[96];
        int r;

        if (mode == 0)
                return 0;
        if (mode == 1)
                return inject_refuse(inj->res, -EPERM, "thread %d of pid %d is in seccomp strict mode: "
                                     "ioctl would kill it", (int) tid, (int) inj->pid);
        arch_seccomp_data(call, &sd);
        r = seccomp_filters_evaluate(tid, &sd, &action, &nfilters);
        if (r < 0)
                return inject_refuse(inj->res, -EACCES, "seccomp filter present and cannot be evaluated "
                                     "(thread %d of pid %d: %s%s)", (int) tid, (int) inj->pid,
                                     r == -EINVAL ? "a dumped filter does not check" : strerror(-r),
                                     r == -EACCES ? "; reading it needs CAP_SYS_ADMIN and a pmufilterd "
                                                    "not under seccomp itself" : "");
        if (!seccomp_action_runs(action))
                return inject_refuse(inj->res, -EPERM, "seccomp would not allow it: thread %d of pid %d "
                                     "has %u filter%s, answering ioctl(KVM_SET_PMU_EVENT_FILTER) with %s",
                                     (int) tid, (int) inj->pid, nfilters, nfilters == 1 ? "" : "s",
                                     seccomp_action_format(action, name, sizeof(name)));
        return 0;
}

/* The call, once the thread is stopped and checked.  Every return after
 * arch_regs_set() has put the saved registers back. */
static int run_call(struct injection *inj, pid_t tid, const arch_regs_t *saved, const arch_regs_t *call,
                    uint64_t scratch, void *old_bytes) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + INJECT_CALL_WAIT_US;
        arch_regs_t after;
        long result;
        int r, sig;

        r = mem_rw(tid, scratch, (void *) inj->filter, inj->size, true);
        if (r < 0)
                return inject_refuse(inj->res, r, "cannot write the filter below the stack of thread %d "
                                     "of pid %d: %s", (int) tid, (int) inj->pid, strerror(-r));
        r = arch_regs_set(tid, call);
        if (r < 0) {
                (void) mem_rw(tid, scratch, old_bytes, inj->size, true);
                return inject_refuse(inj->res, r, "cannot set the registers of thread %d of pid %d: %s",
                                     (int) tid, (int) inj->pid, strerror(-r));
        }

        sig = ptrace(PTRACE_SYSCALL, tid, NULL, NULL) < 0 ? -errno : wait_syscall_stop(tid, deadline);
        if (sig != 0) {
                /* Not entered: a signal came first (its delivery-stop
                 * precedes the call).  Undo, and let the signal meet the
                 * original registers, as if we had never been there. */
                (void) mem_rw(tid, scratch, old_bytes, inj->size, true);
                (void) arch_regs_set(tid, saved);
                (void) ptrace(PTRACE_DETACH, tid, NULL, (void *) (uintptr_t) (sig > 0 ? sig : 0));
                if (sig > 0)
                        return inject_refuse(inj->res, -EAGAIN, "thread %d of pid %d got %s first; handed "
                                             "over untouched", (int) tid, (int) inj->pid, strsignal(sig));
                return inject_refuse(inj->res, sig, "thread %d of pid %d did not enter the call: %s",
                                     (int) tid, (int) inj->pid, strerror(-sig));
        }
        r = ptrace(PTRACE_SYSCALL, tid, NULL, NULL) < 0 ? -errno : wait_syscall_stop(tid, deadline);
        if (r == 0)
                r = arch_regs_get(tid, &after);
        if (r != 0)
                /* The call was entered and never reported back: nothing can
                 * be restored without its exit stop; the tracer's exit lets
                 * go, and the VMM sees our result as its call's. */
                return inject_refuse(inj->res, r > 0 ? -EIO : r, "thread %d of pid %d: the injected ioctl "
                                     "did not return within %u ms (%s); registers NOT restored",
                                     (int) tid, (int) inj->pid, INJECT_CALL_WAIT_US / 1000,
                                     r > 0 ? "unexpected stop" : strerror(-r));
        result = arch_regs_syscall_result(&after);

        (void) mem_rw(tid, scratch, old_bytes, inj->size, true);
        r = arch_regs_set(tid, saved);
        if (r < 0)
                return inject_refuse(inj->res, r, "thread %d of pid %d: cannot restore its registers: %s",
                                     (int) tid, (int) inj->pid, strerror(-r));
        if (ptrace(PTRACE_DETACH, tid, NULL, NULL) < 0)
                return inject_refuse(inj->res, -errno, "thread %d of pid %d: PTRACE_DETACH failed: %m",
                                     (int) tid, (int) inj->pid);
        inj->res->error = result < 0 ? (int) -result : 0;
        return 0;
}

/* Stopped: check everything, then make the call.  -EAGAIN: this thread
 * was not in a state to borrow after all (detached again); try another. */
static int borrow_stopped(struct injection *inj, pid_t tid, int seccomp_mode) {
        _cleanup_free_ void *old_bytes = NULL;
        arch_regs_t saved, call;
        uint8_t insn[ARCH_SYSCALL_INSN_LEN];
        uint64_t scratch;
        long nr;
        int r;

        r = arch_regs_get(tid, &saved);
        if (r == -ENOEXEC)
                return inject_refuse(inj->res, r, "pid %d is not an x86-64 process (thread %d runs "
                                     "32-bit code)", (int) inj->pid, (int) tid);
        if (r < 0)
                return inject_refuse(inj->res, r, "cannot read the registers of thread %d of pid %d: %s",
                                     (int) tid, (int) inj->pid, strerror(-r));

        /* It may have left the call it was in between /proc and the stop. */
        nr = arch_regs_syscall_nr(&saved);
        if (arch_syscall_tier(nr) == ARCH_TIER_NEVER ||
            mem_rw(tid, arch_regs_syscall_insn(&saved), insn, sizeof(insn), false) < 0 ||
            !arch_is_syscall_insn(insn)) {
                (void) ptrace(PTRACE_DETACH, tid, NULL, NULL);
                (void) inject_refuse(inj->res, -EAGAIN, "thread %d of pid %d was not stopped in a known "
                                     "call at a system call instruction", (int) tid, (int) inj->pid);
                return -EAGAIN;
        }

        call = saved;
        scratch = arch_scratch_address(&saved, inj->size);
        arch_regs_set_syscall(&call, arch_regs_syscall_insn(&saved), arch_nr_ioctl(),
                              (const uint64_t[3]) { (uint64_t) inj->vm_fd, KVM_SET_PMU_EVENT_FILTER, scratch });

        r = check_seccomp(inj, tid, seccomp_mode, &call);
        if (r >= 0) {
                old_bytes = malloc(inj->size);
                if (!old_bytes)
                        r = inject_refuse(inj->res, -ENOMEM, "out of memory");
        }
        if (r >= 0) {
                r = mem_rw(tid, scratch, old_bytes, inj->size, false);
                if (r < 0)
                        r = inject_refuse(inj->res, r, "no readable stack below the red zone of thread %d "
                                          "of pid %d: %s", (int) tid, (int) inj->pid, strerror(-r));
        }
        if (r < 0) {
                (void) ptrace(PTRACE_DETACH, tid, NULL, NULL);
                return r;
        }
        return run_call(inj, tid, &saved, &call, scratch, old_bytes);
}

static int try_thread(struct injection *inj, const struct inject_task *t) {
        uint64_t stopped;
        int r;

        if (ptrace(PTRACE_SEIZE, t->tid, NULL, (void *) (uintptr_t) PTRACE_O_TRACESYSGOOD) < 0) {
                pid_t tracer;

                r = -errno;
                if (r == -ESRCH)
                        return -EAGAIN;
                tracer = inject_task_tracer(inj->pid, t->tid);
                if (r == -EPERM && tracer > 0)  /* a debugger came first */
                        return inject_refuse(inj->res, -EBUSY, "thread %d of pid %d is already traced by pid %d",
                                             (int) t->tid, (int) inj->pid, (int) tracer);
                return inject_refuse_permission(inj->res, r, inj->pid, t->tid);
        }
        if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) < 0)
                return inject_refuse(inj->res, -errno, "PTRACE_INTERRUPT of thread %d of pid %d failed: %m",
                                     (int) t->tid, (int) inj->pid);
        r = wait_interrupt_stop(inj, t->tid);
        if (r < 0)
                return r;

        stopped = now_usec(CLOCK_MONOTONIC);
        inj->res->tid = t->tid;
        r = borrow_stopped(inj, t->tid, t->seccomp);
        inj->res->stopped_us = (uint32_t) (now_usec(CLOCK_MONOTONIC) - stopped);
        if (r < 0)
                inj->res->tid = 0;
        return r;
}

static void *injection_thread(void *userdata) {
        struct injection *inj = userdata;

        /* Polls of 10 µs, not the default 50 µs of slack: this thread's
         * waiting is time a VMM thread spends stopped. */
        (void) prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
        for (;;) {
                _cleanup_free_ struct inject_task *tasks = NULL;
                size_t n = 0;
                int r;

                r = inject_list_candidates(inj->pid, &tasks, &n, inj->res);
                if (r < 0) {
                        inj->r = r;
                        return NULL;
                }
                for (size_t i = 0; i < n; i++) {
                        r = try_thread(inj, &tasks[i]);
                        if (r != -EAGAIN) {
                                inj->r = r;
                                return NULL;
                        }
                }
                if (now_usec(CLOCK_MONOTONIC) >= inj->deadline) {
                        char why[sizeof(inj->res->reason)];

                        /* The list's reason, or the last candidate's. */
                        memcpy(why, inj->res->reason, sizeof(why));
                        inj->r = inject_refuse(inj->res, -ETIME, "no thread of pid %d stopped safely within "
                                               "the timeout: %s", (int) inj->pid, why);
                        return NULL;
                }
                sleep_usec(1000);
        }
}

int inject_pmu_filter(pid_t pid, int vm_fd, uint32_t action, uint32_t flags, uint32_t fixed_counter_bitmap,
                      const uint64_t *events, uint32_t nevents, int timeout_ms, struct inject_result *ret) {
        _cleanup_free_ struct kvm_pmu_event_filter *f = NULL;
        struct injection inj;
        pthread_t thread;
        size_t size;
        int r;

        *ret = (struct inject_result) {};
        if (pid <= 0 || vm_fd < 0 || timeout_ms < 0 || (nevents > 0 && !events))
                return inject_refuse(ret, -EINVAL, "invalid arguments (pid %d, fd %d)", (int) pid, vm_fd);
        if (nevents > INJECT_MAX_EVENTS)
                return inject_refuse(ret, -E2BIG, "%u events are more than the %u an injection carries",
                                     nevents, INJECT_MAX_EVENTS);

        /* Whole words, for the ptrace fallback of mem_rw(). */
        size = sizeof(*f) + (size_t) nevents * sizeof(f->events[0]);
        f = calloc(1, size);
        if (!f)
                return inject_refuse(ret, -ENOMEM, "out of memory");
        *f = (struct kvm_pmu_event_filter) {
                .action = action, .nevents = nevents, .fixed_counter_bitmap = fixed_counter_bitmap, .flags = flags,
        };
        if (nevents > 0)
                memcpy(f->events, events, (size_t) nevents * sizeof(f->events[0]));

        r = inject_check_process(pid, vm_fd, ret);
        if (r < 0)
                return r;

        inj = (struct injection) {
                .pid = pid, .vm_fd = vm_fd, .filter = f, .size = size, .res = ret,
                .deadline = now_usec(CLOCK_MONOTONIC) + (uint64_t) timeout_ms * 1000u,
        };
        r = -pthread_create(&thread, NULL, injection_thread, &inj);
        if (r < 0)
                return inject_refuse(ret, r, "cannot start the injection thread: %s", strerror(-r));
        (void) pthread_join(thread, NULL);
        if (inj.r >= 0)
                ret->reason[0] = '\0';
        return inj.r;
}
