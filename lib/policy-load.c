/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy-load.c — the schema of pmufilterd.yaml(5): walks the
 * ynode tree of one file and merges it into a struct policy.  Every mapping
 * is checked as a whole: unknown keys and duplicate keys are errors at their
 * line:column.  Reading files from disk is policy-files.c's.
 *
 * After an error the loader goes on wherever the rest of the document can
 * still be checked, so that one run of `pmufilterctl check` reports every
 * mistake; but one precise message is worth more than a cascade, so it
 * never reports what an earlier error caused:
 *
 *  - A YAML syntax error ends the file: past it there is no tree to walk.
 *  - In a mapping each key stands alone: an unknown or repeated key, or a
 *    bad value, is reported and the next key is checked.  A required key is
 *    reported missing only where the mapping has no unknown (or repeated)
 *    key, which may be that key misspelt.
 *  - Each profile, each event of a list and each rule stands alone.
 *  - A profile with an error is kept, marked broken: a reference to it
 *    resolves (no "not defined" for a rule or an `extends` naming it), but
 *    nothing is concluded from its content, so neither it nor a profile
 *    extending it is validated beyond its references, or compiled
 *    (profile_is_sound()).  A profile whose name cannot be used (not a
 *    name, or defined already) is reported, and its body is still checked,
 *    then dropped.
 *  - A rule with an error is kept, marked broken: the profile it names is
 *    still looked up if it was read, but the trust lint, which reads the
 *    whole match, is not run on it.
 *  - Where a profile definition may have been lost (the file did not parse,
 *    the top level or `profiles` is not a mapping, an unknown or repeated
 *    top-level key), the policy is marked incomplete, and a reference to an
 *    undefined profile is then not reported anywhere: it may be the lost
 *    one.
 *  - An event entry with an error is dropped from its list (its profile is
 *    broken anyway).
 *
 * Any error fails the whole policy all the same: policy_load_buffer()
 * returns -EINVAL, and the daemon never uses a policy that had one.
 *
 * `version` is optional in every file (conf.d fragments need not repeat it);
 * where present it must be 1.
 */
#include <inttypes.h>

#include "policy.h"
#include "policy-yaml.h"
#include "suggest.h"

struct loader {
        struct policy *p;
        const char *file;       /* interned in p->files */
        struct diags *d;
};

#define PROFILE_NAME_MAX 64
#define EVENT_NAME_MAX 256
#define RAW_EVENT_BITS UINT64_C(0xF0000FFFF)    /* select 7:0, umask 15:8, AMD select 35:32 */
#define SUN_PATH_MAX 107                        /* sizeof(sun_path) - 1 */

static bool name_valid(const char *s, const char *extra, size_t max) {
        static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        size_t n = strlen(s);

        if (n == 0 || n > max)
                return false;
        for (const char *c = s; *c; c++)
                if (!strchr(alnum, *c) && !strchr(extra, *c))
                        return false;
        return true;
}

#define PROFILE_NAME_EXPECTED "a profile name (letters, digits, '_', '.', '-'; at most 64)"

/* A reference to a profile: spelled like one, or it could never resolve. */
static int get_profile_name(struct loader *l, const struct ynode *n, const char *what, const char **ret) {
        char buf[64];
        const char *text;
        int r;

        r = ynode_get_text(l->d, n, what, PROFILE_NAME_EXPECTED, &text);
        if (r < 0)
                return r;
        if (!name_valid(text, "_.-", PROFILE_NAME_MAX))
                return diags_error(l->d, &n->loc, "%s: expected " PROFILE_NAME_EXPECTED ", got %s", what,
                                   ynode_describe(n, buf));
        *ret = text;
        return 0;
}

/* An error that ends one key, item or definition but not its neighbours:
 * remember it in *ret and go on.  True only for -ENOMEM, which ends all. */
static bool collect(int *ret, int r) {
        if (r == -ENOMEM) {
                *ret = r;
                return true;
        }
        if (r < 0 && *ret == 0)
                *ret = r;
        return false;
}

