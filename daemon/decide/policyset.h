/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policyset.h — a policy with every profile compiled for this host: what
 * the daemon decides with, swapped in whole on a good reload and never
 * changed in place.  Filters are shared by reference with the VMs that
 * hold them, so a swap never pulls a filter from under an APPLY in flight.
 */
#pragma once

#include "compile.h"
#include "diag.h"
#include "kvm.h"
#include "pmu.h"
#include "policy.h"

struct policy_set {
        struct policy *policy;
        struct compiled_filter **filters;       /* parallel to policy->profiles */
};

/* Compile every profile of policy (taken on success) for pmu and kvm.
 * Errors and warnings go to d. */
int policy_set_compile(struct policy *policy, const struct host_pmu *pmu, const struct kvm_support *kvm,
                       struct diags *d, struct policy_set **ret);
struct policy_set *policy_set_free(struct policy_set *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct policy_set *, policy_set_free)

/* Index of the profile called name, or -ENOENT. */
int policy_set_find(const struct policy_set *s, const char *name);

/* How new would loosen old in ways an operator rarely means (no profiles
 * any more, unmanaged: kill to warn, adopt: ptrace to none, a tenant-tier
 * default replaced by a trusted one), one sentence each into *ret (NULL:
 * none).  -ENOMEM. */
int policy_set_loosenings(const struct policy_set *old, const struct policy_set *new, char ***ret);
