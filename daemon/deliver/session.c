/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * session.c — the VMM connections.  A session proves its VM on ATTACH: the
 * peer's credentials and pidfd come from the kernel (SO_PEERCRED,
 * SO_PEERPIDFD), the fd it sent must be a KVM VM (anon_inode:kvm-vm), and
 * kcmp must show it is the very file the peer holds as VMFD.  The daemon's
 * copy is closed at once: it could not use it (KVM answers EIO to anyone
 * but the creator) and must never keep a VM alive.  A hostile or broken
 * peer gets ERROR with a reason and loses its own session, nothing else.
 */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/syscall.h>

#include "compile.h"
#include "deadline.h"
#include "fdstore.h"
#include "iomux.h"
#include "list.h"
#include "log.h"
#include "procscan.h"
#include "registry.h"
#include "session.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#define SESSION_FDS_MAX 8       /* more than one is refused, but we must receive them to close them */
#define SESSION_BATCH 16        /* messages read from one session per wakeup */
/* Messages taken per recvmmsg(2).  SEQPACKET gives one message a read, and
 * a well-behaved VMM sends one at a time (ATTACH, APPLIED): a batch that
 * comes back short met EAGAIN inside the kernel, so one call tells both.
 * Small, since each may carry SESSION_FDS_MAX fds, held until handled. */
#define SESSION_RECV_BATCH 4

struct session_server {
        sd_event *event;
        const struct session_ops *ops;
        void *userdata;
        int fd;
        struct iomux_entry io;          /* the listening socket */
        struct session *sessions;
        unsigned n_sessions;
        /* Sessions with an APPLY unanswered, by deadline: one timer for all
         * of them, armed at the first (a timer per session cost each one
         * another event source, a quarter of a VM's memory). */
        struct session *waiting_head, *waiting_tail;
        sd_event_source *apply_timer;
        uint64_t apply_timer_due;       /* when it fires; 0: off (deadline.h) */
        /* Sessions that have not sent ATTACH yet, by deadline, one timer. */
        struct session *unattached_head, *unattached_tail;
        sd_event_source *attach_timer;
        uint64_t attach_timer_due;
        /* Out of fds: accept() stopped until a session closes or a back-off ends. */
        sd_event_source *accept_timer;
        unsigned accept_failures;       /* in this episode */
        uint64_t accept_paused_since;   /* CLOCK_MONOTONIC; 0: accepting */
        struct ratelimit refusals;      /* what peers can make us log */
        /* The session on_session_io() is reading from, until session_free()
         * says it is gone. */
        struct session *receiving;
        bool keep_stored;               /* freeing at exit: the fd store keeps the sessions */
        bool freeing;
        /* session_receive()'s buffers, for the one session read at a time;
         * allocated apart and not cleared (pages count once written). */
        char (*bufs)[PROTO_MSG_MAX + 1];
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * SESSION_FDS_MAX)];
        } controls[SESSION_RECV_BATCH];
        struct iovec iovs[SESSION_RECV_BATCH];
        struct mmsghdr msgs[SESSION_RECV_BATCH];
};

struct session {
        struct session_server *server;
        int fd;
        int pidfd;
        struct ucred cred;
        struct iomux_entry io;
        uint64_t apply_deadline;        /* CLOCK_MONOTONIC; 0: not waiting */
        uint64_t attach_deadline;       /* CLOCK_MONOTONIC; 0: attached, or restored */
        struct vm *vm;
        LIST_FIELDS(struct session, waiting);
        LIST_FIELDS(struct session, unattached);
        LIST_FIELDS(struct session, sessions);
};

/* An answered APPLY leaves the timer as it is (deadline.h). */
static void apply_timer_update(struct session_server *server) {
        if (server->waiting_head)
                deadline_arm(server->apply_timer, &server->apply_timer_due, server->waiting_head->apply_deadline);
}

