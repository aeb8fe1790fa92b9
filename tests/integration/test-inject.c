/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-inject.c — adoption by injection against real VMMs on the real
 * /dev/kvm: the bare test VMMs of tests/helpers (sleepy-vmm, polly-vmm,
 * seccomp-vmm), which check their own calls' results and timing and say
 * OK or FAIL when their stdin closes, and a running QEMU.
 *
 * That the ioctl ran inside the VMM, on its VM: another process cannot
 * read a filter back, but the kernel's own validation answers from the
 * VMM's context — action 7 gives EINVAL, 301 events E2BIG, a good filter
 * 0 — and only the VM's creator gets those answers (anyone else: EIO).
 * Needs root and /dev/kvm; skips with the reason otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "inject.h"
#include "kvm-compat.h"
#include "kvm.h"

#define MAX_FDS 128
#define TIMEOUT_MS 1000
#define ACTION_BAD 7

struct vmm {
        pid_t pid;
        int in;                 /* its stdin: closing it ends the run */
        FILE *out;              /* its stdout */
        int fds[MAX_FDS];
        size_t n_fds;
};

/* Injection times of the whole run, for the summary. */
static uint64_t totals_us[2048], stopped_us[2048];
static size_t n_times;

static uint64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void skip_unless_able(void) {
        int fd;

        if (geteuid() != 0) {
                print_message("skipped: injection needs root (CAP_SYS_PTRACE, CAP_SYS_ADMIN)\n");
                skip();
        }
        fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                print_message("skipped: cannot open /dev/kvm: %m\n");
                skip();
        }
        close(fd);
}

static void vmm_start(struct vmm *v, const char *path, const char *arg1, const char *arg2) {
        int in[2], out[2];
        char line[1024], *p, *end;

        *v = (struct vmm) {};
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        v->pid = fork();
        assert_true(v->pid >= 0);
        if (v->pid == 0) {
                dup2(in[0], STDIN_FILENO);
                dup2(out[1], STDOUT_FILENO);
                execl(path, path, arg1, arg2, NULL);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        v->in = in[1];
        v->out = fdopen(out[0], "r");
        assert_non_null(v->out);
        assert_non_null(fgets(line, sizeof(line), v->out));
        if (startswith(line, "SKIP")) {
                print_message("skipped: %s", line);
                skip();
        }
        p = (char *) startswith(line, "vm-fds:");
        assert_non_null(p);
        for (;;) {
                long fd = strtol(p, &end, 10);

                if (end == p)
                        break;
                assert_true(v->n_fds < MAX_FDS);
                v->fds[v->n_fds++] = (int) fd;
                p = end;
        }
        assert_true(v->n_fds > 0);
}

/* End the run: the VMM's own verdict on its calls, and its exit. */
static void vmm_finish(struct vmm *v) {
        char line[1024];
        bool ok = false;
        int status;

        close(v->in);
        while (fgets(line, sizeof(line), v->out)) {
                print_message("  vmm %d: %s", (int) v->pid, line);
                ok = ok || startswith(line, "OK");
        }
        fclose(v->out);
        assert_int_equal(waitpid(v->pid, &status, 0), v->pid);
        assert_true(ok);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* Until thread tid of pid is blocked in call nr (at most 5 s). */
static void wait_in_call(pid_t pid, pid_t tid, long nr) {
        char path[64], buf[64];

        snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int) pid, (int) tid);
        for (int i = 0; i < 5000; i++) {
                _cleanup_fclose_ FILE *f = fopen(path, "re");

                if (f && fgets(buf, sizeof(buf), f) && strtol(buf, NULL, 10) == nr)
                        return;
                usleep(1000);
        }
        fail_msg("thread %d of pid %d never blocked in call %ld", (int) tid, (int) pid, nr);
}

/* A field of /proc/<pid>/status, as a string. */
static void proc_status(pid_t pid, const char *field, char *buf, size_t size) {
        char path[64], line[256];
        _cleanup_fclose_ FILE *f = NULL;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                const char *v = startswith(line, field);

                if (v) {
                        snprintf(buf, size, "%s", v + strspn(v, " \t"));
                        buf[strcspn(buf, "\n")] = '\0';
                        return;
                }
        }
        fail_msg("no %s in %s", field, path);
}

