/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * state.c — the persisted runtime state.  The file is small YAML written
 * by us alone:
 *
 *   version: 2
 *   default_profile: tenant-a
 *   vms:
 *     "machine:1b4e28ba-2fa1-11d2-883f-0016d3cca427": trusted
 *     "uid:107/uuid:6f1c2d3e-0000-4000-8000-000000000001": tenant-b
 *     "uid:0/name:vm-7": tenant-a
 *   expires_usec:
 *     "uid:0/name:vm-7": 1796000000000000
 *
 * Each per-VM key says what the change is bound to (decide/overrides.c):
 * a machined registration, or a uid with a claimed UUID or name.
 * `expires_usec` makes a change of `vms` (above it) a time-limited grant
 * (pmufilterd(8), TIME-LIMITED GRANTS): the CLOCK_REALTIME µs it ends at.
 * Only the runtime file holds grants.
 * Version 1 keyed changes by claims alone ("uuid:…", "name:…"); such keys
 * are read and migrated at start-up.
 */
#include <assert.h>
#include <inttypes.h>
#include "fileio.h"
#include "state.h"
#include "yaml-dl.h"


void state_done(struct state *s) {
        free(s->default_profile);
        for (size_t i = 0; i < s->n; i++) {
                free(s->v[i].key);
                free(s->v[i].profile);
        }
        free(s->v);
        *s = (struct state) {};
}

/* The claim of a key: what follows "uid:<n>/" ("uuid:…", "name:…"), the
 * whole key otherwise ("machine:…", version 1's "uuid:…", "name:…"). */
static const char *claim_of(const char *key) {
        const char *v = startswith(key, "uid:");

        if (v && *v >= '0' && *v <= '9') {
                v += strspn(v, "0123456789");
                if (*v == '/')
                        return v + 1;
        }
        return key;
}

/* Entries are kept in the order of (claim, key) (state.h). */
static int key_cmp(const char *a, const char *b) {
        int r = strcmp(claim_of(a), claim_of(b));

        return r != 0 ? r : strcmp(a, b);
}

/* The index of the first entry for which before(its key, arg) is false
 * (n: none); before() must be true for a prefix of v, in its order. */
static size_t lower_bound(const struct state *s, bool (*before)(const char *key, const void *arg), const void *arg) {
        size_t lo = 0, hi = s->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (before(s->v[mid].key, arg))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static bool key_before(const char *key, const void *arg) {
        return key_cmp(key, arg) < 0;
}

/* The first entry not before key (n: none); *ret_found whether it is key. */
static size_t locate(const struct state *s, const char *key, bool *ret_found) {
        size_t i = lower_bound(s, key_before, key);

        *ret_found = i < s->n && streq(s->v[i].key, key);
        return i;
}

struct state_entry *state_entry_get(const struct state *s, const char *key) {
        bool found;
        size_t i = locate(s, key, &found);

        return found ? &s->v[i] : NULL;
}

/* claim against "<kind>:<value>", as strcmp() orders them; value NULL:
 * 0 for any claim of kind. */
static int claim_cmp(const char *claim, const char *kind, const char *value) {
        size_t k = strlen(kind);
        int r = strncmp(claim, kind, k);

        if (r != 0)
                return r;
        claim += k;
        if (*claim != ':')
                return (int) (unsigned char) *claim - ':';
        return value ? strcmp(claim + 1, value) : 0;
}

struct claim {
        const char *kind, *value;
};

static bool claim_before(const char *key, const void *arg) {
        const struct claim *c = arg;

        return claim_cmp(claim_of(key), c->kind, c->value) < 0;
}

bool state_has_claim(const struct state *s, const char *kind, const char *value) {
        size_t i = lower_bound(s, claim_before, &(struct claim) { kind, value });

        return i < s->n && claim_cmp(claim_of(s->v[i].key), kind, value) == 0;
}

const char *state_get(const struct state *s, const char *key) {
        const struct state_entry *e = state_entry_get(s, key);

        return e ? e->profile : NULL;
}

int state_set_expiry(struct state *s, const char *key, uint64_t usec) {
        struct state_entry *e = state_entry_get(s, key);

        if (!e)
                return -ENOENT;
        e->expires_usec = usec;
        return 0;
}

uint64_t state_next_expiry(const struct state *s) {
        uint64_t next = 0;

        for (size_t i = 0; i < s->n; i++)
                if (s->v[i].expires_usec > 0 && (next == 0 || s->v[i].expires_usec < next))
                        next = s->v[i].expires_usec;
        return next;
}

void state_remove_at(struct state *s, size_t i) {
        assert(i < s->n);
        free(s->v[i].key);
        free(s->v[i].profile);
        memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(s->v[0]));
        s->n--;
}

