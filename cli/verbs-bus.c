/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * verbs-bus.c — the verbs that read and change pmufilterd's state over
 * D-Bus (pmufilterd(8), "D-BUS API"): list, show, profile
 * list|show|set|reset, reload, reapply.  (status and monitor have files of
 * their own.)  Reading uses the Manager's methods and one GetAll per
 * object; changes use the Manager's methods with a long timeout, because
 * the daemon replies only once the VMMs have applied.
 */
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <time.h>

#include "bus-util.h"
#include "compile.h"
#include "kvm-compat.h"
#include "output.h"
#include "pmu.h"
#include "verbs.h"

/* ---- list ----------------------------------------------------------------- */

/* list's filters: --state, and PATTERNs (shell globs) on the id or name. */
static bool vm_row_wanted(const struct vm_row *v, char **patterns, const struct ctl_options *o) {
        bool match = !patterns || !*patterns;

        if (o->states && !strv_contains(o->states, v->state))
                return false;
        for (char **p = patterns; p && *p && !match; p++)
                match = fnmatch(*p, v->id, 0) == 0 || (!isempty(v->name) && fnmatch(*p, v->name, 0) == 0);
        return match;
}

static int print_json_done(struct json_writer *w) {
        int r = json_done(w);

        return r < 0 ? log_error_errno(r, "Failed to write to stdout: %m") : 0;
}

/* One VM of list: what ListVMs gives, and its properties, from all (one
 * GetManagedObjects) where it is there, else asked for (a VM that came
 * since).  *p is all's, or ret filled. */
static const struct props *list_vm_props(sd_bus *bus, const struct vm_row *v, struct object_props *all,
                                         size_t n_all, struct props *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        struct props *p = object_props_find(all, n_all, v->path);

        if (!p) {
                p = ret;
                if (bus_get_all(bus, v->path, PMUFILTERD_VM_IFACE, &e, p) < 0)
                        return p;       /* gone meanwhile: listed as ListVMs had it */
        }
        /* A VM without a claimed name is shown by its verified comm (read
         * from /proc when asked, so not in GetManagedObjects). */
        if (isempty(v->name) && !props_get(p, "VerifiedFacts"))
                (void) bus_get_one(bus, v->path, PMUFILTERD_VM_IFACE, "VerifiedFacts", &e, p);
        return p;
}

/* The value of key in a map property, or NULL. */
static const char *props_map_value(const struct props *p, const char *name, const char *key) {
        const struct prop *m = props_get(p, name);

        for (size_t i = 0; m && m->kind == PROP_MAP && m->strv && m->strv[i] && m->strv[i + 1]; i += 2)
                if (streq(m->strv[i], key))
                        return m->strv[i + 1];
        return NULL;
}

static void list_json_row(struct json_writer *w, const struct vm_row *v, const struct props *p) {
        const char *source = props_string(p, "ProfileSource"), *loc = props_string(p, "ProfileSourceLocation");

        json_object_begin(w);
        json_kv_string(w, "id", v->id);
        json_kv_string_or_null(w, "name", v->name);
        json_kv_string_or_null(w, "profile", v->profile);
        json_kv_string_or_null(w, "profile_source", source);
        json_kv_string_or_null(w, "profile_source_location", loc);
        json_rule_members(w, source, loc);
        json_kv_bool(w, "in_force", vm_in_force(p));
        json_kv_string(w, "state", v->state);
        json_kv_string_or_null(w, "last_error", props_string(p, "LastError"));
        json_kv_number(w, "pid", v->pid);
        json_object_end(w);
}

/* NAME: the claimed name, else "[comm]"; PROFILE: in parentheses while it
 * is only decided, not in force (pmufilterctl(1), list). */
