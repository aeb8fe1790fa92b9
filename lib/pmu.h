/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pmu.h — the host's PMU and the event catalogue.  Generic aliases (perf's
 * spelling: instructions, cycles, ...) resolve per vendor; libpfm4 names
 * resolve when built with libpfm4 (HAVE_LIBPFM) and libpfm.so.4 is there to
 * load.  An event code is the raw 64-bit word KVM filters on:
 * select[7:0] | umask << 8 | select[11:8] << 32.
 */
#pragma once

#include <stdint.h>

#include "util.h"

enum pmu_vendor {
        PMU_VENDOR_UNKNOWN,
        PMU_VENDOR_INTEL,
        PMU_VENDOR_AMD,
};

struct host_pmu {
        enum pmu_vendor vendor;
        unsigned family, model, stepping;       /* CPUID display values */
        unsigned version;                       /* Intel arch perfmon version / AMD perfmon v2 = 2 */
        unsigned n_gp, n_fixed;                 /* counters, where CPUID says */
        char name[64];          /* what --pmu accepts and status shows: libpfm4
                                 * PMU name when known ("amd64_fam19h_zen3",
                                 * "skx"), else "intel" / "amd" */
        char description[128];  /* human: "AMD Fam19h Zen3", CPU brand string */
};

/* Detect from CPUID.  Fills *ret; never fails on x86 (vendor may be UNKNOWN). */
int host_pmu_detect(struct host_pmu *ret);

/* --pmu MODEL: "intel", "amd", or a libpfm4 PMU name ("skx", "icl",
 * "amd64_fam19h_zen3", ...).  -ENOENT with a list hint if unknown. */
int host_pmu_from_name(const char *model, struct host_pmu *ret);

const char *pmu_vendor_to_string(enum pmu_vendor v);

/* Encode select/umask as the KVM raw word. */
static inline uint64_t event_code(uint16_t select, uint8_t umask) {
        return (uint64_t) (select & 0xff) | ((uint64_t) umask << 8) |
               ((uint64_t) (select >> 8 & 0xf) << 32);
}
static inline uint16_t event_code_select(uint64_t code) {
        return (uint16_t) ((code & 0xff) | ((code >> 32 & 0xf) << 8));
}
static inline uint8_t event_code_umask(uint64_t code) {
        return (uint8_t) (code >> 8 & 0xff);
}

/*
 * Resolve a symbolic name for this PMU: a generic alias first, then (with
 * libpfm4) a libpfm4 event name such as "INST_RETIRED:ANY_P".  *ret_code is
 * the raw word.  Returns 0, -ENOENT if the PMU does not know it, -EINVAL if
 * the name is malformed or needs bits the filter cannot express (cmask, inv,
 * edge...: the filter only sees select + umask).
 */
int event_resolve(const struct host_pmu *pmu, const char *name, uint64_t *ret_code);

/* "Did you mean": the name of this PMU's catalogue closest to `name`, an
 * unknown one, where one is close enough (suggest.h: at most 2 edits and
 * less than a third of its length; libpfm4's names compared ignoring
 * case, as libpfm4 does), and that resolves.  0 with *ret a copy, or NULL
 * when none is close; -ENOMEM. */
int event_suggest(const struct host_pmu *pmu, const char *name, char **ret);

/* The reverse, for display: the best name for a code on this PMU, or NULL. */
const char *event_name_for_code(const struct host_pmu *pmu, uint64_t code);

/* The architectural event a fixed counter counts on this PMU, or -ENOENT
 * (AMD has no fixed counters KVM exposes).  idx 0 = instructions,
 * 1 = cycles (core), 2 = ref-cycles (Intel's pseudo-encoding 0x0300). */
int fixed_counter_event(const struct host_pmu *pmu, unsigned idx, uint64_t *ret_code);
unsigned fixed_counter_count(const struct host_pmu *pmu);

struct event_info {
        const char *name;
        uint64_t code;
        const char *description;        /* may be NULL */
        bool generic;                   /* a perf-style alias */
};
/* Call f for every known event whose name matches glob (NULL = all), generic
 * aliases first, then libpfm4's; stop and return f's value if it returns
 * non-zero.  e's strings are valid during the call only (libpfm4's own may
 * go with pmu_libpfm_release()): f copies what it keeps. */
int event_foreach(const struct host_pmu *pmu, const char *glob,
                  int (*f)(const struct event_info *e, void *userdata), void *userdata);

/*
 * libpfm4 is loaded (dlopen("libpfm.so.4")) on its first use: host_pmu_detect(),
 * host_pmu_from_name() of a libpfm4 model, and the libpfm4 names of
 * event_resolve(), event_name_for_code() and event_foreach().  Not installed,
 * it is as if built without it.  This terminates and unloads it again, to
 * give back its memory between uses (the daemon calls it after start-up and
 * after each policy build); the next use loads it anew.  Nothing returned
 * before points into it: host_pmu names are copies, event_name_for_code()'s
 * names are the catalogue's own.  A no-op when not loaded, or built without.
 */
void pmu_libpfm_release(void);