static int load_settings(struct loader *l, const struct ynode *n) {
        static const char *const adopt_words[] = { [ADOPT_NONE] = "none", [ADOPT_PTRACE] = "ptrace" };
        static const char *const unmanaged_words[] = { [UNMANAGED_WARN] = "warn", [UNMANAGED_KILL] = "kill" };
        enum { SOCKET, ATTACH_TIMEOUT, ADOPT, UNMANAGED, DEFAULT_PROFILE, UNATTACHED, SOCKET_GROUP };
        struct settings *s = &l->p->settings;
        char buf[64];
        struct ynode_field f[] = {
                { "socket" }, { "attach_timeout_ms" }, { "adopt" }, { "unmanaged" }, { "default_profile" },
                { "unattached_sessions_per_uid" }, { "socket_group" },
        };
        const char *text;
        uint64_t v;
        int r, ret = 0;

        r = ynode_map_fields(l->d, n, "settings", f, ELEMENTSOF(f), NULL);
        if (r == -ENOMEM || (r < 0 && n->type != YNODE_MAPPING))
                return r;
        ret = r;
        if (f[SOCKET].value) {
                r = ynode_get_text(l->d, f[SOCKET].value, "socket", "an absolute path", &text);
                if (r == 0 && (text[0] != '/' || strlen(text) > SUN_PATH_MAX))
                        r = diags_error(l->d, &f[SOCKET].value->loc,
                                        "socket: expected an absolute path of at most %d bytes, got %s",
                                        SUN_PATH_MAX, ynode_describe(f[SOCKET].value, buf));
                if (r == 0 && free_and_strdup(&s->socket, text) < 0)
                        r = -ENOMEM;
                if (collect(&ret, r))
                        return ret;
        }
        if (f[ATTACH_TIMEOUT].value) {
                r = ynode_get_uint(l->d, f[ATTACH_TIMEOUT].value, "attach_timeout_ms", 1, 3600000,
                                   "an integer 1-3600000", &v);
                if (r == 0)
                        s->attach_timeout_ms = (unsigned) v;
                if (collect(&ret, r))
                        return ret;
        }
        if (f[ADOPT].value) {
                r = ynode_get_word(l->d, f[ADOPT].value, "adopt", adopt_words, ELEMENTSOF(adopt_words),
                                   "none or ptrace");
                if (r >= 0)
                        s->adopt = r;
                if (collect(&ret, r))
                        return ret;
        }
        if (f[UNMANAGED].value) {
                r = ynode_get_word(l->d, f[UNMANAGED].value, "unmanaged", unmanaged_words,
                                   ELEMENTSOF(unmanaged_words), "warn or kill");
                if (r >= 0)
                        s->unmanaged = r;
                if (collect(&ret, r))
                        return ret;
        }
        if (f[DEFAULT_PROFILE].value) {
                r = get_profile_name(l, f[DEFAULT_PROFILE].value, "default_profile", &text);
                if (r == 0) {
                        if (free_and_strdup(&s->default_profile, text) < 0)
                                return -ENOMEM;
                        s->default_profile_loc = f[DEFAULT_PROFILE].value->loc;
                }
                if (collect(&ret, r))
                        return ret;
        }
        if (f[UNATTACHED].value) {
                r = ynode_get_uint(l->d, f[UNATTACHED].value, "unattached_sessions_per_uid", 1, 65536,
                                   "an integer 1-65536", &v);
                if (r == 0)
                        s->unattached_sessions_per_uid = (unsigned) v;
                if (collect(&ret, r))
                        return ret;
        }
        if (f[SOCKET_GROUP].value) {
                r = ynode_get_text(l->d, f[SOCKET_GROUP].value, "socket_group", "a group name", &text);
                if (r == 0 && (isempty(text) || strlen(text) > 32 || text[0] == '-' ||
                               strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != strlen(text)))
                        r = diags_error(l->d, &f[SOCKET_GROUP].value->loc, "socket_group: expected a group name, got %s",
                                        ynode_describe(f[SOCKET_GROUP].value, buf));
                if (r == 0 && free_and_strdup(&s->socket_group, text) < 0)
                        r = -ENOMEM;
                if (collect(&ret, r))
                        return ret;
        }
        return ret;
}

#define EVENT_EXPECTED "'umask' (0-255 or 'any') or 'mask'+'match'"

