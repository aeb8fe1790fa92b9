/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvm.c — STUB */
#include "kvm.h"

int kvm_support_probe(struct kvm_support *ret) { *ret = (struct kvm_support) { .open_error = -ENOSYS, .max_events = KVM_PMU_FILTER_MAX_EVENTS_DEFAULT }; return 0; }
const char *kvm_support_summary(const struct kvm_support *k, char *buf, size_t size) { snprintf(buf, size, "unknown"); return buf; }
int kvm_create_vm(int kvm_fd) { return -ENOSYS; }
int kvm_set_pmu_event_filter(int vm_fd, uint32_t action, uint32_t flags, uint32_t fixed_counter_bitmap, const uint64_t *events, uint32_t nevents) { return -ENOSYS; }
int kvm_disable_pmu(int vm_fd) { return -ENOSYS; }
