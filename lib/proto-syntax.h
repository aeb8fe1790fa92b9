/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proto-syntax.h — internal to the protocol codec (proto.c, proto-format.c,
 * proto-syntax.c): the text rules shared by parsing and formatting.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"

extern const char *const proto_verb_table[_PROTO_VERB_MAX];
extern const char *const proto_client_table[_PROTO_CLIENT_MAX];

/* Inline: checked for every byte of every message. */
static inline bool proto_is_control(unsigned char c) {
        return c < 0x20 || c == 0x7f;
}
bool proto_has_control(const char *s);
bool proto_value_ok(const char *s, bool allow_empty);
bool proto_chars_in(const char *s, const char *extra, bool lower);
bool proto_label_key_ok(const char *k);
bool proto_uuid_ok(const char *s);
