/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * client.c — libpmufilter-client: the VMM's side of one VM's session with
 * pmufilterd (pmufilterd-vmm(7)).  Connect (to a listener of pmufilterd's
 * uid only: wire_connect()), ATTACH with the VM fd, apply each APPLY to the
 * VM exactly as sent, answer APPLIED; re-attach when the session is lost.
 * libc and kernel headers only; the codec and the VM ioctls are compiled in
 * (lib/proto*.c, lib/kvm-vm.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "kvm-compat.h"
#include "kvm-vm.h"
#include "pmufilter-client.h"
#include "proto.h"
#include "proto-syntax.h"
#include "util.h"
#include "wire.h"

#define RETRY_MIN_MS 100u
#define RETRY_MAX_MS 10000u

struct pmufilter_session {
        int vm_fd;                      /* the caller's; never closed, never duplicated */
        int sock;                       /* -1 while disconnected */
        /* Made when first needed (session_watch()): a VMM that never asks
         * for pmufilter_session_fd() and never loses its session pays for
         * neither. */
        int epoll_fd;                   /* pmufilter_session_fd(): the same across reconnections */
        int timer_fd;                   /* fires when a reconnection is due */
        unsigned retry_ms;

        /* what every ATTACH says, copied from the arguments */
        char *socket_path;
        char *name;
        char *uuid;
        struct proto_label *labels;
        size_t n_labels;
        unsigned vcpus;
        enum proto_client client;
        int timeout_ms;

        /* the last APPLY and the kernel's answer */
        char *profile;
        char *vm_id;
        uint64_t serial;
        int apply_errno;
        int pmu_errno;
};


/* syscall(), not ioctl(): inside the preload shim ioctl() is the shim's own
 * wrapper, and the library's own requests must go straight to the kernel. */
static int vm_ioctl(int fd, unsigned long request, void *arg) {
        long r = syscall(SYS_ioctl, fd, request, arg);

        return r < 0 ? -errno : (int) r;
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The kernel's part: exactly the bytes of the APPLY.  Sets apply_errno and
 * pmu_errno of the session. */
static void apply_filter(struct pmufilter_session *s, const struct proto_apply *a) {
        _cleanup_free_ struct kvm_pmu_event_filter *f = NULL;
        int r;

        s->pmu_errno = -1;
        if (a->pmu_off) {
                /* The kernel only lets a VM without vCPUs drop its vPMU;
                 * with vCPUs, say so rather than ask. */
                if (s->vcpus > 0)
                        s->pmu_errno = EBUSY;
                else {
                        r = kvm_disable_pmu(s->vm_fd);
                        s->pmu_errno = r < 0 ? -r : 0;
                }
        }

        f = calloc(1, sizeof(*f) + a->n_events * sizeof(uint64_t));
        if (!f) {
                s->apply_errno = ENOMEM;
                return;
        }
        f->action = a->action;
        f->nevents = (uint32_t) a->n_events;
        f->fixed_counter_bitmap = a->fixed_counter_bitmap;
        f->flags = a->flags;
        if (a->n_events > 0)
                memcpy(f->events, a->events, a->n_events * sizeof(uint64_t));
        r = vm_ioctl(s->vm_fd, KVM_SET_PMU_EVENT_FILTER, f);
        s->apply_errno = r < 0 ? -r : 0;
}

/* Apply one APPLY datagram and answer APPLIED on sock.  Returns 0 (whatever
 * the kernel said: see s->apply_errno) or -errno when the message was
 * malformed or the answer could not be sent. */
static int handle_apply(struct pmufilter_session *s, int sock, const char *buf, size_t n) {
        _cleanup_(proto_apply_done) struct proto_apply a = {};
        char reason[PROTO_REASON_MAX], out[128];
        struct proto_applied ans;
        int r, l;

        r = proto_parse_apply(buf, n, &a, reason, sizeof(reason));
        if (r < 0)
                return fail(r, "malformed APPLY from pmufilterd: %s", r == -EBADMSG ? reason : "out of memory");

        apply_filter(s, &a);
        free(s->profile);
        s->profile = TAKE_PTR(a.profile);
        free(s->vm_id);
        s->vm_id = TAKE_PTR(a.vm);
        s->serial = a.serial;

        ans = (struct proto_applied) {
                .serial = a.serial,
                .error = s->apply_errno,
                .has_pmu_error = a.pmu_off,
                .pmu_error = s->pmu_errno < 0 ? 0 : s->pmu_errno,
        };
        l = proto_format_applied(out, sizeof(out), &ans);
        if (l < 0)
                return fail(l, "formatting APPLIED failed");
        r = wire_send(sock, out, (size_t) l, -1, 0);
        if (r < 0)
                return fail_errno(r, "sending APPLIED to pmufilterd");
        if (s->apply_errno != 0)
                (void) fail_errno(-s->apply_errno, "KVM_SET_PMU_EVENT_FILTER (profile %s, serial %llu) on VM fd %d",
                                  strna(s->profile), (unsigned long long) s->serial, s->vm_fd);
        return 0;
}

static int send_attach(struct pmufilter_session *s, int sock) {
        struct proto_attach m = {
                .vmfd = s->vm_fd,
                .vcpus = s->vcpus,
                .name = s->name,
                .uuid = s->uuid,
                .client = s->client,
                .labels = s->labels,
                .n_labels = s->n_labels,
        };
        char buf[PROTO_MSG_MAX];
        int r, l;

        l = proto_format_attach(buf, sizeof(buf), &m);
        if (l < 0)
                return fail(l, "ATTACH for VM fd %d does not fit in one message", s->vm_fd);
        r = wire_send(sock, buf, (size_t) l, s->vm_fd, 0);
        if (r == -EBADF)
                return fail_errno(r, "VM fd %d is not open", s->vm_fd);
        if (r < 0)
                return fail_errno(r, "sending ATTACH to pmufilterd at %s", s->socket_path);
        return 0;
}

static void session_disconnect(struct pmufilter_session *s) {
        if (s->sock < 0)
                return;
        if (s->epoll_fd >= 0)
                (void) epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, s->sock, NULL);
        s->sock = safe_close(s->sock);
}

/* The epoll fd of pmufilter_session_fd(), with the retry timer and the
 * connection in it, made the first time either is needed. */
static int session_watch(struct pmufilter_session *s) {
        _cleanup_close_ int ep = -1, timer = -1;
        struct epoll_event ev = { .events = EPOLLIN };

        if (s->epoll_fd >= 0)
                return 0;
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0)
                return fail_errno(-errno, "epoll_create1");
        timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (timer < 0)
                return fail_errno(-errno, "timerfd_create");
        ev.data.fd = timer;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, timer, &ev) < 0)
                return fail_errno(-errno, "adding the retry timer to the session's epoll fd");
        ev.data.fd = s->sock;
        if (s->sock >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, s->sock, &ev) < 0)
                return fail_errno(-errno, "adding the session socket to its epoll fd");
        s->epoll_fd = TAKE_FD(ep);
        s->timer_fd = TAKE_FD(timer);
        return 0;
}

