/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kvm.c — what this host's KVM supports, asked of the kernel itself
 * (capabilities, the module's enable_pmu, and the filter's entry limit by
 * trying a scratch VM), and the VM ioctls the project issues.
 */
#include <fcntl.h>
#include <sys/ioctl.h>

#include "kvm-compat.h"
#include "kvm.h"
#include "pmu.h"

/* Far beyond any policy; stops the search should a kernel have no limit. */
#define MAX_EVENTS_SEARCH_CAP 65536u

static int open_kvm(void) {
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

        return fd < 0 ? -errno : fd;
}

int kvm_create_vm(int kvm_fd) {
        _cleanup_close_ int own_fd = -1;
        int vm_fd;

        if (kvm_fd < 0) {
                own_fd = open_kvm();
                if (own_fd < 0)
                        return own_fd;
                kvm_fd = own_fd;
        }
        do
                vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
        while (vm_fd < 0 && errno == EINTR);
        return vm_fd < 0 ? -errno : vm_fd;
}

int kvm_set_pmu_event_filter(int vm_fd, uint32_t action, uint32_t flags,
                             uint32_t fixed_counter_bitmap,
                             const uint64_t *events, uint32_t nevents) {
        _cleanup_free_ struct kvm_pmu_event_filter *f = NULL;

        /* calloc: the kernel ignores pad[] today, but zero is the only value
         * that stays right should it start checking. */
        f = calloc(1, sizeof(*f) + (size_t) nevents * sizeof(f->events[0]));
        if (!f)
                return -ENOMEM;
        f->action = action;
        f->flags = flags;
        f->fixed_counter_bitmap = fixed_counter_bitmap;
        f->nevents = nevents;
        if (nevents > 0)
                memcpy(f->events, events, (size_t) nevents * sizeof(f->events[0]));

        if (ioctl(vm_fd, KVM_SET_PMU_EVENT_FILTER, f) < 0)
                return -errno;
        return 0;
}

static int check_extension(int kvm_fd, long cap) {
        int r = ioctl(kvm_fd, KVM_CHECK_EXTENSION, cap);

        return r < 0 ? 0 : r;
}

/* 1 or 0, or -errno where the parameter cannot be read (before Linux 5.17
 * there is none, and the vPMU is on). */
/* A boolean parameter of module kvm: 1 Y, 0 N, -errno (-ENOENT: this
 * kernel has no such parameter). */
static int read_kvm_param(const char *name) {
        char path[128];
        _cleanup_fclose_ FILE *f = NULL;
        char buf[8] = {};

        snprintf(path, sizeof path, "/sys/module/kvm/parameters/%s", name);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        if (!fgets(buf, sizeof(buf), f))
                return -EIO;
        return buf[0] == 'Y' || buf[0] == 'y' || buf[0] == '1';
}

/* 1: the kernel accepted n entries, 0: E2BIG, <0: it failed otherwise. */
static int try_nevents(int vm_fd, uint32_t n) {
        _cleanup_free_ uint64_t *events = NULL;
        int r;

        events = malloc((size_t) n * sizeof(events[0]));
        if (!events)
                return -ENOMEM;
        for (uint32_t i = 0; i < n; i++)
                events[i] = event_code(0xc0, 0x00);     /* instructions */

        r = kvm_set_pmu_event_filter(vm_fd, KVM_PMU_EVENT_ALLOW, 0, 0, events, n);
        if (r == -E2BIG)
                return 0;
        return r < 0 ? r : 1;
}

/*
 * kvm_vm_ioctl_set_pmu_event_filter() checks action, then flags, then
 * nevents against KVM_PMU_EVENT_FILTER_MAX_EVENTS (E2BIG) before it copies
 * anything, so a valid allowlist of one harmless event repeated is accepted
 * up to the limit.  The limit has been 300 since 5.3: try that first (two
 * calls), search only if the kernel disagrees.
 */
static int probe_step(int vm_fd, unsigned n, unsigned *good, unsigned *bad) {
        int r = try_nevents(vm_fd, n);

        if (r < 0)
                return r;
        if (r > 0)
                *good = n;
        else
                *bad = n;
        return 0;
}

