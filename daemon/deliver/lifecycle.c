/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lifecycle.c — one VM from its detection to its end: registered when a
 * uevent, the /proc scan or an ATTACH names it; given attach_timeout_ms to
 * attach, then adopted by injection or reported unmanaged (and killed,
 * where the policy says so); attached, decided and pushed when its VMM
 * proves it; detached or dropped when its session or its process ends.
 * The sessions report here through their callbacks (session_ops).
 */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>

#include "deadline.h"
#include "deliver.h"
#include "listen.h"
#include "log.h"
#include "procscan.h"
#include "session.h"
#include "uevent.h"

int deliver_init(struct deliver *d, sd_event *e, struct registry *r, struct records *rec, struct decider *dec) {
        assert(d);
        *d = (struct deliver) {
                .event = e,
                .registry = r,
                .records = rec,
                .decider = dec,
                .foreign_said = RATELIMIT_INIT(60 * 1000 * 1000ULL, 1),
                /* Serials grow across restarts too: an answer to an APPLY of
                 * the daemon we replaced can never be taken for one of ours. */
                .next_serial = now_usec(CLOCK_REALTIME),
        };
        return 0;
}

void deliver_done(struct deliver *d) {
        deliver_free_batches(d);
        d->attach_timer = sd_event_source_disable_unref(d->attach_timer);
        d->attach_timer_due = 0;
        d->rescan_timer = sd_event_source_disable_unref(d->rescan_timer);
        d->grant_timer = sd_event_source_disable_unref(d->grant_timer);
        d->server = session_server_free(d->server, true);
        d->watcher = uevent_watcher_free(d->watcher);
        fdstore_done(&d->fdstore);
        policy_free(TAKE_PTR(d->lockdown_settings));
        strv_free(TAKE_PTR(d->warnings));
}

const struct settings *deliver_settings(const struct deliver *d) {
        if (!d->decider->set && d->lockdown_settings)
                return &d->lockdown_settings->settings;
        return decider_settings(d->decider);
}

const char *deliver_socket_path(const struct deliver *d) {
        const struct settings *s = deliver_settings(d);

        if (d->socket_path)
                return d->socket_path;
        return s->socket ? s->socket : POLICY_DEFAULT_SOCKET;
}

int deliver_vm_detected(struct deliver *d, pid_t pid, int fd, struct proc_facts *known, struct vm **ret) {
        _cleanup_(proc_facts_done) struct proc_facts facts = {};
        struct vm *vm = registry_get(d->registry, pid, fd);
        int r;

        /* One read of /proc/<pid>/stat: the start time and comm; none if
         * the caller's read just now (the uevent's, naming the process)
         * gave them. */
        if (known && known->pid == pid && known->starttime != 0) {
                facts = *known;
                *known = (struct proc_facts) {};
        } else {
                r = proc_facts_open(pid, &facts);
                if (r < 0)
                        return r == -ENOMEM ? r : -ESRCH;
        }
        if (vm && vm->starttime == facts.starttime) {
                if (ret)
                        *ret = vm;
                return 0;
        }
        if (vm)         /* same pid and fd, another process: the old one is gone */
                deliver_vm_gone(d, vm, "its process was replaced");

        r = registry_add(d->registry, pid, fd, &vm);
        if (r < 0)
                return r;
        vm->starttime = facts.starttime;
        vm->facts = facts;
        facts = (struct proc_facts) {};
        vm->have_facts = true;

        deliver_arm_attach_timeout(d, vm);
        log_debug("VM %s detected (pid %d, %s)", vm->id, (int) pid, strna(vm->facts.comm));
        registry_notify(d->registry, REGISTRY_VM_NEW, vm, NULL);
        if (ret)
                *ret = vm;
        return 1;
}

void deliver_say_held_attaches(struct deliver *d) {
        REGISTRY_FOREACH(vm, d->registry)
                audit_held_say(&vm->attach_said);
}

void deliver_vm_gone(struct deliver *d, struct vm *vm, const char *why) {
        audit_held_say(&vm->attach_said);
        audit_record(LOG_INFO, MID_GONE, vm->id, vm->profile, vm->pid, "VM %s is gone: %s", vm->id, why);
        deliver_disarm_attach_timeout(d, vm);
        session_free(vm->session);
        registry_notify(d->registry, REGISTRY_VM_REMOVED, vm, NULL);
        records_forget(d->records, vm);
        registry_remove(d->registry, vm);
        registry_notify(d->registry, REGISTRY_COUNT_CHANGED, NULL, NULL);
}

