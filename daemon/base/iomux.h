/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iomux.h — the VMM-facing fds of a loop (the uevent socket, the listening
 * socket, every session) under one sd-event source, so that a wake-up
 * handles every one of them that is ready, in rank order, in one dispatch.
 * sd-event dispatches one source per loop iteration, each iteration its
 * own epoll_wait(): a VM's CREATE uevent and its VMM's connect(), ready
 * together, cost two iterations, its session's close and its DESTROY two
 * more (docs/decisions.md, "One event source for the VMM-facing fds").
 *
 * An entry is embedded in its owner's object and added with the owner's
 * loop; the loop's mux (a nested epoll fd) is made with its first entry
 * and goes with its last.  One round reads at most IOMUX_ROUND_MAX ready
 * fds; the nested epoll fd stays readable while more are, and sd-event
 * comes back to it after the sources of higher priority (the bus).  An
 * entry removed or disabled during a round is not handed its event.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define IOMUX_ROUND_MAX 32

/* The order within a round: a connection before what its session says,
 * what sessions say before the uevents.  A VMM says APPLIED, DETACH or
 * hangs up before it closes its VM, whose DESTROY frees its session: read
 * after the DESTROY, those would be lost.  An ATTACH needs its VM's
 * CREATE known first, which the uevent flush in find_vm() ensures: the
 * uevent entry pending in the round makes it read (iomux_maybe_pending()),
 * and a drained socket then needs no handler (iomux_handled()). */
enum {
        IOMUX_RANK_LISTEN,
        IOMUX_RANK_SESSION,
        IOMUX_RANK_UEVENT,
};

struct iomux;
struct iomux_entry;

typedef void (*iomux_handler_t)(struct iomux_entry *e, uint32_t revents);

struct iomux_entry {
        /* set by the owner before iomux_add() */
        int fd;
        uint32_t events;                /* for epoll: EPOLLIN, EPOLLET, ... */
        int rank;                       /* within a round, lower first */
        iomux_handler_t handler;
        void *userdata;

        /* the mux's */
        struct iomux *mux;              /* NULL: not added */
        bool enabled;
        bool pending;                   /* ready in this round, not handled yet */
};

/* Watch e->fd (enabled) in loop's mux. */
int iomux_add(sd_event *loop, struct iomux_entry *e);
/* Stop watching; before the fd is closed.  Nothing if not added. */
void iomux_remove(struct iomux_entry *e);
/* Off: not polled at all (a listening socket out of fds). */
int iomux_set_enabled(struct iomux_entry *e, bool enabled);
/* Edge-triggered: report it again if it is still ready. */
int iomux_rearm(struct iomux_entry *e);
/* e's owner read it to empty in this round (a flush): its handler is not
 * handed the event the round had for it.  Nothing if it had none. */
void iomux_handled(struct iomux_entry *e);
/* Whether e may have been ready when the loop last polled without its
 * handler having run since: ready in this round and not handled yet, or
 * the last round was full (more fds were ready than it read). */
bool iomux_maybe_pending(const struct iomux_entry *e);
