/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kvm-vm.h — the VM ioctls that the VMM's side issues as well as lib/:
 * kvm-vm.c needs nothing beyond libc and the kernel's headers, and the
 * client library compiles it in (client/meson.build), so the daemon's
 * tools and the VMMs do them one way.
 */
#pragma once

/* KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY, KVM_PMU_CAP_DISABLE): the VM gets
 * no vPMU.  0 or -errno; the kernel answers EINVAL once the VM has a vCPU,
 * and where the host has no vPMU (kvm.enable_pmu=N). */
int kvm_disable_pmu(int vm_fd);
