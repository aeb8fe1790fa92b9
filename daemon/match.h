/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * match.h — which rule of the policy a VM falls under (DESIGN §4 "rules":
 * first match wins, every key of one match must hold, values are shell
 * globs).  Pure: the caller gathers the facts.
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
        /* read by the daemon from the kernel and systemd (NULL: unknown);
         * groups a rule asks about are read on first use (proc_facts_load) */
        struct proc_facts *facts;
};

/* Index of the first rule whose every key holds, or -ENOENT. */
int match_rules(const struct policy *p, const struct match_input *in);

/* The value a match key has for this VM, into buf; NULL if unknown. */
const char *match_key_value(const char *key, const struct match_input *in, char *buf, size_t size);
