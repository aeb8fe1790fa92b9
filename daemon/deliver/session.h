/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * session.h — the VMM socket (pmufilterd-vmm(7)): one SOCK_SEQPACKET
 * connection per VM.  Transport only: a session proves that its peer holds
 * the VM fd it sent with ATTACH, carries APPLY out and APPLIED back, and
 * reports through the callbacks of its server; what a VM gets is decided
 * above (lifecycle.c).
 */
#pragma once

#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "proto.h"

struct session;
struct session_server;
struct vm;

struct session_ops {
        /* The peer proved it holds the VM fd it sent, as a->vmfd.  Link a VM
         * with session_attach_vm() and send APPLY; or return -errno and a
         * reason, and the session is refused with them.  0 with the
         * session freed meanwhile (a failed APPLY) is fine. */
        int (*attach)(struct session *s, const struct ucred *peer, struct proto_attach *a,
                      char *reason, size_t reason_size, void *userdata);
        /* APPLIED of vm's session. */
        void (*applied)(struct session *s, struct vm *vm, const struct proto_applied *a, void *userdata);
        /* vm's session was ended by us (refused, no answer in time, APPLY
         * could not be sent): error and reason say why.  s is freed. */
        void (*lost)(struct vm *vm, int error, const char *reason, void *userdata);
        /* vm's VMM closed its session or sent DETACH.  s is freed.
         * pidfd: of vm's process, from the session (readable once that
         * process has exited, pidfd_open(2)), -1 where the session has
         * none for it; closed after the call. */
        void (*closed)(struct vm *vm, int pidfd, void *userdata);
        /* How many connections of one uid may wait for their ATTACH. */
        unsigned (*unattached_limit)(void *userdata);
};

/* A connection must send ATTACH this soon after connecting. */
#define SESSION_ATTACH_TIMEOUT_USEC (5 * 1000 * 1000ULL)

/* Serve VMMs on the listening socket fd (taken). */
int session_server_new(sd_event *e, int fd, const struct session_ops *ops, void *userdata,
                       struct session_server **ret);
/* Close every session; with keep_stored, leave them in the fd store. */
struct session_server *session_server_free(struct session_server *s, bool keep_stored);
unsigned session_server_count(const struct session_server *s);

/* Take back a VMM connection from systemd's fd store after a restart:
 * -ESRCH (and fd closed) if its peer is not vm's process. */
int session_restore(struct session_server *server, int fd, struct vm *vm);

/* s serves vm from now on. */
void session_attach_vm(struct session *s, struct vm *vm);
/* Send APPLY with vm's current filter and wait timeout_ms for APPLIED.
 * On failure the session is ended (lost(), with the reason) and freed. */
int session_send_apply(struct session *s, const struct vm *vm, uint64_t serial, uint64_t timeout_ms);
/* Close the connection and unlink it from its VM. */
void session_free(struct session *s);
/* The connection, for the fd store. */
int session_fd(const struct session *s);
