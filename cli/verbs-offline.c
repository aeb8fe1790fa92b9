/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * verbs-offline.c — the verbs that need no daemon (pmufilterctl(1)): `check`
 * validates a policy and compiles every profile, `compile` shows one
 * profile's kernel filter, `events` lists the event catalogue.  They load the
 * policy, detect the PMU and probe KVM exactly as the daemon does, so what
 * they accept the daemon accepts.
 */
#include <inttypes.h>

#include "compile.h"
#include "kvm-compat.h"
#include "output.h"
#include "pmu.h"
#include "policy.h"
#include "verbs.h"

static int host_pmu_get(const struct ctl_options *o, struct host_pmu *ret) {
        int r;

        if (!o->pmu) {
                r = host_pmu_detect(ret);
                if (r < 0)
                        return log_error_errno(r, "Failed to detect the host's PMU: %m");
                return 0;
        }

        r = host_pmu_from_name(o->pmu, ret);
        if (r == -ENOENT)
                return log_error_errno(r, "Unknown PMU model '%s': expected intel, amd, or a libpfm4 PMU name (skx, icl, amd64_fam19h_zen3, ...)%s.",
                                       o->pmu, HAVE_LIBPFM ? "" : "; this build has no libpfm4");
        if (r < 0)
                return log_error_errno(r, "Failed to look up PMU model '%s': %m", o->pmu);
        return 0;
}

/* What the kernel supports.  Where /dev/kvm cannot be opened (a build host,
 * a container, no permission) check and compile stay useful by assuming a
 * current kernel — filters, masked events, the default entry limit — and
 * saying so: a policy that passes here may still need those on the target. */
static void kvm_support_get(const struct ctl_options *o, struct kvm_support *ret) {
        struct kvm_support k;

        (void) kvm_support_probe(&k);
        if (k.open_error < 0) {
                if (!o->quiet)
                        fprintf(stderr, "note: /dev/kvm not available (%s): checked against assumed kernel support: event filter, masked events, at most %u entries\n",
                                strerror(-k.open_error), KVM_PMU_FILTER_MAX_EVENTS_DEFAULT);
                k.filter = true;
                k.masked = true;
                k.max_events = KVM_PMU_FILTER_MAX_EVENTS_DEFAULT;
        } else if (!k.filter && !o->quiet)
                fprintf(stderr, "note: this kernel has no KVM PMU event filter (KVM_CAP_PMU_EVENT_FILTER): no profile can be applied on this host\n");
        *ret = k;
}

static const char *const diag_levels[] = {
        [DIAG_ERROR] = "error",
        [DIAG_WARNING] = "warning",
        [DIAG_NOTE] = "note",
};

/* Profiles sharing a parent report the parent's problems once per child:
 * true for the second and later copies. */
static bool diag_is_repeat(const struct diags *d, size_t i) {
        const struct diag *e = &d->v[i];

        for (size_t j = 0; j < i; j++)
                if (d->v[j].level == e->level && streq_ptr(d->v[j].file, e->file) &&
                    d->v[j].line == e->line && d->v[j].column == e->column &&
                    streq(d->v[j].message, e->message))
                        return true;
        return false;
}

/* Print diagnostics once each (notes not with -q; notes on optional events
 * skipped only with -v); count what was printed. */
static void diags_print_unique(const struct diags *d, const struct ctl_options *o,
                               size_t *ret_errors, size_t *ret_warnings) {
        size_t n_errors = 0, n_warnings = 0;

        for (size_t i = 0; i < d->n; i++) {
                const struct diag *e = &d->v[i];

                if (e->verbose && !o->verbose)
                        continue;
                if (diag_is_repeat(d, i))
                        continue;
                n_errors += e->level == DIAG_ERROR;
                n_warnings += e->level == DIAG_WARNING;
                if (e->level == DIAG_NOTE && o->quiet)
                        continue;
                diags_print(&(const struct diags) { .v = (struct diag *) e, .n = 1 }, stderr);
        }
        if (ret_errors)
                *ret_errors = n_errors;
        if (ret_warnings)
                *ret_warnings = n_warnings;
}

