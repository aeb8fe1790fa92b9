/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dlfcn-util.c — see dlfcn-util.h. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>

#include "dlfcn-util.h"

void dlclose_symbols(void **dl, const struct dlsym_arg *syms, size_t n) {
        for (size_t i = 0; i < n; i++)
                *syms[i].sym = NULL;
        if (*dl)
                (void) dlclose(*dl);
        *dl = NULL;
}

int dlopen_symbols(const char *soname, const struct dlsym_arg *syms, size_t n, void **ret_dl, char *why,
                   size_t why_size) {
        void *dl = dlopen(soname, RTLD_NOW | RTLD_LOCAL);

        if (!dl) {
                const char *e = dlerror();

                if (why)
                        snprintf(why, why_size, "%s", e ? e : soname);
                return -ELIBACC;
        }
        for (size_t i = 0; i < n; i++) {
                *syms[i].sym = dlsym(dl, syms[i].name);
                if (!*syms[i].sym) {
                        if (why)
                                snprintf(why, why_size, "%s has no %s", soname, syms[i].name);
                        dlclose_symbols(&dl, syms, n);
                        return -ELIBACC;
                }
        }
        *ret_dl = dl;
        return 0;
}
