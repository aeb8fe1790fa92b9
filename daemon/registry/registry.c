/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * registry.c — the VM table: a chained hash on (pid, fd) for the uevent and
 * ATTACH paths, hashes on the claimed NAME and UUID for the bus, a list in
 * registration order for listings, and the listeners of the layers above.
 */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>

#include "compile.h"
#include "log.h"
#include "proto.h"
#include "registry.h"
#include "waiter.h"

static const char *const state_names[_VM_STATE_MAX] = {
        [VM_DETECTED] = "detected",
        [VM_ATTACHED] = "attached",
        [VM_FILTERED] = "filtered",
        [VM_ADOPTED] = "adopted",
        [VM_FAILED] = "failed",
        [VM_UNMANAGED] = "unmanaged",
        [VM_DETACHED] = "detached",
};

const char *vm_state_to_string(enum vm_state s) {
        return s < _VM_STATE_MAX ? state_names[s] : "unknown";
}

int vm_state_from_string(const char *s, enum vm_state *ret) {
        assert(s);
        for (enum vm_state i = 0; i < _VM_STATE_MAX; i++)
                if (streq(s, state_names[i])) {
                        *ret = i;
                        return 0;
                }
        return -EINVAL;
}

const char *vm_client_from_string(const char *s) {
        if (!s)
                return NULL;
        for (int c = 0; c < _PROTO_CLIENT_MAX; c++)
                if (streq(s, proto_client_to_string(c)))
                        return proto_client_to_string(c);
        return streq(s, "ptrace") ? "ptrace" : NULL;
}

static size_t bucket_of(size_t n_buckets, pid_t pid, int fd) {
        uint64_t h = ((uint64_t) (uint32_t) pid << 32) | (uint32_t) fd;

        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        return (size_t) (h & (n_buckets - 1));
}

void registry_init(struct registry *r) {
        *r = (struct registry) {};
}

static void vm_free(struct vm *vm) {
        /* Completed already when it went (registry_notify(REMOVED)); at exit,
         * whoever still waits hears that nothing more will come. */
        vm_waiters_complete(vm, false, "pmufilterd stopped");
        audit_held_say(&vm->attach_said);
        free(vm->id);
        proc_facts_done(&vm->facts);
        free(vm->name);
        free(vm->uuid);
        strv_free(vm->labels);
        free(vm->profile);
        free(vm->profile_source_loc);
        compiled_filter_unref(vm->filter);
        free(vm->last_error);
        free(vm->override);
        free(vm);
}

void registry_done(struct registry *r) {
        REGISTRY_FOREACH_SAFE(vm, next, r)
                vm_free(vm);
        free(r->listeners);
        free(r->buckets);
        free(r->by_name);
        free(r->by_uuid);
        *r = (struct registry) {};
}

struct vm *registry_get(const struct registry *r, pid_t pid, int fd) {
        assert(r);
        if (r->n_buckets == 0)
                return NULL;
        for (struct vm *vm = r->buckets[bucket_of(r->n_buckets, pid, fd)]; vm; vm = vm->hash_next)
                if (vm->pid == pid && vm->fd == fd)
                        return vm;
        return NULL;
}

struct vm *registry_get_by_id(const struct registry *r, const char *id) {
        int pid, fd, n = 0;

        assert(r);
        assert(id);
        if (sscanf(id, "%d-%d%n", &pid, &fd, &n) != 2 || id[n] != '\0')
                return NULL;
        return registry_get(r, pid, fd);
}

/* FNV-1a: names are short and VMM-chosen; a chain only costs a strcmp. */
static size_t string_bucket(size_t n_buckets, const char *s) {
        uint64_t h = 0xcbf29ce484222325ULL;

        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 0x100000001b3ULL;
        return (size_t) (h & (n_buckets - 1));
}

struct vm *registry_lookup(const struct registry *r, const char *id_or_name) {
        struct vm *vm = registry_get_by_id(r, id_or_name), *best = NULL;
        size_t b;

