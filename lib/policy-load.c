/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy-load.c — the schema of pmufilterd.yaml(5): walks the
 * ynode tree of one file and merges it into a struct policy.  Every mapping
 * is checked as a whole: unknown keys and duplicate keys are errors at their
 * line:column.  The first error ends the file (one precise message is worth
 * more than a cascade).  Reading files from disk is policy-files.c's.
 *
 * `version` is optional in every file (conf.d fragments need not repeat it);
 * where present it must be 1.
 */
#include <inttypes.h>

#include "policy.h"
#include "policy-yaml.h"

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

static int load_settings(struct loader *l, const struct ynode *n) {
        static const char *const adopt_words[] = { [ADOPT_NONE] = "none", [ADOPT_PTRACE] = "ptrace" };
        static const char *const unmanaged_words[] = { [UNMANAGED_WARN] = "warn", [UNMANAGED_KILL] = "kill" };
        struct settings *s = &l->p->settings;
        char buf[64];
        struct ynode_field f[] = {
                { "socket" }, { "attach_timeout_ms" }, { "adopt" }, { "unmanaged" }, { "default_profile" },
                { "unattached_sessions_per_uid" },
        };
        const char *text;
        uint64_t v;
        int r;

        r = ynode_map_fields(l->d, n, "settings", f, ELEMENTSOF(f), NULL);
        if (r < 0)
                return r;
        if (f[0].value) {
                r = ynode_get_text(l->d, f[0].value, "socket", "an absolute path", &text);
                if (r < 0)
                        return r;
                if (text[0] != '/' || strlen(text) > SUN_PATH_MAX)
                        return diags_error(l->d, &f[0].value->loc,
                                           "socket: expected an absolute path of at most %d bytes, got %s",
                                           SUN_PATH_MAX, ynode_describe(f[0].value, buf));
                if (free_and_strdup(&s->socket, text) < 0)
                        return -ENOMEM;
        }
        if (f[1].value) {
                r = ynode_get_uint(l->d, f[1].value, "attach_timeout_ms", 1, 3600000, "an integer 1-3600000", &v);
                if (r < 0)
                        return r;
                s->attach_timeout_ms = (unsigned) v;
        }
        if (f[2].value) {
                r = ynode_get_word(l->d, f[2].value, "adopt", adopt_words, ELEMENTSOF(adopt_words),
                                   "none or ptrace");
                if (r < 0)
                        return r;
                s->adopt = r;
        }
        if (f[3].value) {
                r = ynode_get_word(l->d, f[3].value, "unmanaged", unmanaged_words, ELEMENTSOF(unmanaged_words),
                             "warn or kill");
                if (r < 0)
                        return r;
                s->unmanaged = r;
        }
        if (f[4].value) {
                r = get_profile_name(l, f[4].value, "default_profile", &text);
                if (r < 0)
                        return r;
                if (free_and_strdup(&s->default_profile, text) < 0)
                        return -ENOMEM;
                s->default_profile_loc = f[4].value->loc;
        }
        if (f[5].value) {
                r = ynode_get_uint(l->d, f[5].value, "unattached_sessions_per_uid", 1, 65536, "an integer 1-65536", &v);
                if (r < 0)
                        return r;
                s->unattached_sessions_per_uid = (unsigned) v;
        }
        return 0;
}

#define EVENT_EXPECTED "'umask' (0-255 or 'any') or 'mask'+'match'"