int verb_list(int argc, char *argv[], const struct ctl_options *o) {
        static const struct column columns[] = {
                { "ID" },
                { "NAME", .flags = SCOLS_FL_TRUNC },
                { "PROFILE" },
                { "SOURCE" },
                { "STATE" },
                { "PID", COLUMN_NUMBER },
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_table_ struct libscols_table *t = NULL;
        _cleanup_free_ char *config_dir = NULL;
        struct json_writer w;
        struct vm_row *v = NULL;
        struct object_props *all = NULL;
        size_t n = 0, n_all = 0, listed = 0;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = bus_list_vms(bus, &e, &v, &n);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to list the VMs");
        /* Every VM's properties in one call: one call per VM is seconds
         * at 10,000 VMs.  Without it, each is asked for. */
        if (bus_get_managed(bus, PMUFILTERD_VM_IFACE, NULL, &all, &n_all) < 0)
                all = NULL, n_all = 0;

        if (o->json != JSON_OFF) {
                json_init(&w, stdout, o->json);
                json_object_begin(&w);
                json_key(&w, "vms");
                json_array_begin(&w);
        } else {
                config_dir = bus_config_dir(bus);
                r = table_new("vms", columns, ELEMENTSOF(columns), &t);
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_(props_clear) struct props asked = {};
                _cleanup_free_ char *source = NULL, *profile = NULL, *name = NULL;
                const struct props *pp;
                const char *comm;
                char pid[16];

                if (!vm_row_wanted(&v[i], argv + 1, o))
                        continue;
                pp = list_vm_props(bus, &v[i], all, n_all, &asked);
                listed++;
                if (o->json != JSON_OFF) {
                        list_json_row(&w, &v[i], pp);
                        continue;
                }
                source = profile_source_describe(props_string(pp, "ProfileSource"),
                                                 props_string(pp, "ProfileSourceLocation"), config_dir);
                if (!isempty(v[i].profile) && !vm_in_force(pp) && asprintf(&profile, "(%s)", v[i].profile) < 0)
                        r = -ENOMEM;
                comm = props_map_value(pp, "VerifiedFacts", "comm");
                if (isempty(v[i].name) && comm && asprintf(&name, "[%s]", comm) < 0)
                        r = -ENOMEM;
                snprintf(pid, sizeof pid, "%" PRIu32, v[i].pid);
                if (r >= 0)
                        r = table_add_row(t, v[i].id, name ?: v[i].name,
                                          profile ?: isempty(v[i].profile) ? "-" : v[i].profile,
                                          source, v[i].state, pid);
                if (r >= 0 && state_is_bad(props_string(pp, "ProfileSource")))
                        table_highlight_last(t, 3);
                if (r >= 0 && state_is_bad(v[i].state))
                        table_highlight_last(t, 4);
        }
        vm_rows_free(v, n);
        object_props_free(all, n_all);
        if (o->json != JSON_OFF) {
                json_array_end(&w);
                json_object_end(&w);
                return print_json_done(&w);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to fill the table: %m");
        r = table_print(t, o);
        if (r >= 0 && o->legend)
                printf("\n%zu VM%s listed.\n", listed, listed == 1 ? "" : "s");
        return r;
}

/* ---- show, profile show: the filter decoded -------------------------------- */

/* The PMU the daemon compiles for, to name events and fixed counters: by
 * the daemon's HostPMU, not this host's (-H). */
static void daemon_pmu(sd_bus *bus, struct host_pmu *ret) {
        _cleanup_free_ char *name = NULL;

        *ret = (struct host_pmu) {};
        if (sd_bus_get_property_string(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                                       "HostPMU", NULL, &name) >= 0 &&
            host_pmu_from_name(name, ret) < 0)
                snprintf(ret->name, sizeof ret->name, "%s", name);
}

/* The filter's flags: the daemon's Flags property of the VM or Profile
 * object; a daemon from before that property sent the words alone, so
 * without it tell from the words.  A masked word is one with bits a plain
 * event cannot have (mask, exclude); only a masked filter made of
 * `umask: any` entries alone looks plain, and decodes to the same selects. */
static uint32_t filter_flags(const struct props *p, const struct prop *words) {
        const uint64_t plain = 0xffffULL | 0xfULL << 32;

        if (props_get(p, "Flags"))
                return (uint32_t) props_number(p, "Flags");
        for (size_t i = 0; words && i < words->n_words; i++)
                if (words->words[i] & ~plain)
                        return KVM_PMU_EVENT_FLAG_MASKED_EVENTS;
        return 0;
}

static int filter_print(const struct props *p, const char *words_property, char **names,
                        const struct host_pmu *pmu, const struct ctl_options *o) {
        const struct prop *w = props_get(p, words_property);
        bool deny = streq(props_string(p, "Action"), "deny");
        struct compiled_filter f = {
                .profile = (char *) props_string(p, "Profile"),
                .action = deny ? KVM_PMU_EVENT_DENY : KVM_PMU_EVENT_ALLOW,
                .flags = filter_flags(p, w),
                .fixed_counter_bitmap = (uint32_t) props_number(p, "FixedCounterBitmap"),
                .nevents = w ? (uint32_t) w->n_words : 0,
                .events = w ? w->words : NULL,
                .entry_names = names,
        };

        if (isempty(props_string(p, "Action"))) {
                printf(LABEL "none yet\n", "Filter:");
                return 0;
        }
        printf(LABEL "%s\n", "Action:", deny ?
               "deny (KVM_PMU_EVENT_DENY: every event but these counts)" :
               "allow (KVM_PMU_EVENT_ALLOW: only these events count)");
        printf(LABEL "%" PRIu32 " (%s)\n", "Flags:", f.flags,
               f.flags & KVM_PMU_EVENT_FLAG_MASKED_EVENTS ? "KVM_PMU_EVENT_FLAG_MASKED_EVENTS" : "plain events");
        fixed_counters_print(pmu, f.fixed_counter_bitmap);
        printf(LABEL "%" PRIu32 "\n", "Entries:", f.nevents);
        if (f.nevents == 0)
                return 0;
        printf("\n");
        return compile_print_table(&f, pmu, o);
}

/* GetVM or GetProfile of name, then GetAll of the object it names, and of
 * a VM also the properties GetAll leaves out (its facts). */
static int get_object(sd_bus *bus, const char *method, const char *interface, const char *name,
                      sd_bus_error *e, struct props *ret) {
        static const char *const vm_explicit[] = { "VerifiedFacts", "ClaimedFacts", "BoundTo", NULL };
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(props_clear) struct props p = {};
        const char *path;
        int r;

        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                               method, e, &reply, "s", name);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        r = bus_get_all(bus, path, interface, e, &p);
        if (r < 0)
                return r;
        if (streq(interface, PMUFILTERD_VM_IFACE))
                for (const char *const *n = vm_explicit; *n; n++) {
                        r = bus_get_one(bus, path, interface, *n, e, &p);
                        /* A daemon from before these properties: shown without them. */
                        if (r < 0 && !sd_bus_error_has_name(e, SD_BUS_ERROR_UNKNOWN_PROPERTY))
                                return r;
                        sd_bus_error_free(e);
                }
        *ret = p;
        p = (struct props) {};
        return 0;
}

/* Connect and get_object(), or say in one line why not. */
static int get_object_or_log(const struct ctl_options *o, const char *method, const char *interface,
                             const char *what, const char *name, sd_bus **ret_bus, struct props *ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = get_object(bus, method, interface, name, &e, ret);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to look up %s %s", what, name);
        *ret_bus = TAKE_PTR(bus);
        return 0;
}

/* The policy's spellings of a VM's entries, from its profile when the VM
 * has that profile's filter (not so in lockdown, or after a reload that
 * has not reached the VM yet). */
static char **vm_entry_names(sd_bus *bus, const struct props *vm, struct props *profile) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const struct prop *a, *b;

        if (isempty(props_string(vm, "Profile")) ||
            get_object(bus, "GetProfile", PMUFILTERD_PROFILE_IFACE, props_string(vm, "Profile"), &e, profile) < 0)
                return NULL;
        a = props_get(vm, "Events");
        b = props_get(profile, "Entries");
        if (!a || !b || a->n_words != b->n_words ||
            (a->n_words > 0 && memcmp(a->words, b->words, a->n_words * sizeof(uint64_t)) != 0))
                return NULL;
        return props_strv(profile, "EntryNames");
}

