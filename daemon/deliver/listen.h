/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* listen.h — the VMM socket's path on disk. */
#pragma once

/* Bind a listening SOCK_SEQPACKET socket at path, mode 0660, group kvm
 * where that group exists, and return it.  -errno, logged. */
int listen_bind(const char *path);
