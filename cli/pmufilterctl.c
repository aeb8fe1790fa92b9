/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pmufilterctl.c — the command line of pmufilterd (pmufilterctl(1)): the verb
 * tables, option parsing, --help generated from the tables, and the
 * dispatcher that checks argument counts and which options apply.
 */
#include <getopt.h>

#include "output.h"
#include "policy.h"
#include "verbs.h"

static const struct verb profile_verbs[] = {
        { "list",  1, 1,        VERB_ONLINE | VERB_JSON | VERB_DEFAULT, verb_profile_list,
          NULL, "List profiles" },
        { "show",  2, 2,        VERB_ONLINE | VERB_JSON, verb_profile_show,
          "NAME", "Show one profile and its compiled filter" },
        { "set",   2, VERB_ANY, VERB_ONLINE | VERB_RUNTIME, verb_profile_set,
          "NAME [VM...]", "Give VMs a profile; no VM: set the default profile" },
        { "reset", 2, VERB_ANY, VERB_ONLINE | VERB_RUNTIME, verb_profile_reset,
          "VM...", "Return VMs to rule matching" },
        {}
};

static const struct verb verbs[] = {
        /* Talk to the daemon over D-Bus. */
        { "status",  1, 1,        VERB_ONLINE | VERB_JSON | VERB_DEFAULT, verb_status,
          NULL, "Show the daemon, host PMU, kernel support, counts, lockdown" },
        { "list",    1, 1,        VERB_ONLINE | VERB_JSON, verb_list,
          NULL, "List VMs" },
        { "show",    2, 2,        VERB_ONLINE | VERB_JSON, verb_show,
          "VM", "Show one VM, with its compiled filter decoded" },
        { "profile", 1, VERB_ANY, VERB_ONLINE, NULL,
          "COMMAND ...", "Profiles, with these commands:", profile_verbs },
        { "explain", 2, 2,        VERB_ONLINE | VERB_JSON, verb_explain,
          "VM", "Why a VM has its profile: its facts, each rule, overrides" },
        { "reload",  1, 1,        VERB_ONLINE | VERB_DRY_RUN, verb_reload,
          NULL, "Reload the configuration (--dry-run: what it would change)" },
        { "reapply", 1, VERB_ANY, VERB_ONLINE, verb_reapply,
          "[VM...]", "Push the filters to the VMs again; no VM: all" },
        { "monitor", 1, 1,        VERB_ONLINE | VERB_JSON, verb_monitor,
          NULL, "Follow VMs and filter changes as they happen" },
        /* Work on files and this host, without the daemon. */
        { "check",   1, VERB_ANY, VERB_CONFIG | VERB_PMU | VERB_VERBOSE, verb_check,
          "[FILE...]", "Validate a policy and compile its profiles" },
        { "compile", 2, 2,        VERB_CONFIG | VERB_PMU | VERB_JSON | VERB_VERBOSE, verb_compile,
          "PROFILE", "Show the exact filter the kernel would get" },
        { "events",  1, 2,        VERB_PMU | VERB_JSON, verb_events,
          "[GLOB]", "List known event names and codes" },
        {}
};

