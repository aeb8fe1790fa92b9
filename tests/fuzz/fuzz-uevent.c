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
 */
#include <inttypes.h>

#include "fuzz.h"
#include "uevent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *f[5] = {}, buf[64];
        const char *v[5] = {};
        size_t lens[5], n;
        struct kvm_uevent ev, untouched;
        int r;

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