static int load_event_mapping(struct loader *l, struct event_spec *e, const struct ynode *n) {
        enum { SELECT, UMASK, MASK, MATCH, EXCLUDE };
        struct ynode_field f[] = { { "select" }, { "umask" }, { "mask" }, { "match" }, { "exclude" } };
        uint64_t v;
        int r;

        r = ynode_map_fields(l->d, n, "event", f, ELEMENTSOF(f), EVENT_EXPECTED);
        if (r < 0)
                return r;
        if (!f[SELECT].value)
                return diags_error(l->d, &n->loc, "event: expected 'select' (0-0xfff) with " EVENT_EXPECTED);
        r = ynode_get_uint(l->d, f[SELECT].value, "select", 0, 0xfff, "an integer 0-0xfff", &v);
        if (r < 0)
                return r;
        e->select = (uint16_t) v;

        if (f[UMASK].value && f[MASK].value)
                return diags_error(l->d, &f[MASK].key_node->loc,
                                   "event: expected " EVENT_EXPECTED ", got both 'umask' and 'mask'");
        if (f[UMASK].value) {
                if (f[MATCH].value || f[EXCLUDE].value)
                        return diags_error(l->d, &(f[MATCH].key_node ?: f[EXCLUDE].key_node)->loc,
                                           "event: '%s' goes with 'mask', not with 'umask'",
                                           f[MATCH].value ? "match" : "exclude");
                if (f[UMASK].value->type == YNODE_SCALAR && streq(f[UMASK].value->value, "any")) {
                        e->kind = EVENT_SELECT_ANY;
                        return 0;
                }
                r = ynode_get_uint(l->d, f[UMASK].value, "umask", 0, 255, "an integer 0-255 or 'any'", &v);
                if (r < 0)
                        return r;
                e->kind = EVENT_SELECT_UMASK;
                e->umask = (uint8_t) v;
                return 0;
        }
        if (!f[MASK].value || !f[MATCH].value)
                return diags_error(l->d, &n->loc, "event: expected " EVENT_EXPECTED " beside 'select'%s",
                                   f[MASK].value ? ", got 'mask' without 'match'" :
                                   f[MATCH].value ? ", got 'match' without 'mask'" : "");
        e->kind = EVENT_MASKED;
        r = ynode_get_uint(l->d, f[MASK].value, "mask", 0, 255, "an integer 0-255", &v);
        if (r < 0)
                return r;
        e->mask = (uint8_t) v;
        r = ynode_get_uint(l->d, f[MATCH].value, "match", 0, 255, "an integer 0-255", &v);
        if (r < 0)
                return r;
        e->match = (uint8_t) v;
        if (f[EXCLUDE].value)
                return ynode_get_bool(l->d, f[EXCLUDE].value, "exclude", &e->exclude);
        return 0;
}

/* A plain scalar starting with a digit is a raw number (libpfm4 names and
 * perf aliases never start with one); any other scalar is a name. */
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
 * its acknowledgements (acknowledge_shared:), which take the same forms. */
static int load_events(struct loader *l, struct event_spec **v, size_t *n_v, size_t *allocated,
                       const struct ynode *n, const char *what, bool optional) {
        char buf[64];
        int r;

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
                if (r < 0)
                        return r;
        }
        return 0;
}

static int load_fixed(struct loader *l, struct profile *prof, const struct ynode *n) {
        char buf[64];
        uint64_t v;
        int r;

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
                r = ynode_get_uint(l->d, n->items[i], "fixed_counters", 0, 31, "an index 0-31", &v);
                if (r < 0)
                        return r;
                prof->fixed_bitmap |= UINT32_C(1) << v;
        }
        return 0;
}

