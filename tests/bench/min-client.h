/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * min-client.h — the smallest client of the wire protocol (pmufilterd-vmm(7))
 * that does the whole exchange: the floor of the benchmarks that is not
 * ours.  It uses neither libpmufilter-client nor lib/ (no codec, no checks
 * beyond what it needs to read the numbers): a blocking SOCK_SEQPACKET
 * socket, connect(), ATTACH with the VM fd as SCM_RIGHTS, one recv() of the
 * APPLY, the fields parsed in place, KVM_SET_PMU_EVENT_FILTER with them,
 * APPLIED back.  No peer-uid check, no timeouts, no reconnection, no epoll
 * or timer fds: what any VMM must do, and nothing a library adds.
 *
 *   min_attach(vm, path, name, label, &sock)   0 (the kernel's answer: 0 or
 *                                              -errno of the ioctl), or -errno
 *   min_attach_checked(..., true, &sock)       the same with the library's
 *                                              three contract calls
 *   min_answer(vm, sock)                       one later APPLY, answered
 *   close(sock)                                ends the session (= DETACH)
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "bench-clock.h"

#ifndef KVM_CAP_PMU_CAPABILITY
#define KVM_CAP_PMU_CAPABILITY 212
#endif
#ifndef KVM_PMU_CAP_DISABLE
#define KVM_PMU_CAP_DISABLE (1 << 0)
#endif

#define MIN_MSG_MAX 16384
#define MIN_EVENTS_MAX 1024

/* When the last attach reached each of its steps (CLOCK_MONOTONIC ns): the
 * ATTACH sent, the APPLY received, the VMM's ioctl done.  The peer's part
 * of an attach is sent → received; the VMM's own, received → ioctl done
 * (where a peer that keeps the CPU after its APPLY shows). */
static struct {
        uint64_t sent, received, applied;
} min_steps;

/* One APPLY datagram in buf (NUL-terminated): the filter applied on vm, the
 * APPLIED sent on sock.  -EPROTO for anything but an APPLY. */
static inline int min_apply(int vm, int sock, char *buf, size_t n) {
        union {
                struct kvm_pmu_event_filter f;
                char space[sizeof(struct kvm_pmu_event_filter) + MIN_EVENTS_MAX * sizeof(uint64_t)];
        } u;
        struct kvm_enable_cap cap = { .cap = KVM_CAP_PMU_CAPABILITY, .args[0] = KVM_PMU_CAP_DISABLE };
        const char *serial = NULL;
        size_t serial_len = 0;
        int pmu_off = 0, pmu_errno = 0, err, l;
        char out[128];

        if (n < 17 || memcmp(buf, "PMUFILTER/1 APPLY\n", 18) != 0)
                return -EPROTO;
        memset(&u.f, 0, sizeof(u.f));
        for (char *line = buf + 18, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (strncmp(line, "SERIAL=", 7) == 0) {
                        serial = line + 7;
                        serial_len = strlen(serial);
                } else if (strncmp(line, "ACTION=", 7) == 0)
                        u.f.action = strcmp(line + 7, "deny") == 0 ? KVM_PMU_EVENT_DENY : KVM_PMU_EVENT_ALLOW;
                else if (strncmp(line, "FLAGS=", 6) == 0)
                        u.f.flags = (uint32_t) strtoul(line + 6, NULL, 10);
                else if (strncmp(line, "FIXED=", 6) == 0)
                        u.f.fixed_counter_bitmap = (uint32_t) strtoul(line + 6, NULL, 16);
                else if (strncmp(line, "PMU=", 4) == 0)
                        pmu_off = strcmp(line + 4, "off") == 0;
                else if (strncmp(line, "EVENTS=", 7) == 0)
                        for (char *p = line + 7; *p && u.f.nevents < MIN_EVENTS_MAX; p += *p == ',')
                                u.f.events[u.f.nevents++] = strtoull(p, &p, 16);
        }
        if (!serial)
                return -EPROTO;
        if (pmu_off && ioctl(vm, KVM_ENABLE_CAP, &cap) < 0)
                pmu_errno = errno;
        err = ioctl(vm, KVM_SET_PMU_EVENT_FILTER, &u.f) < 0 ? errno : 0;
        min_steps.applied = now_ns();
        l = snprintf(out, sizeof(out), "PMUFILTER/1 APPLIED\nSERIAL=%.*s\nERRNO=%d\n", (int) serial_len, serial, err);
        if (pmu_off)
                l += snprintf(out + l, sizeof(out) - (size_t) l, "PMU_ERRNO=%d\n", pmu_errno);
        if (send(sock, out, (size_t) l, MSG_NOSIGNAL) < 0)
                return -errno;
        return -err;
}

/* A session for vm on the socket at path: connect, ATTACH, APPLY, ioctl,
 * APPLIED.  *ret_sock is the session (close it to end it); on failure it
 * is -1 and nothing is left open. */
static inline int min_attach_checked(int vm, const char *path, const char *name, const char *label, bool checks,
                                     int *ret_sock) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[MIN_MSG_MAX + 1];
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = { .iov_base = buf };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        struct timeval tv = { .tv_sec = 10 };
        struct cmsghdr *c;
        ssize_t n;
        int sock, l, r;

        *ret_sock = -1;
        sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (sock < 0)
                return -errno;
        strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
        /* checks: the three calls pmufilterd-vmm(7) has a client make that
         * a VMM need not, each as libpmufilter-client makes it (a send
         * timeout before connect(), the peer's uid after, a receive timeout
         * before the APPLY): what is left of the library's cost is its own. */
        if (checks && setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                goto fail;
        if (connect(sock, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                goto fail;
        if (checks) {
                struct ucred cred = {};
                socklen_t cl = sizeof(cred);

                if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
                        goto fail;
                if (cred.uid != 0) {
                        errno = EPERM;
                        goto fail;
                }
                if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
                        goto fail;
        }
        l = snprintf(buf, sizeof(buf), "PMUFILTER/1 ATTACH\nVMFD=%d\nNAME=%s\n%s%s", vm, name,
                     label ? "LABEL." : "", label ? label : "");
        if (label)
                buf[l++] = '\n';
        iov.iov_len = (size_t) l;
        memset(&control, 0, sizeof(control));
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &vm, sizeof(int));
        if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
                goto fail;
        min_steps.sent = now_ns();
        n = recv(sock, buf, MIN_MSG_MAX, 0);
        min_steps.received = now_ns();
        if (n <= 0) {
                errno = n < 0 ? errno : ECONNRESET;
                goto fail;
        }
        buf[n] = 0;
        r = min_apply(vm, sock, buf, (size_t) n);
        if (r == -EPROTO) {
                fprintf(stderr, "min-client: answer to ATTACH: %.200s\n", buf);
                close(sock);
                return r;
        }
        *ret_sock = sock;
        return r;
fail:
        r = -errno;
        close(sock);
        return r;
}

static inline int min_attach(int vm, const char *path, const char *name, const char *label, int *ret_sock) {
        return min_attach_checked(vm, path, name, label, false, ret_sock);
}

/* A later APPLY on an attached session: read it and answer it. */
static inline int min_answer(int vm, int sock) {
        char buf[MIN_MSG_MAX + 1];
        ssize_t n = recv(sock, buf, MIN_MSG_MAX, MSG_DONTWAIT);

        if (n < 0)
                return -errno;
        if (n == 0)
                return -ECONNRESET;
        buf[n] = 0;
        return min_apply(vm, sock, buf, (size_t) n);
}
