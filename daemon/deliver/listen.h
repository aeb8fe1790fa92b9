/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* listen.h — the VMM socket's path on disk. */
#pragma once

/* Bind a listening SOCK_SEQPACKET socket at path, mode 0660, of group
 * (settings.socket_group), and return it.  -errno, logged.  Where the
 * group does not exist, *ret_warning says what that means (allocated). */
int listen_bind(const char *path, const char *group, char **ret_warning);