/* "2026-12-06 08:12:00 CET (in 1h 59min)" for an expiry, into buf. */
static const char *expiry_words(uint64_t usec, char *buf, size_t size) {
        uint64_t now = now_usec(CLOCK_REALTIME);
        time_t t = (time_t) (usec / USEC_PER_SEC);
        char when[64], left[64];
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(when, sizeof when, "@%" PRIu64, usec / USEC_PER_SEC);
        if (usec > now)
                snprintf(buf, size, "%s (in %s)", when, format_timespan(left, sizeof left, usec - now));
        else
                snprintf(buf, size, "%s (due now)", when);
        return buf;
}

static void print_time(const char *label, uint64_t usec) {
        time_t t = (time_t) (usec / 1000000);
        char buf[64];
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                printf(LABEL "-\n", label);
        else
                printf(LABEL "%s\n", label, buf);
}

/* One verified fact of a VM, or "-". */
static void print_fact(const char *label, const struct props *p, const char *key) {
        printf(LABEL "%s\n", label, strna(empty_to_null(props_map_value(p, "VerifiedFacts", key))));
}

/* separator: print a blank line first (not the first VM shown).  A filter
 * that is only decided is shown as the one the VM would get, never as in
 * force (pmufilterctl(1), show). */
static int show_one_vm(sd_bus *bus, const char *name, bool separator, const char *config_dir,
                       const struct ctl_options *o) {
        static const char *const facts[] = { "VerifiedFacts", "ClaimedFacts", "BoundTo" };
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(props_clear) struct props p = {}, profile = {};
        _cleanup_free_ char *last_error = NULL;
        const struct prop *labels;
        struct host_pmu pmu;
        char **entry_names;
        const char *s, *state;
        bool in_force;
        int r;

        r = get_object(bus, "GetVM", PMUFILTERD_VM_IFACE, name, &e, &p);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to look up VM %s", name);
        entry_names = vm_entry_names(bus, &p, &profile);
        in_force = vm_in_force(&p);

        if (o->json != JSON_OFF) {
                struct json_writer w;

                /* One JSON document per VM: no separator but their newlines. */
                json_init(&w, stdout, o->json);
                json_object_begin(&w);
                props_json_members(&p, &w);
                /* A daemon from before these properties: not known. */
                for (size_t i = 0; i < ELEMENTSOF(facts); i++)
                        if (!props_get(&p, facts[i])) {
                                char key[64];

                                prop_json_key(facts[i], key, sizeof key);
                                json_kv_null(&w, key);
                        }
                if (!props_get(&p, "ProfileSourceLocation"))
                        json_kv_null(&w, "profile_source_location");
                if (!props_get(&p, "InForce"))
                        json_kv_bool(&w, "in_force", in_force);
                json_rule_members(&w, props_string(&p, "ProfileSource"), props_string(&p, "ProfileSourceLocation"));
                json_key(&w, "event_names");
                json_strv(&w, entry_names);
                json_object_end(&w);
                return print_json_done(&w);
        }

        state = props_string(&p, "State");
        if (separator)
                printf("\n");
        printf(LABEL "%s\n", "VM:", props_string(&p, "Id"));
        printf(LABEL "%s\n", "Name:", strna(empty_to_null(props_string(&p, "Name"))));
        printf(LABEL "%s\n", "UUID:", strna(empty_to_null(props_string(&p, "UUID"))));
        printf(LABEL "%" PRIu64 "\n", "PID:", props_number(&p, "PID"));
        /* Who made the VM, as the kernel and systemd say: what an operator
         * looks for first in a VM no VMM attached. */
        print_fact("Command:", &p, "comm");
        print_fact("Executable:", &p, "exe");
        print_fact("Unit:", &p, "unit");
        labels = props_get(&p, "Labels");
        printf(LABEL, "Labels:");
        if (labels && strv_length(labels->strv) > 0)
                prop_print_value(labels, stdout);
        else
                printf("-");
        printf("\n" LABEL "%s\n", "Client:", strna(empty_to_null(props_string(&p, "Client"))));
        printf(LABEL "%s%s%s\n", "State:", state_is_bad(state) ? ansi_red() : "", state,
               state_is_bad(state) ? ansi_normal() : "");
        s = props_string(&p, "Profile");
        if (isempty(s))
                printf(LABEL "- (not decided yet)\n", "Profile:");
        else {
                const char *source = props_string(&p, "ProfileSource");
                _cleanup_free_ char *from = profile_source_describe(source, props_string(&p, "ProfileSourceLocation"),
                                                                    config_dir);
                char buf[64];

                printf(LABEL "%s (from %s%s%s)", in_force ? "Profile:" : "Would get:", s,
                       state_is_bad(source) ? ansi_red() : "", strna(from), state_is_bad(source) ? ansi_normal() : "");
                if (!in_force)
                        printf(", %snot applied%s: %s", ansi_red(), ansi_normal(),
                               vm_not_in_force_why(state, buf, sizeof buf));
                printf("\n");
        }
        if (props_number(&p, "ProfileExpiresUSec") > 0) {
                char buf[160];

                printf(LABEL "%s\n", "Expires:", expiry_words(props_number(&p, "ProfileExpiresUSec"), buf, sizeof buf));
        }
        print_time("Applied:", props_number(&p, "AppliedUSec"));
        /* In words a person can act on; the daemon's own with -v. */
        last_error = bus_humanize(empty_to_null(props_string(&p, "LastError")), props_string(&p, "Id"));
        printf(LABEL "%s\n", "Last error:", strna(empty_to_null(last_error)));
        if (!isempty(props_string(&p, "LastError")) && log_is_verbose() && !streq_ptr(last_error, props_string(&p, "LastError")))
                printf(LABEL "%s\n", "", props_string(&p, "LastError"));
        /* Which facts a rule or a change can rest on, and which the VMM said. */
        props_print_line("Verified:", &p, "VerifiedFacts");
        props_print_line("Claimed:", &p, "ClaimedFacts");
        printf(LABEL "%s\n", "Bound to:",
               isempty(props_string(&p, "BoundTo")) ? "- (a runtime change lasts as long as this VM)"
                                                     : props_string(&p, "BoundTo"));

        daemon_pmu(bus, &pmu);
        if (!in_force && !isempty(props_string(&p, "Action")))
                printf("\nThe filter it would get, not in force:\n");
        return filter_print(&p, "Events", entry_names, &pmu, o);
}

