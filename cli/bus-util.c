/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-util.c — connecting to the daemon, calling it, reading and printing
 * its properties, and saying in one line what failed (bus-util.h).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>

#include "bus-util.h"
#include "output.h"
#include "verbs.h"

const char *bus_where(const struct ctl_options *o, char *buf, size_t size) {
        assert(o);
        assert(buf);

        if (o->host)
                snprintf(buf, size, "host %s", o->host);
        else if (o->bus_address)
                snprintf(buf, size, "bus %s", o->bus_address);
        else
                snprintf(buf, size, "the system bus");
        return buf;
}

int bus_connect(const struct ctl_options *o, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        assert(o);
        assert(ret);

        if (o->host)
                r = sd_bus_open_system_remote(&bus, o->host);
        else if (o->bus_address) {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, o->bus_address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_start(bus);
        } else
                /* Honours DBUS_SYSTEM_BUS_ADDRESS. */
                r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

int bus_connect_or_log(const struct ctl_options *o, sd_bus **ret) {
        char where[256];
        int r;

        assert(o);
        assert(ret);

        r = bus_connect(o, ret);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to %s: %m", bus_where(o, where, sizeof where));
        return 0;
}

bool bus_error_daemon_absent(const sd_bus_error *e) {
        return sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER);
}

int bus_log_error(int r, const sd_bus_error *e, const char *fmt, ...) {
        const char *why;
        va_list ap;

        assert(fmt);

        if (r >= 0)
                r = -EIO;
        /* The bus's own wording for an absent name talks about .service
         * files; say what it means here. */
        if (bus_error_daemon_absent(e))
                why = "pmufilterd is not running (nobody owns " PMUFILTERD_BUS_NAME " on the bus)";
        else if (sd_bus_error_is_set(e) && !isempty(e->message))
                why = e->message;
        else
                why = strerror(-r);

        fprintf(stderr, "%s: ", program_invocation_short_name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, ": %s\n", why);
        return r;
}

int bus_manager_change(sd_bus *bus, sd_bus_error *e, const char *member, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        assert(bus);
        assert(member);
        assert(types);

        r = sd_bus_message_new_method_call(bus, &m, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH,
                                           PMUFILTERD_MANAGER_IFACE, member);
        if (r < 0)
                return r;
        va_start(ap, types);
        r = sd_bus_message_appendv(m, types, ap);
        va_end(ap);
        if (r < 0)
                return r;
        return sd_bus_call(bus, m, BUS_CHANGE_TIMEOUT_USEC, e, NULL);
}

static void prop_done(struct prop *p) {
        free(p->name);
        free(p->str);
        strv_free(p->strv);
        free(p->words);
}

void props_clear(struct props *p) {
        assert(p);

        for (size_t i = 0; i < p->n; i++)
                prop_done(&p->v[i]);
        free(p->v);
        *p = (struct props) {};
}

static int read_map(sd_bus_message *m, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        const char *k, *v;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "{ss}", &k, &v)) > 0)
                if (strv_extend(&l, k) < 0 || strv_extend(&l, v) < 0)
                        return -ENOMEM;
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

/* Read one value of signature sig into p.  Returns 1 if read, 0 if the
 * type is not one pmufilterctl shows (skipped), or -errno. */
static int prop_read_value(sd_bus_message *m, const char *sig, struct prop *p) {
        union {
                const char *s;
                int b;
                uint8_t y;
                uint16_t q;
                uint32_t u;
                uint64_t t;
        } v;
        const void *words;
        size_t size;
        int r;

        if (strlen(sig) == 1 && strchr("sog", sig[0])) {
                r = sd_bus_message_read_basic(m, sig[0], &v.s);
                if (r < 0)
                        return r;
                p->kind = PROP_STRING;
                p->str = strdup(v.s);
                return p->str ? 1 : -ENOMEM;
        }
        if (strlen(sig) == 1 && strchr("byqut", sig[0])) {
                r = sd_bus_message_read_basic(m, sig[0], &v);
                if (r < 0)
                        return r;
                p->kind = sig[0] == 'b' ? PROP_BOOLEAN : PROP_NUMBER;
                p->num = sig[0] == 'b' ? (uint64_t) !!v.b : sig[0] == 'y' ? v.y : sig[0] == 'q' ? v.q :
                         sig[0] == 'u' ? v.u : v.t;
                return 1;
        }
        if (streq(sig, "as") || streq(sig, "ao")) {
                p->kind = PROP_STRV;
                r = sd_bus_message_read_strv(m, &p->strv);
                return r < 0 ? r : 1;
        }
        if (streq(sig, "at")) {
                r = sd_bus_message_read_array(m, 't', &words, &size);
                if (r < 0)
                        return r;
                p->kind = PROP_WORDS;
                if (size == 0)
                        return 1;
                p->words = malloc(size);
                if (!p->words)
                        return -ENOMEM;
                memcpy(p->words, words, size);
                p->n_words = size / sizeof(uint64_t);
                return 1;
        }
        if (streq(sig, "a{ss}")) {
                p->kind = PROP_MAP;
                r = read_map(m, &p->strv);
                return r < 0 ? r : 1;
        }
        r = sd_bus_message_skip(m, sig);
        return r < 0 ? r : 0;
}

