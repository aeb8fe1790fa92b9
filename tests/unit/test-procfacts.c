/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-procfacts.c — the facts read about real processes: this one, a
 * child with a hostile comm, a child whose binary was deleted, a child in
 * a systemd-style cgroup, and processes that are gone.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "match.h"
#include "procfacts.h"

static void test_self(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = {};
        char exe[4096], comm[32];
        ssize_t l;
        FILE *c;

        l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        assert_true(l > 0);
        exe[l] = 0;
        c = fopen("/proc/self/comm", "re");
        assert_non_null(c);
        assert_non_null(fgets(comm, sizeof(comm), c));
        fclose(c);
        comm[strcspn(comm, "\n")] = 0;

        assert_int_equal(proc_facts_read(getpid(), &f), 0);
        assert_int_equal(f.pid, getpid());
        assert_string_equal(f.exe, exe);
        assert_false(f.exe_deleted);
        assert_string_equal(f.comm, comm);
        assert_int_equal(f.uid, getuid());
        assert_int_equal(f.gid, getgid());
        if (getuid() == 0) {
                assert_string_equal(f.user, "root");
                assert_string_equal(f.group, "root");
        }
        assert_non_null(f.cgroup);
        assert_true(f.cgroup[0] == '/');
        assert_true(f.starttime > 0);
        assert_true(f.starttime == proc_starttime(getpid()));
}

/* An id with no passwd/group entry is named by its number. */
static void test_unnamed_ids(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = {};
        int ready[2];
        pid_t child;
        char b;

        if (getuid() != 0)
                skip();
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                if (setresgid(424242, 424242, 424242) < 0 || setresuid(434343, 0, 0) < 0)
                        _exit(1);
                /* real uid 434343, effective 0: the real one is reported */
                (void) write(ready[1], "x", 1);
                pause();
                _exit(0);
        }
        close(ready[1]);
        assert_int_equal(read(ready[0], &b, 1), 1);
        close(ready[0]);

        assert_int_equal(proc_facts_read(child, &f), 0);
        assert_int_equal(f.uid, 434343);
        assert_int_equal(f.gid, 424242);
        assert_string_equal(f.user, "434343");
        assert_string_equal(f.group, "424242");

        kill(child, SIGKILL);
        assert_int_equal(waitpid(child, NULL, 0), child);
}

/* comm is chosen by the process and may hold ") " — stat's fields must
 * still be found after it. */
static void test_hostile_comm(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = {};
        uint64_t st;
        char old[17] = {};

        assert_int_equal(prctl(PR_GET_NAME, old), 0);
        st = proc_starttime(getpid());
        assert_int_equal(prctl(PR_SET_NAME, "a) R 1 2 (3 4 5"), 0);

        assert_int_equal(proc_facts_read(getpid(), &f), 0);
        assert_string_equal(f.comm, "a) R 1 2 (3 4 5");
        assert_true(f.starttime == st);
        assert_true(proc_starttime(getpid()) == st);

        assert_int_equal(prctl(PR_SET_NAME, old), 0);
}

static pid_t run_paused(const char *exe) {
        pid_t child = fork();

        assert_true(child >= 0);
        if (child == 0) {
                execl(exe, "sleep", "60", (char *) NULL);
                _exit(127);
        }
        return child;
}

/* Wait until the child runs exe, not the copy of the test it was forked as. */
static void wait_exec(pid_t pid, const char *exe) {
        for (unsigned i = 0; i < 500; i++) {
                _cleanup_(proc_facts_done) struct proc_facts f = {};

                if (proc_facts_read(pid, &f) == 0 && startswith(f.exe, exe))
                        return;
                usleep(10 * 1000);
        }
        fail_msg("process %d never ran %s", (int) pid, exe);
}

/* A package upgrade replaces the VMM's binary under it: the path stays the
 * fact to match on, the deletion is reported beside it. */
static void test_deleted_exe(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = {};
        char exe[] = "/tmp/test-procfacts-sleep-XXXXXX";
        int in, out;
        pid_t child;
        char buf[65536];
        ssize_t l;

        in = open("/bin/sleep", O_RDONLY | O_CLOEXEC);
        if (in < 0)
                skip();
        out = mkostemp(exe, O_CLOEXEC);
        assert_true(out >= 0);
        while ((l = read(in, buf, sizeof(buf))) > 0)
                assert_int_equal(write(out, buf, (size_t) l), l);
        close(in);
        assert_int_equal(fchmod(out, 0700), 0);
        close(out);

        child = run_paused(exe);
        wait_exec(child, exe);
        assert_int_equal(unlink(exe), 0);

        assert_int_equal(proc_facts_read(child, &f), 0);
        assert_string_equal(f.exe, exe);
        assert_true(f.exe_deleted);
        /* comm: the binary's name, cut to TASK_COMM_LEN - 1 */
        assert_int_equal(strlen(f.comm), 15);
        assert_non_null(startswith(strrchr(exe, '/') + 1, f.comm));

        kill(child, SIGKILL);
        assert_int_equal(waitpid(child, NULL, 0), child);
}

