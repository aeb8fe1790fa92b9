/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy-files.c — which policy files are read, in which order, and reading
 * them into memory for the (pure) loader: the main file, then conf.d/<*>.yaml
 * in lexical order; then the whole policy is validated.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "fileio.h"
#include "policy.h"
#include "yaml-dl.h"

/* A policy is a few KiB; a larger file is a mistake, not a policy. */
#define POLICY_FILE_MAX (4u * 1024 * 1024)

static int path_make_absolute(const char *path, char **ret) {
        _cleanup_free_ char *cwd = NULL;

        if (path[0] == '/') {
                *ret = strdup(path);
                return *ret ? 0 : -ENOMEM;
        }
        cwd = getcwd(NULL, 0);
        if (!cwd)
                return errno == ENOMEM ? -ENOMEM : (*ret = strdup(path)) ? 0 : -ENOMEM;
        return asprintf(ret, "%s/%s", cwd, startswith(path, "./") ?: path) < 0 ? -ENOMEM : 0;
}

/* Nothing but blank lines, comments and document markers. */
static bool yaml_empty(const char *buf, size_t len) {
        for (size_t i = 0; i < len;) {
                size_t e = i;

                while (e < len && buf[e] != '\n')
                        e++;
                while (i < e && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r'))
                        i++;
                if (i < e && buf[i] != '#' && !(e - i >= 3 && (!strncmp(buf + i, "---", 3) || !strncmp(buf + i, "...", 3))))
                        return false;
                i = e + 1;
        }
        return true;
}

/* is_main: the policy file itself, not a conf.d fragment: it must say
 * something, since a zero-byte or comment-only file read as "no profiles,
 * default settings" would loosen everything without a word.  A file that
 * cannot be read or parsed leaves the policy incomplete: what it defined
 * is unknown. */
static int load_one(struct policy *p, const char *path, bool is_main, struct diags *d) {
        _cleanup_free_ char *buf = NULL;
        struct srcloc loc = { .file = path };
        size_t len = 0;
        int r;

        r = read_file_bounded(path, POLICY_FILE_MAX, 0, &buf, &len);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                p->incomplete = true;
        if (r == -EFBIG)
                return diags_error(d, &loc, "cannot read policy file: larger than %u bytes", POLICY_FILE_MAX);
        if (r == -EBADFD)
                return diags_error(d, &loc, "cannot read policy file: expected a regular file");
        if (r < 0) {
                r = diags_error(d, &loc, "cannot read policy file: %s", strerror(-r)) == -ENOMEM ? -ENOMEM : r;
                return r;
        }
        if (is_main && yaml_empty(buf, len)) {
                loc.line = loc.column = 1;
                return diags_error(d, &loc, "the policy file is empty: expected 'version: 1' and its profiles "
                                   "(an empty file is never a policy)");
        }
        return policy_load_buffer(p, path, buf, len, d);
}

/* Every file, each loaded as far as it goes (an error in one does not stop
 * the next: all are reported at once), then the references between them.
 * *ret is what loaded, also on -EINVAL; NULL on -ENOMEM.  settings_only:
 * the settings sections alone (policy_load_settings()). */
static int load_paths(char **paths, bool settings_only, struct policy **ret, struct diags *d) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        int r, failed = 0;

        assert(ret);

        if (strv_length(paths) == 0)
                return diags_error(d, NULL, "no policy file given");
        /* libyaml loaded once for all the files; if it cannot be, each
         * file says so. */
        _cleanup_(yaml_dl_releasep) bool held = yaml_dl_acquire(NULL) >= 0;
        r = policy_new(&p);
        if (r < 0)
                return r;
        p->settings_only = settings_only;
        for (char **i = paths; *i; i++) {
                _cleanup_free_ char *abs = NULL;

                /* Named as they will be read from elsewhere: in messages,
                 * on D-Bus (ConfigFiles), in check's output. */
                r = path_make_absolute(*i, &abs);
                if (r < 0)
                        return r;
                r = load_one(p, abs, i == paths, d);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        failed = r;
        }
        r = 0;
        if (!settings_only) {
                r = policy_validate(p, d);
                if (r == -ENOMEM)
                        return r;
        }
        *ret = TAKE_PTR(p);
        return failed < 0 ? failed : r;
}

