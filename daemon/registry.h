/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * registry.h — every VM the daemon knows, keyed by "<pid>-<fd>" (the
 * uevent's STATS_PATH: the creating process and the fd number the VM got
 * there).  An entry holds the VM's identity, what the VMM claimed, the
 * decision (profile and its source) and the last answer from the kernel.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "procfacts.h"
#include "util.h"

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
/* The VM's D-Bus object path under prefix, exactly as sd_bus_path_encode()
 * makes it (every byte but [A-Za-z0-9], and a leading digit, as _xx), into
 * buf without allocating: ListVMs makes 10,000 of them.  -ENOBUFS if it
 * does not fit. */
#define VM_PATH_MAX 128
int vm_object_path(const char *prefix, const char *id, char *buf, size_t size);

/* The client kinds a VM can have (proto's CLIENT= values and "ptrace"), as
 * static strings; NULL for anything else. */
const char *vm_client_from_string(const char *s);

struct compiled_filter;
struct manager;
struct session;

struct vm {
        char *id;                       /* "<pid>-<fd>" */
        pid_t pid;
        int fd;                         /* the VM's fd number in pid */
        uint64_t starttime;             /* of pid, to tell a reused pid apart */
        enum vm_state state;

        struct proc_facts facts;
        bool have_facts;
        /* A CREATE uevent named this VM's creator, so its DESTROY will name
         * (pid, fd) too.  Not so for VMs found by a /proc scan: see
         * registry_creator_unknown(). */
        bool creator_known;
        bool dirty;                     /* its record is to be written (persist.c) */
        bool session_unstored;          /* its session goes to the fd store with the record */
        bool unannounced;               /* VMNew, InterfacesAdded not said yet (bus.c) */

        /* claimed in ATTACH; set with registry_set_name() (indexed) */
        char *name, *uuid;
        const char *client;             /* static: vm_client_from_string() */
        char **labels;                  /* "key=value" */
        unsigned vcpus;

        struct session *session;        /* NULL unless attached */

        /* the decision */
        char *profile;                  /* NULL until decided */
        char profile_source[16];        /* "rule:<n>", "default", "runtime", "lockdown"; "" */
        struct compiled_filter *filter; /* what was (or is being) applied: owned copy */
        uint64_t applied_usec;          /* CLOCK_REALTIME of the last good APPLIED */
        int last_errno;                 /* of the last APPLIED, 0 ok */
        char *last_error;               /* human text or NULL */

        uint64_t serial_pending;        /* SERIAL of the APPLY in flight, 0 none */

        /* set over D-Bus: beats the rules (ProfileSource runtime|persistent) */
        char *override;
        bool override_runtime;
        /* D-Bus calls waiting for this VM's next APPLIED */
        struct pending_call **waiters;
        size_t n_waiters;

        struct manager *manager;
        void *timer;                    /* sd_event_source: the attach timeout */
        struct vm *hash_next;
        struct vm *name_next, *uuid_next;       /* in the name and UUID tables */
        uint64_t seq;                           /* registration order */
        struct vm *list_prev, *list_next;
};

/* A VM named by value, for work queued across turns of the event loop:
 * one that goes away meanwhile is simply not found. */
struct vm_key {
        pid_t pid;
        int fd;
};

struct registry {
        struct vm **buckets;
        struct vm **by_name, **by_uuid;         /* same size as buckets */
        size_t n_buckets;
        uint64_t next_seq;
        size_t n_vms;
        size_t n_creator_unknown;       /* VMs without creator_known */
        size_t n_state[_VM_STATE_MAX];  /* VMs in each state: STATUS= without a walk */
        struct vm *head, *tail;         /* in order of registration */
};

void registry_init(struct registry *r);
void registry_done(struct registry *r);

struct vm *registry_get(const struct registry *r, pid_t pid, int fd);
struct vm *registry_get_by_id(const struct registry *r, const char *id);
/* Find a VM by id, or else by NAME or UUID claimed in ATTACH (the first
 * registered of those that claim it). */
struct vm *registry_lookup(const struct registry *r, const char *id_or_name);
/* Replace vm's NAME and UUID (either may be NULL), taking both strings. */
void registry_set_name(struct registry *r, struct vm *vm, char *name, char *uuid);

/* New entry in state DETECTED.  -EEXIST if (pid, fd) is known. */
int registry_add(struct registry *r, pid_t pid, int fd, struct vm **ret);
/* Unlink and free. The caller has stopped the timer and the session. */
void registry_remove(struct registry *r, struct vm *vm);
/* Every change of a registered VM's state goes through here (the counts). */
void registry_set_state(struct registry *r, struct vm *vm, enum vm_state s);
/* The CREATE uevent of vm was seen: its DESTROY will name it. */
void registry_creator_seen(struct registry *r, struct vm *vm);

#define REGISTRY_FOREACH(v, r) for (struct vm *v = (r)->head; v; v = v->list_next)