/* Each VM on its own, as systemctl shows units: one that cannot be shown
 * is reported, the others still are.  The first failure is the result. */
int verb_show(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *config_dir = NULL;
        int r, ret = 0;
        bool shown = false;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        if (o->json == JSON_OFF)
                config_dir = bus_config_dir(bus);
        for (int i = 1; i < argc; i++) {
                r = show_one_vm(bus, argv[i], shown, config_dir, o);
                shown = shown || r >= 0;
                if (r < 0 && ret == 0)
                        ret = r;
                fflush(stdout);
        }
        return ret;
}

/* ---- profile list | show --------------------------------------------------- */

int verb_profile_list(int argc, char *argv[], const struct ctl_options *o) {
        static const struct column columns[] = {
                { "NAME" },
                { "TIER" },
                { "ACTION" },
                { "ENTRIES", COLUMN_NUMBER, .json = "n_events" },
                { "DEFAULT", COLUMN_BOOLEAN },
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_table_ struct libscols_table *t = NULL;
        _cleanup_free_ char *def = NULL;
        const char *name, *tier, *action, *path;
        uint32_t entries;
        size_t n = 0;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                               "ListProfiles", &e, &reply, NULL);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to list the profiles");
        r = sd_bus_get_property_string(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH,
                                       PMUFILTERD_MANAGER_IFACE, "DefaultProfile", &e, &def);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to read the default profile");

        r = table_new("profiles", columns, ELEMENTSOF(columns), &t);
        if (r < 0)
                return log_error_errno(r, "Failed to create the table: %m");
        r = sd_bus_message_enter_container(reply, 'a', "(sssuo)");
        if (r < 0)
                return log_error_errno(r, "Failed to read the profiles: %m");
        for (;;) {
                char b[16];

                r = sd_bus_message_read(reply, "(sssuo)", &name, &tier, &action, &entries, &path);
                if (r < 0)
                        return log_error_errno(r, "Failed to read the profiles: %m");
                if (r == 0)
                        break;

                snprintf(b, sizeof b, "%" PRIu32, entries);
                r = table_add_row(t, name, tier, action, b, yes_no(streq(name, def)));
                if (r < 0)
                        return log_error_errno(r, "Failed to fill the table: %m");
                n++;
        }
        r = table_print(t, o);
        if (r >= 0 && o->legend && o->json == JSON_OFF)
                printf("\n%zu profile%s listed.\n", n, n == 1 ? "" : "s");
        return r;
}

