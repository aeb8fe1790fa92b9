/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy-yaml.c — libyaml's event stream turned into a ynode tree with
 * 1-based locations, and libyaml's errors turned into located diagnostics.
 *
 * Anchors and aliases are refused rather than resolved: a policy has no use
 * for them, and refusing them keeps the loader simple and fuzz-safe (no
 * "billion laughs" expansion, no shared nodes in the tree).
 */
#include "policy-yaml.h"
#include "suggest.h"
#include "yaml-dl.h"

void ynode_free(struct ynode *n) {
        if (!n)
                return;
        for (size_t i = 0; i < n->n_items; i++)
                ynode_free(n->items[i]);
        free(n->items);
        free(n->value);
        free(n);
}

static void yaml_parser_deletep(yaml_parser_t *parser) {
        sym_yaml_parser_delete(parser);
}

static struct srcloc mark_loc(const char *file, yaml_mark_t m) {
        return (struct srcloc) { .file = file, .line = m.line + 1, .column = m.column + 1 };
}

/* libyaml's reader errors (bad encoding) carry a byte offset, not a mark:
 * count the lines ourselves so the message still points at the spot. */
static struct srcloc offset_loc(const char *file, const char *buf, size_t len, size_t offset) {
        struct srcloc loc = { .file = file, .line = 1, .column = 1 };

        for (size_t i = 0; i < offset && i < len; i++) {
                if (buf[i] == '\n') {
                        loc.line++;
                        loc.column = 1;
                } else
                        loc.column++;
        }
        return loc;
}

static int syntax_error(const yaml_parser_t *parser, const char *file, const char *buf, size_t len,
                        struct diags *d) {
        struct srcloc loc;
        const char *problem = parser->problem ?: "unknown error";

        switch (parser->error) {
        case YAML_MEMORY_ERROR:
                return -ENOMEM;
        case YAML_READER_ERROR:
                loc = offset_loc(file, buf, len, parser->problem_offset);
                if (parser->problem_value >= 0)
                        return diags_error(d, &loc, "YAML: %s: #%X", problem, (unsigned) parser->problem_value);
                return diags_error(d, &loc, "YAML: %s", problem);
        default:
                loc = mark_loc(file, parser->problem_mark);
                /* The usual cause of libyaml's vaguest message. */
                if (parser->problem_mark.index < len && buf[parser->problem_mark.index] == '\t')
                        return diags_error(d, &loc, "YAML: %s: a tab, expected spaces for indentation", problem);
                /* The context helps where it starts elsewhere, e.g. an unclosed '['. */
                if (parser->context && parser->context_mark.line != parser->problem_mark.line)
                        return diags_error(d, &loc, "YAML: %s (%s at line %zu)", problem, parser->context,
                                           parser->context_mark.line + 1);
                return diags_error(d, &loc, "YAML: %s", problem);
        }
}

struct builder {
        const char *file;
        struct diags *d;
        struct ynode *root;
        struct ynode *stack[YNODE_MAX_DEPTH];   /* open collections, not owned */
        size_t depth;
        unsigned n_documents;
};

static int check_decorations(struct builder *b, const struct srcloc *loc,
                             const yaml_char_t *anchor, const yaml_char_t *tag) {
        if (anchor)
                return diags_error(b->d, loc, "YAML anchors (&%s) are not supported: write the value out",
                                   (const char *) anchor);
        if (tag)
                return diags_error(b->d, loc, "YAML tags (%s) are not supported: remove the tag",
                                   (const char *) tag);
        return 0;
}

/* Attach a new node to the open collection (or make it the root) and, for a
 * collection, open it. */
static int add_node(struct builder *b, enum ynode_type type, const struct srcloc *loc, struct ynode **ret) {
        struct ynode *parent = b->depth > 0 ? b->stack[b->depth - 1] : NULL;
        struct ynode *n;

        if (parent && parent->type == YNODE_MAPPING && parent->n_items % 2 == 0 && type != YNODE_SCALAR)
                return diags_error(b->d, loc, "expected a scalar as mapping key, got a %s",
                                   type == YNODE_MAPPING ? "mapping" : "sequence");
        if (type != YNODE_SCALAR && b->depth >= YNODE_MAX_DEPTH)
                return diags_error(b->d, loc, "nesting deeper than %d levels", YNODE_MAX_DEPTH);
        if (parent && !GREEDY_REALLOC(parent->items, parent->allocated_items, parent->n_items + 1))
                return -ENOMEM;

        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->type = type;
        n->loc = *loc;
        if (parent)
                parent->items[parent->n_items++] = n;
        else
                b->root = n;
        if (type != YNODE_SCALAR)
                b->stack[b->depth++] = n;
        *ret = n;
        return 0;
}

