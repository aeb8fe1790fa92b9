/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proto-syntax.c — the text rules both directions of the VMM protocol share
 * (UTF-8, control characters, key and UUID syntax, verb names), so that the
 * formatters can never emit what the parser refuses.  libc only.
 */
#include <stdint.h>
#include <string.h>

#include "proto.h"
#include "proto-syntax.h"
#include "util.h"

const char *const proto_verb_table[_PROTO_VERB_MAX] = {
        [PROTO_ATTACH] = "ATTACH",
        [PROTO_APPLY] = "APPLY",
        [PROTO_APPLIED] = "APPLIED",
        [PROTO_ERROR] = "ERROR",
        [PROTO_DETACH] = "DETACH",
};

const char *const proto_client_table[_PROTO_CLIENT_MAX] = {
        [PROTO_CLIENT_LIBRARY] = "library",
        [PROTO_CLIENT_PRELOAD] = "preload",
};

const char *proto_verb_to_string(enum proto_verb v) {
        return (unsigned) v < _PROTO_VERB_MAX ? proto_verb_table[v] : NULL;
}

const char *proto_client_to_string(enum proto_client c) {
        return (unsigned) c < _PROTO_CLIENT_MAX ? proto_client_table[c] : NULL;
}


bool proto_has_control(const char *s) {
        assert(s);

        for (const unsigned char *c = (const unsigned char *) s; *c; c++)
                if (proto_is_control(*c))
                        return true;
        return false;
}

/* A value we may put on the wire: UTF-8, no control character (so no
 * newline, and nothing that could drive a terminal showing it later). */
bool proto_value_ok(const char *s, bool allow_empty) {
        if (!s)
                return false;
        if (!allow_empty && !*s)
                return false;
        return !proto_has_control(s) && utf8_is_valid(s);
}

bool proto_chars_in(const char *s, const char *extra, bool lower) {
        assert(s);
        assert(extra);

        if (!*s)
                return false;
        for (; *s; s++) {
                char c = *s;

                if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    (lower && c >= 'a' && c <= 'z') || (c && strchr(extra, c)))
                        continue;
                return false;
        }
        return true;
}

bool proto_label_key_ok(const char *k) {
        return k && proto_chars_in(k, "_.-", true);
}

bool proto_uuid_ok(const char *s) {
        if (!s || strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                char c = s[i];

                if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                        return false;
        }
        return true;
}

void proto_sanitize_message(char *dst, size_t size, const char *src) {
        const unsigned char *s = (const unsigned char *) strempty(src);
        size_t n = strlen((const char *) s), o = 0;

        assert(dst || size == 0);

        if (size == 0)
                return;
        for (size_t i = 0; i < n;) {
                size_t l = utf8_char_len(s + i, n - i);

                if (l == 0 || (l == 1 && proto_is_control(s[i]))) {
                        if (o + 1 >= size)
                                break;
                        dst[o++] = '?';
                        i++;
                        continue;
                }
                if (o + l >= size)
                        break;          /* never cut a character in half */
                memcpy(dst + o, s + i, l);
                o += l;
                i += l;
        }
        dst[o] = 0;
}
