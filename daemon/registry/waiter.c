/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * waiter.c — completions over the answers of many VMs.
 */
#include <assert.h>

#include "registry.h"
#include "waiter.h"

struct vm_waiter {
        vm_waiter_done_t done;
        void (*destroy)(void *userdata);
        void *userdata;
        unsigned outstanding;
        unsigned n_failed;
        char *first_error;
        bool armed;
};

struct vm_waiter *vm_waiter_new(vm_waiter_done_t done, void (*destroy)(void *userdata), void *userdata) {
        struct vm_waiter *w;

        assert(done);
        w = calloc(1, sizeof(*w));
        if (!w)
                return NULL;
        w->done = done;
        w->destroy = destroy;
        w->userdata = userdata;
        return w;
}

void vm_waiter_cancel(struct vm_waiter *w) {
        if (!w)
                return;
        if (w->destroy)
                w->destroy(w->userdata);
        free(w->first_error);
        free(w);
}

static void complete_if_due(struct vm_waiter *w) {
        if (!w->armed || w->outstanding > 0)
                return;
        w->done(w, w->n_failed, w->first_error, w->userdata);
        vm_waiter_cancel(w);
}

int vm_waiter_add(struct vm_waiter *w, struct vm *vm) {
        struct vm_waiter **l;

        assert(w);
        assert(vm);
        l = reallocarray(vm->waiters, vm->n_waiters + 1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        vm->waiters = l;
        l[vm->n_waiters++] = w;
        w->outstanding++;
        return 0;
}

void vm_waiter_abandon(struct vm_waiter *w, const char *reason) {
        if (!w)
                return;
        w->n_failed++;
        if (!w->first_error)
                w->first_error = strdup(reason);
        vm_waiter_arm(w);
}

void vm_waiter_arm(struct vm_waiter *w) {
        assert(w);
        w->armed = true;
        complete_if_due(w);
}

void vm_waiters_complete(struct vm *vm, bool ok, const char *error) {
        struct vm_waiter **l = TAKE_PTR(vm->waiters);
        size_t n = vm->n_waiters;

        vm->n_waiters = 0;
        for (size_t i = 0; i < n; i++) {
                struct vm_waiter *w = l[i];

                if (!ok) {
                        w->n_failed++;
                        if (!w->first_error && asprintf(&w->first_error, "VM %s: %s", vm->id,
                                                        error ? error : "filter not applied") < 0)
                                w->first_error = NULL;
                }
                w->outstanding--;
                complete_if_due(w);
        }
        free(l);
}
