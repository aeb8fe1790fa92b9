/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* policy-load.c — STUB */
#include "policy.h"

int policy_load_buffer(struct policy *p, const char *filename, const char *buf, size_t len, struct diags *d) { return -ENOSYS; }
int policy_load_files(const char *config, struct policy **ret, struct diags *d) { return -ENOSYS; }