int state_set(struct state *s, const char *key, const char *profile) {
        struct state_entry e;
        bool found;
        size_t i = locate(s, key, &found);

        if (found) {
                if (!profile) {
                        state_remove_at(s, i);
                        return 0;
                }
                s->v[i].expires_usec = 0;
                return free_and_strdup(&s->v[i].profile, profile);
        }
        if (!profile)
                return 0;
        if (!GREEDY_REALLOC(s->v, s->allocated, s->n + 1))
                return -ENOMEM;
        e = (struct state_entry) { .key = strdup(key), .profile = strdup(profile) };
        if (!e.key || !e.profile) {
                free(e.key);
                free(e.profile);
                return -ENOMEM;
        }
        memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(s->v[0]));
        s->v[i] = e;
        s->n++;
        return 0;
}

bool state_key_valid(const char *key) {
        const char *p;
        char *end = NULL;

        if (startswith(key, "machine:"))
                return key[strlen("machine:")] != 0;
        /* Version 1's keys: claims alone.  Read, to be migrated (pmufilterd(8)). */
        if (startswith(key, "uuid:") || startswith(key, "name:"))
                return true;
        p = startswith(key, "uid:");
        if (!p || *p < '0' || *p > '9')
                return false;
        errno = 0;
        (void) strtoul(p, &end, 10);
        if (errno != 0 || !end)
                return false;
        return (startswith(end, "/uuid:") || startswith(end, "/name:")) && end[6] != 0;
}

static int fail(char **ret_error, const yaml_mark_t *mark, const char *what) {
        if (asprintf(ret_error, "line %zu column %zu: %s", mark->line + 1, mark->column + 1, what) < 0)
                *ret_error = NULL;
        return -EINVAL;
}

/* One line of `expires_usec`: a change of `vms` above it, and a time. */
static int parse_expiry(struct state *s, const char *key, const char *v, const yaml_mark_t *mark, char **ret_error) {
        uint64_t usec;

        if (!state_entry_get(s, key))
                return fail(ret_error, mark, "an expiry for a key that 'vms' (above it) does not hold");
        /* Decimal digits only: safe_atou64() would take 0x too. */
        if (v[strspn(v, "0123456789")] != 0 || safe_atou64(v, &usec) < 0)
                return fail(ret_error, mark, "an expiry is a number of microseconds since the epoch");
        if (usec == 0)
                return fail(ret_error, mark, "an expiry of 0 is none: leave the line out");
        return state_set_expiry(s, key, usec);
}