/* Connect, ATTACH, wait for the first answer and handle it.  On an APPLY the
 * connection becomes the session's, and the kernel's answer is returned
 * (0 or -errno).  Anything else leaves the session disconnected. */
static int session_attach(struct pmufilter_session *s) {
        _cleanup_close_ int sock = -1;
        int64_t deadline = now_ms() + s->timeout_ms;
        char buf[PROTO_MSG_MAX + 1], reason[PROTO_REASON_MAX];
        struct epoll_event ev = { .events = EPOLLIN };
        enum proto_verb verb;
        ssize_t n;
        int r;

        session_disconnect(s);
        r = wire_connect(s->socket_path, s->timeout_ms, &sock);
        if (r < 0)
                return r;
        r = send_attach(s, sock);
        if (r < 0)
                return r;

        /* A blocking receive, bounded by SO_RCVTIMEO: no poll() first. */
        for (;;) {
                int64_t left = deadline - now_ms();
                struct timeval tv = { .tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000 };

                if (left <= 0) {
                        n = -EAGAIN;
                        break;
                }
                if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
                        return fail_errno(-errno, "setsockopt(SO_RCVTIMEO) on the socket to %s", s->socket_path);
                n = wire_recv_once(sock, buf, sizeof(buf), 0);
                if (n != -EINTR)
                        break;
        }
        if (n == -EAGAIN || n == -EWOULDBLOCK)
                return fail(-ETIMEDOUT, "no answer from pmufilterd at %s within %d ms",
                            s->socket_path, s->timeout_ms);
        if (n == 0)
                return fail(-ECONNRESET, "pmufilterd at %s closed the connection without an answer", s->socket_path);
        if (n < 0)
                return n == -EBADMSG ? fail(-EBADMSG, "oversized answer from pmufilterd at %s", s->socket_path)
                                     : fail_errno(n, "receiving from pmufilterd at %s", s->socket_path);

        r = proto_parse_verb(buf, n, &verb, reason, sizeof(reason));
        if (r < 0)
                return fail(r, "malformed answer from pmufilterd: %s", r == -EBADMSG ? reason : "out of memory");
        if (verb == PROTO_ERROR) {
                _cleanup_(proto_error_done) struct proto_error e = {};

                r = proto_parse_error(buf, n, &e, reason, sizeof(reason));
                if (r < 0)
                        return fail(r, "malformed ERROR from pmufilterd: %s", r == -EBADMSG ? reason : "out of memory");
                return fail(-e.error, "pmufilterd refused VM fd %d: %s", s->vm_fd,
                            e.message && *e.message ? e.message : strerror(e.error));
        }
        if (verb != PROTO_APPLY)
                return fail(-EBADMSG, "pmufilterd answered ATTACH with %s, expected APPLY or ERROR",
                            proto_verb_to_string(verb));

        r = handle_apply(s, sock, buf, n);
        if (r < 0)
                return r;
        ev.data.fd = sock;
        if (s->epoll_fd >= 0 && epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, sock, &ev) < 0)
                return fail_errno(-errno, "adding the session socket to its epoll fd");
        s->sock = TAKE_FD(sock);
        s->retry_ms = 0;
        return -s->apply_errno;
}

