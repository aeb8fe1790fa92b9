/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy.h — the policy model of pmufilterd.yaml(5), as written
 * by the operator and before any host knowledge is applied.  The loader
 * (policy-load.c) fills it from YAML buffers; policy-validate.c checks the
 * references (extends, rule profiles, default profile); compile.c turns one
 * profile into the kernel's bytes for a given host PMU.
 */
#pragma once

#include <stdint.h>

#include "diag.h"

enum tier {
        TIER_UNSET,
        TIER_TENANT,    /* allowlist: KVM_PMU_EVENT_ALLOW */
        TIER_TRUSTED,   /* denylist:  KVM_PMU_EVENT_DENY  */
};

enum event_kind {
        EVENT_NAME,             /* generic alias or libpfm4 name: resolved per PMU */
        EVENT_RAW,              /* raw number: (umask << 8) | select, AMD select bits 35:32;
                                 * also perf's rNNN */
        EVENT_SELECT_UMASK,     /* { select: S, umask: U }; also cpu/event=S,umask=U/ */
        EVENT_SELECT_ANY,       /* { select: S, umask: any }  -> masked entry, mask 0 */
        EVENT_MASKED,           /* { select: S, mask: M, match: V, exclude: B } */
};

struct event_spec {
        enum event_kind kind;
        char *name;             /* EVENT_NAME: as written; EVENT_RAW and
                                 * EVENT_SELECT_UMASK in perf's spellings (r412e,
                                 * cpu/event=0x2e,umask=0x41/): those words, for
                                 * messages; else NULL */
        uint64_t raw;           /* EVENT_RAW: as written */
        uint16_t select;        /* 12-bit event select (bits 11:8 are AMD's 35:32) */
        uint8_t umask;          /* EVENT_SELECT_UMASK */
        uint8_t mask, match;    /* EVENT_MASKED */
        bool exclude;           /* EVENT_MASKED */
        bool optional;          /* from the profile's `optional:` list: skip if unknown */
        struct srcloc loc;
};

enum fixed_mode {
        FIXED_UNSET,            /* inherit; the root default is auto */
        FIXED_AUTO,             /* derived from the architectural events */
        FIXED_LIST,             /* explicit indices in fixed_bitmap */
};

enum pmu_mode {
        PMU_UNSET,              /* inherit; the root default is on */
        PMU_ON,
        PMU_OFF,                /* VMM disables the vPMU; fallback: empty allowlist */
};

struct profile {
        char *name;
        struct srcloc loc;              /* of the profile's key */
        char *description;              /* optional free text */
        enum tier tier;                 /* TIER_UNSET: inherited via extends */
        struct srcloc tier_loc;
        char *extends;                  /* parent name or NULL */
        struct srcloc extends_loc;
        struct event_spec *events;      /* own events (events: then optional:) */
        size_t n_events, allocated_events;
        /* acknowledge_shared: events of the shared-resource lint (lint-shared.c)
         * this profile allows on purpose, in the forms of events: */
        struct event_spec *acks;
        size_t n_acks, allocated_acks;
        struct srcloc acks_loc;         /* of the key */
        enum fixed_mode fixed_mode;
        uint32_t fixed_bitmap;          /* FIXED_LIST */
        struct srcloc fixed_loc;
        enum pmu_mode pmu;
        struct srcloc pmu_loc;
        const char *source_file;        /* file that defined it (owned by policy) */
        bool broken;                    /* its definition had an error: kept so that
                                         * references to it resolve, never compiled
                                         * (only in a policy that failed to load) */
};

/* One `key: glob` pair of a rule's match.  key is one of the match keys of
 * pmufilterd.yaml(5): name, uuid, label.<key>, exe, comm, uid, gid, user,
 * group, cgroup, unit, slice, machine, client. */
struct rule_match {
        char *key;
        char *value;            /* shell glob (fnmatch) */
        struct srcloc loc;
};

struct rule {
        struct rule_match *matches;
        size_t n_matches;
        char *profile;
        struct srcloc loc;              /* of the rule's list item */
        struct srcloc profile_loc;
        bool broken;                    /* an error in it: its match is not what was
                                         * meant, profile may be NULL (only in a
                                         * policy that failed to load) */
};

enum adopt_mode {
        ADOPT_NONE,
        ADOPT_PTRACE,
};

enum unmanaged_mode {
        UNMANAGED_WARN,
        UNMANAGED_KILL,
};

struct settings {
        char *socket;                   /* default /run/pmufilterd/vmm.sock */
        unsigned attach_timeout_ms;     /* default 2000 */
        enum adopt_mode adopt;          /* default none */
        enum unmanaged_mode unmanaged;  /* default warn */
        char *default_profile;          /* NULL: none set */
        struct srcloc default_profile_loc;
        unsigned unattached_sessions_per_uid;   /* VMM connections of one uid not attached yet; default 256 */
        char *socket_group;             /* group of the VMM socket; default kvm */
};

struct policy {
        struct settings settings;
        struct profile *profiles;       /* in order of first definition */
        size_t n_profiles, allocated_profiles;
        struct rule *rules;             /* in order: first match wins */
        size_t n_rules, allocated_rules;
        char **files;                   /* files loaded, in order (strv) */
        bool settings_only;             /* loading: the settings sections alone (policy_load_settings()) */
        bool incomplete;                /* a file or section failed to load, so a
                                         * profile definition may be missing: an
                                         * undefined profile is not reported */
};

