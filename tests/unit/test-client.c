/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-client.c — libpmufilter-client and the preload shim on real VMs,
 * against a scripted daemon (scripted-daemon.c) that sends APPLY, ERROR,
 * garbage, hangs up or says nothing, and against an impostor that listens
 * as nobody and must get nothing.  The kernel side
 * (KVM_SET_PMU_EVENT_FILTER) is real.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "kvm-compat.h"
#include "pmufilter-client.h"
#include "proto.h"
#include "scripted-daemon.h"
#include "util.h"

static int attach_at(const char *path, int vm, int timeout_ms, struct pmufilter_session **ret) {
        static const char *const labels[] = { "tier=gold", "zone=eu-1", NULL };
        struct pmufilter_attach_args a = PMUFILTER_ATTACH_ARGS_INIT;

        a.socket_path = path;
        a.name = "vm-test";
        a.uuid = "01234567-89AB-cdef-0123-456789abcdef";
        a.labels = labels;
        a.timeout_ms = timeout_ms;
        return pmufilter_attach(vm, &a, ret);
}

static int attach(struct daemon *d, int vm, int timeout_ms, struct pmufilter_session **ret) {
        return attach_at(d->path, vm, timeout_ms, ret);
}

/* accept, ATTACH, the APPLY in d->apply, APPLIED, then wait for the end. */
static void script_apply(struct daemon *d) {
        int conn = d_accept(d);

        if (conn < 0)
                return;
        if (d_expect_attach(d, conn)) {
                d_send(d, conn, d->apply);
                if (d_expect_applied(d, conn))
                        d_wait_close(d, conn);
        }
        close(conn);
}

static void test_apply(void **state) {
        struct pmufilter_session *s = NULL;
        struct daemon d;
        int vm;

        NEED_DAEMON_UID();
        NEED_VM(vm);
        daemon_start(&d, script_apply);
        assert_int_equal(attach(&d, vm, 0, &s), 0);
        assert_string_equal(pmufilter_session_profile(s), "tenant");
        assert_string_equal(pmufilter_session_vm_id(s), "vm-1");
        assert_true(pmufilter_session_serial(s) == 7);
        assert_int_equal(pmufilter_session_apply_errno(s), 0);
        assert_int_equal(pmufilter_session_pmu_errno(s), -1);
        assert_int_equal(pmufilter_session_connected(s), 1);
        assert_true(pmufilter_session_fd(s) >= 0);
        /* Nothing pushed: process() has nothing to do, and does not block. */
        assert_int_equal(pmufilter_session_process(s), 0);
        pmufilter_session_free(s);
        daemon_stop(&d);

        assert_int_equal(d.n_attach, 1);
        assert_int_equal(d.attach[0].vmfd, vm);
        assert_int_equal(d.attach[0].vcpus, 0);
        assert_string_equal(d.attach[0].name, "vm-test");
        assert_string_equal(d.attach[0].uuid, "01234567-89ab-cdef-0123-456789abcdef");
        assert_int_equal(d.attach[0].client, PROTO_CLIENT_LIBRARY);
        assert_int_equal(d.attach[0].n_labels, 2);
        assert_string_equal(d.attach[0].labels[0].key, "tier");
        assert_string_equal(d.attach[0].labels[1].value, "eu-1");
        /* What travelled is the VM itself. */
        assert_string_equal(d.fd_kind[0], "anon_inode:kvm-vm");
        assert_int_equal(d.n_applied, 1);
        assert_true(d.applied[0].serial == 7);
        assert_int_equal(d.applied[0].error, 0);
        assert_false(d.applied[0].has_pmu_error);
        assert_true(d.detached);
        /* The library never closes the VM. */
        assert_true(fcntl(vm, F_GETFD) >= 0);
        daemon_done(&d);
        close(vm);
}

static void check_refused(const char *apply, int expected_errno) {
        struct pmufilter_session *s = NULL;
        struct daemon d;
        int vm;

        NEED_DAEMON_UID();
        NEED_VM(vm);
        daemon_start(&d, script_apply);
        d.apply = apply;
        assert_int_equal(attach(&d, vm, 0, &s), -expected_errno);
        assert_null(s);
        assert_non_null(strstr(pmufilter_last_error(), "KVM_SET_PMU_EVENT_FILTER"));
        daemon_stop(&d);
        assert_int_equal(d.n_applied, 1);
        assert_int_equal(d.applied[0].error, expected_errno);
        assert_true(d.detached);
        daemon_done(&d);
        close(vm);
}