static int probe_max_events(int vm_fd, unsigned *ret) {
        unsigned good = 0, bad = 0;             /* accepted, and E2BIG; 0 = unknown */
        int r;

        r = probe_step(vm_fd, KVM_PMU_FILTER_MAX_EVENTS_DEFAULT, &good, &bad);
        if (r < 0)
                return r;

        /* Find a size the kernel refuses, doubling from the default. */
        for (unsigned n = KVM_PMU_FILTER_MAX_EVENTS_DEFAULT + 1; bad == 0; n *= 2) {
                if (n > MAX_EVENTS_SEARCH_CAP) {
                        *ret = good;
                        return 0;
                }
                r = probe_step(vm_fd, n, &good, &bad);
                if (r < 0)
                        return r;
        }

        while (bad - good > 1) {
                r = probe_step(vm_fd, good + (bad - good) / 2, &good, &bad);
                if (r < 0)
                        return r;
        }
        *ret = good;
        return 0;
}

int kvm_support_probe(struct kvm_support *ret) {
        struct kvm_support k = {
                .max_events = KVM_PMU_FILTER_MAX_EVENTS_DEFAULT,
        };
        _cleanup_close_ int kvm_fd = -1, vm_fd = -1;
        unsigned max;
        int r;

        assert(ret);

        kvm_fd = open_kvm();
        if (kvm_fd < 0) {
                k.open_error = kvm_fd;
                *ret = k;
                return 0;
        }

        r = read_kvm_param("enable_pmu");
        k.enable_pmu = r > 0;
        k.enable_pmu_read = r >= 0;
        r = read_kvm_param("enable_mediated_pmu");
        k.mediated_pmu = r >= 0 ? r : -1;
        k.filter = check_extension(kvm_fd, KVM_CAP_PMU_EVENT_FILTER) > 0;
        k.masked = check_extension(kvm_fd, KVM_CAP_PMU_EVENT_MASKED_EVENTS) > 0;
        k.pmu_capability = check_extension(kvm_fd, KVM_CAP_PMU_CAPABILITY);

        /* Without the filter there is no limit to learn; if the scratch VM
         * or the search fails, the default stands. */
        if (k.filter) {
                vm_fd = kvm_create_vm(kvm_fd);
                if (vm_fd >= 0 && probe_max_events(vm_fd, &max) >= 0)
                        k.max_events = max;
                /* Does this KVM compare event-select bits 35:32 (AMD's extended
                 * selects)?  kvm_amd does; kvm_intel, and other modules even on
                 * an AMD CPU, refuse a masked entry that uses them.  Only the
                 * masked form tells: a plain entry is silently dropped. */
                if (vm_fd >= 0 && k.masked) {
                        uint64_t w = KVM_PMU_ENCODE_MASKED_ENTRY(0x1c0ULL, 0ULL, 0ULL, 0);

                        k.narrow_select = kvm_set_pmu_event_filter(vm_fd, KVM_PMU_EVENT_ALLOW,
                                                                   KVM_PMU_EVENT_FLAG_MASKED_EVENTS, 0,
                                                                   &w, 1) == -EINVAL;
                }
        }

        *ret = k;
        return 0;
}

const char *kvm_support_summary(const struct kvm_support *k, char *buf, size_t size) {
        assert(k);
        assert(buf);

        if (k->open_error < 0)
                snprintf(buf, size, "/dev/kvm: %s; no PMU event filter", strerror(-k->open_error));
        else if (!k->filter)
                snprintf(buf, size, "KVM has no PMU event filter (KVM_CAP_PMU_EVENT_FILTER)");
        else
                snprintf(buf, size,
                         "PMU event filter up to %u events, masked events %s, event select %s, "
                         "vPMU %s (kvm.enable_pmu=%s%s), per-VM vPMU disable %s, mediated vPMU %s",
                         k->max_events,
                         k->masked ? "yes" : "no",
                         k->narrow_select ? "bits 7:0 only" : "bits 11:0",
                         !k->enable_pmu_read || k->enable_pmu ? "on" : "off",
                         !k->enable_pmu_read ? "unset" : k->enable_pmu ? "Y" : "N",
                         !k->enable_pmu_read ? ", before Linux 5.17" : "",
                         k->pmu_capability & KVM_PMU_CAP_DISABLE ? "yes (KVM_CAP_PMU_CAPABILITY)" : "no",
                         k->mediated_pmu < 0 ? "not in this kernel"
                                 : k->mediated_pmu ? "on (kvm.enable_mediated_pmu=Y)" : "off (kvm.enable_mediated_pmu=N)");
        return buf;
}
