/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sleepy-vmm.c — a VMM that never attaches and sleeps: creates --vms=N VMs,
 * then sleeps in nanosleep(2) (the raw call, which the kernel restarts
 * through restart_syscall) in rounds of --sleep-ms=M until stdin closes,
 * checking every round itself: the call returned 0, and slept the whole
 * time, not less.  An injection that broke the restart would show up as
 * EINTR, a kernel-internal errno (516), or a short sleep.
 *
 *   sleepy-vmm [--vms=N] [--sleep-ms=M] [--spin]
 *
 * --spin: the main thread busy-loops instead (never in a call), for the
 * injector's timeout.  Prints "vm-fds: ...", then "OK <rounds> rounds"
 * or "FAIL <why>"; exit 0 / 1 / 77 (no /dev/kvm).
 */
#include "bare-vmm.h"

int main(int argc, char *argv[]) {
        unsigned vms = bare_arg_uint(argc, argv, "--vms", 1);
        unsigned ms = bare_arg_uint(argc, argv, "--sleep-ms", 200);
        bool spin = bare_arg_flag(argc, argv, "--spin");
        unsigned rounds = 0;

        bare_create_vms(vms);
        for (; !bare_stdin_closed(); rounds++) {
                uint64_t start = bare_now_ns();

                if (!spin)
                        bare_sleep_round(ms, rounds);
                else
                        while (bare_now_ns() - start < (uint64_t) ms * 1000000u)
                                ;
        }
        printf("OK %u rounds\n", rounds);
        return 0;
}
