/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* diag.c — collecting and printing located diagnostics. */
#include "diag.h"

static const char *const level_names[] = {
        [DIAG_ERROR] = "error",
        [DIAG_WARNING] = "warning",
        [DIAG_NOTE] = "note",
};

int diags_addv(struct diags *d, enum diag_level level, const struct srcloc *loc,
               const char *fmt, va_list ap) {
        struct diag *e;
        char *msg = NULL, *file = NULL;
        int ret = level == DIAG_ERROR ? -EINVAL : 0;

        assert(fmt);

        if (!d)
                return ret;
        if (vasprintf(&msg, fmt, ap) < 0)
                return -ENOMEM;
        /* A diagnostic is one line, whatever bytes of the file it quotes
         * (a scalar's folded line breaks, a CR): control characters are
         * shown as spaces. */
        for (char *c = msg; *c; c++)
                if ((unsigned char) *c < ' ' || *c == 0x7f)
                        *c = ' ';
        if (loc && loc->file) {
                file = strdup(loc->file);
                if (!file) {
                        free(msg);
                        return -ENOMEM;
                }
        }
        if (!GREEDY_REALLOC(d->v, d->allocated, d->n + 1)) {
                free(msg);
                free(file);
                return -ENOMEM;
        }
        e = &d->v[d->n++];
        *e = (struct diag) {
                .level = level,
                .file = file,
                .line = loc ? loc->line : 0,
                .column = loc ? loc->column : 0,
                .message = msg,
        };
        if (level == DIAG_ERROR)
                d->n_errors++;
        else if (level == DIAG_WARNING)
                d->n_warnings++;
        return ret;
}

int diags_add(struct diags *d, enum diag_level level, const struct srcloc *loc,
              const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = diags_addv(d, level, loc, fmt, ap);
        va_end(ap);
        return r;
}

struct placed {
        struct diag diag;
        size_t index;
};

static int placed_compare(const void *a, const void *b) {
        const struct placed *x = a, *y = b;

        if (x->diag.line != y->diag.line)
                return x->diag.line < y->diag.line ? -1 : 1;
        if (x->diag.column != y->diag.column)
                return x->diag.column < y->diag.column ? -1 : 1;
        return (x->index > y->index) - (x->index < y->index);
}

void diags_sort_by_place(struct diags *d, size_t from) {
        struct placed *v;
        size_t n;

        assert(d);

        if (from >= d->n || d->n - from < 2)
                return;
        n = d->n - from;
        v = calloc(n, sizeof(*v));
        if (!v)
                return;         /* the order found is a fine order too */
        for (size_t i = 0; i < n; i++)
                v[i] = (struct placed) { .diag = d->v[from + i], .index = i };
        qsort(v, n, sizeof(*v), placed_compare);
        for (size_t i = 0; i < n; i++)
                d->v[from + i] = v[i].diag;
        free(v);
}

int diags_note_verbose(struct diags *d, const struct srcloc *loc, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = diags_addv(d, DIAG_NOTE, loc, fmt, ap);
        va_end(ap);
        if (r >= 0 && d)
                d->v[d->n - 1].verbose = true;
        return r;
}

static char *diag_format(const struct diag *e) {
        char *s = NULL;
        int r;

        if (e->file && e->line > 0)
                r = asprintf(&s, "%s:%u:%u: %s: %s", e->file, e->line, e->column,
                             level_names[e->level], e->message);
        else if (e->file)
                r = asprintf(&s, "%s: %s: %s", e->file, level_names[e->level], e->message);
        else
                r = asprintf(&s, "%s: %s", level_names[e->level], e->message);
        return r < 0 ? NULL : s;
}

void diags_print(const struct diags *d, FILE *f) {
        assert(d);
        assert(f);

        for (size_t i = 0; i < d->n; i++) {
                _cleanup_free_ char *s = diag_format(&d->v[i]);
                fprintf(f, "%s\n", s ? s : d->v[i].message);
        }
}

char *diags_first_error(const struct diags *d) {
        assert(d);

        for (size_t i = 0; i < d->n; i++)
                if (d->v[i].level == DIAG_ERROR)
                        return diag_format(&d->v[i]);
        return NULL;
}

void diags_clear(struct diags *d) {
        assert(d);

        for (size_t i = 0; i < d->n; i++) {
                free(d->v[i].file);
                free(d->v[i].message);
        }
        free(d->v);
        *d = (struct diags) {};
}

int srcloc_format(const struct srcloc *loc, char *buf, size_t size) {
        return snprintf(buf, size, "%s:%u", strna(loc->file), loc->line);
}
