/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-record.c — record_parse() (daemon/registry/records.h), the reader of
 * the KEY=VALUE record the daemon keeps of each VM in the log
 * <runtime dir>/records and reads back, as untrusted input, at every
 * start.  The input is the record's bytes.
 *
 * Properties: no crash, leak or undefined behaviour; 0, -EINVAL or -ENOMEM,
 * and *ret_state untouched on failure; and the parser agrees with an oracle
 * written apart from it, from the format (records.h, what write_record()
 * writes, test-records.c): a record is lines of KEY=VALUE (no NUL; the last
 * line may lack its newline), every number unsigned decimal or 0x hex in
 * its one spelling (no sign, no blank, no decimal leading zero, no second 0x)
 * within its field's range, STATE one of the seven states, EVENTS= empty
 * or words joined by commas, the strings (NAME, UUID, LABEL, PROFILE,
 * OVERRIDE, PROFILE_SOURCE) UTF-8 without control characters or
 * noncharacters (a LABEL with its KEY=, a PROFILE_SOURCE that fits its
 * field), LAST_ERROR any text, kept with what is no UTF-8 or a control
 * character as \xNN and cut to VM_LAST_ERROR_MAX bytes, the last line of a key the one that counts
 * (LABEL= lines add up), unknown keys ignored; anything else is -EINVAL.
 * What parses is then restored as records_restore() does it (state and
 * name into the registry: found by its NAME and UUID), written by the
 * daemon's own writer (records_mark() + records_flush(), an entry of the
 * log in a directory on /dev/shm), split by records_log_parse() and parsed
 * again: the same VM, so the writer is total on whatever the reader
 * accepts; records_forget() then says it gone.  (The log's framing is
 * fuzzed by fuzz-records-log.c.)  registry_done() frees everything the
 * parser allocated.
 */
#include <inttypes.h>

#include "compile.h"
#include "fileio.h"
#include "fuzz.h"
#include "records.h"

static char *dir;
static sd_event *event;

static void cleanup(void) {
        if (dir) {
                _cleanup_free_ char *log = NULL;

                if (asprintf(&log, "%s/records", dir) >= 0)
                        (void) unlink(log);
                (void) rmdir(dir);
        }
        free(dir);
        sd_event_unref(event);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        const char *tmp = getenv("TMPDIR");

        /* tmpfs when there is one: a record is written for every input. */
        if (!tmp)
                tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        if (asprintf(&dir, "%s/fuzz-record.XXXXXX", tmp) < 0 || !mkdtemp(dir)) {
                fprintf(stderr, "fuzz-record: cannot make a temporary directory in %s: %m\n", tmp);
                abort();
        }
        if (sd_event_new(&event) < 0) {
                fprintf(stderr, "fuzz-record: cannot make an event loop\n");
                abort();
        }
        atexit(cleanup);
        return 0;
}

/* ---- the oracle: the format, from its description ---------------------- */

static const char *const states[] = {
        "detected", "attached", "filtered", "adopted", "failed", "unmanaged", "detached",
};

struct line {
        const char *key, *value;
};

/* The one spelling of a number: "0", [1-9][0-9]*, or 0x/0X and hex digits
 * (leading zeros there, as strtoull reads them); at most max. */
static bool number_ok(const char *v, uint64_t max, uint64_t *ret) {
        uint64_t x = 0;
        unsigned base = 10;

        if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
                base = 16;
                v += 2;
        } else if (v[0] == '0' && v[1])
                return false;
        if (!*v)
                return false;
        for (; *v; v++) {
                unsigned d;

                if (*v >= '0' && *v <= '9')
                        d = (unsigned) (*v - '0');
                else if (base == 16 && *v >= 'a' && *v <= 'f')
                        d = (unsigned) (*v - 'a' + 10);
                else if (base == 16 && *v >= 'A' && *v <= 'F')
                        d = (unsigned) (*v - 'A' + 10);
                else
                        return false;
                if (x > (UINT64_MAX - d) / base)
                        return false;
                x = x * base + d;
        }
        if (x > max)
                return false;
        *ret = x;
        return true;
}

/* EVENTS=: how many words, or -1 if it is not a list of numbers.  A word
 * the writer never writes (over 23 characters) is refused. */
