/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-timespan.c — the time spans of `pmufilterctl profile set --for`
 * (parse_timespan(), format_timespan() in lib/util.c; pmufilterctl(1), TIME
 * SPANS), and the grants' expiries in state.yaml (lib/state.c): read
 * strictly, written back whole.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "state.h"

#define SEC USEC_PER_SEC

static void test_good_spans(void **state) {
        static const struct {
                const char *s;
                uint64_t usec;
        } good[] = {
                { "90s", 90 * SEC }, { "15min", 900 * SEC }, { "2h", 7200 * SEC }, { "1d", 86400 * SEC },
                { "1h30min", 5400 * SEC }, { "1h 30min", 5400 * SEC }, { " 2h ", 7200 * SEC },
                { "1w", 7 * 86400 * SEC }, { "3m", 180 * SEC }, { "500ms", 500000 }, { "7us", 7 },
                { "2hours", 7200 * SEC }, { "1 hour", 3600 * SEC }, { "5 min", 300 * SEC }, { "10sec 5s", 15 * SEC },
                { "1d2h3min4s", (86400 + 7200 + 180 + 4) * SEC }, { "0s", 0 },
                { "18446744073709551615us", UINT64_MAX },
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                const char *why = "unset";
                uint64_t usec = 1;

                assert_int_equal(parse_timespan(good[i].s, &usec, &why), 0);
                assert_null(why);
                if (usec != good[i].usec)
                        fail_msg("'%s': %" PRIu64 " µs, expected %" PRIu64, good[i].s, usec, good[i].usec);
        }
}