static int load_event_mapping(struct loader *l, struct event_spec *e, const struct ynode *n) {
        enum { SELECT, UMASK, MASK, MATCH, EXCLUDE };
        struct ynode_field f[] = { { "select" }, { "umask" }, { "mask" }, { "match" }, { "exclude" } };
        bool unknown_keys;
        uint64_t v;
        int r, ret;

        r = ynode_map_fields(l->d, n, "event", f, ELEMENTSOF(f), EVENT_EXPECTED);
        if (r == -ENOMEM)
                return r;
        /* Nothing is missing where a key was misspelt: it may be that one. */
        unknown_keys = r < 0;
        ret = r;

        if (f[SELECT].value) {
                r = ynode_get_uint(l->d, f[SELECT].value, "select", 0, 0xfff, "an integer 0-0xfff", &v);
                if (r == 0)
                        e->select = (uint16_t) v;
                if (collect(&ret, r))
                        return ret;
        } else if (!unknown_keys &&
                   collect(&ret, diags_error(l->d, &n->loc,
                                             "event: expected 'select' (0-0xfff) with " EVENT_EXPECTED)))
                return ret;

        /* Which form it is decides what the other keys mean: two forms at
         * once is the one error worth saying. */
        if (f[UMASK].value && f[MASK].value) {
                collect(&ret, diags_error(l->d, &f[MASK].key_node->loc,
                                          "event: expected " EVENT_EXPECTED ", got both 'umask' and 'mask'"));
                return ret;
        }
        if (f[UMASK].value) {
                if (f[MATCH].value || f[EXCLUDE].value)
                        if (collect(&ret, diags_error(l->d, &(f[MATCH].key_node ?: f[EXCLUDE].key_node)->loc,
                                                      "event: '%s' goes with 'mask', not with 'umask'",
                                                      f[MATCH].value ? "match" : "exclude")))
                                return ret;
                if (f[UMASK].value->type == YNODE_SCALAR && streq(f[UMASK].value->value, "any")) {
                        e->kind = EVENT_SELECT_ANY;
                        return ret;
                }
                r = ynode_get_uint(l->d, f[UMASK].value, "umask", 0, 255, "an integer 0-255 or 'any'", &v);
                if (r == 0) {
                        e->kind = EVENT_SELECT_UMASK;
                        e->umask = (uint8_t) v;
                }
                collect(&ret, r);
                return ret;
        }
        if ((!f[MASK].value || !f[MATCH].value) && !unknown_keys &&
            collect(&ret, diags_error(l->d, &n->loc, "event: expected " EVENT_EXPECTED " beside 'select'%s",
                                      f[MASK].value ? ", got 'mask' without 'match'" :
                                      f[MATCH].value ? ", got 'match' without 'mask'" : "")))
                return ret;
        e->kind = EVENT_MASKED;
        if (f[MASK].value) {
                r = ynode_get_uint(l->d, f[MASK].value, "mask", 0, 255, "an integer 0-255", &v);
                if (r == 0)
                        e->mask = (uint8_t) v;
                if (collect(&ret, r))
                        return ret;
        }
        if (f[MATCH].value) {
                r = ynode_get_uint(l->d, f[MATCH].value, "match", 0, 255, "an integer 0-255", &v);
                if (r == 0)
                        e->match = (uint8_t) v;
                if (collect(&ret, r))
                        return ret;
        }
        if (f[EXCLUDE].value)
                collect(&ret, ynode_get_bool(l->d, f[EXCLUDE].value, "exclude", &e->exclude));
        return ret;
}
/* perf's raw event, "r" and the hex digits of the event-select register
 * (perf-list(1), RAW HARDWARE EVENT DESCRIPTOR): no name has that shape. */
static bool is_perf_raw(const char *s) {
        return s[0] == 'r' && s[1] && strspn(s + 1, "0123456789abcdefABCDEF") == strlen(s + 1);
}

/* perf's PMU/term=value,.../ form: a lower-case PMU name, then a slash. */
static bool is_perf_pmu_event(const char *s) {
        size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_");

        return n > 0 && s[n] == '/';
}

/* What the bits outside select and unit mask are, in the terms of the
 * event-select register (and of perf's format, where it names them). */
static char *stray_bits_describe(uint64_t stray) {
        static const struct {
                uint64_t bits;
                const char *name;
        } fields[] = {
                { UINT64_C(1) << 16, "usr (bit 16)" },
                { UINT64_C(1) << 17, "os (bit 17)" },
                { UINT64_C(1) << 18, "edge (bit 18)" },
                { UINT64_C(1) << 19, "pc (bit 19)" },
                { UINT64_C(1) << 20, "int (bit 20)" },
                { UINT64_C(1) << 21, "any (bit 21)" },
                { UINT64_C(1) << 22, "en (bit 22)" },
                { UINT64_C(1) << 23, "inv (bit 23)" },
                { UINT64_C(0xff) << 24, "cmask (bits 24-31)" },
                { ~UINT64_C(0) << 36, "bits 36-63" },
        };
        char *s = NULL;
        size_t size = 0, n = 0;
        FILE *f = open_memstream(&s, &size);

        if (!f)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (stray & fields[i].bits)
                        fprintf(f, "%s%s", n++ > 0 ? ", " : "", fields[i].name);
        if (fclose(f) != 0) {
                free(s);
                return NULL;
        }
        return s;
}

