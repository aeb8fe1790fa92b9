/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * session.h — the VMM socket (DESIGN §5): one SOCK_SEQPACKET connection per
 * VM.  ATTACH proves which VM it is; APPLY carries the decision; APPLIED
 * carries the kernel's answer.
 */
#pragma once

#include <stdint.h>

struct manager;
struct session;
struct session_server;
struct vm;

/* Take the socket from systemd (socket activation) or bind it ourselves. */
int session_server_start(struct manager *m);
struct session_server *session_server_free(struct session_server *s);

/* Send APPLY with the VM's current filter.  On failure the session is
 * ended (ERROR with the reason, where it can still be sent) and freed. */
int session_send_apply(struct session *s, const struct vm *vm, uint64_t serial);

/* Take back a VMM connection from systemd's fd store after a restart. */
int session_restore(struct manager *m, int fd, struct vm *vm);

/* Close the connection and unlink it from its VM. */
void session_free(struct session *s);
/* The connection, for the fd store. */
int session_fd(const struct session *s);
