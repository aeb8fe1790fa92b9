/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * listen.c — the VMM socket, where systemd did not pass one.
 */
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "fileio.h"
#include "listen.h"
#include "log.h"

/* Bind under a temporary name and rename into place once listening, with
 * its owner and mode set: a VMM never finds the path and then gets
 * ECONNREFUSED, nor a socket it may not use yet. */
int listen_bind(const char *path, const char *group, char **ret_warning) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct group *g;
        int r;

        if (strlen(path) + 16 >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Socket path %s is too long: %m", path);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%d.tmp", path, (int) getpid());
        r = mkdir_parents(path);
        if (r < 0)
                return log_error_errno(r, "Failed to create the directories of %s: %m", path);

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create the VMM socket: %m");
        (void) unlink(sa.sun_path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return log_error_errno(errno, "Failed to bind the VMM socket %s: %m", sa.sun_path);
        /* VMMs run as root or in the socket's group (pmufilterd-vmm(7):
         * mode 0660, group kvm by default). */
        *ret_warning = NULL;
        g = group ? getgrnam(group) : NULL;
        if (g && chown(sa.sun_path, 0, g->gr_gid) < 0)
                log_warning_errno(errno, "Failed to give %s to group %s: %m", sa.sun_path, group);
        if (!g && group) {
                /* Said once, here and in the status: the first anyone would
                 * hear of it otherwise is VMs reported unmanaged. */
                if (asprintf(ret_warning, "group '%s' (settings.socket_group) does not exist: the VMM socket %s is "
                             "root's alone, and VMMs not running as root cannot connect", group, path) < 0)
                        *ret_warning = NULL;
                log_warning("%s", *ret_warning ? *ret_warning : "the VMM socket's group does not exist");
        }
        if (chmod(sa.sun_path, 0660) < 0 || listen(fd, SOMAXCONN) < 0 || rename(sa.sun_path, path) < 0) {
                r = log_error_errno(errno, "Failed to set up the VMM socket %s: %m", path);

                (void) unlink(sa.sun_path);
                return r;
        }
        return TAKE_FD(fd);
}