static int load_perf_raw(struct loader *l, struct event_spec *e, const struct ynode *n) {
        _cleanup_free_ char *fields = NULL;
        char buf[64];
        uint64_t v;

        /* r412e is the 0x412e of the event-select register: the same word
         * as the number form, AMD's select bits 35:32 included. */
        if (strlen(n->value + 1) > 16)
                return diags_error(l->d, &n->loc, "event: raw event %s does not fit in 64 bits",
                                   ynode_describe(n, buf));
        v = strtoull(n->value + 1, NULL, 16);
        if (v & ~RAW_EVENT_BITS) {
                fields = stray_bits_describe(v & ~RAW_EVENT_BITS);
                if (!fields)
                        return -ENOMEM;
                return diags_error(l->d, &n->loc,
                                   "event: raw event %s sets %s, which KVM's filter does not compare "
                                   "(only the event select and unit mask: bits 0-15 and 32-35)",
                                   ynode_describe(n, buf), fields);
        }
        e->kind = EVENT_RAW;
        e->raw = v;
        e->name = strdup(n->value);             /* the spelling, for messages */
        return e->name ? 0 : -ENOMEM;
}

#define PERF_PMU_EXPECTED "cpu/event=N,umask=N/"

/* cpu/event=0x2e,umask=0x41/ (perf-list(1), "PMU events"): the terms KVM's
 * filter compares, event= (the select, 12 bits on AMD) and umask=; name=
 * names it for perf, and means nothing here.  Every other term (edge, inv,
 * cmask, any, ...) changes what is counted in ways the filter cannot see:
 * an error, never silently dropped. */
static int load_perf_pmu_event(struct loader *l, struct event_spec *e, const struct ynode *n) {
        _cleanup_free_ char *body = NULL;
        const char *s = n->value, *slash = strchr(s, '/');
        bool have_event = false, have_umask = false;
        char buf[64], *state = NULL;
        size_t len = strlen(s);

        if ((size_t) (slash - s) != 3 || strncmp(s, "cpu", 3) != 0)
                return diags_error(l->d, &n->loc,
                                   "event: expected the core PMU, " PERF_PMU_EXPECTED ", got %s: "
                                   "KVM filters the events of the core PMU only", ynode_describe(n, buf));
        if (len < 5 || s[len - 1] != '/' || strchr(slash + 1, '/') != s + len - 1)
                return diags_error(l->d, &n->loc, "event: expected " PERF_PMU_EXPECTED " (ending in '/'), got %s",
                                   ynode_describe(n, buf));
        body = strndup(slash + 1, len - 5);
        if (!body)
                return -ENOMEM;
        if (body[0] == ',' || (body[0] && body[strlen(body) - 1] == ',') || strstr(body, ",,"))
                return diags_error(l->d, &n->loc, "event: expected " PERF_PMU_EXPECTED " (terms separated "
                                   "by one ','), got %s", ynode_describe(n, buf));

        for (char *term = strtok_r(body, ",", &state); term; term = strtok_r(NULL, ",", &state)) {
                char *eq = strchr(term, '=');
                const char *value = eq ? eq + 1 : NULL;
                uint64_t v;

                if (eq)
                        *eq = '\0';
                if (streq(term, "name")) {
                        if (!value || !*value)
                                return diags_error(l->d, &n->loc, "event: %s: expected name=NAME",
                                                   ynode_describe(n, buf));
                        continue;
                }
                if (!streq(term, "event") && !streq(term, "umask"))
                        return diags_error(l->d, &n->loc,
                                           "event: %s: term '%s' cannot be filtered: KVM's filter compares only "
                                           "the event select (event=) and unit mask (umask=)",
                                           ynode_describe(n, buf), term);
                if (streq(term, "event") ? have_event : have_umask)
                        return diags_error(l->d, &n->loc, "event: %s: term '%s' given twice",
                                           ynode_describe(n, buf), term);
                if (streq(term, "event")) {
                        if (!value || ynode_parse_number(value, &v) < 0 || v > 0xfff)
                                return diags_error(l->d, &n->loc,
                                                   "event: %s: expected event=0-0xfff, got '%.20s'",
                                                   ynode_describe(n, buf), strempty(value));
                        e->select = (uint16_t) v;
                        have_event = true;
                } else {
                        if (!value || ynode_parse_number(value, &v) < 0 || v > 0xff)
                                return diags_error(l->d, &n->loc,
                                                   "event: %s: expected umask=0-0xff, got '%.20s'",
                                                   ynode_describe(n, buf), strempty(value));
                        e->umask = (uint8_t) v;
                        have_umask = true;
                }
        }
        if (!have_event)
                return diags_error(l->d, &n->loc, "event: expected " PERF_PMU_EXPECTED " with event=, got %s",
                                   ynode_describe(n, buf));
        /* Exactly { select, umask } (perf's umask defaults to 0 as well). */
        e->kind = EVENT_SELECT_UMASK;
        e->name = strdup(n->value);             /* the spelling, for messages */
        return e->name ? 0 : -ENOMEM;
}

