/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fileio.h — the files the daemon keeps (state.yaml, the VM records) are
 * written one way: whole or not at all, and read one way: bounded, and
 * only if they are regular files (a FIFO or a device in their place must
 * not hang or feed the daemon).
 */
#pragma once

#include <stdio.h>
#include <sys/types.h>

enum {
        WRITE_FILE_SYNC = 1 << 0,       /* fsync the file and its directory: survives a power cut */
        WRITE_FILE_MKDIR = 1 << 1,      /* create missing parent directories (0755) */
};

/* What write_fn puts into a stream, in memory: *ret (malloc'd, the
 * caller's) and its length.  -errno of write_fn, or -ENOMEM. */
int format_in_memory(int (*write_fn)(FILE *f, const void *userdata), const void *userdata, char **ret,
                     size_t *ret_size);

/* Write what write_fn puts into the stream to path atomically: a temporary
 * file in the same directory, renamed over path only when everything was
 * written.  mode is the new file's mode, whatever the umask (read once per
 * process: set it before the first write).  -errno on failure, and path is
 * as it was. */
int write_file_atomic(const char *path, mode_t mode, unsigned flags,
                      int (*write_fn)(FILE *f, const void *userdata), const void *userdata);

/* All n bytes of buf to fd, a write() at a time, EINTR retried.  -errno
 * (-EIO where write() made no progress); some bytes may be written then. */
int write_all(int fd, const void *buf, size_t n);

/* Remove the files of directory path, then the directory (not recursive:
 * the daemon's own directories hold files only).  A missing one is fine. */
int rm_rf_shallow(const char *path);

/* mkdir -p of path's parent directories (not path itself), mode 0755. */
int mkdir_parents(const char *path);

/* Read a regular file of at most max bytes into a NUL-terminated buffer.
 * -ENOENT if missing, -EFBIG if larger, -EISDIR for a directory, -EBADFD
 * for anything else that is not a regular file (a FIFO, a device, a
 * socket, which open() refuses with ENXIO). */
#define READ_FILE_NOFOLLOW 1u        /* a symlink there is not ours: ELOOP */
int read_file_bounded(const char *path, size_t max, unsigned flags, char **ret, size_t *ret_size);