static bool has_control(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] < ' ' || s[i] == 0x7f)
                        return true;
        return false;
}

static int add_scalar(struct builder *b, const yaml_event_t *e) {
        struct srcloc loc = mark_loc(b->file, e->start_mark);
        const struct ynode *parent = b->depth > 0 ? b->stack[b->depth - 1] : NULL;
        bool is_key = parent && parent->type == YNODE_MAPPING && parent->n_items % 2 == 0;
        struct ynode *n;
        int r;

        r = check_decorations(b, &loc, e->data.scalar.anchor, e->data.scalar.tag);
        if (r < 0)
                return r;
        /* "\0" escapes would make the C string lie about its length. */
        if (memchr(e->data.scalar.value, 0, e->data.scalar.length))
                return diags_error(b->d, &loc, "expected text, got a scalar containing a NUL character");
        r = add_node(b, YNODE_SCALAR, &loc, &n);
        if (r < 0)
                return r;
        /* No key of the schema has one, and keys are quoted in one-line
         * diagnostics. */
        if (is_key && has_control((const char *) e->data.scalar.value, e->data.scalar.length))
                return diags_error(b->d, &loc, "expected a key without control characters");
        n->value = strndup((const char *) e->data.scalar.value, e->data.scalar.length);
        if (!n->value)
                return -ENOMEM;
        n->plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        return 0;
}

static int handle_event(struct builder *b, const yaml_event_t *e) {
        struct srcloc loc = mark_loc(b->file, e->start_mark);
        struct ynode *n;
        int r;

        switch (e->type) {
        case YAML_DOCUMENT_START_EVENT:
                if (b->n_documents++ > 0)
                        return diags_error(b->d, &loc, "expected one YAML document, found a second one");
                return 0;
        case YAML_ALIAS_EVENT:
                return diags_error(b->d, &loc, "YAML aliases (*%s) are not supported: write the value out",
                                   (const char *) e->data.alias.anchor);
        case YAML_SCALAR_EVENT:
                return add_scalar(b, e);
        case YAML_SEQUENCE_START_EVENT:
                r = check_decorations(b, &loc, e->data.sequence_start.anchor, e->data.sequence_start.tag);
                return r < 0 ? r : add_node(b, YNODE_SEQUENCE, &loc, &n);
        case YAML_MAPPING_START_EVENT:
                r = check_decorations(b, &loc, e->data.mapping_start.anchor, e->data.mapping_start.tag);
                return r < 0 ? r : add_node(b, YNODE_MAPPING, &loc, &n);
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
                if (b->depth > 0)
                        b->depth--;
                return 0;
        default:
                return 0;
        }
}

static int parse_events(const char *file, const char *buf, size_t len, struct ynode **ret, struct diags *d) {
        _cleanup_(yaml_parser_deletep) yaml_parser_t parser = {};
        struct builder b = { .file = file, .d = d };
        bool done = false;
        int r = 0;

        assert(buf || len == 0);
        assert(ret);

        if (!sym_yaml_parser_initialize(&parser))
                return -ENOMEM;
        sym_yaml_parser_set_input_string(&parser, (const unsigned char *) buf, len);

        while (!done && r >= 0) {
                yaml_event_t e;

                if (!sym_yaml_parser_parse(&parser, &e)) {
                        r = syntax_error(&parser, file, buf, len, d);
                        break;
                }
                r = handle_event(&b, &e);
                done = e.type == YAML_STREAM_END_EVENT;
                sym_yaml_event_delete(&e);
        }
        if (r < 0) {
                ynode_free(b.root);
                return r;
        }
        *ret = b.root;
        return 0;
}

/* libyaml is held for the parse only: the tree is our own copy. */
int ynode_parse(const char *file, const char *buf, size_t len, struct ynode **ret, struct diags *d) {
        const char *why;
        int r;

        r = yaml_dl_acquire(&why);
        if (r < 0)
                return diags_error(d, &(struct srcloc) { .file = file }, "%s", why);
        r = parse_events(file, buf, len, ret, d);
        yaml_dl_release();
        return r;
}

