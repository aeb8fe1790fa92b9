/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-util.h — pmufilterctl's side of the daemon's D-Bus API (pmufilterd(8)):
 * connecting where -H / --bus-address / the system bus say, calling the
 * Manager, reading an object's properties with one GetAll, printing D-Bus
 * values for people or as JSON, and one-line error messages that say what
 * failed and what the daemon answered.
 */
#pragma once

#include <systemd/sd-bus.h>

#include "json-out.h"
#include "util.h"

struct ctl_options;

static inline const char *empty_to_null(const char *s) {
        return isempty(s) ? NULL : s;
}

#define PMUFILTERD_BUS_NAME "org.pmufilterd1"
#define PMUFILTERD_BUS_PATH "/org/pmufilterd1"
#define PMUFILTERD_VM_PREFIX "/org/pmufilterd1/vm"
#define PMUFILTERD_MANAGER_IFACE "org.pmufilterd1.Manager"
#define PMUFILTERD_VM_IFACE "org.pmufilterd1.VM"
#define PMUFILTERD_PROFILE_IFACE "org.pmufilterd1.Profile"

/* The "Label:" column of the human views, as wide as compile's. */
#define LABEL "%-16s"

/* Changes reply only when every VMM concerned has applied the filter
 * (or its attach timeout has passed): wait longer than sd-bus's 25 s. */
#define BUS_CHANGE_TIMEOUT_USEC (60ULL * 1000000ULL)

/* "the system bus", "bus ADDRESS" or "host HOST", for messages. */
const char *bus_where(const struct ctl_options *o, char *buf, size_t size);

/* Connect as the options say.  Logs nothing: status reports a daemon that
 * cannot be reached differently from the other verbs. */
int bus_connect(const struct ctl_options *o, sd_bus **ret);

/* Connect, or log why not (one line) and return -errno. */
int bus_connect_or_log(const struct ctl_options *o, sd_bus **ret);

/* True when the call failed because nobody owns org.pmufilterd1. */
bool bus_error_daemon_absent(const sd_bus_error *e);

/* A message of the daemon or of a VM's LastError in words a person can act
 * on: the D-Bus API's names become pmufilterctl's commands ("see ListVMs"
 * -> "see pmufilterctl list"), the VMM protocol's words what they mean ("no
 * APPLIED for SERIAL=7 in time" -> "the VMM of VM x did not answer in
 * time").  vm_id: the VM a LastError belongs to, or NULL.  Never NULL;
 * free() it. */
char *bus_humanize(const char *message, const char *vm_id);

/* Why the call failed, in those words: for AccessDenied "Permission denied:
 * <change> needs root" (change: "changing profiles", ...; NULL for a
 * read).  free() it. */
char *bus_error_why(int r, const sd_bus_error *e, const char *change);

/* "pmufilterctl: <what>: <why>" on stderr, why as bus_error_why() says;
 * with --verbose a second line with the D-Bus error's name and raw message.
 * Returns a negative errno. */
int bus_log_error(int r, const sd_bus_error *e, const char *fmt, ...) _printf_(3, 4);
/* The same for a call that changes something (it needs root). */
int bus_log_change_error(int r, const sd_bus_error *e, const char *change, const char *fmt, ...) _printf_(4, 5);

/* Call a Manager method that changes something, with the long timeout. */
int bus_manager_change(sd_bus *bus, sd_bus_error *e, const char *member, const char *types, ...);

enum prop_kind {
        PROP_STRING,            /* s, o, g */
        PROP_BOOLEAN,           /* b */
        PROP_NUMBER,            /* y, q, u, t */
        PROP_STRV,              /* as */
        PROP_PATHS,             /* ao: in JSON, VM paths as VM ids */
        PROP_WORDS,             /* at: kernel filter words */
        PROP_MAP,               /* a{ss}: strv of key, value, key, value ... */
};

struct prop {
        char *name;
        enum prop_kind kind;
        char *str;
        uint64_t num;
        char **strv;
        uint64_t *words;
        size_t n_words;
};

/* Properties in the order the daemon sent them.  Types pmufilterctl does
 * not know are skipped, so a newer daemon's additions do no harm. */
