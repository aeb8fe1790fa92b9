/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * grants.c — time-limited changes (pmufilterd(8), TIME-LIMITED GRANTS;
 * SetVMProfileFor): a runtime change of the runtime state with an expiry.
 * One CLOCK_REALTIME timer, armed at the earliest expiry and off while no
 * grant exists.  When a grant ends it is dropped from the runtime state,
 * the file is written, and every VM it reached is decided again and
 * pushed, as a reset of its runtime change would.  At start-up, grants
 * that ended while the daemon was down are ended at once.
 */
#include <assert.h>

#include "compile.h"
#include "deliver.h"
#include "log.h"

/* Grants are minutes to days long: a wake-up 100 ms late is nothing. */
#define GRANT_ACCURACY_USEC (100 * 1000)

static int on_grant_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct deliver *d = userdata;

        deliver_grants_expire(d, false);
        return 0;
}

int deliver_grants_arm(struct deliver *d) {
        uint64_t next = state_next_expiry(&d->decider->runtime);
        int r;

        assert(d);
        if (next == 0)
                return d->grant_timer ? sd_event_source_set_enabled(d->grant_timer, SD_EVENT_OFF) : 0;
        if (!d->grant_timer) {
                r = sd_event_add_time(d->event, &d->grant_timer, CLOCK_REALTIME, next, GRANT_ACCURACY_USEC,
                                      on_grant_timer, d);
                if (r < 0)
                        return log_error_errno(r, "Failed to arm the timer of the time-limited grants: %m");
                (void) sd_event_source_set_description(d->grant_timer, "grant-expiry");
                return 0;
        }
        r = sd_event_source_set_time(d->grant_timer, next);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->grant_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                return log_error_errno(r, "Failed to arm the timer of the time-limited grants: %m");
        return 0;
}

/* Does vm hold the grant of profile under key? */
static bool vm_has_grant(struct vm *vm, const char *key, const char *profile) {
        _cleanup_free_ char *k = NULL;
        struct vm_identity id;

        if (!vm->override || !vm->override_runtime || !streq(vm->override, profile))
                return false;
        deliver_vm_identity(vm, &id);
        return overrides_key(&id, &k) >= 0 && streq(k, key);
}

/* One grant ended: each VM of it gets what is beneath (its persistent
 * change, else the rules or the default), said in the audit trail, and is
 * added to vms for the push. */
static int end_grant(struct deliver *d, const struct state_entry *e, bool at_start, struct vm **vms, size_t *n) {
        char when[64] = "", until[32], bound[512];
        size_t found = 0;

        if (at_start)
                snprintf(when, sizeof(when), " at %s while pmufilterd was not running",
                         format_iso8601(until, sizeof(until), e->expires_usec));
        REGISTRY_FOREACH(vm, d->registry) {
                struct audit_extra x = { .vm_name = vm->name };
                char now_loc[PATH_MAX + 16], now_by[DELIVER_SOURCE_TEXT_MAX];
                struct decide_input in;
                struct decision dec;
                int r;

                if (!vm_has_grant(vm, e->key, e->profile))
                        continue;
                /* What decided it until now: the VM's decision changes
                 * only with the push, after this record. */
                x.decided_by = vm->profile_source[0] ? vm->profile_source : NULL;
                x.decided_by_location = vm->profile_source_loc;
                r = deliver_update_override(d, vm);
                if (r < 0)
                        return r;
                deliver_decide_input(vm, &in);
                r = decide(d->decider, &in, &dec);
                if (r < 0)
                        return r;
                if (dec.rule_loc)
                        srcloc_format(dec.rule_loc, now_loc, sizeof(now_loc));
                deliver_source_text(dec.source, dec.rule_loc ? now_loc : NULL, now_by, sizeof(now_by));
                audit_held_say(&vm->attach_said);       /* the attach, before what ends after it */
                audit_record_extra(LOG_NOTICE, MID_RUNTIME, vm->id, dec.profile, vm->pid, &x,
                                   "Grant of profile '%s' to VM %s%s%s%s expired%s; now '%s' (from %s)", e->profile,
                                   vm->id, vm->name ? " (" : "", strempty(vm->name), vm->name ? ")" : "", when,
                                   dec.profile, now_by);
                compiled_filter_unref(dec.filter);
                vms[(*n)++] = vm;
                found++;
        }
        if (found == 0)
                audit_record(LOG_NOTICE, MID_RUNTIME, NULL, NULL, 0,
                             "Grant of profile '%s' to %s expired%s; no VM of it is running", e->profile,
                             overrides_describe(e->key, bound, sizeof(bound)), when);
        return 0;
}

static int save_runtime(struct deliver *d) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (asprintf(&path, "%s/state.yaml", d->runtime_dir) < 0)
                return -ENOMEM;
        r = state_save(path, &d->decider->runtime);
        if (r < 0)
                /* Still ended here; the next start finds it in the file,
                 * expired, and ends it again. */
                return log_error_errno(r, "Failed to write %s after a grant ended: %m", path);
        return 0;
}

void deliver_grants_expire(struct deliver *d, bool at_start) {
        struct state *rt = &d->decider->runtime;
        _cleanup_free_ struct state_entry *ended = NULL;
        _cleanup_free_ struct vm **vms = NULL;
        uint64_t now = now_usec(CLOCK_REALTIME);
        size_t n_ended = 0, n = 0, kept = 0;
        int r = 0;

        assert(d);
        ended = calloc(rt->n + 1, sizeof(*ended));
        vms = calloc(d->registry->n_vms + 1, sizeof(*vms));
        if (!ended || !vms) {
                log_error_errno(ENOMEM, "Failed to end the time-limited grants: %m");
                goto arm;
        }
        /* Every ended grant out of the store first: what a VM gets now is
         * what is beneath, never another grant that ended too. */
        for (size_t i = 0; i < rt->n; i++)
                if (rt->v[i].expires_usec > 0 && rt->v[i].expires_usec <= now)
                        ended[n_ended++] = rt->v[i];
                else
                        rt->v[kept++] = rt->v[i];       /* in order (state.h) */
        rt->n = kept;
        if (n_ended > 0)
                (void) save_runtime(d);
        /* A VM holds one override, so it is in one ended grant at most. */
        for (size_t i = 0; i < n_ended; i++) {
                if (r >= 0)
                        r = end_grant(d, &ended[i], at_start, vms, &n);
                free(ended[i].key);
                free(ended[i].profile);
        }
        if (r < 0)
                log_error_errno(r, "Failed to end a time-limited grant: %m");
        /* Pushed even where the filter is the same, as a reset is: the VM's
         * answer says what is in force now. */
        if (n > 0 && (r = deliver_apply_batched(d, vms, n, true, NULL)) < 0)
                log_error_errno(r, "Failed to push the VMs' filters after a grant ended: %m");
arm:
        (void) deliver_grants_arm(d);
}
