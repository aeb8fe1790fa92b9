/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * verbs-bus.c — the verbs that talk to pmufilterd over D-Bus (DESIGN §8):
 * status, list, show, profile list|show|set|reset, reload, reapply, monitor.
 *
 * Placeholders until the daemon's bus API exists: each says so and fails.
 * To implement one, replace its body; the verb table in pmufilterctl.c has
 * already checked the argument count and that only options flagged for the
 * verb were given (o->host, o->bus_address, o->json, o->runtime).
 */
#include "output.h"
#include "verbs.h"

static int bus_missing(const char *verb) {
        log_error("'%s' needs the daemon's D-Bus API, which this build does not have yet", verb);
        return -EOPNOTSUPP;
}

int verb_status(int argc, char *argv[], const struct ctl_options *o) {
        return bus_missing("status");
}

int verb_list(int argc, char *argv[], const struct ctl_options *o) {
        return bus_missing("list");
}

int verb_show(int argc, char *argv[], const struct ctl_options *o) {
        return bus_missing("show");
}

int verb_profile_list(int argc, char *argv[], const struct ctl_options *o) {
        return bus_missing("profile list");
}

int verb_profile_show(int argc, char *argv[], const struct ctl_options *o) {
        return bus_missing("profile show");
}

int verb_profile_set(int argc, char *argv[], const struct ctl_options *o) {
        return bus_missing("profile set");
}

int verb_profile_reset(int argc, char *argv[], const struct ctl_options *o) {
        return bus_missing("profile reset");
}

int verb_reload(int argc, char *argv[], const struct ctl_options *o) {
        return bus_missing("reload");
}

int verb_reapply(int argc, char *argv[], const struct ctl_options *o) {
        return bus_missing("reapply");
}

int verb_monitor(int argc, char *argv[], const struct ctl_options *o) {
        return bus_missing("monitor");
}