static ssize_t events_count(const char *v, uint64_t *out) {
        ssize_t n = 0;

        if (!*v)
                return 0;
        for (;;) {
                size_t l = strcspn(v, ",");
                char word[24];
                uint64_t x;

                if (l == 0 || l >= sizeof(word))
                        return -1;
                memcpy(word, v, l);
                word[l] = 0;
                if (!number_ok(word, UINT64_MAX, &x))
                        return -1;
                if (out)
                        out[n] = x;
                n++;
                if (!v[l])
                        return n;
                v += l + 1;
        }
}

static uint64_t max_of(const char *key) {
        static const struct {
                const char *key;
                uint64_t max;
        } numbers[] = {
                { "STARTTIME", UINT64_MAX }, { "VCPUS", UINT32_MAX }, { "SERIAL", UINT64_MAX },
                { "APPLIED_USEC", UINT64_MAX }, { "LAST_ERRNO", 4095 }, { "OVERRIDE_RUNTIME", 1 },
                { "IN_FORCE", 1 },
                { "PMU_OFF", 1 }, { "ACTION", 1 }, { "FLAGS", UINT32_MAX }, { "FIXED", UINT32_MAX },
        };

        for (size_t i = 0; i < ELEMENTSOF(numbers); i++)
                if (streq(key, numbers[i].key))
                        return numbers[i].max;
        return 0;
}

static bool is_number_key(const char *key) {
        return max_of(key) > 0;
}

/* The length of the well-formed UTF-8 sequence at s, as Unicode's table
 * 3-7 lists them, or 0; noncharacters (U+FDD0..U+FDEF, U+xxFFFE/F), which
 * D-Bus refuses, count as not well-formed. */
static size_t seq_len(const unsigned char *s) {
        unsigned char b = s[0], lo = 0x80, hi = 0xbf;
        uint32_t cp;
        size_t more;

        if (b < 0x80)
                return 1;
        if (b >= 0xc2 && b <= 0xdf)
                more = 1, cp = b & 0x1f;
        else if (b == 0xe0)
                more = 2, lo = 0xa0, cp = b & 0x0f;
        else if (b == 0xed)
                more = 2, hi = 0x9f, cp = b & 0x0f;
        else if (b >= 0xe1 && b <= 0xef)
                more = 2, cp = b & 0x0f;
        else if (b == 0xf0)
                more = 3, lo = 0x90, cp = b & 0x07;
        else if (b == 0xf4)
                more = 3, hi = 0x8f, cp = b & 0x07;
        else if (b >= 0xf1 && b <= 0xf3)
                more = 3, cp = b & 0x07;
        else
                return 0;
        for (size_t i = 1; i <= more; i++) {
                if (s[i] < lo || s[i] > hi)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
                lo = 0x80, hi = 0xbf;
        }
        if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe)
                return 0;
        return more + 1;
}

static bool utf8_ok(const unsigned char *s) {
        for (size_t l; *s; s += l)
                if ((l = seq_len(s)) == 0)
                        return false;
        return true;
}

/* LAST_ERROR= as it is kept: each byte of what is no UTF-8, and of a
 * control character (C0, DEL, C1), as \xNN.  Caller frees. */
static char *escaped(const char *v) {
        const unsigned char *s = (const unsigned char *) v;
        char *out = malloc(strlen(v) * 4 + 1), *o = out;

        if (!out)
                abort();
        while (*s) {
                size_t l = seq_len(s);
                bool control = *s < 0x20 || *s == 0x7f || (l == 2 && s[0] == 0xc2 && s[1] < 0xa0);

                if (l == 0 || control) {
                        for (size_t i = 0; i < (l ? l : 1); i++)
                                o += sprintf(o, "\\x%02x", s[i]);
                        s += l ? l : 1;
                } else {
                        memcpy(o, s, l);
                        o += l;
                        s += l;
                }
        }
        *o = 0;
        return out;
}

/* The strings the daemon writes: UTF-8 with no control character; a
 * label KEY=VALUE with a key; a profile source that fits its field. */
static bool text_ok(const char *key, const char *v) {
        static const char *const texts[] = {
                "NAME", "UUID", "LABEL", "PROFILE", "OVERRIDE", "PROFILE_SOURCE",
        };
        bool text = false;

        for (size_t i = 0; i < ELEMENTSOF(texts); i++)
                text = text || streq(key, texts[i]);
        if (!text)
                return true;
        for (const unsigned char *c = (const unsigned char *) v; *c; c++)
                if (*c < 0x20 || *c == 0x7f)
                        return false;
        if (!utf8_ok((const unsigned char *) v))
                return false;
        if (streq(key, "LABEL") && (v[0] == '=' || !strchr(v, '=')))
                return false;
        if (streq(key, "PROFILE_SOURCE") && strlen(v) >= sizeof(((struct vm *) NULL)->profile_source))
                return false;
        return true;
}

