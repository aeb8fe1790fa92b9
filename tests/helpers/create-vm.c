/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * create-vm.c — the smallest VMM: what the preload shim sees in QEMU, and
 * nothing else (it does not link the client library).  Creates one VM with
 * plain ioctl(), optionally vCPUs, optionally waits for stdin to close, then
 * closes the VM fd.  Arguments it does not know (-name, -uuid, ...) are
 * ignored, so a test can give it a QEMU-like command line for the shim.
 *
 *   create-vm [--vcpus=N] [--wait] [ignored...]
 *
 * Prints "created fd=N" or "KVM_CREATE_VM failed errno=N (text)".
 * Exit: 0 created, 1 refused, 77 no /dev/kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

int main(int argc, char *argv[]) {
        unsigned vcpus = 0;
        bool wait = false;
        int kvm, vm;
        char c;

        for (int i = 1; i < argc; i++) {
                if (strncmp(argv[i], "--vcpus=", 8) == 0)
                        vcpus = (unsigned) atoi(argv[i] + 8);
                else if (strcmp(argv[i], "--wait") == 0)
                        wait = true;
        }

        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0) {
                printf("cannot open /dev/kvm errno=%d (%m)\n", errno);
                return 77;
        }
        vm = ioctl(kvm, KVM_CREATE_VM, 0);
        if (vm < 0) {
                printf("KVM_CREATE_VM failed errno=%d (%m)\n", errno);
                return 1;
        }
        printf("created fd=%d\n", vm);
        for (unsigned i = 0; i < vcpus; i++)
                if (ioctl(vm, KVM_CREATE_VCPU, i) < 0) {
                        printf("KVM_CREATE_VCPU failed errno=%d (%m)\n", errno);
                        return 1;
                }
        fflush(stdout);
        if (wait)
                while (read(STDIN_FILENO, &c, 1) > 0)
                        ;
        close(vm);
        close(kvm);
        return 0;
}
