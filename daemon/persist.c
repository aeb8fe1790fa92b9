/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * persist.c — the VM records under <runtime dir>/vms/<id> (KEY=VALUE lines,
 * written atomically on every change of what was applied), and the fd
 * store.  A record is trusted only while its process still runs (same
 * start time) and still holds a VM on that fd.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "changes.h"
#include "compile.h"
#include "log.h"
#include "manager.h"
#include "persist.h"
#include "procscan.h"
#include "session.h"

#define SESSION_FDNAME_PREFIX "session-"

static char *vm_path(const struct manager *m, const char *id) {
        char *p;

        return asprintf(&p, "%s/vms/%s", m->runtime_dir, id) < 0 ? NULL : p;
}

static void write_record(struct manager *m, const struct vm *vm) {
        _cleanup_free_ char *path = vm_path(m, vm->id), *tmp = NULL, *dir = NULL;
        const struct compiled_filter *f = vm->filter;
        FILE *out;
        int fd;

        if (!path || asprintf(&tmp, "%s.tmp", path) < 0)
                return;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 && errno == ENOENT && asprintf(&dir, "%s/vms", m->runtime_dir) >= 0) {
                /* The first record (or someone emptied /run): make the directories. */
                (void) mkdir(m->runtime_dir, 0755);
                (void) mkdir(dir, 0700);
                fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        }
        if (fd < 0 || !(out = fdopen(fd, "w"))) {
                log_warning_errno(errno, "Failed to write %s: %m", tmp);
                safe_close(fd);
                return;
        }
        fprintf(out, "PID=%d\nFD=%d\nSTARTTIME=%" PRIu64 "\nSTATE=%s\nVCPUS=%u\nSERIAL=%" PRIu64 "\n"
                     "APPLIED_USEC=%" PRIu64 "\nLAST_ERRNO=%d\n",
                (int) vm->pid, vm->fd, vm->starttime, vm_state_to_string(vm->state), vm->vcpus,
                vm->serial_pending, vm->applied_usec, vm->last_errno);
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
                fprintf(out, "PROFILE=%s\nPROFILE_SOURCE=%s\n", vm->profile, strempty(vm->profile_source));
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
        if (fclose(out) != 0 || rename(tmp, path) < 0) {
                log_warning_errno(errno, "Failed to write %s: %m", path);
                (void) unlink(tmp);
        }
}

static void record_run(struct vm *vm, void *userdata) {
        if (!vm->dirty)
                return;
        vm->dirty = false;
        write_record(userdata, vm);
        /* Stored only once its record exists: a restart that finds a
         * connection finds what it belongs to. */
        if (vm->session_unstored && vm->session)
                persist_store_session(vm, session_fd(vm->session));
        vm->session_unstored = false;
}

void persist_flush(struct manager *m) {
        vm_queue_run(&m->records, SIZE_MAX);
}

void persist_vm(struct manager *m, struct vm *vm) {
        if (vm->dirty)
                return;
        if (!m->records.run)
                m->records = (struct vm_queue) {
                        .description = "vm-records",
                        .run = record_run,
                        .userdata = m,
                        .registry = &m->registry,
                        .event = m->event,
                };
        vm->dirty = true;
        if (vm_queue_push(&m->records, vm) < 0)
                record_run(vm, m);      /* now, then */
}

void persist_forget_vm(struct manager *m, const struct vm *vm) {
        _cleanup_free_ char *path = vm_path(m, vm->id);

        if (path)
                (void) unlink(path);
}

void persist_store_session(const struct vm *vm, int fd) {
        char msg[128];

        snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=" SESSION_FDNAME_PREFIX "%s", vm->id);
        (void) sd_pid_notify_with_fds(0, false, msg, &fd, 1);
}

void persist_forget_session(const struct vm *vm) {
        (void) sd_notifyf(false, "FDSTOREREMOVE=1\nFDNAME=" SESSION_FDNAME_PREFIX "%s", vm->id);
}

static int parse_events(const char *s, struct compiled_filter *f) {
        size_t n = 0;

        if (*s)
                for (const char *c = s; c; c = strchr(c, ','), c = c ? c + 1 : NULL)
                        n++;
        f->events = calloc(n + 1, sizeof(uint64_t));
        if (!f->events)
                return -ENOMEM;
        for (const char *c = s; *s && c; c = strchr(c, ','), c = c ? c + 1 : NULL)
                f->events[f->nevents++] = strtoull(c, NULL, 0);
        return 0;
}

/* Fill vm from its record.  -EINVAL on anything unexpected. */
static int read_record(const char *path, struct vm *vm) {
        _cleanup_fclose_ FILE *in = fopen(path, "re");
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        int r = 0;

        if (!in)
                return -errno;
        vm->filter = calloc(1, sizeof(*vm->filter));
        if (!vm->filter)
                return -ENOMEM;
        while (r >= 0 && getline(&line, &size, in) > 0) {
                char *eq = strchr(line, '='), *v;

                line[strcspn(line, "\n")] = 0;
                if (!eq)
                        return -EINVAL;
                *eq = 0;
                v = eq + 1;
                if (streq(line, "STATE")) {
                        for (int s = 0; s < _VM_STATE_MAX; s++)
                                if (streq(v, vm_state_to_string(s)))
                                        vm_set_state(vm, s);
                } else if (streq(line, "STARTTIME"))
                        vm->starttime = strtoull(v, NULL, 10);
                else if (streq(line, "VCPUS"))
                        vm->vcpus = (unsigned) strtoul(v, NULL, 10);
                else if (streq(line, "SERIAL"))
                        vm->serial_pending = strtoull(v, NULL, 10);
                else if (streq(line, "APPLIED_USEC"))
                        vm->applied_usec = strtoull(v, NULL, 10);
                else if (streq(line, "LAST_ERRNO"))
                        vm->last_errno = atoi(v);
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
                        vm->override_runtime = atoi(v);
                else if (streq(line, "LAST_ERROR"))
                        r = free_and_strdup(&vm->last_error, v);
                else if (streq(line, "PMU_OFF"))
                        vm->filter->pmu_off = atoi(v);
                else if (streq(line, "ACTION"))
                        vm->filter->action = (uint32_t) strtoul(v, NULL, 10);
                else if (streq(line, "FLAGS"))
                        vm->filter->flags = (uint32_t) strtoul(v, NULL, 10);
                else if (streq(line, "FIXED"))
                        vm->filter->fixed_counter_bitmap = (uint32_t) strtoul(v, NULL, 10);
                else if (streq(line, "EVENTS"))
                        r = parse_events(v, vm->filter);
        }
        if (r >= 0 && vm->profile && !vm->filter->profile)
                r = free_and_strdup(&vm->filter->profile, vm->profile);
        return r;
}

