/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proto-format.c — typed VMM protocol messages -> datagram text.  Each
 * formatter checks its fields against the same rules the parser applies
 * (proto-syntax.c) and refuses with -EINVAL rather than emit a message the
 * peer would answer with ERROR.  libc only.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "proto.h"
#include "proto-syntax.h"
#include "util.h"

/* Formatting: append to a bounded buffer, counting what would have been
 * written so the caller can tell "buffer too small" from "over 16 KiB". */
struct writer {
        char *buf;
        size_t size;
        size_t n;
};

/* Append n bytes; past the buffer's end they are counted only, and
 * writer_finish() says -ENOBUFS. */
static void write_bytes(struct writer *w, const char *p, size_t n) {
        if (w->n + n <= w->size)
                memcpy(w->buf + w->n, p, n);
        w->n += n;
}

static void write_str(struct writer *w, const char *s) {
        write_bytes(w, s, strlen(s));
}

/* A number, decimal or 0x<hex>, as "%" PRIu64 or "0x%" PRIx64 would write
 * it, preceded by a comma unless first: by hand, since vsnprintf() per
 * field was most of the cost of formatting a message (an APPLY carries up
 * to PROTO_EVENTS_MAX events). */
static void write_number(struct writer *w, bool comma, bool hex, uint64_t v) {
        char tmp[1 + 2 + 20], *p = tmp + sizeof(tmp);

        do {
                *--p = hex ? "0123456789abcdef"[v & 0xf] : (char) ('0' + v % 10);
                v = hex ? v >> 4 : v / 10;
        } while (v);
        if (hex) {
                *--p = 'x';
                *--p = '0';
        }
        if (comma)
                *--p = ',';
        write_bytes(w, p, (size_t) (tmp + sizeof(tmp) - p));
}

/* "KEY=<value>\n" */
static void write_field(struct writer *w, const char *key, const char *value) {
        write_str(w, key);
        write_bytes(w, "=", 1);
        write_str(w, value);
        write_bytes(w, "\n", 1);
}

static void write_field_number(struct writer *w, const char *key, bool hex, uint64_t v) {
        write_str(w, key);
        write_bytes(w, "=", 1);
        write_number(w, false, hex, v);
        write_bytes(w, "\n", 1);
}

/* The length; the text is NUL-terminated where the buffer has room for
 * that too (one byte more than the message). */
static int writer_finish(const struct writer *w) {
        if (w->n > PROTO_MSG_MAX)
                return -EMSGSIZE;
        if (w->n > w->size)
                return -ENOBUFS;
        if (w->n < w->size)
                w->buf[w->n] = 0;
        return (int) w->n;
}

static void write_header(struct writer *w, enum proto_verb v) {
        write_str(w, PROTO_MAGIC " ");
        write_str(w, proto_verb_table[v]);
        write_bytes(w, "\n", 1);
}

int proto_format_attach(char *buf, size_t size, const struct proto_attach *m) {
        struct writer w = { .buf = buf, .size = size };

        assert(buf || size == 0);

        if (!m || m->vmfd < 0 || (unsigned) m->client >= _PROTO_CLIENT_MAX ||
            (m->name && !proto_value_ok(m->name, false)) || (m->uuid && !proto_uuid_ok(m->uuid)) ||
            m->n_labels > PROTO_LABELS_MAX || (m->n_labels > 0 && !m->labels))
                return -EINVAL;
        for (size_t i = 0; i < m->n_labels; i++) {
                if (!proto_label_key_ok(m->labels[i].key) || !proto_value_ok(m->labels[i].value, true))
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (streq(m->labels[i].key, m->labels[j].key))
                                return -EINVAL;
        }

        write_header(&w, PROTO_ATTACH);
        write_field_number(&w, "VMFD", false, (uint64_t) m->vmfd);
        write_field_number(&w, "VCPUS", false, m->vcpus);
        if (m->name)
                write_field(&w, "NAME", m->name);
        if (m->uuid)
                write_field(&w, "UUID", m->uuid);
        write_field(&w, "CLIENT", proto_client_table[m->client]);
        for (size_t i = 0; i < m->n_labels; i++) {
                write_str(&w, "LABEL.");
                write_field(&w, m->labels[i].key, m->labels[i].value);
        }
        return writer_finish(&w);
}

int proto_format_apply(char *buf, size_t size, const struct proto_apply *m) {
        struct writer w = { .buf = buf, .size = size };

        assert(buf || size == 0);

        if (!m || m->action > 1 || m->n_events > PROTO_EVENTS_MAX || (m->n_events > 0 && !m->events) ||
            (m->vm && !proto_value_ok(m->vm, false)) || (m->profile && !proto_value_ok(m->profile, false)))
                return -EINVAL;

        write_header(&w, PROTO_APPLY);
        if (m->vm)
                write_field(&w, "VM", m->vm);
        write_field_number(&w, "SERIAL", false, m->serial);
        if (m->profile)
                write_field(&w, "PROFILE", m->profile);
        write_field(&w, "PMU", m->pmu_off ? "off" : "on");
        write_field(&w, "ACTION", m->action == 0 ? "allow" : "deny");
        write_field_number(&w, "FLAGS", false, m->flags);
        write_field_number(&w, "FIXED", true, m->fixed_counter_bitmap);
        write_str(&w, "EVENTS=");
        for (size_t i = 0; i < m->n_events; i++)
                write_number(&w, i > 0, true, m->events[i]);
        write_bytes(&w, "\n", 1);
        return writer_finish(&w);
}

int proto_format_applied(char *buf, size_t size, const struct proto_applied *m) {
        struct writer w = { .buf = buf, .size = size };

        assert(buf || size == 0);

        if (!m || m->error < 0 || m->error > PROTO_ERRNO_MAX ||
            (m->has_pmu_error && (m->pmu_error < 0 || m->pmu_error > PROTO_ERRNO_MAX)))
                return -EINVAL;

        write_header(&w, PROTO_APPLIED);
        write_field_number(&w, "SERIAL", false, m->serial);
        write_field_number(&w, "ERRNO", false, (uint64_t) m->error);
        if (m->has_pmu_error)
                write_field_number(&w, "PMU_ERRNO", false, (uint64_t) m->pmu_error);
        return writer_finish(&w);
}

int proto_format_error(char *buf, size_t size, const struct proto_error *m) {
        struct writer w = { .buf = buf, .size = size };

        assert(buf || size == 0);

        if (!m || m->error <= 0 || m->error > PROTO_ERRNO_MAX || (m->message && !proto_value_ok(m->message, true)))
                return -EINVAL;

        write_header(&w, PROTO_ERROR);
        write_field_number(&w, "ERRNO", false, (uint64_t) m->error);
        if (m->message)
                write_field(&w, "MESSAGE", m->message);
        return writer_finish(&w);
}

int proto_format_detach(char *buf, size_t size) {
        struct writer w = { .buf = buf, .size = size };

        assert(buf || size == 0);

        write_header(&w, PROTO_DETACH);
        return writer_finish(&w);
}
