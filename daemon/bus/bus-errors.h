/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-errors.h — every error org.pmufilterd1 answers with, in one place:
 * its D-Bus name (pmufilterd(8), D-BUS API) and a message a person can act
 * on.  Each sets error and returns a negative errno for the handler to
 * return.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#define BUS_ERROR_NO_SUCH_VM "org.pmufilterd1.NoSuchVM"
#define BUS_ERROR_NO_SUCH_PROFILE "org.pmufilterd1.NoSuchProfile"
#define BUS_ERROR_INVALID_CONFIG "org.pmufilterd1.InvalidConfig"
#define BUS_ERROR_NOT_MANAGED "org.pmufilterd1.NotManaged"
#define BUS_ERROR_APPLY_FAILED "org.pmufilterd1.ApplyFailed"
#define BUS_ERROR_PERSIST_FAILED "org.pmufilterd1.PersistFailed"
#define BUS_ERROR_AMBIGUOUS "org.pmufilterd1.AmbiguousVM"

struct vm;

int bus_error_no_such_vm(sd_bus_error *error, const char *id_or_name);
int bus_error_no_such_profile(sd_bus_error *error, const char *name);
/* A profile object whose profile went with a reload. */
int bus_error_profile_gone(sd_bus_error *error);
/* A change that needs a policy, in lockdown. */
int bus_error_lockdown(sd_bus_error *error, const char *why);
/* A reload whose policy did not load. */
int bus_error_reload_failed(sd_bus_error *error, const char *why);
/* vm cannot get a filter now: for_change says a change was asked, else a re-apply. */
int bus_error_not_managed(sd_bus_error *error, const struct vm *vm, bool for_change);
int bus_error_persist_failed(sd_bus_error *error, const char *path, int r);
int bus_error_no_creds(sd_bus_error *error, int r);
int bus_error_access_denied(sd_bus_error *error, uid_t uid);
int bus_error_no_profile_given(sd_bus_error *error);
int bus_error_no_key(sd_bus_error *error, const struct vm *vm);
/* A grant (SetVMProfileFor) for a VM bound to nothing: it could not outlive a restart. */
int bus_error_grant_no_key(sd_bus_error *error, const struct vm *vm);
/* A grant of no time, or longer than STATE_GRANT_MAX_USEC. */
int bus_error_bad_duration(sd_bus_error *error, uint64_t usec);
/* name is claimed by total VMs, n of them in vms: the candidates listed. */
int bus_error_ambiguous(sd_bus_error *error, const char *name, struct vm *const *vms, size_t n, size_t total);
/* The reply to a change some VMs did not apply. */
int bus_reply_apply_failed(sd_bus_message *msg, unsigned n_failed, const char *first_error);
