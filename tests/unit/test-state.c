/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-state.c — the store of the changes made over D-Bus (lib/state.c):
 * kept in the order of (claim, key) through any sequence of sets and
 * removals, found by binary search exactly as a walk finds it, written in
 * that order and read back the same, whatever order a file lists them in;
 * never written larger than it is read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fileio.h"
#include "state.h"

/* The claim of a key, written apart from lib/state.c's. */
static const char *claim(const char *key) {
        const char *slash = strchr(key, '/');

        return startswith(key, "uid:") && slash ? slash + 1 : key;
}

static void check_order(const struct state *s) {
        for (size_t i = 1; i < s->n; i++) {
                int c = strcmp(claim(s->v[i - 1].key), claim(s->v[i].key));

                if (c > 0 || (c == 0 && strcmp(s->v[i - 1].key, s->v[i].key) >= 0))
                        fail_msg("entry %zu \"%s\" after \"%s\"", i, s->v[i].key, s->v[i - 1].key);
        }
}

/* What a walk of the entries says of "<kind>:<value>". */
static bool walk_has_claim(const struct state *s, const char *kind, const char *value) {
        for (size_t i = 0; i < s->n; i++) {
                const char *c = claim(s->v[i].key), *v = startswith(c, kind);

                if (v && *v == ':' && (!value || streq(v + 1, value)))
                        return true;
        }
        return false;
}

static void key_of(unsigned i, char *buf, size_t size) {
        static const char *const names[] = { "vm-1", "vm-10", "vm-2", "db", "u-1", "", "vm-1/x" };

        switch (i % 4) {
        case 0:
                snprintf(buf, size, "machine:m-%u", i % 7);
                break;
        case 1:
                snprintf(buf, size, "uid:%u/uuid:u-%u", i % 3 * 107, i % 5);
                break;
        case 2:
                snprintf(buf, size, "uid:%u/name:%s", i % 3, names[i % 7][0] ? names[i % 7] : "x");
                break;
        default:
                snprintf(buf, size, "%s:%s", i % 2 ? "uuid" : "name", names[i % 7][0] ? names[i % 7] : "y");
        }
}

static void test_order_and_lookup(void **unused) {
        struct state s = {};
        unsigned seed = 1;

        for (unsigned step = 0; step < 4000; step++) {
                char key[64];
                bool remove;
                size_t before = s.n;
                bool had;

                seed = seed * 1103515245 + 12345;
                key_of((seed >> 8) % 97, key, sizeof(key));
                remove = ((seed >> 20) % 3) == 0;
                had = state_get(&s, key) != NULL;
                assert_int_equal(state_set(&s, key, remove ? NULL : (step % 2 ? "tenant-a" : "tenant-b")), 0);
                assert_int_equal(s.n, before + (remove ? -(size_t) had : !had));
                check_order(&s);
                if (remove)
                        assert_null(state_get(&s, key));
                else
                        assert_string_equal(state_get(&s, key), step % 2 ? "tenant-a" : "tenant-b");
                /* Each entry found, and each claim told, as a walk does. */
                for (size_t i = 0; i < s.n; i++)
                        assert_ptr_equal(state_entry_get(&s, s.v[i].key), &s.v[i]);
                for (unsigned k = 0; k < 97; k += 5) {
                        char other[64];
                        const char *c;

                        key_of(k, other, sizeof(other));
                        c = claim(other);
                        for (const char *const *kind = (const char *const[]) { "machine", "uuid", "name", NULL };
                             *kind; kind++) {
                                const char *v = startswith(c, *kind);

                                assert_int_equal(state_has_claim(&s, *kind, NULL), walk_has_claim(&s, *kind, NULL));
                                if (v && *v == ':')
                                        assert_int_equal(state_has_claim(&s, *kind, v + 1),
                                                         walk_has_claim(&s, *kind, v + 1));
                        }
                }
        }
        /* A claim that only starts like one held is not held. */
        state_done(&s);
        assert_int_equal(state_set(&s, "uid:0/name:vm-10", "tenant-a"), 0);
        assert_false(state_has_claim(&s, "name", "vm-1"));
        assert_false(state_has_claim(&s, "name", "vm-100"));
        assert_false(state_has_claim(&s, "nam", NULL));
        assert_true(state_has_claim(&s, "name", "vm-10"));
        assert_false(state_has_claim(&s, "machine", NULL));
        state_done(&s);
}

