/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * verbs.h — what pmufilterctl's verbs share: the parsed options, the verb
 * table type, and every verb's entry point.  The tables and the dispatcher
 * are in pmufilterctl.c, offline verbs in verbs-offline.c, the ones that
 * talk to the daemon in verbs-status.c, verbs-bus.c and verbs-monitor.c.
 *
 * A verb returns a negative errno on failure (having printed why: exit 1),
 * or an exit status >= 0 (EXIT_SUCCESS, or EXIT_USAGE for a usage error).
 */
#pragma once

#include <limits.h>

#include "json-out.h"
#include "util.h"

#define EXIT_USAGE 2
#define EXIT_WOULD_CHANGE 3     /* reload --dry-run: the edited policy would change VMs */
#define VERB_ANY UINT_MAX

struct ctl_options {
        const char *config;             /* --config FILE */
        const char *pmu;                /* --pmu MODEL */
        enum json_mode json;            /* --json[=MODE] */
        bool legend;                    /* cleared by --no-legend */
        bool quiet;                     /* -q: no informational lines */
        bool full;                      /* -l: no truncated columns */
        bool verbose;                   /* -v: the raw words of errors too; check's notes */
        char **states;                  /* --state STATE,... */
        const char *host;               /* -H [user@]host */
        const char *bus_address;        /* --bus-address ADDRESS */
        bool runtime;                   /* --runtime */
        uint64_t for_usec;              /* --for DURATION: a time-limited grant; 0: not given */
        bool dry_run;                   /* --dry-run */
};

enum verb_flags {
        VERB_DEFAULT = 1 << 0,          /* run when no verb is given */
        VERB_ONLINE = 1 << 1,           /* talks to the daemon: -H, --bus-address apply */
        VERB_JSON = 1 << 2,             /* honours --json */
        VERB_PMU = 1 << 3,              /* honours --pmu */
        VERB_CONFIG = 1 << 4,           /* honours --config */
        VERB_RUNTIME = 1 << 5,          /* honours --runtime */
        VERB_TABLE = 1 << 6,            /* prints tables: -l applies */
        VERB_STATE = 1 << 7,            /* honours --state */
        VERB_DRY_RUN = 1 << 8,          /* honours --dry-run */
        VERB_FOR = 1 << 9,              /* honours --for */
};

typedef int (*verb_fn)(int argc, char *argv[], const struct ctl_options *o);

/* One verb.  Tables end with an entry whose name is NULL.  min_args and
 * max_args count the verb itself, as in systemd.  A verb with sub-verbs
 * (`profile list|show|set|reset`) has `sub` instead of `fn`.  `args`,
 * `help` and `more` are what --help and `help VERB` print, and the options
 * they list come from `flags`, so help and table cannot drift apart. */
struct verb {
        const char *name;
        unsigned min_args, max_args;
        unsigned flags;
        verb_fn fn;
        const char *args;
        const char *help;
        const struct verb *sub;
        const char *more;               /* `help VERB`: a few more lines, or NULL */
};

/* verbs-offline.c */
int verb_check(int argc, char *argv[], const struct ctl_options *o);
int verb_compile(int argc, char *argv[], const struct ctl_options *o);
int verb_events(int argc, char *argv[], const struct ctl_options *o);

/* verbs-offline.c, also for `show` and `profile show` of verbs-bus.c:
 * the "Fixed counters:" line, and the table decoding every entry of f. */
struct compiled_filter;
struct host_pmu;
void fixed_counters_print(const struct host_pmu *pmu, uint32_t bitmap);
int compile_print_table(const struct compiled_filter *f, const struct host_pmu *pmu,
                        const struct ctl_options *o);

/* verbs-status.c: the states a VM can be in (org.pmufilterd1.VM.State). */
#define N_VM_STATES 7
extern const char *const vm_states[N_VM_STATES];
int verb_status(int argc, char *argv[], const struct ctl_options *o);

/* verbs-bus.c */
int verb_list(int argc, char *argv[], const struct ctl_options *o);
int verb_show(int argc, char *argv[], const struct ctl_options *o);
int verb_profile_list(int argc, char *argv[], const struct ctl_options *o);
int verb_profile_show(int argc, char *argv[], const struct ctl_options *o);
int verb_profile_set(int argc, char *argv[], const struct ctl_options *o);
int verb_profile_reset(int argc, char *argv[], const struct ctl_options *o);
int verb_reload(int argc, char *argv[], const struct ctl_options *o);
int verb_reapply(int argc, char *argv[], const struct ctl_options *o);

/* verbs-explain.c */
int verb_explain(int argc, char *argv[], const struct ctl_options *o);
int verb_reload_dry_run(const struct ctl_options *o);

/* verbs-monitor.c */
int verb_monitor(int argc, char *argv[], const struct ctl_options *o);
