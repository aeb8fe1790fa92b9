/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * wire.h — internal to libpmufilter-client: the session's socket and the
 * library's error record (wire.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util.h"

/* Record why a call fails in pmufilter_last_error() and return r (< 0);
 * with_errno appends ": <strerror(-r)>". */
_printf_(3, 4)
int client_fail(int r, bool with_errno, const char *fmt, ...);
#define fail(r, ...) client_fail((r), false, __VA_ARGS__)
#define fail_errno(r, ...) client_fail((r), true, __VA_ARGS__)

/* Connect to pmufilterd at path ('@' first: abstract), connect() and sends
 * bounded by timeout_ms, and refuse (-EPERM) a peer that is not uid
 * PMUFILTER_DAEMON_UID.  0 and the socket in *ret, or -errno (recorded). */
int wire_connect(const char *path, int timeout_ms, int *ret);

/* One datagram, with pass_fd in SCM_RIGHTS unless it is < 0.  0 or -errno. */
int wire_send(int sock, const char *buf, size_t n, int pass_fd, int flags);

/* One datagram into buf (size > PROTO_MSG_MAX).  Its length, 0 when the
 * daemon hung up, -EBADMSG when it was truncated, or -errno.  Descriptors
 * are never expected from the daemon: any that arrive are closed. */
ssize_t wire_recv(int sock, char *buf, size_t size, int flags);
/* The same, but a signal ends it with -EINTR: for a caller that waits
 * against a deadline (SO_RCVTIMEO, which ends it with -EAGAIN). */
ssize_t wire_recv_once(int sock, char *buf, size_t size, int flags);
