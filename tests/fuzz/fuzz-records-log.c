/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-records-log.c — records_log_parse() (daemon/registry/records.h),
 * the framing of the log <runtime dir>/records that holds the VM records,
 * read back at every start as untrusted input.  The input is the log's
 * bytes.
 *
 * Properties: no crash, hang, leak or undefined behaviour; the result is
 * 0, -ENODATA or -EBADMSG (or what the entry callback returned), with
 * *ret_good_len at most the input's length, the whole of it for 0; the
 * framing is canonical, so the entries given, written out again ("R <id>
 * <len>\n" and the body, "G <id>\n"), are exactly the bytes before
 * *ret_good_len; each id is "<pid>-<fd>" with pid 1 to INT_MAX and fd 0
 * to INT_MAX, each body at most RECORD_MAX bytes and inside the input;
 * what follows *ret_good_len, parsed alone, fails the same way at its
 * first byte; and the parse agrees with an oracle written apart from it,
 * from the format (records.h), on how many entries there are and which
 * error ends them.  Every body is then given to record_parse() too (its
 * own properties are fuzz-record.c's).
 */
#include <limits.h>

#include "compile.h"
#include "fuzz.h"
#include "records.h"

struct out {
        char *buf;
        size_t size, n_entries;
        FILE *f;
        const char *input;
        size_t input_len;
};

static int on_entry(const char *id, const char *body, size_t len, void *userdata) {
        struct out *o = userdata;
        long long pid, fd;
        int n = 0;

        fuzz_check(sscanf(id, "%lld-%lld%n", &pid, &fd, &n) == 2 && id[n] == 0, "id \"%s\"", id);
        fuzz_check(pid >= 1 && pid <= INT_MAX && fd >= 0 && fd <= INT_MAX, "id \"%s\" out of range", id);
        if (body) {
                fuzz_check(len <= RECORD_MAX, "a body of %zu bytes", len);
                fuzz_check(body >= o->input && body + len <= o->input + o->input_len, "a body outside the input");
                fprintf(o->f, "R %s %zu\n", id, len);
                fwrite(body, 1, len, o->f);
        } else {
                fuzz_check(len == 0, "a G entry with a length");
                fprintf(o->f, "G %s\n", id);
        }
        o->n_entries++;
        return 0;
}

/* The oracle: a number in its one spelling at *p, within [min, max]. */
static bool oracle_number(const char **p, const char *end, long long min, long long max, long long *ret) {
        const char *s = *p;
        long long x = 0;

        if (s == end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9'))
                return false;
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
                x = x * 10 + (*s - '0');
                if (x > max)
                        return false;
        }
        if (x < min)
                return false;
        *p = s;
        *ret = x;
        return true;
}

/* The oracle: entries up to the first error; 0, -ENODATA or -EBADMSG.
 * A header is a whole line (up to its newline); with no newline left,
 * the rest is torn when some ending makes it a good header. */
static int oracle(const char *buf, size_t len, size_t *ret_n) {
        const char *p = buf, *end = buf + len;

        *ret_n = 0;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p)), *q = p + 2;
                const char *line_end = nl ? nl : end;
                long long pid, fd, body = 0;
                bool r = *p == 'R';

                if (!nl) {
                        /* Complete it with what a header may still need and see. */
                        static const char *const endings[] = { "\n", "1\n", "0\n", "-0\n", " 0\n", "-0 0\n", "0 0\n",
                                                               " 1-0\n", " 1-0 0\n", "1-0\n", "1-0 0\n" };

                        for (size_t i = 0; i < ELEMENTSOF(endings); i++) {
                                size_t k = (size_t) (end - p), e = strlen(endings[i]), n;
                                _cleanup_free_ char *t = malloc(k + e);

                                if (!t)
                                        abort();
                                memcpy(t, p, k);        /* NUL bytes and all */
                                memcpy(t + k, endings[i], e);
                                /* the completed header, alone, must be one good entry (G) or a
                                 * header whose body is all that is missing (R) */
                                if (oracle(t, k + e, &n) != -EBADMSG && (n == 1 || *p == 'R'))
                                        return -ENODATA;
                        }
                        return -EBADMSG;
                }
                if ((*p != 'R' && *p != 'G') || line_end - p < 2 || p[1] != ' ')
                        return -EBADMSG;
                if (!oracle_number(&q, line_end, 1, INT_MAX, &pid) || q == line_end || *q++ != '-' ||
                    !oracle_number(&q, line_end, 0, INT_MAX, &fd))
                        return -EBADMSG;
                if (r && (q == line_end || *q++ != ' ' || !oracle_number(&q, line_end, 0, RECORD_MAX, &body)))
                        return -EBADMSG;
                if (q != line_end)
                        return -EBADMSG;
                if (end - (nl + 1) < body)
                        return -ENODATA;
                p = nl + 1 + body;
                (*ret_n)++;
        }
        return 0;
}

static int on_entry_count(const char *id, const char *body, size_t len, void *userdata) {
        (*(size_t *) userdata)++;
        return 0;
}

static int on_body(const char *id, const char *body, size_t len, void *userdata) {
        struct vm vm = {};
        enum vm_state state;
        int k;

        if (!body)
                return 0;
        k = record_parse(body, len, &vm, &state);
        fuzz_check(k == 0 || k == -EINVAL || k == -ENOMEM, "record_parse() returned %d", k);
        free(vm.name);
        free(vm.uuid);
        strv_free(vm.labels);
        free(vm.profile);
        compiled_filter_unref(vm.filter);
        free(vm.last_error);
        free(vm.override);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        struct out o = { .input = buf, .input_len = size };
        size_t good = SIZE_MAX, good_rest = SIZE_MAX, n_oracle = 0, n_rest = 0;
        int r, r_rest, r_oracle;

        o.f = open_memstream(&o.buf, &o.size);
        if (!o.f)
                return 0;
        r = records_log_parse(buf, size, on_entry, &o, &good);
        if (fclose(o.f) != 0)
                abort();
        fuzz_check(r == 0 || r == -ENODATA || r == -EBADMSG, "returned %d", r);
        fuzz_check(good <= size, "good length %zu of %zu", good, size);
        fuzz_check(r != 0 || good == size, "0 with %zu of %zu bytes used", good, size);
        fuzz_check(o.size == good && memcmp(o.buf, buf, good) == 0,
                   "the entries written out again are not the %zu bytes used", good);
        free(o.buf);

        r_oracle = oracle(buf, size, &n_oracle);
        fuzz_check(r == r_oracle && o.n_entries == n_oracle, "%d after %zu entries, the oracle says %d after %zu",
                   r, o.n_entries, r_oracle, n_oracle);

        if (r < 0) {
                r_rest = records_log_parse(buf + good, size - good, on_entry_count, &n_rest, &good_rest);
                fuzz_check(r_rest == r && good_rest == 0 && n_rest == 0, "the rest alone: %d at %zu", r_rest, good_rest);
        }
        (void) records_log_parse(buf, size, on_body, NULL, NULL);
        return 0;
}
