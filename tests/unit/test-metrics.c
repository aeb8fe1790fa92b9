/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-metrics.c — the metrics file's text (daemon/metrics.c), exactly:
 * every family with HELP and TYPE, the counts by state and by profile (the
 * policy's profiles with 0, then others VMs still have), label values
 * escaped as the exposition format requires, and the counters the
 * registry's events drive.  The file written by the running daemon, and its
 * validation, are in tests/integration/test_metrics.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "metrics.h"

static char *format(const struct metrics *m) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        assert_non_null(f);
        assert_int_equal(metrics_format(m, f), 0);
        assert_int_equal(fclose(f), 0);
        return buf;
}

static struct vm *add(struct registry *r, int fd, enum vm_state s, const char *profile) {
        struct vm *vm = NULL;

        assert_int_equal(registry_add(r, 4711, fd, &vm), 0);
        registry_set_state(r, vm, s);
        if (profile)
                assert_non_null(vm->profile = strdup(profile));
        return vm;
}

static void test_label_values_are_escaped(void **state) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        assert_non_null(f);
        metrics_print_label_value(f, "a\\b\"c\nd-é");
        assert_int_equal(fclose(f), 0);
        assert_string_equal(buf, "a\\\\b\\\"c\\nd-é");
        free(buf);
}

static void test_whole_file(void **state) {
        struct profile profiles[] = { { .name = (char *) "tenant-a" }, { .name = (char *) "idle" } };
        struct policy policy = { .profiles = profiles, .n_profiles = ELEMENTSOF(profiles) };
        struct policy_set set = { .policy = &policy };
        struct decider d = { .set = &set };
        struct registry r;
        struct metrics m;
        char *text;

        registry_init(&r);
        assert_int_equal(metrics_init(&m, NULL, &r, &d, NULL), 0);      /* off: no loop needed */
        add(&r, 10, VM_FILTERED, "tenant-a");
        add(&r, 11, VM_FILTERED, "tenant-a");
        add(&r, 12, VM_FAILED, "tenant-a");
        add(&r, 13, VM_UNMANAGED, NULL);
        add(&r, 14, VM_DETACHED, "gone\"\\\nprofile");          /* of a policy before */
        add(&r, 15, VM_ADOPTED, "none");
        m.applies = 7;
        m.failures = 1;
        m.reloads_ok = 2;
        m.reloads_failed = 1;
        m.last_reload_usec = 1733450000123456;
        m.last_reload_failed = true;

        text = format(&m);
        assert_string_equal(text,
                "# HELP pmufilterd_vms VMs the daemon knows, by state (pmufilterd(8), VM STATES).\n"
                "# TYPE pmufilterd_vms gauge\n"
                "pmufilterd_vms{state=\"detected\"} 0\n"
                "pmufilterd_vms{state=\"attached\"} 0\n"
                "pmufilterd_vms{state=\"filtered\"} 2\n"
                "pmufilterd_vms{state=\"adopted\"} 1\n"
                "pmufilterd_vms{state=\"failed\"} 1\n"
                "pmufilterd_vms{state=\"unmanaged\"} 1\n"
                "pmufilterd_vms{state=\"detached\"} 1\n"
                "# HELP pmufilterd_unmanaged_vms VMs whose VMM did not attach in time: their guest PMU is not filtered.\n"
                "# TYPE pmufilterd_unmanaged_vms gauge\n"
                "pmufilterd_unmanaged_vms 1\n"
                "# HELP pmufilterd_profile_vms VMs by the profile decided for them; every profile of the policy in "
                "force is listed.\n"
                "# TYPE pmufilterd_profile_vms gauge\n"
                "pmufilterd_profile_vms{profile=\"tenant-a\"} 3\n"
                "pmufilterd_profile_vms{profile=\"idle\"} 0\n"
                "pmufilterd_profile_vms{profile=\"gone\\\"\\\\\\nprofile\"} 1\n"
                "pmufilterd_profile_vms{profile=\"none\"} 1\n"
                "# HELP pmufilterd_filter_applies_total Filters the kernel took (APPLIED without an error, or "
                "applied by injection) since the daemon started.\n"
                "# TYPE pmufilterd_filter_applies_total counter\n"
                "pmufilterd_filter_applies_total 7\n"
                "# HELP pmufilterd_filter_failures_total Filters not applied since the daemon started: APPLIED "
                "with an error, or no answer before the session was dropped.\n"
                "# TYPE pmufilterd_filter_failures_total counter\n"
                "pmufilterd_filter_failures_total 1\n"
                "# HELP pmufilterd_reloads_total Policy reloads (SIGHUP, Reload) since the daemon started, by "
                "result; a failed one keeps the policy in force.\n"
                "# TYPE pmufilterd_reloads_total counter\n"
                "pmufilterd_reloads_total{result=\"ok\"} 2\n"
                "pmufilterd_reloads_total{result=\"failed\"} 1\n"
                "# HELP pmufilterd_last_reload_timestamp_seconds When the last reload ended (seconds since the "
                "epoch), whatever its result; 0 before the first.\n"
                "# TYPE pmufilterd_last_reload_timestamp_seconds gauge\n"
                "pmufilterd_last_reload_timestamp_seconds 1733450000.123\n"
                "# HELP pmufilterd_last_reload_success 0 if the last reload failed (the policy in force is not "
                "what the files say), else 1.\n"
                "# TYPE pmufilterd_last_reload_success gauge\n"
                "pmufilterd_last_reload_success 0\n"
                "# HELP pmufilterd_lockdown 1 while the daemon runs without a good policy: every VM gets an "
                "empty allowlist.\n"
                "# TYPE pmufilterd_lockdown gauge\n"
                "pmufilterd_lockdown 0\n");
        free(text);

        /* Lockdown with no policy: no profile but those of the VMs. */
        d = (struct decider) { .lockdown = true };
        text = format(&m);
        assert_non_null(strstr(text, "# TYPE pmufilterd_profile_vms gauge\n"
                                     "pmufilterd_profile_vms{profile=\"tenant-a\"} 3\n"
                                     "pmufilterd_profile_vms{profile=\"gone\\\"\\\\\\nprofile\"} 1\n"
                                     "pmufilterd_profile_vms{profile=\"none\"} 1\n# HELP"));
        assert_non_null(strstr(text, "\npmufilterd_lockdown 1\n"));
        free(text);
        metrics_done(&m);
        registry_done(&r);
}

