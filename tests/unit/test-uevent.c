/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-uevent.c — the kvm uevent parser on good and hostile input, and the
 * watcher against the real kernel: VMs this test creates are reported with
 * their process and fd, also when a thread creates them, and a provoked
 * receive-buffer overflow is reported.
 */
#include <fcntl.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kvm.h"
#include "uevent.h"

/* ---- parser ---------------------------------------------------------- */

static void test_parse_good(void **state) {
        struct kvm_uevent ev;

        assert_int_equal(kvm_uevent_parse("create", "8275", "/kvm/8275-5", "1", "1", &ev), 0);
        assert_int_equal(ev.type, KVM_UEVENT_CREATE);
        assert_int_equal(ev.pid, 8275);
        assert_int_equal(ev.tid, 8275);
        assert_int_equal(ev.fd, 5);
        assert_int_equal(ev.count, 1);
        assert_int_equal(ev.created, 1);

        assert_int_equal(kvm_uevent_parse("destroy", "1", "/kvm/1-0", "0", "18446744073709551615", &ev), 0);
        assert_int_equal(ev.type, KVM_UEVENT_DESTROY);
        assert_int_equal(ev.fd, 0);
        assert_int_equal(ev.count, 0);
        assert_true(ev.created == UINT64_MAX);

        /* No STATS_PATH: the kernel omits it without debugfs or when the
         * "<pid>-<fd>" directory is still held by an older VM. */
        assert_int_equal(kvm_uevent_parse("create", "4194304", NULL, "3", "9", &ev), 0);
        assert_int_equal(ev.tid, 4194304);
        assert_int_equal(ev.fd, -1);

        assert_int_equal(kvm_uevent_parse("create", "2147483647", "/kvm/2147483647-2147483647", "1", "1", &ev), 0);
        assert_int_equal(ev.fd, 2147483647);
}

