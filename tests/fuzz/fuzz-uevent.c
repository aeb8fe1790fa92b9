/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-uevent.c — kvm_uevent_parse() (daemon/uevent.h), which reads the
 * properties of every kvm `change` uevent on the host.  The input is the
 * five property values EVENT, PID, STATS_PATH, COUNT, CREATED separated by
 * NUL bytes; missing trailing fields, and a field that is the single byte
 * 0x01, stand for an absent property (NULL).
 *
 * Properties: no crash; *ret untouched on failure; on success the event is
 * whole (pid == tid > 0, fd -1 exactly when STATS_PATH is absent) and the
 * kernel's own spelling of it is exactly what was parsed (the parser takes
 * only the canonical form, so a second spelling cannot alias a VM).
 *
 * The same input is also one whole message of the kernel's uevent socket
 * for kvm_uevent_parse_message() (the corpus's msg-* seeds are such
 * messages): 0, -ENOENT or -EBADMSG, *ret untouched on failure, and on
 * success the message is NUL-terminated, names the misc device kvm's
 * change (the last part of DEVPATH is kvm), holds each key once, and its event is kvm_uevent_parse() of the
 * values a plain reading of its strings finds.
 */
#include <inttypes.h>

#include "fuzz.h"
#include "uevent.h"

/* The value of key in the message, read the plain way; NULL if absent. */
static const char *plain_value(const char *m, size_t len, const char *key, unsigned *ret_count) {
        const char *v = NULL;

        *ret_count = 0;
        for (size_t i = strlen(m) + 1; i < len; i += strlen(m + i) + 1)
                if (startswith(m + i, key)) {
                        v = v ? v : m + i + strlen(key);
                        (*ret_count)++;
                }
        return v;
}

static void check_message(const uint8_t *data, size_t size) {
        static const char *const keys[] = { "EVENT=", "PID=", "STATS_PATH=", "COUNT=", "CREATED=" };
        const char *m = (const char *) data, *v[ELEMENTSOF(keys)], *action, *subsystem, *devpath;
        struct kvm_uevent ev, untouched, want;
        unsigned count;
        int r;

        memset(&ev, 0xa5, sizeof(ev));
        untouched = ev;
        r = kvm_uevent_parse_message(m, size, &ev);
        fuzz_check(r == 0 || r == -ENOENT || r == -EBADMSG, "message: returned %d", r);
        if (r < 0) {
                fuzz_check(memcmp(&ev, &untouched, sizeof(ev)) == 0, "message: *ret written on failure");
                return;
        }

        fuzz_check(size > 0 && m[size - 1] == 0, "message accepted without its final NUL");
        fuzz_check(strchr(m, '@'), "message accepted without a header");
        action = plain_value(m, size, "ACTION=", &count);
        fuzz_check(count == 1 && streq(action, "change"), "ACTION=%s (%u times)", strna(action), count);
        subsystem = plain_value(m, size, "SUBSYSTEM=", &count);
        fuzz_check(count == 1 && streq(subsystem, "misc"), "SUBSYSTEM=%s (%u times)", strna(subsystem), count);
        devpath = plain_value(m, size, "DEVPATH=", &count);
        fuzz_check(count == 1 && streq(strrchr(devpath, '/') ? strrchr(devpath, '/') + 1 : devpath, "kvm"),
                   "DEVPATH=%s (%u times)", strna(devpath), count);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                v[i] = plain_value(m, size, keys[i], &count);
                fuzz_check(count <= 1, "%s %u times", keys[i], count);
        }
        memset(&want, 0xa5, sizeof(want));
        fuzz_check(kvm_uevent_parse(v[0], v[1], v[2], v[3], v[4], &want) == 0, "message parsed, its values not");
        fuzz_check(memcmp(&ev, &want, sizeof(ev)) == 0, "message parsed otherwise than its values");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *f[5] = {}, buf[64];
        const char *v[5] = {};
        size_t lens[5], n;
        struct kvm_uevent ev, untouched;
        int r;

        check_message(data, size);

        n = fuzz_split(data, size, ELEMENTSOF(f), f, lens);
        for (size_t i = 0; i < n; i++)
                v[i] = lens[i] == 1 && f[i][0] == 1 ? NULL : f[i];

        memset(&ev, 0xa5, sizeof(ev));
        untouched = ev;
        r = kvm_uevent_parse(v[0], v[1], v[2], v[3], v[4], &ev);
        fuzz_check(r == 0 || r == -EBADMSG, "returned %d", r);
        if (r < 0) {
                fuzz_check(memcmp(&ev, &untouched, sizeof(ev)) == 0, "*ret written on failure");
                fuzz_pieces_free(f, n);
                return 0;
        }

        fuzz_check(ev.type == KVM_UEVENT_CREATE || ev.type == KVM_UEVENT_DESTROY, "type %d", (int) ev.type);
        fuzz_check(streq(v[0], ev.type == KVM_UEVENT_CREATE ? "create" : "destroy"), "EVENT=%s", v[0]);
        fuzz_check(ev.pid == ev.tid && ev.tid > 0, "pid %d tid %d", (int) ev.pid, (int) ev.tid);
        snprintf(buf, sizeof(buf), "%d", (int) ev.tid);
        fuzz_check(streq(buf, v[1]), "PID=%s parsed as %s", v[1], buf);
        snprintf(buf, sizeof(buf), "%" PRIu64, ev.count);
        fuzz_check(streq(buf, v[3]), "COUNT=%s parsed as %s", v[3], buf);
        snprintf(buf, sizeof(buf), "%" PRIu64, ev.created);
        fuzz_check(streq(buf, v[4]), "CREATED=%s parsed as %s", v[4], buf);
        if (v[2]) {
                fuzz_check(ev.fd >= 0, "fd %d with STATS_PATH=%s", ev.fd, v[2]);
                snprintf(buf, sizeof(buf), "/kvm/%d-%d", (int) ev.tid, ev.fd);
                fuzz_check(streq(buf, v[2]), "STATS_PATH=%s parsed as %s", v[2], buf);
        } else
                fuzz_check(ev.fd == -1, "fd %d without STATS_PATH", ev.fd);

        fuzz_pieces_free(f, n);
        return 0;
}
