/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * procfacts.c — reads a process's identity from /proc and systemd's view of
 * the cgroup tree, for rule matching.  Pid reuse is detected by reading the
 * process's start time before and after everything else.
 */
#include <assert.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <systemd/sd-login.h>

#include "fileio.h"
#include "procfacts.h"

/* /proc files say ENOENT (or ESRCH mid-read) when the process is gone. */
static int gone_to_esrch(int r) {
        return r == -ENOENT ? -ESRCH : r;
}

/* Read /proc/<pid>/<name> whole, NUL-terminated, into small while it fits
 * (*ret = small) and else into a buffer of its own (*ret = *ret_heap,
 * which the caller frees).  These files are small but not bounded (status
 * grows with the number of groups).  stat, status and cgroup are each one
 * record the kernel makes whole on a read() (single_open(),
 * fs/seq_file.c): a read that leaves room in the buffer got all of it, and
 * no read() for the end of the file follows (systemd's read_virtual_file()
 * counts on the same). */
static int read_proc_file_into(pid_t pid, const char *name, char *small, size_t small_size, char **ret_heap,
                               const char **ret) {
        char path[64];
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *heap = NULL;
        char *buf = small;
        size_t size = small_size, allocated = 0, n = 0;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, name);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return gone_to_esrch(-errno);

        for (;;) {
                ssize_t k;

                if (n + 1 >= size) {
                        if (!GREEDY_REALLOC(heap, allocated, n + 1024))
                                return -ENOMEM;
                        if (buf == small && n > 0)
                                memcpy(heap, small, n);
                        buf = heap;
                        size = allocated;
                }
                k = read(fd, buf + n, size - n - 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return gone_to_esrch(-errno);
                }
                n += (size_t) k;
                if (k == 0 || n < size - 1)
                        break;
        }
        buf[n] = 0;
        *ret = buf;
        *ret_heap = TAKE_PTR(heap);
        return 0;
}

static int read_proc_file(pid_t pid, const char *name, char **ret) {
        const char *unused;

        return read_proc_file_into(pid, name, NULL, 0, ret, &unused);
}

/* A decimal field of /proc/<pid>/stat, ended by a space or the end. */
static bool parse_u64_field(const char *p, uint64_t *ret) {
        char *end;

        if (*p < '0' || *p > '9')
                return false;
        errno = 0;
        *ret = strtoull(p, &end, 10);
        return errno == 0 && (*end == ' ' || *end == '\n' || *end == '\0');
}

static bool parse_int_field(const char *p, int *ret) {
        char *end;
        long v;

        if (*p != '-' && (*p < '0' || *p > '9'))
                return false;
        errno = 0;
        v = strtol(p, &end, 10);
        if (errno != 0 || end == p || v < INT_MIN || v > INT_MAX || (*end != ' ' && *end != '\n' && *end != '\0'))
                return false;
        *ret = (int) v;
        return true;
}

/* /proc/<pid>/stat: "pid (comm) state ppid ...".  comm may hold spaces and
 * parentheses, so fields are counted from the last ')'.  ret_leader: from
 * field 38, exit_signal, which the kernel keeps at -1 for any task but a
 * thread-group leader (its thread_group_leader() is exit_signal >= 0).  The
 * line, some 52 numbers and a 16-byte comm, is read on the stack: once per
 * VM and per check of a process, and a heap buffer's allocation showed as
 * malloc_consolidate() beside 10,000 sessions. */