/* Typed access to nodes below: each failure is a located error naming what
 * was expected and what was found. */

const char *ynode_describe(const struct ynode *n, char buf[64]) {
        assert(n);
        assert(buf);

        if (ynode_is_null(n))
                return "an empty value";
        switch (n->type) {
        case YNODE_MAPPING:
                return "a mapping";
        case YNODE_SEQUENCE:
                return "a sequence";
        default:
                /* Made one line, as every diagnostic is, by diags_addv(). */
                snprintf(buf, 64, "'%.40s%s'", n->value, strlen(n->value) > 40 ? "..." : "");
                return buf;
        }
}

int ynode_expect(struct diags *d, const struct ynode *n, enum ynode_type type, const char *what) {
        char buf[64];

        assert(n);
        assert(what);

        if (n->type == type && !ynode_is_null(n))
                return 0;
        return diags_error(d, &n->loc, "%s: expected %s, got %s", what,
                           type == YNODE_MAPPING ? "a mapping" :
                           type == YNODE_SEQUENCE ? "a sequence" : "a scalar",
                           ynode_describe(n, buf));
}

/* Not strtoull()'s base 0, which would read a leading 0 as octal. */
int ynode_parse_number(const char *s, uint64_t *ret) {
        const char *digits;
        unsigned long long v;
        char *end;
        int base;

        assert(s);
        assert(ret);

        digits = startswith(s, "0x") ?: startswith(s, "0X");
        base = digits ? 16 : 10;
        if (!digits)
                digits = s;
        if (!*digits || strspn(digits, base == 16 ? "0123456789abcdefABCDEF" : "0123456789") != strlen(digits))
                return -EINVAL;
        errno = 0;
        v = strtoull(digits, &end, base);
        if (errno == ERANGE)
                return -ERANGE;
        *ret = v;
        return 0;
}

int ynode_get_uint(struct diags *d, const struct ynode *n, const char *what,
                   uint64_t min, uint64_t max, const char *expected, uint64_t *ret) {
        char buf[64];
        uint64_t v;

        assert(n);
        assert(what);
        assert(expected);
        assert(ret);

        if (n->type != YNODE_SCALAR || !n->plain || ynode_parse_number(n->value, &v) < 0 || v < min || v > max)
                return diags_error(d, &n->loc, "%s: expected %s, got %s", what, expected, ynode_describe(n, buf));
        *ret = v;
        return 0;
}

int ynode_get_text(struct diags *d, const struct ynode *n, const char *what, const char *expected,
                   const char **ret) {
        char buf[64];

        assert(n);
        assert(what);
        assert(expected);
        assert(ret);

        if (n->type != YNODE_SCALAR || ynode_is_null(n))
                return diags_error(d, &n->loc, "%s: expected %s, got %s", what, expected, ynode_describe(n, buf));
        *ret = n->value;
        return 0;
}

int ynode_get_word(struct diags *d, const struct ynode *n, const char *what,
                   const char *const *words, size_t n_words, const char *expected) {
        char buf[64];

        assert(n);
        assert(what);
        assert(words || n_words == 0);
        assert(expected);

        if (n->type == YNODE_SCALAR)
                for (size_t i = 0; i < n_words; i++)
                        if (streq(n->value, words[i]))
                                return (int) i;
        return diags_error(d, &n->loc, "%s: expected %s, got %s", what, expected, ynode_describe(n, buf));
}

int ynode_get_bool(struct diags *d, const struct ynode *n, const char *what, bool *ret) {
        static const char *const words[] = { "false", "true" };
        int r;

        assert(ret);

        r = ynode_get_word(d, n, what, words, ELEMENTSOF(words), "true or false");
        if (r < 0)
                return r;
        *ret = r == 1;
        return 0;
}

struct keyref {
        const struct ynode *key;
        size_t index;
};