static int pidfd_kill(pid_t pid, uint64_t starttime) {
        _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);

        if (pidfd < 0)
                return -errno;
        /* Signals through the pidfd reach this process whatever happens to the
         * pid number; check the process is still the VM's before it is used. */
        if (proc_starttime(pid) != starttime)
                return -ESRCH;
        if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0)
                return -errno;
        return 0;
}

/* why: the reason it cannot be managed ("no ATTACH within N ms", a
 * refusal), also its LastError: what show and the bus say of it. */
static void vm_unmanaged(struct deliver *d, struct vm *vm, const char *why) {
        const struct settings *s = decider_settings(d->decider);
        const char *comm = strna(vm->have_facts ? vm->facts.comm : NULL);

        registry_set_state(d->registry, vm, VM_UNMANAGED);
        vm_set_last_error(vm, why);
        if (s->unmanaged == UNMANAGED_KILL) {
                int r = pidfd_kill(vm->pid, vm->starttime);

                audit_record(LOG_WARNING, MID_UNMANAGED, vm->id, NULL, vm->pid,
                             "VM %s (%s, pid %d) is unmanaged: %s; %s%s", vm->id, comm, (int) vm->pid, why,
                             r < 0 ? "failed to kill its VMM: " : "killed its VMM (SIGKILL)",
                             r < 0 ? strerror(-r) : "");
        } else
                audit_record(LOG_WARNING, MID_UNMANAGED, vm->id, NULL, vm->pid,
                             "VM %s (%s, pid %d) is unmanaged: %s; its guest PMU is not filtered",
                             vm->id, comm, (int) vm->pid, why);
        registry_notify(d->registry, REGISTRY_VM_UNMANAGED, vm, NULL);
        records_mark(d->records, vm);
}

/* A VM that attaches leaves the timer as it is (deadline.h). */
static void attach_timer_update(struct deliver *d) {
        if (d->attach_head)
                deadline_arm(d->attach_timer, &d->attach_timer_due, d->attach_head->attach_deadline);
}

void deliver_disarm_attach_timeout(struct deliver *d, struct vm *vm) {
        if (vm->attach_deadline == 0)
                return;
        LIST_REMOVE_TAIL(attach, d->attach_head, d->attach_tail, vm);
        vm->attach_deadline = 0;
}

/* The timeout of one VM: it did not attach in time. */
static void attach_timed_out(struct deliver *d, struct vm *vm) {
        pid_t pid = vm->pid;
        char why[512];

        if (vm->state != VM_DETECTED)
                return;
        /* 0, not < 0: when /proc cannot tell (EACCES: no CAP_SYS_PTRACE, a
         * non-dumpable VMM), the VM is still to be reported. */
        if (proc_fd_kvm_vm(pid, vm->fd) == 0) {
                /* The number the VM was created on is closed: the VM is gone
                 * (its DESTROY is on its way) or lives on under another one
                 * (the VMM moved it, and may have attached with that).  This
                 * entry says nothing either way: drop it, and let a scan of
                 * the process register any VM fd it does not know. */
                deliver_vm_gone(d, vm, "the fd it was created on was closed");
                deliver_scan_pid(d, pid);
                return;
        }
        snprintf(why, sizeof(why), "no ATTACH within %u ms", decider_settings(d->decider)->attach_timeout_ms);
        if (decider_settings(d->decider)->adopt == ADOPT_PTRACE) {
                /* A refused injection says why in last_error: said after the timeout. */
                vm_set_last_error(vm, NULL);
                if (deliver_adopt(d, vm) >= 0)
                        return;
                if (vm->last_error)
                        snprintf(why + strlen(why), sizeof(why) - strlen(why), "; %s", vm->last_error);
        }
        vm_unmanaged(d, vm, why);
}

static int on_attach_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct deliver *d = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        deadline_fired(&d->attach_timer_due);
        while (d->attach_head && d->attach_head->attach_deadline <= now) {
                struct vm *vm = d->attach_head;

                deliver_disarm_attach_timeout(d, vm);
                attach_timed_out(d, vm);
        }
        attach_timer_update(d);
        return 0;
}

