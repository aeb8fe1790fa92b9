/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * yaml-dl.h — libyaml, loaded while something is parsed.
 *
 * The daemon reads YAML at start-up and at a reload only, and libyaml
 * mapped for the rest of its life was a quarter of what its idle RSS has
 * over a bare sd-bus service (docs/benchmarks.md).  As libpfm4 (lib/pmu.c),
 * it is dlopen()ed by the first holder and dlclose()d by the last.  Not
 * thread-safe: the parsers run on the daemon's (or the tool's) one thread.
 */
#pragma once

/* For the types only: the functions are reached through the sym_ pointers. */
#include <stdbool.h>
#include <yaml.h>

/* Set while at least one yaml_dl_acquire() is not released. */
extern __typeof__(yaml_parser_initialize) *sym_yaml_parser_initialize;
extern __typeof__(yaml_parser_set_input_string) *sym_yaml_parser_set_input_string;
extern __typeof__(yaml_parser_parse) *sym_yaml_parser_parse;
extern __typeof__(yaml_event_delete) *sym_yaml_event_delete;
extern __typeof__(yaml_parser_delete) *sym_yaml_parser_delete;

/* The library dlopen() looks for; tests point it elsewhere. */
extern const char *yaml_dl_soname;

/* Take a hold on libyaml, loading it if none is held.  0; or -ELIBACC
 * with *ret_why saying why it cannot be loaded (a static string, good
 * until the next call), for the caller's diagnostic.  Each 0 is paired
 * with one yaml_dl_release(). */
int yaml_dl_acquire(const char **ret_why);

/* Drop a hold; the last one unloads libyaml.  Nothing parsed may point
 * into it afterwards (the parsers copy what they keep). */
void yaml_dl_release(void);

/* For _cleanup_: release the hold *held says was taken. */
static inline void yaml_dl_releasep(bool *held) {
        if (*held)
                yaml_dl_release();
}
