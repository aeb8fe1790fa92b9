/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * polly-vmm.c — a VMM that never attaches and polls, as QEMU's main loop
 * does: ppoll(2) with a signal mask on a pipe, in rounds of --round-ms=M
 * until stdin closes, checking every result itself.  Even rounds: nothing
 * arrives, ppoll must return 0 after at least M.  Odd rounds: a second
 * thread writes a byte after M/2, ppoll must return 1 with POLLIN on the
 * pipe, not before.  After each call the thread's own signal mask must be
 * the one it had (ppoll's temporary mask is put back by the kernel, and an
 * injection passes through that logic).
 *
 *   polly-vmm [--vms=N] [--round-ms=M] [--signals]
 *
 * --signals: SIGUSR1 gets a handler (it is blocked outside ppoll, as
 * QEMU's signals are), and an EINTR from ppoll is expected and retried
 * for the time left; any other error still fails.
 * Prints "vm-fds: ...", then "OK <rounds> rounds, <n> signals" or
 * "FAIL <why>".
 */
#include <pthread.h>
#include <signal.h>

#include "bare-vmm.h"

static int pipe_fds[2];
static unsigned round_ms;
static bool signals;
static volatile sig_atomic_t handled;

static void on_signal(int sig) {
        handled++;
}

/* ppoll for timeout_ns in all, across EINTRs when signals are expected. */
static int ppoll_whole(struct pollfd *p, uint64_t timeout_ns, const sigset_t *mask) {
        uint64_t start = bare_now_ns();

        for (;;) {
                uint64_t spent = bare_now_ns() - start, left = spent < timeout_ns ? timeout_ns - spent : 0;
                struct timespec ts = { .tv_sec = (time_t) (left / 1000000000u), .tv_nsec = (long) (left % 1000000000u) };
                int r = ppoll(p, 1, &ts, mask);

                if (r >= 0 || errno != EINTR || !signals)
                        return r;
        }
}

static void *writer(void *userdata) {
        struct timespec half = { .tv_sec = round_ms / 2000, .tv_nsec = (long) ((round_ms / 2) % 1000) * 1000000 };

        nanosleep(&half, NULL);
        if (write(pipe_fds[1], "x", 1) != 1)
                bare_fail("writer: %m");
        return NULL;
}

static void check_round(unsigned round) {
        struct pollfd p = { .fd = pipe_fds[0], .events = POLLIN };
        bool odd = round % 2;
        uint64_t timeout_ns = (uint64_t) round_ms * (odd ? 2 : 1) * 1000000u, start, took;
        sigset_t during, after;
        pthread_t t;
        char c;
        int r;

        sigemptyset(&during);           /* ppoll unblocks everything, as QEMU's does */
        start = bare_now_ns();          /* before the writer starts its M/2 */
        if (odd && pthread_create(&t, NULL, writer, NULL) != 0)
                bare_fail("pthread_create");
        r = ppoll_whole(&p, timeout_ns, &during);
        took = bare_now_ns() - start;
        if (r < 0)
                bare_fail("round %u: ppoll failed errno %d (%m)", round, errno);
        if (odd) {
                pthread_join(t, NULL);
                if (r != 1 || !(p.revents & POLLIN))
                        bare_fail("round %u: ppoll returned %d revents 0x%x, expected 1 POLLIN", round, r, p.revents);
                if (took < (uint64_t) round_ms / 2 * 1000000u)
                        bare_fail("round %u: data reported after %.3f ms, before it was written", round, took / 1e6);
                if (read(pipe_fds[0], &c, 1) != 1)
                        bare_fail("round %u: read: %m", round);
        } else {
                if (r != 0)
                        bare_fail("round %u: ppoll returned %d, expected a timeout", round, r);
                if (took < timeout_ns)
                        bare_fail("round %u: ppoll timed out after %.3f ms < %u", round, took / 1e6, round_ms);
        }
        if (pthread_sigmask(SIG_BLOCK, NULL, &after) != 0 || !sigismember(&after, SIGUSR1) ||
            !sigismember(&after, SIGUSR2))
                bare_fail("round %u: the thread's signal mask changed", round);
}

int main(int argc, char *argv[]) {
        unsigned vms = bare_arg_uint(argc, argv, "--vms", 1);
        unsigned rounds = 0;
        sigset_t blocked;

        round_ms = bare_arg_uint(argc, argv, "--round-ms", 200);
        signals = bare_arg_flag(argc, argv, "--signals");
        if (signals)
                sigaction(SIGUSR1, &(struct sigaction) { .sa_handler = on_signal }, NULL);
        /* Signals ppoll's mask opens: a wrong mask after the call shows.
         * Set before the fds are printed: the test may signal from then on. */
        sigemptyset(&blocked);
        sigaddset(&blocked, SIGUSR1);
        sigaddset(&blocked, SIGUSR2);
        pthread_sigmask(SIG_BLOCK, &blocked, NULL);
        bare_create_vms(vms);
        if (pipe2(pipe_fds, O_CLOEXEC) < 0)
                bare_fail("pipe2: %m");

        for (; !bare_stdin_closed(); rounds++)
                check_round(rounds);
        printf("OK %u rounds, %d signals\n", rounds, (int) handled);
        return 0;
}
