/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-auth.c — who may change what (uid 0, from the bus's credentials of
 * the sender), and the replies of changes, which wait for the VMMs.
 */
#include <assert.h>

#include "bus-errors.h"
#include "bus.h"
#include "log.h"
#include "waiter.h"

/* dbus-daemon never reuses a unique name while it runs, and a connection
 * belongs to one process, so an entry of the cache cannot come to mean
 * another client; it saves a synchronous GetConnectionCredentials round
 * trip to the bus on every changing call of the same client. */
static int sender_of(struct bus *b, sd_bus_message *msg, struct bus_caller *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender = sd_bus_message_get_sender(msg), *unit = NULL;
        struct bus_caller c = {};
        int r;

        if (sender && strlen(sender) < sizeof(c.sender))
                for (unsigned i = 0; i < SENDER_CACHE_SIZE; i++)
                        if (streq(b->senders[i].sender, sender)) {
                                *ret = b->senders[i];
                                return 0;
                        }
        r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID | SD_BUS_CREDS_UNIT, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &c.uid);
        if (r < 0)
                return r;
        (void) sd_bus_creds_get_pid(creds, &c.pid);
        if (sd_bus_creds_get_unit(creds, &unit) >= 0 && unit)
                snprintf(c.unit, sizeof(c.unit), "%s", unit);
        if (sender)
                snprintf(c.sender, sizeof(c.sender), "%s", sender);
        if (sender && sender[0] == ':' && strlen(sender) < sizeof(c.sender))
                b->senders[b->senders_next++ % SENDER_CACHE_SIZE] = c;
        *ret = c;
        return 0;
}

int bus_check_manage(struct bus *b, sd_bus_message *msg, struct bus_caller *ret_caller, sd_bus_error *error) {
        struct bus_caller c;
        int r;

        assert(b);
        assert(msg);
        r = sender_of(b, msg, &c);
        if (r < 0)
                return bus_error_no_creds(error, r);
        if (c.uid != 0)
                return bus_error_access_denied(error, c.uid);
        if (ret_caller)
                *ret_caller = c;
        return 1;
}

void bus_caller_audit(const struct bus_caller *c, struct audit_extra *x) {
        assert(c);
        assert(x);
        x->have_caller = true;
        x->caller_uid = c->uid;
        x->caller_pid = c->pid;
        x->caller_unit = c->unit[0] ? c->unit : NULL;
        x->caller_sender = c->sender[0] ? c->sender : NULL;
}

static void pending_reply(struct vm_waiter *w, unsigned n_failed, const char *first_error, void *userdata) {
        sd_bus_message *msg = userdata;

        if (n_failed > 0)
                (void) bus_reply_apply_failed(msg, n_failed, first_error);
        else
                (void) sd_bus_reply_method_return(msg, NULL);
}

static void pending_destroy(void *userdata) {
        sd_bus_message_unref(userdata);
}

struct vm_waiter *bus_pending_reply(sd_bus_message *msg) {
        struct vm_waiter *w;

        assert(msg);
        w = vm_waiter_new(pending_reply, pending_destroy, msg);
        if (w)
                sd_bus_message_ref(msg);
        return w;
}