static void test_events_are_counted(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        struct decider d = {};
        struct registry r;
        struct metrics m;
        struct vm *vm;

        assert_int_equal(sd_event_new(&e), 0);
        registry_init(&r);
        /* A path in no directory: nothing is written while the loop does not run. */
        assert_int_equal(metrics_init(&m, e, &r, &d, "/nonexistent/pmufilterd.prom"), 0);
        vm = add(&r, 10, VM_FILTERED, "tenant-a");
        registry_notify(&r, REGISTRY_VM_APPLIED, vm, &(struct registry_event_data) { .ok = true });
        registry_notify(&r, REGISTRY_VM_APPLIED, vm, &(struct registry_event_data) { .ok = true });
        registry_set_state(&r, vm, VM_FAILED);
        registry_notify(&r, REGISTRY_VM_APPLIED, vm, &(struct registry_event_data) { .error = "EINVAL" });
        /* Closed by its VMM (nothing in flight): no failure. */
        registry_notify(&r, REGISTRY_VM_SESSION_LOST, vm, &(struct registry_event_data) { .error = "closed" });
        /* Dropped with an APPLY in flight: a failure. */
        vm->serial_pending = 42;
        registry_notify(&r, REGISTRY_VM_SESSION_LOST, vm, &(struct registry_event_data) { .error = "timeout" });
        assert_int_equal(m.applies, 2);
        assert_int_equal(m.failures, 2);

        assert_int_equal(m.last_reload_usec, 0);
        registry_notify(&r, REGISTRY_POLICY_RELOADED, NULL, &(struct registry_event_data) { .ok = true });
        assert_true(m.last_reload_usec > 0 && !m.last_reload_failed);
        registry_notify(&r, REGISTRY_POLICY_RELOADED, NULL, &(struct registry_event_data) { .error = "bad" });
        assert_int_equal(m.reloads_ok, 1);
        assert_int_equal(m.reloads_failed, 1);
        assert_true(m.last_reload_failed);
        /* One write is due, on the next idle turn of the loop (the first after a quiet spell). */
        assert_non_null(m.timer);
        metrics_done(&m);
        assert_null(m.timer);
        /* Done: later events (a shut-down's) count nothing and schedule nothing. */
        registry_notify(&r, REGISTRY_VM_APPLIED, vm, &(struct registry_event_data) { .ok = true });
        assert_int_equal(m.applies, 2);
        assert_null(m.timer);
        registry_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_label_values_are_escaped),
                cmocka_unit_test(test_whole_file),
                cmocka_unit_test(test_events_are_counted),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