/* Split copy (NUL-terminated, no NUL inside) into lines: false if one has
 * no '=' or a value is not what its key takes. */
static bool oracle_lines(char *copy, struct line **ret, size_t *ret_n) {
        struct line *lines = NULL;
        size_t n = 0;
        char *p = copy;

        while (*p) {
                char *nl = strchr(p, '\n'), *eq;
                struct line *l;

                if (nl)
                        *nl = 0;
                eq = strchr(p, '=');
                if (!eq) {
                        free(lines);
                        return false;
                }
                *eq = 0;
                l = reallocarray(lines, n + 1, sizeof(*lines));
                if (!l)
                        abort();
                lines = l;
                lines[n++] = (struct line) { p, eq + 1 };
                if (!nl)
                        break;
                p = nl + 1;
        }
        *ret = lines;
        *ret_n = n;

        for (size_t i = 0; i < n; i++) {
                const char *k = lines[i].key, *v = lines[i].value;
                uint64_t x;
                bool ok = true;

                if (is_number_key(k))
                        ok = number_ok(v, max_of(k), &x);
                else if (streq(k, "EVENTS"))
                        ok = events_count(v, NULL) >= 0;
                else if (streq(k, "STATE")) {
                        ok = false;
                        for (size_t s = 0; s < ELEMENTSOF(states); s++)
                                ok = ok || streq(v, states[s]);
                } else
                        ok = text_ok(k, v);
                if (!ok)
                        return false;
        }
        /* Every record the writer writes has them: one without was cut short. */
        bool starttime = false, state = false;

        for (size_t i = 0; i < n; i++) {
                starttime = starttime || streq(lines[i].key, "STARTTIME");
                state = state || streq(lines[i].key, "STATE");
        }
        return starttime && state;
}

/* The value of the last line of key, or NULL. */
static const char *last(const struct line *lines, size_t n, const char *key) {
        for (size_t i = n; i > 0; i--)
                if (streq(lines[i - 1].key, key))
                        return lines[i - 1].value;
        return NULL;
}

static uint64_t last_number(const struct line *lines, size_t n, const char *key) {
        const char *v = last(lines, n, key);
        uint64_t x = 0;

        if (v)
                fuzz_check(number_ok(v, max_of(key), &x), "%s=%s passed the oracle and then not", key, v);
        return x;
}

#define CHECK_STR(field, key)                                                              \
        fuzz_check(streq_ptr(vm->field, last(lines, n, key)), "%s=: \"%s\" parsed as \"%s\"", \
                   key, strna(last(lines, n, key)), strna(vm->field))
#define CHECK_NUM(field, key)                                                              \
        fuzz_check((uint64_t) (field) == last_number(lines, n, key), "%s=: %" PRIu64 " parsed as %" PRIu64, \
                   key, last_number(lines, n, key), (uint64_t) (field))

