/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * deliver.h — getting each VM's decision into its kernel, and watching that
 * it stays there: the VMM sessions (session.c), adoption by injection
 * (deliver.c, inject.c), changes that reach many VMs (batch.c), the policy swapped on
 * reload (reload.c), the VM's life from detection to its end (lifecycle.c,
 * watch.c) and the systemd fd store (fdstore.c).  KVM lets only the VM's
 * creator issue VM ioctls, so the daemon never touches a VM fd itself: it
 * sends APPLY and records the answer.  docs/architecture.md follows one VM
 * through these files.
 */
#pragma once

#include <limits.h>

#include <systemd/sd-event.h>

#include "decide.h"
#include "fdstore.h"
#include "kvm.h"
#include "list.h"
#include "log.h"
#include "pmu.h"
#include "records.h"
#include "registry.h"

struct batch;
struct session_server;
struct uevent_watcher;
struct vm_waiter;

struct deliver {
        sd_event *event;
        struct registry *registry;
        struct records *records;
        struct decider *decider;
        const struct host_pmu *pmu;
        const struct kvm_support *kvm;
        const char *config_path;        /* --config, or NULL for /etc/pmufilterd */
        const char *socket_path;        /* --socket, or NULL for settings.socket */
        const char *runtime_dir;        /* --runtime-dir: the last good settings are kept there */
        /* In lockdown: the settings that still parse (policy_load_settings()). */
        struct policy *lockdown_settings;
        bool lockdown_settings_last_good;       /* ... from the last good policy, not this one */
        /* What the host lacks for the daemon to serve everyone (a missing
         * socket group), for the status (Manager.Warnings). */
        char **warnings;
        unsigned foreign_vms;           /* uevents of VMs whose process is not visible here */
        unsigned unseen_pending;        /* in a container: such uevents the next rescan may explain */
        struct ratelimit foreign_said;  /* said once a minute */

        struct fdstore fdstore;
        struct session_server *server;
        struct uevent_watcher *watcher;
        struct batch *batches;          /* changes still being applied (batch.c) */
        /* Detected VMs waiting for their ATTACH, by deadline: one timer for
         * all of them (lifecycle.c). */
        struct vm *attach_head, *attach_tail;
        sd_event_source *attach_timer;
        uint64_t attach_timer_due;      /* when it fires; 0: off */
        /* A rescan for uevents whose creator is gone, at most one a second
         * (watch.c): a host whose VMMs come and go fast sends many. */
        sd_event_source *rescan_timer;
        uint64_t last_rescan;           /* CLOCK_MONOTONIC µs; 0: never */
        /* At the earliest expiry of a time-limited grant; off while there
         * is none (grants.c). */
        sd_event_source *grant_timer;
        uint64_t next_serial;
        bool warned_unreadable;         /* the /proc scan missed processes once */
};

/* lifecycle.c: set up and tear down --------------------------------------- */
int deliver_init(struct deliver *d, sd_event *e, struct registry *r, struct records *rec, struct decider *dec);
/* Stop: unfinished batches are dropped, sessions closed (the fd store keeps them). */
void deliver_done(struct deliver *d);
const char *deliver_socket_path(const struct deliver *d);
/* The settings the daemon runs with: the policy's, else in lockdown what
 * still parses of it, else the defaults. */
const struct settings *deliver_settings(const struct deliver *d);

/* deliver.c ---------------------------------------------------------------- */

/* What an override of vm is bound to: its machine, its VMM's uid, its
 * claims (decide.h), reading the facts it needs.  The strings are vm's. */
void deliver_vm_identity(struct vm *vm, struct vm_identity *ret);
/* What decided a profile, in an audit record's words: the source
 * ("default", "rule:3", ...) and, for a rule, where it is written: "rule:3
 * at /etc/pmufilterd/pmufilterd.yaml:40".  loc: "FILE:LINE" or NULL.
 * Returns buf. */
char *deliver_source_text(const char *source, const char *loc, char *buf, size_t size);
#define DELIVER_SOURCE_TEXT_MAX (PATH_MAX + 64)
/* What the decision for vm is made from: its claims, its facts (read
 * when a rule first asks), its override. */
void deliver_decide_input(struct vm *vm, struct decide_input *ret);
/* vm's override from the state files, for its identity now. */
int deliver_update_override(struct deliver *d, struct vm *vm);
/* Every VM that s names: an id, a claimed NAME or UUID, else a machined
 * machine name or UUID.  As registry_lookup_all(). */
size_t deliver_find_vms(struct deliver *d, const char *s, struct vm **out, size_t max);

