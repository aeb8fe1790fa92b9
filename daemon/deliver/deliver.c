/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * deliver.c — a VM's decision on its way to the kernel: decided
 * (decide/), sent as APPLY to its VMM's session, or injected into a VMM
 * that never attached (settings.adopt: ptrace), and the answer recorded:
 * the VM's state, its record, the audit trail, and the listeners of the
 * registry (the bus).
 */
#include <assert.h>
#include <limits.h>
#include <strings.h>
#include <time.h>

#include "compile.h"
#include "deliver.h"
#include "inject.h"
#include "log.h"
#include "session.h"
#include "waiter.h"

/* The event loop waits while a thread is held: keep it short. */
#define ADOPT_TIMEOUT_MS 250

void deliver_decide_input(struct vm *vm, struct decide_input *ret) {
        *ret = (struct decide_input) {
                .match = {
                        .name = vm->name,
                        .uuid = vm->uuid,
                        .client = vm->client,
                        .labels = vm->labels,
                        .facts = vm->have_facts ? &vm->facts : NULL,
                        .load_facts = proc_facts_load,
                },
                .override = vm->override,
                .override_runtime = vm->override_runtime,
        };
}

int deliver_decide(struct deliver *d, struct vm *vm) {
        _cleanup_(compiled_filter_unrefp) struct compiled_filter *f = NULL;
        _cleanup_free_ char *old_profile = NULL;
        struct decide_input in;
        struct decision dec;
        bool changed;
        int r;

        deliver_decide_input(vm, &in);
        r = decide(d->decider, &in, &dec);
        if (r < 0)
                return r;
        f = dec.filter;
        if (dec.default_missing)
                log_warning("Default profile '%s' set over D-Bus is not in the policy; using settings.default_profile",
                            decider_default_profile(d->decider, NULL));

        changed = !vm->filter || !compiled_filter_equal(vm->filter, f) || !streq_ptr(vm->profile, dec.profile);
        if (!streq_ptr(vm->profile, dec.profile)) {
                old_profile = TAKE_PTR(vm->profile);
                vm->profile = strdup(dec.profile);
                if (!vm->profile)
                        return -ENOMEM;
                registry_notify(d->registry, REGISTRY_VM_PROFILE_MOVED, vm,
                                &(struct registry_event_data) { .old_profile = old_profile });
        }
        snprintf(vm->profile_source, sizeof(vm->profile_source), "%s", dec.source);
        if (dec.rule_loc) {
                char loc[PATH_MAX + 16];

                srcloc_format(dec.rule_loc, loc, sizeof(loc));
                if (!streq_ptr(vm->profile_source_loc, loc) && free_and_strdup(&vm->profile_source_loc, loc) < 0)
                        return -ENOMEM;
        } else
                (void) free_and_strdup(&vm->profile_source_loc, NULL);
        compiled_filter_unref(vm->filter);
        vm->filter = TAKE_PTR(f);
        /* Decided is not applied: in force again only when the kernel says so. */
        if (changed)
                vm->in_force = false;
        return changed;
}

/* The identity with the facts of mask (PROC_FACT_IDS, PROC_FACT_MACHINE)
 * read: a fact not read is taken as absent. */
static void vm_identity_of(struct vm *vm, unsigned mask, struct vm_identity *ret) {
        /* Facts of a process that is gone are not to be had: then the
         * claims are bound to nothing verified, and bind nothing. */
        if (vm->have_facts && mask != 0)
                (void) proc_facts_load(&vm->facts, mask);
        *ret = (struct vm_identity) {
                .machine_uuid = vm->have_facts && (mask & PROC_FACT_MACHINE) ? vm->facts.machine_uuid : NULL,
                .have_uid = vm->have_facts && (mask & PROC_FACT_IDS) && (vm->facts.loaded & PROC_FACT_IDS),
                .uid = vm->facts.uid,
                .uuid = vm->uuid,
                .name = vm->name,
        };
}

char *deliver_source_text(const char *source, const char *loc, char *buf, size_t size) {
        snprintf(buf, size, "%s%s%s", strempty(source), loc ? " at " : "", strempty(loc));
        return buf;
}

void deliver_vm_identity(struct vm *vm, struct vm_identity *ret) {
        assert(ret);
        vm_identity_of(vm, PROC_FACT_IDS | PROC_FACT_MACHINE, ret);
}

int deliver_update_override(struct deliver *d, struct vm *vm) {
        const struct decider *dec = d->decider;
        const struct state_entry *e;
        struct vm_identity id;
        bool runtime = false;
        unsigned mask;
        int r;

        vm->override_expires_usec = 0;
        /* Most hosts keep no per-VM change, or none that could be this
         * VM's: read no facts for those (overrides_facts_needed()). */
        mask = overrides_facts_needed(dec, vm->uuid, vm->name);
        if (mask == 0) {
                vm->override_runtime = false;
                return free_and_strdup(&vm->override, NULL);
        }
        vm_identity_of(vm, mask, &id);
        e = overrides_lookup_entry(dec, &id, &runtime);
        r = free_and_strdup(&vm->override, e ? e->profile : NULL);
        vm->override_runtime = runtime;
        vm->override_expires_usec = e ? e->expires_usec : 0;
        return r;
}

size_t deliver_find_vms(struct deliver *d, const char *s, struct vm **out, size_t max) {
        size_t n = registry_lookup_all(d->registry, s, out, max);

        if (n > 0)
                return n;
        /* Orchestration knows a libvirt guest by its domain's UUID, which
         * machined holds, or by its machine name. */
        REGISTRY_FOREACH(vm, d->registry) {
                if (!vm->have_facts || proc_facts_load(&vm->facts, PROC_FACT_MACHINE) < 0)
                        continue;
                if (streq_ptr(vm->facts.machine, s) || (vm->facts.machine_uuid && strcasecmp(vm->facts.machine_uuid, s) == 0)) {
                        if (n < max)
                                out[n] = vm;
                        n++;
                }
        }
        return n;
}

