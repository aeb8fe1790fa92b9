/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * manager.h — the daemon as a whole: one instance of each layer, the
 * start-up order, the status line.  The layers, bottom up (each a folder and
 * a static library that links only against those below it; see
 * docs/architecture.md):
 *   base/      logging, audit records
 *   detect/    uevents, /proc scan, process facts
 *   registry/  struct vm, its states and indexes, the records, listeners
 *   decide/    pure: policy set, overrides, rules, the decision
 *   deliver/   VMM sessions, adoption, batches, reload, fd store
 *   bus/       the D-Bus edge, a subscriber of the registry
 * and on top, beside this file, metrics.c (the metrics file, a subscriber
 * too).
 */
#pragma once

#include <systemd/sd-event.h>

#include "bus.h"
#include "decide.h"
#include "deliver.h"
#include "kvm.h"
#include "metrics.h"
#include "pmu.h"
#include "records.h"
#include "registry.h"

struct manager_options {
        const char *config_path;        /* --config, or NULL for /etc/pmufilterd */
        const char *socket_path;        /* --socket, or NULL for settings.socket */
        const char *bus_address;        /* NULL: the system bus */
        bool no_bus;
        const char *state_dir;          /* persistent changes: /var/lib/pmufilterd */
        const char *runtime_dir;        /* runtime changes, VM records: /run/pmufilterd */
        const char *metrics_file;       /* --metrics-file, NULL: none */
};

struct manager {
        sd_event *event;
        struct manager_options options; /* strings owned */

        struct host_pmu pmu;
        struct kvm_support kvm;

        struct registry registry;
        struct records records;
        struct decider decider;
        struct deliver deliver;
        struct bus bus;
        bool have_bus;

        struct metrics metrics;

        sd_event_source *status_event;  /* coalesces STATUS= updates */
        sd_event_source *audit_event;   /* audit records said later (log.h) */
};

/* fdstore: what systemd passed, taken before the event loop existed. */
int manager_new(sd_event *e, const struct manager_options *o, struct fdstore *fdstore, struct manager **ret);
struct manager *manager_free(struct manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct manager *, manager_free)

/* Everything up, in order: the policy (or lockdown), the changes made over
 * D-Bus, the bus, the VMM socket, the VMs of the last run with their
 * sessions, then the uevents and the /proc scan. */
int manager_startup(struct manager *m);
