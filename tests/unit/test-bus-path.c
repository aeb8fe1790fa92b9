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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_object_path),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