/* Alive, not stopped, not traced: what injection must leave behind. */
static void assert_untouched(pid_t pid) {
        char state[64], tracer[64];

        proc_status(pid, "State:", state, sizeof(state));
        proc_status(pid, "TracerPid:", tracer, sizeof(tracer));
        assert_true(state[0] == 'S' || state[0] == 'R');
        assert_string_equal(tracer, "0");
}

static int inject_n(pid_t pid, int fd, uint32_t action, uint32_t nevents, int timeout_ms,
                    struct inject_result *res) {
        uint64_t events[400], start;
        int r;

        assert_true(nevents <= ELEMENTSOF(events));
        for (uint32_t i = 0; i < nevents; i++)
                events[i] = 0x00c0 + ((uint64_t) i << 8);      /* distinct plain selects */
        start = now_us();
        r = inject_pmu_filter(pid, fd, action, 0, 0, events, nevents, timeout_ms, res);
        if (r == 0 && n_times < ELEMENTSOF(totals_us)) {
                totals_us[n_times] = now_us() - start;
                stopped_us[n_times++] = res->stopped_us;
        }
        if (r < 0)
                print_message("  refused (%s): %s\n", strerror(-r), res->reason);
        return r;
}

static void assert_injected(pid_t pid, int fd, uint32_t action, uint32_t nevents, int want_error) {
        struct inject_result res;

        assert_int_equal(inject_n(pid, fd, action, nevents, TIMEOUT_MS, &res), 0);
        assert_int_equal(res.error, want_error);
        assert_true(res.tid > 0);
        assert_string_equal(res.reason, "");
}

/* The kernel answers from inside the VMM: its own validation, and only
 * for the VM's creator.  From here, the same ioctl on another process's
 * VM (through pidfd_getfd) is refused with EIO. */
static void test_sleeping_vmm_answers_from_its_own_context(void **state) {
        struct vmm v;
        uint64_t event = 0x00c0;
        int pidfd, stolen;

        skip_unless_able();
        vmm_start(&v, SLEEPY_VMM_PATH, "--sleep-ms=300", NULL);
        wait_in_call(v.pid, v.pid, SYS_nanosleep);

        assert_injected(v.pid, v.fds[0], KVM_PMU_EVENT_ALLOW, 1, 0);
        assert_injected(v.pid, v.fds[0], ACTION_BAD, 1, EINVAL);
        assert_injected(v.pid, v.fds[0], KVM_PMU_EVENT_ALLOW, 301, E2BIG);
        assert_injected(v.pid, v.fds[0], KVM_PMU_EVENT_DENY, 300, 0);
        assert_injected(v.pid, v.fds[0], KVM_PMU_EVENT_ALLOW, 0, 0);
        assert_untouched(v.pid);

        pidfd = (int) syscall(SYS_pidfd_open, v.pid, 0);
        stolen = pidfd < 0 ? -1 : (int) syscall(SYS_pidfd_getfd, pidfd, v.fds[0], 0);
        if (stolen >= 0)
                assert_int_equal(kvm_set_pmu_event_filter(stolen, KVM_PMU_EVENT_ALLOW, 0, 0, &event, 1), -EIO);
        else    /* valgrind does not know pidfd_getfd */
                print_message("  not shown: the EIO of another process (pidfd_getfd: %m)\n");
        safe_close(stolen);
        safe_close(pidfd);

        vmm_finish(&v);
}

/* A main loop in ppoll (with a signal mask, as QEMU's) keeps getting the
 * right answers, with injections landing mid-call again and again. */
static void test_polling_vmm_keeps_correct_results(void **state) {
        struct vmm v;

        skip_unless_able();
        vmm_start(&v, POLLY_VMM_PATH, "--round-ms=60", NULL);
        wait_in_call(v.pid, v.pid, SYS_ppoll);
        for (int i = 0; i < 40; i++) {
                assert_injected(v.pid, v.fds[0], i % 2 ? KVM_PMU_EVENT_DENY : KVM_PMU_EVENT_ALLOW, 3, 0);
                usleep(17000);
        }
        assert_untouched(v.pid);
        vmm_finish(&v);
}

struct storm {
        pid_t pid;
        volatile bool stop;
        unsigned sent;
};

static void *storm_thread(void *userdata) {
        struct storm *st = userdata;

        while (!st->stop && kill(st->pid, SIGUSR1) == 0) {
                st->sent++;
                usleep(50);
        }
        return NULL;
}

