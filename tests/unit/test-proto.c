/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-proto.c — the VMM protocol codec: round trips of every verb, every
 * malformed form rejected with its reason, hostile inputs, and the limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "proto.h"
#include "util.h"

#define S(s) (s), (sizeof(s) - 1)

static void test_roundtrip_attach(void **state) {
        struct proto_label labels[] = {
                { .key = "tier", .value = "trusted" },
                { .key = "Zone.a-1_b", .value = "eu west ünïcode" },
                { .key = "empty", .value = "" },
        };
        struct proto_attach in = {
                .vmfd = 8, .vcpus = 3, .name = "vm-123",
                .uuid = "0123ABCD-4567-89ab-cdef-0123456789AB",
                .client = PROTO_CLIENT_PRELOAD, .labels = labels, .n_labels = ELEMENTSOF(labels),
        };
        _cleanup_(proto_attach_done) struct proto_attach out = {};
        char buf[PROTO_MSG_MAX];
        int n;

        n = proto_format_attach(buf, sizeof(buf), &in);
        assert_true(n > 0);
        assert_int_equal(strlen(buf), n);
        assert_non_null(strstr(buf, "PMUFILTER/1 ATTACH\nVMFD=8\nVCPUS=3\nNAME=vm-123\n"));
        assert_int_equal(proto_parse_attach(buf, n, &out, NULL, 0), 0);
        assert_int_equal(out.vmfd, 8);
        assert_int_equal(out.vcpus, 3);
        assert_string_equal(out.name, "vm-123");
        assert_string_equal(out.uuid, "0123abcd-4567-89ab-cdef-0123456789ab");     /* lowercased */
        assert_int_equal(out.client, PROTO_CLIENT_PRELOAD);
        assert_int_equal(out.n_labels, 3);
        /* sorted by key, byte order */
        assert_string_equal(out.labels[0].key, "Zone.a-1_b");
        assert_string_equal(out.labels[0].value, "eu west ünïcode");
        assert_string_equal(out.labels[1].key, "empty");
        assert_string_equal(out.labels[1].value, "");
        assert_string_equal(out.labels[2].key, "tier");

        /* Minimal ATTACH: defaults, and no trailing newline needed. */
        proto_attach_done(&out);
        assert_int_equal(proto_parse_attach(S("PMUFILTER/1 ATTACH\nVMFD=0"), &out, NULL, 0), 0);
        assert_int_equal(out.vmfd, 0);
        assert_int_equal(out.vcpus, 0);
        assert_null(out.name);
        assert_null(out.uuid);
        assert_int_equal(out.client, PROTO_CLIENT_LIBRARY);
        assert_int_equal(out.n_labels, 0);
}

static void test_roundtrip_apply(void **state) {
        uint64_t events[] = { 0xc0, 0x3c, 0xff000000000000b7ULL, 0 };
        struct proto_apply in = {
                .vm = "1234-8", .serial = UINT64_MAX, .profile = "tenant-a", .pmu_off = true,
                .action = 1, .flags = 1, .fixed_counter_bitmap = 0x7,
                .events = events, .n_events = ELEMENTSOF(events),
        };
        _cleanup_(proto_apply_done) struct proto_apply out = {};
        char buf[PROTO_MSG_MAX];
        int n;

        n = proto_format_apply(buf, sizeof(buf), &in);
        assert_true(n > 0);
        assert_string_equal(buf,
                            "PMUFILTER/1 APPLY\nVM=1234-8\nSERIAL=18446744073709551615\nPROFILE=tenant-a\n"
                            "PMU=off\nACTION=deny\nFLAGS=1\nFIXED=0x7\n"
                            "EVENTS=0xc0,0x3c,0xff000000000000b7,0x0\n");
        assert_int_equal(proto_parse_apply(buf, n, &out, NULL, 0), 0);
        assert_string_equal(out.vm, "1234-8");
        assert_true(out.serial == UINT64_MAX);
        assert_string_equal(out.profile, "tenant-a");
        assert_true(out.pmu_off);
        assert_int_equal(out.action, 1);
        assert_int_equal(out.flags, 1);
        assert_int_equal(out.fixed_counter_bitmap, 7);
        assert_int_equal(out.n_events, 4);
        assert_memory_equal(out.events, events, sizeof(events));

        /* Empty list, allow, PMU on; upper-case hex digits accepted. */
        proto_apply_done(&out);
        assert_int_equal(proto_parse_apply(S("PMUFILTER/1 APPLY\nSERIAL=0\nACTION=allow\nFLAGS=0\n"
                                             "FIXED=0xFFFFFFFF\nEVENTS=\n"), &out, NULL, 0), 0);
        assert_int_equal(out.action, 0);
        assert_false(out.pmu_off);
        assert_int_equal(out.n_events, 0);
        assert_null(out.events);
        assert_null(out.vm);
        assert_null(out.profile);
        assert_int_equal(out.fixed_counter_bitmap, 0xffffffffu);
}

