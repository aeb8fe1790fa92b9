/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-vmm.c — the cooperating VMM of the demo and the integration tests:
 * creates real KVM VMs, attaches each through libpmufilter-client (or, with
 * --no-attach, does not: an unmanaged VMM), creates vCPUs, and holds the
 * VMs while answering the daemon's pushes.  One line per VM and per push,
 * as text or --json, flushed as it happens so a test can follow along.
 *
 * Exit status: 0 every VM attached and its filters applied; 1 an attach
 * failed or a filter was refused; 2 usage; 77 no usable /dev/kvm (skip).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "pmufilter-client.h"

#define EXIT_USAGE 2
#define EXIT_SKIP 77

struct vm {
        char name[256];
        int fd;
        struct pmufilter_session *session;
        int attach_error;               /* -errno of pmufilter_attach, 0 */
};

static struct {
        unsigned count;
        const char *name;
        const char **labels;
        size_t n_labels;
        const char *socket;
        unsigned vcpus;
        double hold;                    /* seconds; < 0: until SIGTERM/SIGINT */
        bool attach;
        bool json;
        int timeout_ms;
} arg = { .count = 1, .attach = true };

static void json_string(const char *s) {
        putchar('"');
        for (; s && *s; s++) {
                unsigned char c = (unsigned char) *s;

                if (c == '"' || c == '\\')
                        printf("\\%c", c);
                else if (c < 0x20)
                        printf("\\u%04x", c);
                else
                        putchar(c);
        }
        putchar('"');
}

/* One line: what a VM got.  event: "attach", "apply", "created". */
static void report(const struct vm *v, const char *event, int r) {
        struct pmufilter_session *s = v->session;
        const char *err = r < 0 ? pmufilter_last_error() : "";

        if (arg.json) {
                printf("{\"event\":\"%s\",\"name\":", event);
                json_string(v->name);
                printf(",\"pid\":%d,\"fd\":%d,\"attached\":%s,\"profile\":", (int) getpid(), v->fd,
                       s ? "true" : "false");
                if (s && pmufilter_session_profile(s))
                        json_string(pmufilter_session_profile(s));
                else
                        printf("null");
                printf(",\"vm_id\":");
                if (s && pmufilter_session_vm_id(s))
                        json_string(pmufilter_session_vm_id(s));
                else
                        printf("null");
                printf(",\"serial\":%llu,\"errno\":%d,\"pmu_errno\":%d,\"error\":",
                       s ? (unsigned long long) pmufilter_session_serial(s) : 0ULL,
                       r < 0 ? -r : 0, s ? pmufilter_session_pmu_errno(s) : -1);
                json_string(err);
                printf("}\n");
        } else if (r < 0)
                printf("%s: %s failed: %s\n", v->name, event, err);
        else if (s)
                printf("%s: %s: fd %d, profile %s, serial %llu, filter applied\n", v->name, event, v->fd,
                       pmufilter_session_profile(s) ?: "(none)",
                       (unsigned long long) pmufilter_session_serial(s));
        else
                printf("%s: %s: fd %d, pid %d, not attached\n", v->name, event, v->fd, (int) getpid());
        fflush(stdout);
}

static void help(void) {
        printf("Usage: test-vmm [OPTIONS]\n"
               "Create real KVM VMs and attach them to pmufilterd.\n\n"
               "  --count N        create N VMs (default 1)\n"
               "  --name NAME      VM name; with --count > 1, NAME-0, NAME-1, ...\n"
               "                   (default test-vmm-PID)\n"
               "  --label K=V      a label for every VM (repeatable)\n"
               "  --socket PATH    pmufilterd's VMM socket (default $PMUFILTER_SOCKET or %s)\n"
               "  --vcpus N        create N vCPUs per VM after attaching\n"
               "  --hold SECONDS   keep the VMs and answer pushes for SECONDS\n"
               "                   (-1: until SIGTERM/SIGINT; default 0)\n"
               "  --timeout-ms MS  how long to wait for the daemon (default %d)\n"
               "  --no-attach      create and hold VMs without telling pmufilterd\n"
               "  --json           one JSON object per line\n"
               "Exit: 0 ok, 1 an attach failed or a filter was refused, 2 usage, 77 no /dev/kvm.\n",
               PMUFILTER_SOCKET_DEFAULT, PMUFILTER_TIMEOUT_MS_DEFAULT);
}