/* The diagnostics as a JSON array, once each. */
static void diags_json(const struct diags *d, const struct ctl_options *o, struct json_writer *w,
                       size_t *ret_errors, size_t *ret_warnings) {
        *ret_errors = *ret_warnings = 0;
        json_array_begin(w);
        for (size_t i = 0; i < d->n; i++) {
                const struct diag *e = &d->v[i];

                if ((e->verbose && !o->verbose) || diag_is_repeat(d, i))
                        continue;
                *ret_errors += e->level == DIAG_ERROR;
                *ret_warnings += e->level == DIAG_WARNING;
                json_object_begin(w);
                json_kv_string(w, "level", e->level < ELEMENTSOF(diag_levels) ? diag_levels[e->level] : "note");
                json_kv_string(w, "file", e->file);
                if (e->line > 0) {
                        json_kv_number(w, "line", e->line);
                        json_kv_number(w, "column", e->column);
                } else {
                        json_kv_null(w, "line");
                        json_kv_null(w, "column");
                }
                json_kv_string(w, "message", e->message);
                json_object_end(w);
        }
        json_array_end(w);
}

/* files: explicit FILEs (main file first), or NULL for the daemon's own
 * lookup (--config, or the default file and conf.d).  partial: on errors
 * *ret is still what loaded (check), never a policy to use. */
static int policy_get(const struct ctl_options *o, char **files, bool partial, struct policy **ret,
                      struct diags *d) {
        const char *what = files ? files[0] : o->config ? o->config : POLICY_DEFAULT_CONFIG;
        int r;

        if (partial)
                r = files ? policy_check_paths(files, ret, d) : policy_check_files(o->config, ret, d);
        else
                r = files ? policy_load_paths(files, ret, d) : policy_load_files(o->config, ret, d);
        if (r < 0 && d->n_errors == 0)
                return log_error_errno(r, "Failed to load %s: %m", what);
        return r;
}

static const char *plural(char *buf, size_t size, size_t n, const char *word) {
        snprintf(buf, size, "%zu %s%s", n, word, n == 1 ? "" : "s");
        return buf;
}

/* check --json: the summary and every diagnostic in one document. */
static int check_print_json(const char *what, const struct policy *p, const struct diags *d,
                            const struct ctl_options *o, size_t *ret_errors) {
        size_t n_errors, n_warnings;
        struct json_writer w;
        int r;

        json_init(&w, stdout, o->json);
        json_object_begin(&w);
        json_kv_string(&w, "config", what);
        json_key(&w, "files");
        json_strv(&w, p ? p->files : NULL);
        if (p) {
                json_kv_number(&w, "n_profiles", p->n_profiles);
                json_kv_number(&w, "n_rules", p->n_rules);
        } else {
                json_kv_null(&w, "n_profiles");
                json_kv_null(&w, "n_rules");
        }
        json_key(&w, "diagnostics");
        diags_json(d, o, &w, &n_errors, &n_warnings);
        json_kv_number(&w, "n_errors", n_errors);
        json_kv_number(&w, "n_warnings", n_warnings);
        json_kv_bool(&w, "ok", p && n_errors == 0);
        json_object_end(&w);
        r = json_done(&w);
        if (r < 0)
                return log_error_errno(r, "Failed to write to stdout: %m");
        *ret_errors = n_errors;
        return 0;
}