static void help_verbs(const struct verb *table, const char *prefix, bool online) {
        for (const struct verb *v = table; v->name; v++) {
                char synopsis[64];

                if (!!(v->flags & VERB_ONLINE) != online)
                        continue;
                snprintf(synopsis, sizeof synopsis, "%s%s%s%s%s",
                         strempty(prefix), prefix ? " " : "", v->name,
                         v->args ? " " : "", strempty(v->args));
                printf("  %-26s %s\n", synopsis, v->help);
                if (v->sub)
                        help_verbs(v->sub, v->name, online);
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
        printf("\nOptions:\n"
               "  -h --help                  Show this help\n"
               "     --version                Show the package version\n"
               "     --config=FILE            Policy file instead of %s\n"
               "                              and %s/*.yaml (check, compile)\n"
               "     --pmu=MODEL              PMU to compile for instead of the host's: intel,\n"
               "                              amd, or a libpfm4 name (check, compile, events)\n"
               "     --json                   Print JSON\n"
               "     --no-legend              Omit column headers and header lines\n"
               "  -H --host=[USER@]HOST      Talk to the daemon on HOST over ssh\n"
               "     --bus-address=ADDRESS    Talk to the daemon on this bus, not the system bus\n"
               "     --runtime                Profile changes last until reboot only\n"
               "     --dry-run                reload: show what the edited policy would change\n"
               "  -v --verbose                check, compile: also note each optional event\n"
               "                              skipped on this PMU or kernel\n"
               "\nExit status: 0 success, 1 failure, 2 usage error;\n"
               "reload --dry-run: 0 nothing would change, 3 something would.\n",
               POLICY_DEFAULT_CONFIG, POLICY_DEFAULT_CONFIG_DIR);
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
                { VERB_VERBOSE, "--verbose" },
                { VERB_ONLINE, "--host" },
                { VERB_ONLINE, "--bus-address" },
        };
        const bool given[ELEMENTSOF(map)] = {
                o->json, o->pmu, o->config, o->runtime, o->dry_run, o->verbose, o->host, o->bus_address,
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

        if (check_options(v, name, o) < 0)
                return EXIT_USAGE;
        return v->fn(argc, argv, o);
}

enum {
        ARG_VERSION = 0x100,
        ARG_CONFIG,
        ARG_PMU,
        ARG_JSON,
        ARG_NO_LEGEND,
        ARG_BUS_ADDRESS,
        ARG_RUNTIME,
        ARG_DRY_RUN,
};

static int option_value(const char *option, const char *value, const char **ret) {
        if (!value || !*value) {
                log_error("%s needs a value. See --help.", option);
                return -EINVAL;
        }
        *ret = value;
        return 0;
}

/* Returns 1 to go on, 0 to exit successfully (--help, --version), -EINVAL
 * for a usage error (already reported). */
static int parse_argv(int argc, char *argv[], struct ctl_options *o) {
        static const struct option options[] = {
                { "help",        no_argument,       NULL, 'h'             },
                { "version",     no_argument,       NULL, ARG_VERSION     },
                { "config",      required_argument, NULL, ARG_CONFIG      },
                { "pmu",         required_argument, NULL, ARG_PMU         },
                { "json",        no_argument,       NULL, ARG_JSON        },
                { "no-legend",   no_argument,       NULL, ARG_NO_LEGEND   },
                { "host",        required_argument, NULL, 'H'             },
                { "bus-address", required_argument, NULL, ARG_BUS_ADDRESS },
                { "runtime",     no_argument,       NULL, ARG_RUNTIME     },
                { "dry-run",     no_argument,       NULL, ARG_DRY_RUN     },
                { "verbose",     no_argument,       NULL, 'v'             },
                {}
        };
        int c, r = 0;

        /* Our own messages, in the one-line form every error has. */
        opterr = 0;
        /* Permuting (no '+'): options may follow the verb, as with systemctl;
         * verbs are positional, so nothing is ambiguous.  `--` ends options. */
        while (r >= 0 && (c = getopt_long(argc, argv, ":hH:v", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        version();
                        return 0;
                case ARG_CONFIG:
                        r = option_value("--config", optarg, &o->config);
                        break;
                case ARG_PMU:
                        r = option_value("--pmu", optarg, &o->pmu);
                        break;
                case ARG_JSON:
                        o->json = true;
                        break;
                case ARG_NO_LEGEND:
                        o->legend = false;
                        break;
                case 'H':
                        r = option_value("--host", optarg, &o->host);
                        break;
                case ARG_BUS_ADDRESS:
                        r = option_value("--bus-address", optarg, &o->bus_address);
                        break;
                case ARG_RUNTIME:
                        o->runtime = true;
                        break;
                case ARG_DRY_RUN:
                        o->dry_run = true;
                        break;
                case 'v':
                        o->verbose = true;
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

        if (r < 0)
                return r;
        if (o->host && o->bus_address) {
                log_error("--host and --bus-address exclude each other. See --help.");
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        struct ctl_options o = { .legend = true };
        int r;

        r = parse_argv(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_SUCCESS;

        r = dispatch_verb(verbs, NULL, argc - optind, argv + optind, &o);
        return r < 0 ? EXIT_FAILURE : r;
}
