/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-proto.c — the VMM protocol codec (lib/proto.h), the daemon's first
 * contact with whatever a process on the host sends to its socket.  Every
 * proto_parse_* runs on each input, and what parses is formatted and parsed
 * again.
 *
 * Properties: no crash or leak; -EBADMSG (never anything else but -ENOMEM)
 * with a one-line reason that fits the buffer, is itself a valid MESSAGE=
 * value, and is cut safely in a small buffer; *ret untouched on failure; a
 * verb parser accepts only what proto_parse_verb() says is that verb; and
 * format(parse(x)) parses to the same message and formats to the same bytes
 * (the formatter never refuses what the parser accepted).
 */
#include <inttypes.h>

#include "fuzz.h"
#include "proto.h"

/* Formatting what parsed drops unknown keys and adds only the defaults of
 * absent keys ("VCPUS=0\nCLIENT=library\n", "PMU=on\n"): a message within
 * that many bytes of the limit may format past it (-EMSGSIZE), nothing else. */
#define DEFAULTS_MAX 23
#define BUF_MAX (PROTO_MSG_MAX + 64)

static void check_reason(const char *reason, const char *what) {
        char buf[PROTO_REASON_MAX + 64];
        struct proto_error e = { .error = 22, .message = (char *) reason };

        fuzz_check(strnlen(reason, PROTO_REASON_MAX) < PROTO_REASON_MAX, "%s: reason not terminated", what);
        fuzz_check(*reason, "%s: empty reason", what);
        fuzz_check(!strchr(reason, '\n'), "%s: reason has a newline: %s", what, reason);
        fuzz_check(proto_format_error(buf, sizeof(buf), &e) > 0, "%s: reason is no valid MESSAGE=: %s", what, reason);
}

/* The reason cut into a buffer of `small` bytes: terminated, nothing written
 * past it (the byte after is a canary). */
static void check_small_reason(int r, const char *cut, size_t small, const char *what) {
        fuzz_check(cut[small] == 'Z', "%s: reason overran a %zu-byte buffer", what, small);
        if (r == -EBADMSG)
                fuzz_check(strnlen(cut, small) < small, "%s: reason in %zu bytes not terminated", what, small);
}

/* Parse x twice: with a full reason buffer and with a small one.  Checks
 * the error contract; returns the parser's answer. */
#define PARSE(fn, data, size, ret, what)                                                        \
        ({                                                                                      \
                char _reason[PROTO_REASON_MAX], _cut[17];                                      \
                size_t _small = 1 + (size) % 16;                                                \
                __typeof__(*(ret)) _untouched;                                                  \
                int _r, _r2;                                                                    \
                memset((ret), 0xa5, sizeof(*(ret)));                                            \
                _untouched = *(ret);                                                            \
                _reason[0] = 0;                                                                 \
                _r = fn((data), (size), (ret), _reason, sizeof(_reason));                       \
                fuzz_check(_r == 0 || _r == -EBADMSG || _r == -ENOMEM, "%s returned %d", what, _r); \
                if (_r < 0)                                                                     \
                        fuzz_check(memcmp((ret), &_untouched, sizeof(*(ret))) == 0,             \
                                   "%s wrote *ret on failure", what);                           \
                if (_r == -EBADMSG)                                                             \
                        check_reason(_reason, what);                                            \
                memset(_cut, 'Z', sizeof(_cut));                                                \
                __typeof__(*(ret)) _other;                                                      \
                _r2 = fn((data), (size), &_other, _cut, _small);                                \
                fuzz_check(_r2 == _r || _r2 == -ENOMEM || _r == -ENOMEM,                        \
                           "%s: %d with a %zu-byte reason buffer, %d with a full one", what, _r2, _small, _r); \
                check_small_reason(_r2, _cut, _small, what);                                   \
                if (_r2 == 0)                                                                   \
                        done_##fn(&_other);                                                     \
                _r;                                                                             \
        })