/* A plain scalar starting with a digit is a raw number (libpfm4 names and
 * perf aliases never start with one); r and hex digits is perf's raw
 * spelling of the same number, and PMU/terms/ perf's term spelling; any
 * other scalar is a name. */
static int load_event_scalar(struct loader *l, struct event_spec *e, const struct ynode *n) {
        char buf[64];
        uint64_t v;
        int r;

        if (n->plain && n->value[0] >= '0' && n->value[0] <= '9') {
                r = ynode_parse_number(n->value, &v);
                if (r == -ERANGE)
                        return diags_error(l->d, &n->loc, "event: raw event %s does not fit in 64 bits",
                                           ynode_describe(n, buf));
                if (r < 0)
                        return diags_error(l->d, &n->loc,
                                           "event: expected a raw event (decimal or 0x hex), got %s",
                                           ynode_describe(n, buf));
                if (v & ~RAW_EVENT_BITS)
                        return diags_error(l->d, &n->loc,
                                           "raw event 0x%" PRIx64 " has bits outside event select and unit mask "
                                           "(expected bits 0-15 and 32-35)", v);
                e->kind = EVENT_RAW;
                e->raw = v;
                return 0;
        }
        if (is_perf_raw(n->value))
                return load_perf_raw(l, e, n);
        if (is_perf_pmu_event(n->value))
                return load_perf_pmu_event(l, e, n);
        if (!name_valid(n->value, "_:.-", EVENT_NAME_MAX))
                return diags_error(l->d, &n->loc,
                                   "event: expected an event name (letters, digits, '_', ':', '.', '-'; "
                                   "at most 256), got %s",
                                   ynode_describe(n, buf));
        e->kind = EVENT_NAME;
        e->name = strdup(n->value);
        return e->name ? 0 : -ENOMEM;
}

/* A list of events into *v: the profile's events (events:, optional:) or
 * its acknowledgements (acknowledge_shared:), which take the same forms.
 * An entry with an error is reported and left out; the next is checked. */
static int load_events(struct loader *l, struct event_spec **v, size_t *n_v, size_t *allocated,
                       const struct ynode *n, const char *what, bool optional) {
        char buf[64];
        int r, ret = 0;

        r = ynode_expect(l->d, n, YNODE_SEQUENCE, what);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->n_items; i++) {
                const struct ynode *item = n->items[i];
                struct event_spec *e;

                if (!greedy_realloc((void **) v, allocated, *n_v + 1, sizeof(**v)))
                        return -ENOMEM;
                e = &(*v)[(*n_v)++];
                *e = (struct event_spec) { .optional = optional, .loc = item->loc };

                if (item->type == YNODE_MAPPING)
                        r = load_event_mapping(l, e, item);
                else if (item->type == YNODE_SCALAR && !ynode_is_null(item))
                        r = load_event_scalar(l, e, item);
                else
                        r = diags_error(l->d, &item->loc,
                                        "event: expected an event name, a raw number "
                                        "or a mapping with 'select', got %s",
                                        ynode_describe(item, buf));
                if (r < 0) {
                        free(e->name);
                        (*n_v)--;
                }
                if (collect(&ret, r))
                        return ret;
        }
        return ret;
}

static int load_fixed(struct loader *l, struct profile *prof, const struct ynode *n) {
        char buf[64];
        uint64_t v;
        int ret = 0;

        prof->fixed_loc = n->loc;
        if (n->type == YNODE_SCALAR && streq(n->value, "auto")) {
                prof->fixed_mode = FIXED_AUTO;
                return 0;
        }
        if (n->type != YNODE_SEQUENCE)
                return diags_error(l->d, &n->loc,
                                   "fixed_counters: expected 'auto' or a list of indices 0-31, got %s",
                                   ynode_describe(n, buf));
        prof->fixed_mode = FIXED_LIST;
        prof->fixed_bitmap = 0;
        for (size_t i = 0; i < n->n_items; i++) {
                int r = ynode_get_uint(l->d, n->items[i], "fixed_counters", 0, 31, "an index 0-31", &v);

                if (r == 0)
                        prof->fixed_bitmap |= UINT32_C(1) << v;
                if (collect(&ret, r))
                        return ret;
        }
        return ret;
}

