/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * records.c — the VM records, one append-only log under
 * <runtime dir>/records (records.h; docs/architecture.md, "The record").
 */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>

#include "compile.h"
#include "fileio.h"
#include "log.h"
#include "procscan.h"
#include "proto-syntax.h"
#include "records.h"

/* A log is rewritten whole once it has grown to four times what it held
 * then: appends stay amortised O(1) per record, and the log at most four
 * times the live records (or this much). */
#define RECORDS_COMPACT_MIN (64 * 1024)
#define RECORDS_COMPACT_FACTOR 4

/* What a start reads of the log at most.  10,000 VMs (docs/benchmarks.md)
 * of records of a few KiB are some tens of MiB, the log up to four times
 * that before it is compacted: a bound that no honest log reaches, small
 * enough to read at once. */
#define RECORDS_LOG_MAX (128 * 1024 * 1024)
/* Entries read back at most: a log the daemon wrote holds a few per VM
 * between compactions (tens of thousands at 10,000 VMs); 128 MiB of "G 1-0"
 * lines would be 22 million, 700 MiB to sort. */
#define RECORDS_ENTRIES_MAX (1024 * 1024)

/* "<pid>-<fd>": two ints and a dash. */
#define RECORD_ID_MAX 24

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

static int write_record(FILE *out, const void *userdata) {
        const struct vm *vm = userdata;
        const struct compiled_filter *f = vm->filter;

        fprintf(out, "PID=%d\nFD=%d\nSTARTTIME=%" PRIu64 "\nSTATE=%s\nVCPUS=%u\nSERIAL=%" PRIu64 "\n"
                     "APPLIED_USEC=%" PRIu64 "\nLAST_ERRNO=%d\nIN_FORCE=%d\n",
                (int) vm->pid, vm->fd, vm->starttime, vm_state_to_string(vm->state), vm->vcpus,
                vm->serial_pending, vm->applied_usec, vm->last_errno, vm->in_force);
        if (vm->name)
                fprintf(out, "NAME=%s\n", vm->name);
        if (vm->uuid)
                fprintf(out, "UUID=%s\n", vm->uuid);
        if (vm->client)
                fprintf(out, "CLIENT=%s\n", vm->client);
        if (vm->labels)
                for (char **l = vm->labels; *l; l++)
                        fprintf(out, "LABEL=%s\n", *l);
        if (vm->profile)
                fprintf(out, "PROFILE=%s\nPROFILE_SOURCE=%s\n", vm->profile, vm->profile_source);
        if (vm->override)
                fprintf(out, "OVERRIDE=%s\nOVERRIDE_RUNTIME=%d\n", vm->override, vm->override_runtime);
        if (vm->last_error)
                fprintf(out, "LAST_ERROR=%s\n", vm->last_error);
        if (f) {
                fprintf(out, "PMU_OFF=%d\nACTION=%" PRIu32 "\nFLAGS=%" PRIu32 "\nFIXED=%" PRIu32 "\nEVENTS=",
                        f->pmu_off, f->action, f->flags, f->fixed_counter_bitmap);
                for (uint32_t i = 0; i < f->nevents; i++)
                        fprintf(out, "%s0x%" PRIx64, i ? "," : "", f->events[i]);
                fputc('\n', out);
        }
        return ferror(out) ? -EIO : 0;
}

/* One entry of the log: "R <id> <len>\n" and vm's record.  -E2BIG for a
 * record no reader would take. */
static int write_entry(FILE *out, const struct vm *vm) {
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        int r;

        r = format_in_memory(write_record, vm, &body, &len);
        if (r < 0)
                return r;
        if (len > RECORD_MAX)
                return -E2BIG;
        fprintf(out, "R %s %zu\n", vm->id, len);
        fwrite(body, 1, len, out);
        return ferror(out) ? -EIO : 0;
}

struct compaction {
        const struct records *rec;
        const struct vm *except;        /* gone, not removed yet */
};

