/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * standalone-main.c — the driver that replaces libFuzzer where there is no
 * clang (the gcc build, the ASan build): runs LLVMFuzzerTestOneInput once
 * over every file named, and every regular file in every directory named,
 * so each fuzz target's seed corpus is a regression test in `meson test`.
 * A crash or a sanitizer report fails the test; so does an empty corpus,
 * which would otherwise pass without testing anything.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(int dirfd, const char *name, const char *shown) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        size_t n = 0;

        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                fprintf(stderr, "%s: cannot read: %m\n", shown);
                return -errno;
        }
        /* Exactly the file's size (one byte for an empty file, so the
         * target still sees a real pointer): ASan then catches a read one
         * past the input, as it does on libFuzzer's own copy. */
        buf = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t l = read(fd, buf + n, (size_t) st.st_size - n);

                if (l < 0) {
                        fprintf(stderr, "%s: cannot read: %m\n", shown);
                        return -errno;
                }
                if (l == 0)
                        break;
                n += (size_t) l;
        }
        printf("%s (%zu bytes)\n", shown, n);
        fflush(stdout);
        (void) LLVMFuzzerTestOneInput(buf, n);
        return 0;
}

static int name_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Every regular file of the directory, in name order so runs repeat. */
static int run_dir(const char *path, size_t *count) {
        _cleanup_strv_free_ char **names = NULL;
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = opendir(path);
        if (!d) {
                fprintf(stderr, "%s: cannot open the corpus directory: %m\n", path);
                return -errno;
        }
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                r = strv_extend(&names, de->d_name);
                if (r < 0)
                        break;
        }
        if (r == 0 && names)
                qsort(names, strv_length(names), sizeof(char *), name_compare);
        for (size_t i = 0; r == 0 && names && names[i]; i++) {
                _cleanup_free_ char *shown = NULL;
                struct stat st;

                if (fstatat(dirfd(d), names[i], &st, 0) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (asprintf(&shown, "%s/%s", path, names[i]) < 0) {
                        r = -ENOMEM;
                        break;
                }
                r = run_file(dirfd(d), names[i], shown);
                if (r == 0)
                        (*count)++;
        }
        closedir(d);
        return r;
}

int main(int argc, char **argv) {
        size_t count = 0;

        if (LLVMFuzzerInitialize)
                (void) LLVMFuzzerInitialize(&argc, &argv);

        if (argc < 2) {
                fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                int r;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %m\n", argv[i]);
                        return 1;
                }
                if (S_ISDIR(st.st_mode))
                        r = run_dir(argv[i], &count);
                else {
                        r = run_file(AT_FDCWD, argv[i], argv[i]);
                        if (r == 0)
                                count++;
                }
                if (r < 0)
                        return 1;
        }
        if (count == 0) {
                fprintf(stderr, "no inputs found in the corpus: nothing was tested\n");
                return 1;
        }
        printf("%zu inputs run, no crash\n", count);
        return 0;
}
