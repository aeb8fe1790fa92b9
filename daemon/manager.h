/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * manager.h — the daemon's state and the spine of DESIGN §3:
 *   uevent / ATTACH / /proc scan -> registry entry -> rule matching ->
 *   profile -> compiled filter -> APPLY -> APPLIED -> state, journal.
 */
#pragma once

#include <systemd/sd-event.h>

#include "compile.h"
#include "kvm.h"
#include "pmu.h"
#include "policy.h"
#include "registry.h"
#include "vmqueue.h"
#include "state.h"

/* A policy with every profile compiled for this host: swapped in whole. */
struct policy_set {
        struct policy *policy;
        struct compiled_filter **filters;       /* parallel to policy->profiles */
};

struct session_server;
struct uevent_watcher;
typedef struct sd_bus sd_bus;

struct manager {
        sd_event *event;

        char *config_path;              /* --config, or NULL for /etc/pmufilterd */
        struct policy_set *set;         /* NULL only in lockdown with no good policy */
        bool lockdown;                  /* started with a broken config */
        char *last_error;

        struct host_pmu pmu;
        struct kvm_support kvm;

        struct registry registry;
        struct session_server *server;
        struct uevent_watcher *watcher;
        char *socket_path;              /* --socket or settings.socket */

        uint64_t next_serial;
        unsigned n_sessions;
        sd_event_source *status_event;  /* coalesces STATUS= updates (manager_notify_status) */
        bool shutting_down;             /* keep fd store and registry files as they are */
        struct batch *batches;          /* changes still being applied (batch.c) */
        bool warned_unreadable;         /* the /proc scan missed processes once */
        struct vm_queue records;        /* VM records to write (persist.c) */
        struct vm_queue announcements;  /* new VMs to tell the bus about (bus.c) */

        /* fds passed by systemd (socket activation, fd store), with names */
        int *listen_fds;
        char **listen_names;
        size_t n_listen_fds;

        sd_bus *bus;                    /* NULL when run without a bus */
        char **dirty_profiles;          /* Profile.VMs to say changed (bus.c) */
        sd_event_source *profiles_event;
        char *bus_address;              /* --bus-address, else the system bus */

        /* Changes made over D-Bus (state.c): runtime ones beat persistent
         * ones, both beat the policy's rules and default profile. */
        struct state persistent, runtime;
        char *state_dir;                /* persistent changes: /var/lib/pmufilterd */
        char *runtime_dir;              /* runtime changes: /run/pmufilterd */
};

int manager_new(sd_event *e, const char *config_path, const char *socket_path, struct manager **ret);
struct manager *manager_free(struct manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct manager *, manager_free)

/* Load the policy at start-up; a broken one means lockdown, not failure. */
int manager_load_policy(struct manager *m);
/* Parse and compile everything; swap and push only on full success. */
struct pending_call;
/* waiter (may be NULL): a D-Bus call answered when the re-pushed VMs applied. */
int manager_reload(struct manager *m, struct pending_call *waiter);
/* Start watching: uevents, the /proc scan, the VMM socket. */
int manager_start(struct manager *m);

static inline void vm_set_state(struct vm *vm, enum vm_state s) {
        registry_set_state(&vm->manager->registry, vm, s);
}

/* A VM fd seen by a uevent or the /proc scan. */
int manager_vm_detected(struct manager *m, pid_t pid, int fd, struct vm **ret);
/* The VM is gone (destroy uevent, VMM exit): drop it. */
void manager_vm_gone(struct manager *m, struct vm *vm, const char *why);
/* The whole host: find VMs nobody told us about. */
int manager_rescan(struct manager *m);

/* Decide the VM's profile and filter; true if it differs from the applied one. */
int manager_decide(struct manager *m, struct vm *vm);
/* Has vm a way to get a new filter: a session, or adoption by injection? */
bool manager_vm_managed(const struct vm *vm);
/* Apply vm's current decision: APPLY to its session, or inject again when
 * adopted.  waiter (may be NULL) is answered with the result. */
int manager_apply(struct manager *m, struct vm *vm, struct pending_call *waiter);
/* Send the VM's current decision to its session. */
int manager_push(struct manager *m, struct vm *vm);
/* The VMM answered APPLIED. */
void manager_applied(struct manager *m, struct vm *vm, uint64_t serial, int error, int pmu_error);
/* What the kernel answered to vm's filter (error: its errno, 0 applied),
 * through a session's APPLIED or an injected ioctl: the VM's state, the
 * bus, the journal and its record say so.  note: the VM's LastError even
 * on success (NULL: none); detail: prefix inside the record's parentheses. */
void manager_record_result(struct manager *m, struct vm *vm, int error, const char *note, bool injected,
                           const char *detail);

/* A detected VM has attach_timeout_ms to attach before it is unmanaged. */
void manager_arm_attach_timeout(struct manager *m, struct vm *vm);
/* The attach timeout fired with no ATTACH. */
void manager_vm_unmanaged(struct manager *m, struct vm *vm);

void manager_notify_status(struct manager *m);
/* Decide every VM again; push to those whose filter changed. */
void manager_repush_changed(struct manager *m, struct pending_call *waiter);
const char *manager_socket_path(const struct manager *m);