static void check_oracle(const struct vm *vm, enum vm_state state, const struct line *lines, size_t n) {
        const char *v, *client = last(lines, n, "CLIENT");
        const struct compiled_filter *f = vm->filter;
        size_t n_labels = 0;
        char source[sizeof(vm->profile_source)] = "";

        v = last(lines, n, "STATE");
        fuzz_check((unsigned) state < _VM_STATE_MAX && (unsigned) state < ELEMENTSOF(states),
                   "state %d out of range", (int) state);
        fuzz_check(streq(states[state], v ?: "detected"), "STATE=%s parsed as %s", strna(v), states[state]);
        fuzz_check(streq(vm_state_to_string(state), states[state]), "state %d is \"%s\" here, \"%s\" in registry.c",
                   (int) state, states[state], vm_state_to_string(state));

        CHECK_NUM(vm->starttime, "STARTTIME");
        CHECK_NUM(vm->vcpus, "VCPUS");
        CHECK_NUM(vm->serial_pending, "SERIAL");
        CHECK_NUM(vm->applied_usec, "APPLIED_USEC");
        CHECK_NUM(vm->last_errno, "LAST_ERRNO");
        CHECK_NUM(vm->override_runtime, "OVERRIDE_RUNTIME");
        /* IN_FORCE=: as written; a record from before it, as the state showed the VM. */
        if (last(lines, n, "IN_FORCE"))
                CHECK_NUM(vm->in_force, "IN_FORCE");
        else
                fuzz_check(vm->in_force == ((state == VM_FILTERED || state == VM_ADOPTED || state == VM_DETACHED) &&
                                            vm->applied_usec != 0 && vm->last_errno == 0),
                           "no IN_FORCE=: in force %d in state %s", vm->in_force, states[state]);
        CHECK_STR(name, "NAME");
        CHECK_STR(uuid, "UUID");
        CHECK_STR(profile, "PROFILE");
        CHECK_STR(override, "OVERRIDE");
        if (last(lines, n, "LAST_ERROR")) {
                _cleanup_free_ char *want = escaped(last(lines, n, "LAST_ERROR"));

                /* At most VM_LAST_ERROR_MAX bytes, cut before the character
                 * or the \xNN that would cross it. */
                if (strlen(want) > VM_LAST_ERROR_MAX) {
                        size_t cut = VM_LAST_ERROR_MAX;

                        while ((want[cut] & 0xc0) == 0x80)
                                cut--;
                        for (size_t back = 1; back <= 3; back++)
                                if (want[cut - back] == '\\' && want[cut - back + 1] == 'x') {
                                        cut -= back;
                                        break;
                                }
                        want[cut] = 0;
                }

                fuzz_check(streq_ptr(vm->last_error, want), "LAST_ERROR=%s kept as \"%s\", expected \"%s\"",
                           last(lines, n, "LAST_ERROR"), strna(vm->last_error), want);
        } else
                fuzz_check(!vm->last_error, "no LAST_ERROR=, kept as \"%s\"", vm->last_error);

        /* CLIENT=: one of the static names, or NULL for anything else. */
        if (client && (streq(client, "library") || streq(client, "preload") || streq(client, "ptrace")))
                fuzz_check(streq_ptr(vm->client, client), "CLIENT=%s parsed as %s", client, strna(vm->client));
        else
                fuzz_check(!vm->client, "CLIENT=%s parsed as %s", strna(client), vm->client);

        /* PROFILE_SOURCE=: cut to its buffer. */
        if ((v = last(lines, n, "PROFILE_SOURCE")))
                snprintf(source, sizeof(source), "%s", v);
        fuzz_check(memchr(vm->profile_source, 0, sizeof(vm->profile_source)), "profile_source not terminated");
        fuzz_check(streq(vm->profile_source, source), "PROFILE_SOURCE=%s parsed as %s", source, vm->profile_source);

        /* LABEL=: every one, in order. */
        for (size_t i = 0; i < n; i++)
                if (streq(lines[i].key, "LABEL")) {
                        fuzz_check(vm->labels && n_labels < strv_length(vm->labels) &&
                                   streq(vm->labels[n_labels], lines[i].value),
                                   "LABEL=%s not label %zu", lines[i].value, n_labels);
                        n_labels++;
                }
        fuzz_check(strv_length(vm->labels) == n_labels, "%zu LABEL= lines, %zu labels", n_labels, strv_length(vm->labels));

        /* The filter: always there after a parse, named after the profile. */
        fuzz_check(f, "no filter");
        CHECK_NUM(f->pmu_off, "PMU_OFF");
        CHECK_NUM(f->action, "ACTION");
        CHECK_NUM(f->flags, "FLAGS");
        CHECK_NUM(f->fixed_counter_bitmap, "FIXED");
        fuzz_check(f->action <= 1, "action %" PRIu32, f->action);
        fuzz_check(streq_ptr(f->profile, vm->profile), "filter of profile \"%s\" named \"%s\"",
                   strna(vm->profile), strna(f->profile));
        fuzz_check(!f->entry_names, "a record has no entry names");
        v = last(lines, n, "EVENTS");
        if (v) {
                ssize_t k = events_count(v, NULL);
                _cleanup_free_ uint64_t *words = calloc((size_t) k + 1, sizeof(uint64_t));

                if (!words)
                        abort();
                (void) events_count(v, words);
                fuzz_check((ssize_t) f->nevents == k, "last EVENTS= line has %zd words, filter %" PRIu32 " events",
                           k, f->nevents);
                for (uint32_t i = 0; i < f->nevents; i++)
                        fuzz_check(f->events[i] == words[i], "event %" PRIu32 ": 0x%" PRIx64 " parsed as 0x%" PRIx64,
                                   i, words[i], f->events[i]);
        } else
                fuzz_check(f->nevents == 0, "%" PRIu32 " events without an EVENTS= line", f->nevents);
}