static void done_proto_parse_verb(enum proto_verb *v) {}
static void done_proto_parse_attach(struct proto_attach *m) { proto_attach_done(m); }
static void done_proto_parse_apply(struct proto_apply *m) { proto_apply_done(m); }
static void done_proto_parse_applied(struct proto_applied *m) {}
static void done_proto_parse_error(struct proto_error *m) { proto_error_done(m); }

static void check_attach_equal(const struct proto_attach *a, const struct proto_attach *b) {
        fuzz_check(a->vmfd == b->vmfd && a->vcpus == b->vcpus && a->client == b->client &&
                   streq_ptr(a->name, b->name) && streq_ptr(a->uuid, b->uuid) && a->n_labels == b->n_labels,
                   "ATTACH changed in a round trip");
        for (size_t i = 0; i < a->n_labels; i++)
                fuzz_check(streq(a->labels[i].key, b->labels[i].key) && streq(a->labels[i].value, b->labels[i].value),
                           "label %zu changed in a round trip", i);
}

static void check_apply_equal(const struct proto_apply *a, const struct proto_apply *b) {
        fuzz_check(streq_ptr(a->vm, b->vm) && a->serial == b->serial && streq_ptr(a->profile, b->profile) &&
                   a->pmu_off == b->pmu_off && a->action == b->action && a->flags == b->flags &&
                   a->fixed_counter_bitmap == b->fixed_counter_bitmap && a->n_events == b->n_events,
                   "APPLY changed in a round trip");
        for (size_t i = 0; i < a->n_events; i++)
                fuzz_check(a->events[i] == b->events[i], "event %zu changed in a round trip", i);
}

/* format(m) parses back to m and formats to the same bytes. */
#define ROUND_TRIP(format_call, parse_fn, m, equal, done, what)                                 \
        do {                                                                                    \
                static char _b1[BUF_MAX], _b2[BUF_MAX];                                         \
                __typeof__(*(m)) _back;                                                         \
                int _l1, _l2, _rp;                                                              \
                _l1 = format_call(_b1, sizeof(_b1), (m));                                       \
                if (_l1 == -EMSGSIZE && size > PROTO_MSG_MAX - DEFAULTS_MAX)                    \
                        break;                                                                  \
                fuzz_check(_l1 > 0, "%s: formatting what parsed gave %d", what, _l1);           \
                _rp = PARSE(parse_fn, _b1, (size_t) _l1, &_back, what " (formatted)");          \
                fuzz_check(_rp == 0, "%s: the formatted message does not parse: %.*s", what, _l1, _b1); \
                equal((m), &_back);                                                             \
                _l2 = format_call(_b2, sizeof(_b2), &_back);                                    \
                fuzz_check(_l2 == _l1 && memcmp(_b1, _b2, (size_t) _l1) == 0,                   \
                           "%s: formatting is not stable", what);                               \
                done(&_back);                                                                   \
        } while (0)

static int format_applied(char *buf, size_t size, const struct proto_applied *m) {
        return proto_format_applied(buf, size, m);
}

static void applied_equal(const struct proto_applied *a, const struct proto_applied *b) {
        fuzz_check(a->serial == b->serial && a->error == b->error && a->has_pmu_error == b->has_pmu_error &&
                   a->pmu_error == b->pmu_error, "APPLIED changed in a round trip");
}

static void error_equal(const struct proto_error *a, const struct proto_error *b) {
        fuzz_check(a->error == b->error && streq_ptr(a->message, b->message), "ERROR changed in a round trip");
}

static void nothing(void *p) {}

/* DETACH carries nothing: its parser has no *ret. */
static int parse_detach(const void *buf, size_t len, int *ret, char *reason, size_t size) {
        int r = proto_parse_detach(buf, len, reason, size);

        if (r == 0)
                *ret = 0;
        return r;
}
static void done_parse_detach(int *p) {}