int verb_profile_show(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(props_clear) struct props p = {};
        struct object_props *all = NULL;
        struct host_pmu pmu;
        size_t n_all = 0;
        char **vms;
        int r;

        r = get_object_or_log(o, "GetProfile", PMUFILTERD_PROFILE_IFACE, "profile", argv[1], &bus, &p);
        if (r < 0)
                return r;
        if (o->json != JSON_OFF) {
                _cleanup_free_ char *def = NULL;
                struct json_writer w;

                (void) sd_bus_get_property_string(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH,
                                                  PMUFILTERD_MANAGER_IFACE, "DefaultProfile", NULL, &def);
                json_init(&w, stdout, o->json);
                json_object_begin(&w);
                props_json_members(&p, &w);
                json_kv_bool(&w, "default", streq_ptr(def, props_string(&p, "Name")));
                json_object_end(&w);
                return print_json_done(&w);
        }

        printf(LABEL "%s (tier %s)\n", "Profile:", props_string(&p, "Name"), props_string(&p, "Tier"));
        printf(LABEL "%s\n", "Source:", strna(empty_to_null(props_string(&p, "Source"))));
        printf(LABEL, "VMs:");
        vms = props_strv(&p, "VMs");
        /* The VMs' properties in one call, as list takes them. */
        if (strv_length(vms) > 0 && bus_get_managed(bus, PMUFILTERD_VM_IFACE, NULL, &all, &n_all) < 0)
                all = NULL, n_all = 0;
        for (size_t i = 0; vms && vms[i]; i++) {
                _cleanup_free_ char *id = bus_vm_id_of_path(vms[i]);
                const struct props *vm = object_props_find(all, n_all, vms[i]);

                printf("%s%s", i > 0 ? ", " : "", id ? id : vms[i]);
                /* A VM this profile is only decided for (unmanaged, failed,
                 * not answered yet) does not have it: say so.  One gone
                 * meanwhile, or of an older daemon: nothing said. */
                if (vm && props_get(vm, "InForce") && !props_bool(vm, "InForce"))
                        printf(" (not applied: %s)", props_string(vm, "State"));
        }
        object_props_free(all, n_all);
        printf("%s\n", strv_length(vms) == 0 ? "none" : "");

        daemon_pmu(bus, &pmu);
        return filter_print(&p, "Entries", props_strv(&p, "EntryNames"), &pmu, o);
}