static void test_refused_by_kernel(void **state) {
        _cleanup_free_ char *big = malloc(PROTO_MSG_MAX);
        size_t n;

        /* Flags the kernel does not know: EINVAL, reported in APPLIED. */
        check_refused("PMUFILTER/1 APPLY\nSERIAL=3\nACTION=allow\nFLAGS=2\nFIXED=0x0\nEVENTS=0xc0\n", EINVAL);

        /* More entries than the kernel's limit of 300: E2BIG. */
        assert_non_null(big);
        n = snprintf(big, PROTO_MSG_MAX, "PMUFILTER/1 APPLY\nSERIAL=4\nACTION=deny\nFLAGS=0\nFIXED=0x0\nEVENTS=0x1");
        for (unsigned i = 1; i < 1024; i++)
                n += snprintf(big + n, PROTO_MSG_MAX - n, ",0x%x", i + 1);
        snprintf(big + n, PROTO_MSG_MAX - n, "\n");
        check_refused(big, E2BIG);
}

static void test_pmu_off(void **state) {
        struct pmufilter_session *s = NULL;
        struct daemon d;
        int vm, kvm, cap, expected;

        NEED_DAEMON_UID();
        NEED_VM(vm);
        /* What the kernel will say to KVM_CAP_PMU_CAPABILITY here. */
        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        assert_true(kvm >= 0);
        cap = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_PMU_CAPABILITY);
        close(kvm);
        expected = cap > 0 ? 0 : EINVAL;

        daemon_start(&d, script_apply);
        d.apply = "PMUFILTER/1 APPLY\nSERIAL=5\nPROFILE=no-pmu\nPMU=off\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=\n";
        assert_int_equal(attach(&d, vm, 0, &s), 0);
        assert_int_equal(pmufilter_session_pmu_errno(s), expected);
        pmufilter_session_free(s);
        daemon_stop(&d);
        assert_true(d.applied[0].has_pmu_error);
        assert_int_equal(d.applied[0].pmu_error, expected);
        assert_int_equal(d.applied[0].error, 0);
        daemon_done(&d);
        close(vm);
}

/* accept, ATTACH, then send d->apply (an ERROR or garbage) and hang up. */
static void script_answer_and_close(struct daemon *d) {
        int conn = d_accept(d);

        if (conn < 0)
                return;
        if (d_expect_attach(d, conn) && d->apply)
                d_send(d, conn, d->apply);
        close(conn);
}

static void test_error(void **state) {
        static const struct {
                const char *answer;     /* NULL: hang up without a word */
                int error;
                const char *message;
        } table[] = {
                { "PMUFILTER/1 ERROR\nERRNO=1\nMESSAGE=no rule matches VM vm-test and no default_profile\n",
                  EPERM, "no rule matches VM vm-test and no default_profile" },
                { "PMUFILTER/1 ERROR\nERRNO=13\n", EACCES, "pmufilterd refused VM fd" },
                { "HELLO\n", EBADMSG, "malformed answer" },
                { "PMUFILTER/1 ERROR\nERRNO=0\n", EBADMSG, "malformed ERROR" },
                { "PMUFILTER/1 APPLIED\nSERIAL=1\nERRNO=0\n", EBADMSG, "expected APPLY or ERROR" },
                { NULL, ECONNRESET, "closed the connection without an answer" },
        };
        struct pmufilter_session *s = NULL;
        struct daemon d;
        int vm;

        NEED_DAEMON_UID();
        NEED_VM(vm);
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                daemon_start(&d, script_answer_and_close);
                d.apply = table[i].answer;
                assert_int_equal(attach(&d, vm, 0, &s), -table[i].error);
                assert_null(s);
                if (!strstr(pmufilter_last_error(), table[i].message))
                        fail_msg("case %zu: \"%s\" lacks \"%s\"", i, pmufilter_last_error(), table[i].message);
                daemon_stop(&d);
                daemon_done(&d);
        }
        close(vm);
}