/* The whole log: the current record of every registered VM. */
static int write_all_entries(FILE *out, const void *userdata) {
        const struct compaction *c = userdata;

        REGISTRY_FOREACH(vm, c->rec->registry) {
                int r;

                if (vm == c->except)
                        continue;
                r = write_entry(out, vm);
                if (r < 0 && r != -E2BIG)       /* such a VM is found again by the /proc scan */
                        return r;
        }
        return 0;
}

static void warn_failed(struct records *rec, int error) {
        unsigned suppressed;

        if (!ratelimit_below(&rec->failed_said, &suppressed))
                return;
        if (suppressed > 0)
                log_warning("%u more writes of the VM records failed in the last minute", suppressed);
        log_warning_errno(error, "Failed to write %s: %m", rec->path);
}

static int open_log(struct records *rec) {
        struct stat st;
        bool made_dirs = false;
        int fd;

        if (rec->fd >= 0)
                return 0;
        for (;;) {
                /* O_NONBLOCK: a FIFO there must not hang the loop (and is refused below). */
                fd = open(rec->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK,
                          0600);
                if (fd >= 0)
                        break;
                if (errno != ENOENT || made_dirs)
                        return -errno;
                if (mkdir_parents(rec->path) < 0)
                        return -errno;
                made_dirs = true;
        }
        if (fstat(fd, &st) < 0) {
                int r = -errno;

                safe_close(fd);
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                safe_close(fd);
                return -EBADFD;
        }
        rec->fd = fd;
        rec->size = (uint64_t) st.st_size;
        return 0;
}

/* Rewrite the log from the registry, and append to the new one. */
static int compact(struct records *rec, const struct vm *except) {
        struct compaction c = { rec, except };
        int r;

        /* Not synced: the records describe processes, which a power cut ends too. */
        r = write_file_atomic(rec->path, 0600, WRITE_FILE_MKDIR, write_all_entries, &c);
        if (r < 0)
                return r;
        rec->fd = safe_close(rec->fd);
        r = open_log(rec);
        if (r < 0)
                return r;
        rec->compacted_size = rec->size;
        return 0;
}

static int append_pending(struct records *rec, const char *buf, size_t n) {
        int r;

        r = open_log(rec);
        if (r < 0)
                return r;
        r = write_all(rec->fd, buf, n);
        if (r < 0) {
                /* No torn entry for the next ones to follow. */
                if (ftruncate(rec->fd, (off_t) rec->size) < 0)
                        rec->fd = safe_close(rec->fd);
                return r;
        }
        rec->size += n;
        return 0;
}

static void drop_pending(struct records *rec) {
        if (rec->pending)
                fclose(rec->pending);
        rec->pending = NULL;
        free(rec->pending_buf);
        rec->pending_buf = NULL;
        rec->pending_size = 0;
}

/* The log removed (or replaced) under the daemon: appended to, it would be
 * read by no later start.  One fstat() a batch. */
static bool log_unlinked(struct records *rec) {
        struct stat st;

        if (rec->fd < 0 || fstat(rec->fd, &st) < 0 || st.st_nlink > 0)
                return false;
        log_warning("%s was removed while pmufilterd ran: written again whole", rec->path);
        return true;
}

/* Write what is pending: appended in one write(), or the log rewritten
 * whole when it has grown enough (or a write failed).  Then the VMs of the
 * batch are recorded. */