/* The session's APPLY is answered (or the session ends): stop waiting. */
static void session_stop_waiting(struct session *s) {
        struct session_server *server = s->server;

        if (!server || s->apply_deadline == 0)
                return;
        LIST_REMOVE_TAIL(waiting, server->waiting_head, server->waiting_tail, s);
        s->apply_deadline = 0;
}

/* Wait timeout_ms for the answer to the APPLY just sent.  Deadlines mostly
 * come in order (one timeout for all): inserted from the tail. */
static void session_start_waiting(struct session *s, uint64_t timeout_ms) {
        struct session_server *server = s->server;
        struct session *after;

        session_stop_waiting(s);
        s->apply_deadline = now_usec(CLOCK_MONOTONIC) + timeout_ms * 1000u;
        for (after = server->waiting_tail; after && after->apply_deadline > s->apply_deadline;
             after = after->waiting_prev)
                ;
        LIST_INSERT_AFTER(waiting, server->waiting_head, server->waiting_tail, after, s);
        if (!after)
                apply_timer_update(server);
}

/* A session that attaches leaves the timer as it is (deadline.h). */
static void attach_timer_update(struct session_server *server) {
        if (server->unattached_head)
                deadline_arm(server->attach_timer, &server->attach_timer_due,
                             server->unattached_head->attach_deadline);
}

/* The session attached (or ends): it waits for no ATTACH any more. */
static void session_stop_attach_wait(struct session *s) {
        struct session_server *server = s->server;

        if (s->attach_deadline == 0)
                return;
        LIST_REMOVE_TAIL(unattached, server->unattached_head, server->unattached_tail, s);
        s->attach_deadline = 0;
}

/* One deadline for all: appended at the tail, in order. */
static void session_start_attach_wait(struct session *s) {
        struct session_server *server = s->server;

        s->attach_deadline = now_usec(CLOCK_MONOTONIC) + SESSION_ATTACH_TIMEOUT_USEC;
        LIST_APPEND(unattached, server->unattached_head, server->unattached_tail, s);
        if (server->unattached_head == s)
                attach_timer_update(server);
}

static void accept_resume(struct session_server *server);

void session_free(struct session *s) {
        struct session_server *server;

        if (!s)
                return;
        server = s->server;
        if (server->receiving == s)
                server->receiving = NULL;
        if (s->vm && !server->keep_stored)
                fdstore_forget_session(s->vm->id);
        if (s->vm && s->vm->session == s)
                s->vm->session = NULL;
        session_stop_waiting(s);
        session_stop_attach_wait(s);
        LIST_REMOVE(sessions, server->sessions, s);
        server->n_sessions--;
        iomux_remove(&s->io);
        safe_close(s->pidfd);
        safe_close(s->fd);
        free(s);
        /* Two fds are free now: try accept() again. */
        if (server->accept_paused_since && !server->freeing)
                accept_resume(server);
}

int session_fd(const struct session *s) {
        assert(s);
        return s->fd;
}

void session_attach_vm(struct session *s, struct vm *vm) {
        assert(s);
        assert(vm);
        session_stop_attach_wait(s);
        vm->session = s;
        s->vm = vm;
}

unsigned session_server_count(const struct session_server *s) {
        return s ? s->n_sessions : 0;
}

