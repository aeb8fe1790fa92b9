/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dlfcn-util.h — a library loaded while needed, its entry points resolved
 * into a table of pointers, as systemd does its optional libraries
 * (dlopen_many_sym_or_warn(), DLSYM_ARG): libpfm4 (lib/pmu.c) and libyaml
 * (lib/yaml-dl.c).  Nothing links against them; each is unmapped again.
 */
#pragma once

#include <stddef.h>

/* One entry point: the pointer to fill and the symbol's name. */
struct dlsym_arg {
        void **sym;
        const char *name;
};
#define DLSYM_ARG(name) { (void **) &sym_##name, #name }

/* dlopen(soname, RTLD_NOW | RTLD_LOCAL) and resolve every symbol of syms.
 * 0 with *ret_dl set; -ELIBACC if the library cannot be loaded or lacks
 * one of them, with nothing kept (every pointer NULL) and, if why is not
 * NULL, the reason in it ("libyaml-0.so.2: cannot open shared object
 * file: ...", "libyaml-0.so.2 has no yaml_parser_parse"). */
int dlopen_symbols(const char *soname, const struct dlsym_arg *syms, size_t n, void **ret_dl, char *why,
                   size_t why_size);

/* Every pointer of syms NULL again, then dlclose(*dl) (not RTLD_NODELETE:
 * the library is unmapped); *dl NULL.  Nothing resolved from it may be
 * used, nor anything it returned that points into it. */
void dlclose_symbols(void **dl, const struct dlsym_arg *syms, size_t n);