/* ---- what the daemon does with a parsed record -------------------------- */

/* records_restore(): the state and the name index.  first: the VM a
 * lookup of its NAME or UUID finds (the first registered that claims it). */
static void restore(struct registry *r, struct vm *vm, enum vm_state state, const struct vm *first) {
        size_t before = r->n_state[state] + (vm->state == state ? 0 : 1);

        registry_set_state(r, vm, state);
        registry_set_name(r, vm, TAKE_PTR(vm->name), TAKE_PTR(vm->uuid));
        fuzz_check(vm->state == state && r->n_state[state] == before, "state not counted");
        if (vm->name)
                fuzz_check(registry_lookup(r, vm->name) == first, "not found by its NAME %s", vm->name);
        if (vm->uuid)
                fuzz_check(registry_lookup(r, vm->uuid) == first, "not found by its UUID %s", vm->uuid);
}

static void check_same(const struct vm *a, enum vm_state sa, const struct vm *b, enum vm_state sb) {
        const struct compiled_filter *fa = a->filter, *fb = b->filter;

        fuzz_check(sa == sb, "state %s read back as %s", vm_state_to_string(sa), vm_state_to_string(sb));
        fuzz_check(a->starttime == b->starttime && a->vcpus == b->vcpus && a->serial_pending == b->serial_pending &&
                   a->applied_usec == b->applied_usec && a->last_errno == b->last_errno,
                   "a number read back different");
        fuzz_check(streq_ptr(a->name, b->name) && streq_ptr(a->uuid, b->uuid), "NAME \"%s\" UUID \"%s\" read back as \"%s\" \"%s\"",
                   strna(a->name), strna(a->uuid), strna(b->name), strna(b->uuid));
        fuzz_check(a->client == b->client, "CLIENT %s read back as %s", strna(a->client), strna(b->client));
        fuzz_check(strv_length(a->labels) == strv_length(b->labels), "%zu labels read back as %zu",
                   strv_length(a->labels), strv_length(b->labels));
        for (size_t i = 0; i < strv_length(a->labels); i++)
                fuzz_check(streq(a->labels[i], b->labels[i]), "label \"%s\" read back as \"%s\"", a->labels[i], b->labels[i]);
        fuzz_check(streq_ptr(a->profile, b->profile), "PROFILE \"%s\" read back as \"%s\"", strna(a->profile), strna(b->profile));
        /* Written with its profile only: alone it means nothing. */
        fuzz_check(streq(a->profile ? a->profile_source : "", b->profile_source),
                   "PROFILE_SOURCE \"%s\" read back as \"%s\"", a->profile_source, b->profile_source);
        fuzz_check(streq_ptr(a->override, b->override), "OVERRIDE \"%s\" read back as \"%s\"",
                   strna(a->override), strna(b->override));
        fuzz_check((a->override && a->override_runtime) == b->override_runtime, "OVERRIDE_RUNTIME read back different");
        fuzz_check(streq_ptr(a->last_error, b->last_error), "LAST_ERROR \"%s\" read back as \"%s\"",
                   strna(a->last_error), strna(b->last_error));
        fuzz_check(fa && fb && fa->pmu_off == fb->pmu_off && fa->action == fb->action && fa->flags == fb->flags &&
                   fa->fixed_counter_bitmap == fb->fixed_counter_bitmap && streq_ptr(fa->profile, fb->profile),
                   "the filter read back different");
        fuzz_check(fa->nevents == fb->nevents, "%" PRIu32 " events read back as %" PRIu32, fa->nevents, fb->nevents);
        for (uint32_t i = 0; i < fa->nevents; i++)
                fuzz_check(fa->events[i] == fb->events[i], "event %" PRIu32 " read back different", i);
}

/* The last entry of one id in a log (records_log_parse()). */
struct last_entry {
        const char *id;
        const char *body;
        size_t len;
        bool seen;
};

