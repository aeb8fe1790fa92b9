/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * watch.h — no VM goes unseen: kernel uevents for VMs as they come and go,
 * and the /proc scan at start-up and whenever uevents were lost.
 */
#pragma once

#include <sys/types.h>

struct manager;

int watch_start(struct manager *m);
/* Register the VM fds of pid the registry does not know yet. */
void watch_scan_pid(struct manager *m, pid_t pid);

/* Are fd_a of pid_a and fd_b of pid_b the same open file? (kcmp KCMP_FILE)
 * 1 yes, 0 no, -errno when the kernel cannot tell. */
int same_file(pid_t pid_a, int fd_a, pid_t pid_b, int fd_b);
