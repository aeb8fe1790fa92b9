/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-registry.c — the VM table: lookups by (pid, fd), by id, and by the
 * NAME or UUID a VMM claimed (indexed: SetVMProfile names VMs so on hosts
 * with 10,000 of them), across growth and removal; the counts by state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "registry.h"
#include "vmqueue.h"

static struct vm *add(struct registry *r, pid_t pid, int fd) {
        struct vm *vm = NULL;

        assert_int_equal(registry_add(r, pid, fd, &vm), 0);
        assert_non_null(vm);
        return vm;
}

static char *sdup(const char *s) {
        char *c = s ? strdup(s) : NULL;

        assert_true(!s || c);
        return c;
}

static void test_keys_and_growth(void **state) {
        struct registry r;
        struct vm *vm = NULL;
        char id[32];

        registry_init(&r);
        assert_null(registry_get(&r, 1, 3));
        assert_null(registry_lookup(&r, "anything"));
        /* past several rehashes (64, 128, ... buckets) */
        for (int i = 0; i < 1000; i++)
                add(&r, 100 + i % 7, 3 + i);
        assert_int_equal(r.n_vms, 1000);
        assert_int_equal(registry_add(&r, 100, 3, &vm), -EEXIST);
        for (int i = 0; i < 1000; i++) {
                vm = registry_get(&r, 100 + i % 7, 3 + i);
                assert_non_null(vm);
                snprintf(id, sizeof(id), "%d-%d", 100 + i % 7, 3 + i);
                assert_string_equal(vm->id, id);
                assert_ptr_equal(registry_get_by_id(&r, id), vm);
                assert_ptr_equal(registry_lookup(&r, id), vm);
        }
        assert_null(registry_get_by_id(&r, "100-3x"));
        assert_null(registry_get(&r, 100, 4));          /* 3 + 1 belongs to pid 101 */
        registry_done(&r);
}

static void test_names(void **state) {
        struct registry r;
        struct vm *a, *b, *c;

        registry_init(&r);
        a = add(&r, 10, 3);
        b = add(&r, 11, 3);
        c = add(&r, 12, 3);
        registry_set_name(&r, b, sdup("web"), sdup("0b6f2a1c-uuid"));
        registry_set_name(&r, c, sdup("web"), NULL);             /* a second VM claims the name */
        assert_ptr_equal(registry_lookup(&r, "web"), b);        /* the first registered wins */
        assert_ptr_equal(registry_lookup(&r, "0b6f2a1c-uuid"), b);
        registry_set_name(&r, a, sdup("web"), NULL);
        assert_ptr_equal(registry_lookup(&r, "web"), a);        /* registered before b */

        /* Renamed (a VMM that attaches again), the old name no longer finds it. */
        registry_set_name(&r, a, sdup("db"), NULL);
        assert_ptr_equal(registry_lookup(&r, "db"), a);
        assert_ptr_equal(registry_lookup(&r, "web"), b);

        /* Growth keeps the index; removal takes the VM out of it. */
        for (int i = 0; i < 500; i++)
                add(&r, 1000 + i, 5);
        assert_ptr_equal(registry_lookup(&r, "db"), a);
        assert_ptr_equal(registry_lookup(&r, "0b6f2a1c-uuid"), b);
        registry_remove(&r, b);
        assert_ptr_equal(registry_lookup(&r, "web"), c);
        assert_null(registry_lookup(&r, "0b6f2a1c-uuid"));
        registry_set_name(&r, c, NULL, NULL);
        assert_null(registry_lookup(&r, "web"));
        registry_done(&r);
}

static void test_state_counts(void **state) {
        struct registry r;
        struct vm *a, *b;

        registry_init(&r);
        a = add(&r, 10, 3);
        b = add(&r, 10, 4);
        assert_int_equal(r.n_state[VM_DETECTED], 2);
        registry_set_state(&r, a, VM_FILTERED);
        registry_set_state(&r, b, VM_UNMANAGED);
        registry_set_state(&r, b, VM_FILTERED);
        assert_int_equal(r.n_state[VM_DETECTED], 0);
        assert_int_equal(r.n_state[VM_UNMANAGED], 0);
        assert_int_equal(r.n_state[VM_FILTERED], 2);
        registry_remove(&r, a);
        assert_int_equal(r.n_state[VM_FILTERED], 1);
        assert_int_equal(r.n_vms, 1);
        registry_done(&r);
}

