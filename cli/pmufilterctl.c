/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pmufilterctl.c — the command line of pmufilterd (pmufilterctl(1)): the verb
 * tables, option parsing, --help and `help VERB` generated from the tables,
 * and the dispatcher that checks argument counts and which options apply.
 */
#include <getopt.h>

#include "bus-util.h"
#include "output.h"
#include "policy.h"
#include "state.h"
#include "verbs.h"

static int verb_help(int argc, char *argv[], const struct ctl_options *o);

static const struct verb profile_verbs[] = {
        { "list",  1, 1,        VERB_ONLINE | VERB_JSON | VERB_DEFAULT, verb_profile_list,
          NULL, "List profiles" },
        { "show",  2, 2,        VERB_ONLINE | VERB_JSON, verb_profile_show,
          "NAME", "Show one profile and its compiled filter" },
        { "set",   2, VERB_ANY, VERB_ONLINE | VERB_RUNTIME | VERB_FOR, verb_profile_set,
          "NAME [VM...]", "Give VMs a profile; no VM: set the default profile", NULL,
          "Waits until the VMMs have applied the filter, then prints one line for each VM\n"
          "it reached with what the kernel answered (-q: none; failures go to stderr).\n"
          "Persistent unless --runtime.  --for DURATION grants it for that long (runtime,\n"
          "at most 31d), then the VM goes back by itself: 90s, 15min, 2h, 1d, 1h30min." },
        { "reset", 2, VERB_ANY, VERB_ONLINE | VERB_RUNTIME, verb_profile_reset,
          "VM...", "Return VMs to rule matching", NULL,
          "Prints one line for each VM with what the kernel answered (-q: none)." },
        {}
};

static const struct verb verbs[] = {
        /* Talk to the daemon over D-Bus. */
        { "status",  1, 1,        VERB_ONLINE | VERB_JSON | VERB_DEFAULT, verb_status,
          NULL, "Show the daemon, host PMU, kernel support, counts, lockdown", NULL,
          "Exit status 1 when the daemon is not running, is in lockdown, or has a VM\n"
          "that is unmanaged or failed (its filter is not in force)." },
        { "list",    1, VERB_ANY, VERB_ONLINE | VERB_JSON | VERB_STATE, verb_list,
          "[PATTERN...]", "List VMs", NULL,
          "A PATTERN is a shell glob matched against each VM's id and name;\n"
          "--state=STATE,... keeps the VMs in those states.  A VM whose VMM claimed\n"
          "no name is named [COMM], its process's; a PROFILE in parentheses is only\n"
          "decided, its filter not in the kernel (--json: in_force).  SOURCE names a\n"
          "rule by FILE:LINE." },
        { "show",    2, VERB_ANY, VERB_ONLINE | VERB_JSON, verb_show,
          "VM...", "Show VMs, each with its compiled filter decoded", NULL,
          "Several VMs are shown one after the other, separated by a blank line;\n"
          "with --json one object per VM, each a JSON document of its own.  A profile\n"
          "whose filter is not in the kernel is shown as \"Would get:\" and why not;\n"
          "\"Last error:\" says why a VM is unmanaged or failed." },
        { "profile", 1, VERB_ANY, VERB_ONLINE, NULL,
          "COMMAND ...", "Profiles, with these commands:", profile_verbs },
        { "explain", 2, 2,        VERB_ONLINE | VERB_JSON, verb_explain,
          "VM", "Why a VM has its profile: its facts, each rule, overrides", NULL,
          "Verified facts come from the kernel and /proc; claimed facts from the VMM.\n"
          "Rules are listed in order with whether each matched and why not." },
        { "reload",  1, 1,        VERB_ONLINE | VERB_DRY_RUN, verb_reload,
          NULL, "Reload the configuration (--dry-run: what it would change)", NULL,
          "Prints the warnings the new policy earned (a tenant allowed a shared event).\n"
          "--dry-run changes nothing and exits 3 when the policy would change a VM's\n"
          "profile or filter, 0 when it would change none." },
        { "reapply", 1, VERB_ANY, VERB_ONLINE, verb_reapply,
          "[VM...]", "Push the filters to the VMs again; no VM: all" },
        { "monitor", 1, 1,        VERB_ONLINE | VERB_JSON, verb_monitor,
          NULL, "Follow VMs and filter changes as they happen" },
        /* Work on files and this host, without the daemon. */
        { "check",   1, VERB_ANY, VERB_CONFIG | VERB_PMU | VERB_JSON, verb_check,
          "[FILE...]", "Validate a policy and compile its profiles" },
        { "compile", 2, 2,        VERB_CONFIG | VERB_PMU | VERB_JSON, verb_compile,
          "PROFILE", "Show the exact filter the kernel would get" },
        { "events",  1, 2,        VERB_PMU | VERB_JSON, verb_events,
          "[GLOB]", "List known event names and codes" },
        { "help",    1, VERB_ANY, 0, verb_help,
          "[COMMAND...]", "Show this help, or a command's" },
        {}
};

