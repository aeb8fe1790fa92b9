/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-yaml-dl.c — libyaml loaded while a file is parsed (lib/yaml-dl.c):
 * mapped during a parse and while held, unmapped when the last hold goes,
 * nothing parsed points into it afterwards, and a libyaml that cannot be
 * loaded is a clear error: a policy's diagnostic naming the file, a state
 * file's -ELIBACC (not -EINVAL, which would have the daemon set the file
 * aside as corrupt), and one lacking an entry point is not kept either.
 * Its own process: the maps it reads are this library's doing alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "dlfcn-util.h"
#include "policy-yaml.h"
#include "state.h"
#include "yaml-dl.h"

static bool libyaml_mapped(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/maps", "re");
        char line[4096];

        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "/libyaml"))
                        return true;
        return false;
}

static const char state_text[] = "version: 2\ndefault_profile: tenant-a\nvms:\n  \"uid:0/name:vm-7\": trusted\n";

static void test_held_only_while_parsing(void **state) {
        static const char text[] = "profiles:\n  a: {tier: tenant}\n";
        _cleanup_(diags_clear) struct diags d = {};
        struct ynode *root = NULL;
        struct state s = {};
        _cleanup_free_ char *error = NULL;

        assert_false(libyaml_mapped());
        assert_int_equal(ynode_parse("p.yaml", text, strlen(text), &root, &d), 0);
        assert_false(libyaml_mapped());
        /* The tree is ours: read after the unmapping. */
        assert_non_null(root);
        assert_int_equal(root->type, YNODE_MAPPING);
        assert_string_equal(root->items[0]->value, "profiles");
        assert_int_equal(root->items[0]->loc.line, 1);
        ynode_free(root);

        assert_int_equal(state_parse(state_text, strlen(state_text), &s, &error), 0);
        assert_false(libyaml_mapped());
        assert_string_equal(s.default_profile, "tenant-a");
        assert_string_equal(state_get(&s, "uid:0/name:vm-7"), "trusted");
        state_done(&s);

        /* Held: loaded once for every parse until the last release. */
        assert_int_equal(yaml_dl_acquire(NULL), 0);
        assert_true(libyaml_mapped());
        assert_int_equal(yaml_dl_acquire(NULL), 0);
        assert_int_equal(state_parse(state_text, strlen(state_text), &s, &error), 0);
        state_done(&s);
        yaml_dl_release();
        assert_true(libyaml_mapped());
        yaml_dl_release();
        assert_false(libyaml_mapped());
}

static void test_cannot_be_loaded(void **state) {
        const char *soname = yaml_dl_soname, *why = NULL;
        _cleanup_(diags_clear) struct diags d = {};
        _cleanup_free_ char *first = NULL, *error = NULL;
        struct ynode *root = NULL;
        struct state s = {};

        yaml_dl_soname = "libyaml-not-installed.so.0";
        assert_int_equal(yaml_dl_acquire(&why), -ELIBACC);
        assert_non_null(why);
        assert_non_null(strstr(why, "libyaml cannot be loaded: "));
        assert_non_null(strstr(why, "libyaml-not-installed.so.0"));

        assert_int_equal(ynode_parse("/etc/p.yaml", "a: 1\n", 5, &root, &d), -EINVAL);
        assert_null(root);
        first = diags_first_error(&d);
        assert_non_null(first);
        assert_true(startswith(first, "/etc/p.yaml: error: libyaml cannot be loaded: "));

        assert_int_equal(state_parse(state_text, strlen(state_text), &s, &error), -ELIBACC);
        assert_non_null(error);
        assert_true(startswith(error, "libyaml cannot be loaded: "));
        assert_false(libyaml_mapped());

        /* Nothing is remembered: once it is there, it loads. */
        yaml_dl_soname = soname;
        assert_int_equal(state_parse(state_text, strlen(state_text), &s, &(char *) { NULL }), 0);
        state_done(&s);
        assert_false(libyaml_mapped());
}

/* lib/dlfcn-util.c: a library without one of the entry points asked for
 * is not kept, and says which one it lacks. */
static void test_entry_point_missing(void **state) {
        static void *sym_yaml_get_version_string, *sym_yaml_no_such_function;
        const struct dlsym_arg syms[] = {
                DLSYM_ARG(yaml_get_version_string),
                DLSYM_ARG(yaml_no_such_function),
        };
        char why[256] = "";
        void *dl = NULL;

        assert_int_equal(dlopen_symbols("libyaml-0.so.2", syms, ELEMENTSOF(syms), &dl, why, sizeof(why)),
                         -ELIBACC);
        assert_string_equal(why, "libyaml-0.so.2 has no yaml_no_such_function");
        assert_null(dl);
        assert_null(sym_yaml_get_version_string);
        assert_null(sym_yaml_no_such_function);
        assert_false(libyaml_mapped());

        assert_int_equal(dlopen_symbols("libyaml-0.so.2", syms, 1, &dl, why, sizeof(why)), 0);
        assert_non_null(dl);
        assert_non_null(sym_yaml_get_version_string);
        assert_true(libyaml_mapped());
        dlclose_symbols(&dl, syms, 1);
        assert_null(dl);
        assert_null(sym_yaml_get_version_string);
        assert_false(libyaml_mapped());
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_held_only_while_parsing),
                cmocka_unit_test(test_cannot_be_loaded),
                cmocka_unit_test(test_entry_point_missing),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