/* Room for nothing is no failure: a change over no VMs (a start-up with
 * none to restore) queued nothing and said "out of memory". */
static void test_queue_reserve(void **state) {
        struct registry r;
        struct vm_queue q = { .registry = &r };

        registry_init(&r);
        assert_int_equal(vm_queue_reserve(&q, 0), 0);
        assert_int_equal(vm_queue_reserve(&q, 3), 0);
        assert_true(q.allocated >= 3);
        assert_int_equal(vm_queue_reserve(&q, 0), 0);
        vm_queue_done(&q);
        registry_done(&r);
}

struct ran {
        const char *order[8];
        size_t n;
};

static void run_a(struct vm *vm, void *userdata) {
        struct ran *r = userdata;

        if (r->n < ELEMENTSOF(r->order))
                r->order[r->n++] = "a";
}

static void run_b(struct vm *vm, void *userdata) {
        struct ran *r = userdata;

        if (r->n < ELEMENTSOF(r->order))
                r->order[r->n++] = "b";
}

/* Two idle-priority queues of one loop run in the same iteration (one
 * dispatch: the loop's other idle work waits for the next), in the order
 * of their first push; a queue at another priority keeps its own turn. */
static void test_queue_shared_turn(void **state) {
        struct registry r;
        struct ran ran = {};
        struct vm_queue a = { .description = "a", .run = run_a, .userdata = &ran, .priority = SD_EVENT_PRIORITY_IDLE,
                              .max_lag_usec = 1000 * 1000 },
                        b = { .description = "b", .run = run_b, .userdata = &ran, .priority = SD_EVENT_PRIORITY_IDLE },
                        c = { .description = "c", .run = run_b, .userdata = &ran, .priority = SD_EVENT_PRIORITY_NORMAL };
        sd_event *e = NULL;
        struct vm *vm1, *vm2;

        registry_init(&r);
        assert_int_equal(sd_event_new(&e), 0);
        a.registry = b.registry = c.registry = &r;
        a.event = b.event = c.event = e;
        vm1 = add(&r, 10, 3);
        vm2 = add(&r, 10, 4);

        assert_int_equal(vm_queue_push(&b, vm1), 0);
        assert_int_equal(vm_queue_push(&a, vm2), 0);
        assert_int_equal(vm_queue_push(&a, vm1), 0);
        assert_ptr_equal(a.turn, b.turn);
        assert_null(a.source);
        assert_int_equal(sd_event_run(e, 0), 1);        /* one dispatch: all three */
        assert_int_equal(ran.n, 3);
        assert_string_equal(ran.order[0], "b");
        assert_string_equal(ran.order[1], "a");
        assert_string_equal(ran.order[2], "a");
        assert_int_equal(a.n + b.n, 0);
        assert_int_equal(sd_event_run(e, 0), 0);        /* nothing left to do */

        /* Another priority: its own turn. */
        assert_int_equal(vm_queue_push(&c, vm1), 0);
        assert_null(c.turn);
        assert_non_null(c.source);
        assert_int_equal(sd_event_run(e, 0), 1);
        assert_int_equal(ran.n, 4);

        /* The turn goes with its last queue, and comes back. */
        vm_queue_done(&a);
        assert_non_null(b.turn);
        vm_queue_done(&b);
        assert_null(b.turn);
        assert_int_equal(vm_queue_push(&b, vm2), 0);
        assert_int_equal(sd_event_run(e, 0), 1);
        assert_int_equal(ran.n, 5);
        vm_queue_done(&b);
        vm_queue_done(&c);
        sd_event_unref(e);
        registry_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keys_and_growth),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_state_counts),
                cmocka_unit_test(test_queue_reserve),
                cmocka_unit_test(test_queue_shared_turn),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
