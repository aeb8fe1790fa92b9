/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * preload.c — libpmufilter-preload.so (pmufilterd-vmm(7), "THE PRELOAD
 * SHIM"): makes an unmodified, dynamically linked VMM (QEMU) a pmufilterd
 * client.  It wraps ioctl(): right after a successful KVM_CREATE_VM it
 * attaches the new VM (CLIENT=preload) and applies the first filter before
 * the VMM sees the fd; if that fails (a listener that is not pmufilterd's
 * uid included), KVM_CREATE_VM fails with EPERM unless PMUFILTER_REQUIRED=0.
 * One thread of the VMM's process answers later pushes (the kernel lets any
 * thread of the creating process issue VM ioctls).  It also wraps close(),
 * so a session never outlives its VM fd number, and counts KVM_CREATE_VCPU
 * for the VCPUS= of a re-attach.
 *
 * Environment: PMUFILTER_SOCKET, PMUFILTER_NAME (when the command line has
 * no -name), PMUFILTER_LABELS=k=v,k=v, PMUFILTER_REQUIRED=0,
 * PMUFILTER_TIMEOUT_MS.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm-compat.h"
#include "pmufilter-client.h"
#include "proto-syntax.h"
#include "util.h"

typedef int (*ioctl_fn)(int, unsigned long, ...);
typedef int (*close_fn)(int);

struct vm {
        int fd;
        unsigned vcpus;
        struct pmufilter_session *session;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct vm *vms;                  /* under lock */
static size_t n_vms, n_vms_allocated;   /* under lock */
static atomic_size_t n_tracked;         /* == n_vms; read without the lock on the fast path */
static int wake_fd = -1;                /* eventfd: the set of sessions changed */
static bool thread_started;

static _Atomic(void *) real_ioctl;
static _Atomic(void *) real_close;

/* Set while the shim itself runs library code: its own close() calls must
 * not be taken for the VMM's. */
static _Thread_local bool in_shim;

/* The definition the VMM would have called without the shim. */
static void *next_symbol(_Atomic(void *) *slot, const char *name) {
        void *f = atomic_load(slot);

        if (!f) {
                f = dlsym(RTLD_NEXT, name);
                atomic_store(slot, f);
        }
        if (!f)
                errno = ENOSYS;
        return f;
}

static int call_ioctl(int fd, unsigned long request, void *arg) {
        ioctl_fn f = (ioctl_fn) next_symbol(&real_ioctl, "ioctl");

        return f ? f(fd, request, arg) : -1;
}

static int call_close(int fd) {
        close_fn f = (close_fn) next_symbol(&real_close, "close");

        return f ? f(fd) : -1;
}

_printf_(1, 2)
static void log_line(const char *fmt, ...) {
        char buf[768];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        n = n < (int) sizeof(buf) - 1 ? n : (int) sizeof(buf) - 2;
        buf[n++] = '\n';
        /* One write: lines of several VMMs sharing a log stay whole. */
        (void) !write(STDERR_FILENO, buf, n);
}

static bool attach_required(void) {
        const char *e = getenv("PMUFILTER_REQUIRED");

        return !e || !(streq(e, "0") || streq(e, "no") || streq(e, "false") || streq(e, "off"));
}

/* QEMU's -name takes "foo", "guest=foo,debug-threads=on" or "foo,process=x";
 * ",," is a literal comma.  The guest name is the "guest" key, or the first
 * element when it has no '='. */
static char *qemu_guest_name(const char *v) {
        size_t l = strlen(v);
        _cleanup_free_ char *el = malloc(l + 1);
        bool first = true;

        if (!el)
                return NULL;
        for (size_t i = 0; i < l;) {
                size_t o = 0;

                for (; i < l; i++) {
                        if (v[i] == ',' && v[i + 1] == ',') {
                                el[o++] = ',';
                                i++;
                        } else if (v[i] == ',') {
                                i++;
                                break;
                        } else
                                el[o++] = v[i];
                }
                el[o] = 0;
                if (first && !strchr(el, '='))
                        return *el ? strdup(el) : NULL;
                if (startswith(el, "guest="))
                        return el[6] ? strdup(el + 6) : NULL;
                first = false;
        }
        return NULL;
}

/* -name and -uuid from /proc/self/cmdline (also spelt --name, --uuid). */
static void cmdline_identity(char **ret_name, char **ret_uuid) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, n = 0;
        int fd;

        fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        for (;;) {
                ssize_t k;

                if (n + 1 >= size) {
                        char *b = realloc(buf, size ? size * 2 : 4096);

                        if (!b)
                                break;
                        buf = b;
                        size = size ? size * 2 : 4096;
                }
                k = read(fd, buf + n, size - n - 1);
                if (k <= 0)
                        break;
                n += (size_t) k;
        }
        call_close(fd);
        if (!buf)
                return;
        buf[n] = 0;

