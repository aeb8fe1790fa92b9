/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proto-format.c — typed VMM protocol messages -> datagram text.  Each
 * formatter checks its fields against the same rules the parser applies
 * (proto-syntax.c) and refuses with -EINVAL rather than emit a message the
 * peer would answer with ERROR.  libc only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
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

_printf_(2, 3)
static void writef(struct writer *w, const char *fmt, ...) {
        bool room = w->n < w->size;
        va_list ap;
        int l;

        va_start(ap, fmt);
        l = vsnprintf(room ? w->buf + w->n : NULL, room ? w->size - w->n : 0, fmt, ap);
        va_end(ap);
        if (l > 0)
                w->n += (size_t) l;
}

/* A comma (unless first) and 0x<hex>, as "%s0x%" PRIx64 would write it:
 * by hand, since an APPLY carries up to PROTO_EVENTS_MAX of them and
 * vsnprintf() per event was most of the cost of formatting a big one. */
static void write_event(struct writer *w, bool first, uint64_t v) {
        char tmp[2 + 2 + 16], *p = tmp + sizeof(tmp);
        size_t l;

        do {
                *--p = "0123456789abcdef"[v & 0xf];
                v >>= 4;
        } while (v);
        *--p = 'x';
        *--p = '0';
        if (!first)
                *--p = ',';
        l = (size_t) (tmp + sizeof(tmp) - p);
        if (w->n + l <= w->size)
                memcpy(w->buf + w->n, p, l);    /* else: counted only, writer_finish() says -ENOBUFS */
        w->n += l;
}

static int writer_finish(const struct writer *w) {
        if (w->n > PROTO_MSG_MAX)
                return -EMSGSIZE;
        if (w->n > w->size)
                return -ENOBUFS;
        return (int) w->n;
}

static void write_header(struct writer *w, enum proto_verb v) {
        writef(w, PROTO_MAGIC " %s\n", proto_verb_table[v]);
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
        writef(&w, "VMFD=%d\nVCPUS=%u\n", m->vmfd, m->vcpus);
        if (m->name)
                writef(&w, "NAME=%s\n", m->name);
        if (m->uuid)
                writef(&w, "UUID=%s\n", m->uuid);
        writef(&w, "CLIENT=%s\n", proto_client_table[m->client]);
        for (size_t i = 0; i < m->n_labels; i++)
                writef(&w, "LABEL.%s=%s\n", m->labels[i].key, m->labels[i].value);
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
                writef(&w, "VM=%s\n", m->vm);
        writef(&w, "SERIAL=%" PRIu64 "\n", m->serial);
        if (m->profile)
                writef(&w, "PROFILE=%s\n", m->profile);
        writef(&w, "PMU=%s\nACTION=%s\nFLAGS=%" PRIu32 "\nFIXED=0x%" PRIx32 "\nEVENTS=",
               m->pmu_off ? "off" : "on", m->action == 0 ? "allow" : "deny",
               m->flags, m->fixed_counter_bitmap);
        for (size_t i = 0; i < m->n_events; i++)
                write_event(&w, i == 0, m->events[i]);
        writef(&w, "\n");
        return writer_finish(&w);
}

int proto_format_applied(char *buf, size_t size, const struct proto_applied *m) {
        struct writer w = { .buf = buf, .size = size };

        assert(buf || size == 0);

        if (!m || m->error < 0 || m->error > PROTO_ERRNO_MAX ||
            (m->has_pmu_error && (m->pmu_error < 0 || m->pmu_error > PROTO_ERRNO_MAX)))
                return -EINVAL;

        write_header(&w, PROTO_APPLIED);
        writef(&w, "SERIAL=%" PRIu64 "\nERRNO=%d\n", m->serial, m->error);
        if (m->has_pmu_error)
                writef(&w, "PMU_ERRNO=%d\n", m->pmu_error);
        return writer_finish(&w);
}

int proto_format_error(char *buf, size_t size, const struct proto_error *m) {
        struct writer w = { .buf = buf, .size = size };

        assert(buf || size == 0);

        if (!m || m->error <= 0 || m->error > PROTO_ERRNO_MAX || (m->message && !proto_value_ok(m->message, true)))
                return -EINVAL;

        write_header(&w, PROTO_ERROR);
        writef(&w, "ERRNO=%d\n", m->error);
        if (m->message)
                writef(&w, "MESSAGE=%s\n", m->message);
        return writer_finish(&w);
}

int proto_format_detach(char *buf, size_t size) {
        struct writer w = { .buf = buf, .size = size };

        assert(buf || size == 0);

        write_header(&w, PROTO_DETACH);
        return writer_finish(&w);
}
