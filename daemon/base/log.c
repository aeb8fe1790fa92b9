/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * log.c — journal when stderr is journald's stream (JOURNAL_STREAM, as
 * systemd services see it), else plain lines on stderr.
 */
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "log.h"

static bool use_journal;
static int max_level = LOG_INFO;

void log_open(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        use_journal = false;
        if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0)
                use_journal = st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

void log_set_max_level(int level) {
        max_level = level;
}

static const char *const prefix[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
        [LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

static void emit(int level, const char *message_id, const char *vm_id, const char *profile,
                 pid_t pid, const char *msg) {
        if (use_journal) {
                char pidbuf[32];

                snprintf(pidbuf, sizeof(pidbuf), "PID=%d", (int) pid);
                if (message_id)
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level,
                                        "MESSAGE_ID=%s", message_id,
                                        "VM_ID=%s", strempty(vm_id),
                                        "PROFILE=%s", strempty(profile),
                                        pid > 0 ? pidbuf : "PID=",
                                        NULL);
                else
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, NULL);
                return;
        }
        if (message_id)
                fprintf(stderr, "pmufilterd: %s: %s [MESSAGE_ID=%s VM_ID=%s PROFILE=%s PID=%d]\n",
                        prefix[level & 7], msg, message_id, strna(vm_id), strna(profile), (int) pid);
        else
                fprintf(stderr, "pmufilterd: %s: %s\n", prefix[level & 7], msg);
}

int log_full_errno(int level, int error, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        error = error < 0 ? -error : error;
        if (level > max_level)
                return -error;
        errno = error;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        emit(level, NULL, NULL, NULL, 0, msg ? msg : fmt);
        return -error;
}

void audit_record(int level, const char *message_id, const char *vm_id, const char *profile,
                  pid_t pid, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        emit(level, message_id, vm_id, profile, pid, msg ? msg : fmt);
}
