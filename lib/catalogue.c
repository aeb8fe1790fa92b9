/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * catalogue.c — event names -> the raw words KVM filters on: perf's generic
 * aliases per vendor and generation, then (HAVE_LIBPFM) libpfm4's names for
 * the chosen PMU; the reverse for display; the fixed counters' events.
 */
#include <fnmatch.h>
#include <strings.h>

#include "pmu-internal.h"
#include "suggest.h"

/*
 * Which perf event map an alias belongs to.  The tables are the kernel's
 * (arch/x86/events/intel/core.c intel_perfmon_event_map, arch/x86/events/
 * amd/core.c amd_perfmon_event_map, amd_zen1/zen2/zen4_perfmon_event_map);
 * docs/decisions.md "Event catalogue" records the choices.
 */
enum {
        MAP_INTEL       = 1u << 0,      /* architectural, every Intel part */
        MAP_INTEL_V5    = 1u << 1,      /* arch perfmon v5+ (topdown slots) */
        MAP_AMD_ANY     = 1u << 2,      /* --pmu amd: what every AMD map agrees on */
        MAP_AMD_K7      = 1u << 3,      /* K7 .. family 16h */
        MAP_AMD_ZEN1    = 1u << 4,
        MAP_AMD_ZEN2    = 1u << 5,      /* Zen 2 and Zen 3 */
        MAP_AMD_ZEN4    = 1u << 6,      /* Zen 4 and later */
};
#define MAP_AMD_ZEN     (MAP_AMD_ZEN1 | MAP_AMD_ZEN2 | MAP_AMD_ZEN4)
#define MAP_AMD_ALL     (MAP_AMD_ANY | MAP_AMD_K7 | MAP_AMD_ZEN)

struct alias {
        const char *name;
        uint64_t code;
        unsigned maps;
        const char *description;
};

/* Preferred spelling first: the reverse lookup takes the first match. */
static const struct alias aliases[] = {
        { "instructions",            0x00c0, MAP_INTEL | MAP_AMD_ALL, "Instructions retired" },
        { "cycles",                  0x003c, MAP_INTEL,         "Core cycles, not halted" },
        { "cycles",                  0x0076, MAP_AMD_ALL,       "Core cycles, not halted" },
        { "cpu-cycles",              0x003c, MAP_INTEL,         "Core cycles, not halted" },
        { "cpu-cycles",              0x0076, MAP_AMD_ALL,       "Core cycles, not halted" },
        /* perf's pseudo-encoding: what KVM's fixed counter 2 counts */
        { "ref-cycles",              0x0300, MAP_INTEL,         "Reference cycles (fixed counter 2)" },
        { "ref-cycles",         0x100000120, MAP_AMD_ZEN4,      "Cycles not halted, at P0 frequency" },
        { "branches",                0x00c4, MAP_INTEL,         "Branch instructions retired" },
        { "branches",                0x00c2, MAP_AMD_ALL,       "Branch instructions retired" },
        { "branch-instructions",     0x00c4, MAP_INTEL,         "Branch instructions retired" },
        { "branch-instructions",     0x00c2, MAP_AMD_ALL,       "Branch instructions retired" },
        { "branch-misses",           0x00c5, MAP_INTEL,         "Mispredicted branches retired" },
        { "branch-misses",           0x00c3, MAP_AMD_ALL,       "Mispredicted branches retired" },
        { "cache-references",        0x4f2e, MAP_INTEL,         "Last-level cache references" },
        { "cache-references",        0x077d, MAP_AMD_K7,        "L2 cache requests" },
        { "cache-references",        0xff60, MAP_AMD_ZEN,       "L2 cache accesses" },
        { "cache-misses",            0x412e, MAP_INTEL,         "Last-level cache misses" },
        { "cache-misses",            0x077e, MAP_AMD_K7,        "L2 cache misses" },
        { "cache-misses",            0x0964, MAP_AMD_ZEN,       "L2 cache misses" },
        { "bus-cycles",              0x013c, MAP_INTEL,         "Reference cycles on a general-purpose counter" },
        { "stalled-cycles-frontend", 0x00d0, MAP_AMD_K7,        "Decoder empty" },
        { "stalled-cycles-frontend", 0x0287, MAP_AMD_ZEN1,      "Instruction pipe stalls" },
        { "stalled-cycles-frontend", 0x00a9, MAP_AMD_ZEN2 | MAP_AMD_ZEN4, "Micro-op queue empty" },
        { "stalled-cycles-backend",  0x00d1, MAP_AMD_K7,        "Dispatch stalls" },
        { "stalled-cycles-backend",  0x0187, MAP_AMD_ZEN1,      "Dispatch stalls" },
        { "topdown-slots",           0x01a4, MAP_INTEL_V5,      "Topdown slots" },
};