static void commit(struct records *rec, const struct vm *except) {
        /* Taken: a listener may record again (a VM that could not be queued). */
        _cleanup_free_ struct vm_key *batch = TAKE_PTR(rec->batch);
        size_t n_batch = rec->n_batch, allocated = rec->allocated_batch;
        uint64_t limit;
        bool whole;
        int r = 0;

        rec->n_batch = rec->allocated_batch = 0;
        if (rec->pending && fflush(rec->pending) != 0)
                r = -ENOMEM;
        limit = RECORDS_COMPACT_FACTOR * rec->compacted_size;
        if (limit < RECORDS_COMPACT_MIN)
                limit = RECORDS_COMPACT_MIN;
        whole = rec->broken || rec->size + rec->pending_size > limit || log_unlinked(rec);
        if (r >= 0)
                r = whole ? compact(rec, except) : append_pending(rec, rec->pending_buf, rec->pending_size);
        drop_pending(rec);
        rec->broken = r < 0;
        if (r < 0) {
                /* Their records are written by the next commit (a whole
                 * rewrite): they are told then, with that commit's batch. */
                warn_failed(rec, r);
                rec->batch = TAKE_PTR(batch);
                rec->n_batch = n_batch;
                rec->allocated_batch = allocated;
                return;
        }
        for (size_t i = 0; i < n_batch; i++) {
                struct vm *vm = registry_get(rec->registry, batch[i].pid, batch[i].fd);

                if (vm)         /* still there */
                        registry_notify(rec->registry, REGISTRY_VM_RECORDED, vm, NULL);
        }
        if (!rec->batch) {      /* kept for the next batch */
                rec->batch = TAKE_PTR(batch);
                rec->allocated_batch = allocated;
        }
}

static FILE *pending(struct records *rec) {
        if (!rec->pending)
                rec->pending = open_memstream(&rec->pending_buf, &rec->pending_size);
        return rec->pending;
}

static void record_run(struct vm *vm, void *userdata) {
        struct records *rec = userdata;
        FILE *f;
        int r;

        if (!vm->record_dirty)
                return;
        vm->record_dirty = false;
        f = pending(rec);
        if (!f || !GREEDY_REALLOC(rec->batch, rec->allocated_batch, rec->n_batch + 1)) {
                rec->broken = true;     /* the next write rewrites it whole */
                return warn_failed(rec, ENOMEM);
        }
        r = write_entry(f, vm);
        if (r == -E2BIG) {
                log_warning("The record of VM %s is over %u bytes: not kept (a restart finds the VM by the "
                            "/proc scan, and its VMM attaches again)", vm->id, RECORD_MAX);
                fprintf(f, "G %s\n", vm->id);
                return;
        }
        if (r < 0) {
                rec->broken = true;
                return warn_failed(rec, r);
        }
        rec->batch[rec->n_batch++] = (struct vm_key) { vm->pid, vm->fd };
}

static void turn_done(void *userdata) {
        struct records *rec = userdata;

        if (rec->pending || rec->broken)
                commit(rec, NULL);
}

int records_init(struct records *rec, struct registry *r, sd_event *e, const char *runtime_dir) {
        assert(rec);
        assert(r);
        assert(runtime_dir);
        *rec = (struct records) {
                .registry = r,
                .fd = -1,
                .failed_said = RATELIMIT_INIT(60 * 1000 * 1000ULL, 5),
                .queue = {
                        .description = "vm-records",
                        .run = record_run,
                        .turn_done = turn_done,
                        .userdata = rec,
                        .registry = r,
                        .event = e,
                        .priority = SD_EVENT_PRIORITY_IDLE,
                        .max_lag_usec = 1000 * 1000,
                },
        };
        if (asprintf(&rec->path, "%s/records", runtime_dir) < 0) {
                rec->path = NULL;
                return -ENOMEM;
        }
        if (asprintf(&rec->legacy_dir, "%s/vms", runtime_dir) < 0) {
                rec->legacy_dir = NULL;
                return -ENOMEM;
        }
        return 0;
}

void records_done(struct records *rec) {
        vm_queue_done(&rec->queue);
        /* What is still pending (a VM gone after the last flush), as it is;
         * after a failed write the next start reads what is there. */
        if (rec->pending && !rec->broken && fflush(rec->pending) == 0)
                (void) append_pending(rec, rec->pending_buf, rec->pending_size);
        drop_pending(rec);
        free(rec->batch);
        rec->batch = NULL;
        rec->n_batch = rec->allocated_batch = 0;
        rec->fd = safe_close(rec->fd);
        free(rec->path);
        free(rec->legacy_dir);
        rec->path = rec->legacy_dir = NULL;
}

