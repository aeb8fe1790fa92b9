/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * changes.h — the changes orchestration makes over D-Bus: a VM's profile,
 * the default profile, re-applying.  Each is authorised first, recorded
 * (persistently unless runtime), pushed to the affected VMMs, and answered
 * only when they have applied it: the reply says what the kernel said.
 */
#pragma once

#include <systemd/sd-bus.h>

#include "manager.h"

/* profile "" resets the VM to rule matching. */
int change_vm_profile(struct manager *m, sd_bus_message *msg, struct vm *vm, const char *profile,
                      bool runtime, sd_bus_error *error);
int change_default_profile(struct manager *m, sd_bus_message *msg, const char *profile, bool runtime,
                           sd_bus_error *error);
int change_reapply(struct manager *m, sd_bus_message *msg, struct vm **vms, size_t n, sd_bus_error *error);

/* Load both state files after the policy; a corrupt file is reported and set aside. */
void changes_load(struct manager *m);
/* Set vm's override (and whether it is a runtime one) to what the state
 * files record for it (by UUID, then name), runtime before persistent;
 * none for a VM without NAME or UUID.  -ENOMEM. */
int changes_update_override(const struct manager *m, struct vm *vm);
/* The default profile in force: D-Bus override, else settings.default_profile. */
const char *changes_default_profile(const struct manager *m, bool *ret_overridden);