/* The body of one profile into prof: every key checked, each error
 * reported and the next key checked.  0, -EINVAL or -ENOMEM. */
static int load_profile_body(struct loader *l, struct profile *prof, const struct ynode *body) {
        static const char *const tier_words[] = { "tenant", "trusted" };
        static const char *const pmu_words[] = { "on", "off" };
        enum { DESCRIPTION, TIER, EXTENDS, EVENTS, OPTIONAL, FIXED, PMU, ACKNOWLEDGE };
        struct ynode_field f[] = {
                { "description" }, { "tier" }, { "extends" }, { "events" },
                { "optional" }, { "fixed_counters" }, { "pmu" }, { "acknowledge_shared" },
        };
        const char *text;
        int r, ret;

        r = ynode_map_fields(l->d, body, "profile", f, ELEMENTSOF(f), NULL);
        if (r == -ENOMEM || (r < 0 && body->type != YNODE_MAPPING))
                return r;
        ret = r;

        if (f[DESCRIPTION].value) {
                r = ynode_get_text(l->d, f[DESCRIPTION].value, "description", "text", &text);
                if (r == 0) {
                        prof->description = strdup(text);
                        if (!prof->description)
                                return -ENOMEM;
                }
                if (collect(&ret, r))
                        return ret;
        }
        if (f[TIER].value) {
                r = ynode_get_word(l->d, f[TIER].value, "tier", tier_words, ELEMENTSOF(tier_words),
                                   "tenant or trusted");
                if (r >= 0) {
                        prof->tier = r == 0 ? TIER_TENANT : TIER_TRUSTED;
                        prof->tier_loc = f[TIER].value->loc;
                }
                if (collect(&ret, r))
                        return ret;
        }
        if (f[EXTENDS].value) {
                r = get_profile_name(l, f[EXTENDS].value, "extends", &text);
                if (r == 0) {
                        prof->extends = strdup(text);
                        if (!prof->extends)
                                return -ENOMEM;
                        prof->extends_loc = f[EXTENDS].value->loc;
                }
                if (collect(&ret, r))
                        return ret;
        }
        /* events: first, then optional:, whatever their order in the file. */
        if (f[EVENTS].value &&
            collect(&ret, load_events(l, &prof->events, &prof->n_events, &prof->allocated_events,
                                      f[EVENTS].value, "events", false)))
                return ret;
        if (f[OPTIONAL].value &&
            collect(&ret, load_events(l, &prof->events, &prof->n_events, &prof->allocated_events,
                                      f[OPTIONAL].value, "optional", true)))
                return ret;
        if (f[ACKNOWLEDGE].value) {
                prof->acks_loc = f[ACKNOWLEDGE].key_node->loc;
                if (collect(&ret, load_events(l, &prof->acks, &prof->n_acks, &prof->allocated_acks,
                                              f[ACKNOWLEDGE].value, "acknowledge_shared", false)))
                        return ret;
        }
        if (f[FIXED].value && collect(&ret, load_fixed(l, prof, f[FIXED].value)))
                return ret;
        if (f[PMU].value) {
                r = ynode_get_word(l->d, f[PMU].value, "pmu", pmu_words, ELEMENTSOF(pmu_words), "on or off");
                if (r >= 0) {
                        prof->pmu = r == 0 ? PMU_ON : PMU_OFF;
                        prof->pmu_loc = f[PMU].value->loc;
                }
                if (collect(&ret, r))
                        return ret;
        }
        return ret;
}

/* repeated: the key repeats one of the same mapping, reported already. */
static int load_profile(struct loader *l, const struct ynode *key, const struct ynode *body, bool repeated) {
        struct policy *p = l->p;
        const struct profile *old;
        struct profile *prof;
        char buf[64], *name;
        int r, ret = 0;

        /* A repeat was reported as one, and its name where first written. */
        old = policy_find_profile(p, key->value);
        if (repeated)
                ret = -EINVAL;
        else if (!name_valid(key->value, "_.-", PROFILE_NAME_MAX))
                ret = diags_error(l->d, &key->loc, "profile: expected " PROFILE_NAME_EXPECTED ", got %s",
                                  ynode_describe(key, buf));
        else if (old)
                ret = diags_error(l->d, &key->loc, "profile '%s' already defined at %s:%u:%u",
                                  key->value, old->loc.file, old->loc.line, old->loc.column);
        if (ret == -ENOMEM)
                return ret;
        if (ret < 0) {
                /* Not one to keep; what its body says is checked all the same. */
                struct profile scratch = { .loc = key->loc, .source_file = l->file };

                r = load_profile_body(l, &scratch, body);
                profile_done(&scratch);
                return r == -ENOMEM ? r : -EINVAL;
        }

        /* Appended before its body is read: on error the policy holds a
         * partial profile, marked broken, which policy_free() frees like
         * any other. */
        name = strdup(key->value);
        if (!name || !GREEDY_REALLOC(p->profiles, p->allocated_profiles, p->n_profiles + 1)) {
                free(name);
                return -ENOMEM;
        }
        prof = &p->profiles[p->n_profiles++];
        *prof = (struct profile) { .name = name, .loc = key->loc, .source_file = l->file };

        r = load_profile_body(l, prof, body);
        prof->broken = r < 0;
        return r;
}

