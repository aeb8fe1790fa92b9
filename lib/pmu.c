/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pmu.c — which PMU the host has (CPUID, and libpfm4's name for it), which
 * PMU `--pmu MODEL` names, and the one place libpfm4 is loaded (dlopen, only
 * while needed), initialised and released.
 */
#include <cpuid.h>
#include <strings.h>

#include "pmu-internal.h"
#if HAVE_LIBPFM
#include "dlfcn-util.h"
#endif

/* CPUID.01H:EAX: display family/model as the SDM and APM define them. */
static void decode_signature(uint32_t eax, struct host_pmu *p) {
        unsigned base_family = eax >> 8 & 0xf, base_model = eax >> 4 & 0xf;

        p->stepping = eax & 0xf;
        p->family = base_family;
        if (base_family == 0xf)
                p->family += eax >> 20 & 0xff;
        p->model = base_model;
        if (base_family == 0x6 || base_family == 0xf)
                p->model |= (eax >> 16 & 0xf) << 4;
}

static void detect_intel(unsigned max_leaf, struct host_pmu *p) {
        unsigned a, b, c, d;

        if (max_leaf < 0xa)
                return;
        __cpuid_count(0xa, 0, a, b, c, d);
        p->version = a & 0xff;
        p->n_gp = a >> 8 & 0xff;
        /* EDX describes the fixed counters from version 2 on only. */
        if (p->version > 1)
                p->n_fixed = d & 0x1f;
}

static void detect_amd(unsigned max_ext, struct host_pmu *p) {
        unsigned a, b, c, d;

        /* Every AMD64 part has the four legacy counters; PerfCtrExtCore
         * (CPUID 8000_0001h ECX[23]) adds two. */
        p->version = 1;
        p->n_gp = 4;
        if (max_ext >= 0x80000001) {
                __cpuid(0x80000001, a, b, c, d);
                if (c & (1u << 23))
                        p->n_gp = 6;
        }
        if (max_ext >= 0x80000022) {
                __cpuid_count(0x80000022, 0, a, b, c, d);
                if (a & 1u) {                   /* PerfMonV2 */
                        p->version = 2;
                        if (b & 0xf)            /* NumPerfCtrCore */
                                p->n_gp = b & 0xf;
                }
        }
}

static void detect_brand(unsigned max_ext, char *buf, size_t size) {
        uint32_t regs[12] = {};
        const char *s;
        size_t l;

        if (max_ext < 0x80000004)
                return;
        for (unsigned i = 0; i < 3; i++)
                __cpuid(0x80000002 + i, regs[i * 4], regs[i * 4 + 1], regs[i * 4 + 2], regs[i * 4 + 3]);

        s = (const char *) regs;
        l = strnlen(s, sizeof(regs));
        while (l > 0 && *s == ' ')              /* Intel pads on the left */
                s++, l--;
        while (l > 0 && s[l - 1] == ' ')
                l--;
        snprintf(buf, size, "%.*s", (int) l, s);
}

#if HAVE_LIBPFM
__typeof__(pfm_initialize) *sym_pfm_initialize;
__typeof__(pfm_terminate) *sym_pfm_terminate;
__typeof__(pfm_get_pmu_info) *sym_pfm_get_pmu_info;
__typeof__(pfm_get_event_next) *sym_pfm_get_event_next;
__typeof__(pfm_get_event_info) *sym_pfm_get_event_info;
__typeof__(pfm_get_event_attr_info) *sym_pfm_get_event_attr_info;
__typeof__(pfm_get_os_event_encoding) *sym_pfm_get_os_event_encoding;

static const struct dlsym_arg libpfm_symbols[] = {
        DLSYM_ARG(pfm_initialize),
        DLSYM_ARG(pfm_terminate),
        DLSYM_ARG(pfm_get_pmu_info),
        DLSYM_ARG(pfm_get_event_next),
        DLSYM_ARG(pfm_get_event_info),
        DLSYM_ARG(pfm_get_event_attr_info),
        DLSYM_ARG(pfm_get_os_event_encoding),
};

/* libpfm.so.4 is the largest part of the daemon's memory once loaded (its
 * relocated event tables, and pfm_initialize()'s heap; figures in
 * docs/benchmarks.md), and is needed only to detect the host's PMU and to
 * compile: it is loaded on first use and unloaded by pmu_libpfm_release(). */
static void *libpfm_dl;
static int libpfm_state = 1;            /* 1: not tried since the last release */

static void libpfm_unload(void) {
        dlclose_symbols(&libpfm_dl, libpfm_symbols, ELEMENTSOF(libpfm_symbols));
}

/* A library that is not there, or not the libpfm4 we were built for, is a
 * build without libpfm4: nothing is logged, since aliases still work. */
static int libpfm_load(void) {
        return dlopen_symbols("libpfm.so.4", libpfm_symbols, ELEMENTSOF(libpfm_symbols), &libpfm_dl, NULL, 0) < 0
                       ? -EOPNOTSUPP : 0;
}

int pmu_libpfm_init(void) {
        bool set;
        int r;

        if (libpfm_state <= 0)
                return libpfm_state;

        r = libpfm_load();
        if (r < 0)
                return (libpfm_state = r);

        /* Encoding for a PMU that is not this host's (--pmu skx on an AMD
         * box) needs LIBPFM_ENCODE_INACTIVE=1, read once by pfm_initialize().
         * It only adds undetected PMUs to the searchable list: detection and
         * is_present are unchanged, and unqualified names still skip
         * inactive PMUs (lib/pfmlib_common.c).  A value the user set wins;
         * ours is removed again so it does not leak into children. */
        set = !getenv("LIBPFM_ENCODE_INACTIVE");
        if (set && setenv("LIBPFM_ENCODE_INACTIVE", "1", 0) < 0) {
                r = -errno;
                libpfm_unload();
                return r;               /* not remembered: worth another try */
        }
        r = sym_pfm_initialize() == PFM_SUCCESS ? 0 : -EIO;
        if (set)
                (void) unsetenv("LIBPFM_ENCODE_INACTIVE");
        if (r < 0)                      /* remembered until the release */
                libpfm_unload();
        return (libpfm_state = r);
}

void pmu_libpfm_release(void) {
        if (libpfm_state == 0)
                sym_pfm_terminate();
        libpfm_unload();
        libpfm_state = 1;
}

int pmu_libpfm_find(const char *name, pfm_pmu_info_t *ret) {
        pfm_pmu_info_t fallback = {};
        bool have_fallback = false;
        pfm_pmu_t i;
        int r;

        assert(ret);

        r = pmu_libpfm_init();
        if (r < 0)
                return r;

        pfm_for_all_pmus(i) {
                pfm_pmu_info_t info = { .size = sizeof(info) };

                if (sym_pfm_get_pmu_info(i, &info) != PFM_SUCCESS)
                        continue;
                if (info.type != PFM_PMU_TYPE_CORE)
                        continue;
                if (name && strcasecmp(info.name, name) == 0) {
                        *ret = info;
                        return 0;
                }
                if (name || !info.is_present)
                        continue;
                /* On Intel the architectural "ix86arch" is present beside
                 * the model's own PMU; prefer the model's. */
                if (!info.is_dfl) {
                        *ret = info;
                        return 0;
                }
                if (!have_fallback) {
                        fallback = info;
                        have_fallback = true;
                }
        }
        if (!have_fallback)
                return -ENOENT;
        *ret = fallback;
        return 0;
}

/* libpfm4 names its AMD PMUs by family ("amd64_fam19h_zen4"); the alias
 * tables choose by family and model, so give a model of that generation. */
static void amd_signature_from_name(const char *name, struct host_pmu *p) {
        unsigned family = 0;

        if (startswith(name, "amd64_k7"))
                family = 0x6;
        else if (startswith(name, "amd64_k8"))
                family = 0xf;
        else if (sscanf(name, "amd64_fam%xh", &family) != 1)
                family = 0;
        p->family = family;
        if (strstr(name, "zen2"))
                p->model = 0x31;
        else if (strstr(name, "zen4"))
                p->model = 0x11;
        else
                p->model = 0x01;
}
#endif

int host_pmu_detect(struct host_pmu *ret) {
        struct host_pmu p = {};
        unsigned max_leaf, max_ext = 0, a, b, c, d;
        char vendor[13] = {};

        assert(ret);

        if (__get_cpuid(0, &max_leaf, &b, &c, &d) == 0) {
                strcpy(p.name, "unknown");
                strcpy(p.description, "CPUID not available");
                *ret = p;
                return 0;
        }
        memcpy(vendor, &b, 4);
        memcpy(vendor + 4, &d, 4);
        memcpy(vendor + 8, &c, 4);
        if (streq(vendor, "GenuineIntel"))
                p.vendor = PMU_VENDOR_INTEL;
        else if (streq(vendor, "AuthenticAMD") || streq(vendor, "HygonGenuine"))
                p.vendor = PMU_VENDOR_AMD;      /* Hygon is a Zen 1 derivative */

        if (max_leaf >= 1) {
                __cpuid(1, a, b, c, d);
                decode_signature(a, &p);
        }
        __cpuid(0x80000000, max_ext, b, c, d);
        if (max_ext < 0x80000000)
                max_ext = 0;

        if (p.vendor == PMU_VENDOR_INTEL)
                detect_intel(max_leaf, &p);
        else if (p.vendor == PMU_VENDOR_AMD)
                detect_amd(max_ext, &p);

        snprintf(p.name, sizeof(p.name), "%s", pmu_vendor_to_string(p.vendor));
        detect_brand(max_ext, p.description, sizeof(p.description));

#if HAVE_LIBPFM
        pfm_pmu_info_t info;
        if (p.vendor != PMU_VENDOR_UNKNOWN && pmu_libpfm_find(NULL, &info) >= 0) {
                snprintf(p.name, sizeof(p.name), "%s", info.name);
                if (!p.description[0])
                        snprintf(p.description, sizeof(p.description), "%s", info.desc);
        }
#endif
        if (!p.description[0])
                snprintf(p.description, sizeof(p.description), "%s", vendor);

        *ret = p;
        return 0;
}

/* The generic models: family 0 tells the catalogue "no particular
 * generation", so only what every part of the vendor agrees on. */
static const struct host_pmu generic_models[] = {
        {
                .vendor = PMU_VENDOR_INTEL,
                .n_fixed = 3,
                .name = "intel",
                .description = "Intel (architectural events only)",
        },
        {
                .vendor = PMU_VENDOR_AMD,
                .n_gp = 4,
                .name = "amd",
                .description = "AMD (events common to all AMD64 parts only)",
        },
};

int host_pmu_from_name(const char *model, struct host_pmu *ret) {
        assert(ret);

        if (!model || !model[0])
                return -ENOENT;

        for (size_t i = 0; i < ELEMENTSOF(generic_models); i++)
                if (streq(model, generic_models[i].name)) {
                        *ret = generic_models[i];
                        return 0;
                }

#if HAVE_LIBPFM
        struct host_pmu p = {};
        pfm_pmu_info_t info;
        int r;

        r = pmu_libpfm_find(model, &info);
        if (r < 0)
                return -ENOENT;

        snprintf(p.name, sizeof(p.name), "%s", info.name);
        snprintf(p.description, sizeof(p.description), "%s", info.desc);
        p.n_gp = info.num_cntrs > 0 ? (unsigned) info.num_cntrs : 0;
        if (startswith(info.name, "amd64")) {
                p.vendor = PMU_VENDOR_AMD;
                amd_signature_from_name(info.name, &p);
        } else {
                /* Every other x86 core PMU libpfm4 knows is Intel's.  An
                 * offline compile assumes the three fixed counters KVM maps
                 * to events, as every part since Core 2 has. */
                p.vendor = PMU_VENDOR_INTEL;
                p.family = 6;
                p.n_fixed = 3;
        }
        *ret = p;
        return 0;
#else
        return -ENOENT;
#endif
}

#if !HAVE_LIBPFM
void pmu_libpfm_release(void) {
}
#endif

const char *pmu_vendor_to_string(enum pmu_vendor v) {
        switch (v) {
        case PMU_VENDOR_INTEL:
                return "intel";
        case PMU_VENDOR_AMD:
                return "amd";
        default:
                return "unknown";
        }
}