static int read_stat(pid_t pid, uint64_t *ret_starttime, char **ret_comm, bool *ret_leader) {
        _cleanup_free_ char *heap = NULL;
        char small[2048];
        const char *buf, *open_paren, *close_paren, *p;
        uint64_t starttime;
        int r;

        r = read_proc_file_into(pid, "stat", small, sizeof(small), &heap, &buf);
        if (r < 0)
                return r;
        open_paren = strchr(buf, '(');
        close_paren = strrchr(buf, ')');
        if (!open_paren || !close_paren || close_paren < open_paren)
                return -EBADMSG;

        /* After ") " comes field 3 (state); starttime is field 22. */
        if (close_paren[1] != ' ')
                return -EBADMSG;
        p = close_paren + 2;
        for (unsigned field = 3; field < 22; field++) {
                p = strchr(p, ' ');
                if (!p)
                        return -EBADMSG;
                p++;
        }
        /* strtoull(), not sscanf(): this runs for every VM created, and
         * sscanf() sets up a stream for each call. */
        if (!parse_u64_field(p, &starttime) || starttime == 0)
                return -EBADMSG;

        if (ret_leader) {
                int exit_signal;

                for (unsigned field = 22; field < 38; field++) {
                        p = strchr(p, ' ');
                        if (!p)
                                return -EBADMSG;
                        p++;
                }
                if (!parse_int_field(p, &exit_signal))
                        return -EBADMSG;
                *ret_leader = exit_signal >= 0;
        }
        if (ret_comm) {
                char *comm = strndup(open_paren + 1, (size_t) (close_paren - open_paren - 1));
                if (!comm)
                        return -ENOMEM;
                *ret_comm = comm;
        }
        *ret_starttime = starttime;
        return 0;
}

uint64_t proc_starttime(pid_t pid) {
        uint64_t st;

        if (pid <= 0 || read_stat(pid, &st, NULL, NULL) < 0)
                return 0;
        return st;
}

static const char *next_line(const char *s) {
        const char *nl = strchr(s, '\n');

        return nl ? nl + 1 : NULL;
}

/* First number of the "<key>\t..." line of /proc/<pid>/status. */
static int status_field(const char *status, const char *key, unsigned long *ret) {
        size_t l = strlen(key);

        for (const char *line = status; line; line = next_line(line)) {
                const char *v;
                unsigned long n;
                char *end;

                if (strncmp(line, key, l) != 0 || line[l] != ':')
                        continue;
                v = line + l + 1;
                errno = 0;
                n = strtoul(v, &end, 10);
                if (errno != 0 || end == v)
                        return -EBADMSG;
                *ret = n;
                return 0;
        }
        return -EBADMSG;
}

/* Tgid: of /proc/<tid>/status. */
static int read_tgid(pid_t tid, pid_t *ret) {
        _cleanup_free_ char *status = NULL;
        unsigned long tgid;
        int r;

        r = read_proc_file(tid, "status", &status);
        if (r < 0)
                return r;
        r = status_field(status, "Tgid", &tgid);
        if (r < 0)
                return r;
        if (tgid == 0 || tgid > INT_MAX)
                return -EBADMSG;
        *ret = (pid_t) tgid;
        return 0;
}

int proc_facts_open_task(pid_t tid, struct proc_facts *ret) {
        struct proc_facts f = {};
        bool leader;
        pid_t tgid;
        int r;

        assert(ret);
        if (tid <= 0)
                return -EINVAL;
        /* /proc/<tid> exists for every thread, not only the leaders it
         * lists.  For the usual creator, the VMM's main thread, its stat
         * is the process's: one read answers both questions. */
        r = read_stat(tid, &f.starttime, &f.comm, &leader);
        if (r < 0)
                return r;
        if (leader) {
                f.pid = tid;
                *ret = f;
                return 0;
        }
        free(f.comm);
        r = read_tgid(tid, &tgid);
        if (r < 0)
                return r;
        return proc_facts_open(tgid, ret);
}

static int read_exe(pid_t pid, char **ret, bool *ret_deleted) {
        static const char deleted[] = " (deleted)";
        char path[64], target[PATH_MAX + sizeof(deleted)];
        ssize_t n;
        size_t l;
        bool is_deleted = false;

        snprintf(path, sizeof(path), "/proc/%d/exe", (int) pid);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return gone_to_esrch(-errno);
        target[n] = 0;

        /* The kernel appends this when the binary was unlinked: a package
         * upgrade under a running VMM.  Its path still names the program. */
        l = (size_t) n;
        if (l > strlen(deleted) && streq(target + l - strlen(deleted), deleted)) {
                target[l - strlen(deleted)] = 0;
                is_deleted = true;
        }

        *ret = strdup(target);
        if (!*ret)
                return -ENOMEM;
        *ret_deleted = is_deleted;
        return 0;
}