static void test_parse_bad(void **state) {
        static const struct {
                const char *event, *pid, *stats_path, *count, *created;
        } bad[] = {
                /* missing fields */
                { NULL, "1", "/kvm/1-5", "1", "1" },
                { "create", NULL, "/kvm/1-5", "1", "1" },
                { "create", "1", "/kvm/1-5", NULL, "1" },
                { "create", "1", "/kvm/1-5", "1", NULL },
                /* unknown or malformed event */
                { "", "1", "/kvm/1-5", "1", "1" },
                { "Create", "1", "/kvm/1-5", "1", "1" },
                { "create ", "1", "/kvm/1-5", "1", "1" },
                { "add", "1", "/kvm/1-5", "1", "1" },
                /* PID out of range or not decimal */
                { "create", "0", "/kvm/0-5", "1", "1" },
                { "create", "-1", "/kvm/-1-5", "1", "1" },
                { "create", "2147483648", "/kvm/2147483648-5", "1", "1" },
                { "create", "99999999999999999999999", NULL, "1", "1" },
                { "create", "0x10", "/kvm/0x10-5", "1", "1" },
                { "create", "010", "/kvm/010-5", "1", "1" },
                { "create", "+1", "/kvm/+1-5", "1", "1" },
                { "create", " 1", "/kvm/ 1-5", "1", "1" },
                { "create", "1 ", "/kvm/1 -5", "1", "1" },
                { "create", "", "/kvm/-5", "1", "1" },
                /* STATS_PATH naming another pid, or malformed */
                { "create", "100", "/kvm/101-5", "1", "1" },
                { "create", "100", "/kvm/10-5", "1", "1" },
                { "create", "100", "/kvm/1000-5", "1", "1" },
                { "create", "100", "/kvm/100", "1", "1" },
                { "create", "100", "/kvm/100-", "1", "1" },
                { "create", "100", "/kvm/100--5", "1", "1" },
                { "create", "100", "/kvm/100-5-6", "1", "1" },
                { "create", "100", "/kvm/100-2147483648", "1", "1" },
                { "create", "100", "/kvm/100-5/", "1", "1" },
                { "create", "100", "/kv/100-5", "1", "1" },
                { "create", "100", "kvm/100-5", "1", "1" },
                { "create", "100", "/kvm/kvm/100-5", "1", "1" },
                { "create", "100", "", "1", "1" },
                /* counters */
                { "create", "1", "/kvm/1-5", "-1", "1" },
                { "create", "1", "/kvm/1-5", "1", "18446744073709551616" },
                { "create", "1", "/kvm/1-5", "", "1" },
                { "create", "1", "/kvm/1-5", "1", "one" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct kvm_uevent ev = { .pid = 4242 };

                if (kvm_uevent_parse(bad[i].event, bad[i].pid, bad[i].stats_path,
                                     bad[i].count, bad[i].created, &ev) != -EBADMSG)
                        fail_msg("case %zu (EVENT=%s PID=%s STATS_PATH=%s COUNT=%s CREATED=%s) was accepted",
                                 i, strna(bad[i].event), strna(bad[i].pid), strna(bad[i].stats_path),
                                 strna(bad[i].count), strna(bad[i].created));
                assert_int_equal(ev.pid, 4242);         /* untouched on failure */
        }
}

/* A message as the kernel sends it: "ACTION@DEVPATH" and "KEY=value"
 * strings, each NUL-terminated; sizeof() - 1 drops the literal's own NUL. */
#define KVM_MSG(event, pid, extra)                                                      \
        "change@/devices/virtual/misc/kvm\0ACTION=change\0DEVPATH=/devices/virtual/misc/kvm\0" \
        "SUBSYSTEM=misc\0CREATED=7\0COUNT=1\0EVENT=" event "\0PID=" pid "\0" extra      \
        "SEQNUM=4242\0MAJOR=10\0MINOR=232\0DEVNAME=kvm\0"

static int parse_msg(const char *m, size_t size, struct kvm_uevent *ev) {
        return kvm_uevent_parse_message(m, size - 1, ev);
}
#define PARSE_MSG(m, ev) parse_msg(m, sizeof(m), ev)

static void test_parse_message(void **state) {
        static const struct {
                const char *m;
                size_t size;
                int r;
        } cases[] = {
#define C(m, r) { m, sizeof(m), r }
                /* other devices and actions: not ours */
                C("add@/devices/virtual/net/tap0\0ACTION=add\0DEVPATH=/devices/virtual/net/tap0\0SUBSYSTEM=net\0", -ENOENT),
                C("change@/devices/virtual/misc/kvm\0ACTION=add\0DEVPATH=/devices/virtual/misc/kvm\0SUBSYSTEM=misc\0", -ENOENT),
                C("change@/devices/virtual/misc/tun\0ACTION=change\0DEVPATH=/devices/virtual/misc/tun\0SUBSYSTEM=misc\0", -ENOENT),
                C("change@/devices/virtual/misc/kvm\0ACTION=change\0DEVPATH=/devices/virtual/misc/kvm\0SUBSYSTEM=block\0", -ENOENT),
                C("change@/devices/virtual/misc/kvmx\0ACTION=change\0DEVPATH=/devices/virtual/misc/kvmx\0SUBSYSTEM=misc\0", -ENOENT),
                C("change@/devices/virtual/misc/kvm\0ACTION=change\0SUBSYSTEM=misc\0EVENT=create\0", -ENOENT),
                /* the header must agree with ACTION= and DEVPATH= */
                C("add@/devices/virtual/misc/kvm\0ACTION=change\0DEVPATH=/devices/virtual/misc/kvm\0SUBSYSTEM=misc\0"
                  "CREATED=7\0COUNT=1\0EVENT=create\0PID=42\0", -ENOENT),
                C("change@/devices/virtual/misc/tun\0ACTION=change\0DEVPATH=/devices/virtual/misc/kvm\0SUBSYSTEM=misc\0"
                  "CREATED=7\0COUNT=1\0EVENT=create\0PID=42\0", -ENOENT),
                /* kvm's own change events without EVENT= (a written uevent file) */
                C("change@/devices/virtual/misc/kvm\0ACTION=change\0DEVPATH=/devices/virtual/misc/kvm\0SUBSYSTEM=misc\0", -EBADMSG),
                /* malformed */
                C("", -EBADMSG),
                C("change/devices/virtual/misc/kvm\0ACTION=change\0", -EBADMSG),
                C(KVM_MSG("create", "42", "EVENT=destroy\0"), -EBADMSG),        /* a key twice */
                C(KVM_MSG("create", "42", "PID=43\0"), -EBADMSG),
                C(KVM_MSG("create", "042", ""), -EBADMSG),
                C(KVM_MSG("create", "42", "STATS_PATH=/kvm/43-5\0"), -EBADMSG),
#undef C
        };
        struct kvm_uevent ev;
        char many[4096];
        size_t n;

        assert_int_equal(PARSE_MSG(KVM_MSG("create", "8275", "STATS_PATH=/kvm/8275-5\0"), &ev), 0);
        assert_int_equal(ev.type, KVM_UEVENT_CREATE);
        assert_int_equal(ev.tid, 8275);
        assert_int_equal(ev.pid, 8275);
        assert_int_equal(ev.fd, 5);
        assert_int_equal(ev.count, 1);
        assert_int_equal(ev.created, 7);
        assert_int_equal(PARSE_MSG(KVM_MSG("destroy", "8275", ""), &ev), 0);
        assert_int_equal(ev.type, KVM_UEVENT_DESTROY);
        assert_int_equal(ev.fd, -1);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                ev = (struct kvm_uevent) { .pid = 4242 };
                if (parse_msg(cases[i].m, cases[i].size, &ev) != cases[i].r)
                        fail_msg("case %zu: not %d", i, cases[i].r);
                assert_int_equal(ev.pid, 4242);         /* untouched on failure */
        }

        /* Not NUL-terminated: the last string would run off the end. */
        {
                static const char m[] = KVM_MSG("create", "42", "");

                assert_int_equal(kvm_uevent_parse_message(m, sizeof(m) - 2, &ev), -EBADMSG);
        }
        /* More strings than a uevent has. */
        n = (size_t) snprintf(many, sizeof(many), "change@/devices/virtual/misc/kvm") + 1;
        for (unsigned i = 0; i <= UEVENT_PROPS_MAX; i++)
                n += (size_t) snprintf(many + n, sizeof(many) - n, "X%u=1", i) + 1;
        assert_int_equal(kvm_uevent_parse_message(many, n, &ev), -EBADMSG);
}

