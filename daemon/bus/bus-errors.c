/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-errors.c — the errors of the D-Bus API.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "bus-errors.h"
#include "bus.h"
#include "registry.h"
#include "state.h"

int bus_error_no_such_vm(sd_bus_error *error, const char *id_or_name) {
        return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_VM,
                                 "No VM '%s' (give an id such as 1234-12, a NAME or UUID it claims, or its machine's name or UUID; see ListVMs)", id_or_name);
}

int bus_error_no_such_profile(sd_bus_error *error, const char *name) {
        return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROFILE, "No profile '%s' in the policy (see ListProfiles)",
                                 name);
}

int bus_error_profile_gone(sd_bus_error *error) {
        return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROFILE, "The profile is gone");
}

/* The policy's errors quote its files by name, which a conf.d fragment may
 * have of any bytes, and a state directory's path is root's to choose: an
 * error message that is no UTF-8 could not be sent at all (bus_utf8()). */
int bus_error_lockdown(sd_bus_error *error, const char *why) {
        _cleanup_free_ char *buf = NULL;
        const char *text = bus_utf8(strna(why), &buf);

        if (!text)
                return -ENOMEM;
        return sd_bus_error_setf(error, BUS_ERROR_INVALID_CONFIG,
                                 "The daemon is in lockdown (the policy failed to load: %s); fix it and reload first",
                                 text);
}

int bus_error_reload_failed(sd_bus_error *error, const char *why) {
        _cleanup_free_ char *buf = NULL;
        const char *text = bus_utf8(strna(why), &buf);

        if (!text)
                return -ENOMEM;
        return sd_bus_error_setf(error, BUS_ERROR_INVALID_CONFIG, "The policy was not reloaded, the old one stays: %s",
                                 text);
}

int bus_error_not_managed(sd_bus_error *error, const struct vm *vm, bool for_change) {
        return sd_bus_error_setf(error, BUS_ERROR_NOT_MANAGED, "VM %s has no session with pmufilterd (state %s): %s",
                                 vm->id, vm_state_to_string(vm->state),
                                 for_change ? "its VMM must attach before its filter can change"
                                            : "nothing can apply its filter");
}

int bus_error_persist_failed(sd_bus_error *error, const char *path_raw, int r) {
        _cleanup_free_ char *buf = NULL;
        const char *path = bus_utf8(path_raw, &buf);

        if (!path)
                return -ENOMEM;
        /* ResetVMProfile takes a running VM: the changes of VMs that are
         * gone leave the file only by hand, with the daemon stopped. */
        if (r == -EFBIG)
                return sd_bus_error_setf(error, BUS_ERROR_PERSIST_FAILED,
                                         "Not changed: %s would be over %u MiB, more than pmufilterd reads back; "
                                         "reset changes of running VMs, or remove those of VMs that are gone "
                                         "from the file while pmufilterd is stopped", path,
                                         (unsigned) (STATE_FILE_MAX / (1024 * 1024)));
        return sd_bus_error_setf(error, BUS_ERROR_PERSIST_FAILED, "Failed to write %s: %s", path, strerror(-r));
}

int bus_error_no_creds(sd_bus_error *error, int r) {
        return sd_bus_error_set_errnof(error, r, "Cannot tell who is calling: %s", strerror(-r));
}

int bus_error_access_denied(sd_bus_error *error, uid_t uid) {
        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                 "Changing the PMU policy needs root (caller has uid %u)", (unsigned) uid);
}

int bus_error_no_profile_given(sd_bus_error *error) {
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "No profile given (use ResetVMProfile to go back to the rules)");
}

int bus_error_no_key(sd_bus_error *error, const struct vm *vm) {
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "VM %s is in no machined machine and claims neither NAME nor UUID, so a persistent change "
                                 "could not find it again: use runtime=true", vm->id);
}

int bus_error_grant_no_key(sd_bus_error *error, const struct vm *vm) {
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "VM %s is in no machined machine and claims neither NAME nor UUID, so a time-limited "
                                 "grant could not be found again after a restart of pmufilterd: use SetVMProfile and "
                                 "ResetVMProfile", vm->id);
}

int bus_error_bad_duration(sd_bus_error *error, uint64_t usec) {
        if (usec == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "A grant needs a duration of more than 0");
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "A grant lasts at most 31 days (%" PRIu64 " µs); longer is a change: use SetVMProfile",
                                 STATE_GRANT_MAX_USEC);
}

int bus_error_ambiguous(sd_bus_error *error, const char *name, struct vm *const *vms, size_t n, size_t total) {
        _cleanup_free_ char *ids = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&ids, &len);

        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s%s", i ? ", " : "", vms[i]->id);
        if (total > n)
                fprintf(f, " and %zu more", total - n);
        if (fclose(f) != 0)
                return -ENOMEM;
        return sd_bus_error_setf(error, BUS_ERROR_AMBIGUOUS,
                                 "'%s' names %zu VMs (%s): give the id of the one meant", name, total, ids);
}

int bus_reply_apply_failed(sd_bus_message *msg, unsigned n_failed, const char *first_error) {
        _cleanup_free_ char *buf = NULL;
        /* The reason a session ended may quote what its VMM sent, cut at a
         * buffer's end: an error message that is no UTF-8 could not be
         * sent, and the caller would wait for its timeout. */
        const char *text = bus_utf8(first_error ? first_error : "filter not applied", &buf);

        if (!text)
                return -ENOMEM;
        return sd_bus_reply_method_errorf(msg, BUS_ERROR_APPLY_FAILED, "%s%s", text,
                                          n_failed > 1 ? " (and more VMs failed)" : "");
}