/* Deadlines mostly come in order (one timeout for all): inserted from the tail. */
void deliver_arm_attach_timeout(struct deliver *d, struct vm *vm) {
        struct vm *after;
        int r;

        if (!d->attach_timer) {
                r = sd_event_add_time(d->event, &d->attach_timer, CLOCK_MONOTONIC, UINT64_MAX, 0,
                                      on_attach_timeout, d);
                if (r < 0)
                        return (void) log_warning_errno(r, "VM %s: failed to arm the attach timeout: %m", vm->id);
                (void) sd_event_source_set_description(d->attach_timer, "attach-timeout");
        }
        deliver_disarm_attach_timeout(d, vm);
        vm->attach_deadline = now_usec(CLOCK_MONOTONIC) +
                              (uint64_t) decider_settings(d->decider)->attach_timeout_ms * 1000u;
        for (after = d->attach_tail; after && after->attach_deadline > vm->attach_deadline; after = after->attach_prev)
                ;
        LIST_INSERT_AFTER(attach, d->attach_head, d->attach_tail, after, vm);
        if (!after)
                attach_timer_update(d);
}

/* A VM fd found by a /proc scan, and whether the registry has that (pid, fd). */
struct fd_entry {
        pid_t pid;
        int fd;
        bool known;
};

/* kcmp(KCMP_FILE) orders open files across processes, so sorting VM fds
 * by it puts the copies of one VM side by side, whichever processes hold
 * them.  Where it gives no order (a process is gone, no permission) the
 * (pid, fd) stands in, and such copies go unnoticed. */
static int compare_file(const void *a, const void *b) {
        const struct fd_entry *x = a, *y = b;
        int r = file_order(x->pid, x->fd, y->pid, y->fd);

        if (r != -EINVAL)
                return r;
        if (x->pid != y->pid)
                return x->pid < y->pid ? -1 : 1;
        return x->fd < y->fd ? -1 : x->fd > y->fd;
}

/* Is the VM of pid's fd registered under another process (a copy it
 * received, not one it created)?  O(VMs): for the rare scans of one pid. */
static bool known_elsewhere(struct deliver *d, pid_t pid, int fd) {
        REGISTRY_FOREACH(vm, d->registry)
                if (vm->pid != pid && same_file(pid, fd, vm->pid, vm->fd) > 0)
                        return true;
        return false;
}

/* Register each VM of e (every VM fd the scanned processes hold now) that
 * the registry does not know under any of its fds, once: under the first
 * process the scan found it in (the lowest pid), at that process's lowest
 * fd.  A VM's other holders got a copy (SCM_RIGHTS, pidfd_getfd, fork):
 * they are not its creator, and must not attach it or be reported for it.
 * Sorting costs O(k log k) kcmp calls for k fds (docs/benchmarks.md). */
static size_t register_new(struct deliver *d, struct fd_entry *e, size_t n, bool check_others) {
        size_t found = 0;

        if (n > 1)
                qsort(e, n, sizeof(*e), compare_file);
        for (size_t i = 0, j; i < n; i = j) {
                struct fd_entry first = e[i];
                bool known = e[i].known;

                for (j = i + 1; j < n && same_file(e[i].pid, e[i].fd, e[j].pid, e[j].fd) > 0; j++) {
                        known = known || e[j].known;
                        if (e[j].pid < first.pid || (e[j].pid == first.pid && e[j].fd < first.fd))
                                first = e[j];
                }
                if (known || first.pid == getpid_cached())     /* ours: the KVM probe's VM, an ATTACH fd */
                        continue;
                if (check_others && known_elsewhere(d, first.pid, first.fd))
                        continue;
                if (deliver_vm_detected(d, first.pid, first.fd, NULL, NULL) > 0)
                        found++;
        }
        return found;
}

size_t deliver_register_fds(struct deliver *d, const struct vm_fd_ref *refs, size_t n) {
        _cleanup_free_ struct fd_entry *e = calloc(n + 1, sizeof(*e));

        if (!e)
                return 0;
        for (size_t i = 0; i < n; i++)
                e[i] = (struct fd_entry) { refs[i].pid, refs[i].fd,
                                           registry_get(d->registry, refs[i].pid, refs[i].fd) != NULL };
        return register_new(d, e, n, false);
}