static void test_bad_spans(void **state) {
        static const struct {
                const char *s;
                int r;
                const char *why;
        } bad[] = {
                { "", -EINVAL, "empty" },
                { "   ", -EINVAL, "empty" },
                { "-5min", -EINVAL, "negative" },
                { "5", -EINVAL, "a number needs a unit (s, min, h, d, ...)" },
                { "1h30", -EINVAL, "a number needs a unit (s, min, h, d, ...)" },
                { "5fortnights", -EINVAL, "unknown unit" },
                { "5H", -EINVAL, "unknown unit" },
                { "5mins", -EINVAL, "unknown unit" },
                { "1.5h", -EINVAL, "no fractions: say 1h30min, not 1.5h" },
                { "h", -EINVAL, "expected a number" },
                { "+5s", -EINVAL, "expected a number" },
                { "0x10s", -EINVAL, "unknown unit" },
                { "2h-1min", -EINVAL, "negative" },
                { "18446744073709551616us", -ERANGE, "too long" },
                { "99999999999999999999999s", -ERANGE, "too long" },
                { "18446744073709552s", -ERANGE, "too long" },
                { "18446744073709551615us 1us", -ERANGE, "too long" },
                { "30600000w", -ERANGE, "too long" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                const char *why = NULL;
                uint64_t usec = 42;
                int r = parse_timespan(bad[i].s, &usec, &why);

                if (r != bad[i].r || !why || strcmp(why, bad[i].why) != 0)
                        fail_msg("'%s': %d (%s), expected %d (%s)", bad[i].s, r, why ? why : "no reason", bad[i].r,
                                 bad[i].why);
                assert_int_equal(usec, 42);     /* untouched */
        }
        assert_int_equal(parse_timespan(NULL, &(uint64_t) { 0 }, NULL), -EINVAL);
}

static void test_format(void **state) {
        char buf[64];

        assert_string_equal(format_timespan(buf, sizeof buf, 7200 * SEC), "2h");
        assert_string_equal(format_timespan(buf, sizeof buf, 7140 * SEC + 999999), "1h 59min");
        assert_string_equal(format_timespan(buf, sizeof buf, 3605 * SEC), "1h");
        assert_string_equal(format_timespan(buf, sizeof buf, (86400 + 3 * 3600 + 60) * SEC), "1d 3h");
        assert_string_equal(format_timespan(buf, sizeof buf, 45 * SEC), "45s");
        assert_string_equal(format_timespan(buf, sizeof buf, 999999), "0s");
        assert_string_equal(format_iso8601(buf, sizeof buf, UINT64_C(1796000000) * SEC), "2026-11-30T00:53:20Z");
}

static void test_state_expiries_round_trip(void **state) {
        static const char text[] = "version: 2\n"
                                   "vms:\n"
                                   "  \"uid:0/name:vm-7\": gold\n"
                                   "  \"machine:1b4e\": trusted\n"
                                   "expires_usec:\n"
                                   "  \"uid:0/name:vm-7\": 1796000000000000\n";
        char dir[] = "/tmp/test-timespan.XXXXXX";
        _cleanup_free_ char *path = NULL, *error = NULL;
        struct state s = {}, back = {};

        assert_int_equal(state_parse(text, strlen(text), &s, &error), 0);
        assert_int_equal(s.n, 2);
        assert_int_equal(state_entry_get(&s, "uid:0/name:vm-7")->expires_usec, UINT64_C(1796000000000000));
        assert_int_equal(state_entry_get(&s, "machine:1b4e")->expires_usec, 0);
        assert_int_equal(state_next_expiry(&s), UINT64_C(1796000000000000));

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/state.yaml", dir) > 0);
        assert_int_equal(state_save(path, &s), 0);
        assert_int_equal(state_load(path, &back, &error), 0);
        assert_int_equal(back.n, 2);
        assert_int_equal(state_entry_get(&back, "uid:0/name:vm-7")->expires_usec, UINT64_C(1796000000000000));
        assert_int_equal(state_entry_get(&back, "machine:1b4e")->expires_usec, 0);
        (void) unlink(path);
        (void) rmdir(dir);

        /* A plain change of the key ends the grant. */
        assert_int_equal(state_set(&s, "uid:0/name:vm-7", "minimal"), 0);
        assert_int_equal(state_entry_get(&s, "uid:0/name:vm-7")->expires_usec, 0);
        assert_int_equal(state_next_expiry(&s), 0);
        assert_int_equal(state_set_expiry(&s, "uid:0/name:nobody", 5), -ENOENT);
        state_done(&s);
        state_done(&back);
}

static void test_state_bad_expiries(void **state) {
        static const struct {
                const char *text, *why;
        } bad[] = {
                { "version: 2\nexpires_usec:\n  \"uid:0/name:a\": 17960000\nvms:\n  \"uid:0/name:a\": gold\n",
                  "line 3 column 19: an expiry for a key that 'vms' (above it) does not hold" },
                { "version: 2\nvms:\n  \"uid:0/name:a\": gold\nexpires_usec:\n  \"uid:0/name:a\": soon\n",
                  "line 5 column 19: an expiry is a number of microseconds since the epoch" },
                { "version: 2\nvms:\n  \"uid:0/name:a\": gold\nexpires_usec:\n  \"uid:0/name:a\": -1\n",
                  "line 5 column 19: an expiry is a number of microseconds since the epoch" },
                { "version: 2\nvms:\n  \"uid:0/name:a\": gold\nexpires_usec:\n  \"uid:0/name:a\": 0x10\n",
                  "line 5 column 19: an expiry is a number of microseconds since the epoch" },
                { "version: 2\nvms:\n  \"uid:0/name:a\": gold\nexpires_usec:\n  \"uid:0/name:a\": 99999999999999999999\n",
                  "line 5 column 19: an expiry is a number of microseconds since the epoch" },
                { "version: 2\nvms:\n  \"uid:0/name:a\": gold\nexpires_usec:\n  \"uid:0/name:a\": 0\n",
                  "line 5 column 19: an expiry of 0 is none: leave the line out" },
                { "version: 2\nexpires_usec: 5\n", "line 2 column 15: unknown key" },
                { "version: 2\nvms:\n  \"uid:0/name:a\": gold\nexpires_usec:\n  \"uid:0/name:a\": { at: 5 }\n",
                  "line 5 column 19: too deeply nested" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *error = NULL;
                struct state s = {};

                assert_int_equal(state_parse(bad[i].text, strlen(bad[i].text), &s, &error), -EINVAL);
                if (!error || strcmp(error, bad[i].why) != 0)
                        fail_msg("case %zu: '%s', expected '%s'", i, error ? error : "no reason", bad[i].why);
                assert_int_equal(s.n, 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good_spans),
                cmocka_unit_test(test_bad_spans),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_state_expiries_round_trip),
                cmocka_unit_test(test_state_bad_expiries),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
