/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fdstore.h — restart without loss (pmufilterd(8), RESTART): every
 * attached VMM's connection is handed to systemd's fd store (FDSTORE=1,
 * FDNAME=session-<vm id>, as journald keeps its stream connections), and
 * taken back on start together with the listening socket systemd passes.
 */
#pragma once

#include <stddef.h>

struct fdstore {
        /* the fds systemd passed (socket activation, fd store), with names */
        int *fds;
        char **names;
        size_t n;
};

/* Take the fds systemd passed, once and first of all (sd_listen_fds()
 * refuses numbers that are not open, which it can tell only before the
 * event loop's own fds may take them). */
int fdstore_take_passed(struct fdstore *s);
void fdstore_done(struct fdstore *s);

/* The listening SOCK_SEQPACKET socket systemd passed, or -1. */
int fdstore_take_listener(struct fdstore *s);
/* The stored connection of VM id, or -1. */
int fdstore_take_session(struct fdstore *s, const char *id);
/* Connections nobody took back (their VM is gone): let systemd drop them. */
void fdstore_drop_sessions(struct fdstore *s);

void fdstore_store_session(const char *id, int fd);
void fdstore_forget_session(const char *id);
