/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * output.h — how pmufilterctl writes: one-line errors on stderr, and tables
 * that print either for people or as JSON (--json) from the same rows, via
 * libsmartcols.  Columns carry a type so JSON numbers and booleans are not
 * quoted.
 */
#pragma once

#include <libsmartcols/libsmartcols.h>

#include "util.h"

struct ctl_options;

/* "pmufilterctl: <message>" on stderr; %m is strerror(-r).  Returns r. */
int log_error_errno(int r, const char *fmt, ...) _printf_(2, 3);
#define log_error(...) ((void) log_error_errno(0, __VA_ARGS__))

enum column_type {
        COLUMN_STRING,
        COLUMN_NUMBER,          /* cell text is a JSON number: decimal digits */
        COLUMN_BOOLEAN,         /* "yes"/"no" for people, true/false in JSON */
};

struct column {
        const char *name;       /* header; libsmartcols lowercases it for JSON keys */
        enum column_type type;
        double width_hint;      /* 0: natural width */
        int flags;              /* SCOLS_FL_RIGHT, SCOLS_FL_TRUNC, ... */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct libscols_table *, scols_unref_table)
#define _cleanup_table_ _cleanup_(scols_unref_tablep)

/* A table whose JSON form is {"<name>": [ {row}, ... ]}. */
int table_new(const char *name, const struct column *columns, size_t n_columns,
              struct libscols_table **ret);
/* Append a row: exactly one `const char *` per column (NULL: no value). */
int table_add_row(struct libscols_table *t, ...);
/* Print to stdout as --json / --no-legend ask. */
int table_print(struct libscols_table *t, const struct ctl_options *o);

/* Write s as a JSON string literal, quotes included. */
void json_print_string(FILE *f, const char *s);

static inline const char *yes_no(bool b) {
        return b ? "yes" : "no";
}
