/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-stamp.c — timestamps the lines of a pipe as they arrive: reads
 * stdin (pmufilterd's or the echo peer's stderr) and writes each line to
 * stdout as "<CLOCK_MONOTONIC ns> <line>".  Every line of one read() gets
 * the time of that read: when the writer was woken, not when it wrote.
 * This is how the benchmarks see the daemon's records ("VM ... detected"
 * with -v, "filter of profile ... applied") without the daemon keeping
 * time for them.  It drains the pipe at once, so the writer never blocks.
 */
#include <string.h>
#include <unistd.h>

#include "bench.h"

int main(void) {
        static char buf[1 << 16], line[8192];
        size_t have = 0;
        ssize_t n;

        while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
                unsigned long long t = now_ns();

                for (ssize_t i = 0; i < n; i++) {
                        if (buf[i] != '\n') {
                                if (have < sizeof(line) - 1)
                                        line[have++] = buf[i];
                                continue;
                        }
                        line[have] = 0;
                        printf("%llu %s\n", t, line);
                        have = 0;
                }
                fflush(stdout);
        }
        if (have > 0) {
                line[have] = 0;
                printf("%llu %s\n", (unsigned long long) now_ns(), line);
        }
        return 0;
}
