/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* suggest.c — edit distance and the "did you mean" threshold. */
#include "suggest.h"

static char fold(char c, bool ignore_case) {
        return ignore_case && c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

static unsigned min3(unsigned a, unsigned b, unsigned c) {
        unsigned m = a < b ? a : b;

        return m < c ? m : c;
}

unsigned suggest_distance(const char *a, const char *b, bool ignore_case, unsigned max) {
        /* Three rows of the classic table: two back (for a swap), the last
         * one, and the one being filled. */
        unsigned rows[3][SUGGEST_LEN_MAX + 1];
        unsigned *before = rows[0], *last = rows[1], *cur = rows[2];
        size_t n, m;

        assert(a);
        assert(b);

        n = strlen(a);
        m = strlen(b);
        if (n > SUGGEST_LEN_MAX || m > SUGGEST_LEN_MAX || (n > m ? n - m : m - n) > max)
                return max + 1;

        for (size_t j = 0; j <= m; j++)
                last[j] = (unsigned) j;
        for (size_t i = 1; i <= n; i++) {
                unsigned *t, row_min;

                cur[0] = (unsigned) i;
                row_min = cur[0];
                for (size_t j = 1; j <= m; j++) {
                        char x = fold(a[i - 1], ignore_case), y = fold(b[j - 1], ignore_case);
                        unsigned v = min3(last[j] + 1, cur[j - 1] + 1, last[j - 1] + (x != y));

                        if (i > 1 && j > 1 && x == fold(b[j - 2], ignore_case) &&
                            fold(a[i - 2], ignore_case) == y && before[j - 2] + 1 < v)
                                v = before[j - 2] + 1;
                        cur[j] = v;
                        if (v < row_min)
                                row_min = v;
                }
                /* Every later cell is at least the smallest of this row. */
                if (row_min > max)
                        return max + 1;
                t = before;
                before = last;
                last = cur;
                cur = t;
        }
        return last[m] > max ? max + 1 : last[m];
}

bool suggest_close(const char *typed, unsigned distance) {
        assert(typed);

        return distance > 0 && distance <= SUGGEST_MAX_DISTANCE && 3 * (size_t) distance < strlen(typed);
}

void suggestion_offer(struct suggestion *s, const char *word, bool ignore_case) {
        unsigned d;

        assert(s);
        assert(word);

        d = suggest_distance(s->typed, word, ignore_case, SUGGEST_MAX_DISTANCE);
        if (suggest_close(s->typed, d) && d < s->distance) {
                s->best = word;
                s->distance = d;
        }
}
