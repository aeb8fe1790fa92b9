/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus.h — the D-Bus API org.pmufilterd1 (DESIGN §8): the Manager, one
 * object per VM and per profile, signals, and method calls that reply only
 * when the VMMs have answered (pending calls).  Every hook is a no-op when
 * the daemon runs without a bus.
 */
#pragma once

#include <systemd/sd-bus.h>

#include "manager.h"

#define BUS_NAME "org.pmufilterd1"
#define BUS_PATH "/org/pmufilterd1"
#define BUS_VM_PREFIX "/org/pmufilterd1/vm"
#define BUS_PROFILE_PREFIX "/org/pmufilterd1/profile"

#define BUS_ERROR_NO_SUCH_VM "org.pmufilterd1.NoSuchVM"
#define BUS_ERROR_NO_SUCH_PROFILE "org.pmufilterd1.NoSuchProfile"
#define BUS_ERROR_INVALID_CONFIG "org.pmufilterd1.InvalidConfig"
#define BUS_ERROR_NOT_MANAGED "org.pmufilterd1.NotManaged"
#define BUS_ERROR_APPLY_FAILED "org.pmufilterd1.ApplyFailed"
#define BUS_ERROR_PERSIST_FAILED "org.pmufilterd1.PersistFailed"

/* Connect, register the objects, take the name, attach to the loop. */
int bus_start(struct manager *m);
void bus_stop(struct manager *m);

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

char *bus_vm_path(const struct vm *vm);
char *bus_profile_path(const char *name);

/* Authorisation: changing anything needs uid 0 (from the bus's credentials
 * of the sender, not from anything the caller says).  Returns 1 if allowed,
 * else fills error (AccessDenied) and returns a negative errno. */
int bus_check_manage(sd_bus_message *msg, sd_bus_error *error);

/* A method call that replies when every VM it pushed to has answered. */
struct pending_call;
struct pending_call *pending_call_new(sd_bus_message *msg);
/* Wait for vm's next APPLIED (or the loss of its session). */
int pending_call_wait(struct pending_call *c, struct vm *vm);
/* No more VMs will be added: reply now if none is outstanding. */
void pending_call_arm(struct pending_call *c);
/* Nothing was pushed (the change failed first): free without replying. */
void pending_call_cancel(struct pending_call *c);

/* Hooks from the manager and the sessions. */
void bus_vm_new(struct manager *m, struct vm *vm);
void bus_vm_removed(struct manager *m, struct vm *vm);
void bus_vm_unmanaged(struct manager *m, struct vm *vm);
void bus_vm_changed(struct manager *m, struct vm *vm);
/* vm answered (ok) or could not (error text); completes waiting calls. */
void bus_vm_applied(struct manager *m, struct vm *vm, bool ok, const char *error);
/* The session went away: waiting calls fail, no FilterApplied. */
void bus_vm_session_lost(struct manager *m, struct vm *vm, const char *why);
void bus_reloaded(struct manager *m, bool ok, const char *error);
void bus_profiles_changed(struct manager *m, char **old_names);
void bus_profile_vms_changed(struct manager *m, const char *name);
void bus_manager_changed(struct manager *m);
