/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pmu-internal.h — what pmu.c (host detection, --pmu, loading libpfm4) and
 * catalogue.c (event names) share and nobody else needs: the one libpfm4
 * set-up and the entry points it resolves.
 */
#pragma once

#include "pmu.h"

/* The generic models "intel" / "amd": aliases only, never libpfm4. */
static inline bool host_pmu_is_generic(const struct host_pmu *pmu) {
        return streq(pmu->name, "intel") || streq(pmu->name, "amd");
}

#if HAVE_LIBPFM
/* For the types only: the functions are reached through the sym_ pointers
 * below, so nothing links against libpfm4. */
#include <perfmon/pfmlib.h>

/* libpfm4's entry points, resolved from the dlopen()ed libpfm.so.4 by
 * pmu_libpfm_init(); set only while it last returned 0 and until
 * pmu_libpfm_release(). */
extern __typeof__(pfm_initialize) *sym_pfm_initialize;
extern __typeof__(pfm_terminate) *sym_pfm_terminate;
extern __typeof__(pfm_get_pmu_info) *sym_pfm_get_pmu_info;
extern __typeof__(pfm_get_event_next) *sym_pfm_get_event_next;
extern __typeof__(pfm_get_event_info) *sym_pfm_get_event_info;
extern __typeof__(pfm_get_event_attr_info) *sym_pfm_get_event_attr_info;
extern __typeof__(pfm_get_os_event_encoding) *sym_pfm_get_os_event_encoding;

/* Load libpfm.so.4 and initialise it, once until pmu_libpfm_release(), able
 * to encode for PMUs that are not this host's (--pmu MODEL).  0;
 * -EOPNOTSUPP if the library is not installed (or lacks an entry point), as
 * if built without it; -EIO if libpfm4 refuses to start. */
int pmu_libpfm_init(void);

/* The libpfm4 core PMU called name (case-insensitive, as libpfm4 matches),
 * or with name NULL the host's own (the model's PMU in preference to the
 * architectural default).  0, -ENOENT, -EOPNOTSUPP or -EIO.  The strings in
 * *ret are libpfm4's: copy what must outlive pmu_libpfm_release(). */
int pmu_libpfm_find(const char *name, pfm_pmu_info_t *ret);
#endif
