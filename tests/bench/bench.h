/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench.h — what the benchmark programs share: one clock (CLOCK_MONOTONIC
 * in nanoseconds, so timestamps taken in different processes compare), the
 * fd limit raised for thousands of VMs, and the KVM VM they all create.
 * Every timestamp the benchmarks report is taken in C by these programs;
 * the Python driver only joins and counts them.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>

#include <linux/kvm.h>

#include "bench-clock.h"
#include "util.h"

/* Thousands of VMs and sessions per process: the soft limit of 1024 is for
 * select(); take the hard one. */
static inline void raise_nofile(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static inline int open_kvm(void) {
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

        if (fd < 0) {
                fprintf(stderr, "bench: cannot open /dev/kvm: %m\n");
                exit(77);
        }
        return fd;
}

static inline void sleep_us(unsigned us) {
        struct timespec ts = { .tv_sec = us / 1000000u, .tv_nsec = (long) (us % 1000000u) * 1000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* The value of KEY= in a uevent's NUL-separated properties, or NULL. */
static inline const char *uevent_prop(const char *buf, size_t n, const char *key) {
        size_t kl = strlen(key);

        for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
                if (strncmp(buf + i, key, kl) == 0)
                        return buf + i + kl;
        return NULL;
}
