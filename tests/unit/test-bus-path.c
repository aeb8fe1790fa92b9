/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-bus-path.c — the VMs' D-Bus object paths (bus/bus.c), made without
 * sd-bus's allocation but exactly as sd_bus_path_encode() makes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>
#include <systemd/sd-bus.h>

#include "bus.h"

/* Object paths as sd-bus makes them, without its allocation. */
static void test_object_path(void **state) {
        const char *ids[] = { "4711-12", "1-3", "0", "a-b", "vm.1 x", "", "Z9z", "ü-2", NULL };
        char buf[VM_PATH_MAX];

        for (const char **id = ids; *id; id++) {
                char *want = NULL;

                assert_true(sd_bus_path_encode("/org/pmufilterd1/vm", *id, &want) >= 0);
                assert_int_equal(vm_object_path("/org/pmufilterd1/vm", *id, buf, sizeof(buf)), 0);
                assert_string_equal(buf, want);
                free(want);
        }
        assert_int_equal(vm_object_path("/org/pmufilterd1/vm", "4711-12", buf, 31), -ENOBUFS);
        assert_int_equal(vm_object_path("/org/pmufilterd1/vm", "4711-12", buf, 32), 0);   /* 31 + NUL */
        assert_string_equal(buf, "/org/pmufilterd1/vm/_34711_2d12");
}

/* ListVMs' paths, the prefix copied once: the same as vm_object_path(),
 * one id after another in the same buffer. */
static void test_path_in_a_row(void **state) {
        static const char *const ids[] = { "4711-12", "1-3", "", "x", "123456789-1048575", "4711-12" };
        struct vm_path p;
        char buf[VM_PATH_MAX];

        vm_path_init(&p);
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                const char *got = vm_path_of(&p, ids[i]);

                assert_int_equal(vm_object_path(BUS_VM_PREFIX, ids[i], buf, sizeof(buf)), 0);
                assert_non_null(got);
                assert_string_equal(got, buf);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_object_path),
                cmocka_unit_test(test_path_in_a_row),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