void deliver_scan_pid(struct deliver *d, pid_t pid) {
        _cleanup_free_ struct vm_fd_ref *refs = NULL;
        _cleanup_free_ struct fd_entry *e = NULL;
        size_t n = 0;

        if (procscan_pid(pid, &refs, &n) < 0)
                return;
        e = calloc(n + 1, sizeof(*e));
        if (!e)
                return;
        for (size_t i = 0; i < n; i++)
                e[i] = (struct fd_entry) { pid, refs[i].fd, registry_get(d->registry, pid, refs[i].fd) != NULL };
        (void) register_new(d, e, n, true);
}

/* The registered VM the peer sent as its fd, if the peer may attach it:
 * only its creator may (pmufilterd-vmm(7)), or a process sharing the
 * creator's fd table (a thread, a CLONE_FILES child).  KVM runs a VM's
 * ioctls only for the process that created it: anyone else's ATTACH would
 * record a filter that is not in force.  -ENOENT: not registered. */
static int find_own_vm(struct deliver *d, pid_t peer, int fd, struct vm **ret, char *reason, size_t size) {
        struct vm *vm = registry_get(d->registry, peer, fd);

        if (vm) {
                *ret = vm;
                return 0;
        }
        /* The uevent named the fd the VM was created on; the VMM may hold
         * it under another number (dup), or be another process. */
        REGISTRY_FOREACH(i, d->registry) {
                if (same_file(peer, fd, i->pid, i->fd) <= 0)
                        continue;
                if (i->pid == peer || same_fd_table(peer, i->pid) > 0) {
                        *ret = i;
                        return 0;
                }
                snprintf(reason, size,
                         "VM %s was created by pid %d, not by pid %d: only the VM's creator can apply its filter",
                         i->id, (int) i->pid, (int) peer);
                return -EPERM;
        }
        return -ENOENT;
}