/* Family/model -> perf's choice in amd_pmu_event_map(): Zen 4 or family
 * 1Ah and later, else Zen 2 or family 19h, else Zen 1, else the K7 map.
 * Model ranges are the kernel's X86_FEATURE_ZEN* (arch/x86/kernel/cpu/amd.c). */
static unsigned amd_map(unsigned family, unsigned model) {
        if (family == 0)
                return MAP_AMD_ANY;
        if (family >= 0x1a)
                return MAP_AMD_ZEN4;
        if (family == 0x19)
                return (model >= 0x10 && model <= 0x1f) || (model >= 0x60 && model <= 0xaf) ?
                        MAP_AMD_ZEN4 : MAP_AMD_ZEN2;
        if (family == 0x17 && ((model >= 0x30 && model <= 0x4f) || (model >= 0x60 && model <= 0x7f) ||
                               model == 0x90 || model == 0x91 || (model >= 0xa0 && model <= 0xaf)))
                return MAP_AMD_ZEN2;
        if (family >= 0x17)                     /* Zen 1, and Hygon's family 18h */
                return MAP_AMD_ZEN1;
        return MAP_AMD_K7;
}

static unsigned alias_maps(const struct host_pmu *pmu) {
        switch (pmu->vendor) {
        case PMU_VENDOR_INTEL:
                return MAP_INTEL | (pmu->version >= 5 ? MAP_INTEL_V5 : 0);
        case PMU_VENDOR_AMD:
                return amd_map(pmu->family, pmu->model);
        default:
                return 0;
        }
}

static const struct alias *alias_find(const struct host_pmu *pmu, const char *name) {
        unsigned maps = alias_maps(pmu);

        for (size_t i = 0; i < ELEMENTSOF(aliases); i++)
                if ((aliases[i].maps & maps) && streq(aliases[i].name, name))
                        return &aliases[i];
        return NULL;
}

static const struct alias *alias_find_code(const struct host_pmu *pmu, uint64_t code) {
        unsigned maps = alias_maps(pmu);

        for (size_t i = 0; i < ELEMENTSOF(aliases); i++)
                if ((aliases[i].maps & maps) && aliases[i].code == code)
                        return &aliases[i];
        return NULL;
}

#if HAVE_LIBPFM
/* Event select/control bits of IA32_PERFEVTSELx and AMD's PERF_CTLx.  The
 * filter sees select and umask only; privilege, interrupt and enable bits
 * are the guest's own business; anything else changes what is counted
 * (edge, pin control, any-thread, inv, cmask, in_tx, host/guest only). */
#define EVTSEL_EVENT            UINT64_C(0x00ff)
#define EVTSEL_UMASK            UINT64_C(0xff00)
#define EVTSEL_USR              (UINT64_C(1) << 16)
#define EVTSEL_OS               (UINT64_C(1) << 17)
#define EVTSEL_INT              (UINT64_C(1) << 20)
#define EVTSEL_ENABLE           (UINT64_C(1) << 22)
#define AMD_EVTSEL_EVENT_HI     (UINT64_C(0xf) << 32)

static int raw_to_code(enum pmu_vendor vendor, uint64_t raw, uint64_t *ret_code) {
        uint64_t keep = EVTSEL_EVENT | EVTSEL_UMASK;

        if (vendor == PMU_VENDOR_AMD)
                keep |= AMD_EVTSEL_EVENT_HI;
        if (raw & ~(keep | EVTSEL_USR | EVTSEL_OS | EVTSEL_INT | EVTSEL_ENABLE))
                return -EINVAL;
        *ret_code = raw & keep;
        return 0;
}