void records_flush(struct records *rec) {
        vm_queue_run(&rec->queue, SIZE_MAX);
        turn_done(rec);
}

void records_mark(struct records *rec, struct vm *vm) {
        assert(vm);
        if (vm->record_dirty)
                return;
        vm->record_dirty = true;
        if (vm_queue_push(&rec->queue, vm) < 0) {
                record_run(vm, rec);    /* now, then */
                commit(rec, NULL);
        }
}

void records_forget(struct records *rec, const struct vm *vm) {
        FILE *f = pending(rec);

        if (!f) {
                rec->broken = true;
                return warn_failed(rec, ENOMEM);
        }
        fprintf(f, "G %s\n", vm->id);
        /* With a batch coming, in its write: the log keeps the order of events. */
        if (rec->queue.n == 0)
                commit(rec, vm);
}

/* Unsigned decimal (or 0x hex) no greater than max, and nothing else. */
static int parse_number(const char *v, uint64_t max, uint64_t *ret) {
        uint64_t x;

        if (safe_atou64(v, &x) < 0 || x > max)
                return -EINVAL;
        *ret = x;
        return 0;
}

#define PARSE_INTO(v, max, field)                                       \
        ({                                                              \
                uint64_t _x = 0;                                        \
                int _r = parse_number((v), (max), &_x);                 \
                if (_r >= 0)                                            \
                        (field) = (__typeof__(field)) _x;               \
                _r;                                                     \
        })

/* A string the daemon wrote: what ATTACH takes as a NAME or a label
 * (proto_value_ok(): UTF-8 without C0 or DEL), which D-Bus needs too (one
 * that is not would fail every ListVMs).  Else the record is not one of
 * ours. */
static int parse_text(const char *v, char **field) {
        if (!proto_value_ok(v, true))
                return -EINVAL;
        return free_and_strdup(field, v);
}

/* EVENTS=0x..,0x..: replaces what an earlier EVENTS= line gave. */
static int parse_events(const char *s, struct compiled_filter *f) {
        size_t n = 0;
        uint64_t *events;

        if (*s)
                for (const char *c = s; c; c = strchr(c, ','), c = c ? c + 1 : NULL)
                        n++;
        events = calloc(n + 1, sizeof(uint64_t));
        if (!events)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                size_t l = strcspn(s, ",");
                char word[24];

                if (l == 0 || l >= sizeof(word)) {
                        free(events);
                        return -EINVAL;
                }
                memcpy(word, s, l);
                word[l] = 0;
                if (parse_number(word, UINT64_MAX, &events[i]) < 0) {
                        free(events);
                        return -EINVAL;
                }
                s += l + (s[l] == ',');
        }
        free(f->events);
        f->events = events;
        f->nevents = (uint32_t) n;
        return 0;
}