static void fuzz_sanitize(const uint8_t *data, size_t size) {
        _cleanup_free_ char *src = NULL, *dst = NULL;
        size_t dst_size = 1 + size % 301;
        char buf[PROTO_MSG_MAX];
        struct proto_error e = { .error = 1 };

        src = strndup((const char *) data, size);
        dst = malloc(dst_size);
        if (!src || !dst)
                return;
        proto_sanitize_message(dst, dst_size, src);
        fuzz_check(strnlen(dst, dst_size) < dst_size, "sanitized message not terminated");
        e.message = dst;
        fuzz_check(proto_format_error(buf, sizeof(buf), &e) > 0, "sanitized message is no valid MESSAGE=");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        enum proto_verb verb;
        struct proto_attach attach;
        struct proto_apply apply;
        struct proto_applied applied;
        struct proto_error error;
        int r, detach, rv;

        rv = PARSE(proto_parse_verb, data, size, &verb, "verb");

        r = PARSE(proto_parse_attach, data, size, &attach, "ATTACH");
        if (r == 0) {
                fuzz_check(rv == 0 && verb == PROTO_ATTACH, "ATTACH parsed, verb says %d", rv == 0 ? (int) verb : rv);
                fuzz_check(attach.vmfd >= 0 && attach.n_labels <= PROTO_LABELS_MAX, "ATTACH fields out of range");
                for (size_t i = 1; i < attach.n_labels; i++)
                        fuzz_check(strcmp(attach.labels[i - 1].key, attach.labels[i].key) < 0, "labels not sorted and unique");
                ROUND_TRIP(proto_format_attach, proto_parse_attach, &attach, check_attach_equal, proto_attach_done, "ATTACH");
                proto_attach_done(&attach);
        }

        r = PARSE(proto_parse_apply, data, size, &apply, "APPLY");
        if (r == 0) {
                fuzz_check(rv == 0 && verb == PROTO_APPLY, "APPLY parsed, verb says %d", rv == 0 ? (int) verb : rv);
                fuzz_check(apply.action <= 1 && apply.n_events <= PROTO_EVENTS_MAX, "APPLY fields out of range");
                ROUND_TRIP(proto_format_apply, proto_parse_apply, &apply, check_apply_equal, proto_apply_done, "APPLY");
                proto_apply_done(&apply);
        }

        r = PARSE(proto_parse_applied, data, size, &applied, "APPLIED");
        if (r == 0) {
                fuzz_check(rv == 0 && verb == PROTO_APPLIED, "APPLIED parsed, verb says %d", rv == 0 ? (int) verb : rv);
                fuzz_check(applied.error >= 0 && applied.error <= PROTO_ERRNO_MAX, "ERRNO=%d", applied.error);
                ROUND_TRIP(format_applied, proto_parse_applied, &applied, applied_equal, nothing, "APPLIED");
        }

        r = PARSE(proto_parse_error, data, size, &error, "ERROR");
        if (r == 0) {
                fuzz_check(rv == 0 && verb == PROTO_ERROR, "ERROR parsed, verb says %d", rv == 0 ? (int) verb : rv);
                fuzz_check(error.error > 0 && error.error <= PROTO_ERRNO_MAX, "ERRNO=%d", error.error);
                ROUND_TRIP(proto_format_error, proto_parse_error, &error, error_equal, proto_error_done, "ERROR");
                proto_error_done(&error);
        }

        r = PARSE(parse_detach, data, size, &detach, "DETACH");
        if (r == 0) {
                char buf[64];
                int l = proto_format_detach(buf, sizeof(buf));

                fuzz_check(rv == 0 && verb == PROTO_DETACH, "DETACH parsed, verb says %d", rv == 0 ? (int) verb : rv);
                fuzz_check(l > 0 && proto_parse_detach(buf, (size_t) l, NULL, 0) == 0, "formatted DETACH does not parse");
        }

        fuzz_sanitize(data, size);
        return 0;
}