static int libpfm_resolve(const struct host_pmu *pmu, const char *name, uint64_t *ret_code) {
        _cleanup_free_ char *qualified = NULL;
        _cleanup_free_ uint64_t *codes = NULL;
        pfm_pmu_encode_arg_t arg = { .size = sizeof(arg) };
        const char *sep;
        int r;

        r = pmu_libpfm_init();
        if (r < 0)
                return -ENOENT;

        /* Restrict the search to the chosen PMU: unqualified, libpfm4 would
         * search every PMU of the host, and a name qualified with another
         * PMU is not this PMU's event. */
        sep = strstr(name, "::");
        if (sep) {
                if ((size_t) (sep - name) != strlen(pmu->name) ||
                    strncasecmp(name, pmu->name, sep - name) != 0)
                        return -ENOENT;
                qualified = strdup(name);
        } else if (asprintf(&qualified, "%s::%s", pmu->name, name) < 0)
                qualified = NULL;
        if (!qualified)
                return -ENOMEM;

        r = sym_pfm_get_os_event_encoding(qualified, PFM_PLM0 | PFM_PLM3, PFM_OS_NONE, &arg);
        codes = arg.codes;
        switch (r) {
        case PFM_SUCCESS:
                break;
        case PFM_ERR_NOTFOUND:          /* no such event */
        case PFM_ERR_ATTR:              /* no such unit mask or modifier */
                return -ENOENT;
        case PFM_ERR_NOMEM:
                return -ENOMEM;
        default:                        /* malformed, conflicting umasks, ... */
                return -EINVAL;
        }
        /* A second word is an extra MSR (offcore response, load latency):
         * the filter would allow every value of it. */
        if (arg.count != 1)
                return -EINVAL;
        return raw_to_code(pmu->vendor, codes[0], ret_code);
}

static int emit_libpfm_event(const struct host_pmu *pmu, const char *name, const char *description,
                             const char *glob,
                             int (*f)(const struct event_info *e, void *userdata), void *userdata) {
        struct event_info e = { .name = name, .description = description };

        if (glob && fnmatch(glob, name, FNM_CASEFOLD) != 0)
                return 0;
        /* Names the filter cannot use are not worth listing. */
        if (libpfm_resolve(pmu, name, &e.code) < 0)
                return 0;
        return f(&e, userdata);
}

static int libpfm_foreach(const struct host_pmu *pmu, const char *glob,
                          int (*f)(const struct event_info *e, void *userdata), void *userdata) {
        pfm_pmu_info_t pinfo;
        int r;

        if (pmu_libpfm_find(pmu->name, &pinfo) < 0)
                return 0;

        for (int i = pinfo.first_event; i >= 0; i = sym_pfm_get_event_next(i)) {
                pfm_event_info_t info = { .size = sizeof(info) };
                unsigned n_umasks = 0;
                char name[256];

                if (sym_pfm_get_event_info(i, PFM_OS_NONE, &info) != PFM_SUCCESS)
                        continue;
                if (info.equiv)                 /* another name for a listed event */
                        continue;

                for (int a = 0; a < info.nattrs; a++) {
                        pfm_event_attr_info_t attr = { .size = sizeof(attr) };

                        if (sym_pfm_get_event_attr_info(i, a, PFM_OS_NONE, &attr) != PFM_SUCCESS ||
                            attr.type != PFM_ATTR_UMASK)
                                continue;
                        n_umasks++;
                        snprintf(name, sizeof(name), "%s:%s", info.name, attr.name);
                        r = emit_libpfm_event(pmu, name, attr.desc ?: info.desc, glob, f, userdata);
                        if (r != 0)
                                return r;
                }
                if (n_umasks == 0) {
                        r = emit_libpfm_event(pmu, info.name, info.desc, glob, f, userdata);
                        if (r != 0)
                                return r;
                }
        }
        return 0;
}

/* Names found by the reverse lookup, our own copies kept for the process's
 * life so the returned pointer stays valid (past pmu_libpfm_release() too);
 * misses are remembered too (name NULL), since a lookup walks the whole PMU. */
struct name_cache_entry {
        char pmu[64];
        uint64_t code;
        char *name;
};
static struct name_cache_entry *name_cache;
static size_t name_cache_n, name_cache_allocated;