int record_parse(const char *buf, size_t len, struct vm *vm, enum vm_state *ret_state) {
        _cleanup_free_ char *copy = NULL;
        enum vm_state state = VM_DETECTED;
        bool have_starttime = false, have_state = false, have_in_force = false;
        char *line, *next;
        int r = 0;

        assert(buf);
        assert(vm);
        if (memchr(buf, 0, len))
                return -EINVAL;
        copy = strndup(buf, len);
        if (!copy)
                return -ENOMEM;
        if (!vm->filter) {
                vm->filter = calloc(1, sizeof(*vm->filter));
                if (!vm->filter)
                        return -ENOMEM;
        }
        for (line = copy; r >= 0 && line && *line; line = next) {
                char *eq, *v;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                eq = strchr(line, '=');
                if (!eq)
                        return -EINVAL;
                *eq = 0;
                v = eq + 1;
                if (streq(line, "STATE")) {
                        r = vm_state_from_string(v, &state);
                        have_state = true;
                } else if (streq(line, "STARTTIME")) {
                        r = PARSE_INTO(v, UINT64_MAX, vm->starttime);
                        have_starttime = true;
                }
                else if (streq(line, "VCPUS"))
                        r = PARSE_INTO(v, UINT32_MAX, vm->vcpus);
                else if (streq(line, "SERIAL"))
                        r = PARSE_INTO(v, UINT64_MAX, vm->serial_pending);
                else if (streq(line, "APPLIED_USEC"))
                        r = PARSE_INTO(v, UINT64_MAX, vm->applied_usec);
                else if (streq(line, "LAST_ERRNO"))
                        r = PARSE_INTO(v, 4095, vm->last_errno);
                else if (streq(line, "IN_FORCE")) {
                        r = PARSE_INTO(v, 1, vm->in_force);
                        have_in_force = true;
                }
                else if (streq(line, "NAME"))
                        r = parse_text(v, &vm->name);
                else if (streq(line, "UUID"))
                        r = parse_text(v, &vm->uuid);
                else if (streq(line, "CLIENT"))
                        vm->client = vm_client_from_string(v);
                else if (streq(line, "LABEL")) {
                        _cleanup_free_ char *label = NULL;

                        r = parse_text(v, &label);
                        if (r >= 0)
                                r = strchr(label, '=') && label[0] != '=' ? strv_push(&vm->labels, label) : -EINVAL;
                        if (r >= 0)
                                label = NULL;   /* the list's now */
                } else if (streq(line, "PROFILE"))
                        r = parse_text(v, &vm->profile);
                else if (streq(line, "PROFILE_SOURCE")) {
                        _cleanup_free_ char *source = NULL;

                        r = parse_text(v, &source);
                        /* Whole, or not at all: cut, it could end mid-character. */
                        if (r >= 0 && strlen(source) >= sizeof(vm->profile_source))
                                r = -EINVAL;
                        if (r >= 0)
                                strcpy(vm->profile_source, source);
                } else if (streq(line, "OVERRIDE"))
                        r = parse_text(v, &vm->override);
                else if (streq(line, "OVERRIDE_RUNTIME"))
                        r = PARSE_INTO(v, 1, vm->override_runtime);
                else if (streq(line, "LAST_ERROR"))
                        /* A text, not an identity: escaped as when it was set. */
                        vm_set_last_error(vm, v);
                else if (streq(line, "PMU_OFF"))
                        r = PARSE_INTO(v, 1, vm->filter->pmu_off);
                else if (streq(line, "ACTION"))
                        r = PARSE_INTO(v, 1, vm->filter->action);
                else if (streq(line, "FLAGS"))
                        r = PARSE_INTO(v, UINT32_MAX, vm->filter->flags);
                else if (streq(line, "FIXED"))
                        r = PARSE_INTO(v, UINT32_MAX, vm->filter->fixed_counter_bitmap);
                else if (streq(line, "EVENTS"))
                        r = parse_events(v, vm->filter);
                /* other keys: a later version's, ignored */
        }
        /* Every record starts with these: one without them was cut short. */
        if (r >= 0 && (!have_starttime || !have_state))
                r = -EINVAL;
        /* A record of a daemon before IN_FORCE: as it showed the VM. */
        if (!have_in_force)
                vm->in_force = (state == VM_FILTERED || state == VM_ADOPTED || state == VM_DETACHED) &&
                               vm->applied_usec != 0 && vm->last_errno == 0;
        if (r >= 0 && vm->profile && !vm->filter->profile)
                r = free_and_strdup(&vm->filter->profile, vm->profile);
        if (r < 0)
                return r;
        *ret_state = state;
        return 0;
}

/* Reading the log: a cursor over the bytes to its end.  Each take_*()
 * gives 1 (taken), 0 (the end came first: a prefix of what was expected)
 * or -EBADMSG. */
struct cursor {
        const char *p;
        size_t n, i;
};

static int take_char(struct cursor *c, char ch) {
        if (c->i == c->n)
                return 0;
        if (c->p[c->i] != ch)
                return -EBADMSG;
        c->i++;
        return 1;
}

