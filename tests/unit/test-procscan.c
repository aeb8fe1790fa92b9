/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-procscan.c — the /proc scan finds real VM fds (dup'd ones too, in
 * this process and in a child), and nothing that merely looks alike: other
 * anonymous inodes, a vCPU fd.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <linux/kvm.h>
#include <cmocka.h>

#include "kvm.h"
#include "procscan.h"

/* mkdir -p path. */
static int mkdir_parents_for_test(const char *path) {
        char p[256];

        snprintf(p, sizeof(p), "%s", path);
        for (char *c = p + 1; *c; c++)
                if (*c == '/') {
                        *c = 0;
                        if (mkdir(p, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        *c = '/';
                }
        return mkdir(p, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static bool have_kvm(void) {
        if (access("/dev/kvm", R_OK | W_OK) == 0)
                return true;
        print_message("SKIP: /dev/kvm is not usable here: %s\n", strerror(errno));
        return false;
}

static bool contains(const struct vm_fd_ref *v, size_t n, pid_t pid, int fd) {
        for (size_t i = 0; i < n; i++)
                if (v[i].pid == pid && v[i].fd == fd)
                        return true;
        return false;
}

static void assert_sorted(const struct vm_fd_ref *v, size_t n) {
        for (size_t i = 1; i < n; i++)
                assert_true(v[i - 1].pid < v[i].pid || (v[i - 1].pid == v[i].pid && v[i - 1].fd < v[i].fd));
}

/* A fake /proc where processes went away mid-scan in every way the
 * kernel shows it: a pid directory without its fd directory (ENOENT), an
 * fd "directory" that is not one (ENOTDIR), an empty one.  The scan skips
 * them and finds the one VM that is there; start-up once died of it. */
static void test_processes_vanishing_mid_scan(void **state) {
        char root[] = "/tmp/test-procscan.XXXXXX", path[256];
        _cleanup_free_ struct vm_fd_ref *refs = NULL;
        size_t n = 0;
        int r;

        assert_non_null(mkdtemp(root));
        snprintf(path, sizeof(path), "%s/100/fd", root);
        assert_int_equal(mkdir_parents_for_test(path), 0);
        snprintf(path, sizeof(path), "%s/100/fd/3", root);
        assert_int_equal(symlink("anon_inode:kvm-vm", path), 0);
        snprintf(path, sizeof(path), "%s/100/fd/4", root);
        assert_int_equal(symlink("/dev/null", path), 0);
        snprintf(path, sizeof(path), "%s/200", root);                /* its fd/ is gone */
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/300", root);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/300/fd", root);             /* not a directory */
        assert_int_equal(close(open(path, O_CREAT | O_WRONLY, 0644)), 0);
        snprintf(path, sizeof(path), "%s/400/fd", root);             /* no fds at all */
        assert_int_equal(mkdir_parents_for_test(path), 0);
        snprintf(path, sizeof(path), "%s/self", root);               /* not a pid */
        assert_int_equal(mkdir(path, 0755), 0);

        r = procscan_all_at(root, &refs, &n);
        assert_int_equal(r, 0);
        assert_int_equal(n, 1);
        assert_int_equal(refs[0].pid, 100);
        assert_int_equal(refs[0].fd, 3);

        /* The tree itself missing is a failure, not "no VMs". */
        free(TAKE_PTR(refs));
        assert_int_equal(procscan_all_at("/tmp/test-procscan-no-such-dir", &refs, &n), -ENOENT);
        snprintf(path, sizeof(path), "rm -rf %s", root);
        assert_int_equal(system(path), 0);
}

static void test_own_process(void **state) {
        _cleanup_free_ struct vm_fd_ref *v = NULL;
        _cleanup_close_ int vm = -1, copy = -1, efd = -1, vcpu = -1;
        size_t n = 0;

        if (!have_kvm())
                skip();
        vm = kvm_create_vm(-1);
        assert_true(vm >= 0);
        copy = dup(vm);
        assert_true(copy >= 0);
        efd = eventfd(0, EFD_CLOEXEC);          /* "anon_inode:[eventfd]" */
        assert_true(efd >= 0);
        vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);   /* "anon_inode:kvm-vcpu:0" */
        assert_true(vcpu >= 0);

        assert_true(proc_fd_is_kvm_vm(getpid(), vm));
        assert_true(proc_fd_is_kvm_vm(getpid(), copy));
        assert_false(proc_fd_is_kvm_vm(getpid(), efd));
        assert_false(proc_fd_is_kvm_vm(getpid(), vcpu));
        assert_false(proc_fd_is_kvm_vm(getpid(), STDIN_FILENO));
        assert_false(proc_fd_is_kvm_vm(getpid(), 1000000));
        assert_false(proc_fd_is_kvm_vm(getpid(), -1));
        assert_false(proc_fd_is_kvm_vm(0, vm));

        assert_int_equal(procscan_pid(getpid(), &v, &n), 0);
        assert_int_equal(n, 2);
        assert_true(contains(v, n, getpid(), vm));
        assert_true(contains(v, n, getpid(), copy));
        assert_sorted(v, n);
}

static void test_no_vms(void **state) {
        _cleanup_free_ struct vm_fd_ref *v = NULL;
        size_t n = 1;

        /* a valid empty answer: ret_n written, nothing to free that matters */
        assert_int_equal(procscan_pid(getpid(), &v, &n), 0);
        assert_int_equal(n, 0);
}

static void test_vanished(void **state) {
        struct vm_fd_ref *v = NULL;
        size_t n = 77;
        pid_t child;

        child = fork();
        assert_true(child >= 0);
        if (child == 0)
                _exit(0);
        assert_int_equal(waitpid(child, NULL, 0), child);

        assert_int_equal(procscan_pid(child, &v, &n), -ESRCH);
        assert_null(v);
        assert_int_equal(n, 77);                /* untouched on failure */
        assert_false(proc_fd_is_kvm_vm(child, 0));
        assert_int_equal(procscan_pid(0, &v, &n), -EINVAL);
}

/* A child holds three VMs, one of them twice; the host-wide scan must list
 * all four fds under the child's pid, in order. */
static void test_child_process(void **state) {
        _cleanup_free_ struct vm_fd_ref *v = NULL;
        int ready[2], fds[4];
        size_t n = 0;
        pid_t child;

        if (!have_kvm())
                skip();
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                int out[4];

                close(ready[0]);
                for (int i = 0; i < 3; i++)
                        out[i] = kvm_create_vm(-1);
                out[3] = dup(out[1]);
                if (write(ready[1], out, sizeof(out)) != sizeof(out))
                        _exit(1);
                pause();
                _exit(0);
        }
        close(ready[1]);
        assert_int_equal(read(ready[0], fds, sizeof(fds)), sizeof(fds));
        close(ready[0]);
        for (int i = 0; i < 4; i++)
                assert_true(fds[i] >= 0);

        assert_true(procscan_all(&v, &n) >= 0);
        assert_sorted(v, n);
        for (int i = 0; i < 4; i++)
                assert_true(contains(v, n, child, fds[i]));
        /* nothing else under the child's pid */
        for (size_t i = 0, mine = 0; i < n; i++)
                if (v[i].pid == child)
                        assert_true(++mine <= 4);

        kill(child, SIGKILL);
        assert_int_equal(waitpid(child, NULL, 0), child);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_processes_vanishing_mid_scan),
                cmocka_unit_test(test_own_process),
                cmocka_unit_test(test_no_vms),
                cmocka_unit_test(test_vanished),
                cmocka_unit_test(test_child_process),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
