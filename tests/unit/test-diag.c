/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-diag.c — located diagnostics: counting, formatting, ownership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "diag.h"

static void test_format_and_count(void **state) {
        struct diags d = {};
        struct srcloc loc = { .file = "a.yaml", .line = 3, .column = 7 };
        _cleanup_free_ char *first = NULL;

        assert_int_equal(diags_warning(&d, &loc, "odd %s", "thing"), 0);
        assert_int_equal(diags_error(&d, &loc, "expected %s", "a mapping"), -EINVAL);
        assert_int_equal(diags_error(&d, NULL, "no place"), -EINVAL);
        assert_int_equal(d.n, 3);
        assert_int_equal(d.n_errors, 2);
        assert_int_equal(d.n_warnings, 1);
        first = diags_first_error(&d);
        assert_string_equal(first, "a.yaml:3:7: error: expected a mapping");
        diags_clear(&d);
        assert_int_equal(d.n, 0);
        assert_null(diags_first_error(&d));
}

/* A value quoted from the file may hold line breaks and other controls. */
static void test_one_line(void **state) {
        struct diags d = {};

        assert_int_equal(diags_error(&d, NULL, "got '%s'", "0x1c\r\n\t\177" "0/"), -EINVAL);
        assert_string_equal(d.v[0].message, "got '0x1c    0/'");
        diags_clear(&d);
}

static void test_print(void **state) {
        struct diags d = {};
        struct srcloc loc = { .file = "b.yaml", .line = 1, .column = 2 };
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        assert_non_null(f);
        diags_warning(&d, &loc, "w");
        diags_error(&d, NULL, "e");
        diags_print(&d, f);
        fclose(f);
        assert_string_equal(buf, "b.yaml:1:2: warning: w\nerror: e\n");
        free(buf);
        diags_clear(&d);
}

/* From an index on, by line and column, equal places in the order added. */
static void test_sort_by_place(void **state) {
        struct diags d = {};
        static const unsigned places[][2] = { { 9, 1 }, { 5, 3 }, { 2, 8 }, { 5, 1 }, { 5, 3 }, { 1, 1 } };

        for (size_t i = 0; i < ELEMENTSOF(places); i++) {
                struct srcloc loc = { "t.yaml", places[i][0], places[i][1] };

                diags_error(&d, &loc, "%zu", i);
        }
        diags_sort_by_place(&d, 1);
        assert_string_equal(d.v[0].message, "0");      /* before `from`: untouched */
        assert_string_equal(d.v[1].message, "5");
        assert_string_equal(d.v[2].message, "2");
        assert_string_equal(d.v[3].message, "3");
        assert_string_equal(d.v[4].message, "1");
        assert_string_equal(d.v[5].message, "4");
        assert_int_equal(d.n_errors, 6);
        diags_clear(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format_and_count),
                cmocka_unit_test(test_one_line),
                cmocka_unit_test(test_print),
                cmocka_unit_test(test_sort_by_place),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
