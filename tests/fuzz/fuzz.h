/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz.h — what every fuzz target shares: the libFuzzer entry points and
 * the one way a target reports a broken property (abort, so both libFuzzer
 * and the standalone driver treat it as a crash and keep the input).
 */
#pragma once

#include <stdint.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Not assert(): it must hold in release builds too. */
#define fuzz_check(cond, ...)                                                   \
        do {                                                                    \
                if (!(cond)) {                                                  \
                        fprintf(stderr, "%s:%d: property broken: %s: ",         \
                                __FILE__, __LINE__, #cond);                     \
                        fprintf(stderr, __VA_ARGS__);                           \
                        fputc('\n', stderr);                                    \
                        abort();                                                \
                }                                                               \
        } while (0)

/* Split data at NUL bytes into at most max pieces; the last piece keeps any
 * further NULs.  Each piece is a fresh, exactly sized, NUL-terminated copy
 * (so ASan sees reads past the end).  Returns the count; pieces freed by
 * fuzz_pieces_free(). */
static inline size_t fuzz_split(const uint8_t *data, size_t size, size_t max,
                                char **pieces, size_t *lens) {
        size_t n = 0, start = 0;

        for (size_t i = 0; n < max; i++) {
                if (i < size && (data[i] != 0 || n == max - 1))
                        continue;
                lens[n] = i - start;
                pieces[n] = malloc(lens[n] + 1);
                if (!pieces[n])
                        abort();
                memcpy(pieces[n], data + start, lens[n]);
                pieces[n][lens[n]] = 0;
                n++;
                start = i + 1;
                if (i >= size)
                        break;
        }
        return n;
}

static inline void fuzz_pieces_free(char **pieces, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(pieces[i]);
}