        for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
                const char *arg = buf + i, *next = buf + i + strlen(arg) + 1;

                if (next >= buf + n)
                        break;
                if ((streq(arg, "-name") || streq(arg, "--name")) && !*ret_name)
                        *ret_name = qemu_guest_name(next);
                else if ((streq(arg, "-uuid") || streq(arg, "--uuid")) && !*ret_uuid && proto_uuid_ok(next))
                        *ret_uuid = strdup(next);
        }
}

/* PMUFILTER_LABELS=k=v,k=v -> a NULL-terminated array; the strings live in *ret_buf. */
static int env_labels(char **ret_buf, char ***ret_labels) {
        const char *e = getenv("PMUFILTER_LABELS");
        _cleanup_free_ char *buf = NULL;
        _cleanup_free_ char **labels = NULL;
        size_t n = 0;

        if (!e || !*e)
                return 0;
        buf = strdup(e);
        labels = calloc(strlen(e) / 2 + 2, sizeof(char *));
        if (!buf || !labels)
                return -ENOMEM;
        for (char *p = buf, *c; p; p = c) {
                c = strchr(p, ',');
                if (c)
                        *c++ = 0;
                if (*p)
                        labels[n++] = p;
        }
        *ret_buf = TAKE_PTR(buf);
        *ret_labels = TAKE_PTR(labels);
        return 0;
}

static void wake_thread(void) {
        uint64_t one = 1;

        if (wake_fd >= 0)
                (void) !write(wake_fd, &one, sizeof(one));
}

/* The thread that answers pushes for every VM of this process. */
static void *thread_main(void *unused) {
        _cleanup_free_ struct pollfd *p = NULL;
        size_t allocated = 0;

        in_shim = true;
        for (;;) {
                size_t n = 1;

                pthread_mutex_lock(&lock);
                if (allocated < n_vms + 1) {
                        struct pollfd *q = realloc(p, (n_vms + 1) * sizeof(struct pollfd));

                        if (q) {
                                p = q;
                                allocated = n_vms + 1;
                        }
                }
                p[0] = (struct pollfd) { .fd = wake_fd, .events = POLLIN };
                for (size_t i = 0; i < n_vms && n < allocated; i++)
                        p[n++] = (struct pollfd) { .fd = pmufilter_session_fd(vms[i].session), .events = POLLIN };
                pthread_mutex_unlock(&lock);

                if (poll(p, n, -1) < 0)
                        continue;
                if (p[0].revents & POLLIN) {
                        uint64_t v;

                        (void) !read(wake_fd, &v, sizeof(v));
                }

                pthread_mutex_lock(&lock);
                /* The set may have changed since poll(): match by fd, and a
                 * spurious process() is harmless (it does not block). */
                for (size_t j = 1; j < n; j++) {
                        if (!p[j].revents)
                                continue;
                        for (size_t i = 0; i < n_vms; i++) {
                                int r;

                                if (pmufilter_session_fd(vms[i].session) != p[j].fd)
                                        continue;
                                r = pmufilter_session_process(vms[i].session);
                                if (r < 0)
                                        log_line("pmufilter-preload: VM fd %d: %s", vms[i].fd, pmufilter_last_error());
                        }
                }
                pthread_mutex_unlock(&lock);
        }
        return NULL;
}

