/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * diag.h — diagnostics with their source location.  The loader, the
 * validator and the compiler report into a `struct diags`; callers print them
 * as "file:line:column: error: message" (the format compilers use, so editors
 * jump to the spot).
 */
#pragma once

#include "util.h"

/* A place in a policy file.  `file` points at a string owned by the policy
 * (or static); line and column are 1-based, 0 = unknown. */
struct srcloc {
        const char *file;
        unsigned line;
        unsigned column;
};

enum diag_level {
        DIAG_ERROR,
        DIAG_WARNING,
        DIAG_NOTE,
};

struct diag {
        enum diag_level level;
        char *file;     /* owned copy, may be NULL */
        unsigned line, column;
        char *message;
        bool verbose;   /* a note worth showing only when asked for
                         * (pmufilterctl check --verbose) */
};

struct diags {
        struct diag *v;
        size_t n, allocated;
        size_t n_errors, n_warnings;
};

/* Append one diagnostic.  loc may be NULL.  Returns -EINVAL for an error
 * (so `return diags_error(...)` reads naturally), 0 for warnings and notes,
 * -ENOMEM if it could not be recorded. */
int diags_add(struct diags *d, enum diag_level level, const struct srcloc *loc,
              const char *fmt, ...) _printf_(4, 5);
int diags_addv(struct diags *d, enum diag_level level, const struct srcloc *loc,
               const char *fmt, va_list ap) _printf_(4, 0);
/* A note shown only on request: what the policy allowed to be skipped and
 * was (an `optional:` event this PMU or kernel cannot offer).  It would
 * otherwise be printed on every check of a policy that means it. */
int diags_note_verbose(struct diags *d, const struct srcloc *loc, const char *fmt, ...) _printf_(3, 4);
#define diags_error(d, loc, ...) diags_add((d), DIAG_ERROR, (loc), __VA_ARGS__)
#define diags_warning(d, loc, ...) diags_add((d), DIAG_WARNING, (loc), __VA_ARGS__)

/* Put the entries from index `from` on in the order of their place in one
 * file (line, then column; stable), as a reader goes through it. */
void diags_sort_by_place(struct diags *d, size_t from);

/* "FILE:LINE" of loc ("n/a:LINE" without a file), into buf: where a rule
 * is, as explain and a VM's ProfileSourceLocation say it. */
int srcloc_format(const struct srcloc *loc, char *buf, size_t size);

/* "file:line:column: error: message\n" for each entry, verbose notes too. */
void diags_print(const struct diags *d, FILE *f);
/* The first error formatted as above (without newline), or NULL.  Caller frees. */
char *diags_first_error(const struct diags *d);
void diags_clear(struct diags *d);
