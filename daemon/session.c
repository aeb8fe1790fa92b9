/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * session.c — the VMM socket server.  A session proves its VM on ATTACH:
 * the peer's credentials and pidfd come from the kernel (SO_PEERCRED,
 * SO_PEERPIDFD), the fd it sent must be a KVM VM (anon_inode:kvm-vm), and
 * kcmp must show it is the very file the peer holds as VMFD.  The daemon's
 * copy is closed at once: it could not use it (KVM answers EIO to anyone
 * but the creator) and must never keep a VM alive.  A hostile or broken
 * peer gets ERROR with a reason and loses its own session, nothing else.
 */
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "bus.h"
#include "changes.h"
#include "compile.h"
#include "log.h"
#include "manager.h"
#include "persist.h"
#include "procscan.h"
#include "proto.h"
#include "session.h"
#include "watch.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#define SESSION_FDS_MAX 8       /* more than one is refused, but we must receive them to close them */
#define SESSION_BATCH 16        /* messages read from one session per wakeup */

struct session_server {
        struct manager *manager;
        int fd;
        sd_event_source *io;
        struct session *sessions;
        /* Sessions with an APPLY unanswered, by deadline: one timer for all
         * of them, armed at the first (a timer per session cost each one
         * another event source, a quarter of a VM's memory). */
        struct session *waiting_head, *waiting_tail;
        sd_event_source *apply_timer;
};

struct session {
        struct session_server *server;
        int fd;
        int pidfd;
        struct ucred cred;
        sd_event_source *io;
        uint64_t apply_deadline;        /* CLOCK_MONOTONIC; 0: not waiting */
        struct session *waiting_prev, *waiting_next;
        struct vm *vm;
        struct session *prev, *next;
};