/* ---- the live watcher ----------------------------------------------- */

#define MAX_SEEN 256

struct seen {
        struct kvm_uevent ev[MAX_SEEN];
        size_t n;
        unsigned overflows;
        unsigned enobufs;       /* of which the kernel said ENOBUFS */
};

static void on_event(const struct kvm_uevent *ev, void *userdata) {
        struct seen *s = userdata;

        /* Other tests on this host create VMs too: keep only ours. */
        if (ev->pid != getpid() || s->n >= MAX_SEEN)
                return;
        s->ev[s->n++] = *ev;
}

static void on_overflow(bool enobufs, void *userdata) {
        struct seen *s = userdata;

        s->overflows++;
        s->enobufs += enobufs;
}

struct fixture {
        sd_event *event;
        struct uevent_watcher *watcher;
        struct seen seen;
};

static int setup(void **state) {
        struct fixture *f;

        if (access("/dev/kvm", R_OK | W_OK) < 0) {
                print_message("SKIP: /dev/kvm is not usable here: %s\n", strerror(errno));
                *state = NULL;
                return 0;
        }
        f = calloc(1, sizeof(*f));
        assert_non_null(f);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(uevent_watcher_new(f->event, on_event, on_overflow, &f->seen, &f->watcher), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;

        if (f) {
                uevent_watcher_free(f->watcher);
                sd_event_unref(f->event);
                free(f);
        }
        return 0;
}

#define SKIP_WITHOUT_KVM(f)                     \
        do {                                    \
                if (!(f))                       \
                        skip();                 \
        } while (0)

/* Run the loop until pred holds or 5 s pass. */
static bool run_until(struct fixture *f, bool (*pred)(const struct fixture *f, const void *arg), const void *arg) {
        for (unsigned i = 0; i < 500; i++) {
                if (pred(f, arg))
                        return true;
                assert_true(sd_event_run(f->event, 10 * 1000) >= 0);
        }
        return pred(f, arg);
}

static const struct kvm_uevent *find_event(const struct fixture *f, enum kvm_uevent_type type, pid_t tid, int fd) {
        for (size_t i = 0; i < f->seen.n; i++)
                if (f->seen.ev[i].type == type && f->seen.ev[i].tid == tid && f->seen.ev[i].fd == fd)
                        return &f->seen.ev[i];
        return NULL;
}

struct want {
        enum kvm_uevent_type type;
        pid_t tid;
        int fd;
};

static bool have_event(const struct fixture *f, const void *arg) {
        const struct want *w = arg;

        return find_event(f, w->type, w->tid, w->fd) != NULL;
}

static void test_create_destroy(void **state) {
        struct fixture *f = *state;
        const struct kvm_uevent *ev;
        int vm, copy;

        SKIP_WITHOUT_KVM(f);
        vm = kvm_create_vm(-1);
        assert_true(vm >= 0);

        assert_true(run_until(f, have_event, &(struct want) { KVM_UEVENT_CREATE, getpid(), vm }));
        ev = find_event(f, KVM_UEVENT_CREATE, getpid(), vm);
        assert_int_equal(ev->pid, getpid());
        assert_true(ev->count >= 1);
        assert_true(ev->created >= ev->count);

        /* destroy comes with the last reference, not the first close */
        copy = dup(vm);
        assert_true(copy >= 0);
        close(vm);
        (void) sd_event_run(f->event, 100 * 1000);
        assert_null(find_event(f, KVM_UEVENT_DESTROY, getpid(), vm));
        close(copy);
        assert_true(run_until(f, have_event, &(struct want) { KVM_UEVENT_DESTROY, getpid(), vm }));
}

struct creator_thread {
        pthread_t thread;
        int tid, vm;
        int ready[2];   /* the thread says it made its VM */
        int hold[2];    /* the thread lives until this pipe is closed */
};

static void *create_in_thread(void *arg) {
        struct creator_thread *c = arg;
        char b = 0;

        c->tid = (int) gettid();
        c->vm = kvm_create_vm(-1);
        (void) write(c->ready[1], &b, 1);
        (void) read(c->hold[0], &b, 1);
        return NULL;
}

/* Start a thread that creates a VM; returns once it has. */
static void creator_start(struct creator_thread *c) {
        char b;

        assert_int_equal(pipe2(c->ready, O_CLOEXEC), 0);
        assert_int_equal(pipe2(c->hold, O_CLOEXEC), 0);
        assert_int_equal(pthread_create(&c->thread, NULL, create_in_thread, c), 0);
        assert_int_equal(read(c->ready[0], &b, 1), 1);
        assert_true(c->vm >= 0);
        assert_int_not_equal(c->tid, getpid());
}

static void creator_end(struct creator_thread *c) {
        close(c->hold[1]);
        assert_int_equal(pthread_join(c->thread, NULL), 0);
        close(c->hold[0]);
        close(c->ready[0]);
        close(c->ready[1]);
}

/* The kernel names the creating thread; the watcher must name the process,
 * in the destroy event too, when the thread is long gone. */
static void test_thread_creator(void **state) {
        struct fixture *f = *state;
        const struct kvm_uevent *ev;
        struct creator_thread c = {};

        SKIP_WITHOUT_KVM(f);
        creator_start(&c);
        assert_true(run_until(f, have_event, &(struct want) { KVM_UEVENT_CREATE, c.tid, c.vm }));
        creator_end(&c);

        ev = find_event(f, KVM_UEVENT_CREATE, c.tid, c.vm);
        assert_non_null(ev);
        assert_int_equal(ev->pid, getpid());

        close(c.vm);
        assert_true(run_until(f, have_event, &(struct want) { KVM_UEVENT_DESTROY, c.tid, c.vm }));
        ev = find_event(f, KVM_UEVENT_DESTROY, c.tid, c.vm);
        assert_int_equal(ev->pid, getpid());
}

static bool thread_exists(int tid) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/self/task/%d", tid);
        return access(path, F_OK) == 0;
}