static __attribute__((destructor)) void name_cache_free(void) {
        for (size_t i = 0; i < name_cache_n; i++)
                free(name_cache[i].name);
        free(name_cache);
        name_cache = NULL;
        name_cache_n = name_cache_allocated = 0;
}

struct code_search {
        uint64_t code;
        char *name;
};

static int match_code(const struct event_info *e, void *userdata) {
        struct code_search *s = userdata;

        if (e->code != s->code)
                return 0;
        s->name = strdup(e->name);
        return 1;
}

static const char *libpfm_name_for_code(const struct host_pmu *pmu, uint64_t code) {
        struct code_search s = { .code = code };
        struct name_cache_entry *e;

        for (size_t i = 0; i < name_cache_n; i++)
                if (name_cache[i].code == code && streq(name_cache[i].pmu, pmu->name))
                        return name_cache[i].name;

        /* Without the library nothing is known, but it may be there later:
         * not a miss to remember. */
        if (pmu_libpfm_init() < 0)
                return NULL;
        (void) libpfm_foreach(pmu, NULL, match_code, &s);
        if (!GREEDY_REALLOC(name_cache, name_cache_allocated, name_cache_n + 1)) {
                free(s.name);
                return NULL;
        }
        e = &name_cache[name_cache_n++];
        snprintf(e->pmu, sizeof(e->pmu), "%s", pmu->name);
        e->code = code;
        e->name = s.name;
        return e->name;
}
#endif

int event_resolve(const struct host_pmu *pmu, const char *name, uint64_t *ret_code) {
        const struct alias *a;

        assert(pmu);
        assert(ret_code);

        if (!name || !name[0])
                return -EINVAL;

        a = alias_find(pmu, name);
        if (a) {
                *ret_code = a->code;
                return 0;
        }
#if HAVE_LIBPFM
        if (pmu->vendor != PMU_VENDOR_UNKNOWN && !host_pmu_is_generic(pmu))
                return libpfm_resolve(pmu, name, ret_code);
#endif
        return -ENOENT;
}

const char *event_name_for_code(const struct host_pmu *pmu, uint64_t code) {
        const struct alias *a;

        assert(pmu);

        a = alias_find_code(pmu, code);
        if (a)
                return a->name;
#if HAVE_LIBPFM
        if (pmu->vendor != PMU_VENDOR_UNKNOWN && !host_pmu_is_generic(pmu))
                return libpfm_name_for_code(pmu, code);
#endif
        return NULL;
}

unsigned fixed_counter_count(const struct host_pmu *pmu) {
        assert(pmu);

        /* KVM maps three fixed counters to events (intel_get_fixed_pmc_eventsel());
         * AMD has none. */
        if (pmu->vendor != PMU_VENDOR_INTEL)
                return 0;
        return pmu->n_fixed < 3 ? pmu->n_fixed : 3;
}

int fixed_counter_event(const struct host_pmu *pmu, unsigned idx, uint64_t *ret_code) {
        static const uint64_t codes[3] = {
                0x00c0,         /* instructions */
                0x003c,         /* cycles */
                0x0300,         /* ref-cycles, perf's pseudo-encoding */
        };

        assert(pmu);
        assert(ret_code);

        if (idx >= fixed_counter_count(pmu))
                return -ENOENT;
        *ret_code = codes[idx];
        return 0;
}

int event_foreach(const struct host_pmu *pmu, const char *glob,
                  int (*f)(const struct event_info *e, void *userdata), void *userdata) {
        unsigned maps;
        int r;

        assert(pmu);
        assert(f);

        maps = alias_maps(pmu);
        for (size_t i = 0; i < ELEMENTSOF(aliases); i++) {
                const struct alias *a = &aliases[i];
                struct event_info e = {
                        .name = a->name,
                        .code = a->code,
                        .description = a->description,
                        .generic = true,
                };

                if (!(a->maps & maps))
                        continue;
                if (glob && fnmatch(glob, a->name, FNM_CASEFOLD) != 0)
                        continue;
                r = f(&e, userdata);
                if (r != 0)
                        return r;
        }
#if HAVE_LIBPFM
        if (pmu->vendor != PMU_VENDOR_UNKNOWN && !host_pmu_is_generic(pmu))
                return libpfm_foreach(pmu, glob, f, userdata);
#endif
        return 0;
}

