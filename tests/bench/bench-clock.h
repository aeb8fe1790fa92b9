/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-clock.h — the one clock of the benchmarks: CLOCK_MONOTONIC in
 * nanoseconds, so that timestamps taken in different processes compare.
 * Apart from bench.h so that min-client.h, which uses nothing of lib/, can
 * time its steps with it too.
 */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}
