/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * state.h — changes made over D-Bus that outlive a VM or the daemon
 * (pmufilterd(8), D-BUS API): the default profile and per-VM profiles keyed by the VM's
 * UUID or name.  Persistent ones live in /var/lib/pmufilterd/state.yaml,
 * runtime ones in /run/pmufilterd/state.yaml; both written atomically.
 */
#pragma once

#include "util.h"

struct state_entry {
        char *key;              /* "machine:<uuid>", "uid:<n>/uuid:<uuid>", "uid:<n>/name:<name>" */
        char *profile;
        uint64_t expires_usec;  /* a time-limited grant: CLOCK_REALTIME µs it ends at; 0: none */
};

/* The largest state file read, and written: some 300,000 changes. */
#define STATE_FILE_MAX (16 * 1024 * 1024)

/* The longest grant (SetVMProfileFor, `profile set --for`): 31 days. */
#define STATE_GRANT_MAX_USEC (UINT64_C(31) * 24 * 3600 * USEC_PER_SEC)

/* v is in the order of (claim, key), the claim being what a key binds
 * the change to beyond its uid ("uid:0/name:vm-7" → "name:vm-7"): a key is
 * found, and whether any key holds a claim told, by a binary search (a
 * host's state files may hold the changes of many thousand VMs), and the
 * file lists the changes bound to one name or UUID together. */
struct state {
        char *default_profile;
        struct state_entry *v;
        size_t n, allocated;
};

void state_done(struct state *s);

/* A key state.yaml may hold (version 1's "uuid:…" and "name:…" too). */
bool state_key_valid(const char *key);

/* Parse a state file's contents (pure).  -EINVAL with a reason in *ret_error;
 * -ELIBACC, the reason there too, if libyaml cannot be loaded (lib/yaml-dl.h). */
int state_parse(const char *buf, size_t len, struct state *ret, char **ret_error);
/* Read path; a missing file is an empty state.  A corrupt one is -EINVAL;
 * other errors (-ELIBACC as state_parse()) say nothing of the file. */
int state_load(const char *path, struct state *ret, char **ret_error);
/* Write atomically: temp file, fsync, rename, fsync of the directory.
 * -EFBIG, and nothing written, when the file would be over STATE_FILE_MAX. */
int state_save(const char *path, const struct state *s);
/* Whether s, as state_save() writes it, is within STATE_FILE_MAX: a file
 * edited by hand may read in and not write back (escapes, quotes). */
bool state_fits(const struct state *s);
/* The same without the fsyncs, for a store that does not outlive a reboot
 * (the runtime one, on the tmpfs of /run): the rename keeps it whole should
 * the daemon die. */
int state_save_volatile(const char *path, const struct state *s);

/* NULL profile removes the entry.  Setting a profile ends a grant: the
 * entry has no expiry after it. */
int state_set(struct state *s, const char *key, const char *profile);
const char *state_get(const struct state *s, const char *key);
/* The entry of key, or NULL. */
struct state_entry *state_entry_get(const struct state *s, const char *key);
/* Whether a key of s has the claim "<kind>:<value>" (kind "machine",
 * "uuid" or "name"); value NULL: any claim of that kind. */
bool state_has_claim(const struct state *s, const char *kind, const char *value);
/* Remove the i-th entry, keeping the order. */
void state_remove_at(struct state *s, size_t i);
/* Make key's entry a grant ending at usec (0: none).  -ENOENT: no entry. */
int state_set_expiry(struct state *s, const char *key, uint64_t usec);
/* The earliest expiry of a grant in s; 0: none. */
uint64_t state_next_expiry(const struct state *s);

/* s as a double-quoted YAML scalar that reads back as s, whatever its
 * bytes (controls, folded line breaks and bytes that are not UTF-8 as
 * escapes); for every file the daemon writes in YAML. */
void yaml_put_scalar(FILE *f, const char *s);