static bool overflowed(const struct fixture *f, const void *arg) {
        return f->seen.overflows > 0;
}

/* A creating thread that is gone before its event is read leaves the
 * watcher unable to name the process: it must ask for a rescan. */
static void test_thread_creator_gone(void **state) {
        struct fixture *f = *state;
        struct creator_thread c = {};

        SKIP_WITHOUT_KVM(f);
        creator_start(&c);
        creator_end(&c);
        /* pthread_join() returns when the tid is cleared, a moment before
         * the kernel unhashes the task: wait for that. */
        for (unsigned i = 0; i < 500 && thread_exists(c.tid); i++)
                usleep(1000);
        assert_false(thread_exists(c.tid));
        assert_true(run_until(f, overflowed, NULL));
        assert_int_equal(f->seen.overflows, 1);
        assert_int_equal(f->seen.enobufs, 0);   /* a creator we could not name, not a drop */
        close(c.vm);
}

/* A second VM on the fd number of a first one that is still alive (kept by
 * a dup) gets no debugfs directory, hence no STATS_PATH: fd is -1. */
static void test_no_stats_path(void **state) {
        struct fixture *f = *state;
        int kvm, vm, keep, vm2;

        SKIP_WITHOUT_KVM(f);
        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        assert_true(kvm >= 0);
        vm = kvm_create_vm(kvm);
        assert_true(vm >= 0);
        keep = dup(vm);
        assert_true(keep >= 0);
        close(vm);
        vm2 = kvm_create_vm(kvm);
        assert_int_equal(vm2, vm);
        close(kvm);

        assert_true(run_until(f, have_event, &(struct want) { KVM_UEVENT_CREATE, getpid(), -1 }));
        close(vm2);
        close(keep);
        assert_true(run_until(f, have_event, &(struct want) { KVM_UEVENT_DESTROY, getpid(), vm }));
}

