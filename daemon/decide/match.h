/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * match.h — which rule of the policy a VM falls under (pmufilterd.yaml(5),
 * RULES: first match wins, every key of one match must hold, values are
 * shell globs).  Pure: the caller gives the facts, or a way to read more.
 */
#pragma once

#include "policy.h"

struct proc_facts;

struct match_input {
        /* claimed by the VMM in ATTACH (NULL when unknown) */
        const char *name;
        const char *uuid;
        const char *client;
        char *const *labels;            /* "key=value" strv */
        /* read by the daemon from the kernel and systemd (NULL: unknown) */
        struct proc_facts *facts;
        /* Reads the groups of facts (PROC_FACT_*) of mask not read yet, when
         * a rule first asks about them: detect/'s proc_facts_load().  NULL:
         * what is not in facts yet is unknown.  Matching itself reads
         * nothing: the unit tests give facts as they like. */
        int (*load_facts)(struct proc_facts *f, unsigned mask);
};

/* Index of the first rule whose every key holds, or -ENOENT. */
int match_rules(const struct policy *p, const struct match_input *in);

/* Whether rule r holds for in, and why, in words ("matched", or the first
 * key that failed: "unit 'x.service' does not match 'machine-*.scope'",
 * "unit is unknown for this VM ..."), into reason. */
bool match_explain(const struct rule *r, const struct match_input *in, char *reason, size_t size);

/* The value a match key has for this VM, into buf; NULL if unknown. */
const char *match_key_value(const char *key, const struct match_input *in, char *buf, size_t size);