/* systemd's view comes from the cgroup path: a child moved into
 * ".../pmufilterd-test.slice/pmufilterd-test-<pid>.scope" of the unified
 * hierarchy is in that unit and slice even where systemd is not running. */
static void test_unit_and_slice(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = {};
        char slice[256], scope[512], procs[640], want_cg[320], want_unit[64];
        const char *root = NULL;
        pid_t child;
        FILE *p;

        if (access("/sys/fs/cgroup/cgroup.procs", W_OK) == 0 && access("/sys/fs/cgroup/unified", F_OK) < 0)
                root = "/sys/fs/cgroup";
        else if (access("/sys/fs/cgroup/unified/cgroup.procs", W_OK) == 0)
                root = "/sys/fs/cgroup/unified";
        if (!root) {
                print_message("SKIP: no writable cgroup v2 hierarchy\n");
                skip();
        }

        snprintf(slice, sizeof(slice), "%s/pmufilterd-test.slice", root);
        snprintf(want_unit, sizeof(want_unit), "pmufilterd-test-%d.scope", (int) getpid());
        snprintf(scope, sizeof(scope), "%s/%s", slice, want_unit);
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", scope);
        snprintf(want_cg, sizeof(want_cg), "/pmufilterd-test.slice/%s", want_unit);
        if ((mkdir(slice, 0755) < 0 && errno != EEXIST) || mkdir(scope, 0755) < 0) {
                print_message("SKIP: cannot make a cgroup under %s: %s\n", root, strerror(errno));
                skip();
        }

        child = run_paused("/bin/sleep");
        p = fopen(procs, "we");
        assert_non_null(p);
        assert_true(fprintf(p, "%d\n", (int) child) > 0);
        assert_int_equal(fclose(p), 0);

        assert_int_equal(proc_facts_read(child, &f), 0);
        assert_string_equal(f.cgroup, want_cg);
        assert_string_equal(f.unit, want_unit);
        assert_string_equal(f.slice, "pmufilterd-test.slice");
        assert_null(f.machine);                 /* no machined registration */

        kill(child, SIGKILL);
        assert_int_equal(waitpid(child, NULL, 0), child);
        assert_int_equal(rmdir(scope), 0);
        (void) rmdir(slice);                    /* a parallel run may still use it */
}

static void test_gone(void **state) {
        struct proc_facts f = { .pid = 4242 };
        struct proc_facts task = { .pid = 4242 };
        pid_t child;

        child = fork();
        assert_true(child >= 0);
        if (child == 0)
                _exit(0);
        assert_int_equal(waitpid(child, NULL, 0), child);

        assert_int_equal(proc_facts_read(child, &f), -ESRCH);
        assert_int_equal(f.pid, 4242);          /* untouched on failure */
        assert_true(proc_starttime(child) == 0);
        assert_int_equal(proc_facts_open_task(child, &task), -ESRCH);
        assert_int_equal(task.pid, 4242);       /* untouched on failure */
        assert_int_equal(proc_facts_read(0, &f), -EINVAL);
        assert_true(proc_starttime(-1) == 0);
}

/* Only what is asked for is read, and only once. */
static void test_lazy(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = {};

        assert_int_equal(proc_facts_open(getpid(), &f), 0);
        assert_int_equal(f.pid, getpid());
        assert_true(f.starttime == proc_starttime(getpid()));
        assert_non_null(f.comm);
        assert_int_equal(f.loaded, 0);
        assert_null(f.exe);
        assert_null(f.user);

        assert_int_equal(proc_facts_load(&f, PROC_FACT_NAMES), 0);
        assert_int_equal(f.loaded, PROC_FACT_NAMES | PROC_FACT_IDS);     /* names need the ids */
        assert_int_equal(f.uid, getuid());
        assert_non_null(f.user);
        assert_non_null(f.group);
        assert_null(f.exe);
        assert_null(f.cgroup);

        assert_int_equal(proc_facts_load(&f, PROC_FACT_EXE | PROC_FACT_CGROUP), 0);
        assert_int_equal(f.loaded, PROC_FACT_NAMES | PROC_FACT_IDS | PROC_FACT_EXE | PROC_FACT_CGROUP);
        assert_non_null(f.exe);
        assert_int_equal(proc_facts_load(&f, PROC_FACT_EXE), 0);     /* nothing left to read */

        assert_int_equal(proc_fact_of_key("unit"), PROC_FACT_UNIT);
        assert_int_equal(proc_fact_of_key("user"), PROC_FACT_NAMES);
        assert_int_equal(proc_fact_of_key("comm"), 0);
        assert_int_equal(proc_fact_of_key("label.tier"), 0);
        assert_int_equal(proc_fact_of_key("name"), 0);
}