/* Every option, in --help's order.  flag: the verb flag that makes it
 * apply (0: every verb; OPTION_TOP: not for a verb at all). */
#define OPTION_TOP UINT_MAX
static const struct option_doc {
        const char *synopsis;
        unsigned flag;
        const char *help;
} option_docs[] = {
        { "-h --help",               0,            "Show this help, or the command's" },
        { "   --version",            OPTION_TOP,   "Show the package version" },
        { "   --config=FILE",        VERB_CONFIG,  "Policy file instead of " POLICY_DEFAULT_CONFIG "\n"
                                                   "and " POLICY_DEFAULT_CONFIG_DIR "/*.yaml" },
        { "   --pmu=MODEL",          VERB_PMU,     "PMU to compile for instead of the host's: intel,\n"
                                                   "amd, or a libpfm4 name" },
        { "   --json=MODE",          VERB_JSON,    "Print JSON: pretty (indented), short (one line;\n"
                                                   "plain --json) or off" },
        { "   --no-legend",          0,            "Omit column headers and header lines" },
        { "-l --full",               0,            "Do not shorten table columns to fit the terminal" },
        { "-q --quiet",              0,            "No informational lines; errors and warnings stay" },
        { "-v --verbose",            0,            "Add the raw D-Bus and protocol words to errors;\n"
                                                   "check, compile: note each optional event skipped" },
        { "   --no-pager",           0,            "Accepted for systemctl's sake: output is never paged" },
        { "   --state=STATE,...",    VERB_STATE,   "Only VMs in these states (--state=help lists them)" },
        { "-H --host=[USER@]HOST",   VERB_ONLINE,  "Talk to the daemon on HOST over ssh" },
        { "   --bus-address=ADDRESS", VERB_ONLINE, "Talk to the daemon on this bus, not the system bus" },
        { "   --runtime",            VERB_RUNTIME, "Profile changes last until reboot only" },
        { "   --for=DURATION",       VERB_FOR,     "profile set VM: only for this long (runtime),\n"
                                                   "e.g. 90s, 15min, 2h, 1d, 1h30min; at most 31d" },
        { "   --dry-run",            VERB_DRY_RUN, "reload: show what the edited policy would change" },
};

static void help_verbs(const struct verb *table, const char *prefix, int online) {
        for (const struct verb *v = table; v->name; v++) {
                char synopsis[64];

                if (online >= 0 && !!(v->flags & VERB_ONLINE) != online)
                        continue;
                snprintf(synopsis, sizeof synopsis, "%s%s%s%s%s",
                         strempty(prefix), prefix ? " " : "", v->name,
                         v->args ? " " : "", strempty(v->args));
                printf("  %-26s %s\n", synopsis, v->help);
                if (v->sub)
                        help_verbs(v->sub, v->name, online);
        }
}

/* The options for a verb with these flags (OPTION_TOP: the whole program). */
static void help_options(unsigned flags) {
        printf("\nOptions:\n");
        for (size_t i = 0; i < ELEMENTSOF(option_docs); i++) {
                const struct option_doc *d = &option_docs[i];
                const char *h = d->help, *nl;

                if (flags != OPTION_TOP && (d->flag == OPTION_TOP || (d->flag != 0 && !(flags & d->flag))))
                        continue;
                /* Continuation lines line up under the first. */
                for (bool first = true; h; first = false, h = nl ? nl + 1 : NULL) {
                        nl = strchr(h, '\n');
                        printf("  %-26s %.*s\n", first ? d->synopsis : "", nl ? (int) (nl - h) : (int) strlen(h), h);
                }
        }
}

