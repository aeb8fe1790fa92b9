/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fdstore.c — the fds systemd keeps for us across a restart.
 */
#include <assert.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "fdstore.h"
#include "log.h"
#include "util.h"

#define SESSION_FDNAME_PREFIX "session-"

int fdstore_take_passed(struct fdstore *s) {
        char **names = NULL;
        int *fds, n;

        assert(s);
        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return log_error_errno(n, "Failed to take the fds passed by systemd: %m");
        fds = calloc(n + 1, sizeof(int));
        if (!fds) {
                strv_free(names);
                return log_error_errno(ENOMEM, "Failed to take the fds passed by systemd: %m");
        }
        for (int i = 0; i < n; i++)
                fds[i] = SD_LISTEN_FDS_START + i;
        *s = (struct fdstore) { .fds = fds, .names = names, .n = (size_t) n };
        return n;
}

void fdstore_done(struct fdstore *s) {
        for (size_t i = 0; i < s->n; i++)
                safe_close(s->fds[i]);
        free(s->fds);
        strv_free(s->names);
        *s = (struct fdstore) {};
}

int fdstore_take_listener(struct fdstore *s) {
        for (size_t i = 0; i < s->n; i++)
                if (s->fds[i] >= 0 && sd_is_socket_unix(s->fds[i], SOCK_SEQPACKET, 1, NULL, 0) > 0) {
                        int fd = TAKE_FD(s->fds[i]);

                        (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                        return fd;
                }
        return -1;
}

int fdstore_take_session(struct fdstore *s, const char *id) {
        for (size_t i = 0; i < s->n; i++) {
                const char *n = s->names ? s->names[i] : NULL;
                const char *v = n ? startswith(n, SESSION_FDNAME_PREFIX) : NULL;

                if (v && streq(v, id) && s->fds[i] >= 0)
                        return TAKE_FD(s->fds[i]);
        }
        return -1;
}

void fdstore_drop_sessions(struct fdstore *s) {
        for (size_t i = 0; i < s->n; i++) {
                const char *name = s->names ? s->names[i] : NULL;

                if (s->fds[i] >= 0 && name && startswith(name, SESSION_FDNAME_PREFIX)) {
                        (void) sd_notifyf(false, "FDSTOREREMOVE=1\nFDNAME=%s", name);
                        s->fds[i] = safe_close(s->fds[i]);
                }
        }
}

void fdstore_store_session(const char *id, int fd) {
        char msg[128];

        snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=" SESSION_FDNAME_PREFIX "%s", id);
        (void) sd_pid_notify_with_fds(0, false, msg, &fd, 1);
}

void fdstore_forget_session(const char *id) {
        (void) sd_notifyf(false, "FDSTOREREMOVE=1\nFDNAME=" SESSION_FDNAME_PREFIX "%s", id);
}
