/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * util.h — the house idioms: owned-resource cleanup, ownership transfer,
 * small string helpers.  Every other file uses these instead of its own.
 */
#pragma once

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_ __attribute__((pure))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hand ownership on: returns the value and clears the variable. */
#define TAKE_PTR(p)                                     \
        ({                                              \
                __typeof__(p) _p_ = (p);                \
                (p) = NULL;                             \
                _p_;                                    \
        })
#define TAKE_FD(fd)                                     \
        ({                                              \
                int _fd_ = (fd);                        \
                (fd) = -1;                              \
                _fd_;                                   \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -1;
}
static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)         \
        static inline void func##p(type *p) {           \
                if (*p)                                 \
                        func(*p);                       \
        }

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}
static inline bool isempty(const char *s) {
        return !s || !*s;
}
static inline const char *strempty(const char *s) {
        return s ? s : "";
}
static inline const char *strna(const char *s) {
        return s ? s : "n/a";
}
static inline const char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}

/* Replace *dst with a copy of src (NULL allowed). 0 or -ENOMEM. */
int free_and_strdup(char **dst, const char *src);

/* UTF-8: the length of the character at s (at most n bytes there), 0 if
 * it is not a valid one (overlong, a surrogate, beyond U+10FFFF, cut) or
 * a noncharacter (U+FDD0..U+FDEF, U+xxFFFE, U+xxFFFF): sd-bus refuses a
 * string with one, and the whole message with it.
 * Inline: the protocol codec checks every byte of every message with it,
 * and the client library has no util.c. */
static inline size_t utf8_char_len(const unsigned char *s, size_t n) {
        uint32_t cp, min;
        size_t k;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                k = 1, cp = s[0] & 0x1f, min = 0x80;
        } else if ((s[0] & 0xf0) == 0xe0) {
                k = 2, cp = s[0] & 0x0f, min = 0x800;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                k = 3, cp = s[0] & 0x07, min = 0x10000;
        } else
                return 0;
        if (n <= k)
                return 0;
        for (size_t j = 1; j <= k; j++) {
                if ((s[j] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe)
                return 0;
        return k + 1;
}

/* Offset of the first byte of s (n bytes) that is not part of a valid
 * character, or n when all of it is valid UTF-8. */
static inline size_t utf8_invalid_offset(const char *s, size_t n) {
        const unsigned char *u = (const unsigned char *) s;

        for (size_t i = 0; i < n;) {
                size_t l;

                /* ASCII, nearly all of any message, a byte at a time here:
                 * a 300-event APPLY is 2,500 of them. */
                if (u[i] < 0x80) {
                        i++;
                        continue;
                }
                l = utf8_char_len(u + i, n - i);
                if (l == 0)
                        return i;
                i += l;
        }
        return n;
}

static inline bool utf8_is_valid(const char *s) {
        size_t n = strlen(s);

        return utf8_invalid_offset(s, n) == n;
}

/* Whether the character at s, k bytes long as utf8_char_len() gave it, is
 * a control character: C0, DEL, or C1 (U+0080..U+009F; U+009B is a
 * terminal's CSI). */
static inline bool utf8_char_is_control(const unsigned char *s, size_t k) {
        return (k == 1 && (s[0] < 0x20 || s[0] == 0x7f)) || (k == 2 && s[0] == 0xc2 && s[1] <= 0x9f);
}

/* Whether s is UTF-8 without a control character: what utf8_escape()
 * leaves as it is. */
static inline bool utf8_is_plain(const char *s) {
        const unsigned char *u = (const unsigned char *) s;
        size_t n = strlen(s);

        for (size_t i = 0; i < n;) {
                size_t l = utf8_char_len(u + i, n - i);

                if (l == 0 || utf8_char_is_control(u + i, l))
                        return false;
                i += l;
        }
        return true;
}

/* A copy of s with each byte that is not part of valid UTF-8, and each
 * byte of a control character (C0, DEL, C1), written "\xNN": bytes from
 * the kernel or a peer (a comm, a path) made fit for D-Bus, whose strings
 * must be UTF-8, and for one line of a record or a terminal.  NULL: out of
 * memory. */
char *utf8_escape(const char *s);

/* strv: NULL-terminated arrays of owned strings. */
void strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free)
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char *const *l);
int strv_push(char ***l, char *value);          /* takes value on success */
int strv_extend(char ***l, const char *value);  /* copies value */
bool strv_contains(char *const *l, const char *s);

/* clock_gettime(clock) in microseconds. */
uint64_t now_usec(clockid_t clock);

/* getpid() without a system call after the first (glibc no longer caches
 * it); reset in a child of fork(). */
pid_t getpid_cached(void);

/* Parse an unsigned integer in decimal (no leading zero: never octal) or
 * 0x hex, whole string only: digits and nothing else (no blank, no sign).
 * -EINVAL, -ERANGE. */
int safe_atou64(const char *s, uint64_t *ret);

#define USEC_PER_SEC UINT64_C(1000000)
/* A time span as pmufilterctl(1) reads it (--for): one or more NUMBER UNIT,
 * blanks allowed around units ("90s", "1h30min", "1h 30 min"); UNIT is us,
 * ms, s, sec, m, min, h, hr, d, w or the words second(s), minute(s),
 * hour(s), day(s), week(s).  No sign, no fraction, no bare number.
 * -EINVAL (a reason in *ret_error, static), -ERANGE past 2^64-1 µs. */
int parse_timespan(const char *s, uint64_t *ret_usec, const char **ret_error);
/* usec as "1h 59min", "2h", "1d 3h", "45s": the two largest units, rounded
 * down (under a second: "0s"), into buf. */
const char *format_timespan(char *buf, size_t size, uint64_t usec);
/* usec (CLOCK_REALTIME) as ISO 8601 in UTC, "2026-12-06T07:12:00Z", into buf. */
const char *format_iso8601(char *buf, size_t size, uint64_t usec);

/* Grow an array to hold at least need elements; amortised doubling. */
void *greedy_realloc(void **p, size_t *allocated, size_t need, size_t size);
#define GREEDY_REALLOC(array, allocated, need) \
        greedy_realloc((void **) &(array), &(allocated), (need), sizeof((array)[0]))
