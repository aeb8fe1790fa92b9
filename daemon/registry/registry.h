/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * registry.h — every VM the daemon knows, keyed by "<pid>-<fd>" (the
 * uevent's STATS_PATH: the creating process and the fd number the VM got
 * there).  An entry holds the VM's identity, what the VMM claimed, the
 * decision in force and the last answer from the kernel.
 *
 * The registry calls no layer above it: whoever changes a VM says so with
 * registry_notify(), and the layers above (the bus, the status line, the fd
 * store) learn of it through the listeners they subscribed.  See
 * docs/architecture.md.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "list.h"
#include "procfacts.h"
#include "util.h"

struct audit_held;       /* base/log.h */

enum vm_state {
        VM_DETECTED,    /* seen (uevent, /proc scan), no session yet */
        VM_ATTACHED,    /* session up, APPLY sent, no answer yet */
        VM_FILTERED,    /* the VMM applied the filter: kernel said 0 */
        VM_ADOPTED,     /* applied by injection (settings.adopt: ptrace) */
        VM_FAILED,      /* the VMM's ioctl failed: last_errno */
        VM_UNMANAGED,   /* no attach within attach_timeout_ms */
        VM_DETACHED,    /* session closed; the last filter stays in the kernel */
        _VM_STATE_MAX,
};

const char *vm_state_to_string(enum vm_state s);
/* -EINVAL for a name that is none of vm_state_to_string()'s. */
int vm_state_from_string(const char *s, enum vm_state *ret);

/* The client kinds a VM can have (proto's CLIENT= values and "ptrace"), as
 * static strings; NULL for anything else. */
const char *vm_client_from_string(const char *s);

struct compiled_filter;
struct session;
struct vm_waiter;

struct vm {
        char *id;                       /* "<pid>-<fd>" */
        pid_t pid;
        int fd;                         /* the VM's fd number in pid */
        uint64_t starttime;             /* of pid, to tell a reused pid apart */
        enum vm_state state;            /* set with registry_set_state() (the counts) */
        unsigned vcpus;                 /* claimed in ATTACH */

        struct proc_facts facts;

        /* claimed in ATTACH; name and uuid set with registry_set_name() (indexed) */
        char *name, *uuid;
        const char *client;             /* static: vm_client_from_string() */
        char **labels;                  /* "key=value" */

        /* the decision in force (decide/), and the override it came from */
        char *profile;                  /* NULL until decided */
        char profile_source[16];        /* "rule:<n>", "default", "runtime", "persistent", "lockdown", "none" */
        char *profile_source_loc;       /* "FILE:LINE" of rule <n>; NULL for the other sources */
        struct compiled_filter *filter; /* what was (or is being) applied: a reference */
        char *override;                 /* set over D-Bus: beats the rules (override_runtime below) */
        uint64_t override_expires_usec; /* the override is a grant ending then (CLOCK_REALTIME); 0: none */

        /* the kernel's last answer */
        uint64_t applied_usec;          /* CLOCK_REALTIME of the last good APPLIED */
        char *last_error;               /* human text or NULL */
        uint64_t serial_pending;        /* SERIAL of the APPLY in flight, 0 none */
        int last_errno;                 /* of the last APPLIED, 0 ok */

        /* Flags, together: a struct vm per VM, 10,000 on a host
         * (docs/benchmarks.md, memory per VM). */
        bool have_facts;
        /* A CREATE uevent named this VM's creator, so its DESTROY will name
         * (pid, fd) too.  Not so for VMs found by a /proc scan: see
         * registry_creator_seen(). */
        bool creator_known;
        bool override_runtime;          /* the override is a runtime one */
        bool in_force;                  /* the kernel holds filter: the last answer was for it,
                                         * and good; false while it is only decided */

        /* Owned by the layers above; the registry only frees the VM. */
        struct session *session;        /* deliver/: NULL unless attached */
        struct audit_held *attach_said; /* deliver/: the attach's audit record, written with the answer */
        bool session_unstored;          /* deliver/: its session goes to the fd store with the record */
        bool unannounced;               /* bus/: VMNew, InterfacesAdded not said yet */
        bool claims_said;               /* bus/: Name, UUID, Labels, Client said for its session */
        bool record_dirty;              /* records.c: its record is to be written */
        uint64_t attach_deadline;       /* deliver/: CLOCK_MONOTONIC, 0: not waiting for ATTACH */
        struct vm_waiter **waiters;     /* waiter.c: calls waiting for its next answer */
        size_t n_waiters;

        struct vm *hash_next;
        struct vm *name_next, *uuid_next;       /* in the name and UUID tables */
        uint64_t seq;                           /* registration order */
        LIST_FIELDS(struct vm, vms);
        LIST_FIELDS(struct vm, attach);         /* deliver/: by attach deadline */
};