static void schedule_retry(struct pmufilter_session *s) {
        struct itimerspec its = {};

        if (session_watch(s) < 0)
                return;         /* process() then tries again at once */
        s->retry_ms = s->retry_ms == 0 ? RETRY_MIN_MS : s->retry_ms * 2;
        if (s->retry_ms > RETRY_MAX_MS)
                s->retry_ms = RETRY_MAX_MS;
        its.it_value.tv_sec = s->retry_ms / 1000;
        its.it_value.tv_nsec = (long) (s->retry_ms % 1000) * 1000000;
        (void) timerfd_settime(s->timer_fd, 0, &its, NULL);
}

/* Re-attach now; when that does not give a connection, try again later.
 * Returns what process() returns. */
static int session_reattach(struct pmufilter_session *s) {
        int r = session_attach(s);

        if (s->sock < 0) {
                schedule_retry(s);
                return r;
        }
        return r < 0 ? r : 1;
}

static void label_free_all(struct proto_label *l, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(l[i].key);
                free(l[i].value);
        }
        free(l);
}

void pmufilter_session_free(struct pmufilter_session *s) {
        char buf[64];
        int l;

        if (!s)
                return;
        l = proto_format_detach(buf, sizeof(buf));
        if (s->sock >= 0 && l > 0)
                (void) wire_send(s->sock, buf, (size_t) l, -1, MSG_DONTWAIT);
        session_disconnect(s);
        safe_close(s->epoll_fd);
        safe_close(s->timer_fd);
        free(s->socket_path);
        free(s->name);
        free(s->uuid);
        label_free_all(s->labels, s->n_labels);
        free(s->profile);
        free(s->vm_id);
        free(s);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pmufilter_session *, pmufilter_session_free)

