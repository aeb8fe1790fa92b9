/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * json-out.c — the streaming JSON writer of json-out.h.
 */
#include <errno.h>
#include <inttypes.h>

#include "json-out.h"

int json_mode_from_string(const char *s, enum json_mode *ret) {
        assert(ret);

        if (streq_ptr(s, "short"))
                *ret = JSON_SHORT;
        else if (streq_ptr(s, "pretty"))
                *ret = JSON_PRETTY;
        else if (streq_ptr(s, "off"))
                *ret = JSON_OFF;
        else
                return -EINVAL;
        return 0;
}

void json_init(struct json_writer *w, FILE *f, enum json_mode mode) {
        assert(w);
        assert(f);

        *w = (struct json_writer) { .f = f, .mode = mode };
        w->first[0] = true;
}

static void newline_indent(struct json_writer *w, unsigned depth) {
        if (w->mode != JSON_PRETTY)
                return;
        fputc('\n', w->f);
        for (unsigned i = 0; i < depth; i++)
                fputs("  ", w->f);
}

/* Before a value, or before a key: the comma and, pretty, the new line. */
static void item_begin(struct json_writer *w) {
        if (w->after_key) {
                w->after_key = false;
                return;
        }
        if (w->depth == 0)
                return;
        if (!w->first[w->depth])
                fputc(',', w->f);
        w->first[w->depth] = false;
        newline_indent(w, w->depth);
}

static void container_begin(struct json_writer *w, char c) {
        item_begin(w);
        fputc(c, w->f);
        assert(w->depth < JSON_DEPTH_MAX);
        w->first[++w->depth] = true;
}

static void container_end(struct json_writer *w, char c) {
        assert(w->depth > 0);
        if (!w->first[w->depth])
                newline_indent(w, w->depth - 1);
        w->depth--;
        fputc(c, w->f);
}

void json_object_begin(struct json_writer *w) {
        container_begin(w, '{');
}

void json_object_end(struct json_writer *w) {
        container_end(w, '}');
}

void json_array_begin(struct json_writer *w) {
        container_begin(w, '[');
}

void json_array_end(struct json_writer *w) {
        container_end(w, ']');
}

void json_key(struct json_writer *w, const char *key) {
        assert(key);

        item_begin(w);
        json_print_string(w->f, key);
        fputs(w->mode == JSON_PRETTY ? ": " : ":", w->f);
        w->after_key = true;
}

void json_string(struct json_writer *w, const char *s) {
        if (!s) {
                json_null(w);
                return;
        }
        item_begin(w);
        json_print_string(w->f, s);
}

void json_number(struct json_writer *w, uint64_t n) {
        item_begin(w);
        fprintf(w->f, "%" PRIu64, n);
}

void json_bool(struct json_writer *w, bool b) {
        item_begin(w);
        fputs(b ? "true" : "false", w->f);
}

void json_null(struct json_writer *w) {
        item_begin(w);
        fputs("null", w->f);
}

void json_strv(struct json_writer *w, char *const *l) {
        if (!l) {
                json_null(w);
                return;
        }
        json_array_begin(w);
        for (char *const *i = l; *i; i++)
                json_string(w, *i);
        json_array_end(w);
}

void json_kv_string(struct json_writer *w, const char *key, const char *s) {
        json_key(w, key);
        json_string(w, s);
}

void json_kv_string_or_null(struct json_writer *w, const char *key, const char *s) {
        json_kv_string(w, key, isempty(s) ? NULL : s);
}

void json_kv_number(struct json_writer *w, const char *key, uint64_t n) {
        json_key(w, key);
        json_number(w, n);
}

void json_kv_bool(struct json_writer *w, const char *key, bool b) {
        json_key(w, key);
        json_bool(w, b);
}

void json_kv_null(struct json_writer *w, const char *key) {
        json_key(w, key);
        json_null(w);
}

int json_done(struct json_writer *w) {
        assert(w);
        assert(w->depth == 0);

        fputc('\n', w->f);
        w->first[0] = true;
        if (fflush(w->f) != 0 || ferror(w->f))
                return -errno ?: -EIO;
        return 0;
}

void json_print_string(FILE *f, const char *s) {
        assert(f);
        assert(s);

        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if (*p < 0x20 || *p == 0x7f)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}
