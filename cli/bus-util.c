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

/* Replace every `from` in *s by `to`. */
static int replace_all(char **s, const char *from, const char *to) {
        const char *p;

        while ((p = strstr(*s, from))) {
                char *n = NULL;

                if (asprintf(&n, "%.*s%s%s", (int) (p - *s), *s, to, p + strlen(from)) < 0)
                        return -ENOMEM;
                free(*s);
                *s = n;
        }
        return 0;
}

char *bus_humanize(const char *message, const char *vm_id) {
        /* The D-Bus API's words in the daemon's messages, as pmufilterctl
         * spells them. */
        static const char *const api[][2] = {
                { "see ListVMs", "see pmufilterctl list" },
                { "see ListProfiles", "see pmufilterctl profile list" },
                { "use ResetVMProfile", "use pmufilterctl profile reset" },
                { "use runtime=true", "use --runtime" },
        };
        _cleanup_free_ char *id = NULL;
        const char *rest = strempty(message), *tail;
        char *s = NULL;
        int n;

        /* "VM <id>: <reason>": the daemon's ApplyFailed names the VM. */
        if (startswith(rest, "VM ") && (tail = strstr(rest, ": ")) && !memchr(rest + 3, ' ', tail - rest - 3)) {
                id = strndup(rest + 3, tail - rest - 3);
                if (!id)
                        return NULL;
                rest = tail + 2;
                vm_id = id;
        }

        if ((tail = startswith(rest, "no APPLIED for SERIAL=")) && (tail = strstr(tail, " in time")))
                n = asprintf(&s, "the VMM of %s%s did not answer in time%s", vm_id ? "VM " : "this VM",
                             strempty(vm_id), tail + strlen(" in time"));
        else if ((tail = startswith(rest, "cannot send APPLY for SERIAL=")) && (tail = strstr(tail, ": ")))
                n = asprintf(&s, "the filter could not be sent to the VMM of %s%s: %s", vm_id ? "VM " : "this VM",
                             strempty(vm_id), tail + 2);
        else if ((tail = startswith(rest, "KVM_SET_PMU_EVENT_FILTER failed: ")))
                n = asprintf(&s, "%s%s%sthe kernel refused the filter: %s", id ? "VM " : "", strempty(id),
                             id ? ": " : "", tail);
        else if ((tail = startswith(rest, "KVM_SET_PMU_EVENT_FILTER (injected) failed: ")))
                n = asprintf(&s, "%s%s%sthe kernel refused the injected filter: %s", id ? "VM " : "",
                             strempty(id), id ? ": " : "", tail);
        else if ((tail = startswith(rest, "no ATTACH within ")))
                n = asprintf(&s, "%s%s%sits VMM did not attach within %s", id ? "VM " : "", strempty(id),
                             id ? ": " : "", tail);
        else
                n = asprintf(&s, "%s", strempty(message));
        if (n < 0)
                return NULL;

        for (size_t i = 0; i < ELEMENTSOF(api); i++)
                if (replace_all(&s, api[i][0], api[i][1]) < 0) {
                        free(s);
                        return NULL;
                }
        return s;
}

char *bus_error_why(int r, const sd_bus_error *e, const char *change) {
        char *s = NULL;
        int n;

        if (r >= 0)
                r = -EIO;
        /* The bus's own wording for an absent name talks about .service
         * files; say what it means here. */
        if (bus_error_daemon_absent(e))
                return strdup("pmufilterd is not running (nobody owns " PMUFILTERD_BUS_NAME " on the bus)");
        /* The bus's policy answers with its match rules, the daemon with
         * the caller's uid: both mean the same. */
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED) || (!sd_bus_error_is_set(e) && r == -EACCES)) {
                n = change ? asprintf(&s, "Permission denied: %s needs root", change)
                           : asprintf(&s, "Permission denied");
                return n < 0 ? NULL : s;
        }
        /* sd-bus's own timeout: the daemon took longer than the change may. */
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_TIMEOUT, SD_BUS_ERROR_NO_REPLY) ||
            (!sd_bus_error_is_set(e) && r == -ETIMEDOUT))
                return strdup("pmufilterd did not answer in time");
        if (sd_bus_error_is_set(e) && !isempty(e->message))
                return bus_humanize(e->message, NULL);
        return strdup(strerror(-r));
}

