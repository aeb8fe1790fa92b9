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

static const struct timespan_unit {
        const char *name;
        uint64_t usec;
} timespan_units[] = {
        { "us", 1 },
        { "ms", 1000 },
        { "seconds", USEC_PER_SEC }, { "second", USEC_PER_SEC }, { "sec", USEC_PER_SEC }, { "s", USEC_PER_SEC },
        { "minutes", 60 * USEC_PER_SEC }, { "minute", 60 * USEC_PER_SEC }, { "min", 60 * USEC_PER_SEC },
        { "m", 60 * USEC_PER_SEC },
        { "hours", 3600 * USEC_PER_SEC }, { "hour", 3600 * USEC_PER_SEC }, { "hr", 3600 * USEC_PER_SEC },
        { "h", 3600 * USEC_PER_SEC },
        { "days", 86400 * USEC_PER_SEC }, { "day", 86400 * USEC_PER_SEC }, { "d", 86400 * USEC_PER_SEC },
        { "weeks", 604800 * USEC_PER_SEC }, { "week", 604800 * USEC_PER_SEC }, { "w", 604800 * USEC_PER_SEC },
};

int parse_timespan(const char *s, uint64_t *ret_usec, const char **ret_error) {
        const char *dummy;
        uint64_t total = 0;
        bool any = false;

        assert(ret_usec);
        if (!ret_error)
                ret_error = &dummy;
        *ret_error = NULL;
        if (!s || !*s) {
                *ret_error = "empty";
                return -EINVAL;
        }
        for (const char *p = s;;) {
                const struct timespan_unit *unit = NULL;
                uint64_t n = 0;
                size_t len;

                p += strspn(p, " ");
                if (!*p) {
                        if (any)
                                break;
                        *ret_error = "empty";
                        return -EINVAL;
                }
                if (*p < '0' || *p > '9') {
                        *ret_error = *p == '-' ? "negative" : "expected a number";
                        return -EINVAL;
                }
                for (; *p >= '0' && *p <= '9'; p++) {
                        if (n > (UINT64_MAX - (uint64_t) (*p - '0')) / 10) {
                                *ret_error = "too long";
                                return -ERANGE;
                        }
                        n = n * 10 + (uint64_t) (*p - '0');
                }
                if (*p == '.' || *p == ',') {
                        *ret_error = "no fractions: say 1h30min, not 1.5h";
                        return -EINVAL;
                }
                p += strspn(p, " ");
                for (len = 0; (p[len] >= 'a' && p[len] <= 'z') || (p[len] >= 'A' && p[len] <= 'Z'); len++)
                        ;
                for (size_t i = 0; i < ELEMENTSOF(timespan_units) && !unit; i++)
                        if (strlen(timespan_units[i].name) == len && strncmp(p, timespan_units[i].name, len) == 0)
                                unit = &timespan_units[i];
                if (!unit) {
                        *ret_error = len == 0 ? "a number needs a unit (s, min, h, d, ...)" : "unknown unit";
                        return -EINVAL;
                }
                p += len;
                if (n > UINT64_MAX / unit->usec || total > UINT64_MAX - n * unit->usec) {
                        *ret_error = "too long";
                        return -ERANGE;
                }
                total += n * unit->usec;
                any = true;
        }
        *ret_usec = total;
        return 0;
}

const char *format_timespan(char *buf, size_t size, uint64_t usec) {
        static const struct {
                const char *name;
                uint64_t usec;
        } units[] = {
                { "d", 86400 * USEC_PER_SEC }, { "h", 3600 * USEC_PER_SEC }, { "min", 60 * USEC_PER_SEC },
                { "s", USEC_PER_SEC },
        };
        size_t o = 0;
        int shown = 0;

        assert(buf && size > 0);
        buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(units) && shown < 2; i++) {
                uint64_t n = usec / units[i].usec;

                if (n == 0) {
                        if (shown > 0)
                                break;          /* "1h 0min 5s" would say less than "1h" */
                        continue;
                }
                usec -= n * units[i].usec;
                if (o < size)
                        o += (size_t) snprintf(buf + o, size - o, "%s%" PRIu64 "%s", shown ? " " : "", n,
                                               units[i].name);
                shown++;
        }
        if (shown == 0)
                snprintf(buf, size, "0s");
        return buf;
}

const char *format_iso8601(char *buf, size_t size, uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        assert(buf && size > 0);
        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "@%" PRIu64, usec / USEC_PER_SEC);
        return buf;
}

char *utf8_escape(const char *s) {
        const unsigned char *u = (const unsigned char *) s;
        size_t n = strlen(s), k = 0;
        char *out = malloc(n * 4 + 1);         /* every byte may become \xNN */

        if (!out)
                return NULL;
        for (size_t i = 0; i < n;) {
                size_t l = utf8_char_len(u + i, n - i);

                if (l == 0 || utf8_char_is_control(u + i, l)) {
                        for (size_t j = 0; j < (l == 0 ? 1 : l); j++)
                                k += (size_t) sprintf(out + k, "\\x%02x", u[i + j]);
                        i += l == 0 ? 1 : l;
                        continue;
                }
                memcpy(out + k, u + i, l);
                k += l;
                i += l;
        }
        out[k] = 0;
        return out;
}
