/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lint-shared.h — the leak lint: a tenant-tier profile whose compiled
 * allowlist lets a guest count an event that observes what other tenants
 * share (shared-events.h).  Run by filter_compile(), so that `pmufilterctl
 * check` and the daemon's load and reload report the same warnings
 * (pmufilterd.yaml(5), "The leak lint").
 */
#pragma once

#include "compile.h"

/*
 * Warn, at each include entry of f that allows a table event the profile's
 * acknowledge_shared (its own and its ancestors') does not acknowledge; a
 * note for those it does.  f is prof's filter compiled for pmu; words[i]
 * (in f's form) was compiled from the policy entry specs[i], n of them,
 * before duplicates were dropped, so that every spelling of an event is
 * reported where it is written.  An entry that an ancestor lists is left to
 * that ancestor's own lint where it is a linted (tenant, pmu on) profile
 * too, so each entry is reported once.  0 or -ENOMEM.
 */
int filter_lint_shared(const struct policy *p, const struct profile *prof, const struct host_pmu *pmu,
                       const struct compiled_filter *f, const uint64_t *words,
                       const struct event_spec *const *specs, size_t n, struct diags *d);
