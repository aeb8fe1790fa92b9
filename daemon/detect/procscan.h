/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * procscan.h — finds VM file descriptors by looking at every process's fd
 * table in /proc: a VM fd reads "anon_inode:kvm-vm".  This is how VMs
 * created while nobody listened (daemon start, lost uevents) are found.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vm_fd_ref {
        pid_t pid;
        int fd;
};

/* Is fd of process pid a KVM VM?  false also if either is gone. */
bool proc_fd_is_kvm_vm(pid_t pid, int fd);
/* The same, told apart: 1 a VM, 0 another file, a closed fd or a gone
 * process, -errno (EACCES) when /proc will not say. */
int proc_fd_kvm_vm(pid_t pid, int fd);

/* The VM fds of one process, by fd.  A dup'd fd is a second entry: tell
 * them apart with kcmp(KCMP_FILE).  -ESRCH if the process is gone. */
int procscan_pid(pid_t pid, struct vm_fd_ref **ret, size_t *ret_n);

/* Every VM fd on the host (the caller's own included), sorted by pid, fd.
 * Processes that vanish mid-scan are skipped.  Returns the number of
 * processes whose fd table could not be read (no permission: not root, or
 * /proc mounted with hidepid=); 0 means the scan saw everything. */
int procscan_all(struct vm_fd_ref **ret, size_t *ret_n);
/* The same over another tree laid out as /proc (the unit tests' fakes).
 * A process that goes away during the scan (ENOENT, ESRCH, ENOTDIR on its
 * directory or fd directory) is skipped; only a failure of the tree
 * itself fails the scan. */
int procscan_all_at(const char *proc, struct vm_fd_ref **ret, size_t *ret_n);

/* Are fd_a of pid_a and fd_b of pid_b the same open file? (kcmp KCMP_FILE)
 * 1 yes, 0 no, -errno when the kernel cannot tell. */
int same_file(pid_t pid_a, int fd_a, pid_t pid_b, int fd_b);
/* kcmp's order of two open files: -1, 0 (the same file), 1; or -EINVAL
 * where it gives none (a process is gone, no permission). */
int file_order(pid_t pid_a, int fd_a, pid_t pid_b, int fd_b);
/* Do pid_a and pid_b share one fd table (threads, CLONE_FILES)?  1 yes,
 * 0 no, -errno when the kernel cannot tell. */
int same_fd_table(pid_t pid_a, pid_t pid_b);
