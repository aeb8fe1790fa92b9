/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fileio.c — atomic writes and bounded reads of the daemon's own files.
 */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
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

int write_file_atomic(const char *path, mode_t mode, unsigned flags,
                      int (*write_fn)(FILE *f, const void *userdata), const void *userdata) {
        _cleanup_free_ char *tmp = NULL;
        FILE *f;
        int fd, r;

        assert(path);
        assert(write_fn);
        if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && (flags & WRITE_FILE_MKDIR)) {
                /* The first write (or someone emptied the directory): make
                 * the directories then, not on every write. */
                r = mkdir_parents(path);
                if (r < 0)
                        return r;
                strcpy(tmp + strlen(tmp) - 6, "XXXXXX");
                fd = mkostemp(tmp, O_CLOEXEC);
        }
        if (fd < 0)
                return -errno;
        if (fchmod(fd, mode) < 0 || !(f = fdopen(fd, "w"))) {
                r = -errno;
                safe_close(fd);
                (void) unlink(tmp);
                return r;
        }
        r = write_fn(f, userdata);
        if (r >= 0 && fflush(f) != 0)
                r = -errno;
        if (r >= 0 && (flags & WRITE_FILE_SYNC) && fsync(fileno(f)) < 0)
                r = -errno;
        if (fclose(f) != 0 && r >= 0)
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
        size_t n = 0;

        assert(path);
        assert(ret);
        /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (flags & READ_FILE_NOFOLLOW ? O_NOFOLLOW : 0));
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        /* Read to the cap plus one byte rather than trusting st_size: the
         * file may change under us. */
        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, max + 1 - n);

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