static int copy_labels(struct pmufilter_session *s, const char *const *labels) {
        size_t n = 0;

        for (const char *const *l = labels; l && *l; l++)
                n++;
        if (n > PROTO_LABELS_MAX)
                return fail(-EINVAL, "%zu labels given, at most %u allowed", n, PROTO_LABELS_MAX);
        if (n == 0)
                return 0;
        s->labels = calloc(n, sizeof(struct proto_label));
        if (!s->labels)
                return fail(-ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                const char *eq = strchr(labels[i], '=');
                struct proto_label *l = &s->labels[i];

                if (!eq)
                        return fail(-EINVAL, "label '%s' is not key=value", labels[i]);
                l->key = strndup(labels[i], eq - labels[i]);
                l->value = strdup(eq + 1);
                s->n_labels++;
                if (!l->key || !l->value)
                        return fail(-ENOMEM, "out of memory");
                if (!proto_label_key_ok(l->key))
                        return fail(-EINVAL, "label key '%s' has a character outside [A-Za-z0-9_.-]", l->key);
                if (!proto_value_ok(l->value, true))
                        return fail(-EINVAL, "value of label '%s' is not UTF-8 text without control characters", l->key);
                for (size_t j = 0; j < i; j++)
                        if (streq(s->labels[j].key, l->key))
                                return fail(-EINVAL, "label '%s' given twice", l->key);
        }
        return 0;
}

