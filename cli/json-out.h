/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * json-out.h — pmufilterctl's one JSON writer.  Every verb that prints JSON
 * writes through it, so `--json=short` (one line per document) and
 * `--json=pretty` (indented) look the same everywhere, as systemd's tools
 * do.  It streams: no tree is built.  A NULL string is written as null, and
 * json_kv_string_or_null() also writes "" as null, the convention of
 * pmufilterctl(1), "JSON OUTPUT": absent or unknown is null.
 */
#pragma once

#include <stdio.h>

#include "util.h"

enum json_mode {
        JSON_OFF,
        JSON_SHORT,             /* one line per document */
        JSON_PRETTY,            /* indented, two spaces a level */
};

#define JSON_DEPTH_MAX 16

struct json_writer {
        FILE *f;
        enum json_mode mode;
        unsigned depth;
        bool after_key;
        bool first[JSON_DEPTH_MAX + 1];
};

/* "short", "pretty", "off" → mode; -EINVAL for anything else. */
int json_mode_from_string(const char *s, enum json_mode *ret);

void json_init(struct json_writer *w, FILE *f, enum json_mode mode);

void json_object_begin(struct json_writer *w);
void json_object_end(struct json_writer *w);
void json_array_begin(struct json_writer *w);
void json_array_end(struct json_writer *w);
/* The key of the next member of the current object. */
void json_key(struct json_writer *w, const char *key);

void json_string(struct json_writer *w, const char *s);         /* NULL: null */
void json_number(struct json_writer *w, uint64_t n);
void json_bool(struct json_writer *w, bool b);
void json_null(struct json_writer *w);
void json_strv(struct json_writer *w, char *const *l);          /* NULL: null */

/* key and value in one call. */
void json_kv_string(struct json_writer *w, const char *key, const char *s);
void json_kv_string_or_null(struct json_writer *w, const char *key, const char *s);   /* "": null */
void json_kv_number(struct json_writer *w, const char *key, uint64_t n);
void json_kv_bool(struct json_writer *w, const char *key, bool b);
void json_kv_null(struct json_writer *w, const char *key);

/* End a top-level document: its newline, and a flush.  0, or -errno when
 * stdout could not be written. */
int json_done(struct json_writer *w);

/* Write s as a JSON string literal, quotes included. */
void json_print_string(FILE *f, const char *s);