static int keyref_compare(const void *a, const void *b) {
        const struct keyref *x = a, *y = b;
        int c = strcmp(x->key->value, y->key->value);

        if (c != 0)
                return c;
        return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorting, not pairwise comparison: a mapping of profiles may be long.
 * Every repeat is an error, in document order, naming the first place. */
int ynode_check_duplicates(struct diags *d, const struct ynode *map, const char *what, bool *ret_repeated) {
        _cleanup_free_ struct keyref *v = NULL;
        _cleanup_free_ size_t *firsts = NULL;
        size_t n;
        int ret = 0;

        assert(map);
        assert(what);

        n = map->n_items / 2;
        if (ret_repeated)
                for (size_t i = 0; i < n; i++)
                        ret_repeated[i] = false;
        if (n < 2)
                return 0;
        v = calloc(n, sizeof(*v));
        firsts = calloc(n, sizeof(*firsts));    /* by key index: its first occurrence, or itself */
        if (!v || !firsts)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                v[i] = (struct keyref) { .key = map->items[2 * i], .index = i };
        qsort(v, n, sizeof(*v), keyref_compare);
        for (size_t i = 0, first = 0; i < n; i++) {
                if (i > 0 && !streq(v[i].key->value, v[first].key->value))
                        first = i;
                firsts[v[i].index] = v[first].index;
        }
        for (size_t i = 0; i < n; i++) {
                const struct ynode *key = map->items[2 * i], *first = map->items[2 * firsts[i]];
                int r;

                if (firsts[i] == i)
                        continue;
                if (ret_repeated)
                        ret_repeated[i] = true;
                r = diags_error(d, &key->loc, "%s: duplicate key '%s' (first at %s:%u:%u)", what,
                                key->value, first->loc.file, first->loc.line, first->loc.column);
                if (r == -ENOMEM)
                        return r;
                ret = r;
        }
        return ret;
}

/* "a, b or c" */
static char *join_keys(const struct ynode_field *fields, size_t n) {
        char *s = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&s, &size);

        if (!f)
                return NULL;
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", fields[i].key);
        if (fclose(f) != 0) {
                free(s);
                return NULL;
        }
        return s;
}

/* The known key closest to key, if one is close enough to offer. */
static const char *closest_key(const struct ynode *key, const char *const *known, size_t n_known) {
        struct suggestion s = suggestion_start(key->value);

        for (size_t i = 0; i < n_known; i++)
                suggestion_offer(&s, known[i], false);
        return s.best;
}

#define DID_YOU_MEAN_FMT "%s%s%s"
#define DID_YOU_MEAN(s) (s) ? "; did you mean '" : "", strempty(s), (s) ? "'?" : ""

int ynode_unknown_key(struct diags *d, const struct ynode *key, const char *what, const char *expected,
                      const char *const *known, size_t n_known) {
        const char *best;

        assert(key);
        assert(what);
        assert(expected);

        best = closest_key(key, known, n_known);
        return diags_error(d, &key->loc, "%s: unknown key '%s' (expected %s)" DID_YOU_MEAN_FMT,
                           what, key->value, expected, DID_YOU_MEAN(best));
}

int ynode_map_fields(struct diags *d, const struct ynode *map, const char *what,
                     struct ynode_field *fields, size_t n_fields, const char *expected) {
        _cleanup_free_ const char **known = NULL;
        _cleanup_free_ char *list = NULL;
        int r, ret = 0;

        assert(map);
        assert(what);
        assert(fields || n_fields == 0);

        r = ynode_expect(d, map, YNODE_MAPPING, what);
        if (r < 0)
                return r;
        /* Repeats are reported here; the first of each is the one used. */
        r = ynode_check_duplicates(d, map, what, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                ret = r;

        known = calloc(n_fields + 1, sizeof(*known));
        if (!known)
                return -ENOMEM;
        for (size_t j = 0; j < n_fields; j++)
                known[j] = fields[j].key;

        for (size_t i = 0; i < map->n_items; i += 2) {
                const struct ynode *key = map->items[i];
                struct ynode_field *f = NULL;

                for (size_t j = 0; j < n_fields && !f; j++)
                        if (streq(fields[j].key, key->value))
                                f = &fields[j];
                if (f) {
                        if (!f->key_node) {
                                f->key_node = key;
                                f->value = map->items[i + 1];
                        }
                        continue;
                }
                if (expected)
                        r = diags_error(d, &key->loc, "%s: expected %s, got key '%s'" DID_YOU_MEAN_FMT,
                                        what, expected, key->value,
                                        DID_YOU_MEAN(closest_key(key, known, n_fields)));
                else {
                        if (!list) {
                                list = join_keys(fields, n_fields);
                                if (!list)
                                        return -ENOMEM;
                        }
                        r = ynode_unknown_key(d, key, what, list, known, n_fields);
                }
                if (r == -ENOMEM)
                        return r;
                ret = r;
        }
        return ret;
}
