/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-explain.c — why a VM has its profile (VM.Explain, Manager.Rules) and
 * what a reload would do (Manager.PreviewReload): read-only questions an
 * operator asks before changing anything (pmufilterctl explain, reload
 * --dry-run).
 */
#include <assert.h>
#include <limits.h>

#include "bus-errors.h"
#include "bus.h"

int bus_prop_rules(sd_bus *bus, const char *path, const char *interface, const char *property,
                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        const struct policy_set *set = b->deliver->decider->set;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(uss)");
        for (size_t i = 0; r >= 0 && set && i < set->policy->n_rules; i++) {
                const struct rule *rule = &set->policy->rules[i];
                char loc[PATH_MAX + 16];
                _cleanup_free_ char *loc_buf = NULL;
                const char *loc_text;

                srcloc_format(&rule->loc, loc, sizeof(loc));
                loc_text = bus_utf8(loc, &loc_buf);     /* a conf.d file's name: any bytes */
                r = loc_text ? sd_bus_message_append(reply, "(uss)", (uint32_t) (i + 1), loc_text, rule->profile)
                             : -ENOMEM;
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* Every rule in order, whether it holds for vm and if not why; then the
 * override and what it is bound to, the default, and the result. */
int bus_method_explain(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;
        struct bus *b = bus_current(msg);
        const struct decider *d = b->deliver->decider;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *key = NULL;
        struct decide_input din;
        struct vm_identity id;
        char bound[512] = "";
        _cleanup_free_ char *bound_buf = NULL, *override_buf = NULL, *default_buf = NULL;
        const char *bound_text, *override_text, *default_text;
        int r;

        deliver_decide_input(vm, &din);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(usbs)");
        for (size_t i = 0; r >= 0 && d->set && i < d->set->policy->n_rules; i++) {
                const struct rule *rule = &d->set->policy->rules[i];
                char loc[PATH_MAX + 16], reason[512];
                _cleanup_free_ char *buf = NULL, *loc_buf = NULL;
                const char *text, *loc_text;
                int matched;

                srcloc_format(&rule->loc, loc, sizeof(loc));
                loc_text = bus_utf8(loc, &loc_buf);     /* a conf.d file's name: any bytes */
                /* The reason quotes facts (an exe's path, a comm) and is
                 * cut at 512 bytes: not always UTF-8. */
                matched = match_explain(rule, &din.match, reason, sizeof(reason));
                text = bus_utf8(reason, &buf);
                r = text && loc_text ? sd_bus_message_append(reply, "(usbs)", (uint32_t) (i + 1), loc_text, matched, text)
                                     : -ENOMEM;
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        deliver_vm_identity(vm, &id);
        if (overrides_key(&id, &key) >= 0)
                (void) overrides_describe(key, bound, sizeof(bound));
        bound_text = bus_utf8(bound, &bound_buf);       /* cut at 512 bytes, maybe mid-character */
        /* The override and the default are a state file's, which may be
         * edited by hand: libyaml takes a non-character ("\uFFFE"), sd-bus
         * does not. */
        override_text = bus_utf8(strempty(vm->override), &override_buf);
        default_text = bus_utf8(strempty(decider_default_profile(d, NULL)), &default_buf);
        if (!bound_text || !override_text || !default_text)
                return -ENOMEM;
        r = sd_bus_message_append(reply, "ssssss", override_text,
                                  vm->override ? (vm->override_runtime ? "runtime" : "persistent") : "", bound_text,
                                  default_text, strempty(vm->profile), vm->profile_source);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int bus_method_preview_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct bus *b = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *why = NULL;
        struct reload_preview *p = NULL;
        size_t n = 0;
        int r;

        r = deliver_preview_reload(b->deliver, &p, &n, &why);
        if (r == -EINVAL)
                return bus_error_reload_failed(error, why);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssssb)");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *buf = NULL;
                const char *name = bus_utf8(strempty(p[i].vm->name), &buf);    /* a claim: C1 controls */

                r = name ? sd_bus_message_append(reply, "(ssssb)", p[i].vm->id, name, strempty(p[i].old_profile),
                                                 p[i].new_profile, p[i].filter_changes)
                         : -ENOMEM;
        }
        reload_preview_free(p, n);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}
