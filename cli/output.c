/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * output.c — pmufilterctl's single output path: error lines, and tables that
 * libsmartcols prints for people or as JSON, so the two never drift apart.
 */
#include <errno.h>

#include "output.h"
#include "verbs.h"

int log_error_errno(int r, const char *fmt, ...) {
        va_list ap;

        assert(fmt);

        fprintf(stderr, "%s: ", program_invocation_short_name);
        errno = r < 0 ? -r : r;         /* for %m */
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return r;
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
                if (columns[i].type == COLUMN_NUMBER)
                        scols_column_set_json_type(c, SCOLS_JSON_NUMBER);
                else if (columns[i].type == COLUMN_BOOLEAN)
                        scols_column_set_json_type(c, SCOLS_JSON_BOOLEAN);
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
                if (cell)
                        r = scols_line_set_data(l, i, cell);
        }
        va_end(ap);
        return r < 0 ? -ENOMEM : 0;
}

int table_print(struct libscols_table *t, const struct ctl_options *o) {
        int r;

        assert(t);
        assert(o);

        scols_table_enable_json(t, o->json);
        scols_table_enable_noheadings(t, !o->legend);
        r = scols_print_table(t);
        if (r < 0)
                return log_error_errno(r, "Failed to print the table: %m");
        if (fflush(stdout) != 0)
                return log_error_errno(-errno, "Failed to write to stdout: %m");
        return 0;
}

void json_print_string(FILE *f, const char *s) {
        assert(f);
        assert(s);

        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if (*p < 0x20)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}