/* Decimal in its one spelling (no sign, no leading zero), min to max. */
static int take_number(struct cursor *c, uint64_t min, uint64_t max, uint64_t *ret) {
        size_t start = c->i;
        uint64_t x = 0;

        for (; c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9'; c->i++) {
                if (c->i > start && c->p[start] == '0')
                        return -EBADMSG;
                x = x * 10 + (uint64_t) (c->p[c->i] - '0');     /* x ≤ max ≤ INT_MAX before: no overflow */
                if (x > max)
                        return -EBADMSG;
        }
        if (c->i == c->n)
                return c->i > start && x < min && c->p[start] == '0' ? -EBADMSG : 0;
        if (c->i == start || x < min)
                return -EBADMSG;
        *ret = x;
        return 1;
}

#define TAKE(call)                              \
        do {                                    \
                int _r = (call);                \
                if (_r <= 0)                    \
                        return _r;              \
        } while (0)

/* "R <pid>-<fd> <len>\n" or "G <pid>-<fd>\n". */
static int take_header(struct cursor *c, char *ret_kind, char id[static RECORD_ID_MAX], uint64_t *ret_len) {
        uint64_t pid, fd, len = 0;
        size_t start;
        char kind;

        if (c->i == c->n)
                return 0;
        kind = c->p[c->i++];
        if (kind != 'R' && kind != 'G')
                return -EBADMSG;
        TAKE(take_char(c, ' '));
        start = c->i;
        TAKE(take_number(c, 1, INT_MAX, &pid));
        TAKE(take_char(c, '-'));
        TAKE(take_number(c, 0, INT_MAX, &fd));
        memcpy(id, c->p + start, c->i - start);         /* at most 10 + 1 + 10 */
        id[c->i - start] = 0;
        if (kind == 'R') {
                TAKE(take_char(c, ' '));
                TAKE(take_number(c, 0, RECORD_MAX, &len));
        }
        TAKE(take_char(c, '\n'));
        *ret_kind = kind;
        *ret_len = len;
        return 1;
}

int records_log_parse(const char *buf, size_t len,
                      int (*entry)(const char *id, const char *body, size_t body_len, void *userdata),
                      void *userdata, size_t *ret_good_len) {
        size_t i = 0;
        int r = 0;

        assert(buf || len == 0);
        assert(entry);
        while (i < len) {
                struct cursor c = { buf, len, i };
                char kind = 0, id[RECORD_ID_MAX];
                uint64_t body_len = 0;

                r = take_header(&c, &kind, id, &body_len);
                if (r == 0 || (r > 0 && len - c.i < body_len))
                        r = -ENODATA;
                if (r > 0)
                        r = entry(id, kind == 'R' ? buf + c.i : NULL, (size_t) body_len, userdata);
                if (r < 0)
                        break;
                i = c.i + (size_t) body_len;
        }
        if (ret_good_len)
                *ret_good_len = i;
        return r < 0 ? r : 0;
}

/* Restoring: the entries of the old files and the log, in order; the last
 * of each id counts. */
struct restore_entry {
        int pid, fd;
        size_t seq;
        const char *body;       /* NULL: gone */
        size_t len;
};

struct restore {
        struct records *rec;
        struct restore_entry *entries;
        size_t n, allocated;
        char **bufs;            /* of the old per-VM files */
        char *aside;            /* the log was set aside there */
        bool aside_tried;
};

static int add_entry(const char *id, const char *body, size_t len, void *userdata) {
        struct restore *s = userdata;
        int pid, fd, n = 0;

        if (sscanf(id, "%d-%d%n", &pid, &fd, &n) != 2 || id[n] != '\0' || pid <= 0 || fd < 0)
                return 0;       /* an old file's name (the log's are checked) */
        if (s->n >= RECORDS_ENTRIES_MAX)
                return -E2BIG;
        if (!GREEDY_REALLOC(s->entries, s->allocated, s->n + 1))
                return -ENOMEM;
        s->entries[s->n] = (struct restore_entry) { pid, fd, s->n, body, len };
        s->n++;
        return 0;
}