/* accept, ATTACH, say nothing until the client gives up. */
static void script_silent(struct daemon *d) {
        int conn = d_accept(d);

        if (conn < 0)
                return;
        if (d_expect_attach(d, conn))
                d_wait_close(d, conn);
        close(conn);
}

static void test_timeout(void **state) {
        struct pmufilter_session *s = NULL;
        struct daemon d;
        int64_t t;
        int vm;

        NEED_DAEMON_UID();
        NEED_VM(vm);
        daemon_start(&d, script_silent);
        t = now_ms();
        assert_int_equal(attach(&d, vm, 300, &s), -ETIMEDOUT);
        t = now_ms() - t;
        assert_true(t >= 300 && t < 2000);
        assert_non_null(strstr(pmufilter_last_error(), "within 300 ms"));
        assert_null(s);
        daemon_stop(&d);
        daemon_done(&d);

        /* No daemon at all: the socket's absence is the error. */
        assert_int_equal(attach(&d, vm, 300, &s), -ENOENT);
        assert_non_null(strstr(pmufilter_last_error(), d.path));
        close(vm);
}

/* Session 1: APPLY 1, a pushed APPLY 2, then hang-up.  Session 2 (the
 * re-attach): APPLY 3.  With d->apply == NULL the daemon also goes away
 * for a while between them, so the re-attach has to wait for the timer. */
static void script_reconnect(struct daemon *d) {
        bool away = !d->apply;
        int conn = d_accept(d);

        if (conn < 0)
                return;
        if (!d_expect_attach(d, conn))
                return (void) close(conn);
        d_send(d, conn, "PMUFILTER/1 APPLY\nSERIAL=1\nPROFILE=p1\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=0xc0\n");
        if (!d_expect_applied(d, conn))
                return (void) close(conn);
        d_send(d, conn, "PMUFILTER/1 APPLY\nSERIAL=2\nPROFILE=p2\nACTION=deny\nFLAGS=0\nFIXED=0x1\nEVENTS=0xc0,0x3c\n");
        if (!d_expect_applied(d, conn))
                return (void) close(conn);
        /* Hang up only when the test has seen the push. */
        if (!wait_readable(d->go[0], SCRIPT_WAIT_MS))
                d_fail(d, "the test did not let the script go on");
        if (away) {
                /* A daemon that is not there: the socket path is gone. */
                close(d->listen_fd);
                unlink(d->path);
        }
        close(conn);
        if (away) {
                usleep(300 * 1000);
                d_listen(d);
        }

        conn = d_accept(d);
        if (conn < 0)
                return;
        if (d_expect_attach(d, conn)) {
                d_send(d, conn, "PMUFILTER/1 APPLY\nSERIAL=3\nPROFILE=p3\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=\n");
                if (d_expect_applied(d, conn))
                        d_wait_close(d, conn);
        }
        close(conn);
}

static void check_reconnect(bool away) {
        struct pmufilter_session *s = NULL;
        struct daemon d;
        int vm, vcpu, r = 0;
        int64_t end;

        NEED_DAEMON_UID();
        NEED_VM(vm);
        daemon_start(&d, script_reconnect);
        if (away)
                d.apply = NULL;
        assert_int_equal(attach(&d, vm, 0, &s), 0);
        assert_true(pmufilter_session_serial(s) == 1);

        /* A real vCPU: the re-attach must report it. */
        vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
        assert_true(vcpu >= 0);
        assert_int_equal(pmufilter_session_set_vcpus(s, 1), 0);

        /* The push. */
        assert_true(wait_readable(pmufilter_session_fd(s), 5000));
        assert_int_equal(pmufilter_session_process(s), 1);
        assert_true(pmufilter_session_serial(s) == 2);
        assert_string_equal(pmufilter_session_profile(s), "p2");
        assert_int_equal(write(d.go[1], "x", 1), 1);

        /* The hang-up, and the re-attach. */
        end = now_ms() + 8000;
        while (pmufilter_session_serial(s) != 3 && now_ms() < end) {
                if (!wait_readable(pmufilter_session_fd(s), 1000))
                        continue;
                r = pmufilter_session_process(s);
                if (away && pmufilter_session_serial(s) != 3) {
                        /* Daemon away: refused or absent, retried later. */
                        assert_true(r == -ENOENT || r == -ECONNREFUSED || r == 0);
                        assert_int_equal(pmufilter_session_connected(s), 0);
                }
        }
        assert_int_equal(r, 1);
        assert_true(pmufilter_session_serial(s) == 3);
        assert_string_equal(pmufilter_session_profile(s), "p3");
        assert_int_equal(pmufilter_session_connected(s), 1);
        pmufilter_session_free(s);
        daemon_stop(&d);

        assert_int_equal(d.n_attach, 2);
        assert_int_equal(d.attach[1].vcpus, 1);
        assert_string_equal(d.attach[1].name, "vm-test");
        assert_string_equal(d.fd_kind[1], "anon_inode:kvm-vm");
        assert_int_equal(d.n_applied, 3);
        assert_true(d.applied[1].serial == 2);
        assert_true(d.applied[2].serial == 3);
        for (unsigned i = 0; i < 3; i++)
                assert_int_equal(d.applied[i].error, 0);
        assert_true(d.detached);
        daemon_done(&d);
        close(vcpu);
        close(vm);
}

