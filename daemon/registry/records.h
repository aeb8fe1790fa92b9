/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * records.h — what the daemon knows of each VM, kept across its own
 * restart: a small KEY=VALUE file per VM under <runtime dir>/vms/<id>,
 * written when the event loop has nothing more urgent (at most a second
 * after the change), once however often it changed meanwhile.  A record is
 * read back as untrusted input and believed only while its process still
 * runs (same start time) and still holds a VM on that fd.  pmufilterd(8),
 * FILES, describes them.
 */
#pragma once

#include "log.h"
#include "registry.h"
#include "vmqueue.h"

struct records {
        struct registry *registry;
        char *dir;                      /* <runtime dir>/vms */
        struct vm_queue queue;
        /* Write failures come in floods (out of fds or space, every VM
         * at once): a few a minute are said, the rest counted. */
        struct ratelimit failed_said;
};

int records_init(struct records *rec, struct registry *r, sd_event *e, const char *runtime_dir);
void records_done(struct records *rec);

/* vm's record is out of date: write it soon (REGISTRY_VM_RECORDED then). */
void records_mark(struct records *rec, struct vm *vm);
/* Write every out-of-date record now (also at exit). */
void records_flush(struct records *rec);
void records_forget(struct records *rec, const struct vm *vm);

/* Register the VMs of every record that still holds (and delete the other
 * records): their identity, claims, decision and last answer as recorded.
 * ret: the VMs restored, in the order found (free() the array);
 * ret_n_records: how many records there were. */
int records_restore(struct records *rec, struct vm ***ret, size_t *ret_n, unsigned *ret_n_records);

/* Parse one record (pure; exposed for the unit tests and the fuzzer).
 * -EINVAL for anything that is not what write_record() writes. */
int record_parse(const char *buf, size_t len, struct vm *vm, enum vm_state *ret_state);