int verb_check(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(diags_clear) struct diags d = {};
        _cleanup_(policy_freep) struct policy *p = NULL;
        const char *what = argc > 1 ? argv[1] : o->config ? o->config : POLICY_DEFAULT_CONFIG;
        char b1[32], b2[32], b3[32];
        size_t n_errors = 0, n_warnings = 0;
        struct host_pmu pmu;
        struct kvm_support k;
        bool loaded;
        int r;

        if (argc > 1 && o->config) {
                log_error("check takes either --config or FILEs, not both. See --help.");
                return EXIT_USAGE;
        }

        r = host_pmu_get(o, &pmu);
        if (r < 0)
                return r;

        /* Even after errors, what loaded is compiled: every mistake is
         * reported in one run.  But only the sound profiles, since what the
         * compiler would say of the others follows from an error already
         * reported (a broken profile, a missing parent, no tier). */
        r = policy_get(o, argc > 1 ? argv + 1 : NULL, true, &p, &d);
        loaded = r >= 0;
        if (p) {
                /* Loading knows names only; compiling for the PMU finds the
                 * unknown ones, with their file:line:column. */
                kvm_support_get(o, &k);
                for (size_t i = 0; i < p->n_profiles; i++) {
                        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
                        const char *name = p->profiles[i].name;
                        size_t n_before = d.n_errors;

                        if (!profile_is_sound(p, &p->profiles[i]))
                                continue;

                        r = filter_compile(p, name, &pmu, &k, &f, &d);
                        if (r < 0 && d.n_errors == n_before)
                                /* Not a policy problem reported in place: say
                                 * what failed, so it cannot pass as OK. */
                                (void) diags_error(&d, &p->profiles[i].loc,
                                                   "Failed to compile profile '%s' for PMU %s: %s",
                                                   name, pmu.name, strerror(-r));
                }
        }

        /* A policy that failed to load is not counted in the summary. */
        if (!loaded) {
                policy_free(p);
                p = NULL;
        }

        if (o->json != JSON_OFF) {
                r = check_print_json(what, p, &d, o, &n_errors);
                if (r < 0)
                        return r;
                return n_errors > 0 || !p ? -EINVAL : 0;
        }

        diags_print_unique(&d, o, &n_errors, &n_warnings);

        /* One summary line on stdout, also on failure (not with -q: the
         * exit status says it); the reasons are above, on stderr. */
        if (o->quiet)
                return n_errors > 0 || !p ? -EINVAL : 0;
        if (p)
                printf("%s: %s, %s", what, plural(b1, sizeof b1, p->n_profiles, "profile"),
                       plural(b2, sizeof b2, p->n_rules, "rule"));
        else
                printf("%s", what);
        if (p && strv_length(p->files) > 1)
                printf(" (%zu files)", strv_length(p->files));
        if (n_errors > 0)
                printf(": %s, %s: FAILED\n", plural(b1, sizeof b1, n_errors, "error"),
                       plural(b3, sizeof b3, n_warnings, "warning"));
        else if (!p)
                printf(": FAILED\n");
        else if (n_warnings > 0)
                printf(": OK, %s\n", plural(b3, sizeof b3, n_warnings, "warning"));
        else
                printf(": OK\n");

        return n_errors > 0 || !p ? -EINVAL : 0;
}

static void unknown_profile(const struct policy *p, const char *name) {
        _cleanup_free_ char *known = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&known, &size);
        if (!f) {
                log_error("Unknown profile '%s'.", name);
                return;
        }
        for (size_t i = 0; i < p->n_profiles; i++)
                fprintf(f, "%s%s", i > 0 ? ", " : "", p->profiles[i].name);
        fclose(f);
        log_error("Unknown profile '%s'; known: %s", name, p->n_profiles > 0 ? known : "(none)");
}

/* The filter by the names `profile show --json` and `show --json` give the
 * same things: see pmufilterctl(1), "JSON OUTPUT". */
static int compile_print_json(const struct policy *p, const struct compiled_filter *f,
                              const struct ctl_options *o) {
        const struct profile *prof = policy_find_profile(p, f->profile);
        enum tier tier = prof ? profile_effective_tier(p, prof) : TIER_UNSET;
        struct json_writer w;
        int r;

        json_init(&w, stdout, o->json);
        json_object_begin(&w);
        json_kv_string(&w, "profile", f->profile);
        json_kv_string(&w, "tier", tier == TIER_UNSET ? NULL : tier_to_string(tier));
        json_kv_string(&w, "pmu", f->pmu_off ? "off" : "on");
        json_kv_string(&w, "action", f->action == KVM_PMU_EVENT_DENY ? "deny" : "allow");
        json_kv_number(&w, "flags", f->flags);
        json_kv_number(&w, "fixed_counter_bitmap", f->fixed_counter_bitmap);
        json_key(&w, "events");
        json_array_begin(&w);
        for (uint32_t i = 0; i < f->nevents; i++) {
                char word[24];

                snprintf(word, sizeof word, "0x%" PRIx64, f->events[i]);
                json_string(&w, word);
        }
        json_array_end(&w);
        json_kv_number(&w, "n_events", f->nevents);
        json_key(&w, "event_names");
        json_strv(&w, f->entry_names);
        json_object_end(&w);
        r = json_done(&w);
        if (r < 0)
                return log_error_errno(r, "Failed to write to stdout: %m");
        return 0;
}