/* "Did you mean": the names close to a misspelt one, best first. */
struct candidates {
        const char *typed;              /* without a "PMU::" prefix */
        struct candidate {
                char *name;
                unsigned distance;
                size_t order;
        } *v;
        size_t n, allocated;
};

static int candidate_offer(struct candidates *c, const char *name, bool ignore_case) {
        unsigned distance = suggest_distance(c->typed, name, ignore_case, SUGGEST_MAX_DISTANCE);
        char *copy;

        if (!suggest_close(c->typed, distance))
                return 0;
        copy = strdup(name);
        if (!copy || !GREEDY_REALLOC(c->v, c->allocated, c->n + 1)) {
                free(copy);
                return -ENOMEM;
        }
        c->v[c->n] = (struct candidate) { .name = copy, .distance = distance, .order = c->n };
        c->n++;
        return 0;
}

static int candidate_compare(const void *a, const void *b) {
        const struct candidate *x = a, *y = b;

        if (x->distance != y->distance)
                return x->distance < y->distance ? -1 : 1;
        return (x->order > y->order) - (x->order < y->order);
}

#if HAVE_LIBPFM
/* libpfm4's names for this PMU, as event_resolve() takes them: each event,
 * and EVENT:UMASK for each of its unit masks; libpfm4 ignores case. */
static int libpfm_candidates(const struct host_pmu *pmu, struct candidates *c) {
        pfm_pmu_info_t pinfo;
        char name[256];
        int r;

        if (pmu_libpfm_find(pmu->name, &pinfo) < 0)
                return 0;
        for (int i = pinfo.first_event; i >= 0; i = sym_pfm_get_event_next(i)) {
                pfm_event_info_t info = { .size = sizeof(info) };

                if (sym_pfm_get_event_info(i, PFM_OS_NONE, &info) != PFM_SUCCESS || info.equiv)
                        continue;
                r = candidate_offer(c, info.name, true);
                if (r < 0)
                        return r;
                for (int a = 0; a < info.nattrs; a++) {
                        pfm_event_attr_info_t attr = { .size = sizeof(attr) };

                        if (sym_pfm_get_event_attr_info(i, a, PFM_OS_NONE, &attr) != PFM_SUCCESS ||
                            attr.type != PFM_ATTR_UMASK)
                                continue;
                        snprintf(name, sizeof(name), "%s:%s", info.name, attr.name);
                        r = candidate_offer(c, name, true);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}
#endif

int event_suggest(const struct host_pmu *pmu, const char *name, char **ret) {
        struct candidates c = {};
        unsigned maps;
        const char *sep;
        int r = 0;

        assert(pmu);
        assert(name);
        assert(ret);

        *ret = NULL;
        /* "skx::INST_RETIRD": the event part is what may be misspelt */
        sep = strstr(name, "::");
        c.typed = sep ? sep + 2 : name;

        maps = alias_maps(pmu);
        for (size_t i = 0; i < ELEMENTSOF(aliases) && r >= 0; i++)
                if (aliases[i].maps & maps)
                        r = candidate_offer(&c, aliases[i].name, false);
#if HAVE_LIBPFM
        if (r >= 0 && pmu->vendor != PMU_VENDOR_UNKNOWN && !host_pmu_is_generic(pmu) && pmu_libpfm_init() >= 0)
                r = libpfm_candidates(pmu, &c);
#endif
        if (r >= 0 && c.n > 0)
                qsort(c.v, c.n, sizeof(c.v[0]), candidate_compare);

        /* The closest that resolves: never offer a name that fails too. */
        for (size_t i = 0; r >= 0 && i < c.n && !*ret; i++) {
                _cleanup_free_ char *full = NULL;
                uint64_t code;

                if (sep && asprintf(&full, "%.*s%s", (int) (c.typed - name), name, c.v[i].name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (event_resolve(pmu, full ?: c.v[i].name, &code) == 0) {
                        *ret = full ? TAKE_PTR(full) : TAKE_PTR(c.v[i].name);
                        if (!*ret)
                                r = -ENOMEM;
                }
        }
        for (size_t i = 0; i < c.n; i++)
                free(c.v[i].name);
        free(c.v);
        return r < 0 ? r : 0;
}
