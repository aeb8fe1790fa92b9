/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * match.c — rule matching.  A key whose value is unknown for this VM (no
 * unit because systemd does not manage the VMM, no label of that name) never
 * matches, not even "*": a rule about units says nothing about VMs outside
 * any unit.  Facts are read (through match_input.load_facts) when a rule
 * first asks about them, after the rule's other keys held: a policy that
 * never names a unit never makes the daemon look one up.
 */
#include <assert.h>
#include <fnmatch.h>
#include <inttypes.h>

#include "match.h"
#include "procfacts.h"

static const char *label_value(char *const *labels, const char *key) {
        size_t l = strlen(key);

        if (labels)
                for (char *const *i = labels; *i; i++)
                        if (strncmp(*i, key, l) == 0 && (*i)[l] == '=')
                                return *i + l + 1;
        return NULL;
}

const char *match_key_value(const char *key, const struct match_input *in, char *buf, size_t size) {
        struct proc_facts *f = in->facts;
        unsigned group;
        const char *k;

        assert(key);
        assert(in);
        assert(buf);
        if (streq(key, "name"))
                return in->name;
        if (streq(key, "uuid"))
                return in->uuid;
        if (streq(key, "client"))
                return in->client;
        if ((k = startswith(key, "label.")))
                return label_value(in->labels, k);
        if (!f)
                return NULL;
        group = proc_fact_of_key(key);
        if (group != 0 && (f->loaded & group) != group &&
            (!in->load_facts || in->load_facts(f, group) < 0))
                return NULL;
        if (streq(key, "exe"))
                return f->exe;
        if (streq(key, "comm"))
                return f->comm;
        if (streq(key, "uid")) {
                snprintf(buf, size, "%u", (unsigned) f->uid);
                return buf;
        }
        if (streq(key, "gid")) {
                snprintf(buf, size, "%u", (unsigned) f->gid);
                return buf;
        }
        if (streq(key, "user"))
                return f->user;
        if (streq(key, "group"))
                return f->group;
        if (streq(key, "cgroup"))
                return f->cgroup;
        if (streq(key, "unit"))
                return f->unit;
        if (streq(key, "slice"))
                return f->slice;
        if (streq(key, "machine"))
                return f->machine;
        return NULL;
}

/* Does rule r hold for in?  If not, *ret_failed is the first key that
 * failed, and *ret_value what the VM has for it (NULL: unknown). */
static bool rule_holds_why(const struct rule *r, const struct match_input *in, char *buf, size_t size,
                           const struct rule_match **ret_failed, const char **ret_value) {
        /* Every key must hold, so the order is free: what costs nothing to
         * know first, the facts that cost reads last. */
        for (int facts = 0; facts <= 1; facts++)
                for (size_t i = 0; i < r->n_matches; i++) {
                        const char *v;

                        if ((proc_fact_of_key(r->matches[i].key) != 0) != facts)
                                continue;
                        v = match_key_value(r->matches[i].key, in, buf, size);
                        /* UUIDs are one value in either case (kept in lower case). */
                        if (!v || fnmatch(r->matches[i].value, v,
                                          streq(r->matches[i].key, "uuid") ? FNM_CASEFOLD : 0) != 0) {
                                *ret_failed = &r->matches[i];
                                *ret_value = v;
                                return false;
                        }
                }
        return true;
}

static bool rule_holds(const struct rule *r, const struct match_input *in) {
        const struct rule_match *failed;
        const char *value;
        char buf[32];

        return rule_holds_why(r, in, buf, sizeof(buf), &failed, &value);
}

bool match_explain(const struct rule *r, const struct match_input *in, char *reason, size_t size) {
        const struct rule_match *failed = NULL;
        const char *value = NULL;
        char buf[32];

        assert(r);
        assert(in);
        assert(reason);
        if (rule_holds_why(r, in, buf, sizeof(buf), &failed, &value)) {
                snprintf(reason, size, "matched");
                return true;
        }
        if (!value)
                snprintf(reason, size, "%s is unknown for this VM (a rule on it matches only VMs that have one)",
                         failed->key);
        else
                snprintf(reason, size, "%s '%s' does not match '%s'", failed->key, value, failed->value);
        return false;
}

int match_rules(const struct policy *p, const struct match_input *in) {
        assert(p);
        assert(in);
        for (size_t i = 0; i < p->n_rules; i++)
                if (rule_holds(&p->rules[i], in))
                        return (int) i;
        return -ENOENT;
}
