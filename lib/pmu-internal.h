/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pmu-internal.h — what pmu.c (host detection, --pmu) and catalogue.c
 * (event names) share and nobody else needs: the one libpfm4 set-up.
 */
#pragma once

#include "pmu.h"

/* The generic models "intel" / "amd": aliases only, never libpfm4. */
static inline bool host_pmu_is_generic(const struct host_pmu *pmu) {
        return streq(pmu->name, "intel") || streq(pmu->name, "amd");
}

#if HAVE_LIBPFM
#include <perfmon/pfmlib.h>

/* Initialise libpfm4 once per process, able to encode for PMUs that are not
 * this host's (--pmu MODEL).  0, or -EIO if libpfm4 refuses to start. */
int pmu_libpfm_init(void);

/* The libpfm4 core PMU called name (case-insensitive, as libpfm4 matches),
 * or with name NULL the host's own (the model's PMU in preference to the
 * architectural default).  0, -ENOENT or -EIO. */
int pmu_libpfm_find(const char *name, pfm_pmu_info_t *ret);
#endif