/* ---- changes ---------------------------------------------------------------- */

/* A trusted tier given on the strength of what a VMM claims (not a
 * machined registration) reaches any VMM of that uid claiming the same:
 * say so, as the daemon's audit record does. */
static void warn_claimed_trusted(sd_bus *bus, const char *vm, const char *profile) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(props_clear) struct props p = {}, prof = {};
        const char *bound;

        if (get_object(bus, "GetProfile", PMUFILTERD_PROFILE_IFACE, profile, &e, &prof) < 0 ||
            !streq(props_string(&prof, "Tier"), "trusted") ||
            get_object(bus, "GetVM", PMUFILTERD_VM_IFACE, vm, &e, &p) < 0)
                return;
        bound = props_string(&p, "BoundTo");
        if (!startswith(bound, "machine "))
                fprintf(stderr, "pmufilterctl: warning: trusted-tier profile '%s' on VM %s is bound to %s: %s\n",
                        profile, vm, isempty(bound) ? "nothing verified" : bound,
                        isempty(bound) ? "it lasts as long as this VM" : "any VMM of that uid claiming it gets it too");
}

/* What the kernel answered for one VM a change reached, said in one line:
 * "VM x: profile p applied" on stdout (not with -q), or why not.  label:
 * the VM as the user named it; path: its object; applied_before: its
 * AppliedUSec before the change; reset: a return to the rules (the line
 * says which rule); e: the change's error, if it failed.  Returns < 0 if
 * the VM's filter is not in force. */
static int report_vm(sd_bus *bus, const char *label, const char *path, uint64_t applied_before, bool reset,
                     const sd_bus_error *e, const struct ctl_options *o) {
        _cleanup_(sd_bus_error_free) sd_bus_error e2 = SD_BUS_ERROR_NULL;
        _cleanup_(props_clear) struct props p = {};
        _cleanup_free_ char *why = NULL;
        const char *state, *profile, *source;
        char from[PATH_MAX + 32] = "";
        int r;

        r = bus_get_all(bus, path, PMUFILTERD_VM_IFACE, &e2, &p);
        if (r < 0)
                /* Gone since: the change's own answer is all there is. */
                return e && sd_bus_error_is_set(e) ? bus_log_change_error(-EIO, e, "changing profiles",
                                                                          "Failed to change VM %s", label) : 0;
        state = props_string(&p, "State");
        profile = props_string(&p, "Profile");
        source = props_string(&p, "ProfileSource");
        if (reset && !isempty(source)) {
                _cleanup_free_ char *dir = bus_config_dir(bus),
                        *s = profile_source_describe(source, props_string(&p, "ProfileSourceLocation"), dir);

                snprintf(from, sizeof from, " (from %s)", s ?: source);
        }

        if (streq(state, "failed")) {
                why = bus_humanize(empty_to_null(props_string(&p, "LastError")) ?:
                                   (e && e->message ? e->message : "filter not applied"),
                                   props_string(&p, "Id"));
                log_error("VM %s: profile %s%s failed: %s", label, profile, from, why ? why : "out of memory");
                log_detail("(LastError: %s)", strna(empty_to_null(props_string(&p, "LastError"))));
                if (e && sd_bus_error_is_set(e))
                        log_detail("(D-Bus error %s: %s)", e->name, strna(e->message));
                return -EIO;
        }
        if (e && sd_bus_error_is_set(e))
                return bus_log_change_error(-EIO, e, "changing profiles", "Failed to change VM %s", label);
        if ((streq(state, "filtered") || streq(state, "adopted")) && props_number(&p, "AppliedUSec") != applied_before)
                info(o, "VM %s: profile %s%s applied", label, profile, from);
        else if (streq(state, "filtered") || streq(state, "adopted"))
                info(o, "VM %s: profile %s%s in force, its filter unchanged", label, profile, from);
        else
                /* Decided, but nothing can apply it (no session): not this change's failure. */
                info(o, "VM %s: profile %s%s not applied: the VM is %s%s%s", label, profile, from,
                     state_is_bad(state) ? ansi_red() : "", state, state_is_bad(state) ? ansi_normal() : "");
        return 0;
}

