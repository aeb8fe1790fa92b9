/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bare-vmm.h — what the injection test VMMs share (sleepy-vmm, polly-vmm,
 * seccomp-vmm): create N VMs with plain ioctl() and print their fd numbers
 * as one line, "vm-fds: 4 5 6", so the test knows what to inject on; run
 * rounds until stdin reaches EOF; end with "OK ..." or "FAIL ..." and exit
 * 0 or 1 (77: no /dev/kvm).  None of them links anything of pmufilterd's.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#define BARE_EXIT_SKIP 77

static inline uint64_t bare_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Create n VMs and print "vm-fds: ..." (flushed).  Exits on failure. */
static inline void bare_create_vms(unsigned n) {
        int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

        if (kvm < 0) {
                printf("SKIP cannot open /dev/kvm: %m\n");
                exit(BARE_EXIT_SKIP);
        }
        printf("vm-fds:");
        for (unsigned i = 0; i < n; i++) {
                int vm = ioctl(kvm, KVM_CREATE_VM, 0);

                if (vm < 0) {
                        printf("\nFAIL KVM_CREATE_VM #%u: %m\n", i);
                        exit(1);
                }
                printf(" %d", vm);
        }
        printf("\n");
        fflush(stdout);
        close(kvm);
}

/* Whether stdin has reached EOF: the test closes it to end the run. */
static inline bool bare_stdin_closed(void) {
        struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
        char c;

        if (poll(&p, 1, 0) <= 0)
                return false;
        return read(STDIN_FILENO, &c, 1) <= 0;
}

_Noreturn static inline void bare_fail(const char *fmt, ...) {
        va_list ap;

        printf("FAIL ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
        exit(1);
}

static inline unsigned bare_arg_uint(int argc, char *argv[], const char *name, unsigned def) {
        size_t l = strlen(name);

        for (int i = 1; i < argc; i++)
                if (strncmp(argv[i], name, l) == 0 && argv[i][l] == '=')
                        return (unsigned) strtoul(argv[i] + l + 1, NULL, 10);
        return def;
}

static inline bool bare_arg_flag(int argc, char *argv[], const char *name) {
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], name) == 0)
                        return true;
        return false;
}

/* One round of raw nanosleep(2) (restarted by the kernel through
 * restart_syscall), checked: it returned 0 and slept at least ms. */
static inline void bare_sleep_round(unsigned ms, unsigned round) {
        struct timespec req = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };
        uint64_t start = bare_now_ns(), slept;
        long r;

        r = syscall(SYS_nanosleep, &req, NULL);
        slept = bare_now_ns() - start;
        if (r != 0)
                bare_fail("round %u: nanosleep returned %ld errno %d (%m)", round, r, errno);
        if (slept < (uint64_t) ms * 1000000u)
                bare_fail("round %u: nanosleep(%u ms) returned after %.3f ms", round, ms, (double) slept / 1e6);
}