static int session_new(int vm_fd, const struct pmufilter_attach_args *a, struct pmufilter_session **ret) {
        _cleanup_(pmufilter_session_freep) struct pmufilter_session *s = NULL;
        const char *path;
        int r;

        if (a->client && !streq(a->client, "library") && !streq(a->client, "preload"))
                return fail(-EINVAL, "client '%s' is not library or preload", a->client);
        if (a->name && !proto_value_ok(a->name, false))
                return fail(-EINVAL, "VM name is empty or not UTF-8 text without control characters");
        if (a->uuid && !proto_uuid_ok(a->uuid))
                return fail(-EINVAL, "VM UUID '%s' is not 8-4-4-4-12 hexadecimal digits", a->uuid);

        s = calloc(1, sizeof(*s));
        if (!s)
                return fail(-ENOMEM, "out of memory");
        *s = (struct pmufilter_session) {
                .vm_fd = vm_fd, .sock = -1, .epoll_fd = -1, .timer_fd = -1,
                .vcpus = a->vcpus,
                .client = a->client && streq(a->client, "preload") ? PROTO_CLIENT_PRELOAD : PROTO_CLIENT_LIBRARY,
                .timeout_ms = a->timeout_ms > 0 ? a->timeout_ms : PMUFILTER_TIMEOUT_MS_DEFAULT,
                .pmu_errno = -1,
        };
        path = a->socket_path ?: secure_getenv("PMUFILTER_SOCKET");
        s->socket_path = strdup(path && *path ? path : PMUFILTER_SOCKET_DEFAULT);
        s->name = a->name ? strdup(a->name) : NULL;
        s->uuid = a->uuid ? strdup(a->uuid) : NULL;
        if (!s->socket_path || (a->name && !s->name) || (a->uuid && !s->uuid))
                return fail(-ENOMEM, "out of memory");
        r = copy_labels(s, a->labels);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

int pmufilter_attach(int vm_fd, const struct pmufilter_attach_args *args, struct pmufilter_session **ret) {
        _cleanup_(pmufilter_session_freep) struct pmufilter_session *s = NULL;
        struct pmufilter_attach_args a = {};
        int r;

        if (!ret)
                return fail(-EINVAL, "pmufilter_attach: no place for the session (ret is NULL)");
        if (vm_fd < 0)
                return fail(-EBADF, "pmufilter_attach: VM fd %d is not a file descriptor", vm_fd);
        if (args) {
                if (args->size < sizeof(args->size))
                        return fail(-EINVAL, "pmufilter_attach: args->size is %zu, expected sizeof(struct pmufilter_attach_args)",
                                    args->size);
                /* An older caller's smaller struct: the fields it lacks stay 0. */
                memcpy(&a, args, args->size < sizeof(a) ? args->size : sizeof(a));
        }

        r = session_new(vm_fd, &a, &s);
        if (r < 0)
                return r;
        r = session_attach(s);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

int pmufilter_session_process(struct pmufilter_session *s) {
        char buf[PROTO_MSG_MAX + 1], reason[PROTO_REASON_MAX];
        int applied = 0, last = 0;

        if (!s)
                return fail(-EINVAL, "pmufilter_session_process: session is NULL");
        if (s->sock < 0) {
                uint64_t expirations;

                /* No timer: none could be made, so no back-off either. */
                if (s->timer_fd >= 0 && read(s->timer_fd, &expirations, sizeof(expirations)) < 0)
                        return 0;       /* not due yet */
                return session_reattach(s);
        }

        for (;;) {
                _cleanup_(proto_error_done) struct proto_error e = {};
                enum proto_verb verb = _PROTO_VERB_MAX;
                ssize_t n;
                int r;

                n = wire_recv(s->sock, buf, sizeof(buf), MSG_DONTWAIT);
                if (n == -EAGAIN)
                        break;
                if (n <= 0 && n != -EBADMSG) {
                        /* The daemon went away (restart, crash): attach again at once. */
                        session_disconnect(s);
                        r = session_reattach(s);
                        if (r < 0)
                                return applied > 0 ? applied : r;
                        return applied + r;
                }
                r = n < 0 ? n : proto_parse_verb(buf, n, &verb, reason, sizeof(reason));
                if (r >= 0 && verb == PROTO_APPLY) {
                        r = handle_apply(s, s->sock, buf, n);
                        if (r >= 0) {
                                last = -s->apply_errno;
                                applied += s->apply_errno == 0;
                                continue;
                        }
                } else if (r >= 0 && verb == PROTO_ERROR) {
                        r = proto_parse_error(buf, n, &e, reason, sizeof(reason));
                        if (r >= 0)
                                r = fail(-e.error, "pmufilterd dropped the session of VM fd %d: %s", s->vm_fd,
                                         e.message && *e.message ? e.message : strerror(e.error));
                } else if (r >= 0)
                        r = fail(-EBADMSG, "unexpected %s from pmufilterd", proto_verb_to_string(verb));
                else
                        r = fail(r, "malformed message from pmufilterd: %s",
                                 r == -EBADMSG && n > 0 ? reason : "oversized or out of memory");

                /* Refused or confused: the daemon closes its end; try again later. */
                session_disconnect(s);
                schedule_retry(s);
                return r;
        }
        return last < 0 ? last : applied;
}

int pmufilter_session_fd(struct pmufilter_session *s) {
        int r;

        if (!s)
                return -EINVAL;
        r = session_watch(s);
        return r < 0 ? r : s->epoll_fd;
}

int pmufilter_session_set_vcpus(struct pmufilter_session *s, unsigned vcpus) {
        if (!s)
                return -EINVAL;
        s->vcpus = vcpus;
        return 0;
}

const char *pmufilter_session_profile(struct pmufilter_session *s) {
        return s ? s->profile : NULL;
}

const char *pmufilter_session_vm_id(struct pmufilter_session *s) {
        return s ? s->vm_id : NULL;
}

uint64_t pmufilter_session_serial(struct pmufilter_session *s) {
        return s ? s->serial : 0;
}

int pmufilter_session_apply_errno(struct pmufilter_session *s) {
        return s ? s->apply_errno : EINVAL;
}

int pmufilter_session_pmu_errno(struct pmufilter_session *s) {
        return s ? s->pmu_errno : -1;
}

int pmufilter_session_connected(struct pmufilter_session *s) {
        return s && s->sock >= 0;
}