/* Shrink the buffer to the kernel's minimum, let VMs come and go without
 * reading: the kernel drops messages and the watcher must say so. */
static void test_overflow(void **state) {
        struct fixture *f = *state;
        int vms[64], kvm, granted;

        SKIP_WITHOUT_KVM(f);
        granted = uevent_watcher_set_receive_buffer(f->watcher, 1);
        assert_true(granted > 0 && granted < 16384);

        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        assert_true(kvm >= 0);
        for (size_t i = 0; i < ELEMENTSOF(vms); i++) {
                vms[i] = kvm_create_vm(kvm);
                assert_true(vms[i] >= 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(vms); i++)
                close(vms[i]);
        close(kvm);

        assert_true(run_until(f, overflowed, NULL));
        assert_int_equal(f->seen.overflows, 1);
        assert_int_equal(f->seen.enobufs, 1);
        /* not all 128 events got through, which is why */
        assert_true(f->seen.n < 2 * ELEMENTSOF(vms));

        /* after the overflow, events flow again */
        assert_true(uevent_watcher_set_receive_buffer(f->watcher, UEVENT_RECEIVE_BUFFER) > granted);
        f->seen.n = 0;
        vms[0] = kvm_create_vm(-1);
        assert_true(vms[0] >= 0);
        assert_true(run_until(f, have_event, &(struct want) { KVM_UEVENT_CREATE, getpid(), vms[0] }));
        close(vms[0]);
}

/* Only the kernel's messages count: one sent to the kernel's group by a
 * process (which needs CAP_NET_ADMIN) comes from its own port, and is
 * ignored however well it names a VM. */
static void test_forged_sender(void **state) {
        struct fixture *f = *state;
        struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_groups = 1 };
        char buf[512], pid[32];
        size_t n = 0;
        int fd, vm;

        SKIP_WITHOUT_KVM(f);
        snprintf(pid, sizeof(pid), "PID=%d", (int) getpid());
        for (const char *const *p = (const char *const[]) {
                     "change@/devices/virtual/misc/kvm", "ACTION=change", "DEVPATH=/devices/virtual/misc/kvm",
                     "SUBSYSTEM=misc", "CREATED=7", "COUNT=1", "EVENT=create", pid, NULL }; *p; p++)
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s", *p) + 1;
        /* the same bytes the parser would take for a VM of ours */
        {
                struct kvm_uevent ev;

                assert_int_equal(kvm_uevent_parse_message(buf, n, &ev), 0);
                assert_int_equal(ev.pid, getpid());
        }

        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
        assert_true(fd >= 0);
        if (sendto(fd, buf, n, 0, (struct sockaddr *) &to, sizeof(to)) < 0) {
                close(fd);
                skip();         /* no CAP_NET_ADMIN: nobody here could forge one */
        }
        close(fd);

        /* A real VM afterwards: its create is seen, the forged one was not. */
        vm = kvm_create_vm(-1);
        assert_true(vm >= 0);
        assert_true(run_until(f, have_event, &(struct want) { KVM_UEVENT_CREATE, getpid(), vm }));
        assert_null(find_event(f, KVM_UEVENT_CREATE, getpid(), -1));
        assert_int_equal(f->seen.n, 1);
        close(vm);
}

static void test_new_invalid(void **state) {
        struct uevent_watcher *w = NULL;
        sd_event *e = NULL;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(uevent_watcher_new(NULL, on_event, on_overflow, NULL, &w), -EINVAL);
        assert_int_equal(uevent_watcher_new(e, NULL, on_overflow, NULL, &w), -EINVAL);
        assert_int_equal(uevent_watcher_new(e, on_event, NULL, NULL, &w), -EINVAL);
        assert_null(w);
        assert_null(uevent_watcher_free(NULL));
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_good),
                cmocka_unit_test(test_parse_bad),
                cmocka_unit_test(test_parse_message),
                cmocka_unit_test(test_new_invalid),
                cmocka_unit_test_setup_teardown(test_create_destroy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_thread_creator, setup, teardown),
                cmocka_unit_test_setup_teardown(test_thread_creator_gone, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_stats_path, setup, teardown),
                cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forged_sender, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