/* The stored fd of a session, taken out of the list (-1: none). */
static int take_session_fd(struct manager *m, const char *id) {
        for (size_t i = 0; i < m->n_listen_fds; i++) {
                const char *n = m->listen_names ? m->listen_names[i] : NULL;
                const char *v = n ? startswith(n, SESSION_FDNAME_PREFIX) : NULL;

                if (v && streq(v, id) && m->listen_fds[i] >= 0)
                        return TAKE_FD(m->listen_fds[i]);
        }
        return -1;
}

static void restore_one(struct manager *m, const char *id, const char *path) {
        struct vm *vm;
        int pid, fd, n = 0, r, sfd;
        uint64_t st;

        if (sscanf(id, "%d-%d%n", &pid, &fd, &n) != 2 || id[n] != '\0')
                return (void) unlink(path);
        st = proc_starttime(pid);
        if (st == 0 || !proc_fd_is_kvm_vm(pid, fd))
                return (void) unlink(path);     /* gone while we were down */
        r = registry_add(&m->registry, pid, fd, &vm);
        if (r < 0)
                return;
        vm->manager = m;
        r = read_record(path, vm);
        if (r < 0 || vm->starttime != st) {
                log_warning("Dropping the record of VM %s: %s", id, r < 0 ? strerror(-r) : "its pid was reused");
                registry_remove(&m->registry, vm);
                return (void) unlink(path);
        }
        {
                /* read as plain fields: now into the name index */
                char *name = TAKE_PTR(vm->name), *uuid = TAKE_PTR(vm->uuid);

                registry_set_name(&m->registry, vm, name, uuid);
        }
        /* The state files, written before any change was answered, say
         * what was set for this VM; its record may lag them.  (A VM with
         * neither NAME nor UUID is in no state file: its record holds it.) */
        if ((vm->name || vm->uuid) && changes_update_override(m, vm) < 0) {
                registry_remove(&m->registry, vm);
                return;
        }
        vm->have_facts = proc_facts_open(pid, &vm->facts) >= 0;

        /* Even with a clock that went back, no serial of ours repeats one of
         * the daemon we replace. */
        if (vm->serial_pending >= m->next_serial)
                m->next_serial = vm->serial_pending;
        sfd = take_session_fd(m, id);
        if (sfd >= 0 && session_restore(m, sfd, vm) < 0) {
                /* Closed by session_restore(): let systemd drop its copy too. */
                persist_forget_session(vm);
                sfd = -1;
        }
        if (sfd >= 0) {
                log_info("VM %s: session taken back from the fd store (%s, profile %s)", id,
                         vm_state_to_string(vm->state), strna(vm->profile));
                /* An APPLY was in flight, or its answer came after the record
                 * was written (records lag the loop): whether the VMM got it
                 * is unknown, so send it again.  An answer to the old one,
                 * if queued, has an older serial and is ignored. */
                if (vm->serial_pending && manager_push(m, vm) < 0)
                        return;
        } else {
                /* No session survived: the filter stays in the kernel; its client will reconnect. */
                vm->serial_pending = 0;
                if (vm->state == VM_FILTERED || vm->state == VM_ATTACHED || vm->state == VM_FAILED)
                        vm_set_state(vm, VM_DETACHED);
                log_info("VM %s: restored without a session (%s)", id, vm_state_to_string(vm->state));
                if (vm->state == VM_DETECTED)
                        manager_arm_attach_timeout(m, vm);
        }
}

int persist_restore(struct manager *m) {
        _cleanup_free_ char *dir = NULL;
        DIR *d;
        struct dirent *de;
        unsigned n = 0;

        if (asprintf(&dir, "%s/vms", m->runtime_dir) < 0)
                return -ENOMEM;
        d = opendir(dir);
        if (d) {
                while ((de = readdir(d))) {
                        _cleanup_free_ char *path = NULL;

                        if (de->d_name[0] == '.' || strchr(de->d_name, '.'))
                                continue;
                        if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
                                break;
                        restore_one(m, de->d_name, path);
                        n++;
                }
                closedir(d);
        }
        /* Stored connections whose VM is gone: let systemd drop them too. */
        for (size_t i = 0; i < m->n_listen_fds; i++) {
                const char *name = m->listen_names ? m->listen_names[i] : NULL;

                if (m->listen_fds[i] >= 0 && name && startswith(name, SESSION_FDNAME_PREFIX)) {
                        (void) sd_notifyf(false, "FDSTOREREMOVE=1\nFDNAME=%s", name);
                        m->listen_fds[i] = safe_close(m->listen_fds[i]);
                }
        }
        if (n > 0)
                log_info("Restored %zu of %u VM records from %s", m->registry.n_vms, n, dir);
        manager_repush_changed(m, NULL);
        return 0;
}
