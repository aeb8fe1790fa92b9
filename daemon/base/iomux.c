/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iomux.c — every ready VMM-facing fd of a wake-up in one dispatch
 * (iomux.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "iomux.h"
#include "log.h"

struct iomux {
        sd_event *loop;
        sd_event_source *source;        /* the nested epoll fd, in loop */
        int fd;
        unsigned n_entries;
        bool full;                      /* the last round read IOMUX_ROUND_MAX fds */
        bool dispatching;
        /* This round's entries in rank order, with their events; an entry
         * removed or disabled meanwhile is NULL. */
        struct iomux_entry *round[IOMUX_ROUND_MAX];
        uint32_t revents[IOMUX_ROUND_MAX];
        size_t n_round;
        struct iomux *next;
};

/* One loop, one mux, in the daemon; a list for the tests' loops. */
static struct iomux *muxes;

static void mux_free(struct iomux *m) {
        struct iomux **p;

        for (p = &muxes; *p != m; p = &(*p)->next)
                ;
        *p = m->next;
        sd_event_source_disable_unref(m->source);
        if (m->fd >= 0)
                close(m->fd);
        sd_event_unref(m->loop);
        free(m);
}

static int on_ready(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct iomux *m = userdata;
        struct epoll_event evs[IOMUX_ROUND_MAX];
        int n;

        n = epoll_wait(m->fd, evs, IOMUX_ROUND_MAX, 0);
        if (n < 0) {
                /* Our own epoll fd with no timeout: only a bug fails here.
                 * Returning the error would turn this source off for good. */
                log_error_errno(errno, "epoll_wait() on the VMM-facing fds failed: %m");
                return 0;
        }
        m->full = n == IOMUX_ROUND_MAX;
        /* In rank order, in the kernel's order within a rank. */
        m->n_round = 0;
        for (int i = 0; i < n; i++) {
                struct iomux_entry *e = evs[i].data.ptr;
                size_t j = m->n_round++;

                for (; j > 0 && m->round[j - 1]->rank > e->rank; j--) {
                        m->round[j] = m->round[j - 1];
                        m->revents[j] = m->revents[j - 1];
                }
                m->round[j] = e;
                m->revents[j] = evs[i].events;
                e->pending = true;
        }
        m->dispatching = true;
        for (size_t i = 0; i < m->n_round; i++) {
                struct iomux_entry *e = m->round[i];

                if (!e)
                        continue;
                m->round[i] = NULL;
                e->pending = false;
                e->handler(e, m->revents[i]);
        }
        m->dispatching = false;
        m->n_round = 0;
        if (m->n_entries == 0)
                mux_free(m);
        return 0;
}

static int mux_get(sd_event *loop, struct iomux **ret) {
        struct iomux *m;
        int r;

        for (m = muxes; m && m->loop != loop; m = m->next)
                ;
        if (m) {
                *ret = m;
                return 0;
        }
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->loop = sd_event_ref(loop);
        m->next = muxes;
        muxes = m;
        m->fd = epoll_create1(EPOLL_CLOEXEC);
        if (m->fd < 0) {
                r = -errno;
                mux_free(m);
                return r;
        }
        r = sd_event_add_io(loop, &m->source, m->fd, EPOLLIN, on_ready, m);
        if (r < 0) {
                mux_free(m);
                return r;
        }
        (void) sd_event_source_set_description(m->source, "vmm-fds");
        *ret = m;
        return 0;
}

static int ctl(struct iomux_entry *e, int op) {
        struct epoll_event ev = { .events = e->events, .data.ptr = e };

        return epoll_ctl(e->mux->fd, op, e->fd, &ev) < 0 ? -errno : 0;
}

/* Not to be handed its event in this round. */
static void drop_from_round(struct iomux_entry *e) {
        struct iomux *m = e->mux;

        if (!e->pending)
                return;
        e->pending = false;
        for (size_t i = 0; i < m->n_round; i++)
                if (m->round[i] == e)
                        m->round[i] = NULL;
}

int iomux_add(sd_event *loop, struct iomux_entry *e) {
        struct iomux *m = NULL;
        int r;

        assert(loop);
        assert(e);
        assert(e->handler);
        assert(!e->mux);
        r = mux_get(loop, &m);
        if (r < 0)
                return r;
        e->mux = m;
        e->pending = false;
        r = ctl(e, EPOLL_CTL_ADD);
        if (r < 0) {
                e->mux = NULL;
                if (m->n_entries == 0 && !m->dispatching)
                        mux_free(m);
                return r;
        }
        e->enabled = true;
        m->n_entries++;
        return 0;
}

void iomux_remove(struct iomux_entry *e) {
        struct iomux *m;

        if (!e || !e->mux)
                return;
        m = e->mux;
        drop_from_round(e);
        if (e->enabled)
                (void) ctl(e, EPOLL_CTL_DEL);
        e->mux = NULL;
        e->enabled = false;
        if (--m->n_entries == 0 && !m->dispatching)
                mux_free(m);
}

int iomux_set_enabled(struct iomux_entry *e, bool enabled) {
        int r;

        assert(e);
        assert(e->mux);
        if (e->enabled == enabled)
                return 0;
        if (!enabled)
                drop_from_round(e);
        r = ctl(e, enabled ? EPOLL_CTL_ADD : EPOLL_CTL_DEL);
        if (r < 0)
                return r;
        e->enabled = enabled;
        return 0;
}

int iomux_rearm(struct iomux_entry *e) {
        assert(e);
        assert(e->mux);
        return e->enabled ? ctl(e, EPOLL_CTL_MOD) : 0;
}

void iomux_handled(struct iomux_entry *e) {
        if (e && e->mux)
                drop_from_round(e);
}

bool iomux_maybe_pending(const struct iomux_entry *e) {
        return e && e->mux && e->enabled && (e->pending || e->mux->full);
}