static void test_push_and_reconnect(void **state) {
        check_reconnect(false);
}

static void test_reconnect_after_absence(void **state) {
        check_reconnect(true);
}

static void test_bad_args(void **state) {
        static const char *const bad_label[] = { "novalue", NULL };
        static const char *const bad_key[] = { "a b=c", NULL };
        struct pmufilter_attach_args a = PMUFILTER_ATTACH_ARGS_INIT;
        struct pmufilter_session *s = NULL;

        a.socket_path = "/nonexistent/vmm.sock";
        assert_int_equal(pmufilter_attach(-1, &a, &s), -EBADF);
        a.labels = bad_label;
        assert_int_equal(pmufilter_attach(0, &a, &s), -EINVAL);
        assert_non_null(strstr(pmufilter_last_error(), "'novalue' is not key=value"));
        a.labels = bad_key;
        assert_int_equal(pmufilter_attach(0, &a, &s), -EINVAL);
        a.labels = NULL;
        a.client = "ptrace";
        assert_int_equal(pmufilter_attach(0, &a, &s), -EINVAL);
        a.client = NULL;
        a.uuid = "not-a-uuid";
        assert_int_equal(pmufilter_attach(0, &a, &s), -EINVAL);
        a.uuid = NULL;
        a.size = 0;
        assert_int_equal(pmufilter_attach(0, &a, &s), -EINVAL);
        assert_int_equal(pmufilter_attach(0, &a, NULL), -EINVAL);
        assert_null(s);
}

/* Run create-vm under the shim; returns its exit status, stdout and stderr
 * in out/err.  stdin_fd: the child's stdin (-1: /dev/null). */
static pid_t spawn_create_vm(char *const *argv, const char *const *env_add, int *ret_out, int *ret_err, int *ret_in) {
        extern char **environ;
        int out[2], err[2], in[2];
        size_t n = 0, k = 0;
        char **envp;
        pid_t pid;

        while (environ[n])
                n++;
        while (env_add[k])
                k++;
        envp = calloc(n + k + 2, sizeof(char *));
        assert_non_null(envp);
        for (size_t i = 0; i < k; i++)
                envp[i] = (char *) env_add[i];
#if defined(__SANITIZE_ADDRESS__)
        /* A sanitizer build: the shim is instrumented and preloaded ahead of
         * the runtime that create-vm links; that order is fine here. */
        envp[k++] = (char *) "ASAN_OPTIONS=verify_asan_link_order=0";
#endif
        for (size_t i = 0, j = k; i < n; i++)
                if (!startswith(environ[i], "PMUFILTER_") && !startswith(environ[i], "LD_PRELOAD="))
                        envp[j++] = environ[i];

        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(in[0], 0);
                dup2(out[1], 1);
                dup2(err[1], 2);
                execve(CREATE_VM_PATH, argv, envp);
                _exit(127);
        }
        free(envp);
        close(out[1]);
        close(err[1]);
        close(in[0]);
        *ret_out = out[0];
        *ret_err = err[0];
        *ret_in = in[1];
        return pid;
}

static void read_all(int fd, char *buf, size_t size) {
        size_t n = 0;
        ssize_t k;

        while (n + 1 < size && (k = read(fd, buf + n, size - n - 1)) > 0)
                n += k;
        buf[n] = 0;
        close(fd);
}