/* Signals keep arriving while injecting (QEMU's main loop gets them in
 * ppoll too): one that reaches the thread before the stop is delivered,
 * one that comes after the registers were changed undoes the injection
 * and meets the original registers.  Every injection succeeds in the end,
 * and ppoll never shows anything but results and EINTR. */
static void test_polling_vmm_under_a_signal_storm(void **state) {
        struct storm st = {};
        pthread_t t;
        struct vmm v;

        skip_unless_able();
        vmm_start(&v, POLLY_VMM_PATH, "--round-ms=60", "--signals");
        wait_in_call(v.pid, v.pid, SYS_ppoll);
        st.pid = v.pid;
        assert_int_equal(pthread_create(&t, NULL, storm_thread, &st), 0);
        for (int i = 0; i < 100; i++)
                assert_injected(v.pid, v.fds[0], KVM_PMU_EVENT_ALLOW, 2, 0);
        st.stop = true;
        assert_int_equal(pthread_join(t, NULL), 0);
        print_message("  %u signals sent during 100 injections\n", st.sent);
        assert_true(st.sent > 100);
        assert_untouched(v.pid);
        vmm_finish(&v);
}

static const char *find_qemu(void) {
        static const char *const paths[] = { "/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64" };

        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                if (access(paths[i], X_OK) == 0)
                        return paths[i];
        return NULL;
}

/* QEMU's VM fd: the one /proc shows as anon_inode:kvm-vm. */
static int find_vm_fd(pid_t pid) {
        char path[300], target[PATH_MAX];
        struct dirent *de;
        int fd = -1;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
        d = opendir(path);
        while (d && (de = readdir(d)) && fd < 0) {
                ssize_t l;

                snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int) pid, de->d_name);
                l = readlink(path, target, sizeof(target) - 1);
                if (l > 0 && (target[l] = '\0', streq(target, "anon_inode:kvm-vm")))
                        fd = atoi(de->d_name);
        }
        if (d)
                closedir(d);
        return fd;
}

/* Whether some thread of pid sits in ioctl(…, KVM_RUN): a running vCPU. */
static bool has_vcpu_in_kvm_run(pid_t pid) {
        char path[300], buf[256];
        struct dirent *de;
        bool found = false;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/task", (int) pid);
        d = opendir(path);
        while (d && (de = readdir(d)) && !found) {
                _cleanup_fclose_ FILE *f = NULL;

                snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", (int) pid, de->d_name);
                f = fopen(path, "re");
                if (f && fgets(buf, sizeof(buf), f) && strtol(buf, NULL, 10) == SYS_ioctl)
                        found = strstr(buf, " 0xae80 ") != NULL;
        }
        if (d)
                closedir(d);
        return found;
}

/* Real QEMU with running vCPUs (SeaBIOS, no boot device), never told
 * about pmufilterd: injected twice, it keeps running and still shuts down
 * cleanly on SIGTERM, which its main loop handles. */
