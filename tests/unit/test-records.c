/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-records.c — record_parse(), the reader of the per-VM records the
 * daemon keeps across its restart (daemon/registry/records.c).  A record is
 * untrusted input by the time it is read back: everything write_record()
 * writes must come back as it was, and anything else must be refused
 * without overflowing or leaking.  Pure: records are strings here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "compile.h"
#include "kvm-compat.h"
#include "records.h"

/* The fields record_parse() may fill (registry.c's vm_free() without the
 * VM itself, its id or its facts, which a record never sets). */
static void vm_fields_free(struct vm *vm) {
        free(vm->name);
        free(vm->uuid);
        strv_free(vm->labels);
        free(vm->profile);
        compiled_filter_unref(vm->filter);
        free(vm->last_error);
        free(vm->override);
        *vm = (struct vm) {};
}

/* The lines every record starts with (write_record()). */
#define HEAD "PID=4242\nFD=17\nSTARTTIME=1\nSTATE=detected\n"

static int parse(const char *text, struct vm *vm, enum vm_state *state) {
        return record_parse(text, strlen(text), vm, state);
}

/* Parse text into a fresh VM: it must fail with -EINVAL, and leave
 * nothing behind (ASan's leak check in CI). */
static void expect_invalid(const char *text) {
        struct vm vm = {};
        enum vm_state state = _VM_STATE_MAX;
        int r;

        r = parse(text, &vm, &state);
        if (r != -EINVAL)
                fail_msg("'%s': got %d, expected -EINVAL", text, r);
        assert_int_equal(state, _VM_STATE_MAX);        /* not set on failure */
        vm_fields_free(&vm);
}

static void expect_valid(const char *text) {
        struct vm vm = {};
        enum vm_state state;
        int r;

        r = parse(text, &vm, &state);
        if (r != 0)
                fail_msg("'%s': got %d, expected 0", text, r);
        vm_fields_free(&vm);
}

/* A record as write_record() writes it, with every optional line. */
static const char full_record[] =
        "PID=4242\n"
        "FD=17\n"
        "STARTTIME=123456789\n"
        "STATE=filtered\n"
        "VCPUS=4\n"
        "SERIAL=7\n"
        "APPLIED_USEC=1764150000123456\n"
        "LAST_ERRNO=0\n"
        "IN_FORCE=1\n"
        "NAME=web-1\n"
        "UUID=6b1cb1b0-5c52-4b8e-a1e6-0f7cfc3f9a15\n"
        "CLIENT=preload\n"
        "LABEL=tier=gold\n"
        "LABEL=team=db=primary\n"
        "PROFILE=tenant-a\n"
        "PROFILE_SOURCE=rule:12\n"
        "OVERRIDE=trusted\n"
        "OVERRIDE_RUNTIME=1\n"
        "LAST_ERROR=vPMU could not be disabled (Invalid argument): the fallback empty allowlist is in force\n"
        "PMU_OFF=1\n"
        "ACTION=1\n"
        "FLAGS=1\n"
        "FIXED=3\n"
        "EVENTS=0x3c,0xc0,0x1000000c0,0xff000000000000b7\n";

