/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-state.c — state_parse() (daemon/state.h), the reader of the state
 * the daemon persists for D-Bus changes (default profile, per-VM profiles).
 * The file is ours, but it survives upgrades, crashes mid-edit by hand and
 * disks that lie, and the daemon reads it at every start.
 *
 * Properties: no crash or leak; on failure *ret untouched, -EINVAL with a
 * reason (or -ENOMEM); on success every VM key is of a form state.h
 * names ("machine:UUID", "uid:N/uuid:UUID", "uid:N/name:NAME", or version
 * 1's "uuid:..." and "name:..."), keys unique and in state.h's order (each
 * found by state_entry_get(), each claim told by state_has_claim() as a
 * walk tells it); and what state_save() writes of it, state_load() reads back
 * as the same state, grants' expiries too (the writer is total on whatever
 * the reader accepts).
 */
#include <sys/stat.h>

#include "fuzz.h"
#include "state.h"
#include "yaml-dl.h"

static char *dir, *path;

static void cleanup(void) {
        if (path)
                (void) unlink(path);
        if (dir)
                (void) rmdir(dir);
        free(path);
        free(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        const char *tmp = getenv("TMPDIR");

        /* tmpfs when there is one: state_save() fsyncs every write. */
        if (!tmp)
                tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        if (asprintf(&dir, "%s/fuzz-state.XXXXXX", tmp) < 0 || !mkdtemp(dir) ||
            asprintf(&path, "%s/state.yaml", dir) < 0) {
                fprintf(stderr, "fuzz-state: cannot make a temporary directory in %s: %m\n", tmp);
                abort();
        }
        atexit(cleanup);
        /* libyaml held for the whole run: not loaded again per input. */
        if (yaml_dl_acquire(NULL) < 0) {
                fprintf(stderr, "fuzz-state: libyaml cannot be loaded\n");
                abort();
        }
        return 0;
}

/* The key forms of lib/state.h, written apart from state_key_valid(). */
static bool key_form_ok(const char *key) {
        const char *p;

        if ((p = startswith(key, "machine:")))
                return *p;
        if (startswith(key, "uuid:") || startswith(key, "name:"))
                return true;
        p = startswith(key, "uid:");
        if (!p || !(*p >= '0' && *p <= '9'))
                return false;
        while (*p >= '0' && *p <= '9')
                p++;
        return (startswith(p, "/uuid:") || startswith(p, "/name:")) && p[6];
}

/* The order of lib/state.h, (claim, key), written apart from state.c. */
static int key_order(const char *a, const char *b) {
        const char *ca = a, *cb = b, *p;
        int r;

        if ((p = startswith(a, "uid:")) && (p = strchr(p, '/')))
                ca = p + 1;
        if ((p = startswith(b, "uid:")) && (p = strchr(p, '/')))
                cb = p + 1;
        r = strcmp(ca, cb);
        return r != 0 ? r : strcmp(a, b);
}

/* What a walk of s says of "<kind>:<value>" (value NULL: any of kind). */
static bool walk_has_claim(const struct state *s, const char *kind, const char *value) {
        for (size_t i = 0; i < s->n; i++) {
                const char *c = s->v[i].key, *p;

                if ((p = startswith(c, "uid:")) && (p = strchr(p, '/')))
                        c = p + 1;
                if ((p = startswith(c, kind)) && *p == ':' && (!value || streq(p + 1, value)))
                        return true;
        }
        return false;
}

/* state_has_claim() says what the walk says, for each entry's own claim
 * and for claims just beside it. */
static void check_claims(const struct state *s) {
        static const char *const kinds[] = { "machine", "uuid", "name" };

        for (size_t k = 0; k < ELEMENTSOF(kinds); k++)
                fuzz_check(state_has_claim(s, kinds[k], NULL) == walk_has_claim(s, kinds[k], NULL),
                           "state_has_claim(%s, any) differs from a walk", kinds[k]);
        for (size_t i = 0; i < s->n; i++)
                for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
                        const char *c = s->v[i].key, *p;
                        _cleanup_free_ char *longer = NULL;

                        if ((p = startswith(c, "uid:")) && (p = strchr(p, '/')))
                                c = p + 1;
                        if (!(p = startswith(c, kinds[k])) || *p != ':')
                                continue;
                        fuzz_check(state_has_claim(s, kinds[k], p + 1), "claim of \"%s\" not found", s->v[i].key);
                        if (asprintf(&longer, "%s\x01", p + 1) < 0)
                                abort();
                        fuzz_check(state_has_claim(s, kinds[k], longer) == walk_has_claim(s, kinds[k], longer),
                                   "state_has_claim(%s, \"%s\") differs from a walk", kinds[k], longer);
                        if (p[1]) {
                                longer[strlen(longer) - 2] = 0;         /* one byte shorter */
                                fuzz_check(state_has_claim(s, kinds[k], longer) ==
                                           walk_has_claim(s, kinds[k], longer),
                                           "state_has_claim(%s, \"%s\") differs from a walk", kinds[k], longer);
                        }
                }
}

