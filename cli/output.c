/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * output.c — pmufilterctl's single output path: error lines, informational
 * lines, colour, and tables that libsmartcols prints for people and
 * json-out.c as JSON, from the same rows, so the two never drift apart.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "output.h"
#include "verbs.h"

#define ANSI_HIGHLIGHT_RED "\x1B[0;1;31m"
#define ANSI_NORMAL "\x1B[0m"

static bool verbose;

DEFINE_TRIVIAL_CLEANUP_FUNC(struct libscols_iter *, scols_free_iter)

int log_error_errno(int r, const char *fmt, ...) {
        va_list ap;

        assert(fmt);

        fflush(stdout);
        fprintf(stderr, "%s: ", program_invocation_short_name);
        errno = r < 0 ? -r : r;         /* for %m */
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return r;
}

void log_set_verbose(bool b) {
        verbose = b;
}

bool log_is_verbose(void) {
        return verbose;
}

void log_detail(const char *fmt, ...) {
        va_list ap;

        if (!verbose)
                return;
        fprintf(stderr, "%s: ", program_invocation_short_name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

void info(const struct ctl_options *o, const char *fmt, ...) {
        va_list ap;

        assert(o);
        if (o->quiet)
                return;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

bool colors_enabled(void) {
        static int cached = -1;

        if (cached < 0) {
                const char *term = getenv("TERM");

                /* https://no-color.org/: set, whatever its value. */
                cached = !getenv("NO_COLOR") && !streq_ptr(term, "dumb") && isatty(STDOUT_FILENO);
        }
        return cached;
}

const char *ansi_red(void) {
        return colors_enabled() ? ANSI_HIGHLIGHT_RED : "";
}

const char *ansi_normal(void) {
        return colors_enabled() ? ANSI_NORMAL : "";
}

bool state_is_bad(const char *state) {
        return streq_ptr(state, "unmanaged") || streq_ptr(state, "failed") || streq_ptr(state, "lockdown");
}

int table_new(const char *name, const struct column *columns, size_t n_columns,
              struct libscols_table **ret) {
        _cleanup_table_ struct libscols_table *t = NULL;

        assert(name);
        assert(columns || n_columns == 0);
        assert(ret);

        t = scols_new_table();
        if (!t)
                return -ENOMEM;
        if (scols_table_set_name(t, name) < 0)
                return -ENOMEM;

        for (size_t i = 0; i < n_columns; i++) {
                struct libscols_column *c;
                int flags = columns[i].flags;

                if (columns[i].type == COLUMN_NUMBER)
                        flags |= SCOLS_FL_RIGHT;
                c = scols_table_new_column(t, columns[i].name, columns[i].width_hint, flags);
                if (!c)
                        return -ENOMEM;
                /* The JSON form reads the column's key and type from here. */
                if (scols_cell_set_userdata(scols_column_get_header(c), (void *) &columns[i]) < 0)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(t);
        return 0;
}

int table_add_row(struct libscols_table *t, ...) {
        struct libscols_line *l;
        size_t n = scols_table_get_ncols(t);
        va_list ap;
        int r = 0;

        assert(t);

        l = scols_table_new_line(t, NULL);
        if (!l)
                return -ENOMEM;

        va_start(ap, t);
        for (size_t i = 0; i < n && r >= 0; i++) {
                const char *cell = va_arg(ap, const char *);

                /* libsmartcols copies the text; NULL leaves the cell empty (JSON null). */
                if (!isempty(cell))
                        r = scols_line_set_data(l, i, cell);
        }
        va_end(ap);
        return r < 0 ? -ENOMEM : 0;
}

void table_highlight_last(struct libscols_table *t, size_t column) {
        size_t n = scols_table_get_nlines(t);
        struct libscols_line *l;

        assert(t);
        if (!colors_enabled() || n == 0)
                return;
        l = scols_table_get_line(t, n - 1);
        if (l)
                (void) scols_cell_set_color(scols_line_get_cell(l, column), ANSI_HIGHLIGHT_RED);
}

static const struct column *column_of(struct libscols_table *t, size_t i) {
        return scols_cell_get_userdata(scols_column_get_header(scols_table_get_column(t, i)));
}

static void json_key_of_column(const struct column *c, char *buf, size_t size) {
        size_t i = 0;

        if (c->json) {
                snprintf(buf, size, "%s", c->json);
                return;
        }
        for (; c->name[i] && i + 1 < size; i++)
                buf[i] = (char) tolower((unsigned char) c->name[i]);
        buf[i] = '\0';
}

static int table_print_json(struct libscols_table *t, const struct ctl_options *o) {
        _cleanup_(scols_free_iterp) struct libscols_iter *itr = scols_new_iter(SCOLS_ITER_FORWARD);
        size_t n = scols_table_get_ncols(t);
        struct libscols_line *l;
        struct json_writer w;
        int r;

        if (!itr)
                return log_error_errno(-ENOMEM, "Failed to print the table: %m");

        json_init(&w, stdout, o->json);
        json_object_begin(&w);
        json_key(&w, scols_table_get_name(t));
        json_array_begin(&w);
        while (scols_table_next_line(t, itr, &l) == 0) {
                json_object_begin(&w);
                for (size_t i = 0; i < n; i++) {
                        const struct column *c = column_of(t, i);
                        const char *data = scols_cell_get_data(scols_line_get_cell(l, i));
                        char key[64];

                        json_key_of_column(c, key, sizeof key);
                        json_key(&w, key);
                        if (isempty(data))
                                json_null(&w);
                        else if (c->type == COLUMN_NUMBER)
                                json_number(&w, strtoull(data, NULL, 10));
                        else if (c->type == COLUMN_BOOLEAN)
                                json_bool(&w, streq(data, "yes"));
                        else
                                json_string(&w, data);
                }
                json_object_end(&w);
        }
        json_array_end(&w);
        json_object_end(&w);
        r = json_done(&w);
        if (r < 0)
                return log_error_errno(r, "Failed to write to stdout: %m");
        return 0;
}

int table_print(struct libscols_table *t, const struct ctl_options *o) {
        int r;

        assert(t);
        assert(o);

        if (o->json != JSON_OFF)
                return table_print_json(t, o);

        if (o->full)
                for (size_t i = 0; i < scols_table_get_ncols(t); i++) {
                        struct libscols_column *c = scols_table_get_column(t, i);

                        scols_column_set_flags(c, scols_column_get_flags(c) & ~SCOLS_FL_TRUNC);
                }
        scols_table_enable_colors(t, colors_enabled());
        scols_table_enable_noheadings(t, !o->legend);
        r = scols_print_table(t);
        if (r < 0)
                return log_error_errno(r, "Failed to print the table: %m");
        if (fflush(stdout) != 0)
                return log_error_errno(-errno, "Failed to write to stdout: %m");
        return 0;
}
