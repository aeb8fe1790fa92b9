/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-fileio.c — write_file_atomic(): the file whole with its mode
 * whatever the umask, the old one untouched and no temporary left when
 * writing fails, a planted temporary name or a symlink in the way not
 * followed, and the parent directories made on demand.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "fileio.h"
#include "util.h"

static int write_text(FILE *f, const void *userdata) {
        fputs(userdata, f);
        return 0;
}

static int write_fails(FILE *f, const void *userdata) {
        fputs("half", f);
        return -EIO;
}

static char *tmpdir(void) {
        char *d = strdup("/tmp/test-fileio.XXXXXX");

        assert_non_null(d);
        assert_non_null(mkdtemp(d));
        return d;
}

static size_t count_entries(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

static void expect_file(const char *path, const char *text, mode_t mode) {
        _cleanup_free_ char *buf = NULL;
        struct stat st;

        assert_int_equal(read_file_bounded(path, 4096, 0, &buf, NULL), 0);
        assert_string_equal(buf, text);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, mode);
}

static void test_write_and_replace(void **state) {
        _cleanup_free_ char *d = tmpdir(), *path = NULL;
        mode_t old = umask(022);

        assert_true(asprintf(&path, "%s/record", d) > 0);
        assert_int_equal(write_file_atomic(path, 0600, 0, write_text, "one\n"), 0);
        expect_file(path, "one\n", 0600);
        assert_int_equal(write_file_atomic(path, 0644, WRITE_FILE_SYNC, write_text, "two\n"), 0);
        expect_file(path, "two\n", 0644);
        /* a failed write leaves the old file and no temporary */
        assert_int_equal(write_file_atomic(path, 0600, 0, write_fails, NULL), -EIO);
        expect_file(path, "two\n", 0644);
        assert_int_equal(count_entries(d), 1);
        /* a large one, whole */
        {
                _cleanup_free_ char *big = malloc(300001);

                assert_non_null(big);
                memset(big, 'x', 300000);
                big[300000] = 0;
                assert_int_equal(write_file_atomic(path, 0600, 0, write_text, big), 0);
                assert_int_equal(write_file_atomic(path, 0600, 0, write_text, "three\n"), 0);
                expect_file(path, "three\n", 0600);
        }
        assert_int_equal(count_entries(d), 1);
        umask(old);
        assert_int_equal(rm_rf_shallow(d), 0);
}

/* The mode asked for is the mode given, though the umask would take bits
 * away.  The umask is read once, at a process's first write (forked
 * children inherit what was read): so this test runs first, and writes
 * from a child with the umask set. */
