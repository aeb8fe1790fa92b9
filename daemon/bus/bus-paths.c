/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-paths.c — object paths of VMs and profiles, the context of the
 * call being dispatched, and strings made fit for D-Bus.
 */
#include "bus.h"

/* An id as sd_bus_path_encode() escapes it, at buf; the length written, or
 * -ENOBUFS.  Ids are "<pid>-<fd>": a leading digit and the dash escaped, the
 * rest copied. */
static int encode_id(const char *id, char *buf, size_t size) {
        static const char hex[] = "0123456789abcdef";
        size_t n = 0;

        if (!*id) {
                if (size < 2)
                        return -ENOBUFS;
                buf[n++] = '_';
        }
        for (const char *c = id; *c; c++) {
                bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                             (*c >= '0' && *c <= '9' && c != id);

                if (n + (plain ? 2 : 4) > size)
                        return -ENOBUFS;
                if (plain)
                        buf[n++] = *c;
                else {
                        buf[n++] = '_';
                        buf[n++] = hex[(unsigned char) *c >> 4];
                        buf[n++] = hex[(unsigned char) *c & 15];
                }
        }
        buf[n] = 0;
        return (int) n;
}

int vm_object_path(const char *prefix, const char *id, char *buf, size_t size) {
        size_t n = strlen(prefix);
        int r;

        if (n + 2 > size)
                return -ENOBUFS;
        memcpy(buf, prefix, n);
        buf[n++] = '/';
        r = encode_id(id, buf + n, size - n);
        return r < 0 ? r : 0;
}

void vm_path_init(struct vm_path *p) {
        p->prefix_len = strlen(BUS_VM_PREFIX "/");
        memcpy(p->buf, BUS_VM_PREFIX "/", p->prefix_len + 1);
}

const char *vm_path_of(struct vm_path *p, const char *id) {
        return encode_id(id, p->buf + p->prefix_len, sizeof(p->buf) - p->prefix_len) < 0 ? NULL : p->buf;
}

char *bus_vm_path(const struct vm *vm) {
        char buf[VM_PATH_MAX];

        /* An id is "<pid>-<fd>": its path always fits. */
        return vm_object_path(BUS_VM_PREFIX, vm->id, buf, sizeof(buf)) < 0 ? NULL : strdup(buf);
}

char *bus_profile_path(const char *name) {
        char *p = NULL;

        return sd_bus_path_encode(BUS_PROFILE_PREFIX, name, &p) < 0 ? NULL : p;
}

const char *bus_utf8(const char *s, char **buf) {
        *buf = NULL;
        if (!s || utf8_is_plain(s))
                return s;
        *buf = utf8_escape(s);
        return *buf;
}

/* append_basic(), not the generic append(): ListVMs makes one per VM. */
int bus_append_utf8(sd_bus_message *m, const char *s) {
        _cleanup_free_ char *buf = NULL;
        const char *text = bus_utf8(strempty(s), &buf);

        return text ? sd_bus_message_append_basic(m, 's', text) : -ENOMEM;
}

int bus_append_strv_utf8(sd_bus_message *m, char *const *l) {
        int r = sd_bus_message_open_container(m, 'a', "s");

        for (char *const *s = l; r >= 0 && s && *s; s++)
                r = bus_append_utf8(m, *s);
        return r < 0 ? r : sd_bus_message_close_container(m);
}

struct bus *bus_current(sd_bus_message *msg) {
        return sd_bus_slot_get_userdata(sd_bus_get_current_slot(sd_bus_message_get_bus(msg)));
}