static int entry_cmp_id(const void *a, const void *b) {
        const struct restore_entry *x = a, *y = b;

        if (x->pid != y->pid)
                return x->pid < y->pid ? -1 : 1;
        if (x->fd != y->fd)
                return x->fd < y->fd ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int entry_cmp_seq(const void *a, const void *b) {
        const struct restore_entry *x = a, *y = b;

        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Kept for a post-mortem, where no start reads it again (once: a later
 * one would overwrite it). */
static const char *set_aside(struct restore *s) {
        const char *path = s->rec->path;

        if (s->aside_tried)
                return s->aside;
        s->aside_tried = true;
        if (asprintf(&s->aside, "%s.corrupt", path) < 0) {
                s->aside = NULL;
                return NULL;
        }
        if (rename(path, s->aside) < 0) {
                /* A directory in the way, or there: out of the way both. */
                if (unlink(s->aside) < 0)
                        (void) rm_rf_shallow(s->aside);
                if (rename(path, s->aside) < 0) {
                        if (unlink(path) < 0)
                                (void) rm_rf_shallow(path);
                        free(s->aside);
                        s->aside = NULL;
                }
        }
        return s->aside;
}

/* The per-VM files of an earlier version: entries before the log's. */
static int read_legacy(struct restore *s, bool *ret_found) {
        _cleanup_(closedirp) DIR *d = opendir(s->rec->legacy_dir);
        struct dirent *de;

        *ret_found = d;
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *buf = NULL;
                size_t len;
                int r;

                if (de->d_name[0] == '.' || strchr(de->d_name, '.'))
                        continue;       /* not a record (a temporary file, a .corrupt one) */
                if (asprintf(&path, "%s/%s", s->rec->legacy_dir, de->d_name) < 0)
                        return -ENOMEM;
                r = read_file_bounded(path, RECORD_MAX, READ_FILE_NOFOLLOW, &buf, &len);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        log_error_errno(r, "Failed to read %s: %m; the VM is found by the /proc scan, and its "
                                        "VMM attaches again", path);
                        continue;
                }
                r = strv_push(&s->bufs, buf);
                if (r < 0)
                        return r;
                r = add_entry(de->d_name, TAKE_PTR(buf), len, s);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The log's entries.  Whatever the bytes, what is before a framing error
 * is used, and the error said. */
static int read_log(struct restore *s, char **ret_buf, bool *ret_found) {
        const char *path = s->rec->path;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, good = 0;
        int r;

        *ret_found = false;
        r = read_file_bounded(path, RECORDS_LOG_MAX, READ_FILE_NOFOLLOW, &buf, &len);
        if (r == -ENOENT)
                return 0;
        *ret_found = true;
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                const char *aside = set_aside(s);

                log_error("%s cannot be read (%s): %s%s; every VM is found by the /proc scan, and its VMM "
                          "attaches again", path, r == -EBADFD ? "not a regular file" : r == -EFBIG ?
                          "larger than 128 MiB" : strerror(-r),
                          aside ? "set aside as " : "removed", strempty(aside));
                return 0;
        }
        r = records_log_parse(buf, len, add_entry, s, &good);
        if (r == -ENOMEM)
                return r;
        if (r == -ENODATA)
                log_warning("%s: its last entry (from byte %zu of %zu) was cut short, by a daemon stopped while "
                            "writing it: ignored", path, good, len);
        else if (r < 0) {
                const char *aside = set_aside(s);

                /* What came after the fault is unknown: a record before it may
                 * have been replaced or ended since, so none is believed. */
                s->n = 0;
                if (r == -E2BIG)
                        log_error("%s: more than %u entries, not a log pmufilterd writes: %s%s; nothing is "
                                  "restored from it (every VM is found by the /proc scan, and its VMM attaches "
                                  "again)", path, RECORDS_ENTRIES_MAX, aside ? "set aside as " : "removed",
                                  strempty(aside));
                else
                        log_error("%s: not an entry at byte %zu of %zu: %s%s; nothing is restored from it "
                                  "(what came after may have replaced any record before: every VM is found "
                                  "by the /proc scan, and its VMM attaches again)", path, good, len,
                                  aside ? "set aside as " : "removed", strempty(aside));
        }
        *ret_buf = TAKE_PTR(buf);
        return 0;
}

/* Register the VM of one record.  1: restored. */
static int restore_one(struct restore *s, const struct restore_entry *e, struct vm **ret) {
        struct records *rec = s->rec;
        enum vm_state state;
        struct vm *vm;
        uint64_t st;
        int r;

        st = proc_starttime(e->pid);
        if (st == 0 || !proc_fd_is_kvm_vm(e->pid, e->fd))
                return 0;       /* gone while we were down */
        r = registry_add(rec->registry, e->pid, e->fd, &vm);
        if (r < 0)
                return r == -ENOMEM ? r : 0;
        r = record_parse(e->body, e->len, vm, &state);
        if (r == -ENOMEM) {
                registry_remove(rec->registry, vm);
                return r;
        }
        if (r < 0) {
                const char *aside = set_aside(s);

                log_error("The record of VM %s is unreadable (%s): the VM is found by the /proc scan, and its VMM "
                          "attaches again, without what the record held (its claims, its last answer); %s%s",
                          vm->id, r == -EINVAL ? "not a record written by pmufilterd" : strerror(-r),
                          aside ? "the records were set aside as " : "", strempty(aside));
                registry_remove(rec->registry, vm);
                return 0;
        }
        if (vm->starttime != st) {
                log_warning("Dropping the record of VM %s: its pid was reused", vm->id);
                registry_remove(rec->registry, vm);
                return 0;
        }
        registry_set_state(rec->registry, vm, state);
        /* read as plain fields: now into the name index */
        registry_set_name(rec->registry, vm, TAKE_PTR(vm->name), TAKE_PTR(vm->uuid));
        *ret = vm;
        return 1;
}

int records_restore(struct records *rec, struct vm ***ret, size_t *ret_n, unsigned *ret_n_records) {
        _cleanup_free_ struct vm **vms = NULL;
        _cleanup_free_ char *buf = NULL;
        struct restore s = { .rec = rec };
        bool legacy = false, found = false;
        size_t n = 0, live = 0;
        int r;

        assert(rec);
        r = read_legacy(&s, &legacy);
        if (r >= 0)
                r = read_log(&s, &buf, &found);
        if (r < 0)
                goto finish;
        /* The last entry of each id, in the order of the log. */
        if (s.n > 0)
                qsort(s.entries, s.n, sizeof(*s.entries), entry_cmp_id);
        for (size_t i = 0; i < s.n; i++)
                if ((i + 1 == s.n || s.entries[i + 1].pid != s.entries[i].pid ||
                     s.entries[i + 1].fd != s.entries[i].fd) && s.entries[i].body)
                        s.entries[live++] = s.entries[i];
        if (live > 0)
                qsort(s.entries, live, sizeof(*s.entries), entry_cmp_seq);
        vms = calloc(live + 1, sizeof(*vms));
        if (!vms) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < live; i++) {
                r = restore_one(&s, &s.entries[i], &vms[n]);
                if (r < 0)
                        goto finish;
                n += r;
        }
        /* The log holds the VMs restored, and nothing else. */
        if (found || legacy) {
                r = compact(rec, NULL);
                if (r < 0) {
                        rec->broken = true;
                        log_warning_errno(r, "Failed to write %s: %m", rec->path);
                }
        }
        if (legacy)
                (void) rm_rf_shallow(rec->legacy_dir);
        *ret = TAKE_PTR(vms);
        *ret_n = n;
        *ret_n_records = (unsigned) live;
        r = 0;
finish:
        free(s.entries);
        strv_free(s.bufs);
        free(s.aside);
        return r;
}
