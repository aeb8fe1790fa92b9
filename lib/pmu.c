/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pmu.c — STUB */
#include "pmu.h"

int host_pmu_detect(struct host_pmu *ret) { *ret = (struct host_pmu) {}; return 0; }
int host_pmu_from_name(const char *model, struct host_pmu *ret) { return -ENOSYS; }
const char *pmu_vendor_to_string(enum pmu_vendor v) { return "unknown"; }