static int load_profile(struct loader *l, const struct ynode *key, const struct ynode *body) {
        static const char *const tier_words[] = { "tenant", "trusted" };
        static const char *const pmu_words[] = { "on", "off" };
        enum { DESCRIPTION, TIER, EXTENDS, EVENTS, OPTIONAL, FIXED, PMU, ACKNOWLEDGE };
        struct ynode_field f[] = {
                { "description" }, { "tier" }, { "extends" }, { "events" },
                { "optional" }, { "fixed_counters" }, { "pmu" }, { "acknowledge_shared" },
        };
        struct policy *p = l->p;
        const struct profile *old;
        struct profile *prof;
        const char *text;
        char buf[64], *name;
        int r;

        if (!name_valid(key->value, "_.-", PROFILE_NAME_MAX))
                return diags_error(l->d, &key->loc, "profile: expected " PROFILE_NAME_EXPECTED ", got %s",
                                   ynode_describe(key, buf));
        old = policy_find_profile(p, key->value);
        if (old)
                return diags_error(l->d, &key->loc, "profile '%s' already defined at %s:%u:%u",
                                   key->value, old->loc.file, old->loc.line, old->loc.column);
        r = ynode_map_fields(l->d, body, "profile", f, ELEMENTSOF(f), NULL);
        if (r < 0)
                return r;

        /* Appended before its body is read: on error the policy holds a
         * partial profile, which policy_free() frees like any other. */
        name = strdup(key->value);
        if (!name || !GREEDY_REALLOC(p->profiles, p->allocated_profiles, p->n_profiles + 1)) {
                free(name);
                return -ENOMEM;
        }
        prof = &p->profiles[p->n_profiles++];
        *prof = (struct profile) { .name = name, .loc = key->loc, .source_file = l->file };

        if (f[DESCRIPTION].value) {
                r = ynode_get_text(l->d, f[DESCRIPTION].value, "description", "text", &text);
                if (r < 0)
                        return r;
                prof->description = strdup(text);
                if (!prof->description)
                        return -ENOMEM;
        }
        if (f[TIER].value) {
                r = ynode_get_word(l->d, f[TIER].value, "tier", tier_words, ELEMENTSOF(tier_words),
                                   "tenant or trusted");
                if (r < 0)
                        return r;
                prof->tier = r == 0 ? TIER_TENANT : TIER_TRUSTED;
                prof->tier_loc = f[TIER].value->loc;
        }
        if (f[EXTENDS].value) {
                r = get_profile_name(l, f[EXTENDS].value, "extends", &text);
                if (r < 0)
                        return r;
                prof->extends = strdup(text);
                if (!prof->extends)
                        return -ENOMEM;
                prof->extends_loc = f[EXTENDS].value->loc;
        }
        /* events: first, then optional:, whatever their order in the file. */
        if (f[EVENTS].value) {
                r = load_events(l, &prof->events, &prof->n_events, &prof->allocated_events,
                                f[EVENTS].value, "events", false);
                if (r < 0)
                        return r;
        }
        if (f[OPTIONAL].value) {
                r = load_events(l, &prof->events, &prof->n_events, &prof->allocated_events,
                                f[OPTIONAL].value, "optional", true);
                if (r < 0)
                        return r;
        }
        if (f[ACKNOWLEDGE].value) {
                r = load_events(l, &prof->acks, &prof->n_acks, &prof->allocated_acks,
                                f[ACKNOWLEDGE].value, "acknowledge_shared", false);
                if (r < 0)
                        return r;
                prof->acks_loc = f[ACKNOWLEDGE].key_node->loc;
        }
        if (f[FIXED].value) {
                r = load_fixed(l, prof, f[FIXED].value);
                if (r < 0)
                        return r;
        }
        if (f[PMU].value) {
                r = ynode_get_word(l->d, f[PMU].value, "pmu", pmu_words, ELEMENTSOF(pmu_words), "on or off");
                if (r < 0)
                        return r;
                prof->pmu = r == 0 ? PMU_ON : PMU_OFF;
                prof->pmu_loc = f[PMU].value->loc;
        }
        return 0;
}