static void apply_timer_update(struct session_server *server) {
        if (!server->apply_timer)
                return;
        if (!server->waiting_head) {
                (void) sd_event_source_set_enabled(server->apply_timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(server->apply_timer, server->waiting_head->apply_deadline);
        (void) sd_event_source_set_enabled(server->apply_timer, SD_EVENT_ONESHOT);
}

/* The session's APPLY is answered (or the session ends): stop waiting. */
static void session_stop_waiting(struct session *s) {
        struct session_server *server = s->server;
        bool was_head;

        if (!server || s->apply_deadline == 0)
                return;
        was_head = server->waiting_head == s;
        if (s->waiting_prev)
                s->waiting_prev->waiting_next = s->waiting_next;
        else
                server->waiting_head = s->waiting_next;
        if (s->waiting_next)
                s->waiting_next->waiting_prev = s->waiting_prev;
        else
                server->waiting_tail = s->waiting_prev;
        s->waiting_prev = s->waiting_next = NULL;
        s->apply_deadline = 0;
        if (was_head)
                apply_timer_update(server);
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
        s->waiting_prev = after;
        s->waiting_next = after ? after->waiting_next : server->waiting_head;
        if (s->waiting_next)
                s->waiting_next->waiting_prev = s;
        else
                server->waiting_tail = s;
        if (after)
                after->waiting_next = s;
        else {
                server->waiting_head = s;
                apply_timer_update(server);
        }
}

/* The session on_session_io() is reading from, until session_free() says it is gone. */
static struct session *receiving;

static void session_unlink(struct session *s) {
        if (!s->server)
                return;
        if (s->prev)
                s->prev->next = s->next;
        else
                s->server->sessions = s->next;
        if (s->next)
                s->next->prev = s->prev;
        s->server->manager->n_sessions--;
        s->server = NULL;
}

void session_free(struct session *s) {
        if (!s)
                return;
        if (receiving == s)
                receiving = NULL;
        if (s->vm && s->server && !s->server->manager->shutting_down)
                persist_forget_session(s->vm);
        if (s->vm && s->vm->session == s)
                s->vm->session = NULL;
        session_stop_waiting(s);
        session_unlink(s);
        sd_event_source_disable_unref(s->io);
        safe_close(s->pidfd);
        safe_close(s->fd);
        free(s);
}

int session_fd(const struct session *s) {
        return s->fd;
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
        va_list ap;
        int n;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        proto_sanitize_message(msg, sizeof(msg), reason);
        n = proto_format_error(buf, sizeof(buf), &e);
        if (n > 0)
                (void) session_send(s, buf, (size_t) n);
        audit_record(LOG_WARNING, MID_REFUSED, s->vm ? s->vm->id : NULL, NULL, s->cred.pid,
                     "Refused VMM session of pid %d (uid %u): %s", (int) s->cred.pid,
                     (unsigned) s->cred.uid, reason);
        if (s->vm && s->vm->session == s) {
                struct vm *vm = s->vm;

                vm_set_state(vm, VM_FAILED);
                vm->last_errno = error;
                (void) free_and_strdup(&vm->last_error, reason);
                session_free(s);
                persist_vm(vm->manager, vm);
                bus_vm_session_lost(vm->manager, vm, reason);
                return;
        }
        session_free(s);
}

int session_send_apply(struct session *s, const struct vm *vm, uint64_t serial) {
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
        uint64_t timeout_ms;
        int n, r;

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
        timeout_ms = s->server->manager->set ? s->server->manager->set->policy->settings.attach_timeout_ms
                                              : POLICY_DEFAULT_ATTACH_TIMEOUT_MS;
        session_start_waiting(s, timeout_ms);
        return 0;
}

static int on_apply_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        struct session_server *server = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

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

/* Which registered VM is this (pid, fd)?  The uevent named the fd the VM
 * was created on; the VMM may hold it under another number (dup). */
static struct vm *find_vm(struct manager *m, pid_t pid, int fd) {
        struct vm *vm = registry_get(&m->registry, pid, fd);

        if (vm)
                return vm;
        REGISTRY_FOREACH(i, &m->registry)
                if (i->pid == pid && same_file(pid, fd, pid, i->fd) > 0)
                        return i;
        return NULL;
}

static int labels_to_strv(const struct proto_attach *a, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;

        for (size_t i = 0; i < a->n_labels; i++) {
                char *kv;

                if (asprintf(&kv, "%s=%s", a->labels[i].key, a->labels[i].value) < 0)
                        return -ENOMEM;
                if (strv_push(&l, kv) < 0) {
                        free(kv);
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static void handle_attach(struct session *s, const char *buf, size_t len, int *fds, size_t n_fds) {
        struct manager *m = s->server->manager;
        struct proto_attach a = {};
        char reason[PROTO_REASON_MAX], link[64] = "", path[64];
        struct vm *vm;
        uid_t uid;
        ssize_t l;
        int r;

        if (proto_parse_attach(buf, len, &a, reason, sizeof(reason)) < 0)
                return session_refuse(s, EBADMSG, "malformed ATTACH: %s", reason);
        if (n_fds != 1) {
                proto_attach_done(&a);
                return session_refuse(s, EBADMSG, "ATTACH must carry exactly one fd (the VM fd), got %zu", n_fds);
        }

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
        l = readlink(path, link, sizeof(link) - 1);
        if (l < 0 || (link[l] = 0, !streq(link, "anon_inode:kvm-vm"))) {
                proto_attach_done(&a);
                return session_refuse(s, EBADF, "the fd sent is not a KVM VM fd (it is '%s')", l < 0 ? "?" : link);
        }
        r = same_file(getpid(), fds[0], s->cred.pid, a.vmfd);
        /* Close our copy at once: we cannot use it, and must not keep the VM alive. */
        fds[0] = safe_close(fds[0]);
        if (r <= 0) {
                int vmfd = a.vmfd;
                proto_attach_done(&a);
                return session_refuse(s, EPERM, "VMFD=%d is not the VM fd sent with ATTACH%s%s", vmfd,
                                      r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
        }

        vm = find_vm(m, s->cred.pid, a.vmfd);
        if (!vm) {
                r = manager_vm_detected(m, s->cred.pid, a.vmfd, &vm);
                if (r < 0) {
                        proto_attach_done(&a);
                        return session_refuse(s, -r, "cannot register VM %d-%d: %s", (int) s->cred.pid,
                                              a.vmfd, strerror(-r));
                }
        }
        if (vm->session && vm->session != s) {
                proto_attach_done(&a);
                return session_refuse(s, EBUSY, "VM %s already has a session", vm->id);
        }

        registry_set_name(&m->registry, vm, TAKE_PTR(a.name), TAKE_PTR(a.uuid));
        strv_free(vm->labels);
        vm->labels = NULL;
        if (labels_to_strv(&a, &vm->labels) < 0) {
                proto_attach_done(&a);
                return session_refuse(s, ENOMEM, "out of memory");
        }
        vm->client = proto_client_to_string(a.client);
        vm->vcpus = a.vcpus;
        proto_attach_done(&a);
        if (changes_update_override(m, vm) < 0)
                return session_refuse(s, ENOMEM, "out of memory");

        sd_event_source_disable_unref(vm->timer);
        vm->timer = NULL;
        vm->session = s;
        s->vm = vm;
        vm_set_state(vm, VM_ATTACHED);

        r = manager_decide(m, vm);
        if (r < 0)
                return session_refuse(s, -r, "cannot decide a filter for VM %s: %s", vm->id, strerror(-r));
        /* The APPLY first: the VMM's ioctl then runs while we write the
         * record of the attach.  A failed push ends the session (and says
         * why); the VM and the record of its attach stay. */
        uid = s->cred.uid;
        r = manager_push(m, vm);
        audit_record(LOG_INFO, MID_ATTACH, vm->id, vm->profile, vm->pid,
                     "VM %s attached by %s (pid %d, uid %u, %s%s%s): profile '%s' (%s)", vm->id,
                     strna(vm->facts.comm), (int) vm->pid, (unsigned) uid, strna(vm->client),
                     vm->name ? ", name " : "", strempty(vm->name), vm->profile, vm->profile_source);
        if (r < 0)
                return;         /* the session ended, with the reason */
        /* Survive our own restart: systemd keeps the connection for us,
         * handed over with the record that names it (persist.c). */
        vm->session_unstored = true;
        persist_vm(m, vm);
}

static void session_closed(struct session *s) {
        struct manager *m = s->server->manager;
        struct vm *vm = s->vm;

        session_free(s);
        if (!vm)
                return;
        if (proc_starttime(vm->pid) != vm->starttime || !proc_fd_is_kvm_vm(vm->pid, vm->fd))
                return manager_vm_gone(m, vm, "its VMM closed it");
        /* A VM whose filter the kernel refused stays failed: nothing of ours is in force. */
        if (vm->state != VM_FAILED)
                vm_set_state(vm, VM_DETACHED);
        vm->serial_pending = 0;
        persist_vm(m, vm);
        log_info("VM %s: session closed; the last filter stays in the kernel", vm->id);
        bus_vm_session_lost(m, vm, "the VMM closed its session");
        manager_notify_status(m);
}

/* Receive and handle one message: 0, or -EAGAIN when none was queued.  The
 * session may be freed on the way (closed, refused). */
static int session_receive(struct session *s) {
        char buf[PROTO_MSG_MAX + 1];
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * SESSION_FDS_MAX)];
        } control = {};
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        int fds[SESSION_FDS_MAX];
        size_t n_fds = 0;
        char reason[PROTO_REASON_MAX];
        enum proto_verb verb;
        ssize_t n;

        n = recvmsg(s->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
                if (errno == EAGAIN)
                        return -EAGAIN;
                if (errno != EINTR)
                        session_closed(s);
                return 0;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        int *p = (int *) CMSG_DATA(c);

                        for (size_t i = 0; i < k && n_fds < SESSION_FDS_MAX; i++)
                                fds[n_fds++] = p[i];
                }

        if (n == 0 && n_fds == 0) {
                session_closed(s);
                return 0;
        }
        if (mh.msg_flags & MSG_TRUNC)
                session_refuse(s, EMSGSIZE, "message larger than %d bytes", PROTO_MSG_MAX);
        else if ((mh.msg_flags & MSG_CTRUNC) && n_fds >= SESSION_FDS_MAX)
                session_refuse(s, EBADMSG, "too many fds (at most one)");
        else if (mh.msg_flags & MSG_CTRUNC)
                /* Room was left, so the kernel could not install the fd here:
                 * the daemon is out of descriptors, not the VMM at fault. */
                session_refuse(s, EMFILE, "pmufilterd could not receive the fd: it is out of file descriptors "
                               "(RLIMIT_NOFILE; %u sessions open)", s->server->manager->n_sessions);
        else if (proto_parse_verb(buf, (size_t) n, &verb, reason, sizeof(reason)) < 0)
                session_refuse(s, EBADMSG, "malformed message: %s", reason);
        else if (!s->vm && verb == PROTO_ATTACH)
                handle_attach(s, buf, (size_t) n, fds, n_fds);
        else if (verb == PROTO_DETACH)
                session_closed(s);
        else if (n_fds > 0)
                session_refuse(s, EBADMSG, "%s must not carry fds", proto_verb_to_string(verb));
        else if (s->vm && verb == PROTO_APPLIED) {
                struct proto_applied a;

                if (proto_parse_applied(buf, (size_t) n, &a, reason, sizeof(reason)) < 0)
                        session_refuse(s, EBADMSG, "malformed APPLIED: %s", reason);
                else {
                        if (a.serial == s->vm->serial_pending)
                                session_stop_waiting(s);
                        manager_applied(s->server->manager, s->vm, a.serial, a.error,
                                        a.has_pmu_error ? a.pmu_error : 0);
                }
        } else
                session_refuse(s, EPROTO, "unexpected %s %s", proto_verb_to_string(verb),
                               s->vm ? "after ATTACH" : "before ATTACH");

        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);
        return 0;
}

/* The socket is edge-triggered (session_new): read it until it is empty.
 * Level-triggered, every loop iteration re-polled every session that had an
 * answer queued, while sd-event dispatches one source per iteration: a
 * change pushed to n VMs cost O(n²) in epoll_wait (90% of the daemon's time
 * in a default-profile change over 9,900 VMs).  A peer that keeps sending
 * gets SESSION_BATCH messages a turn, then the socket is re-armed (an
 * edge-triggered source re-polls on that) and the others get theirs. */
static int on_session_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        struct session *s = userdata;
        unsigned n = 0;

        receiving = s;
        while (receiving == s && session_receive(s) >= 0)
                if (++n == SESSION_BATCH) {
                        if (receiving == s)
                                (void) sd_event_source_set_io_events(s->io, EPOLLIN | EPOLLET);
                        break;
                }
        receiving = NULL;
        return 0;
}

/* A session on a connected socket: fresh from accept(), or handed back by
 * systemd's fd store after a restart (then already attached to vm). */
static int session_new(struct session_server *server, int fd, struct session **ret) {
        struct manager *m = server->manager;
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
        s->next = server->sessions;
        if (s->next)
                s->next->prev = s;
        server->sessions = s;
        m->n_sessions++;

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

        r = sd_event_add_io(m->event, &s->io, s->fd, EPOLLIN | EPOLLET, on_session_io, s);
        if (r < 0) {
                session_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static int on_accept(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        struct session_server *server = userdata;
        struct session *s;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "Failed to accept a VMM connection: %m");
                return 0;
        }
        r = session_new(server, cfd, &s);
        if (r < 0)
                log_warning_errno(r, "Failed to set up a VMM connection: %m");
        return 0;
}

int session_restore(struct manager *m, int fd, struct vm *vm) {
        struct session *s;
        int r;

        (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        r = session_new(m->server, fd, &s);
        if (r < 0)
                return r;
        if (s->cred.pid != vm->pid) {
                session_free(s);
                return -ESRCH;
        }
        s->vm = vm;
        vm->session = s;
        return 0;
}

/* Bind under a temporary name and rename into place once listening, with
 * its owner and mode set: a VMM never finds the path and then gets
 * ECONNREFUSED, nor a socket it may not use yet. */
static int bind_socket(const char *path) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *dir = NULL;
        struct group *g;
        char *slash;

        if (strlen(path) + 16 >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Socket path %s is too long: %m", path);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%d.tmp", path, (int) getpid());
        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = 0;
                if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                        return log_error_errno(errno, "Failed to create %s: %m", dir);
        }

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create the VMM socket: %m");
        (void) unlink(sa.sun_path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return log_error_errno(errno, "Failed to bind the VMM socket %s: %m", sa.sun_path);
        /* VMMs run as root or in group kvm (DESIGN §5: mode 0660, group kvm). */
        g = getgrnam("kvm");
        if (g && chown(sa.sun_path, 0, g->gr_gid) < 0)
                log_warning_errno(errno, "Failed to give %s to group kvm: %m", sa.sun_path);
        if (chmod(sa.sun_path, 0660) < 0 || listen(fd, SOMAXCONN) < 0 || rename(sa.sun_path, path) < 0) {
                int r = log_error_errno(errno, "Failed to set up the VMM socket %s: %m", path);

                (void) unlink(sa.sun_path);
                return r;
        }
        return TAKE_FD(fd);
}

int session_server_start(struct manager *m) {
        struct session_server *s;
        int fd = -1, r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->manager = m;
        s->fd = -1;
        m->server = s;

        for (size_t i = 0; i < m->n_listen_fds; i++)
                if (m->listen_fds[i] >= 0 && sd_is_socket_unix(m->listen_fds[i], SOCK_SEQPACKET, 1, NULL, 0) > 0) {
                        fd = TAKE_FD(m->listen_fds[i]);
                        (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                        log_info("Using the VMM socket passed by systemd");
                        break;
                }
        if (fd < 0) {
                fd = bind_socket(manager_socket_path(m));
                if (fd < 0)
                        return fd;
        }
        s->fd = fd;
        r = sd_event_add_io(m->event, &s->io, fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the VMM socket: %m");
        r = sd_event_add_time(m->event, &s->apply_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_apply_timeout, s);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the APPLY timeout: %m");
        (void) sd_event_source_set_description(s->apply_timer, "apply-timeout");
        return sd_event_source_set_enabled(s->apply_timer, SD_EVENT_OFF);
}

struct session_server *session_server_free(struct session_server *s) {
        if (!s)
                return NULL;
        while (s->sessions)
                session_free(s->sessions);
        sd_event_source_disable_unref(s->apply_timer);
        sd_event_source_disable_unref(s->io);
        safe_close(s->fd);
        free(s);
        return NULL;
}
