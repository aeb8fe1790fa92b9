/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The smallest VMM on libpmufilter-client: creates a KVM VM and attaches it
 * to pmufilterd at SOCKET as NAME; prints what it got.  Exit 0 attached with
 * the filter applied, 1 failed, 2 usage, 77 no usable /dev/kvm. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <pmufilter-client.h>

int main(int argc, char **argv) {
        struct pmufilter_attach_args args = PMUFILTER_ATTACH_ARGS_INIT;
        struct pmufilter_session *s = NULL;
        int kvm, vm, r;

        if (argc != 3) {
                fprintf(stderr, "usage: %s SOCKET NAME\n", argv[0]);
                return 2;
        }
        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0) {
                printf("no VM: /dev/kvm: %m\n");
                return 77;
        }
        vm = ioctl(kvm, KVM_CREATE_VM, 0);
        if (vm < 0) {
                printf("no VM: KVM_CREATE_VM: %m\n");
                return 77;
        }
        args.socket_path = argv[1];
        args.name = argv[2];
        r = pmufilter_attach(vm, &args, &s);
        if (r < 0) {
                fprintf(stderr, "attach failed: %s\n", pmufilter_last_error());
                return 1;
        }
        printf("attached: VM %s, profile %s, filter applied\n",
               pmufilter_session_vm_id(s), pmufilter_session_profile(s));
        pmufilter_session_free(s);
        close(vm);
        close(kvm);
        return 0;
}