static void help(void) {
        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Inspect and control pmufilterd, the KVM PMU event filter daemon.\n"
               "\nCommands that talk to the daemon over D-Bus:\n",
               program_invocation_short_name);
        help_verbs(verbs, NULL, true);
        printf("\nOffline commands:\n");
        help_verbs(verbs, NULL, false);
        help_options(OPTION_TOP);
        printf("\n`%s help COMMAND` or `%s COMMAND --help` shows one command.\n"
               "Exit status: 0 success, 1 failure, 2 usage error. See pmufilterctl(1).\n",
               program_invocation_short_name, program_invocation_short_name);
}

static void help_verb(const struct verb *v, const char *prefix) {
        printf("%s [OPTIONS...] %s%s%s%s%s\n\n%s%s\n", program_invocation_short_name,
               strempty(prefix), prefix ? " " : "", v->name, v->args ? " " : "", strempty(v->args),
               v->help, v->sub ? "" : ".");
        if (v->sub)
                help_verbs(v->sub, v->name, -1);
        if (v->more)
                printf("%s\n", v->more);
        help_options(v->flags);
        printf("\nSee pmufilterctl(1).\n");
}

/* Find the verb that words name (`profile set`), as far as they go. */
static int find_verb(int argc, char *argv[], const struct verb **ret, const char **ret_prefix) {
        const struct verb *table = verbs, *found = NULL;
        const char *prefix = NULL;

        for (int i = 0; i < argc; i++) {
                const struct verb *v = NULL;

                if (!table)
                        break;          /* VERB's own arguments: `help show vm-1` is help for show */
                for (const struct verb *t = table; t->name && !v; t++)
                        if (streq(t->name, argv[i]))
                                v = t;
                if (!v) {
                        log_error("unknown verb '%s%s%s'. See --help.", strempty(prefix), prefix ? " " : "", argv[i]);
                        return -EINVAL;
                }
                if (found)
                        prefix = found->name;
                found = v;
                table = v->sub;
        }
        *ret = found;
        *ret_prefix = prefix;
        return 0;
}

static int show_help(int argc, char *argv[]) {
        const struct verb *v;
        const char *prefix;

        if (find_verb(argc, argv, &v, &prefix) < 0)
                return EXIT_USAGE;
        if (!v || streq(v->name, "help"))
                help();
        else
                help_verb(v, prefix);
        return EXIT_SUCCESS;
}

static int verb_help(int argc, char *argv[], const struct ctl_options *o) {
        return show_help(argc - 1, argv + 1);
}

static void version(void) {
        printf("%s %s\n%clibpfm4\n", program_invocation_short_name, PACKAGE_VERSION,
               HAVE_LIBPFM ? '+' : '-');
}

/* Options that only some verbs use are refused elsewhere, so a typo such as
 * `--runtime check` is not silently ignored. */
static int check_options(const struct verb *v, const char *verb, const struct ctl_options *o) {
        static const struct {
                unsigned flag;
                const char *option;
        } map[] = {
                { VERB_JSON, "--json" },
                { VERB_PMU, "--pmu" },
                { VERB_CONFIG, "--config" },
                { VERB_RUNTIME, "--runtime" },
                { VERB_DRY_RUN, "--dry-run" },
                { VERB_FOR, "--for" },
                { VERB_ONLINE, "--host" },
                { VERB_ONLINE, "--bus-address" },
                { VERB_STATE, "--state" },
        };
        const bool given[ELEMENTSOF(map)] = {
                o->json != JSON_OFF, o->pmu, o->config, o->runtime, o->dry_run, o->for_usec > 0, o->host,
                o->bus_address, o->states,
        };

        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (given[i] && !(v->flags & map[i].flag)) {
                        log_error("%s does not apply to '%s'. See --help.", map[i].option, verb);
                        return -EINVAL;
                }
        return 0;
}