/* After a grant: when it ends, as the daemon has it. */
static void report_expiry(sd_bus *bus, const char *label, const char *path, const struct ctl_options *o) {
        uint64_t usec = 0;
        char buf[160];

        if (sd_bus_get_property_trivial(bus, PMUFILTERD_BUS_NAME, path, PMUFILTERD_VM_IFACE, "ProfileExpiresUSec",
                                        NULL, 't', &usec) < 0 || usec == 0)
                return;
        info(o, "VM %s: the grant ends %s", label, expiry_words(usec, buf, sizeof buf));
}

/* The object path and AppliedUSec of a VM named as a user names it, or
 * NULL (it is not there: the change itself will say so). */
static char *vm_path_and_applied(sd_bus *bus, const char *name, uint64_t *ret_applied) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        char *copy;

        *ret_applied = 0;
        if (sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                               "GetVM", NULL, &reply, "s", name) < 0 ||
            sd_bus_message_read(reply, "o", &path) < 0)
                return NULL;
        copy = strdup(path);
        if (copy)
                (void) sd_bus_get_property_trivial(bus, PMUFILTERD_BUS_NAME, path, PMUFILTERD_VM_IFACE,
                                                   "AppliedUSec", NULL, 't', ret_applied);
        return copy;
}

/* Set (profile) or reset (NULL) each VM on its own, as systemctl does with
 * units: one that fails does not keep the others from their change.  The
 * first failure is the result. */
static int change_each_vm(sd_bus *bus, char **vms, int n, const char *profile, const struct ctl_options *o) {
        int r, ret = 0;

        for (int i = 0; i < n; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                _cleanup_free_ char *path = NULL;
                uint64_t before;

                path = vm_path_and_applied(bus, vms[i], &before);
                if (profile && o->for_usec > 0)
                        r = bus_manager_change(bus, &e, "SetVMProfileFor", "sst", vms[i], profile, o->for_usec);
                else if (profile)
                        r = bus_manager_change(bus, &e, "SetVMProfile", "ssb", vms[i], profile, o->runtime);
                else
                        r = bus_manager_change(bus, &e, "ResetVMProfile", "sb", vms[i], o->runtime);
                if (r < 0 && (!path || !sd_bus_error_has_name(&e, "org.pmufilterd1.ApplyFailed"))) {
                        if (profile)
                                r = bus_log_change_error(r, &e, "changing profiles", "Failed to set profile of VM %s",
                                                         vms[i]);
                        else
                                r = bus_log_change_error(r, &e, "changing profiles",
                                                         "Failed to reset the profile of VM %s", vms[i]);
                } else {
                        /* The change was made: say what the kernel answered. */
                        r = report_vm(bus, vms[i], path, before, !profile, r < 0 ? &e : NULL, o);
                        if (r >= 0 && profile && o->for_usec > 0)
                                report_expiry(bus, vms[i], path, o);
                        if (profile)
                                warn_claimed_trusted(bus, vms[i], profile);
                }
                if (r < 0 && ret == 0)
                        ret = r;
        }
        return ret;
}

/* The default profile reaches every VM that follows it: say, for each
 * one whose filter the change touched, what the kernel answered. */