static void test_roundtrip_applied_error_detach(void **state) {
        struct proto_applied a = { .serial = 42, .error = 22, .has_pmu_error = true, .pmu_error = 95 }, ao;
        struct proto_error e = { .error = 1, .message = "no rule matches VM \"x\"" };
        _cleanup_(proto_error_done) struct proto_error eo = {};
        enum proto_verb v;
        char buf[512];
        int n;

        n = proto_format_applied(buf, sizeof(buf), &a);
        assert_string_equal(buf, "PMUFILTER/1 APPLIED\nSERIAL=42\nERRNO=22\nPMU_ERRNO=95\n");
        assert_int_equal(proto_parse_applied(buf, n, &ao, NULL, 0), 0);
        assert_true(ao.serial == 42);
        assert_int_equal(ao.error, 22);
        assert_true(ao.has_pmu_error);
        assert_int_equal(ao.pmu_error, 95);
        a.has_pmu_error = false;
        a.pmu_error = 0;
        n = proto_format_applied(buf, sizeof(buf), &a);
        assert_null(strstr(buf, "PMU_ERRNO"));
        assert_int_equal(proto_parse_applied(buf, n, &ao, NULL, 0), 0);
        assert_false(ao.has_pmu_error);

        n = proto_format_error(buf, sizeof(buf), &e);
        assert_int_equal(proto_parse_error(buf, n, &eo, NULL, 0), 0);
        assert_int_equal(eo.error, 1);
        assert_string_equal(eo.message, e.message);

        n = proto_format_detach(buf, sizeof(buf));
        assert_string_equal(buf, "PMUFILTER/1 DETACH\n");
        assert_int_equal(proto_parse_detach(buf, n, NULL, 0), 0);
        assert_int_equal(proto_parse_verb(buf, n, &v, NULL, 0), 0);
        assert_int_equal(v, PROTO_DETACH);
        assert_string_equal(proto_verb_to_string(v), "DETACH");
        assert_string_equal(proto_client_to_string(PROTO_CLIENT_LIBRARY), "library");
        assert_null(proto_verb_to_string(_PROTO_VERB_MAX));

        /* Unknown keys are ignored. */
        assert_int_equal(proto_parse_detach(S("PMUFILTER/1 DETACH\nFUTURE.KEY=1\n"), NULL, 0), 0);
}

struct bad {
        enum proto_verb verb;
        const char *msg;
        size_t len;             /* 0: strlen(msg) */
        const char *reason;     /* substring the reason must contain */
};