static int run_preload(const char *const *env_add, char *out, char *err, size_t size) {
        char *argv[] = { (char *) "create-vm", NULL };
        int o, e, i, status;
        pid_t pid;

        pid = spawn_create_vm(argv, env_add, &o, &e, &i);
        close(i);
        read_all(o, out, size);
        read_all(e, err, size);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static void test_preload_without_daemon(void **state) {
        const char *closed[] = { "LD_PRELOAD=" PRELOAD_PATH, "PMUFILTER_SOCKET=/nonexistent/vmm.sock", NULL };
        const char *open_[] = { "LD_PRELOAD=" PRELOAD_PATH, "PMUFILTER_SOCKET=/nonexistent/vmm.sock",
                                "PMUFILTER_REQUIRED=0", NULL };
        const char *none[] = { NULL };
        char out[1024], err[1024];
        int vm, r;

        NEED_VM(vm);
        close(vm);

        /* Without the shim the helper creates its VM. */
        r = run_preload(none, out, err, sizeof(out));
        assert_int_equal(r, 0);
        assert_non_null(strstr(out, "created fd="));

        /* Fail closed: no daemon, no VM. */
        r = run_preload(closed, out, err, sizeof(out));
        if (r != 1 || !strstr(out, "KVM_CREATE_VM failed errno=1 ") ||
            !strstr(err, "pmufilter-preload: refusing KVM_CREATE_VM: connect to pmufilterd at /nonexistent/vmm.sock"))
                fail_msg("fail-closed run: exit %d, stdout \"%s\", stderr \"%s\"", r, out, err);

        /* PMUFILTER_REQUIRED=0: the VM goes ahead, with one line of warning. */
        r = run_preload(open_, out, err, sizeof(out));
        if (r != 0 || !strstr(out, "created fd=") || !strstr(err, "runs without a PMU event filter (PMUFILTER_REQUIRED=0)") ||
            strchr(err, '\n') != err + strlen(err) - 1)
                fail_msg("PMUFILTER_REQUIRED=0 run: exit %d, stdout \"%s\", stderr \"%s\"", r, out, err);
}

/* The shim's session: ATTACH, APPLY 1, a push APPLY 2 answered by the shim's
 * thread, then DETACH when the VMM closes its VM fd. */
static void script_preload(struct daemon *d) {
        int conn = d_accept(d);

        if (conn < 0)
                return;
        if (d_expect_attach(d, conn)) {
                d_send(d, conn, apply_ok);
                if (d_expect_applied(d, conn)) {
                        d_send(d, conn, "PMUFILTER/1 APPLY\nSERIAL=8\nPROFILE=p\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=\n");
                        if (d_expect_applied(d, conn))
                                d_wait_close(d, conn);
                }
        }
        close(conn);
}

static void test_preload_attach(void **state) {
        char *argv[] = { (char *) "create-vm", (char *) "--vcpus=2", (char *) "--wait", (char *) "-name",
                         (char *) "guest=qemu,,vm,debug-threads=on", (char *) "-uuid",
                         (char *) "00000000-0000-0000-0000-0000000000aa", NULL };
        char sock_env[160], out[1024], err[1024];
        const char *env[] = { "LD_PRELOAD=" PRELOAD_PATH, sock_env, "PMUFILTER_LABELS=tier=gold,zone=a", NULL };
        struct daemon d;
        int o, e, i, status, vm;
        pid_t pid;

        NEED_DAEMON_UID();
        NEED_VM(vm);
        close(vm);
        daemon_start(&d, script_preload);
        snprintf(sock_env, sizeof(sock_env), "PMUFILTER_SOCKET=%s", d.path);
        pid = spawn_create_vm(argv, env, &o, &e, &i);
        /* Let the push be answered by the shim's thread while the VMM waits,
         * then let it close its VM. */
        for (int64_t end = now_ms() + 5000; d.n_applied < 2 && now_ms() < end;)
                usleep(10 * 1000);
        close(i);
        read_all(o, out, sizeof(out));
        read_all(e, err, sizeof(err));
        assert_int_equal(waitpid(pid, &status, 0), pid);
        daemon_stop(&d);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("create-vm under the shim: status %d, stdout \"%s\", stderr \"%s\"", status, out, err);
        assert_non_null(strstr(out, "created fd="));

        assert_int_equal(d.n_attach, 1);
        assert_int_equal(d.attach[0].client, PROTO_CLIENT_PRELOAD);
        assert_string_equal(d.attach[0].name, "qemu,vm");
        assert_string_equal(d.attach[0].uuid, "00000000-0000-0000-0000-0000000000aa");
        assert_int_equal(d.attach[0].vcpus, 0);
        assert_int_equal(d.attach[0].n_labels, 2);
        assert_string_equal(d.attach[0].labels[0].key, "tier");
        assert_string_equal(d.attach[0].labels[0].value, "gold");
        assert_string_equal(d.fd_kind[0], "anon_inode:kvm-vm");
        assert_int_equal(d.n_applied, 2);
        assert_int_equal(d.applied[0].error, 0);
        assert_true(d.applied[1].serial == 8);
        assert_int_equal(d.applied[1].error, 0);
        /* close(vm_fd) in the VMM ended the session with DETACH. */
        assert_true(d.detached);
        daemon_done(&d);
}

/* The impostor runs as nobody, which takes root; and a build that trusts
 * nobody's uid has no impostor. */
static void need_impostor(void) {
        if (geteuid() != 0) {
                printf("skip: needs root, to run the impostor daemon as uid %d\n", NOBODY_UID);
                skip();
        }
        if (PMUFILTER_DAEMON_UID == NOBODY_UID) {
                printf("skip: built with -Ddaemon_uid=%d: the impostor's uid is the daemon's\n", NOBODY_UID);
                skip();
        }
}

/* The refusal names the socket, the peer's uid and pid, and the uid wanted. */
static void refusal(char *buf, size_t size, const struct impostor *m) {
        snprintf(buf, size, "refusing to attach: the peer on %s is uid %d (pid %d), not pmufilterd's uid %u",
                 m->path, NOBODY_UID, (int) m->pid, (unsigned) PMUFILTER_DAEMON_UID);
}

static void assert_refused_by_uid(const struct impostor *m) {
        char want[256];

        refusal(want, sizeof(want), m);
        if (!strstr(pmufilter_last_error(), want))
                fail_msg("\"%s\" lacks \"%s\"", pmufilter_last_error(), want);
}

/* A daemon that answers on the socket but is not pmufilterd's uid, on a path
 * in its own directory and on an abstract name: the VM fd never leaves. */
static void test_impostor_is_refused(void **state) {
        struct pmufilter_session *s = NULL;
        char abstract[64];
        const char *paths[2] = { NULL, abstract };
        struct impostor m;
        int vm;

        need_impostor();
        NEED_VM(vm);
        snprintf(abstract, sizeof(abstract), "@pmufilter-test-impostor-%d", (int) getpid());
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                impostor_start(&m, paths[i]);
                assert_int_equal(attach_at(m.path, vm, 0, &s), -EPERM);
                assert_null(s);
                assert_refused_by_uid(&m);
                impostor_stop(&m);

                /* Reached, and given nothing: no ATTACH, no fd. */
                assert_int_equal(m.seen.connections, 1);
                assert_int_equal(m.seen.messages, 0);
                assert_int_equal(m.seen.attaches, 0);
                assert_int_equal(m.seen.fds, 0);
        }
        assert_true(fcntl(vm, F_GETFD) >= 0);
        close(vm);
}