static void test_roundtrip(void **state) {
        const uint64_t events[] = { 0x3c, 0xc0, 0x1000000c0ULL, 0xff000000000000b7ULL };
        enum vm_state st = VM_DETECTED;
        struct vm vm = {};

        assert_int_equal(parse(full_record, &vm, &st), 0);
        assert_int_equal(st, VM_FILTERED);
        assert_true(vm.starttime == 123456789);
        assert_int_equal(vm.vcpus, 4);
        assert_true(vm.serial_pending == 7);
        assert_true(vm.applied_usec == 1764150000123456ULL);
        assert_int_equal(vm.last_errno, 0);
        assert_true(vm.in_force);
        assert_string_equal(vm.name, "web-1");
        assert_string_equal(vm.uuid, "6b1cb1b0-5c52-4b8e-a1e6-0f7cfc3f9a15");
        assert_string_equal(vm.client, "preload");
        assert_int_equal(strv_length(vm.labels), 2);
        assert_string_equal(vm.labels[0], "tier=gold");
        assert_string_equal(vm.labels[1], "team=db=primary");  /* split at the first '=' only */
        assert_string_equal(vm.profile, "tenant-a");
        assert_string_equal(vm.profile_source, "rule:12");
        assert_string_equal(vm.override, "trusted");
        assert_true(vm.override_runtime);
        assert_string_equal(vm.last_error,
                            "vPMU could not be disabled (Invalid argument): the fallback empty allowlist is in force");

        assert_non_null(vm.filter);
        assert_string_equal(vm.filter->profile, "tenant-a");   /* named after the profile */
        assert_true(vm.filter->pmu_off);
        assert_int_equal(vm.filter->action, KVM_PMU_EVENT_DENY);
        assert_int_equal(vm.filter->flags, KVM_PMU_EVENT_FLAG_MASKED_EVENTS);
        assert_int_equal(vm.filter->fixed_counter_bitmap, 3);
        assert_int_equal(vm.filter->nevents, ELEMENTSOF(events));
        for (size_t i = 0; i < ELEMENTSOF(events); i++)
                assert_true(vm.filter->events[i] == events[i]);
        vm_fields_free(&vm);

        /* The same without a trailing newline: the last line still counts. */
        assert_int_equal(record_parse(full_record, strlen(full_record) - 1, &vm, &st), 0);
        assert_int_equal(vm.filter->nevents, ELEMENTSOF(events));
        assert_true(vm.filter->events[3] == events[3]);
        vm_fields_free(&vm);
}

/* Only the first 8 lines: a VM detected, never attached. */
static void test_minimal(void **state) {
        static const char text[] =
                "PID=4242\nFD=17\nSTARTTIME=1\nSTATE=detected\nVCPUS=0\nSERIAL=0\nAPPLIED_USEC=0\nLAST_ERRNO=0\n";
        enum vm_state st = VM_FILTERED;
        struct vm vm = {};

        assert_int_equal(parse(text, &vm, &st), 0);
        assert_int_equal(st, VM_DETECTED);
        assert_true(vm.starttime == 1);
        assert_null(vm.name);
        assert_null(vm.uuid);
        assert_null(vm.client);
        assert_null(vm.labels);
        assert_null(vm.profile);
        assert_string_equal(vm.profile_source, "");
        assert_null(vm.override);
        assert_false(vm.override_runtime);
        assert_null(vm.last_error);
        assert_false(vm.in_force);
        vm_fields_free(&vm);

        /* IN_FORCE as written; without it (a daemon before it) as its state
         * and last answer say. */
        assert_int_equal(parse("STARTTIME=1\nSTATE=filtered\nAPPLIED_USEC=5\nIN_FORCE=0\n", &vm, &st), 0);
        assert_false(vm.in_force);
        vm_fields_free(&vm);
        assert_int_equal(parse("STARTTIME=1\nSTATE=detached\nAPPLIED_USEC=5\nLAST_ERRNO=0\n", &vm, &st), 0);
        assert_true(vm.in_force);
        vm_fields_free(&vm);
        assert_int_equal(parse("STARTTIME=1\nSTATE=failed\nAPPLIED_USEC=5\nLAST_ERRNO=22\n", &vm, &st), 0);
        assert_false(vm.in_force);
        vm_fields_free(&vm);

        /* Every state write_record() can write reads back. */
        for (enum vm_state s = 0; s < _VM_STATE_MAX; s++) {
                char buf[64];

                snprintf(buf, sizeof(buf), "STARTTIME=1\nSTATE=%s\n", vm_state_to_string(s));
                st = _VM_STATE_MAX;
                assert_int_equal(parse(buf, &vm, &st), 0);
                assert_int_equal(st, s);
                vm_fields_free(&vm);
        }

        /* The largest values each field takes. */
        expect_valid("STATE=detected\nVCPUS=4294967295\nLAST_ERRNO=4095\nSTARTTIME=18446744073709551615\n"
                     "SERIAL=0xffffffffffffffff\nFIXED=4294967295\nFLAGS=0xffffffff\nACTION=1\n"
                     "PMU_OFF=1\nOVERRIDE_RUNTIME=0\nEVENTS=0xffffffffffffffff,18446744073709551615\n");
}