static int load_profiles(struct loader *l, const struct ynode *n) {
        _cleanup_free_ bool *repeated = NULL;
        int r, ret = 0;

        r = ynode_expect(l->d, n, YNODE_MAPPING, "profiles");
        if (r < 0) {
                l->p->incomplete = true;
                return r;
        }
        repeated = calloc(n->n_items / 2 + 1, sizeof(*repeated));
        if (!repeated)
                return -ENOMEM;
        if (collect(&ret, ynode_check_duplicates(l->d, n, "profiles", repeated)))
                return ret;
        for (size_t i = 0; i < n->n_items; i += 2)
                if (collect(&ret, load_profile(l, n->items[i], n->items[i + 1], repeated[i / 2])))
                        return ret;
        return ret;
}

#define MATCH_KEYS_EXPECTED "name, uuid, label.<key>, exe, comm, uid, gid, user, group, cgroup, unit, slice, " \
        "machine or client"

/* An unknown match key, with the closest valid one: `lable.tier` is
 * offered `label.tier`, keeping what follows the dot. */
static int unknown_match_key(struct loader *l, const struct ynode *key) {
        static const char *const keys[] = {
                "name", "uuid", "exe", "comm", "uid", "gid", "user", "group", "cgroup", "unit", "slice",
                "machine", "client", "label",
        };
        _cleanup_free_ char *head = NULL, *label = NULL;
        struct suggestion s;
        const char *dot = strchr(key->value, '.');

        s = suggestion_start(key->value);
        for (size_t i = 0; i + 1 < ELEMENTSOF(keys); i++)
                suggestion_offer(&s, keys[i], false);
        if (dot && dot[1]) {
                /* a misspelt "label", judged on its own length */
                struct suggestion h;

                head = strndup(key->value, dot - key->value);
                if (!head)
                        return -ENOMEM;
                h = suggestion_start(head);
                suggestion_offer(&h, "label", false);
                if (h.best && h.distance < s.distance) {
                        if (asprintf(&label, "label%s", dot) < 0)
                                return -ENOMEM;
                        s.best = label;
                }
        }
        return diags_error(l->d, &key->loc, "match: unknown key '%s' (expected " MATCH_KEYS_EXPECTED ")%s%s%s",
                           key->value, s.best ? "; did you mean '" : "", strempty(s.best), s.best ? "'?" : "");
}

static int load_match(struct loader *l, struct rule *rule, const struct ynode *n) {
        _cleanup_free_ bool *repeated = NULL;
        size_t allocated = 0;
        const char *text;
        int r, ret = 0;

        /* An empty `match: {}` is allowed: it matches every VM. */
        if (n->type != YNODE_MAPPING)
                return ynode_expect(l->d, n, YNODE_MAPPING, "match");
        repeated = calloc(n->n_items / 2 + 1, sizeof(*repeated));
        if (!repeated)
                return -ENOMEM;
        if (collect(&ret, ynode_check_duplicates(l->d, n, "match", repeated)))
                return ret;
        for (size_t i = 0; i < n->n_items; i += 2) {
                const struct ynode *key = n->items[i], *value = n->items[i + 1];
                struct rule_match *m;

                if (repeated[i / 2])
                        continue;
                if (!match_key_is_valid(key->value)) {
                        if (collect(&ret, unknown_match_key(l, key)))
                                return ret;
                        continue;
                }
                r = ynode_get_text(l->d, value, key->value, "a glob", &text);
                if (r < 0) {
                        if (collect(&ret, r))
                                return ret;
                        continue;
                }
                if (!GREEDY_REALLOC(rule->matches, allocated, rule->n_matches + 1))
                        return -ENOMEM;
                m = &rule->matches[rule->n_matches];
                *m = (struct rule_match) { .key = strdup(key->value), .value = strdup(text), .loc = key->loc };
                rule->n_matches++;
                if (!m->key || !m->value)
                        return -ENOMEM;
        }
        return ret;
}