static void check_same(const struct state *a, const struct state *b) {
        fuzz_check(streq_ptr(a->default_profile, b->default_profile),
                   "default_profile \"%s\" read back as \"%s\"", strna(a->default_profile), strna(b->default_profile));
        fuzz_check(a->n == b->n, "%zu entries read back as %zu", a->n, b->n);
        for (size_t i = 0; i < a->n; i++) {
                const char *p = state_get(b, a->v[i].key);

                fuzz_check(p, "entry \"%s\" lost on reading back", a->v[i].key);
                fuzz_check(streq(p, a->v[i].profile), "entry \"%s\": \"%s\" read back as \"%s\"",
                           a->v[i].key, a->v[i].profile, p);
                fuzz_check(state_entry_get(b, a->v[i].key)->expires_usec == a->v[i].expires_usec,
                           "entry \"%s\": its expiry changed on reading back", a->v[i].key);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct state s, untouched, back = {};
        _cleanup_free_ char *error = NULL, *error2 = NULL;
        int r;

        if (!path)
                (void) LLVMFuzzerInitialize(NULL, NULL);

        memset(&s, 0xa5, sizeof(s));
        untouched = s;
        r = state_parse((const char *) data, size, &s, &error);
        fuzz_check(r == 0 || r == -EINVAL || r == -ENOMEM, "returned %d", r);
        if (r < 0) {
                fuzz_check(memcmp(&s, &untouched, sizeof(s)) == 0, "*ret written on failure");
                fuzz_check(r == -ENOMEM || error, "-EINVAL without a reason");
                return 0;
        }

        for (size_t i = 0; i < s.n; i++) {
                fuzz_check(key_form_ok(s.v[i].key), "key \"%s\"", s.v[i].key);
                fuzz_check(s.v[i].profile, "key \"%s\" without a profile", s.v[i].key);
                for (size_t j = 0; j < i; j++)
                        fuzz_check(!streq(s.v[i].key, s.v[j].key), "key \"%s\" twice", s.v[i].key);
                fuzz_check(i == 0 || key_order(s.v[i - 1].key, s.v[i].key) < 0, "key \"%s\" after \"%s\"",
                           s.v[i].key, s.v[i - 1].key);
                fuzz_check(state_entry_get(&s, s.v[i].key) == &s.v[i], "key \"%s\" not found", s.v[i].key);
        }

        check_claims(&s);

        r = state_save(path, &s);
        /* The writer refuses a file over STATE_FILE_MAX; what it writes of
         * an input is at most about five times the input (quotes, indents,
         * a control character as \x09), so only an input near a fifth of
         * the cap may be refused. */
        if (r == -EFBIG && size * 5 + 4096 > STATE_FILE_MAX) {
                state_done(&s);
                return 0;
        }
        fuzz_check(r == 0, "state_save: %s", strerror(-r));
        r = state_load(path, &back, &error2);
        fuzz_check(r == 0, "what state_save() wrote does not load: %s", strna(error2));
        check_same(&s, &back);

        state_done(&back);
        state_done(&s);
        return 0;
}
