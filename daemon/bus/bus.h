/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus.h — the D-Bus edge, org.pmufilterd1 (pmufilterd(8), D-BUS API;
 * dbus/org.pmufilterd1.xml): the Manager, one object per VM and per
 * profile, signals, and method calls that reply only when the VMMs have
 * answered.  A subscriber of the registry: nothing below calls it.
 */
#pragma once

#include <systemd/sd-bus.h>

#include "deliver.h"
#include "log.h"
#include "vmqueue.h"

#define BUS_NAME "org.pmufilterd1"
#define BUS_PATH "/org/pmufilterd1"
#define BUS_VM_PREFIX "/org/pmufilterd1/vm"
#define BUS_PROFILE_PREFIX "/org/pmufilterd1/profile"

/* What changes with every VM that comes, goes or moves (Manager.NVMs,
 * Profile.VMs) is said at most this often, and a new VM is announced this
 * late unless something else about it is said first (docs/architecture.md,
 * "The life of one VM"). */
#define BUS_COALESCE_USEC (100 * 1000)

/* Who called a method, from the bus's credentials of the sender. */
struct bus_caller {
        uid_t uid;
        pid_t pid;                      /* 0: unknown */
        char unit[128];                 /* "": unknown */
        char sender[64];                /* the unique name */
};

/* The last callers, by unique bus name (bus-auth.c). */
#define SENDER_CACHE_SIZE 16

struct bus {
        sd_bus *bus;
        struct deliver *deliver;        /* and through it the registry and the decider */
        const char *state_dir;          /* persistent changes: state.yaml there */
        const char *runtime_dir;        /* runtime changes */

        struct vm_queue announcements;  /* new VMs to say on the bus */
        char **dirty_profiles;          /* Profile.VMs to say changed */
        sd_event_source *profiles_event;        /* at most every BUS_COALESCE_USEC */
        sd_event_source *nvms_event;            /* Manager.NVMs, at most every BUS_COALESCE_USEC */
        uint32_t nvms_said;
        struct bus_caller senders[SENDER_CACHE_SIZE];
        unsigned senders_next;
};

/* Connect (address, else the system bus), register the objects, take the
 * name, attach to the loop, and subscribe to the registry. */
int bus_start(struct bus *b, struct deliver *d, const char *address);
/* s as a D-Bus string may carry it and a terminal may show it: s itself
 * when it is UTF-8 without control characters, else a copy with the other
 * bytes and every control character (C0, DEL, C1) written "\xNN" into
 * *buf (the caller frees it).  A process's comm, its exe's path or a text
 * cut at a buffer's end need not be UTF-8, and sd-bus refuses the whole
 * reply for one such string; a comm is any bytes a process chose, and
 * pmufilterctl shows it on an operator's terminal.  NULL: out of memory. */
const char *bus_utf8(const char *s, char **buf);
/* A string array, each as bus_utf8() gives it: the policy's file names
 * (a conf.d fragment may be named with any bytes) and the texts that
 * quote them. */
int bus_append_strv_utf8(sd_bus_message *m, char *const *l);
/* One string property through bus_utf8(). */
int bus_append_utf8(sd_bus_message *m, const char *s);
void bus_stop(struct bus *b);

/* Objects are registered before the name is taken (systemd's order). */
extern const sd_bus_vtable bus_manager_vtable[];
extern const sd_bus_vtable bus_vm_vtable[];
extern const sd_bus_vtable bus_profile_vtable[];
int bus_vm_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                void **ret_found, sd_bus_error *error);
int bus_vm_enumerate(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes,
                     sd_bus_error *error);
int bus_profile_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                     void **ret_found, sd_bus_error *error);
int bus_profile_enumerate(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes,
                          sd_bus_error *error);

/* The VM's object path under BUS_VM_PREFIX, exactly as sd_bus_path_encode()
 * makes it (every byte but [A-Za-z0-9], and a leading digit, as _xx), into
 * buf without allocating: ListVMs makes 10,000 of them.  -ENOBUFS if it
 * does not fit. */
#define VM_PATH_MAX 128
int vm_object_path(const char *prefix, const char *id, char *buf, size_t size);
/* The same for many VMs in a row (ListVMs): the prefix is copied once, each
 * call escapes only the id.  NULL if it does not fit. */
struct vm_path {
        char buf[VM_PATH_MAX];
        size_t prefix_len;
};
void vm_path_init(struct vm_path *p);
const char *vm_path_of(struct vm_path *p, const char *id);
char *bus_vm_path(const struct vm *vm);
char *bus_profile_path(const char *name);
/* The bus context of the method being dispatched, for handlers whose
 * userdata is the object (a VM). */
struct bus *bus_current(sd_bus_message *msg);

/* bus-explain.c: Manager.Rules, VM.Explain, Manager.PreviewReload. */
int bus_prop_rules(sd_bus *bus, const char *path, const char *interface, const char *property,
                   sd_bus_message *reply, void *userdata, sd_bus_error *error);
int bus_method_explain(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_preview_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error);

/* bus-auth.c: changing anything needs uid 0 (from the bus's credentials of
 * the sender, not from anything the caller says).  1 if allowed, else
 * error is set (AccessDenied) and a negative errno returned. */
int bus_check_manage(struct bus *b, sd_bus_message *msg, struct bus_caller *ret_caller, sd_bus_error *error);
/* caller as the extra fields of an audit record (log.h). */
void bus_caller_audit(const struct bus_caller *caller, struct audit_extra *x);

/* bus-auth.c: a waiter that answers msg when the VMs it waits for have
 * answered: success, or org.pmufilterd1.ApplyFailed with the first error. */
struct vm_waiter *bus_pending_reply(sd_bus_message *msg);

/* bus-changes.c: the changes orchestration makes.  Each is authorised
 * first, recorded (persistently unless runtime), pushed to the affected
 * VMMs, and answered only when they have applied it.  profile "" resets
 * the VM to rule matching. */
int change_vm_profile(struct bus *b, sd_bus_message *msg, struct vm *vm, const char *profile, bool runtime,
                      sd_bus_error *error);
/* A time-limited grant (SetVMProfileFor): a runtime change for
 * duration_usec, which then ends by itself (deliver/grants.c). */
int change_vm_grant(struct bus *b, sd_bus_message *msg, struct vm *vm, const char *profile, uint64_t duration_usec,
                    sd_bus_error *error);
int change_default_profile(struct bus *b, sd_bus_message *msg, const char *profile, bool runtime,
                           sd_bus_error *error);
int change_reapply(struct bus *b, sd_bus_message *msg, struct vm **vms, size_t n, sd_bus_error *error);
int change_reload(struct bus *b, sd_bus_message *msg, sd_bus_error *error);
