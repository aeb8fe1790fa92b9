/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proto.c — the VMM protocol codec (pmufilterd-vmm(7)): datagram text <->
 * typed messages.  libc only (util.h is used for its header-only macros;
 * nothing of util.c may be called: the client library links this file
 * without it).
 * Parsing is split in two: message_parse() checks what every message must
 * satisfy (size, UTF-8, line and key syntax, uniqueness) and yields a table
 * of fields sorted by key; the per-verb parsers then look keys up and check
 * their values.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "proto-syntax.h"
#include "util.h"

_printf_(3, 4)
static int reject(char *reason, size_t size, const char *fmt, ...) {
        if (reason && size > 0) {
                va_list ap;

                va_start(ap, fmt);
                (void) vsnprintf(reason, size, fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

static int check_key(const char *key, unsigned line, char *reason, size_t size) {
        const char *l;

        if (!*key)
                return reject(reason, size, "line %u: empty key", line);
        l = startswith(key, "LABEL.");
        if (l) {
                if (!*l)
                        return reject(reason, size, "line %u: empty label key after LABEL.", line);
                if (!proto_label_key_ok(l))
                        return reject(reason, size, "line %u: label key has a character outside [A-Za-z0-9_.-]", line);
                return 0;
        }
        if (!proto_chars_in(key, "_.", false))
                return reject(reason, size, "line %u: key has a character outside [A-Z0-9_.]", line);
        return 0;
}

/* Unsigned number in s[0..n): decimal without leading zeros, or (hex) 0x and
 * hex digits; nothing else (no sign, no space). */
static int parse_u64(const char *s, size_t n, bool hex, uint64_t max, uint64_t *ret) {
        unsigned base = hex ? 16 : 10;
        uint64_t v = 0;
        size_t i = 0;

        if (hex) {
                if (n < 3 || s[0] != '0' || s[1] != 'x')
                        return -EINVAL;
                i = 2;
        } else if (n == 0 || (n > 1 && s[0] == '0'))
                return -EINVAL;
        for (; i < n; i++) {
                unsigned d;

                if (s[i] >= '0' && s[i] <= '9')
                        d = s[i] - '0';
                else if (hex && s[i] >= 'a' && s[i] <= 'f')
                        d = s[i] - 'a' + 10;
                else if (hex && s[i] >= 'A' && s[i] <= 'F')
                        d = s[i] - 'A' + 10;
                else
                        return -EINVAL;
                /* Overflow checked without a division per digit: a
                 * 300-event APPLY has over a thousand of them. */
                if (hex ? v > UINT64_MAX >> 4 : v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * base + d;
        }
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

struct field {
        const char *key;
        const char *value;
        unsigned line;
};

struct message {
        char *text;                     /* our NUL-split copy of the datagram */
        struct field *fields;           /* sorted by key, unique */
        size_t n_fields;
        size_t n_labels;
};

static void message_done(struct message *m) {
        free(m->text);
        free(m->fields);
}

static int field_compare(const void *a, const void *b) {
        return strcmp(((const struct field *) a)->key, ((const struct field *) b)->key);
}

static int parse_verb_line(const char *line, enum proto_verb *ret, char *reason, size_t size) {
        const char *sp = strchr(line, ' ');

        if (!sp || (size_t) (sp - line) != strlen(PROTO_MAGIC) || strncmp(line, PROTO_MAGIC, sp - line) != 0) {
                if (startswith(line, "PMUFILTER/") && !startswith(line, PROTO_MAGIC " "))
                        return reject(reason, size, "line 1: unsupported protocol version, expected " PROTO_MAGIC);
                return reject(reason, size, "line 1: expected \"" PROTO_MAGIC " <VERB>\"");
        }
        for (enum proto_verb v = 0; v < _PROTO_VERB_MAX; v++)
                if (streq(sp + 1, proto_verb_table[v])) {
                        *ret = v;
                        return 0;
                }
        return reject(reason, size, "line 1: unknown verb, expected ATTACH, APPLY, APPLIED, ERROR or DETACH");
}

/* The checks every message gets.  expected < 0: any verb, returned in *ret_verb. */
static int message_parse(const void *buf, size_t len, int expected, enum proto_verb *ret_verb,
                         struct message *ret, char *reason, size_t size) {
        _cleanup_(message_done) struct message m = {};
        enum proto_verb verb = _PROTO_VERB_MAX;
        size_t off, n_lines = 1;
        unsigned line = 1;
        const char *nul;
        char *p, *eol;
        int r;

        if (len == 0 || !buf)
                return reject(reason, size, "empty message");
        if (len > PROTO_MSG_MAX)
                return reject(reason, size, "message of %zu bytes exceeds the limit of %u bytes", len, PROTO_MSG_MAX);
        nul = memchr(buf, 0, len);
        if (nul)
                return reject(reason, size, "NUL byte at offset %zu", (size_t) (nul - (const char *) buf));
        off = utf8_invalid_offset(buf, len);
        if (off < len)
                return reject(reason, size, "invalid UTF-8 at offset %zu", off);

        m.text = malloc(len + 1);
        if (!m.text)
                return -ENOMEM;
        memcpy(m.text, buf, len);
        m.text[len] = 0;
        for (p = m.text; (p = strchr(p, '\n')); p++)
                n_lines++;
        m.fields = calloc(n_lines, sizeof(struct field));
        if (!m.fields)
                return -ENOMEM;

        eol = strchr(m.text, '\n');
        if (eol)
                *eol = 0;
        r = parse_verb_line(m.text, &verb, reason, size);
        if (r < 0)
                return r;
        if (expected >= 0 && verb != (enum proto_verb) expected)
                return reject(reason, size, "line 1: expected %s, got %s", proto_verb_table[expected], proto_verb_table[verb]);

        for (p = eol ? eol + 1 : NULL; p; p = eol ? eol + 1 : NULL) {
                char *eq;

                line++;
                eol = strchr(p, '\n');
                if (!eol && !*p)
                        break;          /* the '\n' that ended the last line */
                if (eol)
                        *eol = 0;
                eq = strchr(p, '=');
                if (!eq)
                        return reject(reason, size, "line %u: expected KEY=VALUE, found no '='", line);
                *eq = 0;
                r = check_key(p, line, reason, size);
                if (r < 0)
                        return r;
                if (proto_has_control(eq + 1))
                        return reject(reason, size, "line %u: value of %s contains a control character", line, p);
                m.fields[m.n_fields++] = (struct field) { .key = p, .value = eq + 1, .line = line };
        }

        qsort(m.fields, m.n_fields, sizeof(struct field), field_compare);
        for (size_t i = 0; i < m.n_fields; i++) {
                if (i > 0 && streq(m.fields[i - 1].key, m.fields[i].key))
                        return reject(reason, size, "lines %u and %u: duplicate key %s",
                                      m.fields[i - 1].line < m.fields[i].line ? m.fields[i - 1].line : m.fields[i].line,
                                      m.fields[i - 1].line < m.fields[i].line ? m.fields[i].line : m.fields[i - 1].line,
                                      m.fields[i].key);
                if (startswith(m.fields[i].key, "LABEL."))
                        m.n_labels++;
        }
        if (m.n_labels > PROTO_LABELS_MAX)
                return reject(reason, size, "%zu labels, at most %u allowed", m.n_labels, PROTO_LABELS_MAX);

        if (ret_verb)
                *ret_verb = verb;
        *ret = m;
        m = (struct message) {};
        return 0;
}

static const struct field *message_get(const struct message *m, const char *key) {
        struct field k = { .key = key };

        return bsearch(&k, m->fields, m->n_fields, sizeof(struct field), field_compare);
}

/* Numeric field: 0, -ENOENT when absent (nothing written), -EBADMSG. */
static int field_u64(const struct message *m, const char *key, bool hex, uint64_t max,
                     uint64_t *ret, char *reason, size_t size) {
        const struct field *f = message_get(m, key);

        if (!f)
                return -ENOENT;
        if (parse_u64(f->value, strlen(f->value), hex, max, ret) < 0)
                return reject(reason, size, "line %u: %s must be %s number at most %" PRIu64,
                              f->line, key, hex ? "a 0x-prefixed hexadecimal" : "a decimal", max);
        return 0;
}

static int required_u64(const struct message *m, const char *key, bool hex, uint64_t max,
                        uint64_t *ret, char *reason, size_t size) {
        int r = field_u64(m, key, hex, max, ret, reason, size);

        if (r == -ENOENT)
                return reject(reason, size, "missing required key %s", key);
        return r;
}

/* String field: copies it into *ret (NULL when absent). */
static int field_string(const struct message *m, const char *key, bool allow_empty,
                        char **ret, char *reason, size_t size) {
        const struct field *f = message_get(m, key);

        if (!f) {
                *ret = NULL;
                return 0;
        }
        if (!allow_empty && !*f->value)
                return reject(reason, size, "line %u: %s is empty", f->line, key);
        *ret = strdup(f->value);
        return *ret ? 0 : -ENOMEM;
}

int proto_parse_verb(const void *buf, size_t len, enum proto_verb *ret, char *reason, size_t reason_size) {
        _cleanup_(message_done) struct message m = {};

        assert(ret);

        return message_parse(buf, len, -1, ret, &m, reason, reason_size);
}

void proto_attach_done(struct proto_attach *m) {
        if (!m)
                return;
        free(m->name);
        free(m->uuid);
        for (size_t i = 0; i < m->n_labels; i++) {
                free(m->labels[i].key);
                free(m->labels[i].value);
        }
        free(m->labels);
        *m = (struct proto_attach) {};
}

static int parse_labels(const struct message *m, struct proto_attach *a) {
        if (m->n_labels == 0)
                return 0;
        a->labels = calloc(m->n_labels, sizeof(struct proto_label));
        if (!a->labels)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_fields; i++) {
                const char *k = startswith(m->fields[i].key, "LABEL.");
                struct proto_label *l = &a->labels[a->n_labels];

                if (!k)
                        continue;
                l->key = strdup(k);
                l->value = strdup(m->fields[i].value);
                a->n_labels++;
                if (!l->key || !l->value)
                        return -ENOMEM;
        }
        return 0;
}

int proto_parse_attach(const void *buf, size_t len, struct proto_attach *ret, char *reason, size_t reason_size) {
        _cleanup_(message_done) struct message m = {};
        _cleanup_(proto_attach_done) struct proto_attach a = {};
        const struct field *f;
        uint64_t u;
        int r;

        assert(ret);

        r = message_parse(buf, len, PROTO_ATTACH, NULL, &m, reason, reason_size);
        if (r < 0)
                return r;

        r = required_u64(&m, "VMFD", false, INT_MAX, &u, reason, reason_size);
        if (r < 0)
                return r;
        a.vmfd = (int) u;
        r = field_u64(&m, "VCPUS", false, UINT_MAX, &u, reason, reason_size);
        if (r < 0 && r != -ENOENT)
                return r;
        a.vcpus = r < 0 ? 0 : (unsigned) u;

        r = field_string(&m, "NAME", false, &a.name, reason, reason_size);
        if (r < 0)
                return r;
        f = message_get(&m, "UUID");
        if (f) {
                if (!proto_uuid_ok(f->value))
                        return reject(reason, reason_size, "line %u: UUID must be 8-4-4-4-12 hexadecimal digits", f->line);
                a.uuid = strdup(f->value);
                if (!a.uuid)
                        return -ENOMEM;
                for (char *c = a.uuid; *c; c++)
                        if (*c >= 'A' && *c <= 'F')
                                *c += 'a' - 'A';
        }
        f = message_get(&m, "CLIENT");
        a.client = PROTO_CLIENT_LIBRARY;
        if (f) {
                if (streq(f->value, "library"))
                        a.client = PROTO_CLIENT_LIBRARY;
                else if (streq(f->value, "preload"))
                        a.client = PROTO_CLIENT_PRELOAD;
                else
                        return reject(reason, reason_size, "line %u: CLIENT must be library or preload", f->line);
        }
        r = parse_labels(&m, &a);
        if (r < 0)
                return r;

        *ret = a;
        a = (struct proto_attach) {};
        return 0;
}

void proto_apply_done(struct proto_apply *m) {
        if (!m)
                return;
        free(m->vm);
        free(m->profile);
        free(m->events);
        *m = (struct proto_apply) {};
}

static int parse_events(const struct field *f, struct proto_apply *a, char *reason, size_t size) {
        const char *p = f->value;
        size_t n = 1;

        if (!*p)
                return 0;       /* EVENTS= : an empty list is a valid filter */
        for (const char *c = p; *c; c++)
                n += *c == ',';
        if (n > PROTO_EVENTS_MAX)
                return reject(reason, size, "line %u: %zu events, at most %u allowed", f->line, n, PROTO_EVENTS_MAX);
        a->events = calloc(n, sizeof(uint64_t));
        if (!a->events)
                return -ENOMEM;
        for (;;) {
                size_t l = 0;

                while (p[l] && p[l] != ',')     /* strcspn(p, ","), a call per event less */
                        l++;
                if (parse_u64(p, l, true, UINT64_MAX, &a->events[a->n_events]) < 0)
                        return reject(reason, size, "line %u: event %zu of EVENTS is not a 0x-prefixed 64-bit hexadecimal number",
                                      f->line, a->n_events + 1);
                a->n_events++;
                if (!p[l])
                        return 0;
                p += l + 1;
        }
}

int proto_parse_apply(const void *buf, size_t len, struct proto_apply *ret, char *reason, size_t reason_size) {
        _cleanup_(message_done) struct message m = {};
        _cleanup_(proto_apply_done) struct proto_apply a = {};
        const struct field *f;
        uint64_t u;
        int r;

        assert(ret);

        r = message_parse(buf, len, PROTO_APPLY, NULL, &m, reason, reason_size);
        if (r < 0)
                return r;

        r = field_string(&m, "VM", false, &a.vm, reason, reason_size);
        if (r < 0)
                return r;
        r = field_string(&m, "PROFILE", false, &a.profile, reason, reason_size);
        if (r < 0)
                return r;
        r = required_u64(&m, "SERIAL", false, UINT64_MAX, &a.serial, reason, reason_size);
        if (r < 0)
                return r;
        f = message_get(&m, "PMU");
        if (f && !streq(f->value, "on") && !streq(f->value, "off"))
                return reject(reason, reason_size, "line %u: PMU must be on or off", f->line);
        a.pmu_off = f && streq(f->value, "off");

        f = message_get(&m, "ACTION");
        if (!f)
                return reject(reason, reason_size, "missing required key ACTION");
        if (streq(f->value, "allow"))
                a.action = 0;   /* KVM_PMU_EVENT_ALLOW */
        else if (streq(f->value, "deny"))
                a.action = 1;   /* KVM_PMU_EVENT_DENY */
        else
                return reject(reason, reason_size, "line %u: ACTION must be allow or deny", f->line);

        r = required_u64(&m, "FLAGS", false, UINT32_MAX, &u, reason, reason_size);
        if (r < 0)
                return r;
        a.flags = (uint32_t) u;
        r = required_u64(&m, "FIXED", true, UINT32_MAX, &u, reason, reason_size);
        if (r < 0)
                return r;
        a.fixed_counter_bitmap = (uint32_t) u;

        f = message_get(&m, "EVENTS");
        if (!f)
                return reject(reason, reason_size, "missing required key EVENTS");
        r = parse_events(f, &a, reason, reason_size);
        if (r < 0)
                return r;

        *ret = a;
        a = (struct proto_apply) {};
        return 0;
}

int proto_parse_applied(const void *buf, size_t len, struct proto_applied *ret, char *reason, size_t reason_size) {
        _cleanup_(message_done) struct message m = {};
        struct proto_applied a = {};
        uint64_t u;
        int r;

        assert(ret);

        r = message_parse(buf, len, PROTO_APPLIED, NULL, &m, reason, reason_size);
        if (r < 0)
                return r;
        r = required_u64(&m, "SERIAL", false, UINT64_MAX, &a.serial, reason, reason_size);
        if (r < 0)
                return r;
        r = required_u64(&m, "ERRNO", false, PROTO_ERRNO_MAX, &u, reason, reason_size);
        if (r < 0)
                return r;
        a.error = (int) u;
        r = field_u64(&m, "PMU_ERRNO", false, PROTO_ERRNO_MAX, &u, reason, reason_size);
        if (r < 0 && r != -ENOENT)
                return r;
        a.has_pmu_error = r == 0;
        a.pmu_error = r == 0 ? (int) u : 0;

        *ret = a;
        return 0;
}

void proto_error_done(struct proto_error *m) {
        if (!m)
                return;
        free(m->message);
        *m = (struct proto_error) {};
}

int proto_parse_error(const void *buf, size_t len, struct proto_error *ret, char *reason, size_t reason_size) {
        _cleanup_(message_done) struct message m = {};
        _cleanup_(proto_error_done) struct proto_error e = {};
        uint64_t u;
        int r;

        assert(ret);

        r = message_parse(buf, len, PROTO_ERROR, NULL, &m, reason, reason_size);
        if (r < 0)
                return r;
        r = required_u64(&m, "ERRNO", false, PROTO_ERRNO_MAX, &u, reason, reason_size);
        if (r < 0)
                return r;
        if (u == 0)
                return reject(reason, reason_size, "ERRNO of an ERROR must not be 0");
        e.error = (int) u;
        r = field_string(&m, "MESSAGE", true, &e.message, reason, reason_size);
        if (r < 0)
                return r;

        *ret = e;
        e = (struct proto_error) {};
        return 0;
}

int proto_parse_detach(const void *buf, size_t len, char *reason, size_t reason_size) {
        _cleanup_(message_done) struct message m = {};

        return message_parse(buf, len, PROTO_DETACH, NULL, &m, reason, reason_size);
}
