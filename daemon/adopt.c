/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * adopt.c — settings.adopt: ptrace.  A VM whose VMM never attached gets its
 * filter by injection (inject.c): the VMM's own thread issues the ioctl.
 * The decision is made as for any VM, with `client: ptrace`; `pmu: off`
 * cannot be honoured after creation, so such profiles give their fallback
 * (an empty allowlist).  A refusal leaves the VM to settings.unmanaged.
 */
#include <time.h>

#include "adopt.h"
#include "bus.h"
#include "compile.h"
#include "inject.h"
#include "log.h"
#include "persist.h"
#include "procfacts.h"

/* The event loop waits while a thread is held: keep it short. */
#define ADOPT_TIMEOUT_MS 250

int manager_adopt(struct manager *m, struct vm *vm) {
        struct inject_result res;
        const struct compiled_filter *f;
        char detail[64];
        int r;

        vm->client = "ptrace";
        r = manager_decide(m, vm);
        if (r < 0)
                return r;
        f = vm->filter;
        /* The pid may have been reused since we saw it: inject_pmu_filter()
         * checks the fd, not the process. */
        if (proc_starttime(vm->pid) != vm->starttime)
                return -ESRCH;
        r = inject_pmu_filter(vm->pid, vm->fd, f->action, f->flags, f->fixed_counter_bitmap, f->events,
                              f->nevents, ADOPT_TIMEOUT_MS, &res);
        if (r < 0) {
                char *msg = NULL;

                if (asprintf(&msg, "adoption by ptrace refused: %s", res.reason) >= 0) {
                        free(vm->last_error);
                        vm->last_error = msg;
                }
                audit_record(LOG_WARNING, MID_REFUSED, vm->id, vm->profile, vm->pid,
                             "VM %s: not adopted by injection: %s", vm->id, res.reason);
                bus_vm_changed(m, vm);
                return r;
        }

        snprintf(detail, sizeof(detail), "thread %d held %u µs, ", (int) res.tid, res.stopped_us);
        manager_record_result(m, vm, res.error,
                              f->pmu_off ? "pmu: off cannot be honoured after creation: "
                                           "the fallback empty allowlist is in force" : NULL,
                              true, detail);
        return 0;
}
