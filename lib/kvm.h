/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kvm.h — what the host's KVM supports, learnt from the kernel itself, and
 * the few VM ioctls the project issues (the probe, tests); those the client
 * library issues too are in kvm-vm.h.
 */
#pragma once

#include <stdint.h>

#include "kvm-vm.h"
#include "util.h"

struct kvm_support {
        int open_error;                 /* 0, or -errno opening /dev/kvm */
        bool filter;                    /* KVM_CAP_PMU_EVENT_FILTER (173) */
        bool masked;                    /* KVM_CAP_PMU_EVENT_MASKED_EVENTS (226) */
        int pmu_capability;             /* KVM_CAP_PMU_CAPABILITY (212) value; 0: not offered */
        bool enable_pmu;                /* /sys/module/kvm/parameters/enable_pmu */
        bool enable_pmu_read;           /* that parameter exists and was read (Linux
                                         * 5.17+); false: enable_pmu means nothing */
        int mediated_pmu;               /* /sys/module/kvm/parameters/enable_mediated_pmu
                                         * (Linux 6.19+: the vPMU passes the hardware
                                         * counters through): 1 Y, 0 N, -1 no such
                                         * parameter */
        unsigned max_events;            /* largest nevents the kernel accepts (probed) */
        bool narrow_select;             /* KVM compares event-select bits 7:0 only, even
                                         * on an AMD CPU (kvm_intel; kvm_pvm on AMD):
                                         * a masked entry using bits 35:32 gets EINVAL,
                                         * a plain one is dropped silently.  false:
                                         * not probed, the PMU vendor decides. */
};

/*
 * Does this host give guests no vPMU at all (kvm.enable_pmu=N, as read by
 * the probe)?  Then KVM has no vPMU to disable per VM: it reports
 * KVM_CAP_PMU_CAPABILITY as 0 and refuses KVM_ENABLE_CAP of it (EINVAL),
 * while a `pmu: off` VM has no PMU exactly as asked, so its VMM's failure
 * to disable one is no error of that VM.  False where it is not known: no
 * probe (k NULL, /dev/kvm not opened) or no such parameter (before Linux
 * 5.17, where the vPMU is on and a refusal means the fallback filter is in
 * force).
 */
static inline bool kvm_vpmu_off_hostwide(const struct kvm_support *k) {
        return k && k->open_error == 0 && k->enable_pmu_read && !k->enable_pmu;
}

/* The kernel's limit today; used when /dev/kvm cannot be probed. */
#define KVM_PMU_FILTER_MAX_EVENTS_DEFAULT 300u

/* Probe /dev/kvm: KVM_CHECK_EXTENSION for the caps, and the entry limit by
 * asking a scratch VM (binary search on E2BIG).  Never fails: without
 * /dev/kvm, open_error is set and the rest describes "nothing supported"
 * with max_events = the default. */
int kvm_support_probe(struct kvm_support *ret);

/* Describe what the probe found, for status and `pmufilterctl status`. */
const char *kvm_support_summary(const struct kvm_support *k, char *buf, size_t size);

/* Create a VM: returns the VM fd or -errno.  Opens /dev/kvm itself if kvm_fd < 0. */
int kvm_create_vm(int kvm_fd);

/* KVM_SET_PMU_EVENT_FILTER with the given fields.  0 or -errno. */
int kvm_set_pmu_event_filter(int vm_fd, uint32_t action, uint32_t flags,
                             uint32_t fixed_counter_bitmap,
                             const uint64_t *events, uint32_t nevents);

