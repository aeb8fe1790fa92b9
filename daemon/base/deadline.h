/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * deadline.h — one oneshot sd-event timer for the earliest of many
 * deadlines (VMs to attach, queue entries to run late), moved only when a
 * deadline comes before the one it is armed for.  A deadline that goes
 * (its work done by other means) leaves the timer as it is: it fires at
 * most once for nothing, and its handler arms it for what is left.  Moving
 * it on every change would cost a timerfd_settime() per VM, and a wake-up
 * per VM when VMs come and go faster than the timeout
 * (docs/architecture.md, "The life of one VM").
 */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

/* Have the timer fire no later than due.  *armed: when it fires now (0: off). */
static inline void deadline_arm(sd_event_source *s, uint64_t *armed, uint64_t due) {
        if (!s || (*armed != 0 && *armed <= due))
                return;
        (void) sd_event_source_set_time(s, due);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        *armed = due;
}

/* First thing in the timer's handler: a oneshot is off once it fired. */
static inline void deadline_fired(uint64_t *armed) {
        *armed = 0;
}
