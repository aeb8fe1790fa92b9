/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * verbs-explain.c — the questions an operator asks before changing
 * anything: why a VM got its profile (explain), and what a reload of the
 * edited policy would do to the running VMs (reload --dry-run).
 */
#include <assert.h>

#include "bus-util.h"
#include "output.h"
#include "verbs.h"

int verb_explain(int argc, char *argv[], const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(props_clear) struct props facts = {}, vm = {};
        _cleanup_free_ char *config_dir = NULL, *from = NULL;
        const char *path, *override, *scope, *bound, *def, *profile, *source;
        struct json_writer w;
        bool decided = false;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE, "GetVM",
                               &e, &reply, "s", argv[1]);
        if (r >= 0)
                r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to look up VM %s", argv[1]);
        path = strdupa(path);
        reply = sd_bus_message_unref(reply);
        for (const char *const *n = (const char *const[]) { "VerifiedFacts", "ClaimedFacts", NULL }; *n; n++) {
                r = bus_get_one(bus, path, PMUFILTERD_VM_IFACE, *n, &e, &facts);
                if (r < 0)
                        return bus_log_error(r, &e, "Failed to read the facts of VM %s", argv[1]);
        }
        /* Whether the result is in force, and where its rule is. */
        r = bus_get_all(bus, path, PMUFILTERD_VM_IFACE, &e, &vm);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to read VM %s", argv[1]);
        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, path, PMUFILTERD_VM_IFACE, "Explain", &e, &reply, NULL);
        if (r < 0)
                return bus_log_error(r, &e, "Failed to explain VM %s", argv[1]);
        if (o->json == JSON_OFF)
                config_dir = bus_config_dir(bus);

        if (o->json != JSON_OFF) {
                json_init(&w, stdout, o->json);
                json_object_begin(&w);
                props_json_members(&facts, &w);
                json_key(&w, "rules");
                json_array_begin(&w);
        } else {
                printf("Facts the daemon read from the kernel and systemd (verified):\n  ");
                props_print_line("", &facts, "VerifiedFacts");
                printf("Facts the VMM claimed in ATTACH:\n  ");
                props_print_line("", &facts, "ClaimedFacts");
                printf("\nRules, in order (the first that matches decides):\n");
        }
        r = sd_bus_message_enter_container(reply, 'a', "(usbs)");
        if (r < 0)
                return log_error_errno(r, "Failed to read the explanation: %m");
        for (;;) {
                const char *loc, *reason;
                uint32_t n;
                int matched;

                r = sd_bus_message_read(reply, "(usbs)", &n, &loc, &matched, &reason);
                if (r < 0)
                        return log_error_errno(r, "Failed to read the explanation: %m");
                if (r == 0)
                        break;
                if (o->json != JSON_OFF) {
                        json_object_begin(&w);
                        json_kv_number(&w, "rule", n);
                        json_kv_string(&w, "location", loc);
                        json_kv_bool(&w, "matched", matched);
                        json_kv_string_or_null(&w, "reason", reason);
                        json_object_end(&w);
                } else {
                        printf("  %2" PRIu32 ". %-32s %s%s\n", n, policy_path_shorten(loc, config_dir),
                               matched ? "matched" : "no: ",
                               matched ? (decided ? " (an earlier rule decides)" : "") : reason);
                }
                decided = decided || matched;
        }
        r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_read(reply, "ssssss", &override, &scope, &bound, &def, &profile, &source);
        if (r < 0)
                return log_error_errno(r, "Failed to read the explanation: %m");
        if (o->json != JSON_OFF) {
                json_array_end(&w);
                json_kv_string_or_null(&w, "override", override);
                json_kv_string_or_null(&w, "override_scope", scope);
                json_kv_string_or_null(&w, "bound_to", bound);
                json_kv_string_or_null(&w, "default_profile", def);
                json_kv_string_or_null(&w, "profile", profile);
                json_kv_string_or_null(&w, "profile_source", source);
                /* The VM's, of the same decision: as list and show name them. */
                json_kv_string_or_null(&w, "profile_source_location", props_string(&vm, "ProfileSourceLocation"));
                json_rule_members(&w, source, props_string(&vm, "ProfileSourceLocation"));
                json_kv_bool(&w, "in_force", vm_in_force(&vm));
                json_object_end(&w);
                return json_done(&w);
        }
        printf("\n" LABEL "%s\n", "Override:", isempty(override) ? "none" : override);
        if (!isempty(override))
                printf(LABEL "%s, bound to %s\n", "", scope, isempty(bound) ? "nothing verified" : bound);
        printf(LABEL "%s\n", "Default:", strna(empty_to_null(def)));
        from = profile_source_describe(source, props_string(&vm, "ProfileSourceLocation"), config_dir);
        printf(LABEL "%s (from %s)", "Result:", strna(empty_to_null(profile)), strna(from));
        if (!isempty(profile) && !vm_in_force(&vm)) {
                char buf[64];

                printf(", not applied: %s", vm_not_in_force_why(props_string(&vm, "State"), buf, sizeof buf));
        }
        printf("\n");
        return 0;
}