/* Walk the event stream: a mapping of scalars, where `vms` maps scalars to scalars. */
static int parse_events(const char *buf, size_t len, struct state *ret, char **ret_error) {
        struct state s = {};
        yaml_parser_t parser;
        yaml_event_t ev;
        int depth = 0, r = 0;
        enum { IN_TOP, IN_VMS, IN_EXPIRES } in = IN_TOP;
        bool versioned = false;
        char *key = NULL;

        if (!sym_yaml_parser_initialize(&parser))
                return -ENOMEM;
        sym_yaml_parser_set_input_string(&parser, (const unsigned char *) buf, len);
        for (bool done = false; !done && r == 0;) {
                if (!sym_yaml_parser_parse(&parser, &ev)) {
                        yaml_mark_t at = parser.problem_mark;

                        /* Out of memory says nothing of the file: not
                         * corrupt, not to be set aside (load_state()). */
                        if (parser.error == YAML_MEMORY_ERROR) {
                                r = -ENOMEM;
                                break;
                        }

                        /* The reader (encoding, control characters) gives
                         * a byte offset instead of a mark. */
                        if (parser.error == YAML_READER_ERROR) {
                                at = (yaml_mark_t) {};
                                for (size_t i = 0; i < parser.problem_offset && i < len; i++)
                                        if (buf[i] == '\n') {
                                                at.line++;
                                                at.column = 0;
                                        } else
                                                at.column++;
                        }
                        r = fail(ret_error, &at, parser.problem ? parser.problem : "syntax error");
                        break;
                }
                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_MAPPING_START_EVENT:
                        depth++;
                        if (depth == 2 && !(key && (streq(key, "vms") || streq(key, "expires_usec"))))
                                r = fail(ret_error, &ev.start_mark, "only 'vms' and 'expires_usec' hold a mapping");
                        if (depth > 2)
                                r = fail(ret_error, &ev.start_mark, "too deeply nested");
                        in = depth != 2 || !key ? IN_TOP : streq(key, "vms") ? IN_VMS :
                             streq(key, "expires_usec") ? IN_EXPIRES : IN_TOP;
                        free(key);
                        key = NULL;
                        break;
                case YAML_MAPPING_END_EVENT:
                        depth--;
                        in = IN_TOP;
                        break;
                case YAML_SEQUENCE_START_EVENT:
                case YAML_ALIAS_EVENT:
                        r = fail(ret_error, &ev.start_mark, "unexpected sequence or alias");
                        break;
                case YAML_SCALAR_EVENT: {
                        const char *v = (const char *) ev.data.scalar.value;

                        if (depth == 0) {
                                r = fail(ret_error, &ev.start_mark, "expected a mapping");
                                break;
                        }
                        if (!key) {
                                key = strdup(v);
                                if (!key)
                                        r = -ENOMEM;
                                break;
                        }
                        if (in == IN_VMS) {
                                if (!state_key_valid(key))
                                        r = fail(ret_error, &ev.start_mark,
                                                 "VM keys are 'machine:UUID', 'uid:N/uuid:UUID' or 'uid:N/name:NAME'");
                                else
                                        r = state_set(&s, key, v);
                        } else if (in == IN_EXPIRES)
                                r = parse_expiry(&s, key, v, &ev.start_mark, ret_error);
                        else if (streq(key, "version")) {
                                versioned = true;
                                if (!streq(v, "1") && !streq(v, "2"))
                                        r = fail(ret_error, &ev.start_mark, "unknown version");
                        } else if (streq(key, "default_profile"))
                                r = free_and_strdup(&s.default_profile, v);
                        else
                                r = fail(ret_error, &ev.start_mark, "unknown key");
                        free(key);
                        key = NULL;
                        break;
                }
                default:
                        break;
                }
                sym_yaml_event_delete(&ev);
        }
        /* Every file we write says its version first: one that does not
         * (empty, truncated to a comment) lost what it held. */
        if (r == 0 && !versioned)
                r = fail(ret_error, &(yaml_mark_t) {}, "no 'version': not a whole state file (truncated?)");
        sym_yaml_parser_delete(&parser);
        free(key);
        if (r < 0) {
                state_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

/* libyaml is held for the parse only.  Not loading it is not a corrupt
 * file: -ELIBACC, with the reason in *ret_error. */
int state_parse(const char *buf, size_t len, struct state *ret, char **ret_error) {
        const char *why;
        int r;

        r = yaml_dl_acquire(&why);
        if (r < 0) {
                *ret_error = strdup(why);
                return r;
        }
        r = parse_events(buf, len, ret, ret_error);
        yaml_dl_release();
        return r;
}

int state_load(const char *path, struct state *ret, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        int r;

        assert(path);
        assert(ret);
        r = read_file_bounded(path, STATE_FILE_MAX, READ_FILE_NOFOLLOW, &buf, &size);
        if (r == -ENOENT) {
                *ret = (struct state) {};
                return 0;
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                if (asprintf(ret_error, "%s", r == -EFBIG ? "larger than 16 MiB" :
                                              r == -EBADFD || r == -EISDIR ? "not a regular file" :
                                              r == -ELOOP ? "a symbolic link, which pmufilterd never writes" :
                                              strerror(-r)) < 0)
                        *ret_error = NULL;
                return r == -EFBIG || r == -EBADFD || r == -EISDIR || r == -ELOOP ? -EINVAL : r;
        }
        return state_parse(buf, size, ret, ret_error);
}

/* One UTF-8 character of s: its length and code point, or 0 for a byte
 * that starts none (not expected: what is stored came through libyaml, the
 * VMM protocol or sd-bus, which all check; never read past the NUL). */
static size_t utf8_decode(const unsigned char *s, uint32_t *ret) {
        size_t l = s[0] < 0x80 ? 1 : s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
        uint32_t c = l == 1 ? s[0] : s[0] & (0x7f >> l);

        if (l == 0)
                return 0;
        for (size_t i = 1; i < l; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (s[i] & 0x3f);
        }
        *ret = c;
        return l;
}

/* A double-quoted YAML scalar that reads back as s: every character YAML
 * may not carry as itself — controls, and the line breaks it would fold
 * (NEL, LS, PS) — and the BOM and non-characters as escapes.  A VM's name
 * is the VMM's to choose; it must not make the whole file unreadable. */
void yaml_put_scalar(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p;) {
                size_t plain = 0;
                uint32_t c;
                size_t l;

                /* Printable ASCII but the two escaped, as one run: keys and
                 * profile names are that. */
                while (p[plain] >= 0x20 && p[plain] < 0x7f && p[plain] != '"' && p[plain] != '\\')
                        plain++;
                if (plain > 0) {
                        fwrite(p, 1, plain, f);
                        p += plain;
                        continue;
                }
                l = utf8_decode(p, &c);

                if (l == 0) {
                        /* Not UTF-8, which YAML cannot hold: keep the file
                         * readable, at the price of this one value. */
                        fprintf(f, "\\x%02x", *p++);
                        continue;
                }
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", (char) c);
                else if ((c >= 0x20 && c < 0x7f) || (c >= 0xa0 && c <= 0xd7ff && c != 0x2028 && c != 0x2029) ||
                         (c >= 0xe000 && c <= 0xfffd && c != 0xfeff) || c >= 0x10000)
                        fwrite(p, 1, l, f);
                else if (c <= 0xff)
                        fprintf(f, "\\x%02x", (unsigned) c);
                else
                        fprintf(f, "\\u%04x", (unsigned) c);
                p += l;
        }
        fputc('"', f);
}

