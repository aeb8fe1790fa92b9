/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * output.h — how pmufilterctl writes: one-line errors on stderr (and, with
 * --verbose, the raw words below them), informational lines that --quiet
 * silences, colour on a terminal, and tables that print either for people
 * (libsmartcols) or as JSON (json-out.h) from the same rows.  Columns carry
 * a type and a JSON key, so JSON numbers and booleans are not quoted and a
 * column's key is the field name every other verb uses for the same thing.
 */
#pragma once

#include <libsmartcols/libsmartcols.h>

#include "json-out.h"
#include "util.h"

struct ctl_options;

/* "pmufilterctl: <message>" on stderr; %m is strerror(-r).  Returns r. */
int log_error_errno(int r, const char *fmt, ...) _printf_(2, 3);
#define log_error(...) ((void) log_error_errno(0, __VA_ARGS__))

/* --verbose: the raw D-Bus and protocol words of an error, on a line of
 * their own after it.  Off, log_detail() prints nothing. */
void log_set_verbose(bool b);
bool log_is_verbose(void);
void log_detail(const char *fmt, ...) _printf_(1, 2);

/* A line on stdout that says what happened, unless --quiet. */
void info(const struct ctl_options *o, const char *fmt, ...) _printf_(2, 3);

/* Colour as systemd's tools use it: on when stdout is a terminal, unless
 * $NO_COLOR is set or $TERM is "dumb".  ansi_red() and ansi_normal() are ""
 * when off. */
bool colors_enabled(void);
const char *ansi_red(void);
const char *ansi_normal(void);
/* A VM state, profile source or the like that means "not protected". */
bool state_is_bad(const char *state);

enum column_type {
        COLUMN_STRING,
        COLUMN_NUMBER,          /* cell text is a decimal number; a JSON number */
        COLUMN_BOOLEAN,         /* "yes"/"no" for people, true/false in JSON */
};

struct column {
        const char *name;       /* header */
        enum column_type type;
        double width_hint;      /* 0: natural width */
        int flags;              /* SCOLS_FL_RIGHT, SCOLS_FL_TRUNC (dropped by --full), ... */
        const char *json;       /* JSON key; NULL: the header in lower case */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct libscols_table *, scols_unref_table)
#define _cleanup_table_ _cleanup_(scols_unref_tablep)

/* A table whose JSON form is {"<name>": [ {row}, ... ]}.  columns must be
 * static: the table refers to them. */
int table_new(const char *name, const struct column *columns, size_t n_columns,
              struct libscols_table **ret);
/* Append a row: exactly one `const char *` per column (NULL or "": no
 * value, JSON null). */
int table_add_row(struct libscols_table *t, ...);
/* Show cell `column` of the last row in red, when colour is on. */
void table_highlight_last(struct libscols_table *t, size_t column);
/* Print to stdout as --json, --no-legend and --full ask. */
int table_print(struct libscols_table *t, const struct ctl_options *o);

static inline const char *yes_no(bool b) {
        return b ? "yes" : "no";
}