static int session_send(struct session *s, const char *buf, size_t len) {
        if (send(s->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                return -errno;
        return 0;
}

/* Refuse: ERROR with a reason, then the session ends. Nothing else changes. */
static void session_refuse(struct session *s, int error, const char *fmt, ...) _printf_(3, 4);
static void session_refuse(struct session *s, int error, const char *fmt, ...) {
        char reason[PROTO_REASON_MAX * 2], msg[PROTO_REASON_MAX * 2], buf[PROTO_REASON_MAX * 3];
        struct proto_error e = { .error = error, .message = msg };
        struct session_server *server = s->server;
        struct vm *vm = s->vm && s->vm->session == s ? s->vm : NULL;
        unsigned suppressed;
        va_list ap;
        int n;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        proto_sanitize_message(msg, sizeof(msg), reason);
        n = proto_format_error(buf, sizeof(buf), &e);
        if (n > 0)
                (void) session_send(s, buf, (size_t) n);
        if (vm)         /* the attach the refusal ends, before it (and before ops->lost) */
                audit_held_say(&vm->attach_said);
        /* A peer can make us refuse it as often as it likes. */
        if (ratelimit_below(&server->refusals, &suppressed))
                audit_record(LOG_WARNING, MID_REFUSED, s->vm ? s->vm->id : NULL, NULL, s->cred.pid,
                             "Refused VMM session of pid %d (uid %u): %s%s", (int) s->cred.pid,
                             (unsigned) s->cred.uid, reason,
                             suppressed ? " (and refusals not logged meanwhile, see below)" : "");
        if (suppressed)
                log_warning("%u more VMM sessions were refused in the last %llu s and not logged one by one",
                            suppressed, (unsigned long long) (server->refusals.interval_usec / 1000000));
        session_free(s);
        if (vm)
                server->ops->lost(vm, error, reason, server->userdata);
}

int session_send_apply(struct session *s, const struct vm *vm, uint64_t serial, uint64_t timeout_ms) {
        const struct compiled_filter *f = vm->filter;
        struct proto_apply a = {
                .vm = vm->id,
                .serial = serial,
                .profile = vm->profile,
                .pmu_off = f->pmu_off,
                .action = f->action,
                .flags = f->flags,
                .fixed_counter_bitmap = f->fixed_counter_bitmap,
                .events = f->events,
                .n_events = f->nevents,
        };
        char buf[PROTO_MSG_MAX];
        int n, r;

        assert(s);
        n = proto_format_apply(buf, sizeof(buf), &a);
        r = n < 0 ? n : session_send(s, buf, (size_t) n);
        if (r < 0) {
                /* The VMM stopped reading (EAGAIN: its queue is full) or is gone.
                 * It must not be recorded with a filter it never got: end the
                 * session; its client re-attaches and gets the current one. */
                session_refuse(s, -r, "cannot send APPLY for SERIAL=%" PRIu64 ": %s", serial,
                               r == -EAGAIN ? "the VMM does not read its socket" : strerror(-r));
                return r;
        }
        /* A VMM that does not answer is a failed VM, not a stuck daemon. */
        session_start_waiting(s, timeout_ms);
        return 0;
}

static int on_apply_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        struct session_server *server = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        deadline_fired(&server->apply_timer_due);
        while (server->waiting_head && server->waiting_head->apply_deadline <= now) {
                struct session *s = server->waiting_head;

                session_stop_waiting(s);
                if (s->vm && s->vm->serial_pending)
                        session_refuse(s, ETIMEDOUT, "no APPLIED for SERIAL=%" PRIu64 " in time",
                                       s->vm->serial_pending);
        }
        apply_timer_update(server);
        return 0;
}

static int on_attach_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        struct session_server *server = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        deadline_fired(&server->attach_timer_due);
        while (server->unattached_head && server->unattached_head->attach_deadline <= now)
                session_refuse(server->unattached_head, ETIMEDOUT, "no ATTACH within %llu s of connecting",
                               (unsigned long long) (SESSION_ATTACH_TIMEOUT_USEC / 1000000));
        attach_timer_update(server);
        return 0;
}