static int dispatch_verb(const struct verb *table, const char *prefix,
                         int argc, char *argv[], const struct ctl_options *o) {
        const struct verb *v = NULL;
        char name[64];

        for (const struct verb *i = table; i->name && !v; i++)
                if (argc > 0 ? streq(argv[0], i->name) : !!(i->flags & VERB_DEFAULT))
                        v = i;
        if (!v) {
                if (argc > 0)
                        log_error("unknown verb '%s%s%s'. See --help.",
                                  strempty(prefix), prefix ? " " : "", argv[0]);
                else
                        log_error("missing verb%s%s. See --help.",
                                  prefix ? " after " : "", strempty(prefix));
                return EXIT_USAGE;
        }
        if (argc == 0) {
                /* The default verb runs as if it had been typed. */
                static char *argv_default[2];

                argv_default[0] = (char *) v->name;
                argc = 1;
                argv = argv_default;
        }

        snprintf(name, sizeof name, "%s%s%s", strempty(prefix), prefix ? " " : "", v->name);
        if ((unsigned) argc < v->min_args || (unsigned) argc > v->max_args) {
                log_error("too %s arguments for '%s' (usage: %s%s%s). See --help.",
                          (unsigned) argc < v->min_args ? "few" : "many",
                          name, name, v->args ? " " : "", strempty(v->args));
                return EXIT_USAGE;
        }

        if (v->sub)
                return dispatch_verb(v->sub, v->name, argc - 1, argv + 1, o);

        /* `help` is about any verb: whatever options came with it are too. */
        if (v->fn != verb_help && check_options(v, name, o) < 0)
                return EXIT_USAGE;
        return v->fn(argc, argv, o);
}

enum {
        ARG_VERSION = 0x100,
        ARG_CONFIG,
        ARG_PMU,
        ARG_JSON,
        ARG_NO_LEGEND,
        ARG_NO_PAGER,
        ARG_STATE,
        ARG_BUS_ADDRESS,
        ARG_RUNTIME,
        ARG_DRY_RUN,
        ARG_FOR,
};

static int option_value(const char *option, const char *value, const char **ret) {
        if (!value || !*value) {
                log_error("%s needs a value. See --help.", option);
                return -EINVAL;
        }
        *ret = value;
        return 0;
}

/* --json, --json=MODE: 1 to go on, 0 for --json=help (listed). */
static int parse_json(const char *value, struct ctl_options *o) {
        if (!value) {
                /* Plain --json, as before --json=MODE: one line. */
                o->json = JSON_SHORT;
                return 1;
        }
        if (streq(value, "help")) {
                printf("short\npretty\noff\n");
                return 0;
        }
        if (json_mode_from_string(value, &o->json) < 0) {
                log_error("unknown JSON mode '%s': expected pretty, short or off. See --help.", value);
                return -EINVAL;
        }
        return 1;
}

/* --for=DURATION (pmufilterctl(1), TIME SPANS): 1 to go on. */
static int parse_for(const char *value, struct ctl_options *o) {
        const char *why = NULL;
        uint64_t usec = 0;
        int r;

        r = parse_timespan(value, &usec, &why);
        if (r >= 0 && usec == 0)
                why = "a grant of no time";
        else if (r >= 0 && usec > STATE_GRANT_MAX_USEC)
                why = "longer than 31d (a lasting change takes no --for)";
        if (r < 0 || why) {
                log_error("invalid --for '%s': %s. See --help.", strempty(value), strna(why));
                return -EINVAL;
        }
        o->for_usec = usec;
        return 1;
}

/* --state=STATE,...: 1 to go on, 0 for --state=help (listed). */
static int parse_states(const char *value, struct ctl_options *o) {
        _cleanup_free_ char *copy = NULL;
        char *saveptr = NULL;

        if (streq_ptr(value, "help")) {
                for (size_t i = 0; i < N_VM_STATES; i++)
                        printf("%s\n", vm_states[i]);
                return 0;
        }
        copy = strdup(strempty(value));
        if (!copy)
                return log_error_errno(-ENOMEM, "Failed to parse --state: %m");
        for (char *s = strtok_r(copy, ",", &saveptr); s; s = strtok_r(NULL, ",", &saveptr)) {
                bool known = false;

                for (size_t i = 0; i < N_VM_STATES && !known; i++)
                        known = streq(s, vm_states[i]);
                if (!known) {
                        log_error("unknown VM state '%s' (--state=help lists them). See --help.", s);
                        return -EINVAL;
                }
                if (strv_extend(&o->states, s) < 0)
                        return log_error_errno(-ENOMEM, "Failed to parse --state: %m");
        }
        if (!o->states) {
                log_error("--state needs a value. See --help.");
                return -EINVAL;
        }
        return 1;
}