static int load_profiles(struct loader *l, const struct ynode *n) {
        int r;

        r = ynode_expect(l->d, n, YNODE_MAPPING, "profiles");
        if (r < 0)
                return r;
        r = ynode_check_duplicates(l->d, n, "profiles");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->n_items; i += 2) {
                r = load_profile(l, n->items[i], n->items[i + 1]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int load_match(struct loader *l, struct rule *rule, const struct ynode *n) {
        size_t allocated = 0;
        const char *text;
        int r;

        /* An empty `match: {}` is allowed: it matches every VM. */
        if (n->type != YNODE_MAPPING)
                return ynode_expect(l->d, n, YNODE_MAPPING, "match");
        r = ynode_check_duplicates(l->d, n, "match");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->n_items; i += 2) {
                const struct ynode *key = n->items[i], *value = n->items[i + 1];
                struct rule_match *m;

                if (!match_key_is_valid(key->value))
                        return diags_error(l->d, &key->loc,
                                           "match: unknown key '%s' (expected name, uuid, label.<key>, exe, comm, "
                                           "uid, gid, user, group, cgroup, unit, slice, machine or client)",
                                           key->value);
                r = ynode_get_text(l->d, value, key->value, "a glob", &text);
                if (r < 0)
                        return r;
                if (!GREEDY_REALLOC(rule->matches, allocated, rule->n_matches + 1))
                        return -ENOMEM;
                m = &rule->matches[rule->n_matches];
                *m = (struct rule_match) { .key = strdup(key->value), .value = strdup(text), .loc = key->loc };
                rule->n_matches++;
                if (!m->key || !m->value)
                        return -ENOMEM;
        }
        return 0;
}

static int load_rules(struct loader *l, const struct ynode *n) {
        struct policy *p = l->p;
        const char *text;
        int r;

        r = ynode_expect(l->d, n, YNODE_SEQUENCE, "rules");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->n_items; i++) {
                struct ynode_field f[] = { { "match" }, { "profile" } };
                const struct ynode *item = n->items[i];
                struct rule *rule;

                r = ynode_map_fields(l->d, item, "rule", f, ELEMENTSOF(f), NULL);
                if (r < 0)
                        return r;
                if (!f[0].value || !f[1].value)
                        return diags_error(l->d, &item->loc, "rule: missing '%s' (expected 'match' and 'profile')",
                                           f[0].value ? "profile" : "match");
                if (!GREEDY_REALLOC(p->rules, p->allocated_rules, p->n_rules + 1))
                        return -ENOMEM;
                rule = &p->rules[p->n_rules++];
                *rule = (struct rule) { .loc = item->loc, .profile_loc = f[1].value->loc };

                r = get_profile_name(l, f[1].value, "profile", &text);
                if (r < 0)
                        return r;
                rule->profile = strdup(text);
                if (!rule->profile)
                        return -ENOMEM;
                r = load_match(l, rule, f[0].value);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int load_document(struct loader *l, const struct ynode *root) {
        enum { VERSION, SETTINGS, PROFILES, RULES };
        struct ynode_field f[] = { { "version" }, { "settings" }, { "profiles" }, { "rules" } };
        uint64_t v;
        int r;

        r = ynode_map_fields(l->d, root, "top level", f, ELEMENTSOF(f), NULL);
        if (r < 0)
                return r;
        if (f[VERSION].value) {
                r = ynode_get_uint(l->d, f[VERSION].value, "version", 1, 1, "1", &v);
                if (r < 0)
                        return r;
        }
        if (f[SETTINGS].value) {
                r = load_settings(l, f[SETTINGS].value);
                if (r < 0)
                        return r;
        }
        if (f[PROFILES].value) {
                r = load_profiles(l, f[PROFILES].value);
                if (r < 0)
                        return r;
        }
        if (f[RULES].value)
                return load_rules(l, f[RULES].value);
        return 0;
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
        int r;

        assert(p);
        assert(buf || len == 0);

        l.file = intern_file(p, filename ?: "<input>");
        if (!l.file)
                return -ENOMEM;
        r = ynode_parse(l.file, buf, len, &root, d);
        if (r < 0)
                return r;
        /* No document at all, or only `---`: nothing to merge. */
        if (!root || ynode_is_null(root))
                return 0;
        return load_document(&l, root);
}