static void handle_attach(struct session *s, const char *buf, size_t len, int *fds, size_t n_fds) {
        _cleanup_(proto_attach_done) struct proto_attach a = {};
        char reason[PROTO_REASON_MAX], link[64] = "", path[64];
        struct session_server *server = s->server;
        ssize_t l;
        int r;

        if (proto_parse_attach(buf, len, &a, reason, sizeof(reason)) < 0)
                return session_refuse(s, EBADMSG, "malformed ATTACH: %s", reason);
        if (n_fds != 1)
                return session_refuse(s, EBADMSG, "ATTACH must carry exactly one fd (the VM fd), got %zu", n_fds);

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
        l = readlink(path, link, sizeof(link) - 1);
        if (l < 0 || (link[l] = 0, !streq(link, "anon_inode:kvm-vm")))
                return session_refuse(s, EBADF, "the fd sent is not a KVM VM fd (it is '%s')", l < 0 ? "?" : link);
        r = same_file(getpid_cached(), fds[0], s->cred.pid, a.vmfd);
        /* Close our copy at once: we cannot use it, and must not keep the VM alive. */
        fds[0] = safe_close(fds[0]);
        if (r <= 0)
                return session_refuse(s, EPERM, "VMFD=%d is not the VM fd sent with ATTACH%s%s", a.vmfd,
                                      r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");

        reason[0] = 0;
        r = server->ops->attach(s, &s->cred, &a, reason, sizeof(reason), server->userdata);
        if (r < 0)
                session_refuse(s, -r, "%s", reason[0] ? reason : strerror(-r));
}

static void session_closed(struct session *s) {
        struct session_server *server = s->server;
        struct vm *vm = s->vm;
        _cleanup_close_ int pidfd = -1;

        /* The pidfd speaks for the VM's process only if the peer is that
         * process (not a CLONE_FILES child that attached it). */
        if (vm && s->cred.pid == vm->pid)
                pidfd = TAKE_FD(s->pidfd);
        session_free(s);
        if (vm)
                server->ops->closed(vm, pidfd, server->userdata);
}

static void handle_message(struct session *s, const char *buf, size_t n, int *fds, size_t n_fds) {
        char reason[PROTO_REASON_MAX];
        enum proto_verb verb;

        if (proto_parse_verb(buf, n, &verb, reason, sizeof(reason)) < 0)
                session_refuse(s, EBADMSG, "malformed message: %s", reason);
        else if (!s->vm && verb == PROTO_ATTACH)
                handle_attach(s, buf, n, fds, n_fds);
        else if (verb == PROTO_DETACH) {
                if (proto_parse_detach(buf, n, reason, sizeof(reason)) < 0)
                        session_refuse(s, EBADMSG, "malformed DETACH: %s", reason);
                else
                        session_closed(s);
        } else if (n_fds > 0)
                session_refuse(s, EBADMSG, "%s must not carry fds", proto_verb_to_string(verb));
        else if (s->vm && verb == PROTO_APPLIED) {
                struct proto_applied a;

                if (proto_parse_applied(buf, n, &a, reason, sizeof(reason)) < 0)
                        session_refuse(s, EBADMSG, "malformed APPLIED: %s", reason);
                else {
                        if (a.serial == s->vm->serial_pending)
                                session_stop_waiting(s);
                        s->server->ops->applied(s, s->vm, &a, s->server->userdata);
                }
        } else
                session_refuse(s, EPROTO, "unexpected %s %s", proto_verb_to_string(verb),
                               s->vm ? "after ATTACH" : "before ATTACH");
}

/* The fds that came with a message, into fds (at most SESSION_FDS_MAX). */
static size_t message_fds(const struct msghdr *mh, int *fds) {
        size_t n_fds = 0;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR((struct msghdr *) mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        int *p = (int *) CMSG_DATA(c);

                        for (size_t i = 0; i < k && n_fds < SESSION_FDS_MAX; i++)
                                fds[n_fds++] = p[i];
                }
        return n_fds;
}

/* One received message, refused or handled.  The session may be freed on
 * the way (closed, refused). */
static void session_handle(struct session *s, const struct mmsghdr *m, int *fds, size_t n_fds) {
        const struct msghdr *mh = &m->msg_hdr;
        size_t n = m->msg_len;

        if (n == 0 && n_fds == 0)
                session_closed(s);
        else if (mh->msg_flags & MSG_TRUNC)
                session_refuse(s, EMSGSIZE, "message larger than %d bytes", PROTO_MSG_MAX);
        else if ((mh->msg_flags & MSG_CTRUNC) && n_fds >= SESSION_FDS_MAX)
                session_refuse(s, EBADMSG, "too many fds (at most one)");
        else if (mh->msg_flags & MSG_CTRUNC)
                /* Room was left, so the kernel could not install the fd here:
                 * the daemon is out of descriptors, not the VMM at fault. */
                session_refuse(s, EMFILE, "pmufilterd could not receive the fd: it is out of file descriptors "
                               "(RLIMIT_NOFILE; %u sessions open)", s->server->n_sessions);
        else
                handle_message(s, mh->msg_iov->iov_base, n, fds, n_fds);
}

/* Receive up to SESSION_RECV_BATCH messages in one call and handle them in
 * order: how many came (fewer than asked: the socket was empty), or
 * -EAGAIN when none was queued.  The session may be freed on the way
 * (closed, refused); the fds of the messages after that are closed
 * unread.  At EOF every slot of the batch reads as EOF (a 0-byte read
 * counts as a message), and the first ends the session. */
static int session_receive(struct session *s) {
        struct session_server *server = s->server;
        int n;

        for (size_t i = 0; i < SESSION_RECV_BATCH; i++) {
                server->iovs[i] = (struct iovec) { .iov_base = server->bufs[i], .iov_len = sizeof(server->bufs[i]) };
                server->msgs[i] = (struct mmsghdr) { .msg_hdr = {
                        .msg_iov = &server->iovs[i],
                        .msg_iovlen = 1,
                        .msg_control = &server->controls[i],
                        .msg_controllen = sizeof(server->controls[i]),
                } };
        }
        do
                n = recvmmsg(s->fd, server->msgs, SESSION_RECV_BATCH, MSG_DONTWAIT | MSG_CMSG_CLOEXEC, NULL);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                if (errno == EAGAIN)
                        return -EAGAIN;
                session_closed(s);
                return 0;
        }
        for (int i = 0; i < n; i++) {
                int fds[SESSION_FDS_MAX];
                size_t n_fds = message_fds(&server->msgs[i].msg_hdr, fds);

                /* Not if an earlier message of the batch ended the session. */
                if (server->receiving == s)
                        session_handle(s, &server->msgs[i], fds, n_fds);
                for (size_t j = 0; j < n_fds; j++)
                        safe_close(fds[j]);
        }
        return n;
}