static void test_mode_despite_umask(void **state) {
        _cleanup_free_ char *d = tmpdir(), *path = NULL;
        int status;
        pid_t pid;

        assert_true(asprintf(&path, "%s/metrics.prom", d) > 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                umask(077);
                _exit(write_file_atomic(path, 0644, 0, write_text, "m 1\n") == 0 ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        expect_file(path, "m 1\n", 0644);
        assert_int_equal(rm_rf_shallow(d), 0);
}

/* A symlink at the path is replaced, not followed; taken temporary names
 * (a crashed write's leftovers, planted symlinks) are skipped by O_EXCL. */
static void test_hostile_directory(void **state) {
        _cleanup_free_ char *d = tmpdir(), *path = NULL, *target = NULL;
        mode_t old = umask(022);

        assert_true(asprintf(&path, "%s/state.yaml", d) > 0);
        assert_true(asprintf(&target, "%s/target", d) > 0);
        assert_int_equal(symlink(target, path), 0);
        assert_int_equal(write_file_atomic(path, 0600, 0, write_text, "a\n"), 0);
        expect_file(path, "a\n", 0600);
        assert_int_equal(access(target, F_OK), -1);

        assert_int_equal(write_file_atomic(path, 0600, 0, write_text, "b\n"), 0);
        expect_file(path, "b\n", 0600);
        assert_int_equal(access(target, F_OK), -1);
        umask(old);
        assert_int_equal(rm_rf_shallow(d), 0);
}

static void test_mkdir(void **state) {
        _cleanup_free_ char *d = tmpdir(), *path = NULL, *sub = NULL;

        assert_true(asprintf(&sub, "%s/vms", d) > 0);
        assert_true(asprintf(&path, "%s/vms/4711-12", d) > 0);
        assert_int_equal(write_file_atomic(path, 0600, 0, write_text, "x"), -ENOENT);
        assert_int_equal(write_file_atomic(path, 0600, WRITE_FILE_MKDIR, write_text, "x"), 0);
        expect_file(path, "x", 0600);
        assert_int_equal(rm_rf_shallow(sub), 0);
        assert_int_equal(rm_rf_shallow(d), 0);
}

/* A file whose st_size says less than it holds (procfs says 0): read
 * whole, the buffer grown past its first guess, and still refused past
 * the cap. */
static void test_read_past_st_size(void **state) {
        _cleanup_free_ char *buf = NULL, *again = NULL;
        size_t size = 0, size2 = 0;
        struct stat st;

        assert_int_equal(stat("/proc/self/smaps", &st), 0);
        assert_int_equal(st.st_size, 0);
        assert_int_equal(read_file_bounded("/proc/self/smaps", 16 << 20, 0, &buf, &size), 0);
        assert_true(size > 3 * 4096);
        assert_int_equal(strlen(buf), size);
        assert_non_null(strstr(buf, "Rss:"));
        assert_int_equal(read_file_bounded("/proc/self/smaps", 5000, 0, &again, &size2), -EFBIG);
}

/* The cap is the last size read: exactly max bytes is the file, one more
 * is -EFBIG, whether st_size is below, at or above the cap. */
static void test_read_at_the_cap(void **state) {
        _cleanup_free_ char *d = tmpdir(), *path = NULL;

        assert_true(asprintf(&path, "%s/f", d) > 0);
        for (size_t size = 0; size <= 10000; size += size < 4100 ? 1 : 997) {
                _cleanup_free_ char *text = malloc(size + 1);
                size_t maxes[] = { size, size + 1, size > 0 ? size - 1 : 0, size / 2, 4096, 4097, 8193 };

                assert_non_null(text);
                memset(text, 'a', size);
                text[size] = 0;
                assert_int_equal(write_file_atomic(path, 0600, 0, write_text, text), 0);
                for (size_t i = 0; i < ELEMENTSOF(maxes); i++) {
                        _cleanup_free_ char *buf = NULL;
                        size_t got = SIZE_MAX;
                        int r = read_file_bounded(path, maxes[i], 0, &buf, &got);

                        if (size > maxes[i]) {
                                assert_int_equal(r, -EFBIG);
                                continue;
                        }
                        assert_int_equal(r, 0);
                        assert_int_equal(got, size);
                        assert_string_equal(buf, text);
                }
        }
        assert_int_equal(rm_rf_shallow(d), 0);
}

/* A socket cannot be opened at all (ENXIO): it is not a regular file
 * either, and a caller that sets such a thing aside must be told so. */
static void test_read_socket(void **state) {
        _cleanup_free_ char *d = tmpdir();
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *buf = NULL;
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);

        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", d);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(read_file_bounded(sa.sun_path, 4096, 0, &buf, NULL), -EBADFD);
        assert_int_equal(read_file_bounded(sa.sun_path, 4096, READ_FILE_NOFOLLOW, &buf, NULL), -EBADFD);
        close(fd);
        assert_int_equal(rm_rf_shallow(d), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mode_despite_umask),      /* first: see there */
                cmocka_unit_test(test_write_and_replace),
                cmocka_unit_test(test_hostile_directory),
                cmocka_unit_test(test_mkdir),
                cmocka_unit_test(test_read_past_st_size),
                cmocka_unit_test(test_read_at_the_cap),
                cmocka_unit_test(test_read_socket),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
