/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy-yaml.h — a YAML buffer as a small tree of scalars, sequences and
 * mappings, each with its source location.  The policy loader walks this
 * instead of libyaml's events so that it can look at a mapping as a whole
 * (unknown keys, duplicates, keys that go together).  Pure: no I/O.
 */
#pragma once

#include "diag.h"

enum ynode_type {
        YNODE_SCALAR,
        YNODE_SEQUENCE,
        YNODE_MAPPING,
};

struct ynode {
        enum ynode_type type;
        struct srcloc loc;              /* 1-based; file as passed to ynode_parse() */
        char *value;                    /* SCALAR: text, never contains NUL */
        bool plain;                     /* SCALAR: plain style (not quoted, not a block) */
        struct ynode **items;           /* SEQUENCE: items; MAPPING: key, value, key, value...
                                         * (keys are always scalars) */
        size_t n_items, allocated_items;
};

/* Nesting deeper than this is refused: no policy needs more than 5 levels,
 * and the limit keeps recursion over the tree bounded for the fuzzer. */
#define YNODE_MAX_DEPTH 32

/* Parse one YAML document.  *ret is NULL for a stream without a document
 * (an empty file, comments only).  Anchors, aliases, tags and a second
 * document are errors.  Returns 0, -EINVAL with an error in d, or -ENOMEM. */
int ynode_parse(const char *file, const char *buf, size_t len, struct ynode **ret, struct diags *d);
void ynode_free(struct ynode *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ynode *, ynode_free)

/* YAML's null: a plain empty scalar (`key:` with nothing after it), `~` or
 * `null`. */
static inline bool ynode_is_null(const struct ynode *n) {
        return n->type == YNODE_SCALAR && n->plain &&
                (n->value[0] == '\0' || streq(n->value, "~") || streq(n->value, "null") ||
                 streq(n->value, "Null") || streq(n->value, "NULL"));
}

/* Typed access, each failure a located error in d, "WHAT: expected
 * EXPECTED, got FOUND", returning -EINVAL (or -ENOMEM). */

/* "'value'" for a scalar (shortened), else what kind of node it is. */
const char *ynode_describe(const struct ynode *n, char buf[64]);
/* Decimal or 0x hex, the whole string, no sign: 0, -EINVAL or -ERANGE. */
int ynode_parse_number(const char *s, uint64_t *ret);

int ynode_expect(struct diags *d, const struct ynode *n, enum ynode_type type, const char *what);
/* A plain scalar holding an integer in min..max (quoted "5" is text). */
int ynode_get_uint(struct diags *d, const struct ynode *n, const char *what,
                   uint64_t min, uint64_t max, const char *expected, uint64_t *ret);
/* A non-null scalar; *ret points into the node. */
int ynode_get_text(struct diags *d, const struct ynode *n, const char *what, const char *expected,
                   const char **ret);
/* One of a few words: returns its index. */
int ynode_get_word(struct diags *d, const struct ynode *n, const char *what,
                   const char *const *words, size_t n_words, const char *expected);
int ynode_get_bool(struct diags *d, const struct ynode *n, const char *what, bool *ret);

/* Duplicate keys in a mapping: an error at every repeated key, naming where
 * that key was first written.  ret_repeated, if not NULL, has one entry per
 * key (n_items / 2), set for each repeat.  0, -EINVAL or -ENOMEM. */
int ynode_check_duplicates(struct diags *d, const struct ynode *map, const char *what, bool *ret_repeated);

/* "WHAT: unknown key 'KEY' (expected EXPECTED); did you mean 'K'?", the
 * suggestion only where one of `known` is close (suggest.h). */
int ynode_unknown_key(struct diags *d, const struct ynode *key, const char *what, const char *expected,
                      const char *const *known, size_t n_known);

/* One allowed key of a mapping, and where the document put it. */
struct ynode_field {
        const char *key;
        const struct ynode *key_node;   /* NULL: absent */
        const struct ynode *value;
};

/*
 * Check that map is a mapping with only the given keys, each at most once,
 * and put their nodes into fields.  `expected` replaces the generated list
 * of keys in the unknown-key error.  Every unknown and every repeated key
 * is an error, with a suggestion where a known key is close.
 *
 * Returns 0; -EINVAL after errors in d; -ENOMEM.  On -EINVAL for a node that
 * is not a mapping, nothing is filled.  For a mapping, fields are filled
 * all the same (the first of repeated keys): a caller may go on checking
 * them, but must not report a key as missing, since an unknown key may be
 * that key misspelt.
 */
int ynode_map_fields(struct diags *d, const struct ynode *map, const char *what,
                     struct ynode_field *fields, size_t n_fields, const char *expected);