struct props {
        struct prop *v;
        size_t n;
};

void props_clear(struct props *p);
/* Read an a{sv} (GetAll's reply, PropertiesChanged's second argument). */
int props_read(sd_bus_message *m, struct props *p);
/* The properties of every object of the daemon with interface, from one
 * GetManagedObjects: a listing of many VMs in one call, not one per VM. */
struct object_props {
        char *path;
        struct props props;
};
int bus_get_managed(sd_bus *bus, const char *interface, sd_bus_error *e, struct object_props **ret,
                    size_t *ret_n);
/* Those of path, or NULL. */
struct props *object_props_find(struct object_props *v, size_t n, const char *path);
void object_props_free(struct object_props *v, size_t n);
/* GetAll of interface on path of the daemon. */
int bus_get_all(sd_bus *bus, const char *path, const char *interface, sd_bus_error *e,
                struct props *ret);

/* Properties.Get of one property (those GetAll leaves out), added to p. */
int bus_get_one(sd_bus *bus, const char *path, const char *interface, const char *name, sd_bus_error *e,
                struct props *p);

const struct prop *props_get(const struct props *p, const char *name);
/* The value, or "" / 0 / false / NULL when the daemon did not send it. */
const char *props_string(const struct props *p, const char *name);
uint64_t props_number(const struct props *p, const char *name);
bool props_bool(const struct props *p, const char *name);
char **props_strv(const struct props *p, const char *name);

/* A value for people ("a, b", "yes", "0xc0, 0x76", "k=v, ..."). */
void prop_print_value(const struct prop *p, FILE *f);
/* label, then the map or list property name of p as prop_print_value()
 * gives it ("k=v, k=v"), or "-" when absent or empty; a line on stdout. */
void props_print_line(const char *label, const struct props *p, const char *name);

/* The JSON key of a property: its name in snake_case (ProfileSource ->
 * profile_source, AppliedUSec -> applied_usec), but NVMs -> n_vms (a count)
 * and a filter's words, the Profile's Entries as the VM's Events, -> events
 * (EntryNames -> event_names). */
void prop_json_key(const char *name, char *buf, size_t size);
/* One JSON member for the property, by the convention of pmufilterctl(1),
 * "JSON OUTPUT": "" and a *USec of 0 are null; words are hex strings, and
 * n_<key> follows with their count; a VM's object path is its id. */
void prop_json_member(const struct prop *p, struct json_writer *w);
/* prop_json_member() of every property. */
void props_json_members(const struct props *p, struct json_writer *w);

/* One row of ListVMs. */
struct vm_row {
        char *id, *name, *profile, *state, *path;
        uint32_t pid;
};

/* ListVMs, sorted by id (the daemon's order is its hash table's). */
int bus_list_vms(sd_bus *bus, sd_bus_error *e, struct vm_row **ret, size_t *ret_n);
void vm_rows_free(struct vm_row *v, size_t n);

/* The VM id in a VM object path, or NULL. */
char *bus_vm_id_of_path(const char *path);

/* The directory of the daemon's main policy file (the first of the
 * Manager's ConfigFiles), or NULL.  free() it. */
char *bus_config_dir(sd_bus *bus);
/* path relative to dir when it is under dir, else path itself: how
 * pmufilterctl names policy files for people (pmufilterctl(1), list). */
const char *policy_path_shorten(const char *path, const char *dir);

/* A VM's ProfileSource for people: "rule FILE:LINE" for a rule (location:
 * its ProfileSourceLocation, shortened against config_dir), else the
 * source itself; NULL for none.  free() it. */
char *profile_source_describe(const char *source, const char *location, const char *config_dir);
/* rule_index, rule_file and rule_line of such a source, null unless a rule. */
void json_rule_members(struct json_writer *w, const char *source, const char *location);

/* Whether the kernel holds the VM's filter: its InForce, or from its State
 * for a daemon before that property. */
bool vm_in_force(const struct props *vm);
/* Why a VM's decided filter is not in force, from its State, in words:
 * "the VM is unmanaged", "its VMM has not answered yet", "it failed (see
 * Last error)". */
const char *vm_not_in_force_why(const char *state, char *buf, size_t size);