/* getpwuid_r()/getgrgid_r() need a caller buffer of unknown size. */
static int id_to_name(bool group, unsigned id, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 1024;
        const char *name = NULL;
        char num[16];

        for (;;) {
                struct passwd pw, *pwp = NULL;
                struct group gr, *grp = NULL;
                int r;

                free(buf);
                buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                if (group) {
                        r = getgrgid_r((gid_t) id, &gr, buf, size, &grp);
                        name = grp ? grp->gr_name : NULL;
                } else {
                        r = getpwuid_r((uid_t) id, &pw, buf, size, &pwp);
                        name = pwp ? pwp->pw_name : NULL;
                }
                if (r != ERANGE || size > 1024 * 1024)
                        break;
                size *= 2;
        }

        /* No name (or NSS failed): the number is the name a rule can use. */
        if (!name) {
                snprintf(num, sizeof(num), "%u", id);
                name = num;
        }
        *ret = strdup(name);
        return *ret ? 0 : -ENOMEM;
}

static int read_unified_cgroup(pid_t pid, char **ret) {
        _cleanup_free_ char *buf = NULL;
        const char *path = NULL;
        int r;

        r = read_proc_file(pid, "cgroup", &buf);
        if (r < 0)
                return r;
        for (const char *line = buf; line; line = next_line(line))
                if (startswith(line, "0::"))
                        path = line + 3;
        if (!path || strcspn(path, "\n") == 0) {      /* cgroup v1 only: no unified path */
                *ret = NULL;
                return 0;
        }
        *ret = strndup(path, strcspn(path, "\n"));
        return *ret ? 0 : -ENOMEM;
}

/* systemd's answers: absent (not in a unit, no machined) is NULL, only OOM
 * is an error.  Whether the process vanished is decided by the caller. */
static int sd_fact(int (*get)(pid_t, char **), pid_t pid, char **ret) {
        char *v = NULL;
        int r = get(pid, &v);

        if (r == -ENOMEM)
                return r;
        *ret = r >= 0 ? v : NULL;
        return 0;
}

/* The UUID machined keeps for a machine (ID= of its state file, which only
 * root writes: libvirt registers each guest with its domain's UUID), as
 * 8-4-4-4-12 lower-case hex into *ret; NULL where there is none. */
