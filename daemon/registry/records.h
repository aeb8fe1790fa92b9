/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * records.h — what the daemon knows of each VM, kept across its own
 * restart: one append-only log, <runtime dir>/records.  Each VM's record (a
 * small KEY=VALUE text) is appended to it when the event loop has nothing
 * more urgent (at most a second after the change), once however often it
 * changed meanwhile, the records of one batch in one write(); a VM gone
 * appends a line that removes it.  Entries:
 *
 *     R <pid>-<fd> <len>\n<len bytes: the record>
 *     G <pid>-<fd>\n
 *
 * the last entry of an id wins.  Grown to four times its size after the
 * last compaction (64 KiB at least), the log is rewritten whole from the
 * registry.  It is read back as untrusted input, and a record is believed
 * only while its process still runs (same start time) and still holds a VM
 * on that fd.  docs/architecture.md ("The record") and pmufilterd(8),
 * FILES, describe it.
 */
#pragma once

#include <stdio.h>

#include "log.h"
#include "registry.h"
#include "vmqueue.h"

/* A record is a few hundred bytes; 300 events and long claims stay far below. */
#define RECORD_MAX (64 * 1024)

struct records {
        struct registry *registry;
        char *path;                     /* <runtime dir>/records */
        char *legacy_dir;               /* <runtime dir>/vms: a file per VM, before the log */
        int fd;                         /* the log, O_APPEND; -1 until the first write */
        uint64_t size;                  /* its size as we wrote it */
        uint64_t compacted_size;        /* its size after the last compaction */
        bool broken;                    /* a write failed: the next one rewrites it whole */
        /* Entries not written yet (the batch's, and VMs gone), and the VMs
         * whose records they hold: REGISTRY_VM_RECORDED once written. */
        FILE *pending;
        char *pending_buf;
        size_t pending_size;
        struct vm_key *batch;
        size_t n_batch, allocated_batch;
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
/* vm is gone (and still registered): its record no longer counts. */
void records_forget(struct records *rec, const struct vm *vm);

/* Register the VMs of every record that still holds, then rewrite the log
 * with them alone: their identity, claims, decision and last answer as
 * recorded.  The per-VM files of an earlier version (<runtime dir>/vms/)
 * are read first, then removed.  ret: the VMs restored (free() the array);
 * ret_n_records: how many records there were. */
int records_restore(struct records *rec, struct vm ***ret, size_t *ret_n, unsigned *ret_n_records);

/* Parse one record (pure; exposed for the unit tests and the fuzzer).
 * -EINVAL for anything that is not what write_record() writes. */
int record_parse(const char *buf, size_t len, struct vm *vm, enum vm_state *ret_state);

/* Split a log into its entries (pure; exposed for the unit tests and the
 * fuzzer): entry() is called for each in order, with body NULL for a "G"
 * one.  0 when the whole buffer was entries; -ENODATA when the last entry
 * is cut short by the end (a write that died half way), -EBADMSG at any
 * other framing error, or what entry() returned < 0: *ret_good_len (may
 * be NULL) is then where that entry starts, the bytes before it used. */
int records_log_parse(const char *buf, size_t len,
                      int (*entry)(const char *id, const char *body, size_t body_len, void *userdata),
                      void *userdata, size_t *ret_good_len);
