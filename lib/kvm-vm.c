/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kvm-vm.c — the VM ioctls shared with the client library (kvm-vm.h).
 * libc and kernel headers only.
 */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm-compat.h"
#include "kvm-vm.h"

/* syscall(), not ioctl(): inside the preload shim ioctl() is the shim's own
 * wrapper, and these requests must go straight to the kernel. */
static int vm_ioctl(int fd, unsigned long request, void *arg) {
        long r = syscall(SYS_ioctl, fd, request, arg);

        return r < 0 ? -errno : (int) r;
}

int kvm_disable_pmu(int vm_fd) {
        struct kvm_enable_cap cap = {
                .cap = KVM_CAP_PMU_CAPABILITY,
                .args[0] = KVM_PMU_CAP_DISABLE,
        };
        int r;

        r = vm_ioctl(vm_fd, KVM_ENABLE_CAP, &cap);
        return r < 0 ? r : 0;
}
