/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * log.c — journal when stderr is journald's stream (JOURNAL_STREAM, as
 * systemd services see it), else plain lines on stderr.
 */
#include <assert.h>
#include <sys/stat.h>
#include <sys/uio.h>
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

bool ratelimit_below(struct ratelimit *rl, unsigned *ret_suppressed) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        assert(rl);
        if (ret_suppressed)
                *ret_suppressed = 0;
        if (rl->begin == 0 || now - rl->begin > rl->interval_usec) {
                if (ret_suppressed)
                        *ret_suppressed = rl->suppressed;
                rl->begin = now;
                rl->n = 0;
                rl->suppressed = 0;
        }
        if (rl->n < rl->burst) {
                rl->n++;
                return true;
        }
        rl->suppressed++;
        return false;
}

/* The extra fields as NAME=value, into f (one each, at most 7). */
static size_t extra_fields(const struct audit_extra *x, char f[7][1024]) {
        size_t n = 0;

        if (!x)
                return 0;
        if (x->have_caller)
                snprintf(f[n++], sizeof(f[0]), "CALLER_UID=%u", (unsigned) x->caller_uid);
        if (x->caller_pid > 0)
                snprintf(f[n++], sizeof(f[0]), "CALLER_PID=%d", (int) x->caller_pid);
        if (x->caller_unit)
                snprintf(f[n++], sizeof(f[0]), "CALLER_UNIT=%s", x->caller_unit);
        if (x->caller_sender)
                snprintf(f[n++], sizeof(f[0]), "CALLER_BUS_NAME=%s", x->caller_sender);
        if (x->vm_name)
                snprintf(f[n++], sizeof(f[0]), "VM_NAME=%s", x->vm_name);
        if (x->decided_by)
                snprintf(f[n++], sizeof(f[0]), "DECIDED_BY=%s", x->decided_by);
        if (x->decided_by_location)
                snprintf(f[n++], sizeof(f[0]), "DECIDED_BY_LOCATION=%s", x->decided_by_location);
        return n;
}

/* Records made with audit_record_extra_later(), oldest first. */
struct later {
        struct later *next;
        int level;
        const char *message_id;         /* a MID_*: static */
        char *vm_id, *profile, *msg;
        pid_t pid;
        size_t n;
        char fields[7][1024];           /* extra_fields()' */
};

static struct later *later_head, **later_tail = &later_head;
static bool flushing;
static void (*later_schedule)(void *userdata);
static void *later_userdata;

/* A line being built: as much as fits in buf, and n counted past it. */
struct line {
        char *buf;
        size_t size, n;
};

static void line_add(struct line *l, const char *s, size_t len) {
        if (l->n + len < l->size)
                memcpy(l->buf + l->n, s, len);
        l->n += len;
}

static void line_adds(struct line *l, const char *s) {
        line_add(l, s, strlen(s));
}

/* Text that came from outside (a file name, a VM's claimed name, a
 * process's comm, a peer's message) must not start a line of its own on
 * stderr, nor carry control characters (C0, DEL, C1) or bytes that are no
 * UTF-8: C-style escapes for those, and for the backslash, so that an
 * escape cannot be forged either; spaces too (\x20) where they would run
 * into the next field.  journal: for a journal field, where journalctl
 * shows one that is no UTF-8 or holds control characters as a blob, but
 * newlines and backslashes (a unit's name: machine-qemu\x2d1.scope) are
 * the text's own and stay. */
static void line_add_escaped(struct line *l, const char *s, bool spaces, bool journal) {
        const unsigned char *c = (const unsigned char *) s, *end = c + strlen(s);

        while (*c) {
                const unsigned char *run = c;
                size_t k = 0;
                char e[8];

                for (;;) {
                        k = utf8_char_len(c, (size_t) (end - c));
                        if (!*c || k == 0 || utf8_char_is_control(c, k) || (*c == '\\' && !journal) ||
                            (spaces && *c == ' '))
                                break;
                        c += k;
                }
                line_add(l, (const char *) run, (size_t) (c - run));
                if (!*c)
                        break;
                if (*c == '\n')
                        line_add(l, journal ? "\n" : "\\n", journal ? 1 : 2);
                else if (*c == '\\')
                        line_add(l, "\\\\", 2);
                else    /* each byte: of no UTF-8, or of a control character (a C1 has two) */
                        for (size_t j = 0; j < (k ? k : 1); j++)
                                line_add(l, e, (size_t) snprintf(e, sizeof(e), "\\x%02x", c[j]));
                c += k ? k : 1;
        }
}