static int start_thread(void) {
        sigset_t all, saved;
        pthread_attr_t attr;
        pthread_t t;
        int r;

        if (thread_started)
                return 0;
        wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake_fd < 0)
                return -errno;
        /* The VMM's signals are its own business: the thread takes none. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = -pthread_create(&t, &attr, thread_main, NULL);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0) {
                wake_fd = safe_close(wake_fd);
                return r;
        }
        thread_started = true;
        return 0;
}

static int track_vm(int vm_fd, struct pmufilter_session *s) {
        if (n_vms == n_vms_allocated) {
                size_t k = n_vms_allocated ? n_vms_allocated * 2 : 4;
                struct vm *v = realloc(vms, k * sizeof(struct vm));

                if (!v)
                        return -ENOMEM;
                vms = v;
                n_vms_allocated = k;
        }
        vms[n_vms++] = (struct vm) { .fd = vm_fd, .session = s };
        atomic_store(&n_tracked, n_vms);
        wake_thread();
        return 0;
}

/* Under lock: attach vm_fd and apply its first filter.  0 or -errno. */
static int attach_vm(int vm_fd) {
        _cleanup_free_ char *name = NULL, *uuid = NULL, *label_buf = NULL;
        _cleanup_free_ char **labels = NULL;
        struct pmufilter_attach_args a = PMUFILTER_ATTACH_ARGS_INIT;
        struct pmufilter_session *s = NULL;
        const char *e;
        int r;

        cmdline_identity(&name, &uuid);
        if (!name && (e = getenv("PMUFILTER_NAME")) && *e)
                name = strdup(e);
        r = env_labels(&label_buf, &labels);
        if (r < 0)
                return r;
        e = getenv("PMUFILTER_TIMEOUT_MS");
        a.timeout_ms = e ? atoi(e) : 0;
        a.name = name;
        a.uuid = uuid;
        a.labels = (const char *const *) labels;
        a.client = "preload";

        r = pmufilter_attach(vm_fd, &a, &s);
        if (r < 0)
                return r;
        r = start_thread();
        if (r < 0) {
                pmufilter_session_free(s);
                errno = -r;
                log_line("pmufilter-preload: cannot start the thread that watches VM fd %d for changes: %m", vm_fd);
                return r;
        }
        r = track_vm(vm_fd, s);
        if (r < 0) {
                pmufilter_session_free(s);
                errno = -r;
                log_line("pmufilter-preload: cannot watch VM fd %d for changes: %m", vm_fd);
                return r;
        }
        return 0;
}

static int create_vm(int kvm_fd, void *arg) {
        int vm_fd, r;

        vm_fd = call_ioctl(kvm_fd, KVM_CREATE_VM, arg);
        if (vm_fd < 0)
                return vm_fd;

        pthread_mutex_lock(&lock);
        in_shim = true;
        r = attach_vm(vm_fd);
        in_shim = false;
        pthread_mutex_unlock(&lock);
        if (r >= 0)
                return vm_fd;

        if (!attach_required()) {
                log_line("pmufilter-preload: %s; VM fd %d runs without a PMU event filter (PMUFILTER_REQUIRED=0)",
                         pmufilter_last_error(), vm_fd);
                return vm_fd;
        }
        log_line("pmufilter-preload: refusing KVM_CREATE_VM: %s", pmufilter_last_error());
        call_close(vm_fd);
        errno = EPERM;
        return -1;
}

static void vcpu_created(int vm_fd) {
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n_vms; i++)
                if (vms[i].fd == vm_fd)
                        pmufilter_session_set_vcpus(vms[i].session, ++vms[i].vcpus);
        pthread_mutex_unlock(&lock);
}

/* glibc's prototype: int ioctl(int, unsigned long int, ...). */
int ioctl(int fd, unsigned long request, ...) {
        va_list ap;
        void *arg;
        int r;

        /* Every ioctl takes at most one argument; reading it when the caller
         * passed none is what glibc's own ioctl() does too. */
        va_start(ap, request);
        arg = va_arg(ap, void *);
        va_end(ap);

        if (request == KVM_CREATE_VM)
                return create_vm(fd, arg);
        r = call_ioctl(fd, request, arg);
        if (request == KVM_CREATE_VCPU && r >= 0 && atomic_load(&n_tracked) > 0) {
                int saved = errno;

                vcpu_created(fd);
                errno = saved;
        }
        return r;
}

int close(int fd) {
        if (!in_shim && atomic_load(&n_tracked) > 0) {
                int saved = errno;

                pthread_mutex_lock(&lock);
                in_shim = true;
                for (size_t i = 0; i < n_vms; i++) {
                        if (vms[i].fd != fd)
                                continue;
                        /* The VM's owner lets go of it: so does its session
                         * (DETACH), before the number can be reused. */
                        pmufilter_session_free(vms[i].session);
                        vms[i] = vms[--n_vms];
                        atomic_store(&n_tracked, n_vms);
                        wake_thread();
                        break;
                }
                in_shim = false;
                pthread_mutex_unlock(&lock);
                errno = saved;
        }
        return call_close(fd);
}

/* A forked child shares the sessions' sockets but not the VMs (the kernel
 * refuses it their ioctls) and has no answering thread: it must not DETACH
 * the parent's sessions when it closes descriptors, so it forgets them. */
static void fork_prepare(void) {
        pthread_mutex_lock(&lock);
}

static void fork_parent(void) {
        pthread_mutex_unlock(&lock);
}

static void fork_child(void) {
        n_vms = 0;
        atomic_store(&n_tracked, 0);
        thread_started = false;
        wake_fd = -1;
        pthread_mutex_unlock(&lock);
}

__attribute__((constructor))
static void preload_init(void) {
        (void) next_symbol(&real_ioctl, "ioctl");
        (void) next_symbol(&real_close, "close");
        pthread_atfork(fork_prepare, fork_parent, fork_child);
}