bool deliver_vm_managed(const struct vm *vm) {
        return vm->session || vm->state == VM_ADOPTED;
}

int deliver_push(struct deliver *d, struct vm *vm) {
        uint64_t serial = ++d->next_serial;
        int r;

        if (!vm->session)
                return -ENOTCONN;
        r = session_send_apply(vm->session, vm, serial, decider_settings(d->decider)->attach_timeout_ms);
        if (r < 0)
                return r;
        vm->serial_pending = serial;
        if (vm->state != VM_FILTERED && vm->state != VM_FAILED)
                registry_set_state(d->registry, vm, VM_ATTACHED);
        return 0;
}

int deliver_apply(struct deliver *d, struct vm *vm, struct vm_waiter *waiter) {
        int r;

        if (vm->session) {
                /* Waiting before the push: a push that fails ends the
                 * session, and that fails the waiter too. */
                if (waiter) {
                        r = vm_waiter_add(waiter, vm);
                        if (r < 0)
                                return r;
                }
                return deliver_push(d, vm);
        }
        if (vm->state != VM_ADOPTED)
                return -ENOTCONN;
        /* Adopted: inject again, now.  The waiter hears the result. */
        if (waiter) {
                r = vm_waiter_add(waiter, vm);
                if (r < 0)
                        return r;
        }
        r = deliver_adopt(d, vm);
        if (r < 0)
                registry_notify(d->registry, REGISTRY_VM_SESSION_LOST, vm,
                                &(struct registry_event_data) { .error = vm->last_error });
        return r;
}

/* settings.adopt: ptrace.  The decision is made as for any VM, with
 * `client: ptrace`; `pmu: off` cannot be honoured after creation, so such
 * profiles give their fallback (an empty allowlist).  A refusal leaves the
 * VM to settings.unmanaged. */
int deliver_adopt(struct deliver *d, struct vm *vm) {
        struct inject_result res;
        const struct compiled_filter *f;
        char detail[64];
        int r;

        vm->client = "ptrace";
        r = deliver_decide(d, vm);
        if (r < 0)
                return r;
        f = vm->filter;
        /* The pid may have been reused since we saw it: inject_pmu_filter()
         * checks the fd, not the process. */
        if (proc_starttime(vm->pid) != vm->starttime)
                return -ESRCH;
        r = inject_pmu_filter(vm->pid, vm->fd, f->action, f->flags, f->fixed_counter_bitmap, f->events,
                              f->nevents, ADOPT_TIMEOUT_MS, &res);
        if (r < 0) {
                _cleanup_free_ char *msg = NULL;

                if (asprintf(&msg, "adoption by ptrace refused: %s", res.reason) >= 0)
                        vm_set_last_error(vm, msg);
                audit_record(LOG_WARNING, MID_REFUSED, vm->id, vm->profile, vm->pid,
                             "VM %s: not adopted by injection: %s", vm->id, res.reason);
                registry_notify(d->registry, REGISTRY_VM_CHANGED, vm, NULL);
                return r;
        }

        snprintf(detail, sizeof(detail), "thread %d held %u µs, ", (int) res.tid, res.stopped_us);
        deliver_record_result(d, vm, res.error,
                              f->pmu_off ? "pmu: off cannot be honoured after creation: "
                                           "the fallback empty allowlist is in force" : NULL,
                              true, detail);
        return 0;
}

void deliver_record_result(struct deliver *d, struct vm *vm, int error, const char *note, bool injected,
                           const char *detail) {
        const struct compiled_filter *f = vm->filter;
        const char *via = injected ? " by injection" : "";
        _cleanup_free_ char *msg = NULL;

        audit_held_say(&vm->attach_said);       /* the attach this answers, first */
        vm->last_errno = error;
        if (error == 0) {
                registry_set_state(d->registry, vm, injected ? VM_ADOPTED : VM_FILTERED);
                vm->applied_usec = now_usec(CLOCK_REALTIME);
                vm->in_force = true;
                vm_set_last_error(vm, note);
                registry_notify(d->registry, REGISTRY_VM_APPLIED, vm,
                                &(struct registry_event_data) { .ok = true, .error = note });
                audit_record(LOG_INFO, MID_APPLIED, vm->id, vm->profile, vm->pid,
                             "VM %s%s%s%s: filter of profile '%s' applied%s (%s%s, %u entries)%s%s",
                             vm->id, vm->name ? " (" : "", strempty(vm->name), vm->name ? ")" : "",
                             vm->profile, via, detail, f && f->action ? "deny" : "allow", f ? f->nevents : 0,
                             note ? "; " : "", strempty(note));
        } else {
                registry_set_state(d->registry, vm, VM_FAILED);
                vm->in_force = false;
                if (asprintf(&msg, "KVM_SET_PMU_EVENT_FILTER%s failed: %s", injected ? " (injected)" : "",
                             strerror(error)) < 0)
                        msg = NULL;
                vm_set_last_error(vm, msg);
                registry_notify(d->registry, REGISTRY_VM_APPLIED, vm,
                                &(struct registry_event_data) { .ok = false, .error = msg });
                audit_record(LOG_ERR, MID_FAILED, vm->id, vm->profile, vm->pid,
                             "VM %s: filter of profile '%s' was NOT applied%s: %s", vm->id, vm->profile, via,
                             strna(msg));
        }
        records_mark(d->records, vm);
}
