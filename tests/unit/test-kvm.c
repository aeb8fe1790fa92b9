/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-kvm.c — the support probe and the VM ioctls against the real
 * /dev/kvm: what the probe reports is checked against the kernel directly
 * (capabilities, and the entry limit on a VM of the test's own).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <time.h>

#include "kvm-compat.h"
#include "kvm.h"
#include "pmu.h"

static int open_kvm_or_skip(void) {
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

        if (fd < 0) {
                print_message("skipped: cannot open /dev/kvm: %m\n");
                skip();
        }
        return fd;
}

static int64_t now_ns(void) {
        struct timespec ts;

        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int set_n(int vm_fd, uint32_t n) {
        _cleanup_free_ uint64_t *events = calloc(n + 1, sizeof(uint64_t));

        assert_non_null(events);
        for (uint32_t i = 0; i < n; i++)
                events[i] = event_code(0xc4, 0);
        return kvm_set_pmu_event_filter(vm_fd, KVM_PMU_EVENT_ALLOW, 0, 0, events, n);
}

static void test_probe(void **state) {
        _cleanup_close_ int kvm_fd = open_kvm_or_skip(), vm_fd = -1;
        struct kvm_support k;
        char buf[256];
        int64_t t0, t1;

        t0 = now_ns();
        assert_int_equal(kvm_support_probe(&k), 0);
        t1 = now_ns();
        print_message("probe took %.3f ms: %s\n", (double) (t1 - t0) / 1e6,
                      kvm_support_summary(&k, buf, sizeof(buf)));

        assert_int_equal(k.open_error, 0);
        assert_int_equal(k.filter, ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PMU_EVENT_FILTER) > 0);
        assert_int_equal(k.masked, ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PMU_EVENT_MASKED_EVENTS) > 0);
        assert_int_equal(k.pmu_capability, ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PMU_CAPABILITY));
        if (!k.filter) {
                print_message("skipped: this kernel has no PMU event filter\n");
                kvm_fd = safe_close(kvm_fd);
                skip();
        }

        /* The limit the probe learnt is the kernel's: max accepted,
         * max + 1 refused, on a VM the probe never saw. */
        assert_true(k.max_events >= 1);
        vm_fd = kvm_create_vm(kvm_fd);
        assert_true(vm_fd >= 0);
        assert_int_equal(set_n(vm_fd, k.max_events), 0);
        assert_int_equal(set_n(vm_fd, k.max_events + 1), -E2BIG);
        if (k.max_events != KVM_PMU_FILTER_MAX_EVENTS_DEFAULT)
                print_message("note: this kernel's limit is %u, not %u\n",
                              k.max_events, KVM_PMU_FILTER_MAX_EVENTS_DEFAULT);
}

static void test_enable_pmu_param(void **state) {
        _cleanup_close_ int kvm_fd = open_kvm_or_skip();
        _cleanup_fclose_ FILE *f = fopen("/sys/module/kvm/parameters/enable_pmu", "re");
        struct kvm_support k;
        char c = 0;

        if (!f) {
                print_message("skipped: no kvm.enable_pmu parameter: %m\n");
                kvm_fd = safe_close(kvm_fd);
                skip();
        }
        assert_int_equal(fread(&c, 1, 1, f), 1);
        assert_int_equal(kvm_support_probe(&k), 0);
        assert_true(k.enable_pmu_read);
        assert_int_equal(k.enable_pmu, c == 'Y');
        assert_int_equal(kvm_vpmu_off_hostwide(&k), c != 'Y');
}

/* When a `pmu: off` VM's failure to disable its vPMU is no failure: only
 * where the probe read kvm.enable_pmu=N. */
static void test_vpmu_off_hostwide(void **state) {
        struct kvm_support off = { .filter = true, .enable_pmu_read = true, .enable_pmu = false };
        struct kvm_support on = { .filter = true, .enable_pmu_read = true, .enable_pmu = true, .pmu_capability = 1 };
        struct kvm_support old = { .filter = true };    /* before 5.17: no parameter, the vPMU on */
        struct kvm_support unprobed = { .open_error = -ENOENT, .enable_pmu_read = true };

        assert_true(kvm_vpmu_off_hostwide(&off));
        assert_false(kvm_vpmu_off_hostwide(&on));
        assert_false(kvm_vpmu_off_hostwide(&old));
        assert_false(kvm_vpmu_off_hostwide(&unprobed));
        assert_false(kvm_vpmu_off_hostwide(NULL));
}