/* A VM's profile now, as list shows it: in parentheses when it is only
 * decided, its filter not in the kernel (an unmanaged VM after a reload);
 * "-" before any decision.  *ret owns what is returned, if anything. */
static const char *now_in_words(sd_bus *bus, const char *id, const char *now, char **ret) {
        _cleanup_free_ char *path = NULL;
        int in_force = true;
        char *s;

        if (isempty(now))
                return "-";
        /* A daemon without InForce, or a VM gone since: as it was shown before. */
        if (sd_bus_path_encode(PMUFILTERD_VM_PREFIX, id, &path) < 0 ||
            sd_bus_get_property_trivial(bus, PMUFILTERD_BUS_NAME, path, PMUFILTERD_VM_IFACE, "InForce", NULL, 'b',
                                        &in_force) < 0 ||
            in_force || asprintf(&s, "(%s)", now) < 0)
                return now;
        return *ret = s;
}

/* reload --dry-run: each VM's profile now and under the policy on disk.
 * Exit status 0: nothing would change; 3: something would. */
int verb_reload_dry_run(const struct ctl_options *o) {
        static const struct column columns[] = {
                { "ID" }, { "NAME" }, { "NOW" }, { "AFTER RELOAD" }, { "FILTER" },
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_table_ struct libscols_table *t = NULL;
        size_t n = 0, changing = 0;
        int r;

        r = bus_connect_or_log(o, &bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                               "PreviewReload", &e, &reply, NULL);
        if (r < 0)
                return bus_log_error(r, &e, "The edited policy would not load");
        r = table_new("reload", columns, ELEMENTSOF(columns), &t);
        if (r < 0)
                return log_error_errno(r, "Failed to create the table: %m");
        r = sd_bus_message_enter_container(reply, 'a', "(ssssb)");
        if (r < 0)
                return log_error_errno(r, "Failed to read the preview: %m");
        for (;;) {
                _cleanup_free_ char *now_words = NULL;
                const char *id, *name, *now, *after;
                int changes;

                r = sd_bus_message_read(reply, "(ssssb)", &id, &name, &now, &after, &changes);
                if (r < 0)
                        return log_error_errno(r, "Failed to read the preview: %m");
                if (r == 0)
                        break;
                /* A VM without a decision yet (detected, unmanaged) gets
                 * none from a reload either. */
                if (changes || (!isempty(now) && !streq(now, after)))
                        changing++;
                r = table_add_row(t, id, name, now_in_words(bus, id, now, &now_words), after,
                                  changes ? "changes" : isempty(now) ? "-" : "same");
                if (r < 0)
                        return log_error_errno(r, "Failed to fill the table: %m");
                n++;
        }
        r = table_print(t, o);
        if (r < 0)
                return r;
        if (o->legend && o->json == JSON_OFF)
                printf("\n%zu VM%s, %zu would change.\n", n, n == 1 ? "" : "s", changing);
        return changing > 0 ? EXIT_WOULD_CHANGE : 0;
}