/* A second EVENTS= line replaces the first, longer or shorter: it once
 * wrote past the first line's array. */
static void test_events_twice(void **state) {
        enum vm_state st;
        struct vm vm = {};

        assert_int_equal(parse(HEAD "EVENTS=0x1\nEVENTS=0x2,0x3,0x4,0x5,0x6,0x7,0x8,0x9\n", &vm, &st), 0);
        assert_int_equal(vm.filter->nevents, 8);
        for (uint32_t i = 0; i < 8; i++)
                assert_true(vm.filter->events[i] == i + 2);
        vm_fields_free(&vm);

        assert_int_equal(parse(HEAD "EVENTS=0x2,0x3,0x4,0x5,0x6,0x7,0x8,0x9\nEVENTS=0xa\n", &vm, &st), 0);
        assert_int_equal(vm.filter->nevents, 1);
        assert_true(vm.filter->events[0] == 0xa);
        vm_fields_free(&vm);

        /* An empty one after a full one: no events. */
        assert_int_equal(parse(HEAD "EVENTS=0x2,0x3\nEVENTS=\n", &vm, &st), 0);
        assert_int_equal(vm.filter->nevents, 0);
        vm_fields_free(&vm);

        /* A bad second line fails the record, and the first is not leaked. */
        expect_invalid(HEAD "EVENTS=0x1,0x2\nEVENTS=0x3,,0x4\n");
}

static void test_empty_events(void **state) {
        enum vm_state st;
        struct vm vm = {};

        assert_int_equal(parse(HEAD "PROFILE=none\nACTION=0\nEVENTS=\n", &vm, &st), 0);
        assert_non_null(vm.filter);
        assert_int_equal(vm.filter->nevents, 0);
        assert_int_equal(vm.filter->action, KVM_PMU_EVENT_ALLOW);
        assert_string_equal(vm.filter->profile, "none");
        vm_fields_free(&vm);
}

/* Keys of a later version are ignored, as are PID= and FD= (the record's
 * file name says those). */
static void test_unknown_key(void **state) {
        enum vm_state st;
        struct vm vm = {};

        assert_int_equal(parse("STARTTIME=1\nSTATE=attached\nFUTURE_KEY=whatever=it=is\nNAME=vm-1\nX=\n", &vm, &st), 0);
        assert_int_equal(st, VM_ATTACHED);
        assert_string_equal(vm.name, "vm-1");
        vm_fields_free(&vm);
}

static void test_line_without_equals(void **state) {
        expect_invalid("STATE=filtered\nGARBAGE\nNAME=vm-1\n");
        expect_invalid("NAME=vm-1\nSTATE");
        expect_invalid("garbage");
}

