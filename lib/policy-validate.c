/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* policy-validate.c — STUB */
#include "policy.h"

int policy_validate(const struct policy *p, struct diags *d) { return -ENOSYS; }
