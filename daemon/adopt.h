/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* adopt.h — filters for VMs whose VMM never attached, by injection. */
#pragma once

#include "manager.h"

/* Decide vm's filter (as `client: ptrace`) and inject it into its VMM.
 * 0: the ioctl ran (state adopted, or failed with the kernel's errno);
 * negative: refused (reason in vm->last_error), nothing changed in the VMM. */
int manager_adopt(struct manager *m, struct vm *vm);