static void test_running_qemu(void **state) {
        const char *qemu = find_qemu();
        struct inject_result res;
        char comm[64];
        int fd = -1, status = 0;
        pid_t pid;

        skip_unless_able();
        if (!qemu) {
                print_message("skipped: no qemu-system-x86_64\n");
                skip();
        }
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);

                dup2(null, STDIN_FILENO);
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
                execl(qemu, qemu, "-accel", "kvm", "-display", "none", "-nodefaults", "-m", "64",
                      "-smp", "2", NULL);
                _exit(127);
        }
        for (int i = 0; i < 1000 && (fd < 0 || !has_vcpu_in_kvm_run(pid)); i++) {
                usleep(10000);
                fd = find_vm_fd(pid);
        }
        assert_true(fd >= 0);

        assert_int_equal(inject_n(pid, fd, KVM_PMU_EVENT_ALLOW, 4, TIMEOUT_MS, &res), 0);
        assert_int_equal(res.error, 0);
        snprintf(comm, sizeof(comm), "/proc/%d/task/%d/comm", (int) pid, (int) res.tid);
        print_message("  QEMU %d: injected through thread %d (main thread: %s), %u µs stopped\n", (int) pid,
                      (int) res.tid, res.tid == pid ? "yes" : "no", res.stopped_us);
        usleep(300000);
        assert_int_equal(inject_n(pid, fd, KVM_PMU_EVENT_DENY, 2, TIMEOUT_MS, &res), 0);
        assert_int_equal(res.error, 0);
        usleep(300000);
        assert_int_equal(waitpid(pid, &status, WNOHANG), 0);    /* still running */
        assert_untouched(pid);

        assert_int_equal(kill(pid, SIGTERM), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static bool under_seccomp(void) {
        char mode[16];

        proc_status(getpid(), "Seccomp:", mode, sizeof(mode));
        return !streq(mode, "0");
}

static void seccomp_case(const char *deny, const char *stack, int want_r, const char *want_reason) {
        struct inject_result res;
        char arg[64];
        struct vmm v;
        int r;

        snprintf(arg, sizeof(arg), "--deny=%s", deny);
        vmm_start(&v, SECCOMP_VMM_PATH, arg, stack);
        wait_in_call(v.pid, v.pid, SYS_nanosleep);
        r = inject_n(v.pid, v.fds[0], KVM_PMU_EVENT_ALLOW, 1, TIMEOUT_MS, &res);
        print_message("  --deny=%s%s%s: %s\n", deny, stack ? " " : "", strempty(stack),
                      r < 0 ? "refused" : "injected");
        assert_int_equal(r, want_r);
        if (r == 0)
                assert_int_equal(res.error, 0);
        else {
                assert_non_null(strstr(res.reason, "seccomp"));
                assert_non_null(strstr(res.reason, want_reason));
                assert_int_equal(res.tid, 0);
        }
        assert_untouched(v.pid);
        vmm_finish(&v);         /* alive, and its own sleeps were whole */
}

/* Filters that would punish the ioctl are refused with the action named;
 * filters that let it run (one allowing exactly this ioctl, LOG) are
 * injected, and the VMM survives: the evaluator agreed with its kernel. */
static void test_seccomp_vmm(void **state) {
        skip_unless_able();
        if (under_seccomp()) {
                print_message("skipped: this test runs under seccomp: filters cannot be dumped\n");
                skip();
        }
        seccomp_case("kill", NULL, -EPERM, "kill-process");
        seccomp_case("errno", NULL, -EPERM, "errno 1 (EPERM)");
        seccomp_case("trap", "--stack", -EPERM, "trap");
        seccomp_case("allow-pmu", "--stack", 0, NULL);
        seccomp_case("log", NULL, 0, NULL);
}

/* Traced by another process: refused, without disturbing either; once the
 * tracer is gone, the same VMM is injected. */
static void test_traced_vmm_refused(void **state) {
        struct inject_result res;
        struct vmm v;
        int ready[2], status;
        pid_t tracer;
        char c;

        skip_unless_able();
        vmm_start(&v, SLEEPY_VMM_PATH, "--sleep-ms=200", NULL);
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        tracer = fork();
        assert_true(tracer >= 0);
        if (tracer == 0) {
                if (ptrace(PTRACE_SEIZE, v.pid, NULL, NULL) < 0)
                        _exit(1);
                (void) write(ready[1], "x", 1);
                pause();
                _exit(0);
        }
        close(ready[1]);
        assert_int_equal(read(ready[0], &c, 1), 1);
        close(ready[0]);

        assert_int_equal(inject_n(v.pid, v.fds[0], KVM_PMU_EVENT_ALLOW, 1, TIMEOUT_MS, &res), -EBUSY);
        assert_non_null(strstr(res.reason, "already traced"));
        assert_int_equal(waitpid(tracer, &status, WNOHANG), 0);        /* the tracer is undisturbed */

        kill(tracer, SIGKILL);
        assert_int_equal(waitpid(tracer, &status, 0), tracer);
        wait_in_call(v.pid, v.pid, SYS_nanosleep);
        assert_injected(v.pid, v.fds[0], KVM_PMU_EVENT_ALLOW, 1, 0);
        vmm_finish(&v);
}

/* No thread in a safe call: refused when the timeout ends, not later, and
 * nothing is left stopped or traced.  A stopped VMM is refused at once. */
static void test_no_safe_thread_and_stopped_vmm(void **state) {
        struct inject_result res;
        struct vmm v;
        uint64_t start, took;
        char st[64];

        skip_unless_able();
        vmm_start(&v, SLEEPY_VMM_PATH, "--spin", "--sleep-ms=50");
        start = now_us();
        assert_int_equal(inject_n(v.pid, v.fds[0], KVM_PMU_EVENT_ALLOW, 1, 200, &res), -ETIME);
        took = now_us() - start;
        print_message("  refused after %.1f ms (timeout 200 ms)\n", took / 1000.0);
        assert_true(took >= 200000 && took < 1000000);
        assert_non_null(strstr(res.reason, "running"));
        assert_untouched(v.pid);

        assert_int_equal(inject_n(v.pid, 0, KVM_PMU_EVENT_ALLOW, 1, 200, &res), -EBADF);   /* a pipe */
        assert_non_null(strstr(res.reason, "not a KVM VM"));
        assert_int_equal(inject_n(v.pid, 999, KVM_PMU_EVENT_ALLOW, 1, 200, &res), -EBADF);

        assert_int_equal(kill(v.pid, SIGSTOP), 0);
        for (int i = 0; i < 1000; i++) {
                proc_status(v.pid, "State:", st, sizeof(st));
                if (st[0] == 'T')
                        break;
                usleep(1000);
        }
        assert_int_equal(inject_n(v.pid, v.fds[0], KVM_PMU_EVENT_ALLOW, 1, 200, &res), -EBUSY);
        assert_non_null(strstr(res.reason, "stopped"));
        assert_int_equal(kill(v.pid, SIGCONT), 0);
        vmm_finish(&v);
}

static void test_hundred_vms_in_one_process(void **state) {
        struct vmm v;

        skip_unless_able();
        vmm_start(&v, SLEEPY_VMM_PATH, "--vms=100", "--sleep-ms=500");
        assert_int_equal(v.n_fds, 100);
        wait_in_call(v.pid, v.pid, SYS_nanosleep);
        for (size_t i = 0; i < v.n_fds; i++)
                assert_injected(v.pid, v.fds[i], KVM_PMU_EVENT_ALLOW, 8, 0);
        assert_untouched(v.pid);
        vmm_finish(&v);
}

static void test_hundred_vms_across_ten_processes(void **state) {
        struct vmm v[10];

        skip_unless_able();
        for (size_t p = 0; p < ELEMENTSOF(v); p++)
                vmm_start(&v[p], p % 2 ? POLLY_VMM_PATH : SLEEPY_VMM_PATH, "--vms=10",
                          p % 2 ? "--round-ms=100" : "--sleep-ms=100");
        for (size_t i = 0; i < 10; i++)
                for (size_t p = 0; p < ELEMENTSOF(v); p++)
                        assert_injected(v[p].pid, v[p].fds[i], KVM_PMU_EVENT_DENY, 8, 0);
        for (size_t p = 0; p < ELEMENTSOF(v); p++)
                vmm_finish(&v[p]);
}

static int compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return (x > y) - (x < y);
}