/* Returns 1 to go on, 0 to exit successfully (--version, --json=help),
 * -EINVAL for a usage error (already reported).  --help is left in *help,
 * for the verb after it to choose which help. */
static int parse_argv(int argc, char *argv[], struct ctl_options *o, bool *help) {
        static const struct option options[] = {
                { "help",        no_argument,       NULL, 'h'             },
                { "version",     no_argument,       NULL, ARG_VERSION     },
                { "config",      required_argument, NULL, ARG_CONFIG      },
                { "pmu",         required_argument, NULL, ARG_PMU         },
                { "json",        optional_argument, NULL, ARG_JSON        },
                { "no-legend",   no_argument,       NULL, ARG_NO_LEGEND   },
                { "full",        no_argument,       NULL, 'l'             },
                { "quiet",       no_argument,       NULL, 'q'             },
                { "verbose",     no_argument,       NULL, 'v'             },
                { "no-pager",    no_argument,       NULL, ARG_NO_PAGER    },
                { "state",       required_argument, NULL, ARG_STATE       },
                { "host",        required_argument, NULL, 'H'             },
                { "bus-address", required_argument, NULL, ARG_BUS_ADDRESS },
                { "runtime",     no_argument,       NULL, ARG_RUNTIME     },
                { "dry-run",     no_argument,       NULL, ARG_DRY_RUN     },
                { "for",         required_argument, NULL, ARG_FOR         },
                {}
        };
        int c, r = 1;

        /* Our own messages, in the one-line form every error has. */
        opterr = 0;
        /* Permuting (no '+'): options may follow the verb, as with systemctl;
         * verbs are positional, so nothing is ambiguous.  `--` ends options. */
        while (r > 0 && (c = getopt_long(argc, argv, ":hH:lqv", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        *help = true;
                        break;
                case ARG_VERSION:
                        version();
                        return 0;
                case ARG_CONFIG:
                        r = option_value("--config", optarg, &o->config) ?: 1;
                        break;
                case ARG_PMU:
                        r = option_value("--pmu", optarg, &o->pmu) ?: 1;
                        break;
                case ARG_JSON:
                        r = parse_json(optarg, o);
                        break;
                case ARG_NO_LEGEND:
                        o->legend = false;
                        break;
                case 'l':
                        o->full = true;
                        break;
                case 'q':
                        o->quiet = true;
                        break;
                case 'v':
                        o->verbose = true;
                        break;
                case ARG_NO_PAGER:
                        /* Nothing pages: accepted so that systemctl habits work. */
                        break;
                case ARG_STATE:
                        r = parse_states(optarg, o);
                        break;
                case 'H':
                        r = option_value("--host", optarg, &o->host) ?: 1;
                        break;
                case ARG_BUS_ADDRESS:
                        r = option_value("--bus-address", optarg, &o->bus_address) ?: 1;
                        break;
                case ARG_RUNTIME:
                        o->runtime = true;
                        break;
                case ARG_DRY_RUN:
                        o->dry_run = true;
                        break;
                case ARG_FOR:
                        r = parse_for(optarg, o);
                        break;
                case ':':
                        log_error("option '%s' needs a value. See --help.", argv[optind - 1]);
                        return -EINVAL;
                case '?':
                        if (optopt != 0)
                                log_error("unknown option '-%c'. See --help.", optopt);
                        else
                                log_error("unknown option '%s'. See --help.", argv[optind - 1]);
                        return -EINVAL;
                default:
                        log_error("unexpected getopt result %d.", c);
                        return -EINVAL;
                }

        if (r <= 0)
                return r;
        if (o->host && o->bus_address) {
                log_error("--host and --bus-address exclude each other. See --help.");
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        struct ctl_options o = { .legend = true };
        bool want_help = false;
        int r;

        r = parse_argv(argc, argv, &o, &want_help);
        if (r <= 0) {
                strv_free(o.states);
                return r < 0 ? EXIT_USAGE : EXIT_SUCCESS;
        }
        log_set_verbose(o.verbose);

        if (want_help)
                r = show_help(argc - optind, argv + optind);
        else
                r = dispatch_verb(verbs, NULL, argc - optind, argv + optind, &o);
        strv_free(o.states);
        return r < 0 ? EXIT_FAILURE : r;
}
