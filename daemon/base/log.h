/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * log.h — one logging idiom for the daemon.  log_*() for ordinary messages;
 * audit_*() for the records of the audit trail (pmufilterd(8), AUDIT
 * TRAIL): structured journal entries with MESSAGE_ID=, VM_ID=, PROFILE=,
 * PID=.  Under journald they go to the journal; otherwise to stderr as one
 * line with the fields.
 */
#pragma once

#include <sys/types.h>
#include <syslog.h>

#include "util.h"

/* MESSAGE_IDs of the audit records (stable: operators filter on them). */
#define MID_ATTACH      "b1be182962774d2dab6f8b6b86c06596"
#define MID_APPLIED     "1ea239d184ed43abbe2818286fc1e3db"
#define MID_FAILED      "8e88808ab8594a2d8dec232389188d16"
#define MID_UNMANAGED   "f407dd7ea0e64d42ad13d3911067d020"
#define MID_RELOAD      "31e9b156b848491ea6d96f28f63f047e"
#define MID_LOCKDOWN    "4df81a43d77c41bd8e8f615bf91555aa"
#define MID_REFUSED     "0b478910967b49bbabd90581a6bdc778"
#define MID_GONE        "24eff00b553849aa9acec31a87cd8b48"
#define MID_RUNTIME     "5c1e0b0e2f6d4c4f9a3e7d2b8f1a6c30"

void log_open(void);
void log_set_max_level(int level);

int log_full_errno(int level, int error, const char *fmt, ...) _printf_(3, 4);
#define log_debug(...)   log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_ERR, 0, __VA_ARGS__)
/* Returns -abs(error) so `return log_error_errno(r, "...: %m")` works; %m is
 * the error's text. */
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)

/* At most burst messages per interval, as systemd's log_ratelimit_*():
 * for what a peer can make the daemon say as often as it likes. */
struct ratelimit {
        uint64_t interval_usec;
        unsigned burst;
        uint64_t begin;
        unsigned n, suppressed;
};
#define RATELIMIT_INIT(interval, b) { .interval_usec = (interval), .burst = (b) }
/* true: say it.  *ret_suppressed: how many were held back in the interval
 * that just ended, to be said with this one (0 most of the time). */
bool ratelimit_below(struct ratelimit *rl, unsigned *ret_suppressed);

/* More of an audit record (pmufilterd(8), AUDIT TRAIL): who asked for a
 * change and what decided a VM's profile.  Journal fields CALLER_UID=,
 * CALLER_PID=, CALLER_UNIT=, CALLER_BUS_NAME=, VM_NAME=, DECIDED_BY=;
 * unset ones are left out. */
struct audit_extra {
        bool have_caller;
        uid_t caller_uid;
        pid_t caller_pid;               /* 0: unknown */
        const char *caller_unit;
        const char *caller_sender;      /* the D-Bus unique name */
        const char *vm_name;
        const char *decided_by;         /* "rule:3", "default", "runtime", "persistent", ... */
        const char *decided_by_location;        /* of a rule: "/etc/pmufilterd/pmufilterd.yaml:40" */
};

void audit_record_extra(int level, const char *message_id, const char *vm_id, const char *profile, pid_t pid,
                        const struct audit_extra *x, const char *fmt, ...) _printf_(7, 8);

/* The same, made now and written when the daemon's loop next has nothing
 * more urgent to do, or before anything else is logged, whichever comes
 * first: for a record made between a request and its answer (a D-Bus
 * change: the VMM applies the APPLY while the record goes out).  At once
 * where no loop said how to wait (log_set_later()), or without memory. */
void audit_record_extra_later(int level, const char *message_id, const char *vm_id, const char *profile,
                              pid_t pid, const struct audit_extra *x, const char *fmt, ...) _printf_(7, 8);
/* schedule(userdata): have audit_flush() called soon (at idle priority). */
void log_set_later(void (*schedule)(void *userdata), void *userdata);
/* Write the records made with _later() now, oldest first. */
void audit_flush(void);

/* A record made now and written when its owner says (audit_held_say()):
 * an attach's, made as its APPLY goes and written with the VMM's answer,
 * so that the daemon writes nothing while the VMM applies the filter
 * (docs/architecture.md, "The life of one VM").  NULL, the record written
 * at once, without memory to hold it. */
struct audit_held;
struct audit_held *audit_record_held(int level, const char *message_id, const char *vm_id, const char *profile,
                                     pid_t pid, const char *fmt, ...) _printf_(6, 7);
/* Write *h, if any, and free it. */
void audit_held_say(struct audit_held **h);

/* An audit record.  vm_id, profile may be NULL; pid 0 = none. */
void audit_record(int level, const char *message_id, const char *vm_id, const char *profile,
                  pid_t pid, const char *fmt, ...) _printf_(6, 7);