/* A VM named by value, for work queued across turns of the event loop:
 * one that goes away meanwhile is simply not found. */
struct vm_key {
        pid_t pid;
        int fd;
};

/* What the layers above are told.  vm is NULL for the events of the daemon
 * as a whole (the last four). */
enum registry_event {
        REGISTRY_VM_NEW,                /* a VM was detected */
        REGISTRY_VM_CHANGED,            /* its decision, claims or state changed */
        REGISTRY_VM_APPLIED,            /* its VMM (or an injection) answered: data.ok, data.error */
        REGISTRY_VM_SESSION_LOST,       /* no answer will come: data.error */
        REGISTRY_VM_UNMANAGED,
        REGISTRY_VM_PROFILE_MOVED,      /* from data.old_profile to vm->profile */
        REGISTRY_VM_RECORDED,           /* its record was written */
        REGISTRY_VM_REMOVED,            /* about to be dropped (waiters have failed) */
        REGISTRY_COUNT_CHANGED,         /* after a removal */
        REGISTRY_POLICY_SWAPPED,        /* a new policy is in force: data.old_names, the profiles before */
        REGISTRY_POLICY_RELOADED,       /* a reload is done: data.ok, data.error */
        REGISTRY_SETTINGS_CHANGED,      /* default profile, lockdown, last error */
        _REGISTRY_EVENT_MAX,
};

struct registry_event_data {
        bool ok;
        const char *error;
        const char *old_profile;
        char *const *old_names;
};

struct registry;
typedef void (*registry_listener_t)(struct registry *r, enum registry_event ev, struct vm *vm,
                                    const struct registry_event_data *data, void *userdata);

struct registry_listener {
        registry_listener_t fn;
        void *userdata;
};

struct registry {
        struct vm **buckets;
        struct vm **by_name, **by_uuid;         /* same size as buckets */
        size_t n_buckets;
        uint64_t next_seq;
        size_t n_vms;
        size_t n_creator_unknown;       /* VMs without creator_known */
        size_t n_state[_VM_STATE_MAX];  /* VMs in each state: STATUS= without a walk */
        struct vm *vms_head, *vms_tail; /* in order of registration */

        struct registry_listener *listeners;
        size_t n_listeners;
};

void registry_init(struct registry *r);
void registry_done(struct registry *r);

struct vm *registry_get(const struct registry *r, pid_t pid, int fd);
struct vm *registry_get_by_id(const struct registry *r, const char *id);
/* Find a VM by id, or else by NAME or UUID claimed in ATTACH (the first
 * registered of those that claim it). */
struct vm *registry_lookup(const struct registry *r, const char *id_or_name);
/* Every VM that s names (an id names one; a NAME or UUID as many as claim
 * it), in order of registration: up to max into out; returns how many
 * there are. */
size_t registry_lookup_all(const struct registry *r, const char *s, struct vm **out, size_t max);
/* Replace vm's NAME and UUID (either may be NULL), taking both strings. */
void registry_set_name(struct registry *r, struct vm *vm, char *name, char *uuid);

/* New entry in state DETECTED.  -EEXIST if (pid, fd) is known. */
int registry_add(struct registry *r, pid_t pid, int fd, struct vm **ret);
/* Unlink and free.  The owners of the fields above have let go of theirs. */
void registry_remove(struct registry *r, struct vm *vm);
/* Every change of a registered VM's state goes through here (the counts). */
void registry_set_state(struct registry *r, struct vm *vm, enum vm_state s);
/* vm->last_error = text as one line of UTF-8 (a byte that is no UTF-8 or a
 * control character written \xNN), at most VM_LAST_ERROR_MAX bytes of it
 * (cut between characters and escapes).  It may quote a VMM's claims or a
 * path it chose, cut at a buffer's end; it goes to D-Bus (LastError) and to
 * the VM's record, whose lines it must not split nor make too long to be
 * read back; read back, it is itself.  NULL clears it. */
#define VM_LAST_ERROR_MAX 1024
void vm_set_last_error(struct vm *vm, const char *text);
/* The CREATE uevent of vm was seen: its DESTROY will name it. */
void registry_creator_seen(struct registry *r, struct vm *vm);

/* Listeners are called in the order they subscribed. */
int registry_subscribe(struct registry *r, registry_listener_t fn, void *userdata);
/* Tell the listeners.  For APPLIED, SESSION_LOST and REMOVED the calls
 * waiting for vm's answer are completed first (waiter.h). */
void registry_notify(struct registry *r, enum registry_event ev, struct vm *vm,
                     const struct registry_event_data *data);

#define REGISTRY_FOREACH(v, r) LIST_FOREACH(vms, v, (r)->vms_head)
#define REGISTRY_FOREACH_SAFE(v, n, r) LIST_FOREACH_SAFE(vms, v, n, (r)->vms_head)