static int print_times(void **state) {
        if (n_times == 0)
                return 0;
        qsort(totals_us, n_times, sizeof(uint64_t), compare_u64);
        qsort(stopped_us, n_times, sizeof(uint64_t), compare_u64);
        print_message("injections: %zu; whole call µs min %" PRIu64 " median %" PRIu64 " p95 %" PRIu64
                      " max %" PRIu64 "; VMM thread stopped µs min %" PRIu64 " median %" PRIu64 " p95 %" PRIu64
                      " max %" PRIu64 "\n", n_times,
                      totals_us[0], totals_us[n_times / 2], totals_us[n_times * 95 / 100], totals_us[n_times - 1],
                      stopped_us[0], stopped_us[n_times / 2], stopped_us[n_times * 95 / 100],
                      stopped_us[n_times - 1]);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sleeping_vmm_answers_from_its_own_context),
                cmocka_unit_test(test_polling_vmm_keeps_correct_results),
                cmocka_unit_test(test_polling_vmm_under_a_signal_storm),
                cmocka_unit_test(test_running_qemu),
                cmocka_unit_test(test_seccomp_vmm),
                cmocka_unit_test(test_traced_vmm_refused),
                cmocka_unit_test(test_no_safe_thread_and_stopped_vmm),
                cmocka_unit_test(test_hundred_vms_in_one_process),
                cmocka_unit_test(test_hundred_vms_across_ten_processes),
        };

        return cmocka_run_group_tests(tests, NULL, print_times);
}
