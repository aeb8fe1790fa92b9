/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * registry.c — the VM table: a chained hash on (pid, fd) for the uevent and
 * ATTACH paths, and a list in registration order for listings.
 */
#include <stdint.h>

#include "compile.h"
#include "proto.h"
#include "registry.h"

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
        free(vm->id);
        proc_facts_done(&vm->facts);
        free(vm->name);
        free(vm->uuid);
        strv_free(vm->labels);
        free(vm->profile);
        compiled_filter_free(vm->filter);
        free(vm->last_error);
        free(vm->override);
        free(vm->waiters);
        free(vm);
}

void registry_done(struct registry *r) {
        struct vm *vm = r->head;

        while (vm) {
                struct vm *next = vm->list_next;
                vm_free(vm);
                vm = next;
        }
        free(r->buckets);
        *r = (struct registry) {};
}

struct vm *registry_get(const struct registry *r, pid_t pid, int fd) {
        if (r->n_buckets == 0)
                return NULL;
        for (struct vm *vm = r->buckets[bucket_of(r->n_buckets, pid, fd)]; vm; vm = vm->hash_next)
                if (vm->pid == pid && vm->fd == fd)
                        return vm;
        return NULL;
}

struct vm *registry_get_by_id(const struct registry *r, const char *id) {
        int pid, fd, n = 0;

        if (sscanf(id, "%d-%d%n", &pid, &fd, &n) != 2 || id[n] != '\0')
                return NULL;
        return registry_get(r, pid, fd);
}

struct vm *registry_lookup(const struct registry *r, const char *id_or_name) {
        struct vm *vm = registry_get_by_id(r, id_or_name);

        if (vm)
                return vm;
        REGISTRY_FOREACH(i, r)
                if (streq_ptr(i->name, id_or_name) || streq_ptr(i->uuid, id_or_name))
                        return i;
        return NULL;
}

static int rehash(struct registry *r, size_t n_buckets) {
        struct vm **b = calloc(n_buckets, sizeof(*b));

        if (!b)
                return -ENOMEM;
        REGISTRY_FOREACH(vm, r) {
                size_t i = bucket_of(n_buckets, vm->pid, vm->fd);
                vm->hash_next = b[i];
                b[i] = vm;
        }
        free(r->buckets);
        r->buckets = b;
        r->n_buckets = n_buckets;
        return 0;
}

int registry_add(struct registry *r, pid_t pid, int fd, struct vm **ret) {
        struct vm *vm;
        size_t i;

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
        vm->state = VM_DETECTED;

        i = bucket_of(r->n_buckets, pid, fd);
        vm->hash_next = r->buckets[i];
        r->buckets[i] = vm;
        vm->list_prev = r->tail;
        if (r->tail)
                r->tail->list_next = vm;
        else
                r->head = vm;
        r->tail = vm;
        r->n_vms++;
        r->n_state[VM_DETECTED]++;
        r->n_creator_unknown++;
        *ret = vm;
        return 0;
}

void registry_remove(struct registry *r, struct vm *vm) {
        struct vm **p = &r->buckets[bucket_of(r->n_buckets, vm->pid, vm->fd)];

        while (*p && *p != vm)
                p = &(*p)->hash_next;
        if (*p)
                *p = vm->hash_next;
        if (vm->list_prev)
                vm->list_prev->list_next = vm->list_next;
        else
                r->head = vm->list_next;
        if (vm->list_next)
                vm->list_next->list_prev = vm->list_prev;
        else
                r->tail = vm->list_prev;
        r->n_vms--;
        r->n_state[vm->state]--;
        if (!vm->creator_known)
                r->n_creator_unknown--;
        vm_free(vm);
}

void registry_set_state(struct registry *r, struct vm *vm, enum vm_state s) {
        if ((unsigned) s >= _VM_STATE_MAX)
                return;
        r->n_state[vm->state]--;
        r->n_state[s]++;
        vm->state = s;
}

void registry_creator_seen(struct registry *r, struct vm *vm) {
        if (vm->creator_known)
                return;
        vm->creator_known = true;
        r->n_creator_unknown--;
}