static int set_default_profile(sd_bus *bus, const char *profile, const struct ctl_options *o) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ uint64_t *applied = NULL;
        struct vm_row *v = NULL;
        size_t n = 0;
        int r, ret = 0;
        bool reported_failure = false;

        /* Before: each VM's AppliedUSec and profile, to tell what changed. */
        r = bus_list_vms(bus, &e, &v, &n);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to list the VMs");
        applied = calloc(n ?: 1, sizeof(*applied));
        if (!applied) {
                vm_rows_free(v, n);
                return log_error_errno(-ENOMEM, "Failed to set the default profile: %m");
        }
        for (size_t i = 0; i < n; i++)
                (void) sd_bus_get_property_trivial(bus, PMUFILTERD_BUS_NAME, v[i].path, PMUFILTERD_VM_IFACE,
                                                   "AppliedUSec", NULL, 't', &applied[i]);

        r = bus_manager_change(bus, &e, "SetDefaultProfile", "sb", profile, o->runtime);
        if (r < 0 && !sd_bus_error_has_name(&e, "org.pmufilterd1.ApplyFailed")) {
                vm_rows_free(v, n);
                return bus_log_change_error(r, &e, "changing profiles", "Failed to set the default profile to '%s'",
                                            profile);
        }

        for (size_t i = 0; i < n; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e2 = SD_BUS_ERROR_NULL;
                _cleanup_(props_clear) struct props p = {};
                char label[256];
                uint64_t now;
                int k;

                if (bus_get_all(bus, v[i].path, PMUFILTERD_VM_IFACE, &e2, &p) < 0 ||
                    !streq(props_string(&p, "ProfileSource"), "default"))
                        continue;
                now = props_number(&p, "AppliedUSec");
                /* Untouched: it had this profile, and nothing was pushed. */
                if (now == applied[i] && streq(v[i].profile, props_string(&p, "Profile")) &&
                    !streq(props_string(&p, "State"), "failed"))
                        continue;
                snprintf(label, sizeof label, "%s%s%s%s", v[i].id, isempty(v[i].name) ? "" : " (",
                         strempty(v[i].name), isempty(v[i].name) ? "" : ")");
                k = report_vm(bus, label, v[i].path, applied[i], false, NULL, o);
                if (k < 0) {
                        reported_failure = true;
                        if (ret == 0)
                                ret = k;
                }
        }
        vm_rows_free(v, n);
        /* Failed, but not on a VM listed before the change: say so as the daemon did. */
        if (r < 0 && !reported_failure)
                return bus_log_change_error(r, &e, "changing profiles", "Failed to set the default profile to '%s'",
                                            profile);
        return r < 0 && ret == 0 ? -EIO : ret;
}

int verb_profile_set(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *profile = argv[1];
        int r;

        if (argc == 2 && o->for_usec > 0) {
                log_error("--for needs a VM: the default profile is not granted for a time. See --help.");
                return EXIT_USAGE;
        }
        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        if (argc == 2)
                return set_default_profile(bus, profile, o);
        return change_each_vm(bus, argv + 2, argc - 2, profile, o);
}

int verb_profile_reset(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        return change_each_vm(bus, argv + 1, argc - 1, NULL, o);
}

int verb_reload(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        int r;

        if (o->dry_run)
                return verb_reload_dry_run(o);
        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = bus_manager_change(bus, &e, "Reload", "");
        if (r < 0)
                return bus_log_change_error(r, &e, "reloading the policy", "Failed to reload the policy");
        /* Applied, but it loosened the policy: say how, as the journal does. */
        r = sd_bus_get_property_strv(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                                     "ReloadWarnings", &e, &warnings);
        for (char **w = r >= 0 ? warnings : NULL; w && *w; w++)
                fprintf(stderr, "pmufilterctl: warning: the reloaded policy loosens the one before: %s\n", *w);
        return 0;
}

int verb_reapply(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(bus, &m, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH,
                                           PMUFILTERD_MANAGER_IFACE, "Reapply");
        if (r < 0)
                return log_error_errno(r, "Failed to create the Reapply call: %m");
        r = sd_bus_message_append_strv(m, argv + 1);
        if (r < 0)
                return log_error_errno(r, "Failed to add the VMs to the Reapply call: %m");
        r = sd_bus_call(bus, m, BUS_CHANGE_TIMEOUT_USEC, &e, NULL);
        if (r < 0 && argc == 1)
                return bus_log_change_error(r, &e, "reapplying filters", "Failed to reapply the filters of every VM");
        if (r < 0)
                return bus_log_change_error(r, &e, "reapplying filters", "Failed to reapply the filter of VM%s %s%s",
                                            argc > 2 ? "s" : "", argv[1], argc > 2 ? " ..." : "");
        return 0;
}