static void test_file_order(void **unused) {
        static const char text[] =
                "version: 2\n"
                "vms:\n"
                "  \"uid:107/name:web\": tenant-a\n"
                "  \"machine:6f1c\": trusted\n"
                "  \"uid:0/name:db\": tenant-b\n"
                "  \"uid:0/uuid:u-1\": tenant-a\n"
                "  \"uid:0/name:web\": tenant-b\n"
                "expires_usec:\n"
                "  \"uid:0/name:web\": 1796000000000000\n";
        static const char *const order[] = {
                "machine:6f1c", "uid:0/name:db", "uid:0/name:web", "uid:107/name:web", "uid:0/uuid:u-1",
        };
        _cleanup_free_ char *error = NULL, *dir = strdup("/tmp/test-state.XXXXXX"), *path = NULL, *written = NULL;
        struct state s, back;
        size_t size;

        assert_int_equal(state_parse(text, strlen(text), &s, &error), 0);
        assert_int_equal(s.n, ELEMENTSOF(order));
        for (size_t i = 0; i < s.n; i++)
                assert_string_equal(s.v[i].key, order[i]);
        assert_true(state_entry_get(&s, "uid:0/name:web")->expires_usec == UINT64_C(1796000000000000));

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/state.yaml", dir) > 0);
        assert_int_equal(state_save_volatile(path, &s), 0);
        assert_int_equal(read_file_bounded(path, 1 << 20, 0, &written, &size), 0);
        /* The lines in that order, the changes of one name together. */
        for (size_t i = 0, at = 0; i < ELEMENTSOF(order); i++) {
                _cleanup_free_ char *line = NULL;
                const char *p;

                assert_true(asprintf(&line, "\n  \"%s\": ", order[i]) > 0);
                p = strstr(written + at, line);
                assert_non_null(p);
                at = (size_t) (p - written) + 1;
        }
        assert_int_equal(state_load(path, &back, &error), 0);
        assert_int_equal(back.n, s.n);
        for (size_t i = 0; i < s.n; i++) {
                assert_string_equal(back.v[i].key, s.v[i].key);
                assert_string_equal(back.v[i].profile, s.v[i].profile);
                assert_true(back.v[i].expires_usec == s.v[i].expires_usec);
        }
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
        state_done(&s);
        state_done(&back);
}

/* The writer refuses what the reader would: a file over STATE_FILE_MAX is
 * not written, and the one there stays. */
static void test_no_file_the_reader_refuses(void **unused) {
        _cleanup_free_ char *dir = strdup("/tmp/test-state.XXXXXX"), *path = NULL, *name = NULL, *error = NULL;
        struct state s = {}, back;
        size_t n;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/state.yaml", dir) > 0);
        assert_int_equal(state_set(&s, "uid:0/name:kept", "tenant-a"), 0);
        assert_int_equal(state_save_volatile(path, &s), 0);
        name = malloc(1001);
        assert_non_null(name);
        memset(name, 'n', 1000);
        name[1000] = 0;
        for (n = 0; n < STATE_FILE_MAX / 1000 + 1; n++) {
                _cleanup_free_ char *key = NULL;

                assert_true(asprintf(&key, "uid:%zu/name:%s", n, name) > 0);
                assert_int_equal(state_set(&s, key, "tenant-b"), 0);
        }
        assert_false(state_fits(&s));
        assert_int_equal(state_save_volatile(path, &s), -EFBIG);
        assert_int_equal(state_save(path, &s), -EFBIG);
        assert_int_equal(state_load(path, &back, &error), 0);
        assert_int_equal(back.n, 1);
        assert_string_equal(state_get(&back, "uid:0/name:kept"), "tenant-a");
        state_done(&back);
        /* Fewer, of about 1,050 bytes each in the file, fit and read back. */
        while (s.n > STATE_FILE_MAX / 1100)
                state_remove_at(&s, s.n - 1);
        assert_true(state_fits(&s));
        assert_int_equal(state_save_volatile(path, &s), 0);
        if (state_load(path, &back, &error) != 0)
                fail_msg("%s", error);
        assert_int_equal(back.n, s.n);
        state_done(&back);
        state_done(&s);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_order_and_lookup),
                cmocka_unit_test(test_file_order),
                cmocka_unit_test(test_no_file_the_reader_refuses),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