/* accept, ATTACH, APPLY, APPLIED; when the test says so, leave for good (the
 * socket path gone) and hang up. */
static void script_apply_and_leave(struct daemon *d) {
        int conn = d_accept(d);

        if (conn < 0)
                return;
        if (d_expect_attach(d, conn)) {
                d_send(d, conn, d->apply);
                if (d_expect_applied(d, conn) && !wait_readable(d->go[0], SCRIPT_WAIT_MS))
                        d_fail(d, "the test did not let the script go on");
        }
        d->listen_fd = safe_close(d->listen_fd);
        unlink(d->path);
        close(conn);
}

/* pmufilterd goes away and an impostor takes its socket's place: neither
 * the re-attach at once nor the one after the back-off sends the VM. */
static void test_impostor_is_refused_on_reattach(void **state) {
        struct pmufilter_session *s = NULL;
        struct impostor m;
        struct daemon d;
        int vm;

        need_impostor();
        NEED_DAEMON_UID();
        NEED_VM(vm);
        daemon_start(&d, script_apply_and_leave);
        assert_int_equal(attach(&d, vm, 0, &s), 0);
        assert_true(pmufilter_session_serial(s) == 7);

        assert_int_equal(write(d.go[1], "x", 1), 1);
        assert_true(wait_readable(pmufilter_session_fd(s), 5000));      /* the hang-up */
        /* The directory is the impostor's now, as if nobody could write it. */
        assert_int_equal(chown(d.dir, NOBODY_UID, NOBODY_GID), 0);
        impostor_start(&m, d.path);

        assert_int_equal(pmufilter_session_process(s), -EPERM);
        assert_refused_by_uid(&m);
        assert_int_equal(pmufilter_session_connected(s), 0);
        /* The back-off's turn. */
        assert_true(wait_readable(pmufilter_session_fd(s), 5000));
        assert_int_equal(pmufilter_session_process(s), -EPERM);
        assert_refused_by_uid(&m);
        assert_int_equal(pmufilter_session_connected(s), 0);
        /* The last filter pmufilterd sent is what the session still knows. */
        assert_true(pmufilter_session_serial(s) == 7);
        assert_string_equal(pmufilter_session_profile(s), "tenant");
        impostor_stop(&m);

        assert_int_equal(m.seen.connections, 2);
        assert_int_equal(m.seen.messages, 0);
        assert_int_equal(m.seen.fds, 0);
        pmufilter_session_free(s);
        daemon_stop(&d);
        assert_int_equal(d.n_attach, 1);
        daemon_done(&d);
        close(vm);
}