static int bus_log_errorv(int r, const sd_bus_error *e, const char *change, const char *fmt, va_list ap) {
        _cleanup_free_ char *why = bus_error_why(r, e, change);

        if (r >= 0)
                r = -EIO;
        fflush(stdout);
        fprintf(stderr, "%s: ", program_invocation_short_name);
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, ": %s\n", why ? why : strerror(-r));
        if (sd_bus_error_is_set(e))
                log_detail("(D-Bus error %s: %s)", e->name, strna(e->message));
        return r;
}

int bus_log_error(int r, const sd_bus_error *e, const char *fmt, ...) {
        va_list ap;

        assert(fmt);
        va_start(ap, fmt);
        r = bus_log_errorv(r, e, NULL, fmt, ap);
        va_end(ap);
        return r;
}

int bus_log_change_error(int r, const sd_bus_error *e, const char *change, const char *fmt, ...) {
        va_list ap;

        assert(fmt);
        va_start(ap, fmt);
        r = bus_log_errorv(r, e, change, fmt, ap);
        va_end(ap);
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
                p->kind = sig[1] == 'o' ? PROP_PATHS : PROP_STRV;
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

/* Add n, named name, to p (which owns it then; freed on failure). */
static int props_push(struct props *p, const char *name, struct prop *n) {
        struct prop *v;

        n->name = strdup(name);
        v = reallocarray(p->v, p->n + 1, sizeof(*v));
        if (v)
                p->v = v;
        if (!n->name || !v) {
                prop_done(n);
                return -ENOMEM;
        }
        p->v[p->n++] = *n;
        return 0;
}

int props_read(sd_bus_message *m, struct props *p) {
        int r;

        assert(m);
        assert(p);

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                struct prop n = {};
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
                        if (props_push(p, name, &n) < 0)
                                return -ENOMEM;
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

static int object_props_cmp(const void *a, const void *b) {
        return strcmp(((const struct object_props *) a)->path, ((const struct object_props *) b)->path);
}

void object_props_free(struct object_props *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(v[i].path);
                props_clear(&v[i].props);
        }
        free(v);
}

/* One object of GetManagedObjects' reply: its interfaces, a{sa{sv}}; the
 * properties of interface, if it has it, into *o. */
static int read_object(sd_bus_message *m, const char *interface, struct object_props *o, bool *found) {
        const char *iface;
        int r;

        *found = false;
        r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
                r = sd_bus_message_read(m, "s", &iface);
                if (r >= 0 && streq(iface, interface) && !*found) {
                        r = props_read(m, &o->props);
                        *found = r >= 0;
                } else if (r >= 0)
                        r = sd_bus_message_skip(m, "a{sv}");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int bus_get_managed(sd_bus *bus, const char *interface, sd_bus_error *e, struct object_props **ret,
                    size_t *ret_n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct object_props *v = NULL;
        const char *path;
        size_t n = 0;
        int r;

        assert(bus);
        assert(interface);
        assert(ret);
        assert(ret_n);

        r = sd_bus_call_method(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects", e, &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                struct object_props o = {};
                struct object_props *nv;
                bool found;

                r = sd_bus_message_read(reply, "o", &path);
                if (r >= 0)
                        r = read_object(reply, interface, &o, &found);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0 && found) {
                        o.path = strdup(path);
                        nv = reallocarray(v, n + 1, sizeof(*v));
                        if (nv)
                                v = nv;
                        if (!o.path || !nv)
                                r = -ENOMEM;
                        else
                                v[n++] = o;
                }
                if (r < 0 || !found || !o.path) {
                        free(o.path);
                        props_clear(&o.props);
                }
        }
        if (r < 0) {
                object_props_free(v, n);
                return r;
        }
        if (n > 0)
                qsort(v, n, sizeof(*v), object_props_cmp);
        *ret = v;
        *ret_n = n;
        return 0;
}

struct props *object_props_find(struct object_props *v, size_t n, const char *path) {
        const struct object_props key = { .path = (char *) path };
        struct object_props *o;

        if (n == 0)
                return NULL;
        o = bsearch(&key, v, n, sizeof(*v), object_props_cmp);
        return o ? &o->props : NULL;
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
        return props_push(p, name, &n);
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

        return v && (v->kind == PROP_STRV || v->kind == PROP_PATHS) ? v->strv : NULL;
}

void prop_print_value(const struct prop *p, FILE *f) {
        assert(p);
        assert(f);

        switch (p->kind) {
        case PROP_STRING:
                fputs(p->str, f);
                break;
        case PROP_BOOLEAN:
                fputs(yes_no(p->num), f);
                break;
        case PROP_NUMBER:
                fprintf(f, "%" PRIu64, p->num);
                break;
        case PROP_WORDS:
                for (size_t i = 0; i < p->n_words; i++)
                        fprintf(f, "%s0x%" PRIx64, i > 0 ? ", " : "", p->words[i]);
                break;
        case PROP_STRV:
        case PROP_PATHS:
                for (size_t i = 0; p->strv && p->strv[i]; i++)
                        fprintf(f, "%s%s", i > 0 ? ", " : "", p->strv[i]);
                break;
        case PROP_MAP:
                for (size_t i = 0; p->strv && p->strv[i] && p->strv[i + 1]; i += 2)
                        fprintf(f, "%s%s=%s", i > 0 ? ", " : "", p->strv[i], p->strv[i + 1]);
                break;
        }
}

void props_print_line(const char *label, const struct props *p, const char *name) {
        const struct prop *m = props_get(p, name);

        printf(LABEL, label);
        if (m && strv_length(m->strv) > 0)
                prop_print_value(m, stdout);
        else
                printf("-");
        printf("\n");
}

/* ProfileSource -> profile_source, HostPMUEnabled -> host_pmu_enabled,
 * AppliedUSec -> applied_usec (systemd's unit suffix is one word); the
 * exceptions first: a filter's words are `events` wherever they are (the
 * kernel's struct kvm_pmu_event_filter, the VM's Events, compile --json). */
void prop_json_key(const char *name, char *buf, size_t size) {
        static const char *const renamed[][2] = {
                { "NVMs", "n_vms" },            /* a count: n_ as every count */
                { "Entries", "events" },        /* a filter's words, as the VM's Events */
                { "EntryNames", "event_names" },
        };
        size_t o = 0;

        assert(name);
        assert(buf);
        assert(size > 0);

        for (size_t i = 0; i < ELEMENTSOF(renamed); i++)
                if (streq(name, renamed[i][0])) {
                        snprintf(buf, size, "%s", renamed[i][1]);
                        return;
                }

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

static bool endswith_usec(const char *name) {
        size_t n = strlen(name);

        return n >= 4 && streq(name + n - 4, "USec");
}

void prop_json_member(const struct prop *p, struct json_writer *w) {
        char key[128], count[136];

        assert(p);
        assert(w);

        prop_json_key(p->name, key, sizeof key);
        json_key(w, key);
        switch (p->kind) {
        case PROP_STRING:
                json_string(w, empty_to_null(p->str));
                break;
        case PROP_BOOLEAN:
                json_bool(w, p->num);
                break;
        case PROP_NUMBER:
                /* A time of 0 is "never". */
                if (p->num == 0 && endswith_usec(p->name))
                        json_null(w);
                else
                        json_number(w, p->num);
                break;
        case PROP_WORDS:
                /* Kernel words as hex strings, and how many there are. */
                json_array_begin(w);
                for (size_t i = 0; i < p->n_words; i++) {
                        char word[24];

                        snprintf(word, sizeof word, "0x%" PRIx64, p->words[i]);
                        json_string(w, word);
                }
                json_array_end(w);
                snprintf(count, sizeof count, "n_%s", key);
                json_kv_number(w, count, p->n_words);
                break;
        case PROP_STRV:
                json_array_begin(w);
                for (size_t i = 0; p->strv && p->strv[i]; i++)
                        json_string(w, p->strv[i]);
                json_array_end(w);
                break;
        case PROP_PATHS:
                /* VMs by their ids, as every other verb names them. */
                json_array_begin(w);
                for (size_t i = 0; p->strv && p->strv[i]; i++) {
                        _cleanup_free_ char *id = bus_vm_id_of_path(p->strv[i]);

                        json_string(w, id ? id : p->strv[i]);
                }
                json_array_end(w);
                break;
        case PROP_MAP:
                json_object_begin(w);
                for (size_t i = 0; p->strv && p->strv[i] && p->strv[i + 1]; i += 2)
                        json_kv_string(w, p->strv[i], p->strv[i + 1]);
                json_object_end(w);
                break;
        }
}

void props_json_members(const struct props *p, struct json_writer *w) {
        assert(p);
        assert(w);

        for (size_t i = 0; i < p->n; i++)
                prop_json_member(&p->v[i], w);
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

char *bus_config_dir(sd_bus *bus) {
        _cleanup_strv_free_ char **files = NULL;
        char *slash;

        if (sd_bus_get_property_strv(bus, PMUFILTERD_BUS_NAME, PMUFILTERD_BUS_PATH, PMUFILTERD_MANAGER_IFACE,
                                     "ConfigFiles", NULL, &files) < 0 ||
            !files || !files[0] || !(slash = strrchr(files[0], '/')))
                return NULL;
        return strndup(files[0], slash == files[0] ? 1 : (size_t) (slash - files[0]));
}

const char *policy_path_shorten(const char *path, const char *dir) {
        const char *rest;

        if (!path || isempty(dir) || !(rest = startswith(path, dir)))
                return path;
        if (streq(dir, "/"))
                return rest;
        return rest[0] == '/' && rest[1] ? rest + 1 : path;
}

/* The rule number of a ProfileSource "rule:<n>", or 0. */
static unsigned rule_index(const char *source) {
        const char *n = startswith(strempty(source), "rule:");
        char *end;
        unsigned long v;

        if (!n || !*n)
                return 0;
        errno = 0;
        v = strtoul(n, &end, 10);
        return errno == 0 && *end == '\0' && v <= UINT32_MAX ? (unsigned) v : 0;
}

char *profile_source_describe(const char *source, const char *location, const char *config_dir) {
        char *s = NULL;

        if (isempty(source))
                return NULL;
        if (rule_index(source) == 0 || isempty(location))
                return strdup(source);
        return asprintf(&s, "rule %s", policy_path_shorten(location, config_dir)) < 0 ? NULL : s;
}

void json_rule_members(struct json_writer *w, const char *source, const char *location) {
        unsigned n = rule_index(source);
        const char *colon = isempty(location) ? NULL : strrchr(location, ':');
        char *end = NULL;
        unsigned long line = colon ? strtoul(colon + 1, &end, 10) : 0;

        if (n > 0)
                json_kv_number(w, "rule_index", n);
        else
                json_kv_null(w, "rule_index");
        json_key(w, "rule_file");
        if (n > 0 && colon && colon > location && end && *end == '\0') {
                _cleanup_free_ char *file = strndup(location, colon - location);

                json_string(w, file);
                json_kv_number(w, "rule_line", line);
        } else {
                json_null(w);
                json_kv_null(w, "rule_line");
        }
}

bool vm_in_force(const struct props *vm) {
        const char *state = props_string(vm, "State");

        if (props_get(vm, "InForce"))
                return props_bool(vm, "InForce");
        return streq(state, "filtered") || streq(state, "adopted") ||
               (streq(state, "detached") && props_number(vm, "AppliedUSec") != 0);
}

const char *vm_not_in_force_why(const char *state, char *buf, size_t size) {
        if (streq(state, "detected"))
                return "no VMM has attached it yet";
        if (streq(state, "attached") || streq(state, "filtered") || streq(state, "adopted"))
                return "its VMM has not answered yet";
        if (streq(state, "failed"))
                return "it failed (see Last error)";
        snprintf(buf, size, "the VM is %s", state);
        return buf;
}
