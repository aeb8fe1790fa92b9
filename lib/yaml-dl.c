/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * yaml-dl.c — libyaml's entry points from a dlopen()ed libyaml-0.so.2,
 * held by a count (yaml-dl.h says why).
 */
#include <assert.h>
#include <stdio.h>

#include "dlfcn-util.h"
#include "util.h"
#include "yaml-dl.h"

__typeof__(yaml_parser_initialize) *sym_yaml_parser_initialize;
__typeof__(yaml_parser_set_input_string) *sym_yaml_parser_set_input_string;
__typeof__(yaml_parser_parse) *sym_yaml_parser_parse;
__typeof__(yaml_event_delete) *sym_yaml_event_delete;
__typeof__(yaml_parser_delete) *sym_yaml_parser_delete;

const char *yaml_dl_soname = "libyaml-0.so.2";

static const struct dlsym_arg yaml_symbols[] = {
        DLSYM_ARG(yaml_parser_initialize),
        DLSYM_ARG(yaml_parser_set_input_string),
        DLSYM_ARG(yaml_parser_parse),
        DLSYM_ARG(yaml_event_delete),
        DLSYM_ARG(yaml_parser_delete),
};

static void *yaml_dl;
static unsigned yaml_holds;
static char yaml_why[256];

static int yaml_load(void) {
        char e[200];
        int r;

        r = dlopen_symbols(yaml_dl_soname, yaml_symbols, ELEMENTSOF(yaml_symbols), &yaml_dl, e, sizeof(e));
        if (r < 0)
                snprintf(yaml_why, sizeof(yaml_why), "libyaml cannot be loaded: %s", e);
        return r;
}

int yaml_dl_acquire(const char **ret_why) {
        int r;

        if (yaml_holds == 0) {
                r = yaml_load();
                if (r < 0) {
                        if (ret_why)
                                *ret_why = yaml_why;
                        return r;
                }
        }
        yaml_holds++;
        return 0;
}

void yaml_dl_release(void) {
        assert(yaml_holds > 0);
        if (--yaml_holds == 0)
                dlclose_symbols(&yaml_dl, yaml_symbols, ELEMENTSOF(yaml_symbols));
}