/* The socket is edge-triggered (session_new): read it until it is empty.
 * Level-triggered, every poll re-reported every session that had an answer
 * queued, while sd-event dispatched one source per iteration: a change
 * pushed to n VMs cost O(n²) in epoll_wait (docs/benchmarks.md).  A batch
 * that comes back short says the socket is empty, so a wakeup with one
 * message costs one call (docs/decisions.md, "No read only to hear
 * EAGAIN").  A peer that keeps sending gets SESSION_BATCH messages a
 * round, then the socket is re-armed (iomux_rearm(): reported again if
 * still readable) and the others get theirs. */
static void on_session_io(struct iomux_entry *e, uint32_t revents) {
        struct session *s = e->userdata;
        struct session_server *server = s->server;
        unsigned n = 0;

        server->receiving = s;
        while (server->receiving == s) {
                int k = session_receive(s);

                if (k < SESSION_RECV_BATCH)
                        break;          /* empty (or the session ended) */
                n += (unsigned) k;
                if (n >= SESSION_BATCH) {
                        if (server->receiving == s)
                                (void) iomux_rearm(&s->io);
                        break;
                }
        }
        server->receiving = NULL;
}

/* A session on a connected socket: fresh from accept(), or handed back by
 * systemd's fd store after a restart. */
static int session_new(struct session_server *server, int fd, struct session **ret) {
        _cleanup_close_ int cfd = fd;
        struct session *s;
        socklen_t sl;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->pidfd = -1;
        s->fd = TAKE_FD(cfd);
        s->server = server;
        LIST_PREPEND(sessions, server->sessions, s);
        server->n_sessions++;

        sl = sizeof(s->cred);
        if (getsockopt(s->fd, SOL_SOCKET, SO_PEERCRED, &s->cred, &sl) < 0) {
                r = -errno;
                session_free(s);
                return r;
        }
        /* The peer as a pidfd (from the kernel, race-free with SO_PEERPIDFD):
         * a handle on this very process for signals, unlike a pid number. */
        sl = sizeof(s->pidfd);
        if (getsockopt(s->fd, SOL_SOCKET, SO_PEERPIDFD, &s->pidfd, &sl) < 0)
                s->pidfd = (int) syscall(SYS_pidfd_open, s->cred.pid, 0);

        s->io = (struct iomux_entry) {
                .fd = s->fd,
                .events = EPOLLIN | EPOLLET,
                .rank = IOMUX_RANK_SESSION,
                .handler = on_session_io,
                .userdata = s,
        };
        r = iomux_add(server->event, &s->io);
        if (r < 0) {
                session_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

#define ACCEPT_BACKOFF_USEC (250 * 1000ULL)

static void accept_resume(struct session_server *server) {
        (void) sd_event_source_set_enabled(server->accept_timer, SD_EVENT_OFF);
        (void) iomux_set_enabled(&server->io, true);
}

static int on_accept_backoff(sd_event_source *es, uint64_t usec, void *userdata) {
        accept_resume(userdata);
        return 0;
}

/* Out of fds: the listening socket stays readable, and trying again at
 * once would spin a core and flood the log.  Stop polling it until a
 * session closes or the back-off ends; say so once per episode. */
static void accept_pause(struct session_server *server, int error) {
        (void) iomux_set_enabled(&server->io, false);
        if (server->accept_failures++ == 0) {
                server->accept_paused_since = now_usec(CLOCK_MONOTONIC);
                log_warning_errno(error, "Cannot accept VMM connections (%m; %u sessions open): "
                                  "waiting for a session to close", server->n_sessions);
        }
        (void) sd_event_source_set_time_relative(server->accept_timer, ACCEPT_BACKOFF_USEC);
        (void) sd_event_source_set_enabled(server->accept_timer, SD_EVENT_ONESHOT);
}

static void accept_episode_end(struct session_server *server) {
        if (server->accept_failures == 0)
                return;
        log_notice("Accepting VMM connections again, after %u attempts failed for want of file descriptors over %llu ms",
                   server->accept_failures,
                   (unsigned long long) ((now_usec(CLOCK_MONOTONIC) - server->accept_paused_since) / 1000));
        server->accept_failures = 0;
        server->accept_paused_since = 0;
}

/* Connections of uid that have not attached yet, s aside. */
static unsigned unattached_of(struct session_server *server, uid_t uid, const struct session *s) {
        unsigned n = 0;

        LIST_FOREACH(unattached, i, server->unattached_head)
                if (i != s && i->cred.uid == uid)
                        n++;
        return n;
}

static void on_accept(struct iomux_entry *e, uint32_t revents) {
        struct session_server *server = e->userdata;
        int fd = e->fd;
        struct session *s;
        unsigned limit;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno == EMFILE || errno == ENFILE)
                        accept_pause(server, errno);
                else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "Failed to accept a VMM connection: %m");
                return;
        }
        accept_episode_end(server);
        r = session_new(server, cfd, &s);
        if (r < 0) {
                if (r == -EMFILE || r == -ENFILE)
                        accept_pause(server, -r);
                else
                        log_warning_errno(r, "Failed to set up a VMM connection: %m");
                return;
        }
        /* Idle connections hold fds the VMMs that attach need. */
        limit = server->ops->unattached_limit(server->userdata);
        if (unattached_of(server, s->cred.uid, s) >= limit) {
                session_refuse(s, EUSERS, "uid %u has %u connections that have not sent ATTACH "
                               "(settings.unattached_sessions_per_uid)", (unsigned) s->cred.uid, limit);
                return;
        }
        session_start_attach_wait(s);
        /* A VMM sends its ATTACH right behind connect(), so it is mostly
         * queued by the time we accept: read it in this round, not the
         * next (docs/decisions.md, "No read only to hear EAGAIN").  If it is
         * not there yet, this costs one recvmmsg() that finds nothing, and
         * the edge-triggered entry added in session_new() reports it. */
        on_session_io(&s->io, EPOLLIN);
}