int props_read(sd_bus_message *m, struct props *p) {
        int r;

        assert(m);
        assert(p);

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                struct prop n = {}, *v;
                const char *name, *sig;
                char type;

                r = sd_bus_message_read(m, "s", &name);
                if (r >= 0)
                        r = sd_bus_message_peek_type(m, &type, &sig);
                if (r >= 0)
                        r = sd_bus_message_enter_container(m, 'v', sig);
                if (r >= 0)
                        r = prop_read_value(m, sig, &n);
                if (r > 0) {
                        n.name = strdup(name);
                        v = reallocarray(p->v, p->n + 1, sizeof(*v));
                        if (!n.name || !v) {
                                prop_done(&n);
                                if (v)
                                        p->v = v;
                                return -ENOMEM;
                        }
                        p->v = v;
                        p->v[p->n++] = n;
                } else
                        prop_done(&n);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int bus_get_all(sd_bus *bus, const char *path, const char *interface, sd_bus_error *e,
                struct props *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct props p = {};
        int r;

        assert(bus);
        assert(path);
        assert(interface);
        assert(ret);

        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, path, "org.freedesktop.DBus.Properties",
                               "GetAll", e, &reply, "s", interface);
        if (r < 0)
                return r;
        r = props_read(reply, &p);
        if (r < 0) {
                props_clear(&p);
                return r;
        }
        *ret = p;
        return 0;
}

int bus_get_one(sd_bus *bus, const char *path, const char *interface, const char *name, sd_bus_error *e,
                struct props *p) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct prop n = {};
        struct prop *v;
        const char *sig;
        char type;
        int r;

        assert(bus);
        assert(path);
        assert(interface);
        assert(name);
        assert(p);

        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, path, "org.freedesktop.DBus.Properties", "Get", e, &reply,
                               "ss", interface, name);
        if (r < 0)
                return r;
        r = sd_bus_message_peek_type(reply, &type, &sig);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'v', sig);
        if (r < 0)
                return r;
        r = prop_read_value(reply, sig, &n);
        if (r <= 0) {
                prop_done(&n);
                return r < 0 ? r : -EBADMSG;
        }
        n.name = strdup(name);
        v = reallocarray(p->v, p->n + 1, sizeof(*v));
        if (!n.name || !v) {
                prop_done(&n);
                if (v)
                        p->v = v;
                return -ENOMEM;
        }
        p->v = v;
        p->v[p->n++] = n;
        return 0;
}

const struct prop *props_get(const struct props *p, const char *name) {
        assert(p);
        assert(name);

        for (size_t i = 0; i < p->n; i++)
                if (streq(p->v[i].name, name))
                        return &p->v[i];
        return NULL;
}

const char *props_string(const struct props *p, const char *name) {
        const struct prop *v = props_get(p, name);

        return v && v->kind == PROP_STRING ? v->str : "";
}

uint64_t props_number(const struct props *p, const char *name) {
        const struct prop *v = props_get(p, name);

        return v && (v->kind == PROP_NUMBER || v->kind == PROP_BOOLEAN) ? v->num : 0;
}

bool props_bool(const struct props *p, const char *name) {
        return props_number(p, name) != 0;
}

char **props_strv(const struct props *p, const char *name) {
        const struct prop *v = props_get(p, name);

        return v && v->kind == PROP_STRV ? v->strv : NULL;
}

