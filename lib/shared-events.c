/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shared-events.c — the table of core-PMU events that observe resources a
 * tenant shares with others (the leak lint's, lint-shared.c), per vendor.
 *
 * Only events a guest can count with its own vPMU belong here: Intel's
 * uncore PMUs and AMD's L3 and data-fabric PMUs are separate PMUs that KVM
 * does not give guests.  What the core PMU shows of the shared parts is the
 * core's own traffic into them: its last-level cache hits and misses, the
 * off-core responses to its requests, how long it waited on memory, and
 * which cache or memory served its loads.  Each of those depends on what
 * the other tenants do with the same cache and memory, which is what makes
 * them a channel.
 *
 * Sources: Intel SDM Vol. 3B, "Pre-defined Architectural Performance
 * Events" (LONGEST_LAT_CACHE) and the per-generation event lists of the
 * SDM as libpfm4 4.13 carries them (its lib/events/intel_*_events.h:
 * names, selects, unit masks, and which generations have them); AMD's
 * Processor Programming Reference (PPR) for families 17h and 19h, as
 * libpfm4's amd64_fam17h_zen2 / fam19h_zen3 / fam19h_zen4 tables and
 * Linux perf's pmu-events (arch/x86/amdzen1..4) name them.  Every entry
 * below was checked against those tables (`pmufilterctl events --pmu
 * MODEL` lists the libpfm4 names); an event whose meaning differs between
 * generations is limited to those where the source says so, rather than
 * guessed for the rest.
 *
 * Not here: events that only the sibling hyper-thread shares (L1, L2, the
 * super queue: core scheduling's business, see conf/examples/
 * denylist-trusted.yaml), and AMD's `cache-references`/`cache-misses`,
 * which on Zen count the core's own L2 (PMCx060, PMCx064), not the L3.
 */
#include <strings.h>

#include "pmu-internal.h"
#include "shared-events.h"

/* Intel generations by libpfm4 PMU name, which is what `--pmu` takes and
 * what host_pmu.name holds where libpfm4 detected the host. */
#define INTEL_NHM_ICX   "nhm nhm_ex wsm wsm_dp snb snb_ep ivb ivb_ep hsw hsw_ep bdw bdw_ep skl skx clx icl icx"
#define INTEL_SNB_SPR   "snb snb_ep ivb ivb_ep hsw hsw_ep bdw bdw_ep skl skx clx icl icx spr"
#define INTEL_SKL_SPR   "skl skx clx icl icx spr"
#define INTEL_SKL_ICX   "skl skx clx icl icx"
#define INTEL_ATOM_OCR  "slm glm tmt knl knm"

/* Every Intel core PMU libpfm4 4.13 knows.  A PMU outside this list (the
 * vendor-only `intel`, libpfm4's architectural `ix86arch` for a model it
 * does not know, a later generation) is of unknown generation: there every
 * entry applies, since the same word is that event on some Intel part and
 * the policy may meet such a part. */
#define INTEL_KNOWN     INTEL_NHM_ICX " spr atom core glm knc knl knm netburst netburst_p slm tmt"

#define ZEN             0x17    /* family 17h, Zen 1 and 2; Hygon's 18h is a Zen 1 */
#define ZEN3            0x19

static const struct shared_event table[] = {
        /* SDM Vol. 3B, pre-defined architectural events: "LLC Misses"
         * (0x412e) and "LLC Reference" (0x4f2e), on every Intel part with
         * architectural perfmon; perf's cache-misses and cache-references. */
        { PMU_VENDOR_INTEL, NULL, 0, 0x2e, 0xff, 0x41, 0, SHARED_LLC, "LONGEST_LAT_CACHE.MISS" },
        { PMU_VENDOR_INTEL, NULL, 0, 0x2e, 0xff, 0x4f, 0, SHARED_LLC, "LONGEST_LAT_CACHE.REFERENCE" },
        /* The other unit masks of the select count the same cache (Core 2
         * and the Atoms: L2_RQSTS, their last level; KNL: L2_REQUESTS). */
        { PMU_VENDOR_INTEL, NULL, 0, 0x2e, 0x00, 0x00, 0, SHARED_LLC, "LONGEST_LAT_CACHE.*" },

        /* OFFCORE_RESPONSE_0 (0xb7, umask 0x01) from Nehalem, and
         * OFFCORE_RESPONSE_1 (0xbb) from Westmere; the Atoms and Xeon Phi
         * have both at 0xb7 (umask 0x01 and 0x02); Sapphire Rapids moved
         * them to OCR, 0x2a and 0x2b.  What is counted is chosen in
         * MSR_OFFCORE_RSP_x, which the filter never sees: every unit mask
         * of the select is the event. */
        { PMU_VENDOR_INTEL, INTEL_ATOM_OCR, 0, 0xb7, 0xff, 0x02, 0, SHARED_OFFCORE, "OFFCORE_RESPONSE_1" },
        { PMU_VENDOR_INTEL, INTEL_NHM_ICX " " INTEL_ATOM_OCR, 0, 0xb7, 0x00, 0x00, 0, SHARED_OFFCORE,
          "OFFCORE_RESPONSE_0" },
        { PMU_VENDOR_INTEL, "wsm wsm_dp snb snb_ep ivb ivb_ep hsw hsw_ep bdw bdw_ep skl skx clx icl icx",
          0, 0xbb, 0x00, 0x00, 0, SHARED_OFFCORE, "OFFCORE_RESPONSE_1" },
        { PMU_VENDOR_INTEL, "spr", 0, 0x2a, 0x00, 0x00, 0, SHARED_OFFCORE, "OCR.* (OFFCORE_RESPONSE_0)" },
        { PMU_VENDOR_INTEL, "spr", 0, 0x2b, 0x00, 0x00, 0, SHARED_OFFCORE, "OCR.* (OFFCORE_RESPONSE_1)" },

        /* MEM_LOAD_RETIRED.L3_HIT (umask bit 2) and .L3_MISS (bit 5), from
         * Sandy Bridge (MEM_LOAD_UOPS_RETIRED.LLC_HIT/LLC_MISS there, and
         * .L3_HIT/.L3_MISS to Broadwell); in any combination with the other
         * bits, since a guest may OR unit masks together.  Tremont has
         * L3_HIT; Sandy Bridge client has no L3_MISS. */
        { PMU_VENDOR_INTEL, INTEL_SNB_SPR " tmt", 0, 0xd1, 0x00, 0x00, 0x04, SHARED_LLC,
          "MEM_LOAD_RETIRED.L3_HIT" },
        { PMU_VENDOR_INTEL, "snb_ep ivb ivb_ep hsw hsw_ep bdw bdw_ep skl skx clx icl icx spr", 0,
          0xd1, 0x00, 0x00, 0x20, SHARED_MEMORY, "MEM_LOAD_RETIRED.L3_MISS" },
        /* MEM_LOAD_L3_HIT_RETIRED.XSNP_* (0xd2; MEM_LOAD_UOPS_LLC_HIT_RETIRED
         * before Haswell): an L3 hit, and whether another core's cache held
         * the line.  MEM_LOAD_L3_MISS_RETIRED.* (0xd3; ..._LLC_MISS_...):
         * local DRAM, remote DRAM, a remote socket's cache. */
        { PMU_VENDOR_INTEL, INTEL_SNB_SPR, 0, 0xd2, 0x00, 0x00, 0, SHARED_FILL_SOURCE,
          "MEM_LOAD_L3_HIT_RETIRED.*" },
        { PMU_VENDOR_INTEL, INTEL_SNB_SPR, 0, 0xd3, 0x00, 0x00, 0, SHARED_FILL_SOURCE,
          "MEM_LOAD_L3_MISS_RETIRED.*" },
        /* CYCLE_ACTIVITY.CYCLES_L3_MISS (umask 0x02) and .STALLS_L3_MISS
         * (0x06), from Skylake: cycles waiting on memory.  They need a
         * counter mask, which the filter does not see, so every unit mask
         * with bit 1 is the event.  (Before Skylake bit 1 is
         * CYCLES_LDM_PENDING, any load in flight: not here.) */
        { PMU_VENDOR_INTEL, INTEL_SKL_SPR, 0, 0xa3, 0x00, 0x00, 0x02, SHARED_MEMORY,
          "CYCLE_ACTIVITY.STALLS_L3_MISS" },
        /* OFFCORE_REQUESTS.L3_MISS_DEMAND_DATA_RD (0xb0, umask 0x10) and
         * OFFCORE_REQUESTS_OUTSTANDING.L3_MISS_DEMAND_DATA_RD (0x60, 0x10),
         * Skylake to Ice Lake. */
        { PMU_VENDOR_INTEL, INTEL_SKL_ICX, 0, 0xb0, 0x00, 0x00, 0x10, SHARED_LLC,
          "OFFCORE_REQUESTS.L3_MISS_DEMAND_DATA_RD" },
        { PMU_VENDOR_INTEL, INTEL_SKL_ICX, 0, 0x60, 0x00, 0x00, 0x10, SHARED_MEMORY,
          "OFFCORE_REQUESTS_OUTSTANDING.L3_MISS_DEMAND_DATA_RD" },

        /* AMD Zen, PPR: data-cache fills by data source.  PMCx043
         * LsDmndFillsFromSys (demand; LsRefillsFromSys on Zen 1 and 2),
         * PMCx044 LsAnyFillsFromSys (any, from Zen 3), PMCx059 LsSwPfDcFills
         * (software prefetch), PMCx05A LsHwPfDcFills (hardware prefetch).
         * Unit mask bit 0 is the core's own L2 (LclL2); every other bit is
         * a source shared with other cores: the CCX's L3 and its other L2s,
         * another CCX, local or remote DRAM and I/O. */
        { PMU_VENDOR_AMD, NULL, ZEN, 0x043, 0x00, 0x00, 0xfe, SHARED_FILL_SOURCE, "LsDmndFillsFromSys" },
        { PMU_VENDOR_AMD, NULL, ZEN3, 0x044, 0x00, 0x00, 0xfe, SHARED_FILL_SOURCE, "LsAnyFillsFromSys" },
        { PMU_VENDOR_AMD, NULL, ZEN, 0x059, 0x00, 0x00, 0xfe, SHARED_FILL_SOURCE, "LsSwPfDcFills" },
        { PMU_VENDOR_AMD, NULL, ZEN, 0x05a, 0x00, 0x00, 0xfe, SHARED_FILL_SOURCE, "LsHwPfDcFills" },
        /* PMCx071 L2PfHitL3 and PMCx072 L2PfMissL2L3: L2 prefetches that hit,
         * or missed, the L3 the CCX shares. */
        { PMU_VENDOR_AMD, NULL, ZEN, 0x071, 0x00, 0x00, 0, SHARED_LLC, "L2PfHitL3" },
        { PMU_VENDOR_AMD, NULL, ZEN, 0x072, 0x00, 0x00, 0, SHARED_LLC, "L2PfMissL2L3" },
};

/* Whether word is one of the space-separated words of list. */
static bool word_in(const char *list, const char *word) {
        size_t l = strlen(word);

        for (const char *p = list; *p;) {
                size_t n = strcspn(p, " ");

                if (n == l && strncasecmp(p, word, l) == 0)
                        return true;
                p += n;
                p += strspn(p, " ");
        }
        return false;
}

static bool entry_applies(const struct shared_event *e, const struct host_pmu *pmu) {
        if (e->vendor != pmu->vendor)
                return false;
        switch (pmu->vendor) {
        case PMU_VENDOR_INTEL:
                return !e->pmus || !word_in(INTEL_KNOWN, pmu->name) || word_in(e->pmus, pmu->name);
        case PMU_VENDOR_AMD:
                /* Family 0: the vendor-only `amd`, which may meet a Zen. */
                return pmu->family == 0 || pmu->family >= e->min_family;
        default:
                return false;
        }
}

static bool entry_covers(const struct shared_event *e, uint16_t select, uint8_t umask) {
        return e->select == select && (umask & e->mask) == e->match && (!e->any_of || (umask & e->any_of));
}

const struct shared_event *shared_event_lookup(const struct host_pmu *pmu, uint16_t select, uint8_t umask) {
        assert(pmu);

        /* The cheap test first: the PMU's only by name on Intel. */
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (entry_covers(&table[i], select, umask) && entry_applies(&table[i], pmu))
                        return &table[i];
        return NULL;
}

size_t shared_event_index(const struct shared_event *e) {
        assert(e >= table && e < table + ELEMENTSOF(table));
        return (size_t) (e - table);
}

bool shared_event_select_known(const struct host_pmu *pmu, uint16_t select) {
        assert(pmu);

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].select == select && entry_applies(&table[i], pmu))
                        return true;
        return false;
}

const char *shared_resource_to_string(enum shared_resource r) {
        static const char *const names[_SHARED_RESOURCE_MAX] = {
                [SHARED_LLC] = "the last-level cache",
                [SHARED_OFFCORE] = "the uncore's off-core responses",
                [SHARED_MEMORY] = "the memory controllers",
                [SHARED_FILL_SOURCE] = "the caches and memory that served its loads",
        };

        return r >= 0 && r < _SHARED_RESOURCE_MAX ? names[r] : "a shared resource";
}