static void format_line(struct line *l, int level, const char *message_id, const char *vm_id,
                        const char *profile, pid_t pid, char *const *f, size_t n, const char *msg) {
        char num[16];

        line_adds(l, "pmufilterd: ");
        line_adds(l, prefix[level & 7]);
        line_adds(l, ": ");
        line_add_escaped(l, msg, false, false);
        if (!message_id) {
                line_add(l, "\n", 1);
                return;
        }
        line_adds(l, " [MESSAGE_ID=");
        line_adds(l, message_id);
        line_adds(l, " VM_ID=");
        line_adds(l, strna(vm_id));
        line_adds(l, " PROFILE=");
        if (profile)
                line_add_escaped(l, profile, false, false);
        else
                line_adds(l, "n/a");
        line_add(l, num, (size_t) snprintf(num, sizeof(num), " PID=%d", (int) pid));
        /* A value from outside (a VM's name) may hold spaces: as escapes,
         * so that fields stay apart. */
        for (size_t i = 0; i < n; i++) {
                line_add(l, " ", 1);
                line_add_escaped(l, f[i], true, false);
        }
        line_add(l, "]\n", 2);
}

/* "MESSAGE=" and msg escaped as on stderr, its lines kept: a journal
 * field that is no UTF-8 or holds control characters is shown by
 * journalctl as "[blob data]", which would hide the record. */
static char *journal_message(const char *msg) {
        struct line l = { NULL, 0, 0 };
        char *buf;

        line_adds(&l, "MESSAGE=");
        line_add_escaped(&l, msg, false, true);
        buf = malloc(l.n + 1);
        if (!buf)
                return NULL;
        l = (struct line) { buf, l.n + 1, 0 };
        line_adds(&l, "MESSAGE=");
        line_add_escaped(&l, msg, false, true);
        buf[l.n] = 0;
        return buf;
}

static void emit_fields(int level, const char *message_id, const char *vm_id, const char *profile, pid_t pid,
                        char *const *f, size_t n, const char *msg) {
        /* Whatever is said comes after the records said later. */
        if (!flushing)
                audit_flush();
        if (use_journal) {
                struct iovec iov[6 + 7];
                char pri[32], pidbuf[32], mid[64], vmid[96], prof[256];
                _cleanup_free_ char *message = NULL;
                size_t k = 0;

                message = journal_message(msg);
                if (!message)
                        return;
                if (!message_id) {
                        sd_journal_send("%s", message, "PRIORITY=%d", level, NULL);
                        return;
                }
                snprintf(pri, sizeof(pri), "PRIORITY=%d", level);
                snprintf(mid, sizeof(mid), "MESSAGE_ID=%s", message_id);
                snprintf(vmid, sizeof(vmid), "VM_ID=%s", strempty(vm_id));
                snprintf(prof, sizeof(prof), "PROFILE=%s", strempty(profile));
                if (pid > 0)
                        snprintf(pidbuf, sizeof(pidbuf), "PID=%d", (int) pid);
                else
                        snprintf(pidbuf, sizeof(pidbuf), "PID=");
                iov[k++] = (struct iovec) { message, strlen(message) };
                iov[k++] = (struct iovec) { pri, strlen(pri) };
                iov[k++] = (struct iovec) { mid, strlen(mid) };
                iov[k++] = (struct iovec) { vmid, strlen(vmid) };
                iov[k++] = (struct iovec) { prof, strlen(prof) };
                iov[k++] = (struct iovec) { pidbuf, strlen(pidbuf) };
                for (size_t i = 0; i < n; i++)
                        iov[k++] = (struct iovec) { f[i], strlen(f[i]) };
                (void) sd_journal_sendv(iov, (int) k);
                return;
        }
        /* One line per message, whatever it carries: the journal keeps
         * fields whole, a text log only has lines.  Built in memory and
         * written at once (stderr is unbuffered), on the stack unless it is
         * long: three such lines per VM life. */
        char stack[2048];
        _cleanup_free_ char *heap = NULL;
        struct line l = { stack, sizeof(stack), 0 };

        format_line(&l, level, message_id, vm_id, profile, pid, f, n, msg);
        if (l.n >= l.size) {
                heap = malloc(l.n + 1);
                if (!heap)
                        return;
                l = (struct line) { heap, l.n + 1, 0 };
                format_line(&l, level, message_id, vm_id, profile, pid, f, n, msg);
        }
        (void) fwrite(l.buf, 1, l.n, stderr);
}

static void emit(int level, const char *message_id, const char *vm_id, const char *profile,
                 pid_t pid, const struct audit_extra *x, const char *msg) {
        char f[7][1024], *fp[7];
        size_t n = extra_fields(x, f);

        for (size_t i = 0; i < n; i++)
                fp[i] = f[i];
        emit_fields(level, message_id, vm_id, profile, pid, fp, n, msg);
}

static void later_free(struct later *l) {
        free(l->vm_id);
        free(l->profile);
        free(l->msg);
        free(l);
}

void log_set_later(void (*schedule)(void *userdata), void *userdata) {
        later_schedule = schedule;
        later_userdata = userdata;
}