/* Numbers are unsigned, whole and within their field's range. */
static void test_bad_numbers(void **state) {
        static const char *const bad[] = {
                "VCPUS=-1\n",
                "VCPUS=+1\n",
                "VCPUS= 1\n",
                "VCPUS=4x\n",
                "VCPUS=4 \n",
                "VCPUS=\n",
                "VCPUS=0x\n",
                "VCPUS=4294967296\n",                   /* 2^32 */
                "STARTTIME=18446744073709551616\n",     /* 2^64 */
                "SERIAL=-0\n",
                "APPLIED_USEC=1e6\n",
                "LAST_ERRNO=5000\n",
                "LAST_ERRNO=4096\n",
                "IN_FORCE=2\n",
                "LAST_ERRNO=-22\n",
                "ACTION=2\n",
                "PMU_OFF=2\n",
                "OVERRIDE_RUNTIME=2\n",
                "OVERRIDE_RUNTIME=true\n",
                "FLAGS=4294967296\n",
                "FIXED=0x100000000\n",
                /* strtoull() skips any blank and takes a sign after it, and
                 * in base 16 a second 0x (fuzz-record found these) */
                "VCPUS=\t1\n",
                "VCPUS=\r7\n",
                "STARTTIME=\t-1\n",                      /* was 2^64-1 */
                "APPLIED_USEC=0x\v-2\n",
                "SERIAL=0x0x10\n",
                "LAST_ERRNO=\f22\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                expect_invalid(bad[i]);
        /* after good lines too */
        expect_invalid("NAME=vm-1\nLABEL=a=b\nPROFILE=p\nVCPUS=-1\n");
}

static void test_bad_events(void **state) {
        static const char *const bad[] = {
                "EVENTS=0x1,,0x2\n",
                "EVENTS=0x1,\n",
                "EVENTS=,0x1\n",
                "EVENTS=,\n",
                "EVENTS=0x1;0x2\n",
                "EVENTS=0x1 ,0x2\n",
                "EVENTS=-1\n",
                "EVENTS=0xg\n",
                "EVENTS=0x10000000000000000\n",         /* 2^64 */
                "EVENTS=0x000000000000000000000001\n",  /* longer than any word written */
                "EVENTS=0x0x5d1CdA12\n",
                "EVENTS=0xc0,\t-1\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                expect_invalid(bad[i]);
}

/* A NUL inside the record, where a line would end early. */
static void test_nul_byte(void **state) {
        static const char text[] = "STARTTIME=1\nSTATE=filtered\nNAME=vm\0-1\nUUID=u\n";
        enum vm_state st = _VM_STATE_MAX;
        struct vm vm = {};

        assert_int_equal(record_parse(text, sizeof(text) - 1, &vm, &st), -EINVAL);
        assert_int_equal(st, _VM_STATE_MAX);
        assert_null(vm.name);
        vm_fields_free(&vm);

        /* len bounds the record: what follows is not read */
        assert_int_equal(record_parse(text, strlen("STARTTIME=1\nSTATE=filtered\nNAME=vm"), &vm, &st), 0);
        assert_string_equal(vm.name, "vm");
        assert_null(vm.uuid);
        vm_fields_free(&vm);
}

/* A record cut before its STARTTIME= or STATE= line (truncated to zero
 * bytes, or by a crash of the disk under it) is not one: it is set aside,
 * not taken for a VM whose pid was reused. */
static void test_cut_short(void **state) {
        expect_invalid("");
        expect_invalid("PID=4242\nFD=17\n");
        expect_invalid("PID=4242\nFD=17\nSTARTTIME=1\n");
        expect_invalid("STATE=filtered\nNAME=vm-1\n");
}

static void test_unknown_state(void **state) {
        expect_invalid("STATE=running\n");
        expect_invalid("STATE=\n");
        expect_invalid("STATE=Filtered\n");
        expect_invalid("STATE=filtered \n");
        expect_invalid("STATE=unknown\n");      /* what vm_state_to_string() says of a bad state */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_minimal),
                cmocka_unit_test(test_events_twice),
                cmocka_unit_test(test_empty_events),
                cmocka_unit_test(test_unknown_key),
                cmocka_unit_test(test_line_without_equals),
                cmocka_unit_test(test_bad_numbers),
                cmocka_unit_test(test_bad_events),
                cmocka_unit_test(test_nul_byte),
                cmocka_unit_test(test_cut_short),
                cmocka_unit_test(test_unknown_state),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
