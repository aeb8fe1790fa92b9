/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * metrics.h — the daemon's figures for a fleet, as a file in Prometheus'
 * text exposition format for prometheus-node-exporter's textfile collector
 * (--metrics-file; pmufilterd(8), METRICS).  A registry subscriber owned by
 * manager.c, on top of every layer: it reads the registry's counts and the
 * decider, counts the events it hears, and writes the file atomically when
 * something changed, at most once per METRICS_INTERVAL_USEC.  No layer
 * below calls it; while nothing happens no timer runs.
 */
#pragma once

#include <stdio.h>
#include <systemd/sd-event.h>

#include "decide.h"
#include "registry.h"

/* The first change after a quiet spell is written on the next idle turn
 * of the loop; later ones at most this often. */
#define METRICS_INTERVAL_USEC (5 * 1000 * 1000ULL)

struct metrics {
        sd_event *event;
        struct registry *registry;
        const struct decider *decider;
        char *path;                     /* NULL: no metrics at all */

        sd_event_source *timer;         /* the next write, armed by a change */
        uint64_t last_write_usec;       /* CLOCK_MONOTONIC, 0: never written */
        int write_error;                /* of the last write (said once), 0 ok */

        /* Counted since the daemon started. */
        uint64_t applies;               /* APPLIED ok (a VMM's or an injection) */
        uint64_t failures;              /* APPLIED with an error, APPLYs left unanswered */
        uint64_t reloads_ok, reloads_failed;
        uint64_t last_reload_usec;      /* CLOCK_REALTIME of the last reload's end, 0: none */
        bool last_reload_failed;
};

/* path NULL: off (nothing subscribed, nothing written). */
int metrics_init(struct metrics *m, sd_event *e, struct registry *r, const struct decider *d, const char *path);
/* Something changed that the registry's events do not say (start-up). */
void metrics_changed(struct metrics *m);
/* Stop, and remove the file: a stopped daemon's figures are no figures. */
void metrics_done(struct metrics *m);

/* The whole file, into f.  -EIO if f failed. */
int metrics_format(const struct metrics *m, FILE *f);
/* s as a label value (between the quotes): \ " and newline escaped. */
void metrics_print_label_value(FILE *f, const char *s);