void fixed_counters_print(const struct host_pmu *pmu, uint32_t bitmap) {
        assert(pmu);

        printf("Fixed counters: 0x%" PRIx32, bitmap);
        for (unsigned i = 0, n = 0; i < 32; i++) {
                const char *name = NULL;
                uint64_t code;

                if (!(bitmap & (UINT32_C(1) << i)))
                        continue;
                if (fixed_counter_event(pmu, i, &code) >= 0)
                        name = event_name_for_code(pmu, code);
                printf("%s%u: %s", n++ == 0 ? " (" : ", ", i, strna(name));
        }
        printf("%s\n", bitmap ? ")" : " (none)");
}

static void compile_print_header(const struct policy *p, const struct compiled_filter *f,
                                 const struct host_pmu *pmu) {
        const struct profile *prof = policy_find_profile(p, f->profile);
        enum tier tier = prof ? profile_effective_tier(p, prof) : TIER_UNSET;
        bool masked = f->flags & KVM_PMU_EVENT_FLAG_MASKED_EVENTS;

        printf("Profile:        %s (tier %s)\n", f->profile, tier_to_string(tier));
        printf("PMU:            %s (%s)\n", pmu->name, pmu->description);
        printf("vPMU:           %s\n", f->pmu_off ?
               "off (the VMM disables it; where refused, the filter below applies)" : "on");
        printf("Action:         %s\n", f->action == KVM_PMU_EVENT_DENY ?
               "deny (KVM_PMU_EVENT_DENY: every event but these counts)" :
               "allow (KVM_PMU_EVENT_ALLOW: only these events count)");
        printf("Flags:          %" PRIu32 " (%s)\n", f->flags,
               masked ? "KVM_PMU_EVENT_FLAG_MASKED_EVENTS" : "plain events");

        fixed_counters_print(pmu, f->fixed_counter_bitmap);
        printf("Entries:        %" PRIu32 "\n\n", f->nevents);
}

/* The catalogue's name for what an entry matches, so that a raw number in
 * the policy shows what it means on this PMU: for a plain word the word
 * itself, for a masked entry that pins every unit-mask bit (mask 0xff) the
 * one unit mask it matches; a wider masked entry matches a family, shown by
 * its columns alone. */
static const char *entry_event_name(const struct filter_entry *e, const struct host_pmu *pmu,
                                    uint64_t w) {
        if (!e->masked)
                return event_name_for_code(pmu, w);
        if (e->mask != 0xff)
                return NULL;
        return event_name_for_code(pmu, event_code(e->select, e->match));
}