        assert(r);
        assert(id_or_name);
        if (vm || r->n_buckets == 0)
                return vm;
        b = string_bucket(r->n_buckets, id_or_name);
        for (struct vm *i = r->by_name[b]; i; i = i->name_next)
                if (streq(i->name, id_or_name) && (!best || i->seq < best->seq))
                        best = i;
        for (struct vm *i = r->by_uuid[b]; i; i = i->uuid_next)
                if (streq(i->uuid, id_or_name) && (!best || i->seq < best->seq))
                        best = i;
        return best;
}

static void add_sorted(struct vm **out, size_t max, size_t *n, struct vm *vm) {
        size_t i = *n < max ? *n : max;

        for (size_t j = 0; j < (*n < max ? *n : max); j++)
                if (out[j] == vm)
                        return;         /* claims it as its NAME and as its UUID */
        /* insertion by registration order, keeping the first max */
        while (i > 0 && out[i - 1]->seq > vm->seq) {
                if (i < max)
                        out[i] = out[i - 1];
                i--;
        }
        if (i < max)
                out[i] = vm;
        (*n)++;
}

size_t registry_lookup_all(const struct registry *r, const char *s, struct vm **out, size_t max) {
        _cleanup_free_ char *lower = NULL;
        struct vm *vm;
        size_t n = 0, b;

        assert(r);
        assert(s);
        vm = registry_get_by_id(r, s);
        if (vm) {
                if (max > 0)
                        out[0] = vm;
                return 1;
        }
        if (r->n_buckets == 0)
                return 0;
        b = string_bucket(r->n_buckets, s);
        for (struct vm *i = r->by_name[b]; i; i = i->name_next)
                if (streq(i->name, s))
                        add_sorted(out, max, &n, i);
        /* UUIDs are kept in lower case (ATTACH): look them up so. */
        lower = strdup(s);
        if (!lower)
                return n;
        for (char *c = lower; *c; c++)
                *c = (char) tolower((unsigned char) *c);
        b = string_bucket(r->n_buckets, lower);
        for (struct vm *i = r->by_uuid[b]; i; i = i->uuid_next)
                if (streq(i->uuid, lower))
                        add_sorted(out, max, &n, i);
        return n;
}

static void link_names(struct registry *r, struct vm *vm) {
        size_t b;

        if (vm->name) {
                b = string_bucket(r->n_buckets, vm->name);
                vm->name_next = r->by_name[b];
                r->by_name[b] = vm;
        }
        if (vm->uuid) {
                b = string_bucket(r->n_buckets, vm->uuid);
                vm->uuid_next = r->by_uuid[b];
                r->by_uuid[b] = vm;
        }
}

static void unlink_names(struct registry *r, struct vm *vm) {
        struct vm **p;

        if (vm->name) {
                for (p = &r->by_name[string_bucket(r->n_buckets, vm->name)]; *p && *p != vm; p = &(*p)->name_next)
                        ;
                if (*p)
                        *p = vm->name_next;
        }
        if (vm->uuid) {
                for (p = &r->by_uuid[string_bucket(r->n_buckets, vm->uuid)]; *p && *p != vm; p = &(*p)->uuid_next)
                        ;
                if (*p)
                        *p = vm->uuid_next;
        }
        vm->name_next = vm->uuid_next = NULL;
}

void registry_set_name(struct registry *r, struct vm *vm, char *name, char *uuid) {
        assert(r);
        assert(vm);
        unlink_names(r, vm);
        free(vm->name);
        free(vm->uuid);
        vm->name = name;
        vm->uuid = uuid;
        link_names(r, vm);
}

static int rehash(struct registry *r, size_t n_buckets) {
        struct vm **b = calloc(n_buckets, sizeof(*b)), **bn = calloc(n_buckets, sizeof(*bn)),
                  **bu = calloc(n_buckets, sizeof(*bu));

        if (!b || !bn || !bu) {
                free(b);
                free(bn);
                free(bu);
                return -ENOMEM;
        }
        free(r->buckets);
        free(r->by_name);
        free(r->by_uuid);
        r->buckets = b;
        r->by_name = bn;
        r->by_uuid = bu;
        r->n_buckets = n_buckets;
        REGISTRY_FOREACH(vm, r) {
                size_t i = bucket_of(n_buckets, vm->pid, vm->fd);
                vm->hash_next = b[i];
                b[i] = vm;
                link_names(r, vm);
        }
        return 0;
}