static void test_set_filter(void **state) {
        _cleanup_close_ int kvm_fd = open_kvm_or_skip(), vm_fd = -1;
        const uint64_t events[] = { event_code(0xc0, 0), event_code(0x3c, 0), event_code(0x1d0, 0) };
        const uint64_t masked[] = {
                KVM_PMU_ENCODE_MASKED_ENTRY(0xb7, 0x00, 0x00, false),
                KVM_PMU_ENCODE_MASKED_ENTRY(0xd0, 0xf0, 0x80, true),
        };
        const uint64_t bad_masked[] = { KVM_PMU_ENCODE_MASKED_ENTRY(0xc0, 0xff, 0, false) | (1ull << 40) };

        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PMU_EVENT_FILTER) <= 0) {
                print_message("skipped: this kernel has no PMU event filter\n");
                kvm_fd = safe_close(kvm_fd);
                skip();
        }
        vm_fd = kvm_create_vm(kvm_fd);
        assert_true(vm_fd >= 0);

        assert_int_equal(kvm_set_pmu_event_filter(vm_fd, KVM_PMU_EVENT_ALLOW, 0, 0x7, events, 3), 0);
        assert_int_equal(kvm_set_pmu_event_filter(vm_fd, KVM_PMU_EVENT_DENY, 0, 0, events, 3), 0);
        assert_int_equal(kvm_set_pmu_event_filter(vm_fd, KVM_PMU_EVENT_ALLOW, 0, 0, NULL, 0), 0);
        /* The kernel's own validation reaches the caller as -errno. */
        assert_int_equal(kvm_set_pmu_event_filter(vm_fd, 2, 0, 0, events, 3), -EINVAL);
        assert_int_equal(kvm_set_pmu_event_filter(vm_fd, KVM_PMU_EVENT_ALLOW, 1u << 7, 0, events, 3), -EINVAL);

        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PMU_EVENT_MASKED_EVENTS) > 0) {
                assert_int_equal(kvm_set_pmu_event_filter(vm_fd, KVM_PMU_EVENT_DENY,
                                                          KVM_PMU_EVENT_FLAG_MASKED_EVENTS, 0, masked, 2), 0);
                assert_int_equal(kvm_set_pmu_event_filter(vm_fd, KVM_PMU_EVENT_DENY,
                                                          KVM_PMU_EVENT_FLAG_MASKED_EVENTS, 0, bad_masked, 1), -EINVAL);
        } else
                print_message("masked events not supported: not tried\n");

        /* Not a VM fd */
        assert_true(kvm_set_pmu_event_filter(kvm_fd, KVM_PMU_EVENT_ALLOW, 0, 0, events, 3) < 0);
}

static void test_create_vm(void **state) {
        _cleanup_close_ int kvm_fd = open_kvm_or_skip(), vm_fd = -1;
        char path[64], target[64] = {};

        /* kvm_fd < 0: it opens /dev/kvm itself */
        vm_fd = kvm_create_vm(-1);
        assert_true(vm_fd >= 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%i", vm_fd);
        assert_true(readlink(path, target, sizeof(target) - 1) > 0);
        assert_string_equal(target, "anon_inode:kvm-vm");
        assert_true(fcntl(vm_fd, F_GETFD) & FD_CLOEXEC);
        vm_fd = safe_close(vm_fd);

        vm_fd = kvm_create_vm(kvm_fd);
        assert_true(vm_fd >= 0);
}

static void test_disable_pmu(void **state) {
        _cleanup_close_ int kvm_fd = open_kvm_or_skip(), vm_fd = -1;
        int cap = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PMU_CAPABILITY);

        vm_fd = kvm_create_vm(kvm_fd);
        assert_true(vm_fd >= 0);
        /* With kvm.enable_pmu=N the capability reports 0 and enabling it is
         * refused; with a vPMU it works before any vCPU exists. */
        if (cap > 0 && (cap & KVM_PMU_CAP_DISABLE))
                assert_int_equal(kvm_disable_pmu(vm_fd), 0);
        else
                assert_int_equal(kvm_disable_pmu(vm_fd), -EINVAL);
}

static void test_summary(void **state) {
        struct kvm_support none = { .open_error = -ENOENT, .max_events = KVM_PMU_FILTER_MAX_EVENTS_DEFAULT };
        struct kvm_support full = { .filter = true, .masked = true, .max_events = 300,
                                    .enable_pmu_read = true, .mediated_pmu = -1 };
        struct kvm_support cap = { .filter = true, .enable_pmu_read = true, .enable_pmu = true,
                                   .pmu_capability = KVM_PMU_CAP_DISABLE, .mediated_pmu = 1 };
        struct kvm_support old = { .filter = true, .mediated_pmu = -1 };
        char buf[256];

        assert_non_null(strstr(kvm_support_summary(&none, buf, sizeof(buf)), "/dev/kvm"));
        assert_non_null(strstr(buf, strerror(ENOENT)));
        assert_non_null(strstr(kvm_support_summary(&full, buf, sizeof(buf)), "300 events"));
        assert_non_null(strstr(buf, "masked events yes"));
        assert_non_null(strstr(buf, "vPMU off (kvm.enable_pmu=N)"));
        assert_non_null(strstr(buf, "per-VM vPMU disable no"));
        assert_non_null(strstr(buf, "mediated vPMU not in this kernel"));
        assert_non_null(strstr(kvm_support_summary(&cap, buf, sizeof(buf)), "vPMU on (kvm.enable_pmu=Y)"));
        assert_non_null(strstr(buf, "per-VM vPMU disable yes"));
        assert_non_null(strstr(buf, "mediated vPMU on (kvm.enable_mediated_pmu=Y)"));
        /* Before Linux 5.17 there is no parameter, and the vPMU is on. */
        assert_non_null(strstr(kvm_support_summary(&old, buf, sizeof(buf)), "vPMU on (kvm.enable_pmu=unset, before Linux 5.17)"));
        /* Truncates, never overflows */
        assert_ptr_equal(kvm_support_summary(&full, buf, 8), buf);
        assert_int_equal(strlen(buf), 7);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_probe),
                cmocka_unit_test(test_enable_pmu_param),
                cmocka_unit_test(test_vpmu_off_hostwide),
                cmocka_unit_test(test_set_filter),
                cmocka_unit_test(test_create_vm),
                cmocka_unit_test(test_disable_pmu),
                cmocka_unit_test(test_summary),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