int compile_print_table(const struct compiled_filter *f, const struct host_pmu *pmu,
                        const struct ctl_options *o) {
        static const struct column plain[] = {
                { "IDX", COLUMN_NUMBER },
                { "WORD" },
                { "SELECT" },
                { "UMASK" },
                { "NAME" },
                { "EVENT" },
        }, masked[] = {
                { "IDX", COLUMN_NUMBER },
                { "WORD" },
                { "SELECT" },
                { "MASK" },
                { "MATCH" },
                { "EXCLUDE", COLUMN_BOOLEAN },
                { "NAME" },
                { "EVENT" },
        };
        _cleanup_table_ struct libscols_table *t = NULL;
        size_t n_names;
        int r;

        assert(f);
        assert(pmu);
        assert(o);

        n_names = strv_length(f->entry_names);
        if (f->flags & KVM_PMU_EVENT_FLAG_MASKED_EVENTS)
                r = table_new("entries", masked, ELEMENTSOF(masked), &t);
        else
                r = table_new("entries", plain, ELEMENTSOF(plain), &t);
        if (r < 0)
                return log_error_errno(r, "Failed to create the table: %m");

        for (uint32_t i = 0; i < f->nevents && r >= 0; i++) {
                uint64_t w = f->events[i];
                const char *name = i < n_names ? f->entry_names[i] : NULL;
                const char *event;
                char idx[16], word[24], select[8], b1[8], b2[8];
                struct filter_entry e;

                filter_entry_decode(f, w, &e);
                event = entry_event_name(&e, pmu, w);
                if (event && streq_ptr(event, name))
                        event = NULL;   /* spelt that way already */
                snprintf(idx, sizeof idx, "%" PRIu32, i);
                snprintf(word, sizeof word, "0x%" PRIx64, w);
                snprintf(select, sizeof select, "0x%02x", (unsigned) e.select);
                if (!e.masked) {
                        snprintf(b1, sizeof b1, "0x%02x", (unsigned) e.umask);
                        r = table_add_row(t, idx, word, select, b1, name, event);
                        continue;
                }
                snprintf(b1, sizeof b1, "0x%02x", (unsigned) e.mask);
                snprintf(b2, sizeof b2, "0x%02x", (unsigned) e.match);
                r = table_add_row(t, idx, word, select, b1, b2, yes_no(e.exclude), name, event);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to fill the table: %m");
        return table_print(t, o);
}

int verb_compile(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(diags_clear) struct diags d = {};
        _cleanup_(policy_freep) struct policy *p = NULL;
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        const char *name = argv[1];
        struct host_pmu pmu;
        struct kvm_support k;
        int r;

        r = host_pmu_get(o, &pmu);
        if (r < 0)
                return r;

        r = policy_get(o, NULL, false, &p, &d);
        if (r >= 0 && !policy_find_profile(p, name)) {
                diags_print_unique(&d, o, NULL, NULL);
                unknown_profile(p, name);
                return -ENOENT;
        }
        if (r >= 0) {
                kvm_support_get(o, &k);
                r = filter_compile(p, name, &pmu, &k, &f, &d);
                if (r < 0 && d.n_errors == 0)
                        log_error_errno(r, "Failed to compile profile '%s' for PMU %s: %m",
                                        name, pmu.name);
        }
        diags_print_unique(&d, o, NULL, NULL);
        if (r < 0)
                return r;

        if (o->json != JSON_OFF)
                return compile_print_json(p, f, o);
        if (o->legend)
                compile_print_header(p, f, &pmu);
        if (f->nevents == 0) {
                if (o->legend)
                        printf("No entries.\n");
                return 0;
        }
        return compile_print_table(f, &pmu, o);
}

struct events_ctx {
        struct libscols_table *table;
        size_t n;
};

static int events_add(const struct event_info *e, void *userdata) {
        struct events_ctx *c = userdata;
        char code[24], select[8], umask[8];

        snprintf(code, sizeof code, "0x%" PRIx64, e->code);
        snprintf(select, sizeof select, "0x%02x", event_code_select(e->code));
        snprintf(umask, sizeof umask, "0x%02x", event_code_umask(e->code));
        c->n++;
        return table_add_row(c->table, e->name, select, umask, code, yes_no(e->generic),
                             e->description);
}

int verb_events(int argc, char *argv[], const struct ctl_options *o) {
        static const struct column columns[] = {
                { "NAME" },
                { "SELECT" },
                { "UMASK" },
                { "CODE" },
                { "GENERIC", COLUMN_BOOLEAN },
                { "DESCRIPTION", COLUMN_STRING, 0, SCOLS_FL_TRUNC },
        };
        _cleanup_table_ struct libscols_table *t = NULL;
        const char *glob = argc > 1 ? argv[1] : NULL;
        struct host_pmu pmu;
        struct events_ctx c;
        int r;

        r = host_pmu_get(o, &pmu);
        if (r < 0)
                return r;

        r = table_new("events", columns, ELEMENTSOF(columns), &t);
        if (r < 0)
                return log_error_errno(r, "Failed to create the table: %m");

        c = (struct events_ctx) { .table = t };
        r = event_foreach(&pmu, glob, events_add, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to list the events of PMU %s: %m", pmu.name);
        if (c.n == 0) {
                if (glob)
                        log_error("No event of PMU %s matches '%s'.", pmu.name, glob);
                else
                        log_error("PMU %s has no known events.", pmu.name);
                return -ENOENT;
        }
        return table_print(t, o);
}