void prop_print_value(const struct prop *p, FILE *f, bool json) {
        assert(p);
        assert(f);

        switch (p->kind) {
        case PROP_STRING:
                if (json)
                        json_print_string(f, p->str);
                else
                        fputs(p->str, f);
                break;
        case PROP_BOOLEAN:
                fputs(json ? (p->num ? "true" : "false") : yes_no(p->num), f);
                break;
        case PROP_NUMBER:
                fprintf(f, "%" PRIu64, p->num);
                break;
        case PROP_WORDS:
                /* Kernel words as hex strings, as `compile --json` has them. */
                fputs(json ? "[" : "", f);
                for (size_t i = 0; i < p->n_words; i++)
                        fprintf(f, json ? "%s\"0x%" PRIx64 "\"" : "%s0x%" PRIx64, i > 0 ? "," : "", p->words[i]);
                fputs(json ? "]" : "", f);
                break;
        case PROP_STRV:
                fputs(json ? "[" : "", f);
                for (size_t i = 0; p->strv && p->strv[i]; i++) {
                        fputs(i > 0 ? (json ? "," : ", ") : "", f);
                        if (json)
                                json_print_string(f, p->strv[i]);
                        else
                                fputs(p->strv[i], f);
                }
                fputs(json ? "]" : "", f);
                break;
        case PROP_MAP:
                fputs(json ? "{" : "", f);
                for (size_t i = 0; p->strv && p->strv[i] && p->strv[i + 1]; i += 2) {
                        fputs(i > 0 ? (json ? "," : ", ") : "", f);
                        if (json) {
                                json_print_string(f, p->strv[i]);
                                fputc(':', f);
                                json_print_string(f, p->strv[i + 1]);
                        } else
                                fprintf(f, "%s=%s", p->strv[i], p->strv[i + 1]);
                }
                fputs(json ? "}" : "", f);
                break;
        }
}

/* ProfileSource -> profile_source, HostPMUEnabled -> host_pmu_enabled,
 * NVMs -> nvms (a plural s stays with its acronym), AppliedUSec ->
 * applied_usec (systemd's unit suffix is one word). */
static void json_key_of(const char *name, char *buf, size_t size) {
        size_t o = 0;

        for (size_t i = 0; name[i] && o + 2 < size; i++) {
                const char *c = name + i;
                bool brk = false;

                if (i > 0 && isupper((unsigned char) *c)) {
                        bool plural = c[1] == 's' && (!c[2] || isupper((unsigned char) c[2]));

                        brk = !isupper((unsigned char) c[-1]) ||
                              (islower((unsigned char) c[1]) && !plural) || startswith(c, "USec");
                }
                if (brk)
                        buf[o++] = '_';
                if (i > 0 && startswith(c, "USec") && o + 4 < size) {
                        memcpy(buf + o, "usec", 4);
                        o += 4;
                        i += 3;
                        continue;
                }
                buf[o++] = (char) tolower((unsigned char) *c);
        }
        buf[o] = '\0';
}

void json_member(FILE *f, bool *first, const char *key) {
        assert(f);
        assert(first);
        assert(key);

        if (!*first)
                fputc(',', f);
        *first = false;
        json_print_string(f, key);
        fputc(':', f);
}

void props_print_json_members(const struct props *p, FILE *f, bool *first) {
        assert(p);
        assert(f);
        assert(first);

        for (size_t i = 0; i < p->n; i++) {
                char key[128];

                json_key_of(p->v[i].name, key, sizeof key);
                json_member(f, first, key);
                prop_print_value(&p->v[i], f, true);
        }
}

char *bus_vm_id_of_path(const char *path) {
        char *id = NULL;

        return sd_bus_path_decode(path, PMUFILTERD_VM_PREFIX, &id) > 0 ? id : NULL;
}

void vm_rows_free(struct vm_row *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(v[i].id);
                free(v[i].name);
                free(v[i].profile);
                free(v[i].state);
                free(v[i].path);
        }
        free(v);
}

static int vm_row_compare(const void *a, const void *b) {
        return strverscmp(((const struct vm_row *) a)->id, ((const struct vm_row *) b)->id);
}

int bus_list_vms(sd_bus *bus, sd_bus_error *e, struct vm_row **ret, size_t *ret_n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct vm_row *v = NULL;
        const char *id, *name, *profile, *state, *path;
        uint32_t pid;
        size_t n = 0;
        int r;

        assert(bus);
        assert(ret);
        assert(ret_n);

        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                               "ListVMs", e, &reply, NULL);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssssuo)");
        while (r >= 0 &&
               (r = sd_bus_message_read(reply, "(ssssuo)", &id, &name, &profile, &state, &pid, &path)) > 0) {
                struct vm_row *w = reallocarray(v, n + 1, sizeof(*v));

                if (!w) {
                        r = -ENOMEM;
                        break;
                }
                v = w;
                v[n] = (struct vm_row) {
                        .id = strdup(id), .name = strdup(name), .profile = strdup(profile),
                        .state = strdup(state), .path = strdup(path), .pid = pid,
                };
                if (!v[n].id || !v[n].name || !v[n].profile || !v[n].state || !v[n++].path)
                        r = -ENOMEM;
        }
        if (r < 0) {
                vm_rows_free(v, n);
                return r;
        }
        if (n > 0)
                qsort(v, n, sizeof(*v), vm_row_compare);
        *ret = v;
        *ret_n = n;
        return 0;
}