void audit_flush(void) {
        flushing = true;
        while (later_head) {
                struct later *l = later_head;
                char *fp[7];

                later_head = l->next;
                if (!later_head)
                        later_tail = &later_head;
                for (size_t i = 0; i < l->n; i++)
                        fp[i] = l->fields[i];
                emit_fields(l->level, l->message_id, l->vm_id, l->profile, l->pid, fp, l->n, l->msg);
                later_free(l);
        }
        flushing = false;
}

/* fmt formatted into buf, or into *heap when longer (fmt itself without
 * memory): no allocation for the usual message. */
_printf_(4, 0)
static const char *vformat(char *buf, size_t size, char **heap, const char *fmt, va_list ap) {
        va_list aq;
        int n;

        va_copy(aq, ap);
        n = vsnprintf(buf, size, fmt, aq);
        va_end(aq);
        if (n >= 0 && (size_t) n < size)
                return buf;
        if (vasprintf(heap, fmt, ap) < 0) {
                *heap = NULL;
                return fmt;
        }
        return *heap;
}

int log_full_errno(int level, int error, const char *fmt, ...) {
        _cleanup_free_ char *heap = NULL;
        char buf[512];
        const char *msg;
        va_list ap;

        error = error < 0 ? -error : error;
        if (level > max_level)
                return -error;
        errno = error;
        va_start(ap, fmt);
        msg = vformat(buf, sizeof(buf), &heap, fmt, ap);
        va_end(ap);
        emit(level, NULL, NULL, NULL, 0, NULL, msg);
        return -error;
}

_printf_(7, 0)
static void audit_recordv(int level, const char *message_id, const char *vm_id, const char *profile, pid_t pid,
                          const struct audit_extra *x, const char *fmt, va_list ap) {
        _cleanup_free_ char *heap = NULL;
        char buf[512];

        emit(level, message_id, vm_id, profile, pid, x, vformat(buf, sizeof(buf), &heap, fmt, ap));
}

void audit_record(int level, const char *message_id, const char *vm_id, const char *profile,
                  pid_t pid, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        audit_recordv(level, message_id, vm_id, profile, pid, NULL, fmt, ap);
        va_end(ap);
}

void audit_record_extra(int level, const char *message_id, const char *vm_id, const char *profile, pid_t pid,
                        const struct audit_extra *x, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        audit_recordv(level, message_id, vm_id, profile, pid, x, fmt, ap);
        va_end(ap);
}

/* Small: one per VM whose VMM is applying its filter (10,000 at once in a
 * burst), unlike a struct later. */
struct audit_held {
        int level;
        const char *message_id;         /* a MID_*: static */
        pid_t pid;
        char *vm_id, *profile, *msg;
};

static void held_free(struct audit_held *h) {
        free(h->vm_id);
        free(h->profile);
        free(h->msg);
        free(h);
}

struct audit_held *audit_record_held(int level, const char *message_id, const char *vm_id, const char *profile,
                                     pid_t pid, const char *fmt, ...) {
        struct audit_held *h = calloc(1, sizeof(*h));
        va_list ap;

        assert(message_id);
        if (h) {
                *h = (struct audit_held) { .level = level, .message_id = message_id, .pid = pid };
                va_start(ap, fmt);
                if (vasprintf(&h->msg, fmt, ap) < 0)
                        h->msg = NULL;
                va_end(ap);
                if (h->msg && (!vm_id || (h->vm_id = strdup(vm_id))) && (!profile || (h->profile = strdup(profile))))
                        return h;
                held_free(h);
        }
        va_start(ap, fmt);
        audit_recordv(level, message_id, vm_id, profile, pid, NULL, fmt, ap);
        va_end(ap);
        return NULL;
}

void audit_held_say(struct audit_held **h) {
        if (!*h)
                return;
        emit((*h)->level, (*h)->message_id, (*h)->vm_id, (*h)->profile, (*h)->pid, NULL, (*h)->msg);
        held_free(*h);
        *h = NULL;
}

void audit_record_extra_later(int level, const char *message_id, const char *vm_id, const char *profile, pid_t pid,
                              const struct audit_extra *x, const char *fmt, ...) {
        struct later *l;
        bool ok;
        va_list ap;

        assert(message_id);
        l = later_schedule ? calloc(1, sizeof(*l)) : NULL;
        if (l) {
                va_start(ap, fmt);
                ok = vasprintf(&l->msg, fmt, ap) >= 0;
                va_end(ap);
                if (!ok)
                        l->msg = NULL;
                l->level = level;
                l->message_id = message_id;
                l->pid = pid;
                l->n = extra_fields(x, l->fields);
                ok = ok && (!vm_id || (l->vm_id = strdup(vm_id))) && (!profile || (l->profile = strdup(profile)));
                if (ok) {
                        *later_tail = l;
                        later_tail = &l->next;
                        later_schedule(later_userdata);
                        return;
                }
                later_free(l);
        }
        /* No loop to say it later, or no memory to keep it: now. */
        va_start(ap, fmt);
        audit_recordv(level, message_id, vm_id, profile, pid, x, fmt, ap);
        va_end(ap);
}
