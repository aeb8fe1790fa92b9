/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* policy.c — STUB: owned by the policy-loader work. */
#include "policy.h"

int policy_new(struct policy **ret) { return -ENOSYS; }
void policy_free(struct policy *p) {}
struct profile *policy_find_profile(const struct policy *p, const char *name) { return NULL; }
const char *tier_to_string(enum tier t) { return "unset"; }
enum tier profile_effective_tier(const struct policy *p, const struct profile *prof) { return TIER_UNSET; }
enum fixed_mode profile_effective_fixed(const struct policy *p, const struct profile *prof, uint32_t *ret_bitmap) { return FIXED_AUTO; }
enum pmu_mode profile_effective_pmu(const struct policy *p, const struct profile *prof) { return PMU_ON; }
