/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fileio.c — atomic writes and bounded reads of the daemon's own files.
 */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <time.h>
#include <sys/stat.h>

#include "fileio.h"
#include "util.h"

int rm_rf_shallow(const char *path) {
        DIR *d;
        struct dirent *de;
        int r = 0;

        assert(path);
        d = opendir(path);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..") &&
                    unlinkat(dirfd(d), de->d_name, 0) < 0 && r == 0)
                        r = -errno;
        closedir(d);
        if (rmdir(path) < 0 && r == 0)
                r = -errno;
        return r;
}

int mkdir_parents(const char *path) {
        _cleanup_free_ char *p = NULL;

        assert(path);
        p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(p, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        *s = '/';
                }
        return 0;
}

static int fsync_directory_of(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        _cleanup_close_ int fd = -1;
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash)
                return 0;
        *slash = 0;
        fd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

/* The process's umask, read once from /proc/self/status (umask(2) can
 * only be read by setting it); 0777 while it cannot be read (out of fds,
 * say), which makes that write set its mode with fchmod(). */
static mode_t process_umask(void) {
        static mode_t cached = (mode_t) -1;
        _cleanup_free_ char *buf = NULL;
        const char *line;
        unsigned m;

        if (cached != (mode_t) -1)
                return cached;
        if (read_file_bounded("/proc/self/status", 64 * 1024, 0, &buf, NULL) < 0 ||
            !(line = strstr(buf, "\nUmask:\t")) || sscanf(line + 8, "%o", &m) != 1 || m > 0777)
                return 0777;
        cached = (mode_t) m;
        return cached;
}

/* A temporary name beside path: the records' reader skips names with a
 * dot.  Not random: the directories are the daemon's, O_EXCL refuses a
 * name taken (a crashed write's leftover, or a planted one), and the next
 * number is tried. */
static void temp_name(char *buf, size_t size, const char *path) {
        static uint64_t counter;

        if (counter == 0)
                counter = now_usec(CLOCK_MONOTONIC) | 1;
        snprintf(buf, size, "%s.%06" PRIx64, path, counter++ & 0xffffff);
}

int write_all(int fd, const void *buf, size_t n) {
        const char *p = buf;

        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;    /* no progress: not a loop without end */
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int format_in_memory(int (*write_fn)(FILE *f, const void *userdata), const void *userdata, char **ret,
                     size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;
        int r;

        assert(write_fn);
        assert(ret);
        assert(ret_size);

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        r = write_fn(f, userdata);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int write_file_atomic(const char *path, mode_t mode, unsigned flags,
                      int (*write_fn)(FILE *f, const void *userdata), const void *userdata) {
        _cleanup_free_ char *tmp = NULL, *buf = NULL;
        _cleanup_close_ int fd = -1;
        bool made_dirs = false;
        size_t size = 0, tmp_size;
        int r;

        assert(path);
        assert(write_fn);

        /* Formatted in memory first: the file is then one write(), and
         * nothing is created when write_fn fails. */
        r = format_in_memory(write_fn, userdata, &buf, &size);
        if (r < 0)
                return r;

        tmp_size = strlen(path) + 8;
        tmp = malloc(tmp_size);
        if (!tmp)
                return -ENOMEM;
        for (unsigned attempt = 0;; attempt++) {
                temp_name(tmp, tmp_size, path);
                /* Created with its mode: no fchmod() unless the umask takes
                 * bits of it away. */
                fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, mode);
                if (fd >= 0)
                        break;
                if (errno == EEXIST && attempt < 64)
                        continue;
                if (errno == ENOENT && (flags & WRITE_FILE_MKDIR) && !made_dirs) {
                        /* The first write (or someone emptied the directory):
                         * make the directories then, not on every write. */
                        r = mkdir_parents(path);
                        if (r < 0)
                                return r;
                        made_dirs = true;
                        continue;
                }
                return -errno;
        }
        r = 0;
        if ((mode & ~process_umask()) != mode && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0)
                r = write_all(fd, buf, size);
        if (r >= 0 && (flags & WRITE_FILE_SYNC) && fsync(fd) < 0)
                r = -errno;
        if (close(TAKE_FD(fd)) < 0 && r >= 0 && errno != EINTR)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        if (flags & WRITE_FILE_SYNC)
                (void) fsync_directory_of(path);
        return 0;
}

int read_file_bounded(const char *path, size_t max, unsigned flags, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0, allocated;

        assert(path);
        assert(ret);
        /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (flags & READ_FILE_NOFOLLOW ? O_NOFOLLOW : 0));
        /* A socket, or a device with no driver, cannot be opened at all:
         * not a regular file either (a state file there is set aside). */
        if (fd < 0)
                return errno == ENXIO || errno == ENODEV ? -EBADFD : -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        /* Read to the cap plus one byte rather than trusting st_size: the
         * file may change under us.  st_size (and a page) is where the
         * buffer starts, not the cap: the caps are far above the usual. */
        allocated = (uint64_t) st.st_size < max ? (size_t) st.st_size + 4096 : max + 1;
        if (allocated > max + 1)
                allocated = max + 1;
        buf = malloc(allocated);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k;

                if (n == allocated) {
                        size_t more = allocated > (max + 1) / 2 ? max + 1 : allocated * 2;
                        char *p = realloc(buf, more);

                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        allocated = more;
                }
                k = read(fd, buf + n, allocated - n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max)
                        return -EFBIG;
        }
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = n;
        return 0;
}