/* A process gone (or replaced) between open and load: nothing is added. */
static void test_lazy_gone(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = {};
        pid_t child;

        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                pause();
                _exit(0);
        }
        assert_int_equal(proc_facts_open(child, &f), 0);
        kill(child, SIGKILL);
        assert_int_equal(waitpid(child, NULL, 0), child);
        assert_int_equal(proc_facts_load(&f, PROC_FACT_ALL), -ESRCH);
        assert_int_equal(f.loaded, 0);
        assert_null(f.exe);
        assert_null(f.unit);

        /* Another process under the same pid (as if reused): its start time differs. */
        proc_facts_done(&f);
        assert_int_equal(proc_facts_open(getpid(), &f), 0);
        f.starttime++;
        assert_int_equal(proc_facts_load(&f, PROC_FACT_EXE), -ESRCH);
        assert_null(f.exe);
}

/* Rules read a fact only once the rule's other keys held. */
static void test_match_reads_lazily(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = {};
        char uid[16];
        struct rule_match m1[] = { { .key = (char *) "label.tier", .value = (char *) "trusted" },
                              { .key = (char *) "exe", .value = (char *) "*" } };
        struct rule_match m2[] = { { .key = (char *) "uid", .value = uid },
                              { .key = (char *) "label.tier", .value = (char *) "standard" } };
        struct rule rules[] = {
                { .matches = m1, .n_matches = 2, .profile = (char *) "trusted" },
                { .matches = m2, .n_matches = 2, .profile = (char *) "standard" },
        };
        struct policy p = { .rules = rules, .n_rules = 2 };
        char *labels[] = { (char *) "tier=standard", NULL };
        struct match_input in = { .labels = labels, .facts = &f, .load_facts = proc_facts_load };

        snprintf(uid, sizeof(uid), "%u", (unsigned) getuid());
        assert_int_equal(proc_facts_open(getpid(), &f), 0);
        assert_int_equal(match_rules(&p, &in), 1);
        assert_int_equal(f.loaded, PROC_FACT_IDS);      /* rule 1 failed on its label: no exe read */
        assert_null(f.exe);
}

/* A zombie has no exe any more: its facts are not to be had either. */
static void test_zombie(void **state) {
        struct proc_facts f = {};
        siginfo_t si = {};
        pid_t child;

        child = fork();
        assert_true(child >= 0);
        if (child == 0)
                _exit(0);
        assert_int_equal(waitid(P_PID, child, &si, WEXITED | WNOWAIT), 0);
        assert_int_equal(proc_facts_read(child, &f), -ESRCH);
        assert_int_equal(waitpid(child, NULL, 0), child);
}

static void *report_tid(void *arg) {
        _cleanup_(proc_facts_done) struct proc_facts f = {};
        pid_t *out = arg;

        out[0] = gettid();
        out[1] = proc_facts_open_task(out[0], &f) < 0 ? -1 : f.pid;
        return NULL;
}

static void test_tgid(void **state) {
        _cleanup_(proc_facts_done) struct proc_facts f = {};
        pid_t out[2];
        pthread_t t;

        assert_int_equal(proc_facts_open_task(getpid(), &f), 0);
        assert_int_equal(f.pid, getpid());
        assert_int_equal(pthread_create(&t, NULL, report_tid, out), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_not_equal(out[0], getpid());
        assert_int_equal(out[1], getpid());
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_self),
                cmocka_unit_test(test_unnamed_ids),
                cmocka_unit_test(test_hostile_comm),
                cmocka_unit_test(test_deleted_exe),
                cmocka_unit_test(test_unit_and_slice),
                cmocka_unit_test(test_gone),
                cmocka_unit_test(test_zombie),
                cmocka_unit_test(test_tgid),
                cmocka_unit_test(test_lazy),
                cmocka_unit_test(test_lazy_gone),
                cmocka_unit_test(test_match_reads_lazily),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