static const struct bad bad_table[] = {
        { PROTO_DETACH, "", 0, "empty message" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=\0B\n", 24, "NUL byte at offset 21" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=\xff\n", 0, "invalid UTF-8 at offset 21" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=\xc0\x80\n", 0, "invalid UTF-8" },            /* overlong NUL */
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=\xed\xa0\x80\n", 0, "invalid UTF-8" },        /* surrogate */
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=\xf4\x90\x80\x80\n", 0, "invalid UTF-8" },    /* > U+10FFFF */
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=\xe2\x82\n", 0, "invalid UTF-8" },            /* truncated */
        /* Noncharacters: sd-bus refuses a string with one, and a NAME with
         * one would fail every ListVMs. */
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=\xef\xbf\xbe\n", 0, "invalid UTF-8" },        /* U+FFFE */
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=\xef\xb7\x90\n", 0, "invalid UTF-8" },        /* U+FDD0 */
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=\xf4\x8f\xbf\xbf\n", 0, "invalid UTF-8" },    /* U+10FFFF */
        { PROTO_DETACH, "PMUFILTER/2 DETACH\n", 0, "unsupported protocol version" },
        { PROTO_DETACH, "HELLO\n", 0, "expected \"PMUFILTER/1 <VERB>\"" },
        { PROTO_DETACH, "PMUFILTER/1  DETACH\n", 0, "unknown verb" },
        { PROTO_DETACH, "PMUFILTER/1 detach\n", 0, "unknown verb" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\r\n", 0, "unknown verb" },
        { PROTO_DETACH, "PMUFILTER/1 ATTACH\nVMFD=1\n", 0, "expected DETACH, got ATTACH" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nNOEQUALS\n", 0, "line 2: expected KEY=VALUE" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\n\nA=1\n", 0, "line 2: expected KEY=VALUE" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\n=1\n", 0, "line 2: empty key" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nlower=1\n", 0, "outside [A-Z0-9_.]" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA-B=1\n", 0, "outside [A-Z0-9_.]" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA B=1\n", 0, "outside [A-Z0-9_.]" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nLABEL.=1\n", 0, "empty label key" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nLABEL.a/b=1\n", 0, "outside [A-Za-z0-9_.-]" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=1\nB=2\nA=3\n", 0, "lines 2 and 4: duplicate key A" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=x\ty\n", 0, "value of A contains a control character" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=x\ry\n", 0, "control character" },
        { PROTO_DETACH, "PMUFILTER/1 DETACH\nA=\x1b[2J\n", 0, "control character" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nNAME=x\n", 0, "missing required key VMFD" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=-1\n", 0, "VMFD must be a decimal number" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=2147483648\n", 0, "VMFD must be a decimal number at most 2147483647" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=08\n", 0, "VMFD must be" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=0x8\n", 0, "VMFD must be" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD= 8\n", 0, "VMFD must be" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=\n", 0, "VMFD must be" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=99999999999999999999999\n", 0, "VMFD must be" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=3\nVCPUS=4294967296\n", 0, "VCPUS must be" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=3\nNAME=\n", 0, "line 3: NAME is empty" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=3\nUUID=1234\n", 0, "UUID must be 8-4-4-4-12" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=3\nUUID=0123456789abcdef0123456789abcdef0123\n", 0, "UUID must be" },
        { PROTO_ATTACH, "PMUFILTER/1 ATTACH\nVMFD=3\nCLIENT=ptrace\n", 0, "CLIENT must be library or preload" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=\n", 0, "missing required key SERIAL" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nFLAGS=0\nFIXED=0x0\nEVENTS=\n", 0, "missing required key ACTION" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFIXED=0x0\nEVENTS=\n", 0, "missing required key FLAGS" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=0\nEVENTS=\n", 0, "missing required key FIXED" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=0\nFIXED=0x0\n", 0, "missing required key EVENTS" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=18446744073709551616\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=\n", 0, "SERIAL must be" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=7\nFLAGS=0\nFIXED=0x0\nEVENTS=\n", 0, "ACTION must be allow or deny" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=4294967296\nFIXED=0x0\nEVENTS=\n", 0, "FLAGS must be" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=0\nFIXED=0\nEVENTS=\n", 0, "FIXED must be a 0x-prefixed" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=0\nFIXED=0x100000000\nEVENTS=\n", 0, "FIXED must be" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=0\nFIXED=0x\nEVENTS=\n", 0, "FIXED must be" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nPMU=maybe\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=\n", 0, "PMU must be on or off" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nPROFILE=\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=\n", 0, "PROFILE is empty" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=0xc0,\n", 0, "event 2 of EVENTS" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=,0xc0\n", 0, "event 1 of EVENTS" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=0xc0, 0x3c\n", 0, "event 2 of EVENTS" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=192\n", 0, "event 1 of EVENTS" },
        { PROTO_APPLY, "PMUFILTER/1 APPLY\nSERIAL=1\nACTION=allow\nFLAGS=0\nFIXED=0x0\nEVENTS=0x10000000000000000\n", 0, "event 1 of EVENTS" },
        { PROTO_APPLIED, "PMUFILTER/1 APPLIED\nSERIAL=1\n", 0, "missing required key ERRNO" },
        { PROTO_APPLIED, "PMUFILTER/1 APPLIED\nERRNO=0\n", 0, "missing required key SERIAL" },
        { PROTO_APPLIED, "PMUFILTER/1 APPLIED\nSERIAL=1\nERRNO=4096\n", 0, "ERRNO must be a decimal number at most 4095" },
        { PROTO_APPLIED, "PMUFILTER/1 APPLIED\nSERIAL=1\nERRNO=0\nPMU_ERRNO=x\n", 0, "PMU_ERRNO must be" },
        { PROTO_ERROR, "PMUFILTER/1 ERROR\nMESSAGE=x\n", 0, "missing required key ERRNO" },
        { PROTO_ERROR, "PMUFILTER/1 ERROR\nERRNO=0\n", 0, "ERRNO of an ERROR must not be 0" },
};

static int parse_as(enum proto_verb v, const char *msg, size_t len, char *reason, size_t size) {
        struct proto_attach at;
        struct proto_apply ap;
        struct proto_applied ad;
        struct proto_error er;
        int r;

        switch (v) {
        case PROTO_ATTACH:
                r = proto_parse_attach(msg, len, &at, reason, size);
                if (r >= 0)
                        proto_attach_done(&at);
                return r;
        case PROTO_APPLY:
                r = proto_parse_apply(msg, len, &ap, reason, size);
                if (r >= 0)
                        proto_apply_done(&ap);
                return r;
        case PROTO_APPLIED:
                return proto_parse_applied(msg, len, &ad, reason, size);
        case PROTO_ERROR:
                r = proto_parse_error(msg, len, &er, reason, size);
                if (r >= 0)
                        proto_error_done(&er);
                return r;
        default:
                return proto_parse_detach(msg, len, reason, size);
        }
}

static void test_malformed(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(bad_table); i++) {
                const struct bad *b = &bad_table[i];
                size_t len = b->len ?: strlen(b->msg);
                char reason[PROTO_REASON_MAX] = "";
                int r;

                r = parse_as(b->verb, b->msg, len, reason, sizeof(reason));
                if (r != -EBADMSG || !strstr(reason, b->reason))
                        fail_msg("case %zu (%.40s...): r=%d reason \"%s\", expected \"%s\"", i, b->msg, r, reason, b->reason);
                /* The reason is a one-liner, fit for ERROR's MESSAGE. */
                assert_null(strchr(reason, '\n'));
                /* A NULL reason buffer is fine too. */
                assert_int_equal(parse_as(b->verb, b->msg, len, NULL, 0), -EBADMSG);
        }
}

static void test_labels_limit(void **state) {
        _cleanup_(proto_attach_done) struct proto_attach out = {};
        char buf[PROTO_MSG_MAX], reason[PROTO_REASON_MAX];
        struct proto_label labels[PROTO_LABELS_MAX + 1];
        char keys[PROTO_LABELS_MAX + 1][8];
        struct proto_attach in = { .vmfd = 5, .labels = labels };
        size_t n = 0;

        for (size_t i = 0; i <= PROTO_LABELS_MAX; i++) {
                snprintf(keys[i], sizeof(keys[i]), "k%02zu", i);
                labels[i] = (struct proto_label) { .key = keys[i], .value = "v" };
        }
        in.n_labels = PROTO_LABELS_MAX;
        assert_true(proto_format_attach(buf, sizeof(buf), &in) > 0);
        assert_int_equal(proto_parse_attach(buf, strlen(buf), &out, NULL, 0), 0);
        assert_int_equal(out.n_labels, PROTO_LABELS_MAX);

        in.n_labels = PROTO_LABELS_MAX + 1;
        assert_int_equal(proto_format_attach(buf, sizeof(buf), &in), -EINVAL);
        /* Hand-made: 65 labels on the wire. */
        n = snprintf(buf, sizeof(buf), "PMUFILTER/1 ATTACH\nVMFD=5\n");
        for (size_t i = 0; i <= PROTO_LABELS_MAX; i++)
                n += snprintf(buf + n, sizeof(buf) - n, "LABEL.%s=v\n", keys[i]);
        assert_int_equal(proto_parse_attach(buf, n, &out, reason, sizeof(reason)), -EBADMSG);
        assert_non_null(strstr(reason, "65 labels, at most 64"));
}

static void test_size_limits(void **state) {
        _cleanup_free_ char *big = malloc(PROTO_MSG_MAX + 2);
        _cleanup_free_ uint64_t *ev = calloc(PROTO_EVENTS_MAX + 1, sizeof(uint64_t));
        _cleanup_(proto_apply_done) struct proto_apply out = {};
        struct proto_apply in = { .serial = 9, .events = ev };
        char reason[PROTO_REASON_MAX], small[24];
        size_t hdr;
        int n;

        assert_non_null(big);
        assert_non_null(ev);

        /* Exactly 16 KiB is accepted, one byte more is not. */
        hdr = strlen("PMUFILTER/1 DETACH\nX=");
        memcpy(big, "PMUFILTER/1 DETACH\nX=", hdr);
        memset(big + hdr, 'a', PROTO_MSG_MAX + 1 - hdr);
        assert_int_equal(proto_parse_detach(big, PROTO_MSG_MAX, NULL, 0), 0);
        assert_int_equal(proto_parse_detach(big, PROTO_MSG_MAX + 1, reason, sizeof(reason)), -EBADMSG);
        assert_non_null(strstr(reason, "16385 bytes exceeds the limit of 16384"));

        /* 1024 events fit (short words), 1025 are refused both ways. */
        for (size_t i = 0; i <= PROTO_EVENTS_MAX; i++)
                ev[i] = 0x100 + i;
        in.n_events = PROTO_EVENTS_MAX;
        n = proto_format_apply(big, PROTO_MSG_MAX, &in);
        assert_true(n > 0 && n <= PROTO_MSG_MAX);
        assert_int_equal(proto_parse_apply(big, n, &out, NULL, 0), 0);
        assert_int_equal(out.n_events, PROTO_EVENTS_MAX);
        assert_memory_equal(out.events, ev, PROTO_EVENTS_MAX * sizeof(uint64_t));
        in.n_events = PROTO_EVENTS_MAX + 1;
        assert_int_equal(proto_format_apply(big, PROTO_MSG_MAX, &in), -EINVAL);
        /* Replace the last "\n" by ",0x1\n": 1025 on the wire. */
        assert_true(n + 4 <= PROTO_MSG_MAX);
        memcpy(big + n - 1, ",0x1\n", 5);
        assert_int_equal(proto_parse_apply(big, n + 4, &out, reason, sizeof(reason)), -EBADMSG);
        assert_non_null(strstr(reason, "1025 events, at most 1024"));

        /* 1024 full-width masked words do not fit in one datagram. */
        for (size_t i = 0; i < PROTO_EVENTS_MAX; i++)
                ev[i] = 0xff000000000000b7ULL;
        in.n_events = PROTO_EVENTS_MAX;
        assert_int_equal(proto_format_apply(big, PROTO_MSG_MAX, &in), -EMSGSIZE);
        /* ... but the kernel's 300 do. */
        in.n_events = 300;
        assert_true(proto_format_apply(big, PROTO_MSG_MAX, &in) > 0);

        /* A small buffer is -ENOBUFS, not a cut message. */
        assert_int_equal(proto_format_detach(small, 5), -ENOBUFS);
        assert_int_equal(proto_format_apply(small, sizeof(small), &in), -ENOBUFS);
        assert_int_equal(proto_format_detach(small, strlen("PMUFILTER/1 DETACH\n")), 19);
}

static void test_format_refuses(void **state) {
        struct proto_label bad_key = { .key = "a b", .value = "x" };
        struct proto_label dup[] = { { .key = "a", .value = "1" }, { .key = "a", .value = "2" } };
        char buf[1024];

        assert_int_equal(proto_format_attach(buf, sizeof(buf), &(struct proto_attach) { .vmfd = -1 }), -EINVAL);
        assert_int_equal(proto_format_attach(buf, sizeof(buf), &(struct proto_attach) { .vmfd = 3, .name = "a\nVMFD=9" }), -EINVAL);
        assert_int_equal(proto_format_attach(buf, sizeof(buf), &(struct proto_attach) { .vmfd = 3, .name = "" }), -EINVAL);
        assert_int_equal(proto_format_attach(buf, sizeof(buf), &(struct proto_attach) { .vmfd = 3, .uuid = "x" }), -EINVAL);
        assert_int_equal(proto_format_attach(buf, sizeof(buf), &(struct proto_attach) { .vmfd = 3, .name = "\xff" }), -EINVAL);
        assert_int_equal(proto_format_attach(buf, sizeof(buf),
                                             &(struct proto_attach) { .vmfd = 3, .labels = &bad_key, .n_labels = 1 }), -EINVAL);
        assert_int_equal(proto_format_attach(buf, sizeof(buf),
                                             &(struct proto_attach) { .vmfd = 3, .labels = dup, .n_labels = 2 }), -EINVAL);
        assert_int_equal(proto_format_apply(buf, sizeof(buf), &(struct proto_apply) { .action = 7 }), -EINVAL);
        assert_int_equal(proto_format_apply(buf, sizeof(buf), &(struct proto_apply) { .n_events = 1 }), -EINVAL);
        assert_int_equal(proto_format_apply(buf, sizeof(buf), &(struct proto_apply) { .profile = "a\tb" }), -EINVAL);
        assert_int_equal(proto_format_applied(buf, sizeof(buf), &(struct proto_applied) { .error = 4096 }), -EINVAL);
        assert_int_equal(proto_format_applied(buf, sizeof(buf), &(struct proto_applied) { .error = -1 }), -EINVAL);
        assert_int_equal(proto_format_error(buf, sizeof(buf), &(struct proto_error) { .error = 0 }), -EINVAL);
        assert_int_equal(proto_format_error(buf, sizeof(buf), &(struct proto_error) { .error = 1, .message = "a\nb" }), -EINVAL);
}

/* A buffer of exactly the message's length holds the whole message (no
 * NUL written over its last byte); one byte shorter is -ENOBUFS; one
 * longer also gets the NUL. */
static void test_format_exact_fit(void **state) {
        static const char detach[] = "PMUFILTER/1 DETACH\n";
        struct proto_applied a = { .serial = 42, .error = 0 };
        static const char applied[] = "PMUFILTER/1 APPLIED\nSERIAL=42\nERRNO=0\n";
        char buf[64];

        memset(buf, 'x', sizeof(buf));
        assert_int_equal(proto_format_detach(buf, strlen(detach)), (int) strlen(detach));
        assert_memory_equal(buf, detach, strlen(detach));
        assert_int_equal(buf[strlen(detach)], 'x');
        assert_int_equal(proto_format_detach(buf, strlen(detach) - 1), -ENOBUFS);
        assert_int_equal(proto_format_detach(buf, strlen(detach) + 1), (int) strlen(detach));
        assert_string_equal(buf, detach);

        memset(buf, 'x', sizeof(buf));
        assert_int_equal(proto_format_applied(buf, strlen(applied), &a), (int) strlen(applied));
        assert_memory_equal(buf, applied, strlen(applied));
        assert_int_equal(proto_format_applied(buf, 0, &a), -ENOBUFS);
        assert_int_equal(proto_format_applied(NULL, 0, &a), -ENOBUFS);
}

static void test_sanitize(void **state) {
        char buf[16];

        proto_sanitize_message(buf, sizeof(buf), "a\nb\tc\xff" "d");
        assert_string_equal(buf, "a?b?c?d");
        proto_sanitize_message(buf, sizeof(buf), NULL);
        assert_string_equal(buf, "");
        /* Cut on a character boundary: "ü" is two bytes and must not be split. */
        proto_sanitize_message(buf, 4, "abü");
        assert_string_equal(buf, "ab");
        proto_sanitize_message(buf, 5, "abü");
        assert_string_equal(buf, "abü");
}

/* Hostile inputs: mutations of valid messages.  Whatever a parser accepts
 * must format back and parse to the same thing; nothing may crash (run it
 * under valgrind / ASan to see that). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void check_stable(const char *msg, size_t len) {
        struct proto_attach at, at2;
        struct proto_apply ap, ap2;
        char buf[PROTO_MSG_MAX];
        int n;

        if (proto_parse_attach(msg, len, &at, NULL, 0) == 0) {
                n = proto_format_attach(buf, sizeof(buf), &at);
                assert_true(n > 0);
                assert_int_equal(proto_parse_attach(buf, n, &at2, NULL, 0), 0);
                assert_int_equal(at.vmfd, at2.vmfd);
                assert_int_equal(at.n_labels, at2.n_labels);
                assert_true(streq_ptr(at.name, at2.name));
                proto_attach_done(&at);
                proto_attach_done(&at2);
        }
        if (proto_parse_apply(msg, len, &ap, NULL, 0) == 0) {
                n = proto_format_apply(buf, sizeof(buf), &ap);
                assert_true(n > 0);
                assert_int_equal(proto_parse_apply(buf, n, &ap2, NULL, 0), 0);
                assert_int_equal(ap.n_events, ap2.n_events);
                assert_true(ap.serial == ap2.serial);
                if (ap.n_events > 0)
                        assert_memory_equal(ap.events, ap2.events, ap.n_events * sizeof(uint64_t));
                proto_apply_done(&ap);
                proto_apply_done(&ap2);
        }
}

static void test_hostile(void **state) {
        static const char *const seeds[] = {
                "PMUFILTER/1 ATTACH\nVMFD=8\nVCPUS=0\nNAME=vm\nUUID=01234567-89ab-cdef-0123-456789abcdef\nCLIENT=preload\nLABEL.tier=a\n",
                "PMUFILTER/1 APPLY\nVM=1-2\nSERIAL=3\nPROFILE=p\nPMU=on\nACTION=deny\nFLAGS=1\nFIXED=0x3\nEVENTS=0xc0,0x3c,0xff000000000000b7\n",
                "PMUFILTER/1 APPLIED\nSERIAL=3\nERRNO=0\nPMU_ERRNO=22\n",
                "PMUFILTER/1 ERROR\nERRNO=1\nMESSAGE=no\n",
        };
        static const char alphabet[] = "\n=,.xX0aA9\xff\xc3\xa9 \0-LABEL.";
        char msg[512], reason[PROTO_REASON_MAX];
        unsigned accepted = 0;

        for (unsigned iter = 0; iter < 20000; iter++) {
                const char *seed = seeds[iter % ELEMENTSOF(seeds)];
                size_t len = strlen(seed);
                unsigned edits = 1 + rng() % 4;
                enum proto_verb v;

                memcpy(msg, seed, len);
                for (unsigned e = 0; e < edits && len > 0; e++) {
                        size_t pos = rng() % len;

                        switch (rng() % 3) {
                        case 0: /* replace */
                                msg[pos] = alphabet[rng() % (sizeof(alphabet) - 1)];
                                break;
                        case 1: /* delete */
                                memmove(msg + pos, msg + pos + 1, len - pos - 1);
                                len--;
                                break;
                        default: /* insert */
                                if (len + 1 >= sizeof(msg))
                                        break;
                                memmove(msg + pos + 1, msg + pos, len - pos);
                                msg[pos] = alphabet[rng() % (sizeof(alphabet) - 1)];
                                len++;
                        }
                }
                reason[0] = 0;
                if (proto_parse_verb(msg, len, &v, reason, sizeof(reason)) == 0) {
                        accepted++;
                        check_stable(msg, len);
                } else
                        assert_true(reason[0] != 0 && !strchr(reason, '\n'));
        }
        /* Some mutations keep the message valid, most do not. */
        assert_true(accepted > 100 && accepted < 20000);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip_attach),
                cmocka_unit_test(test_roundtrip_apply),
                cmocka_unit_test(test_roundtrip_applied_error_detach),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_labels_limit),
                cmocka_unit_test(test_size_limits),
                cmocka_unit_test(test_format_refuses),
                cmocka_unit_test(test_format_exact_fit),
                cmocka_unit_test(test_sanitize),
                cmocka_unit_test(test_hostile),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
