/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* catalogue.c — STUB */
#include "pmu.h"

int event_resolve(const struct host_pmu *pmu, const char *name, uint64_t *ret_code) { return -ENOSYS; }
const char *event_name_for_code(const struct host_pmu *pmu, uint64_t code) { return NULL; }
int fixed_counter_event(const struct host_pmu *pmu, unsigned idx, uint64_t *ret_code) { return -ENOENT; }
unsigned fixed_counter_count(const struct host_pmu *pmu) { return 0; }
int event_foreach(const struct host_pmu *pmu, const char *glob, int (*f)(const struct event_info *e, void *userdata), void *userdata) { return 0; }