static int find_vm(struct deliver *d, pid_t peer, int fd, struct vm **ret, char *reason, size_t size) {
        int r;

        /* The kernel queued the CREATE uevent before KVM_CREATE_VM returned
         * the fd to the VMM: whatever it says is known before we judge. */
        uevent_watcher_flush(d->watcher);
        r = find_own_vm(d, peer, fd, ret, reason, size);
        if (r != -ENOENT)
                return r;
        /* No uevent named it (created while we did not listen, or the scan
         * could not read the peer's fds): look at the peer's fds, where only
         * a VM no other process holds as registered is new. */
        deliver_scan_pid(d, peer);
        r = find_own_vm(d, peer, fd, ret, reason, size);
        if (r == -ENOENT)
                snprintf(reason, size, "no VM created by pid %d is known at fd %d: only the VM's creator can apply its filter",
                         (int) peer, fd);
        return r == -ENOENT ? -EPERM : r;
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

/* Another live VM of another process that claims uuid: a UUID names one
 * VM, and the second claimant is the one refused. */
static struct vm *uuid_holder(struct deliver *d, const struct vm *vm, const char *uuid) {
        struct vm *holders[8];
        size_t n = registry_lookup_all(d->registry, uuid, holders, ELEMENTSOF(holders));

        for (size_t i = 0; i < n && i < ELEMENTSOF(holders); i++)
                if (holders[i] != vm && streq_ptr(holders[i]->uuid, uuid) && holders[i]->pid != vm->pid &&
                    same_fd_table(holders[i]->pid, vm->pid) <= 0)
                        return holders[i];
        return NULL;
}

/* The claims of an ATTACH, onto vm.  -EEXIST, with a reason, for a UUID
 * another VM holds. */
static int take_claims(struct deliver *d, struct vm *vm, struct proto_attach *a, char *reason, size_t size) {
        _cleanup_strv_free_ char **labels = NULL;
        struct vm *holder;
        int r;

        /* UUIDs are compared in one case: "6F1C…" is "6f1c…". */
        for (char *c = a->uuid; c && *c; c++)
                *c = (char) tolower((unsigned char) *c);
        if (a->uuid && (holder = uuid_holder(d, vm, a->uuid))) {
                snprintf(reason, size, "UUID %s is held by VM %s (pid %d)%s%s%s", a->uuid, holder->id,
                         (int) holder->pid, holder->name ? ", name '" : "", strempty(holder->name),
                         holder->name ? "'" : "");
                return -EEXIST;
        }
        r = labels_to_strv(a, &labels);
        if (r < 0)
                return r;
        registry_set_name(d->registry, vm, TAKE_PTR(a->name), TAKE_PTR(a->uuid));
        strv_free(vm->labels);
        vm->labels = TAKE_PTR(labels);
        vm->client = proto_client_to_string(a->client);
        vm->vcpus = a->vcpus;
        return deliver_update_override(d, vm);
}

static int on_session_attach(struct session *s, const struct ucred *peer, struct proto_attach *a,
                             char *reason, size_t reason_size, void *userdata) {
        struct deliver *d = userdata;
        uid_t uid = peer->uid;          /* peer is s's: a failed push frees s */
        char source[DELIVER_SOURCE_TEXT_MAX];
        struct vm *vm;
        int r;

        r = find_vm(d, peer->pid, a->vmfd, &vm, reason, reason_size);
        if (r < 0)
                return r;
        if (vm->session && vm->session != s) {
                snprintf(reason, reason_size, "VM %s already has a session", vm->id);
                return -EBUSY;
        }
        r = take_claims(d, vm, a, reason, reason_size);
        if (r == -EEXIST) {
                /* Refused, and reported: a VM whose VMM cannot attach is unmanaged. */
                deliver_disarm_attach_timeout(d, vm);
                vm_unmanaged(d, vm, reason);
                return r;
        }
        if (r < 0) {
                snprintf(reason, reason_size, "out of memory");
                return r;
        }

        deliver_disarm_attach_timeout(d, vm);
        session_attach_vm(s, vm);
        registry_set_state(d->registry, vm, VM_ATTACHED);

        r = deliver_decide(d, vm);
        if (r < 0) {
                snprintf(reason, reason_size, "cannot decide a filter for VM %s: %s", vm->id, strerror(-r));
                return r;
        }
        /* The APPLY first, and then nothing written until the VMM answers:
         * the audit record of the attach is made now and written with the
         * answer, the VM's record is written after it (with the answer's).
         * The VMM's ioctl needs a CPU when the kernel wakes it, and on a
         * small host the daemon's writes would hold the one it is on
         * (docs/architecture.md, "The life of one VM").  A failed push ends
         * the session (and says why); the VM and its attach's record stay. */
        r = deliver_push(d, vm);
        audit_held_say(&vm->attach_said);       /* none: every end of a wait wrote it; never leaked */
        vm->attach_said = audit_record_held(
                        LOG_INFO, MID_ATTACH, vm->id, vm->profile, vm->pid,
                        "VM %s attached by %s (pid %d, uid %u, %s%s%s): profile '%s' (%s)", vm->id,
                        strna(vm->facts.comm), (int) vm->pid, (unsigned) uid, strna(vm->client),
                        vm->name ? ", name " : "", strempty(vm->name), vm->profile,
                        deliver_source_text(vm->profile_source, vm->profile_source_loc, source, sizeof(source)));
        if (r < 0) {
                audit_held_say(&vm->attach_said);
                return 0;       /* the session ended, with the reason */
        }
        /* Survive our own restart: systemd keeps the connection for us,
         * handed over with the record that names it (on_vm_recorded()),
         * which the answer writes (deliver_record_result()), or the
         * session's end. */
        vm->session_unstored = true;
        return 0;
}

static void on_session_applied(struct session *s, struct vm *vm, const struct proto_applied *a, void *userdata) {
        struct deliver *d = userdata;
        _cleanup_free_ char *msg = NULL;
        int pmu_error = a->has_pmu_error ? a->pmu_error : 0;

        if (a->serial != vm->serial_pending) {
                log_debug("VM %s: ignoring APPLIED for serial %" PRIu64 ", waiting for %" PRIu64,
                          vm->id, a->serial, vm->serial_pending);
                return;
        }
        vm->serial_pending = 0;
        /* On a host without a vPMU (kvm.enable_pmu=N) there is none to
         * disable: the VM has no PMU, as asked. */
        if (a->error == 0 && vm->filter && vm->filter->pmu_off && pmu_error != 0 &&
            !kvm_vpmu_off_hostwide(d->kvm) &&
            asprintf(&msg, "vPMU could not be disabled (%s): the fallback empty allowlist is in force",
                     strerror(pmu_error)) < 0)
                msg = NULL;
        deliver_record_result(d, vm, a->error, msg, false, "");
}

static void on_session_lost(struct vm *vm, int error, const char *reason, void *userdata) {
        struct deliver *d = userdata;

        registry_set_state(d->registry, vm, VM_FAILED);
        vm->in_force = false;
        vm->last_errno = error;
        vm_set_last_error(vm, reason);
        records_mark(d->records, vm);
        registry_notify(d->registry, REGISTRY_VM_SESSION_LOST, vm, &(struct registry_event_data) { .error = reason });
}

/* Whether vm's process still lives: its pidfd polls readable once it has
 * exited (pidfd_open(2)); without one, or if the poll fails, its start time. */
static bool vm_process_alive(const struct vm *vm, int pidfd) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        int r;

        r = pidfd >= 0 ? poll(&p, 1, 0) : -1;
        if (r < 0)
                return proc_starttime(vm->pid) == vm->starttime;
        return r == 0;
}