static int load_rule(struct loader *l, const struct ynode *item) {
        enum { MATCH, PROFILE };
        struct ynode_field f[] = { { "match" }, { "profile" } };
        struct policy *p = l->p;
        struct rule *rule;
        const char *text;
        int r, ret;

        r = ynode_map_fields(l->d, item, "rule", f, ELEMENTSOF(f), NULL);
        if (r == -ENOMEM || (r < 0 && item->type != YNODE_MAPPING))
                return r;
        ret = r;
        /* Missing keys only where none was misspelt (it may be the one). */
        if ((!f[MATCH].value || !f[PROFILE].value) && ret == 0 &&
            collect(&ret, diags_error(l->d, &item->loc, "rule: missing '%s' (expected 'match' and 'profile')",
                                      f[MATCH].value ? "profile" : "match")))
                return ret;

        if (!GREEDY_REALLOC(p->rules, p->allocated_rules, p->n_rules + 1))
                return -ENOMEM;
        rule = &p->rules[p->n_rules++];
        *rule = (struct rule) { .loc = item->loc };

        if (f[PROFILE].value) {
                rule->profile_loc = f[PROFILE].value->loc;
                r = get_profile_name(l, f[PROFILE].value, "profile", &text);
                if (r == 0) {
                        rule->profile = strdup(text);
                        if (!rule->profile)
                                return -ENOMEM;
                }
                if (collect(&ret, r))
                        return ret;
        }
        if (f[MATCH].value && collect(&ret, load_match(l, rule, f[MATCH].value)))
                return ret;
        rule->broken = ret < 0;
        return ret;
}

static int load_rules(struct loader *l, const struct ynode *n) {
        int r, ret = 0;

        r = ynode_expect(l->d, n, YNODE_SEQUENCE, "rules");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->n_items; i++)
                if (collect(&ret, load_rule(l, n->items[i])))
                        return ret;
        return ret;
}

static int load_document(struct loader *l, const struct ynode *root) {
        enum { VERSION, SETTINGS, PROFILES, RULES };
        struct ynode_field f[] = { { "version" }, { "settings" }, { "profiles" }, { "rules" } };
        uint64_t v;
        int r, ret;

        r = ynode_map_fields(l->d, root, "top level", f, ELEMENTSOF(f), NULL);
        if (r == -ENOMEM)
                return r;
        /* A misspelt or repeated `profiles`, or no mapping at all: profiles
         * may be missing that the rest refers to. */
        if (r < 0)
                l->p->incomplete = true;
        if (r < 0 && root->type != YNODE_MAPPING)
                return r;
        ret = r;

        if (f[VERSION].value && collect(&ret, ynode_get_uint(l->d, f[VERSION].value, "version", 1, 1, "1", &v)))
                return ret;
        if (f[SETTINGS].value && collect(&ret, load_settings(l, f[SETTINGS].value)))
                return ret;
        if (l->p->settings_only)
                return ret;
        if (f[PROFILES].value && collect(&ret, load_profiles(l, f[PROFILES].value)))
                return ret;
        if (f[RULES].value && collect(&ret, load_rules(l, f[RULES].value)))
                return ret;
        return ret;
}

/* The file name as owned by the policy, so locations outlive the caller's
 * string. */
static const char *intern_file(struct policy *p, const char *filename) {
        for (char **i = p->files; i && *i; i++)
                if (streq(*i, filename))
                        return *i;
        if (strv_extend(&p->files, filename) < 0)
                return NULL;
        return p->files[strv_length(p->files) - 1];
}

int policy_load_buffer(struct policy *p, const char *filename,
                       const char *buf, size_t len, struct diags *d) {
        _cleanup_(ynode_freep) struct ynode *root = NULL;
        struct loader l = { .p = p, .d = d };
        size_t n_errors = d ? d->n_errors : 0, n_diags = d ? d->n : 0;
        int r;

        assert(p);
        assert(buf || len == 0);

        l.file = intern_file(p, filename ?: "<input>");
        if (!l.file)
                return -ENOMEM;
        r = ynode_parse(l.file, buf, len, &root, d);
        if (r < 0) {
                p->incomplete = true;
                return r;
        }
        /* No document at all, or only `---`: nothing to merge. */
        if (!root || ynode_is_null(root))
                return 0;
        r = load_document(&l, root);
        /* Going on after errors must never let one through. */
        if (r == 0 && d && d->n_errors > n_errors)
                r = -EINVAL;
        /* A mapping's unknown keys are found before its values are read:
         * report them all in the order of the file. */
        if (d)
                diags_sort_by_place(d, n_diags);
        return r;
}