static int machine_uuid(const char *name, char **ret) {
        _cleanup_free_ char *path = NULL, *buf = NULL;
        const char *id = NULL;
        char uuid[37];
        int r;

        *ret = NULL;
        if (strchr(name, '/') || streq(name, ".") || streq(name, ".."))
                return 0;
        if (asprintf(&path, "/run/systemd/machines/%s", name) < 0)
                return -ENOMEM;
        r = read_file_bounded(path, 64 * 1024, READ_FILE_NOFOLLOW, &buf, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0;       /* gone meanwhile, or not machined's: no UUID */
        for (char *line = buf, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (startswith(line, "ID="))
                        id = line + 3;
        }
        if (!id || strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32)
                return 0;
        snprintf(uuid, sizeof(uuid), "%.8s-%.4s-%.4s-%.4s-%.12s", id, id + 8, id + 12, id + 16, id + 20);
        *ret = strdup(uuid);
        return *ret ? 0 : -ENOMEM;
}

void proc_facts_done(struct proc_facts *f) {
        if (!f)
                return;
        free(f->exe);
        free(f->comm);
        free(f->user);
        free(f->group);
        free(f->cgroup);
        free(f->unit);
        free(f->slice);
        free(f->machine);
        free(f->machine_uuid);
        *f = (struct proc_facts) {};
}

static int read_ids(pid_t pid, struct proc_facts *f) {
        _cleanup_free_ char *status = NULL;
        unsigned long uid, gid;
        int r;

        r = read_proc_file(pid, "status", &status);
        if (r < 0)
                return r;
        /* "Uid:\treal\teffective\tsaved\tfs": the first is the real id. */
        r = status_field(status, "Uid", &uid);
        if (r < 0)
                return r;
        r = status_field(status, "Gid", &gid);
        if (r < 0)
                return r;
        f->uid = (uid_t) uid;
        f->gid = (gid_t) gid;
        return 0;
}

unsigned proc_fact_of_key(const char *key) {
        static const struct {
                const char *key;
                unsigned group;
        } keys[] = {
                { "exe", PROC_FACT_EXE },
                { "uid", PROC_FACT_IDS },
                { "gid", PROC_FACT_IDS },
                { "user", PROC_FACT_NAMES },
                { "group", PROC_FACT_NAMES },
                { "cgroup", PROC_FACT_CGROUP },
                { "unit", PROC_FACT_UNIT },
                { "slice", PROC_FACT_SLICE },
                { "machine", PROC_FACT_MACHINE },
        };

        assert(key);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (streq(key, keys[i].key))
                        return keys[i].group;
        return 0;
}

/* Read one group into n (a fresh struct: nothing to free on failure). */
static int load_group(pid_t pid, unsigned group, struct proc_facts *n) {
        switch (group) {
        case PROC_FACT_EXE:
                return read_exe(pid, &n->exe, &n->exe_deleted);
        case PROC_FACT_IDS:
                return read_ids(pid, n);
        case PROC_FACT_NAMES: {
                int r = id_to_name(false, n->uid, &n->user);
                return r < 0 ? r : id_to_name(true, n->gid, &n->group);
        }
        case PROC_FACT_CGROUP:
                return read_unified_cgroup(pid, &n->cgroup);
        case PROC_FACT_UNIT:
                return sd_fact(sd_pid_get_unit, pid, &n->unit);
        case PROC_FACT_SLICE:
                return sd_fact(sd_pid_get_slice, pid, &n->slice);
        case PROC_FACT_MACHINE: {
                int r = sd_fact(sd_pid_get_machine_name, pid, &n->machine);

                if (r < 0 || !n->machine)
                        return r;
                return machine_uuid(n->machine, &n->machine_uuid);
        }
        }
        return -EINVAL;
}

static void take_string(char **to, char **from) {
        if (*from) {
                free(*to);
                *to = TAKE_PTR(*from);
        }
}

int proc_facts_load(struct proc_facts *f, unsigned mask) {
        _cleanup_(proc_facts_done) struct proc_facts n = {};
        uint64_t starttime;
        unsigned want;
        int r;

        assert(f);
        if (mask & PROC_FACT_NAMES)
                mask |= PROC_FACT_IDS;          /* names are looked up by id */
        want = mask & PROC_FACT_ALL & ~f->loaded;
        if (want == 0)
                return 0;
        n.uid = f->uid;
        n.gid = f->gid;
        for (unsigned g = 1; g <= PROC_FACT_MACHINE; g <<= 1)
                if (want & g) {
                        r = load_group(f->pid, g, &n);
                        if (r < 0)
                                return r;
                }

        /* Everything above came from the process that started at
         * f->starttime only if that one still holds the pid now.  Not
         * proc_starttime(): its 0 for any failure would make -ENOMEM look
         * like a gone process. */
        r = read_stat(f->pid, &starttime, NULL, NULL);
        if (r < 0)
                return r;
        if (starttime != f->starttime)
                return -ESRCH;

        if (want & PROC_FACT_EXE) {
                take_string(&f->exe, &n.exe);
                f->exe_deleted = n.exe_deleted;
        }
        if (want & PROC_FACT_IDS) {
                f->uid = n.uid;
                f->gid = n.gid;
        }
        take_string(&f->user, &n.user);
        take_string(&f->group, &n.group);
        take_string(&f->cgroup, &n.cgroup);
        take_string(&f->unit, &n.unit);
        take_string(&f->slice, &n.slice);
        take_string(&f->machine, &n.machine);
        take_string(&f->machine_uuid, &n.machine_uuid);
        f->loaded |= want;
        return 0;
}

int proc_facts_open(pid_t pid, struct proc_facts *ret) {
        struct proc_facts f = { .pid = pid };
        int r;

        assert(ret);
        if (pid <= 0)
                return -EINVAL;
        r = read_stat(pid, &f.starttime, &f.comm, NULL);
        if (r < 0)
                return r;
        *ret = f;
        return 0;
}