/* Decide vm's profile and filter again; 1 if it differs from the one it had. */
int deliver_decide(struct deliver *d, struct vm *vm);
/* Has vm a way to get a new filter: a session, or adoption by injection? */
bool deliver_vm_managed(const struct vm *vm);
/* Send vm's current decision to its session. */
int deliver_push(struct deliver *d, struct vm *vm);
/* Apply vm's current decision: APPLY to its session, or inject again when
 * adopted.  waiter (may be NULL) hears the answer. */
int deliver_apply(struct deliver *d, struct vm *vm, struct vm_waiter *waiter);
/* Decide vm (as `client: ptrace`) and inject its filter into its VMM.
 * 0: the ioctl ran (adopted, or failed with the kernel's errno); negative:
 * refused (reason in vm->last_error), nothing changed in the VMM. */
int deliver_adopt(struct deliver *d, struct vm *vm);
/* What the kernel answered to vm's filter (error: its errno, 0 applied),
 * through APPLIED or an injected ioctl.  note: the VM's LastError even on
 * success (NULL: none); detail: said inside the audit record's parentheses. */
void deliver_record_result(struct deliver *d, struct vm *vm, int error, const char *note, bool injected,
                           const char *detail);

/* lifecycle.c -------------------------------------------------------------- */
/* A VM fd seen by a uevent, the /proc scan or an ATTACH: 1 registered now,
 * 0 known already, -ESRCH its process is gone.  known: pid's facts as
 * proc_facts_open() read them just now, taken over (NULL: read them). */
int deliver_vm_detected(struct deliver *d, pid_t pid, int fd, struct proc_facts *known, struct vm **ret);
/* The VM is gone (destroy uevent, VMM exit): drop it. */
void deliver_vm_gone(struct deliver *d, struct vm *vm, const char *why);
/* Write the attach records still held for VMMs applying their filter
 * (vm->attach_said): before a change to what decided them. */
void deliver_say_held_attaches(struct deliver *d);
/* A detected VM has attach_timeout_ms to attach before it is unmanaged. */
void deliver_arm_attach_timeout(struct deliver *d, struct vm *vm);
void deliver_disarm_attach_timeout(struct deliver *d, struct vm *vm);
/* Register the VM fds of pid the registry does not know yet. */
void deliver_scan_pid(struct deliver *d, pid_t pid);
/* The same for the VM fds of every process in refs (sorted by pid, as
 * procscan gives them), ours aside.  Returns how many VMs are new. */
struct vm_fd_ref;
size_t deliver_register_fds(struct deliver *d, const struct vm_fd_ref *refs, size_t n);
/* The VMM socket: socket activation, else bound at deliver_socket_path(). */
int deliver_listen(struct deliver *d);

/* watch.c ------------------------------------------------------------------ */
/* Listen to uevents, then scan /proc: no VM goes unseen. */
int deliver_watch(struct deliver *d);
/* The whole host: find VMs nobody told us about, drop those that went. */
int deliver_rescan(struct deliver *d);

/* batch.c ------------------------------------------------------------------ */
/* Decide vms (NULL: every VM) again and apply where the filter changed (all
 * of them when force), VM_QUEUE_BATCH per turn of the loop.  waiter (may be
 * NULL) is armed after the last batch.  The first batch runs before this
 * returns. */
int deliver_apply_batched(struct deliver *d, struct vm **vms, size_t n, bool force, struct vm_waiter *waiter);
void deliver_free_batches(struct deliver *d);

/* grants.c ----------------------------------------------------------------- */
/* The timer at the earliest grant of the runtime state, or off: after any
 * change of that state. */
int deliver_grants_arm(struct deliver *d);
/* End the grants due by now: out of the runtime state (written), each VM
 * they reached decided again and pushed, an audit record each; then arm.
 * at_start: they ended while the daemon was not running. */
void deliver_grants_expire(struct deliver *d, bool at_start);

/* reload.c ----------------------------------------------------------------- */
/* Load the policy at start-up; a broken one means lockdown, not failure. */
int deliver_load_policy(struct deliver *d);
/* What a reload would do, without doing it: each VM's profile now and
 * under the policy on disk, and whether its filter bytes would change.
 * -EINVAL: the policy does not load (*ret_error says why). */
struct reload_preview {
        struct vm *vm;
        const char *old_profile;        /* vm's */
        char *new_profile;
        bool filter_changes;            /* and it has a session or is adopted */
};
int deliver_preview_reload(struct deliver *d, struct reload_preview **ret, size_t *ret_n, char **ret_error);
void reload_preview_free(struct reload_preview *p, size_t n);

/* Parse and compile everything; swap and push only on full success.
 * waiter (may be NULL) hears when the VMs whose filter changed applied it.
 * -EINVAL: the policy did not load (decider.last_error says why). */
int deliver_reload(struct deliver *d, struct vm_waiter *waiter);
