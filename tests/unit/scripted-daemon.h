/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * scripted-daemon.h — a stand-in for pmufilterd in the client tests: a thread
 * that listens on a SOCK_SEQPACKET socket and plays one script (APPLY,
 * ERROR, garbage, hang-up, silence), recording what the client sent.  Fault
 * injection the real daemon never does on purpose; the VMs are real.  And an
 * impostor: a child process that listens as nobody, the hostile daemon the
 * client must refuse.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "proto.h"
#include "util.h"

#define SCRIPT_WAIT_MS 10000

struct daemon {
        char dir[64];
        char path[108];
        int listen_fd;
        pthread_t thread;
        void (*script)(struct daemon *d);
        const char *apply;              /* what to send as the first APPLY */

        /* what the script saw; read by the test after joining */
        struct proto_attach attach[2];
        char fd_kind[2][64];
        unsigned n_attach;
        struct proto_applied applied[4];
        unsigned n_applied;
        bool detached;
        int go[2];                      /* the test lets the script go on */
        char failure[256];
};

/* A VM from /dev/kvm, or skip the test saying why. */
#define NEED_VM(vm)                                                             \
        do {                                                                    \
                (vm) = create_vm();                                             \
                if ((vm) < 0) {                                                 \
                        printf("skip: no VM from /dev/kvm: %s\n", strerror(-(vm))); \
                        skip();                                                 \
                }                                                               \
        } while (0)

/* The library attaches only to a listener of uid PMUFILTER_DAEMON_UID, and
 * the scripted daemon listens as this process: skip, saying why, when they
 * differ (not root, or a build with -Ddaemon_uid). */
#define NEED_DAEMON_UID()                                                       \
        do {                                                                    \
                if (geteuid() != (uid_t) PMUFILTER_DAEMON_UID) {                \
                        printf("skip: the scripted daemon would run as uid %u, and the library attaches " \
                               "only to uid %u (-Ddaemon_uid)\n",              \
                               (unsigned) geteuid(), (unsigned) PMUFILTER_DAEMON_UID); \
                        skip();                                                 \
                }                                                               \
        } while (0)

/* The APPLY a script sends unless told otherwise: allow 0xc0,0x3c, serial 7. */
extern const char apply_ok[];

/* Script steps.  Each records the first failure in d->failure, which
 * daemon_stop() turns into a test failure. */
_printf_(2, 3) void d_fail(struct daemon *d, const char *fmt, ...);
void d_listen(struct daemon *d);
int d_accept(struct daemon *d);
ssize_t d_recv(struct daemon *d, int conn, char *buf, size_t size, int *ret_fd);
void d_send(struct daemon *d, int conn, const char *msg);
bool d_expect_attach(struct daemon *d, int conn);       /* notes the fd's kind, closes it */
bool d_expect_applied(struct daemon *d, int conn);
void d_wait_close(struct daemon *d, int conn);          /* notes a DETACH */

void daemon_start(struct daemon *d, void (*script)(struct daemon *d));
void daemon_stop(struct daemon *d);     /* joins; fails the test if the script failed */
void daemon_done(struct daemon *d);     /* frees what it recorded */

/* The impostor: a fake daemon in a child process that becomes nobody before
 * socket()/bind()/listen() (SO_PEERCRED reports whoever called listen()),
 * accepts connections until impostor_stop(), answers an ATTACH with a
 * permissive APPLY (deny nothing, every fixed counter) and counts what
 * arrives. */
#define NOBODY_UID 65534
#define NOBODY_GID 65534

struct impostor_seen {
        unsigned connections;
        unsigned messages;
        unsigned attaches;
        unsigned fds;                   /* descriptors received: the client's VM fds */
        char fd_kind[64];               /* what the first one was */
};

struct impostor {
        char dir[64];                   /* "" when the path is the caller's */
        char path[108];                 /* '@' first: abstract */
        pid_t pid;
        int stop_fd;                    /* closed: the child reports and exits */
        int report_fd;                  /* 'R' when listening, then struct impostor_seen */
        struct impostor_seen seen;
};

extern const char apply_permissive[];

/* Listen at path (NULL: a new directory owned by nobody, vmm.sock in it);
 * returns once the child listens.  Needs root. */
void impostor_start(struct impostor *m, const char *path);
/* Stop the child and fill m->seen; removes the directory it made. */
void impostor_stop(struct impostor *m);

bool wait_readable(int fd, int ms);
int create_vm(void);                    /* VM fd or -errno */
int64_t now_ms(void);
