/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* util.c — implementations of the small helpers declared in util.h. */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>

#include "util.h"

int free_and_strdup(char **dst, const char *src) {
        char *n = NULL;

        assert(dst);

        if (src) {
                n = strdup(src);
                if (!n)
                        return -ENOMEM;
        }
        free(*dst);
        *dst = n;
        return 0;
}

void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        if (l)
                while (l[n])
                        n++;
        return n;
}

int strv_push(char ***l, char *value) {
        size_t n;
        char **c;

        assert(l);

        n = strv_length(*l);
        c = realloc(*l, sizeof(char *) * (n + 2));
        if (!c)
                return -ENOMEM;
        c[n] = value;
        c[n + 1] = NULL;
        *l = c;
        return 0;
}

int strv_extend(char ***l, const char *value) {
        char *v;
        int r;

        assert(l);
        assert(value);

        v = strdup(value);
        if (!v)
                return -ENOMEM;
        r = strv_push(l, v);
        if (r < 0)
                free(v);
        return r;
}

bool strv_contains(char *const *l, const char *s) {
        assert(s);

        if (l)
                for (char *const *i = l; *i; i++)
                        if (streq(*i, s))
                                return true;
        return false;
}

uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static pid_t cached_pid;

static void reset_cached_pid(void) {
        cached_pid = 0;
}

pid_t getpid_cached(void) {
        static bool registered;

        if (cached_pid == 0) {
                if (!registered)
                        registered = pthread_atfork(NULL, NULL, reset_cached_pid) == 0;
                cached_pid = getpid();
        }
        return cached_pid;
}

int safe_atou64(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end = NULL;
        int base = 10;

        assert(ret);
        if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
                return -EINVAL;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                s += 2;
                base = 16;
                if (!*s || *s == '-' || *s == '+' || *s == ' ')
                        return -EINVAL;
        } else if (s[0] == '0' && s[1])
                return -EINVAL;         /* strtoull would read it as octal */
        /* Digits only: strtoull would also skip any blank (a tab, a CR), take
         * a sign after it ("\t-1" is 2^64-1) and, in base 16, a second 0x. */
        if (s[strspn(s, base == 16 ? "0123456789abcdefABCDEF" : "0123456789")])
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, base);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0 || !end || *end)
                return -EINVAL;
        *ret = (uint64_t) v;
        return 0;
}

void *greedy_realloc(void **p, size_t *allocated, size_t need, size_t size) {
        size_t a;
        void *q;

        assert(p);
        assert(allocated);

        if (*allocated >= need)
                return *p;
        a = need < 8 ? 8 : need * 2;
        if (a > SIZE_MAX / size)
                return NULL;
        q = realloc(*p, a * size);
        if (!q)
                return NULL;
        *p = q;
        *allocated = a;
        return q;
}