/* load_paths(), but nothing on failure: a policy to use, or none. */
static int load_paths_strict(char **paths, bool settings_only, struct policy **ret, struct diags *d) {
        _cleanup_(policy_freep) struct policy *p = NULL;
        int r;

        assert(ret);

        r = load_paths(paths, settings_only, &p, d);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

int policy_load_paths(char **paths, struct policy **ret, struct diags *d) {
        return load_paths_strict(paths, false, ret, d);
}

int policy_check_paths(char **paths, struct policy **ret, struct diags *d) {
        assert(ret);

        *ret = NULL;
        return load_paths(paths, false, ret, d);
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool is_fragment(int dir_fd, const struct dirent *de) {
        const char *name = de->d_name;
        size_t n = strlen(name);
        struct stat st;

        if (name[0] == '.' || n <= strlen(".yaml") || !streq(name + n - strlen(".yaml"), ".yaml"))
                return false;
        if (de->d_type == DT_REG)
                return true;
        /* Symlinks (to a regular file) are fine, as in systemd's conf.d. */
        if (de->d_type != DT_LNK && de->d_type != DT_UNKNOWN)
                return false;
        return fstatat(dir_fd, name, &st, 0) == 0 && S_ISREG(st.st_mode);
}

/* dir/<*.yaml>, sorted with strcmp; a missing dir is no fragments. */
static int list_fragments(const char *dir, char ***paths) {
        DIR *dp;
        _cleanup_strv_free_ char **names = NULL;
        struct dirent *de;
        int r = 0;

        dp = opendir(dir);
        if (!dp)
                return errno == ENOENT ? 0 : -errno;
        while ((errno = 0, de = readdir(dp)))
                if (is_fragment(dirfd(dp), de)) {
                        r = strv_extend(&names, de->d_name);
                        if (r < 0)
                                break;
                }
        if (r == 0 && errno != 0)
                r = -errno;
        closedir(dp);
        if (r < 0)
                return r;

        qsort(names, strv_length(names), sizeof(char *), compare_strings);
        for (char **i = names; i && *i; i++) {
                char *path;

                if (asprintf(&path, "%s/%s", dir, *i) < 0)
                        return -ENOMEM;
                r = strv_push(paths, path);
                if (r < 0) {
                        free(path);
                        return r;
                }
        }
        return 0;
}

/* The main file (config, or the default and the conf.d fragments) as a
 * list of paths. */
static int config_paths(const char *config, char ***ret, struct diags *d) {
        _cleanup_strv_free_ char **paths = NULL;
        int r;

        r = strv_extend(&paths, config ?: POLICY_DEFAULT_CONFIG);
        if (r < 0)
                return r;
        if (!config) {
                r = list_fragments(POLICY_DEFAULT_CONFIG_DIR, &paths);
                if (r < 0) {
                        struct srcloc loc = { .file = POLICY_DEFAULT_CONFIG_DIR };

                        (void) diags_error(d, &loc, "cannot list policy fragments: %s", strerror(-r));
                        return r;
                }
        }
        *ret = TAKE_PTR(paths);
        return 0;
}

static int load_files(const char *config, bool settings_only, struct policy **ret, struct diags *d) {
        _cleanup_strv_free_ char **paths = NULL;
        int r;

        assert(ret);

        r = config_paths(config, &paths, d);
        if (r < 0)
                return r;
        return load_paths_strict(paths, settings_only, ret, d);
}

int policy_load_files(const char *config, struct policy **ret, struct diags *d) {
        return load_files(config, false, ret, d);
}

int policy_load_settings(const char *config, struct policy **ret, struct diags *d) {
        return load_files(config, true, ret, d);
}

int policy_check_files(const char *config, struct policy **ret, struct diags *d) {
        _cleanup_strv_free_ char **paths = NULL;
        int r;

        assert(ret);

        *ret = NULL;
        r = config_paths(config, &paths, d);
        if (r < 0)
                return r;
        return policy_check_paths(paths, ret, d);
}