/* The shim against the impostor: KVM_CREATE_VM fails with EPERM, or with
 * PMUFILTER_REQUIRED=0 the VM runs unfiltered; either way no fd goes out. */
static void test_preload_impostor(void **state) {
        char sock_env[160], why[256], want[320], out[2][1024], err[2][1024];
        const char *closed[] = { "LD_PRELOAD=" PRELOAD_PATH, sock_env, NULL };
        const char *open_[] = { "LD_PRELOAD=" PRELOAD_PATH, sock_env, "PMUFILTER_REQUIRED=0", NULL };
        struct impostor m;
        int vm, r[2];

        need_impostor();
        NEED_VM(vm);
        close(vm);
        impostor_start(&m, NULL);
        snprintf(sock_env, sizeof(sock_env), "PMUFILTER_SOCKET=%s", m.path);
        refusal(why, sizeof(why), &m);
        snprintf(want, sizeof(want), "pmufilter-preload: refusing KVM_CREATE_VM: %s", why);
        r[0] = run_preload(closed, out[0], err[0], sizeof(out[0]));
        r[1] = run_preload(open_, out[1], err[1], sizeof(out[1]));
        impostor_stop(&m);

        if (r[0] != 1 || !strstr(out[0], "KVM_CREATE_VM failed errno=1 ") || !strstr(err[0], want))
                fail_msg("fail-closed run: exit %d, stdout \"%s\", stderr \"%s\", wanted \"%s\"",
                         r[0], out[0], err[0], want);
        if (r[1] != 0 || !strstr(out[1], "created fd=") || !strstr(err[1], why) ||
            !strstr(err[1], "runs without a PMU event filter (PMUFILTER_REQUIRED=0)"))
                fail_msg("PMUFILTER_REQUIRED=0 run: exit %d, stdout \"%s\", stderr \"%s\"", r[1], out[1], err[1]);
        assert_int_equal(m.seen.connections, 2);
        assert_int_equal(m.seen.messages, 0);
        assert_int_equal(m.seen.fds, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_apply),
                cmocka_unit_test(test_refused_by_kernel),
                cmocka_unit_test(test_pmu_off),
                cmocka_unit_test(test_error),
                cmocka_unit_test(test_timeout),
                cmocka_unit_test(test_push_and_reconnect),
                cmocka_unit_test(test_reconnect_after_absence),
                cmocka_unit_test(test_bad_args),
                cmocka_unit_test(test_preload_without_daemon),
                cmocka_unit_test(test_preload_attach),
                cmocka_unit_test(test_impostor_is_refused),
                cmocka_unit_test(test_impostor_is_refused_on_reattach),
                cmocka_unit_test(test_preload_impostor),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

