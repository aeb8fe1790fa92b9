/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * procscan.c — the /proc scan: one readlink per open fd of every process.
 * Kernel threads have an empty fd table and cost one open and one read.
 */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>

#include "procscan.h"
#include "util.h"

#define KVM_VM_LINK "anon_inode:kvm-vm"

/* One byte more than the target we look for: a longer link then reads
 * truncated, and its length tells it apart without a full-size buffer.
 * 1 a VM, 0 another file or none (ENOENT), -errno when it cannot be read. */
static int link_kvm_vm(int dir_fd, const char *name) {
        char target[sizeof(KVM_VM_LINK)];
        ssize_t n = readlinkat(dir_fd, name, target, sizeof(target));

        if (n < 0)
                return errno == ENOENT ? 0 : -errno;
        return n == (ssize_t) strlen(KVM_VM_LINK) && memcmp(target, KVM_VM_LINK, (size_t) n) == 0;
}

int proc_fd_kvm_vm(pid_t pid, int fd) {
        char path[64];

        if (pid <= 0 || fd < 0)
                return 0;
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, fd);
        return link_kvm_vm(AT_FDCWD, path);
}

bool proc_fd_is_kvm_vm(pid_t pid, int fd) {
        return proc_fd_kvm_vm(pid, fd) > 0;
}

/* Names in /proc and /proc/<pid>/fd: plain decimal, nothing else. */
static int parse_nonneg_int(const char *s, int *ret) {
        unsigned long v;

        if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 10)
                return -EINVAL;
        v = strtoul(s, NULL, 10);
        if (v > INT_MAX)
                return -ERANGE;
        *ret = (int) v;
        return 0;
}

struct refs {
        struct vm_fd_ref *v;
        size_t n, allocated;
};

static void refs_done(struct refs *refs) {
        free(refs->v);
}

/* The signs that a process or its fd went away while we looked (its
 * /proc directory vanishing under openat(), fdopendir() or readdir()):
 * not a failure of the scan. */
static bool gone(int error) {
        return error == ENOENT || error == ESRCH || error == ENOTDIR;
}

/* Append the VM fds of pid.  proc_fd: an fd of /proc. */
static int scan_one(int proc_fd, pid_t pid, struct refs *refs) {
        char path[32];
        _cleanup_close_ int fd = -1;
        DIR *d;
        struct dirent *de;
        int r = 0;

        snprintf(path, sizeof(path), "%d/fd", (int) pid);
        fd = openat(proc_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return gone(errno) ? -ESRCH : -errno;
        d = fdopendir(fd);
        if (!d)
                return gone(errno) ? -ESRCH : -errno;
        (void) TAKE_FD(fd);     /* closedir() closes it */

        while ((errno = 0, de = readdir(d))) {
                int n;

                if (parse_nonneg_int(de->d_name, &n) < 0 || link_kvm_vm(dirfd(d), de->d_name) <= 0)
                        continue;
                if (!GREEDY_REALLOC(refs->v, refs->allocated, refs->n + 1)) {
                        r = -ENOMEM;
                        break;
                }
                refs->v[refs->n++] = (struct vm_fd_ref) { .pid = pid, .fd = n };
        }
        /* A process that exits mid-read ends its listing with ENOENT: what
         * was read so far is what it had. */
        if (r == 0 && errno != 0 && !gone(errno))
                r = -errno;
        closedir(d);
        return r;
}

static int cmp_ref(const void *a, const void *b) {
        const struct vm_fd_ref *x = a, *y = b;

        if (x->pid != y->pid)
                return x->pid < y->pid ? -1 : 1;
        return (x->fd > y->fd) - (x->fd < y->fd);
}

static void sort_and_return(struct refs *refs, struct vm_fd_ref **ret, size_t *ret_n) {
        if (refs->n > 1)
                qsort(refs->v, refs->n, sizeof(refs->v[0]), cmp_ref);
        *ret = TAKE_PTR(refs->v);
        *ret_n = refs->n;
}

int procscan_pid(pid_t pid, struct vm_fd_ref **ret, size_t *ret_n) {
        _cleanup_(refs_done) struct refs refs = {};
        _cleanup_close_ int proc_fd = -1;
        int r;

        assert(ret);
        assert(ret_n);
        if (pid <= 0)
                return -EINVAL;
        proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (proc_fd < 0)
                return -errno;
        r = scan_one(proc_fd, pid, &refs);
        if (r < 0)
                return r;
        sort_and_return(&refs, ret, ret_n);
        return 0;
}

int procscan_all(struct vm_fd_ref **ret, size_t *ret_n) {
        return procscan_all_at("/proc", ret, ret_n);
}

int procscan_all_at(const char *proc, struct vm_fd_ref **ret, size_t *ret_n) {
        _cleanup_(refs_done) struct refs refs = {};
        DIR *d;
        struct dirent *de;
        int r = 0, unreadable = 0;

        assert(proc);
        assert(ret);
        assert(ret_n);
        d = opendir(proc);
        if (!d)
                return -errno;

        while ((errno = 0, de = readdir(d))) {
                int pid;

                if ((de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) || parse_nonneg_int(de->d_name, &pid) < 0 ||
                    pid == 0)
                        continue;
                /* openat() on the directory being read leaves its position alone. */
                r = scan_one(dirfd(d), pid, &refs);
                if (r == -ESRCH)
                        r = 0;          /* exited meanwhile */
                else if (r == -EACCES || r == -EPERM) {
                        unreadable++;
                        r = 0;
                } else if (r < 0)
                        break;
        }
        if (r == 0 && errno != 0)
                r = -errno;
        closedir(d);
        if (r < 0)
                return r;
        sort_and_return(&refs, ret, ret_n);
        return unreadable;
}

int same_file(pid_t pid_a, int fd_a, pid_t pid_b, int fd_b) {
        long r = syscall(SYS_kcmp, pid_a, pid_b, KCMP_FILE, (unsigned long) fd_a, (unsigned long) fd_b);

        if (r < 0)
                return -errno;
        return r == 0;
}

int file_order(pid_t pid_a, int fd_a, pid_t pid_b, int fd_b) {
        long r = syscall(SYS_kcmp, pid_a, pid_b, KCMP_FILE, (unsigned long) fd_a, (unsigned long) fd_b);

        if (r == 0 || r == 1 || r == 2)
                return r == 0 ? 0 : r == 1 ? -1 : 1;
        return -EINVAL;
}

int same_fd_table(pid_t pid_a, pid_t pid_b) {
        long r = syscall(SYS_kcmp, pid_a, pid_b, KCMP_FILES, 0UL, 0UL);

        if (r < 0)
                return -errno;
        return r == 0;
}