static int parse_uint(const char *s, unsigned max, unsigned *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || *s == '-' || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static int parse_args(int argc, char *argv[]) {
        enum { ARG_COUNT = 0x100, ARG_NAME, ARG_LABEL, ARG_SOCKET, ARG_VCPUS, ARG_HOLD,
               ARG_TIMEOUT, ARG_NO_ATTACH, ARG_JSON };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "count", required_argument, NULL, ARG_COUNT },
                { "name", required_argument, NULL, ARG_NAME },
                { "label", required_argument, NULL, ARG_LABEL },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "vcpus", required_argument, NULL, ARG_VCPUS },
                { "hold", required_argument, NULL, ARG_HOLD },
                { "timeout-ms", required_argument, NULL, ARG_TIMEOUT },
                { "no-attach", no_argument, NULL, ARG_NO_ATTACH },
                { "json", no_argument, NULL, ARG_JSON },
                {}
        };
        unsigned u;
        char *end;
        int c;

        arg.labels = calloc(argc + 1, sizeof(char *));
        if (!arg.labels)
                return -ENOMEM;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        exit(EXIT_SUCCESS);
                case ARG_COUNT:
                        if (parse_uint(optarg, 100000, &arg.count) < 0 || arg.count == 0) {
                                fprintf(stderr, "test-vmm: --count '%s': expected a number from 1 to 100000\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_NAME:
                        arg.name = optarg;
                        break;
                case ARG_LABEL:
                        if (!strchr(optarg, '=')) {
                                fprintf(stderr, "test-vmm: --label '%s': expected KEY=VALUE\n", optarg);
                                return -EINVAL;
                        }
                        arg.labels[arg.n_labels++] = optarg;
                        break;
                case ARG_SOCKET:
                        arg.socket = optarg;
                        break;
                case ARG_VCPUS:
                        if (parse_uint(optarg, 1024, &arg.vcpus) < 0) {
                                fprintf(stderr, "test-vmm: --vcpus '%s': expected a number from 0 to 1024\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_HOLD:
                        errno = 0;
                        arg.hold = strtod(optarg, &end);
                        if (errno || end == optarg || *end || (arg.hold < 0 && arg.hold != -1)) {
                                fprintf(stderr, "test-vmm: --hold '%s': expected seconds, or -1 for ever\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_TIMEOUT:
                        if (parse_uint(optarg, 3600000, &u) < 0) {
                                fprintf(stderr, "test-vmm: --timeout-ms '%s': expected milliseconds\n", optarg);
                                return -EINVAL;
                        }
                        arg.timeout_ms = (int) u;
                        break;
                case ARG_NO_ATTACH:
                        arg.attach = false;
                        break;
                case ARG_JSON:
                        arg.json = true;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "test-vmm: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 0;
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Answer pushes for every attached VM until --hold runs out or a signal. */
static int hold(struct vm *vms, unsigned n, int sfd) {
        int64_t end = arg.hold < 0 ? -1 : now_ms() + (int64_t) (arg.hold * 1000);
        struct pollfd *p = calloc(n + 1, sizeof(struct pollfd));
        int failed = 0;

        if (!p)
                return -ENOMEM;
        p[0] = (struct pollfd) { .fd = sfd, .events = POLLIN };
        for (unsigned i = 0; i < n; i++)
                p[i + 1] = (struct pollfd) { .fd = vms[i].session ? pmufilter_session_fd(vms[i].session) : -1,
                                             .events = POLLIN };
        for (;;) {
                int64_t left = end < 0 ? -1 : end - now_ms();
                int r;

                if (end >= 0 && left <= 0)
                        break;
                r = poll(p, n + 1, (int) left);
                if (r < 0 && errno != EINTR) {
                        perror("test-vmm: poll");
                        free(p);
                        return -errno;
                }
                if (r > 0 && p[0].revents)
                        break;  /* SIGTERM or SIGINT: stop holding, detach cleanly */
                for (unsigned i = 0; r > 0 && i < n; i++) {
                        if (!p[i + 1].revents)
                                continue;
                        r = pmufilter_session_process(vms[i].session);
                        if (r != 0)
                                report(&vms[i], "apply", r);
                        if (r < 0)
                                failed = r;
                        r = 1;
                }
        }
        free(p);
        return failed;
}

int main(int argc, char *argv[]) {
        char prefix[128];
        struct vm *vms;
        sigset_t mask;
        int kvm, sfd, r, status = EXIT_SUCCESS;

        r = parse_args(argc, argv);
        if (r < 0)
                return EXIT_USAGE;
        if (!arg.name) {
                snprintf(prefix, sizeof(prefix), "test-vmm-%d", (int) getpid());
                arg.name = prefix;
        }

        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0) {
                fprintf(stderr, "test-vmm: cannot open /dev/kvm: %m\n");
                return EXIT_SKIP;
        }

        /* Signals arrive as a descriptor so --hold ends cleanly (DETACH). */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sfd < 0) {
                fprintf(stderr, "test-vmm: signalfd: %m\n");
                return EXIT_FAILURE;
        }

        vms = calloc(arg.count, sizeof(struct vm));
        if (!vms)
                return EXIT_FAILURE;
        for (unsigned i = 0; i < arg.count; i++) {
                struct vm *v = &vms[i];

                if (arg.count == 1)
                        snprintf(v->name, sizeof(v->name), "%s", arg.name);
                else
                        snprintf(v->name, sizeof(v->name), "%s-%u", arg.name, i);
                v->fd = ioctl(kvm, KVM_CREATE_VM, 0);
                if (v->fd < 0) {
                        fprintf(stderr, "test-vmm: KVM_CREATE_VM for %s: %m\n", v->name);
                        return errno == EPERM ? EXIT_FAILURE : EXIT_SKIP;
                }
                if (arg.attach) {
                        struct pmufilter_attach_args a = PMUFILTER_ATTACH_ARGS_INIT;

                        a.socket_path = arg.socket;
                        a.name = v->name;
                        a.labels = arg.labels;
                        a.timeout_ms = arg.timeout_ms;
                        r = pmufilter_attach(v->fd, &a, &v->session);
                        v->attach_error = r;
                        if (r < 0)
                                status = EXIT_FAILURE;
                        report(v, "attach", r);
                }
                for (unsigned c = 0; c < arg.vcpus; c++) {
                        if (ioctl(v->fd, KVM_CREATE_VCPU, c) < 0) {
                                fprintf(stderr, "test-vmm: KVM_CREATE_VCPU %u of %s: %m\n", c, v->name);
                                return EXIT_FAILURE;
                        }
                        /* vCPU fds stay open with the process; the VM fd owns them. */
                        if (v->session)
                                pmufilter_session_set_vcpus(v->session, c + 1);
                }
                if (!arg.attach)
                        report(v, "created", 0);
        }

        if (arg.hold != 0 && hold(vms, arg.count, sfd) < 0)
                status = EXIT_FAILURE;

        for (unsigned i = 0; i < arg.count; i++) {
                pmufilter_session_free(vms[i].session);
                close(vms[i].fd);
        }
        free(vms);
        free(arg.labels);
        close(sfd);
        close(kvm);
        return status;
}
