/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-log.c — daemon/base/log.c: the text form of audit records, escaping,
 * and records said later (audit_record_extra_later()): held until the
 * loop's idle turn, or until anything else is logged, and in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "log.h"

static int pipe_r = -1, saved_stderr = -1;
static unsigned scheduled;

static void schedule(void *userdata) {
        scheduled++;
}

/* stderr into a pipe, non-blocking to read what is there. */
static int setup(void **state) {
        int p[2];

        assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
        fflush(stderr);
        saved_stderr = dup(STDERR_FILENO);
        assert_true(dup2(p[1], STDERR_FILENO) >= 0);
        close(p[1]);
        pipe_r = p[0];
        unsetenv("JOURNAL_STREAM");
        log_open();
        scheduled = 0;
        return 0;
}

static int teardown(void **state) {
        log_set_later(NULL, NULL);
        audit_flush();
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        close(pipe_r);
        return 0;
}

static size_t drain(char *buf, size_t size) {
        ssize_t n = read(pipe_r, buf, size - 1);

        buf[n > 0 ? n : 0] = 0;
        return n > 0 ? (size_t) n : 0;
}

static void test_later_waits_for_the_idle_turn(void **state) {
        struct audit_extra x = { .have_caller = true, .caller_uid = 0, .vm_name = "web 1" };
        char buf[4096];

        log_set_later(schedule, NULL);
        audit_record_extra_later(LOG_NOTICE, MID_RUNTIME, "10-4", "tenant-a", 10, &x, "VM %s: changed", "10-4");
        assert_int_equal(scheduled, 1);
        assert_int_equal(drain(buf, sizeof(buf)), 0);           /* not yet */
        audit_flush();                                          /* the idle turn */
        drain(buf, sizeof(buf));
        assert_string_equal(buf, "pmufilterd: notice: VM 10-4: changed [MESSAGE_ID=" MID_RUNTIME
                                 " VM_ID=10-4 PROFILE=tenant-a PID=10 CALLER_UID=0 VM_NAME=web\\x201]\n");
        audit_flush();                                          /* nothing twice */
        assert_int_equal(drain(buf, sizeof(buf)), 0);
}

static void test_later_comes_before_anything_said_after_it(void **state) {
        char buf[4096], *second;

        log_set_later(schedule, NULL);
        audit_record_extra_later(LOG_NOTICE, MID_RUNTIME, "10-4", NULL, 10, NULL, "first");
        audit_record_extra_later(LOG_NOTICE, MID_RUNTIME, "10-5", NULL, 11, NULL, "second");
        audit_record(LOG_INFO, MID_APPLIED, "10-4", "p", 10, "third");
        drain(buf, sizeof(buf));
        second = strstr(buf, ": second [");
        assert_non_null(strstr(buf, "pmufilterd: notice: first ["));
        assert_non_null(second);
        assert_true(strstr(buf, ": first [") < second);
        assert_true(second < strstr(buf, "pmufilterd: info: third ["));
        audit_flush();
        assert_int_equal(drain(buf, sizeof(buf)), 0);
}

static void test_later_without_a_loop_is_now(void **state) {
        char buf[4096];

        log_set_later(NULL, NULL);
        audit_record_extra_later(LOG_WARNING, MID_RUNTIME, NULL, NULL, 0, NULL, "now\nand one line");
        assert_int_equal(scheduled, 0);
        drain(buf, sizeof(buf));
        assert_string_equal(buf, "pmufilterd: warning: now\\nand one line [MESSAGE_ID=" MID_RUNTIME
                                 " VM_ID=n/a PROFILE=n/a PID=0]\n");
}

/* Longer than the stack's line, escapes in the message and in a field:
 * a newline as \n, a control character as \xNN, a backslash doubled, and
 * in a field a space as \x20. */
static void test_long_line_and_escapes(void **state) {
        struct audit_extra x = { .vm_name = "a b\\c\x01" };
        char big[3000], buf[8192];
        _cleanup_free_ char *want = NULL;

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        big[10] = '\n';
        audit_record_extra(LOG_INFO, MID_APPLIED, "1-2", "p\tq", 7, &x, "%s", big);
        assert_true(asprintf(&want, "pmufilterd: info: %.10s\\n%s [MESSAGE_ID=" MID_APPLIED " VM_ID=1-2 "
                                    "PROFILE=p\\x09q PID=7 VM_NAME=a\\x20b\\\\c\\x01]\n", big, big + 11) > 0);
        drain(buf, sizeof(buf));
        assert_string_equal(buf, want);
}

/* A comm or a path from the kernel need not be UTF-8: each byte that is
 * not part of a valid character as \xNN (the journal would keep such a
 * message as a blob journalctl does not show); valid characters, several
 * bytes each, as they are; a character cut at the end of the string too. */
static void test_bytes_that_are_no_utf8(void **state) {
        char buf[1024];

        log_info("comm %s, path %s, cut %s", "\xff\xfe" "evil", "/opt/caf\xc3\xa9/\xe2\x82\xac", "x\xe2\x82");
        drain(buf, sizeof(buf));
        assert_string_equal(buf, "pmufilterd: info: comm \\xff\\xfeevil, path /opt/caf\xc3\xa9/\xe2\x82\xac, "
                                 "cut x\\xe2\\x82\n");
        /* An overlong form, a surrogate and a noncharacter are no UTF-8
         * either; a C1 control (CSI) is a control character. */
        log_info("%s %s %s %s", "\xc0\xaf", "\xed\xa0\x80", "\xef\xbf\xbe", "\xc2\x9b" "2J");
        drain(buf, sizeof(buf));
        assert_string_equal(buf, "pmufilterd: info: \\xc0\\xaf \\xed\\xa0\\x80 \\xef\\xbf\\xbe \\xc2\\x9b2J\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_bytes_that_are_no_utf8, setup, teardown),
                cmocka_unit_test_setup_teardown(test_later_waits_for_the_idle_turn, setup, teardown),
                cmocka_unit_test_setup_teardown(test_later_comes_before_anything_said_after_it, setup, teardown),
                cmocka_unit_test_setup_teardown(test_later_without_a_loop_is_now, setup, teardown),
                cmocka_unit_test_setup_teardown(test_long_line_and_escapes, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