#define POLICY_DEFAULT_SOCKET "/run/pmufilterd/vmm.sock"
#define POLICY_DEFAULT_ATTACH_TIMEOUT_MS 2000u
#define POLICY_DEFAULT_UNATTACHED_SESSIONS_PER_UID 256u
#define POLICY_DEFAULT_SOCKET_GROUP "kvm"
#define POLICY_DEFAULT_CONFIG "/etc/pmufilterd/pmufilterd.yaml"
#define POLICY_DEFAULT_CONFIG_DIR "/etc/pmufilterd/conf.d"

int policy_new(struct policy **ret);
void policy_free(struct policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct policy *, policy_free)

struct profile *policy_find_profile(const struct policy *p, const char *name);
/* Free what prof owns, not prof: for one that never joined a policy. */
void profile_done(struct profile *prof);
const char *tier_to_string(enum tier t);

/*
 * Merge one YAML document into p (pure: no I/O).  `filename` is used in
 * diagnostics and recorded in p->files.  Later documents override settings
 * keys; profiles and rules accumulate (a profile defined twice is an error
 * naming both places).  Unknown keys are errors.  Returns 0, or -EINVAL with
 * at least one error in d, or -ENOMEM.  After an error it goes on where the
 * rest of the document can still be checked, so that every mistake is
 * reported at once (the rules are in policy-load.c); p then holds what
 * loaded, broken definitions marked (profile.broken, rule.broken,
 * policy.incomplete).  Callers load into a fresh policy and discard it on
 * failure: a policy that had an error is never used.
 */
int policy_load_buffer(struct policy *p, const char *filename,
                       const char *buf, size_t len, struct diags *d);

/*
 * Load the configuration from disk: `config` if not NULL (a file; its
 * sibling conf.d/ is NOT read), else POLICY_DEFAULT_CONFIG then
 * POLICY_DEFAULT_CONFIG_DIR/<*.yaml> in lexical order.  Then validate.
 * On success *ret is a complete, validated policy.
 */
int policy_load_files(const char *config, struct policy **ret, struct diags *d);
/* The settings alone of the same files, where the rest does not load:
 * what lockdown can still know (the socket).  Profiles and rules are not
 * read; their errors do not count. */
int policy_load_settings(const char *config, struct policy **ret, struct diags *d);

/*
 * Load an explicit list of files (strv): the first is the main file, the
 * others are conf.d fragments merged in the order given (`pmufilterctl check
 * FILE...`).  Then validate.  Same contract as policy_load_files().
 */
int policy_load_paths(char **paths, struct policy **ret, struct diags *d);

/*
 * For `pmufilterctl check` only: as policy_load_files() and
 * policy_load_paths(), but on -EINVAL *ret is set too, to what loaded, so
 * that the profiles that are sound (profile_is_sound()) can still be
 * compiled and their mistakes reported in the same run.  Such a policy is
 * never to be applied.  -ENOMEM (and nothing loaded at all) leave *ret NULL.
 */
int policy_check_files(const char *config, struct policy **ret, struct diags *d);
int policy_check_paths(char **paths, struct policy **ret, struct diags *d);

/*
 * Check references: extends targets exist and have no cycle, every profile
 * resolves to a tier, rule profiles and settings.default_profile exist, match
 * keys are known.  Warnings for lint (a trusted-tier profile reachable by a
 * rule matching only VMM-claimed keys: name, uuid, label.*, client;
 * acknowledge_shared in a trusted profile, where it means nothing).  The
 * lint that needs the PMU, shared-resource events in a tenant allowlist,
 * runs in filter_compile().
 */
int policy_validate(const struct policy *p, struct diags *d);

/* Match keys (pmufilterd.yaml(5), "Match keys"): valid ones (label.<key>
 * with a non-empty key), and those the VMM claims itself (name, uuid,
 * label.*, client) rather than facts the daemon reads from the kernel and
 * systemd. */
bool match_key_is_valid(const char *key);
bool match_key_is_claimed(const char *key);

/* Does prof stand on its own merits: it loaded without error, every profile
 * it extends exists and loaded without error, the chain has no cycle, and it
 * resolves to a tier?  Every profile of a policy that loaded and validated
 * is.  Only a sound profile is compiled or linted after errors, since what
 * is said of any other would be caused by an error already reported. */
bool profile_is_sound(const struct policy *p, const struct profile *prof);

/* Resolve inheritance: the effective tier, fixed mode, pmu mode of a profile
 * (walking extends).  Assumes policy_validate() passed.  A profile with
 * effective `pmu: off` needs no tier: if none is set in its chain its
 * effective tier is TIER_TENANT, since its fallback is an empty allowlist. */
enum tier profile_effective_tier(const struct policy *p, const struct profile *prof);
enum fixed_mode profile_effective_fixed(const struct policy *p, const struct profile *prof,
                                        uint32_t *ret_bitmap);
enum pmu_mode profile_effective_pmu(const struct policy *p, const struct profile *prof);

/* The extends chain of prof, root first and prof last (for the compiler:
 * parent's events first, then the child's).  *ret is an array the caller
 * frees (not the profiles).  -ENOENT if a parent is missing, -ELOOP on a
 * cycle, -ENOMEM. */
int profile_chain(const struct policy *p, const struct profile *prof,
                  const struct profile ***ret, size_t *ret_n);