static int write_state(FILE *f, const void *userdata) {
        const struct state *s = userdata;

        fprintf(f, "# Written by pmufilterd: changes made over D-Bus. Do not edit while it runs.\nversion: 2\n");
        if (s->default_profile) {
                fputs("default_profile: ", f);
                yaml_put_scalar(f, s->default_profile);
                fputc('\n', f);
        }
        if (s->n > 0) {
                fputs("vms:\n", f);
                for (size_t i = 0; i < s->n; i++) {
                        /* YAML takes a plain "key: value" only for keys of
                         * at most 1024 characters; an escape is at most 4
                         * characters a byte.  Longer ones: "? key". */
                        bool explicit_key = strlen(s->v[i].key) > 255;

                        fputs(explicit_key ? "  ? " : "  ", f);
                        yaml_put_scalar(f, s->v[i].key);
                        fputs(explicit_key ? "\n  : " : ": ", f);
                        yaml_put_scalar(f, s->v[i].profile);
                        fputc('\n', f);
                }
        }
        if (state_next_expiry(s) > 0) {
                fputs("expires_usec:\n", f);
                for (size_t i = 0; i < s->n; i++) {
                        bool explicit_key = strlen(s->v[i].key) > 255;

                        if (s->v[i].expires_usec == 0)
                                continue;
                        fputs(explicit_key ? "  ? " : "  ", f);
                        yaml_put_scalar(f, s->v[i].key);
                        fprintf(f, explicit_key ? "\n  : %" PRIu64 "\n" : ": %" PRIu64 "\n", s->v[i].expires_usec);
                }
        }
        if (ferror(f))
                return -EIO;
        /* What state_load() would refuse is not written: the file there
         * stays as it was, and the change is refused. */
        return ftell(f) > STATE_FILE_MAX ? -EFBIG : 0;
}

bool state_fits(const struct state *s) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;

        assert(s);
        /* -ENOMEM here says nothing of the size: take it as fitting. */
        return format_in_memory(write_state, s, &buf, &size) != -EFBIG;
}

int state_save(const char *path, const struct state *s) {
        assert(path);
        assert(s);
        return write_file_atomic(path, 0600, WRITE_FILE_SYNC | WRITE_FILE_MKDIR, write_state, s);
}

int state_save_volatile(const char *path, const struct state *s) {
        assert(path);
        assert(s);
        return write_file_atomic(path, 0600, WRITE_FILE_MKDIR, write_state, s);
}
