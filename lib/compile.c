/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* compile.c — STUB */
#include "compile.h"

void compiled_filter_free(struct compiled_filter *f) {}
int filter_compile(const struct policy *p, const char *name, const struct host_pmu *pmu, const struct kvm_support *k, struct compiled_filter **ret, struct diags *d) { return -ENOSYS; }
int filter_lockdown(const char *profile_name, struct compiled_filter **ret) { return -ENOSYS; }
bool compiled_filter_equal(const struct compiled_filter *a, const struct compiled_filter *b) { return false; }
bool compiled_filter_allows(const struct compiled_filter *f, uint64_t code) { return false; }
int filter_entry_describe(const struct compiled_filter *f, uint64_t word, char *buf, size_t size) { return -ENOSYS; }