static void on_session_closed(struct vm *vm, int pidfd, void *userdata) {
        struct deliver *d = userdata;

        audit_held_say(&vm->attach_said);
        /* The VM fd first: a VMM that closed its VM, or exited (its fd
         * table goes before its sockets close), says so in one readlink,
         * and whatever process holds the pid now, the VM is not there.
         * Only a VM fd still open needs the process to be the VM's: a
         * pidfd live after the readlink held the pid through it. */
        if (!proc_fd_is_kvm_vm(vm->pid, vm->fd) || !vm_process_alive(vm, pidfd))
                return deliver_vm_gone(d, vm, "its VMM closed it");
        /* A VM whose filter the kernel refused stays failed: nothing of ours is in force. */
        if (vm->state != VM_FAILED)
                registry_set_state(d->registry, vm, VM_DETACHED);
        vm->serial_pending = 0;
        records_mark(d->records, vm);
        log_info("VM %s: session closed; the last filter stays in the kernel", vm->id);
        registry_notify(d->registry, REGISTRY_VM_SESSION_LOST, vm,
                        &(struct registry_event_data) { .error = "the VMM closed its session" });
}

/* Once its record exists, a new session goes to the fd store: a restart
 * that finds a connection finds what it belongs to. */
static void on_vm_recorded(struct registry *r, enum registry_event ev, struct vm *vm,
                           const struct registry_event_data *data, void *userdata) {
        if (ev != REGISTRY_VM_RECORDED || !vm->session_unstored)
                return;
        vm->session_unstored = false;
        if (vm->session)
                fdstore_store_session(vm->id, session_fd(vm->session));
}

static unsigned unattached_limit(void *userdata) {
        struct deliver *d = userdata;

        return decider_settings(d->decider)->unattached_sessions_per_uid;
}

static const struct session_ops session_ops = {
        .attach = on_session_attach,
        .applied = on_session_applied,
        .lost = on_session_lost,
        .closed = on_session_closed,
        .unattached_limit = unattached_limit,
};

int deliver_listen(struct deliver *d) {
        const char *group = deliver_settings(d)->socket_group;
        char *warning = NULL;
        bool passed;
        int fd, r;

        fd = fdstore_take_listener(&d->fdstore);
        passed = fd >= 0;
        if (passed)
                log_info("Using the VMM socket passed by systemd");
        else {
                fd = listen_bind(deliver_socket_path(d), group, &warning);
                if (fd < 0)
                        return fd;
                if (warning && strv_push(&d->warnings, warning) < 0)
                        free(warning);
        }
        /* VMMs pointed at the configured path must find it in lockdown too. */
        if (d->decider->lockdown)
                log_notice("Lockdown serves the VMM socket %s: %s", passed ? "passed by systemd" : deliver_socket_path(d),
                           passed ? "the socket unit's" : d->socket_path ? "given with --socket" :
                           d->lockdown_settings_last_good ? "settings.socket of the last good policy, kept in the runtime directory" :
                           d->lockdown_settings ? "settings.socket, from the settings that still parse" :
                           "the default, since nothing of the policy parses");
        r = registry_subscribe(d->registry, on_vm_recorded, d);
        if (r < 0) {
                safe_close(fd);
                return log_error_errno(r, "Failed to set up the VMM socket: %m");
        }
        return session_server_new(d->event, fd, &session_ops, d, &d->server);
}