int session_restore(struct session_server *server, int fd, struct vm *vm) {
        struct session *s;
        int r;

        assert(server);
        assert(vm);
        (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        r = session_new(server, fd, &s);
        if (r < 0)
                return r;
        if (s->cred.pid != vm->pid) {
                session_free(s);
                return -ESRCH;
        }
        session_attach_vm(s, vm);
        return 0;
}

int session_server_new(sd_event *e, int fd, const struct session_ops *ops, void *userdata,
                       struct session_server **ret) {
        struct session_server *s;
        int r;

        assert(e);
        assert(ops);
        assert(ret);
        s = calloc(1, sizeof(*s));
        if (!s) {
                safe_close(fd);
                return -ENOMEM;
        }
        *s = (struct session_server) {
                .event = e,
                .ops = ops,
                .userdata = userdata,
                .fd = fd,
                .refusals = RATELIMIT_INIT(10 * 1000 * 1000, 20),
                .bufs = malloc(sizeof(*s->bufs) * SESSION_RECV_BATCH),
        };
        if (!s->bufs) {
                session_server_free(s, false);
                return -ENOMEM;
        }
        s->io = (struct iomux_entry) {
                .fd = fd,
                .events = EPOLLIN,
                .rank = IOMUX_RANK_LISTEN,
                .handler = on_accept,
                .userdata = s,
        };
        r = iomux_add(e, &s->io);
        if (r < 0) {
                session_server_free(s, false);
                return log_error_errno(r, "Failed to watch the VMM socket: %m");
        }
        r = sd_event_add_time(e, &s->apply_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_apply_timeout, s);
        if (r < 0) {
                session_server_free(s, false);
                return log_error_errno(r, "Failed to set up the APPLY timeout: %m");
        }
        (void) sd_event_source_set_description(s->apply_timer, "apply-timeout");
        (void) sd_event_source_set_enabled(s->apply_timer, SD_EVENT_OFF);
        r = sd_event_add_time(e, &s->attach_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_attach_timeout, s);
        if (r >= 0)
                r = sd_event_add_time(e, &s->accept_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_accept_backoff, s);
        if (r < 0) {
                session_server_free(s, false);
                return log_error_errno(r, "Failed to set up the VMM socket's timers: %m");
        }
        (void) sd_event_source_set_description(s->attach_timer, "session-attach-timeout");
        (void) sd_event_source_set_enabled(s->attach_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(s->accept_timer, "accept-backoff");
        (void) sd_event_source_set_enabled(s->accept_timer, SD_EVENT_OFF);
        *ret = s;
        return 0;
}

struct session_server *session_server_free(struct session_server *s, bool keep_stored) {
        if (!s)
                return NULL;
        s->keep_stored = keep_stored;
        s->freeing = true;
        while (s->sessions)
                session_free(s->sessions);
        sd_event_source_disable_unref(s->attach_timer);
        sd_event_source_disable_unref(s->accept_timer);
        sd_event_source_disable_unref(s->apply_timer);
        iomux_remove(&s->io);
        safe_close(s->fd);
        free(s->bufs);
        free(s);
        return NULL;
}
