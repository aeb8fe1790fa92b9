/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-auth.c — who may change what (uid 0, from the bus's credentials of
 * the sender), and the replies of changes, which wait for the VMMs.
 */
#include <assert.h>

#include "bus-errors.h"
#include "bus.h"
#include "waiter.h"

/* dbus-daemon never reuses a unique name while it runs, so an entry of the
 * cache cannot come to mean another client; it saves a synchronous
 * GetConnectionCredentials round trip to the bus on every changing call of
 * the same client. */
static int sender_uid(struct bus *b, sd_bus_message *msg, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender = sd_bus_message_get_sender(msg);
        int r;

        if (sender && strlen(sender) < sizeof(b->senders[0].name))
                for (unsigned i = 0; i < SENDER_CACHE_SIZE; i++)
                        if (streq(b->senders[i].name, sender)) {
                                *ret = b->senders[i].uid;
                                return 0;
                        }
        r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, ret);
        if (r < 0)
                return r;
        if (sender && sender[0] == ':' && strlen(sender) < sizeof(b->senders[0].name)) {
                struct sender_cache *c = &b->senders[b->senders_next++ % SENDER_CACHE_SIZE];

                strcpy(c->name, sender);
                c->uid = *ret;
        }
        return 0;
}

int bus_check_manage(struct bus *b, sd_bus_message *msg, sd_bus_error *error) {
        uid_t uid;
        int r;

        assert(b);
        assert(msg);
        r = sender_uid(b, msg, &uid);
        if (r < 0)
                return bus_error_no_creds(error, r);
        if (uid != 0)
                return bus_error_access_denied(error, uid);
        return 1;
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