int registry_add(struct registry *r, pid_t pid, int fd, struct vm **ret) {
        struct vm *vm;
        size_t i;

        assert(r);
        assert(ret);
        if (registry_get(r, pid, fd))
                return -EEXIST;
        if (r->n_vms + 1 > r->n_buckets) {
                int k = rehash(r, r->n_buckets ? r->n_buckets * 2 : 64);
                if (k < 0)
                        return k;
        }
        vm = calloc(1, sizeof(*vm));
        if (!vm)
                return -ENOMEM;
        if (asprintf(&vm->id, "%d-%d", (int) pid, fd) < 0) {
                free(vm);
                return -ENOMEM;
        }
        vm->pid = pid;
        vm->fd = fd;
        vm->seq = r->next_seq++;
        vm->state = VM_DETECTED;

        i = bucket_of(r->n_buckets, pid, fd);
        vm->hash_next = r->buckets[i];
        r->buckets[i] = vm;
        LIST_APPEND(vms, r->vms_head, r->vms_tail, vm);
        r->n_vms++;
        r->n_state[VM_DETECTED]++;
        r->n_creator_unknown++;
        *ret = vm;
        return 0;
}

void registry_remove(struct registry *r, struct vm *vm) {
        struct vm **p = &r->buckets[bucket_of(r->n_buckets, vm->pid, vm->fd)];

        assert(r);
        assert(vm);
        while (*p && *p != vm)
                p = &(*p)->hash_next;
        if (*p)
                *p = vm->hash_next;
        unlink_names(r, vm);
        LIST_REMOVE_TAIL(vms, r->vms_head, r->vms_tail, vm);
        r->n_vms--;
        r->n_state[vm->state]--;
        if (!vm->creator_known)
                r->n_creator_unknown--;
        vm_free(vm);
}

/* Where to cut an escaped text of more than max bytes: not inside a
 * character nor inside a \xNN, so that what is left reads back as itself. */
static size_t escaped_cut(const char *s, size_t max) {
        size_t n = max;

        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                n--;
        for (size_t k = 1; k <= 3 && k <= n; k++)
                if (s[n - k] == '\\' && s[n - k + 1] == 'x') {
                        n -= k;
                        break;
                }
        return n;
}

void vm_set_last_error(struct vm *vm, const char *text) {
        /* Made before the old one goes: text may be it.  Out of memory: no
         * error text rather than an unsafe one. */
        char *t = text ? utf8_escape(text) : NULL;

        if (t && strlen(t) > VM_LAST_ERROR_MAX)
                t[escaped_cut(t, VM_LAST_ERROR_MAX)] = 0;
        free(vm->last_error);
        vm->last_error = t;
}

void registry_set_state(struct registry *r, struct vm *vm, enum vm_state s) {
        assert(r);
        assert(vm);
        if ((unsigned) s >= _VM_STATE_MAX)
                return;
        r->n_state[vm->state]--;
        r->n_state[s]++;
        vm->state = s;
}

void registry_creator_seen(struct registry *r, struct vm *vm) {
        assert(r);
        assert(vm);
        if (vm->creator_known)
                return;
        vm->creator_known = true;
        r->n_creator_unknown--;
}

int registry_subscribe(struct registry *r, registry_listener_t fn, void *userdata) {
        struct registry_listener *l;

        assert(r);
        assert(fn);
        l = reallocarray(r->listeners, r->n_listeners + 1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        r->listeners = l;
        l[r->n_listeners++] = (struct registry_listener) { fn, userdata };
        return 0;
}

void registry_notify(struct registry *r, enum registry_event ev, struct vm *vm,
                     const struct registry_event_data *data) {
        static const struct registry_event_data none = {};

        assert(r);
        if (!data)
                data = &none;
        /* Whoever waits for this VM's answer hears first. */
        if (vm && (ev == REGISTRY_VM_APPLIED || ev == REGISTRY_VM_SESSION_LOST || ev == REGISTRY_VM_REMOVED))
                vm_waiters_complete(vm, ev == REGISTRY_VM_APPLIED && data->ok,
                                    ev == REGISTRY_VM_REMOVED ? "the VM is gone" : data->error);
        for (size_t i = 0; i < r->n_listeners; i++)
                r->listeners[i].fn(r, ev, vm, data, r->listeners[i].userdata);
}