static int on_entry(const char *id, const char *body, size_t len, void *userdata) {
        struct last_entry *e = userdata;

        if (streq(id, e->id))
                *e = (struct last_entry) { e->id, body, len, true };
        return 0;
}

/* Write vm's record with the daemon's writer (one entry appended to the
 * log), parse it into a second VM. */
static void round_trip(struct registry *r, struct vm *vm, enum vm_state state, size_t size) {
        struct records rec;
        _cleanup_free_ char *path = NULL, *buf = NULL, *body = NULL;
        struct last_entry e = { vm->id };
        struct vm *back;
        enum vm_state back_state;
        size_t len;
        int k;

        fuzz_check(records_init(&rec, r, event, dir) == 0, "records_init");
        path = strdup(rec.path);
        if (!path)
                abort();
        records_mark(&rec, vm);
        records_flush(&rec);
        /* At most the fixed lines, the lines written by default and each
         * event word as 0x hex (2 bytes more than its shortest spelling,
         * "1,"): twice the input and some, the entry's header, and the
         * LAST_ERROR escaped (4 bytes a byte, VM_LAST_ERROR_MAX of them).
         * read_file_bounded() allocates the bound. */
        k = read_file_bounded(path, 2 * size + 4096 + 4 * VM_LAST_ERROR_MAX, READ_FILE_NOFOLLOW, &buf, &len);
        fuzz_check(k >= 0, "the log written cannot be read: %s", strerror(-k));
        k = records_log_parse(buf, len, on_entry, &e, NULL);
        fuzz_check(k == 0, "the log written does not parse: %s", strerror(-k));
        fuzz_check(e.seen, "no entry of VM %s in the log", vm->id);
        /* A record over RECORD_MAX is not kept: the VM is said gone. */
        fuzz_check(e.body || 2 * size + 4096 > RECORD_MAX, "a record of %zu bytes not kept", size);
        if (e.body) {
                body = strndup(e.body, e.len);
                if (!body)
                        abort();
                len = e.len;
        }
        free(buf);
        buf = NULL;
        records_forget(&rec, vm);
        records_done(&rec);
        k = read_file_bounded(path, 4 * size + 8192, READ_FILE_NOFOLLOW, &buf, &len);
        fuzz_check(k >= 0, "the log written cannot be read: %s", strerror(-k));
        e = (struct last_entry) { vm->id };
        fuzz_check(records_log_parse(buf, len, on_entry, &e, NULL) == 0, "the log does not parse");
        fuzz_check(e.seen && !e.body, "record not forgotten");
        (void) unlink(path);
        if (!body)
                return;

        fuzz_check(registry_add(r, vm->pid, vm->fd + 1, &back) == 0, "registry_add");
        k = record_parse(body, strlen(body), back, &back_state);
        if (k == -ENOMEM)
                return;
        fuzz_check(k == 0, "what the writer wrote does not parse (%s):\n%s", strerror(-k), body);
        restore(r, back, back_state, vm);
        check_same(vm, state, back, back_state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(registry_done) struct registry r = {};
        _cleanup_free_ struct line *lines = NULL;
        _cleanup_free_ char *copy = NULL;
        enum vm_state state, untouched;
        struct vm *vm;
        size_t n = 0;
        bool valid;
        int k;

        if (!dir)
                (void) LLVMFuzzerInitialize(NULL, NULL);
        registry_init(&r);
        if (registry_add(&r, 4242, 17, &vm) < 0)
                return 0;

        memset(&state, 0xa5, sizeof(state));
        untouched = state;
        k = record_parse((const char *) data, size, vm, &state);
        fuzz_check(k == 0 || k == -EINVAL || k == -ENOMEM, "returned %d", k);
        if (k == -ENOMEM)
                return 0;

        valid = !memchr(data, 0, size);
        if (valid) {
                copy = strndup((const char *) data, size);
                if (!copy)
                        abort();
                valid = oracle_lines(copy, &lines, &n);
        }
        if (k < 0) {
                fuzz_check(memcmp(&state, &untouched, sizeof(state)) == 0, "*ret_state written on failure");
                fuzz_check(!valid, "a valid record refused (%s)", strerror(-k));
                return 0;
        }
        fuzz_check(valid, "an invalid record accepted");

        check_oracle(vm, state, lines, n);
        restore(&r, vm, state, vm);
        round_trip(&r, vm, state, size);
        return 0;
}
