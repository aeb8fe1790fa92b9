/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * records.c — the VM records under <runtime dir>/vms/<id>.
 */
#include <assert.h>
#include <dirent.h>
#include <inttypes.h>

#include "compile.h"
#include "fileio.h"
#include "log.h"
#include "procscan.h"
#include "records.h"

/* A record is a few hundred bytes; 300 events and long claims stay far below. */
#define RECORD_MAX (64 * 1024)

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

static char *record_path(const struct records *rec, const char *id) {
        char *p;

        return asprintf(&p, "%s/%s", rec->dir, id) < 0 ? NULL : p;
}

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

static void record_run(struct vm *vm, void *userdata) {
        struct records *rec = userdata;
        _cleanup_free_ char *path = NULL;
        int r;

        if (!vm->record_dirty)
                return;
        vm->record_dirty = false;
        path = record_path(rec, vm->id);
        if (!path)
                return (void) log_warning_errno(ENOMEM, "Failed to write the record of VM %s: %m", vm->id);
        /* Not synced: the records describe processes, which a power cut ends too. */
        r = write_file_atomic(path, 0600, WRITE_FILE_MKDIR, write_record, vm);
        if (r < 0) {
                unsigned suppressed;

                if (!ratelimit_below(&rec->failed_said, &suppressed))
                        return;
                if (suppressed > 0)
                        log_warning("%u more records could not be written in the last minute", suppressed);
                log_warning_errno(r, "Failed to write %s: %m", path);
                return;
        }
        registry_notify(rec->registry, REGISTRY_VM_RECORDED, vm, NULL);
}

int records_init(struct records *rec, struct registry *r, sd_event *e, const char *runtime_dir) {
        assert(rec);
        assert(r);
        assert(runtime_dir);
        *rec = (struct records) {
                .registry = r,
                .failed_said = RATELIMIT_INIT(60 * 1000 * 1000ULL, 5),
                .queue = {
                        .description = "vm-records",
                        .run = record_run,
                        .userdata = rec,
                        .registry = r,
                        .event = e,
                        .priority = SD_EVENT_PRIORITY_IDLE,
                        .max_lag_usec = 1000 * 1000,
                },
        };
        if (asprintf(&rec->dir, "%s/vms", runtime_dir) < 0)
                return -ENOMEM;
        return 0;
}

void records_done(struct records *rec) {
        vm_queue_done(&rec->queue);
        free(rec->dir);
        rec->dir = NULL;
}

void records_flush(struct records *rec) {
        vm_queue_run(&rec->queue, SIZE_MAX);
}

void records_mark(struct records *rec, struct vm *vm) {
        assert(vm);
        if (vm->record_dirty)
                return;
        vm->record_dirty = true;
        if (vm_queue_push(&rec->queue, vm) < 0)
                record_run(vm, rec);    /* now, then */
}

void records_forget(struct records *rec, const struct vm *vm) {
        _cleanup_free_ char *path = record_path(rec, vm->id);

        if (path)
                (void) unlink(path);
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
                        r = free_and_strdup(&vm->name, v);
                else if (streq(line, "UUID"))
                        r = free_and_strdup(&vm->uuid, v);
                else if (streq(line, "CLIENT"))
                        vm->client = vm_client_from_string(v);
                else if (streq(line, "LABEL"))
                        r = strv_extend(&vm->labels, v);
                else if (streq(line, "PROFILE"))
                        r = free_and_strdup(&vm->profile, v);
                else if (streq(line, "PROFILE_SOURCE"))
                        snprintf(vm->profile_source, sizeof(vm->profile_source), "%s", v);
                else if (streq(line, "OVERRIDE"))
                        r = free_and_strdup(&vm->override, v);
                else if (streq(line, "OVERRIDE_RUNTIME"))
                        r = PARSE_INTO(v, 1, vm->override_runtime);
                else if (streq(line, "LAST_ERROR"))
                        r = free_and_strdup(&vm->last_error, v);
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

/* Register the VM of one record, or delete the record.  1: restored. */
static int restore_one(struct records *rec, const char *id, const char *path, struct vm **ret) {
        _cleanup_free_ char *buf = NULL;
        enum vm_state state;
        struct vm *vm;
        int pid, fd, n = 0, r;
        uint64_t st;
        size_t len;

        if (sscanf(id, "%d-%d%n", &pid, &fd, &n) != 2 || id[n] != '\0')
                return unlink(path), 0;
        st = proc_starttime(pid);
        if (st == 0 || !proc_fd_is_kvm_vm(pid, fd))
                return unlink(path), 0;         /* gone while we were down */
        r = registry_add(rec->registry, pid, fd, &vm);
        if (r < 0)
                return r == -ENOMEM ? r : 0;
        r = read_file_bounded(path, RECORD_MAX, READ_FILE_NOFOLLOW, &buf, &len);
        if (r >= 0)
                r = record_parse(buf, len, vm, &state);
        if (r == -ENOMEM) {
                registry_remove(rec->registry, vm);
                return r;
        }
        if (r < 0) {
                _cleanup_free_ char *aside = NULL;

                /* Kept for a post-mortem, where no start reads it again. */
                registry_remove(rec->registry, vm);
                if (asprintf(&aside, "%s.corrupt", path) >= 0 && rename(path, aside) >= 0)
                        log_error("The record of VM %s is unreadable (%s): set aside as %s; the VM is found by the /proc "
                                  "scan, and its VMM attaches again, without what the record held (its claims, "
                                  "its last answer)", id, r == -EINVAL ? "not a record written by pmufilterd" :
                                  strerror(-r), aside);
                else
                        (void) unlink(path);
                return 0;
        }
        if (vm->starttime != st) {
                log_warning("Dropping the record of VM %s: its pid was reused", id);
                registry_remove(rec->registry, vm);
                (void) unlink(path);
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
        _cleanup_(closedirp) DIR *d = NULL;
        size_t n = 0, allocated = 0;
        unsigned n_records = 0;
        struct dirent *de;

        assert(rec);
        d = opendir(rec->dir);
        if (d)
                while ((de = readdir(d))) {
                        _cleanup_free_ char *path = NULL;
                        struct vm *vm;
                        int r;

                        if (de->d_name[0] == '.' || strchr(de->d_name, '.'))
                                continue;
                        path = record_path(rec, de->d_name);
                        if (!path || !GREEDY_REALLOC(vms, allocated, n + 1))
                                return -ENOMEM;
                        n_records++;
                        r = restore_one(rec, de->d_name, path, &vm);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                vms[n++] = vm;
                }
        *ret = TAKE_PTR(vms);
        *ret_n = n;
        *ret_n_records = n_records;
        return 0;
}
