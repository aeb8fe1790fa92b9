/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pmufilter-client.h — the VMM side of pmufilterd (pmufilterd-vmm(7)).
 *
 * libpmufilter-client lets a VMM hand its KVM VM to pmufilterd and apply the
 * PMU event filter the daemon decides.  It depends on libc only.  Link with
 * `pkg-config --cflags --libs libpmufilter-client`.
 *
 * Why the VMM applies the filter itself: KVM refuses VM ioctls from any
 * process but the one that created the VM, so the daemon only decides; the
 * library issues KVM_SET_PMU_EVENT_FILTER (and, for profiles with `pmu: off`,
 * KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY, KVM_PMU_CAP_DISABLE)) on the VMM's
 * own VM fd, with exactly the bytes the daemon sent, and reports the
 * kernel's answer back.
 *
 * Use:
 *
 *     vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
 *     struct pmufilter_attach_args a = PMUFILTER_ATTACH_ARGS_INIT;
 *     a.name = "vm-123";
 *     r = pmufilter_attach(vm_fd, &a, &session);   // before creating vCPUs
 *     if (r < 0) { fprintf(stderr, "%s\n", pmufilter_last_error()); exit(1); }
 *     ... create vCPUs; pmufilter_session_set_vcpus(session, n);
 *     ... add pmufilter_session_fd(session) to the event loop (POLLIN);
 *     ... when readable: pmufilter_session_process(session);
 *     ... at VM teardown: pmufilter_session_free(session); close(vm_fd);
 *
 * Threads: a session is not locked; use it from one thread at a time.  Any
 * thread of the process that created the VM may use it (that is the kernel's
 * rule).  pmufilter_last_error() is per thread.
 *
 * Errors are returned as negative errno values.  Every failing call also
 * leaves a one-line description in pmufilter_last_error().
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pmufilter_session;

/* Default socket of pmufilterd; $PMUFILTER_SOCKET overrides it. */
#define PMUFILTER_SOCKET_DEFAULT "/run/pmufilterd/vmm.sock"
/* Default time to wait for the daemon's first answer. */
#define PMUFILTER_TIMEOUT_MS_DEFAULT 5000

struct pmufilter_attach_args {
        size_t size;                    /* sizeof(struct pmufilter_attach_args): lets the
                                         * struct grow without breaking old callers; fields
                                         * past size count as zero */
        const char *socket_path;        /* NULL: $PMUFILTER_SOCKET, else PMUFILTER_SOCKET_DEFAULT;
                                         * a leading '@' names an abstract socket */
        const char *name;               /* NAME=, NULL: none */
        const char *uuid;               /* UUID=, NULL: none; 8-4-4-4-12 hex digits */
        const char *const *labels;      /* "key=value" strings, NULL-terminated; key is
                                         * [A-Za-z0-9_.-]+, at most 64 labels */
        unsigned vcpus;                 /* vCPUs the VM already has (normally 0) */
        const char *client;             /* CLIENT=: "library" (NULL) or "preload" */
        int timeout_ms;                 /* <= 0: PMUFILTER_TIMEOUT_MS_DEFAULT */
};

#define PMUFILTER_ATTACH_ARGS_INIT { .size = sizeof(struct pmufilter_attach_args) }

/*
 * Hand VM fd vm_fd to pmufilterd and apply its first filter.
 *
 * Connects to the socket, checks that its listener is pmufilterd's uid
 * (pmufilterd-vmm(7), TRUST), sends ATTACH with vm_fd (SCM_RIGHTS; the daemon
 * checks it and closes its copy at once), waits up to timeout_ms for the
 * daemon's APPLY or ERROR, applies the APPLY to vm_fd and answers APPLIED.
 * Call it after KVM_CREATE_VM and before creating vCPUs: `pmu: off` can only
 * take effect on a VM without vCPUs.
 *
 * Returns 0 and a session in *ret only when the kernel accepted the filter.
 * Otherwise *ret is untouched, the connection is closed (the daemon records
 * the VM as failed or detached) and the VMM should not run the VM:
 *   -E...      the errno of KVM_SET_PMU_EVENT_FILTER (e.g. -EINVAL, -E2BIG),
 *              also reported to the daemon in APPLIED;
 *   -E...      the ERRNO of the daemon's ERROR (attach refused), with its
 *              MESSAGE in pmufilter_last_error();
 *   -EPERM     the socket's listener is not pmufilterd's uid (SO_PEERCRED:
 *              0, or the build's daemon_uid); nothing was sent to it;
 *   -ETIMEDOUT no answer within timeout_ms;
 *   -ENOENT, -ECONNREFUSED, -EACCES ...  the socket could not be reached;
 *   -EBADMSG   the daemon sent something malformed;
 *   -EINVAL    bad arguments (a label without '=', an unknown client, ...).
 *
 * The session keeps the fd *number* vm_fd, not a duplicate: the library must
 * never keep a VM alive beyond its owner.  The caller promises that vm_fd
 * stays open, and refers to that VM, until pmufilter_session_free().
 * The strings in args are copied.  args may be NULL (all defaults).
 */
int pmufilter_attach(int vm_fd, const struct pmufilter_attach_args *args,
                     struct pmufilter_session **ret);

/*
 * A file descriptor to poll for POLLIN: readable when the daemon pushed a
 * change or hung up, or when a reconnection is due.  It stays the same
 * number for the session's life, across reconnections (it is an epoll fd,
 * made at the first call: a session never polled costs no descriptor but
 * its connection).  Owned by the session: do not close it.  A negative
 * errno when it cannot be made (recorded).
 */
int pmufilter_session_fd(struct pmufilter_session *s);

/*
 * Handle what is pending, without blocking on the daemon (except while
 * re-attaching, bounded by timeout_ms).  Every APPLY received is applied to
 * the VM and answered with APPLIED.  Returns the number of filters the
 * kernel accepted (> 0), 0 if there was nothing to do, or a negative errno:
 * the errno of a refused filter (the kernel keeps the previous one; the
 * session stays usable), or why the session was lost and could not be
 * re-established yet.
 *
 * A lost session (the daemon hung up, sent ERROR or garbage) is re-attached
 * at once: connect, check the listener's uid as pmufilter_attach() does,
 * ATTACH with the current vCPU count, apply the new APPLY.
 * If that fails, it is retried when pmufilter_session_fd() next becomes
 * readable (back-off from 100 ms to 10 s); meanwhile the last filter stays
 * in the kernel.
 */
int pmufilter_session_process(struct pmufilter_session *s);

/*
 * Tell the session how many vCPUs the VM has now, so that a re-ATTACH
 * reports it (the daemon must not expect `pmu: off` to work once vCPUs
 * exist).  Returns 0.
 */
int pmufilter_session_set_vcpus(struct pmufilter_session *s, unsigned vcpus);

/* Send DETACH, close the connection and free the session.  The VM fd is
 * not touched.  NULL is allowed. */
void pmufilter_session_free(struct pmufilter_session *s);

/* What the last APPLY said and what the kernel answered. */
const char *pmufilter_session_profile(struct pmufilter_session *s);    /* PROFILE=, or NULL */
const char *pmufilter_session_vm_id(struct pmufilter_session *s);      /* the daemon's VM=, or NULL */
uint64_t pmufilter_session_serial(struct pmufilter_session *s);        /* SERIAL= of the last APPLY */
int pmufilter_session_apply_errno(struct pmufilter_session *s);        /* 0, or errno of the filter ioctl */
/* errno of disabling the vPMU for the last APPLY: 0 done, > 0 refused (EBUSY
 * when vCPUs already existed, so it was not tried), -1 when that APPLY did
 * not ask for PMU=off. */
int pmufilter_session_pmu_errno(struct pmufilter_session *s);
/* Is the session connected to the daemon right now? 1 or 0. */
int pmufilter_session_connected(struct pmufilter_session *s);

/* A one-line description of the last failure of a pmufilter_* call in this
 * thread (the daemon's ERROR MESSAGE, or what the library was doing and
 * why it failed); "" when none.  Valid until the next call in this thread. */
const char *pmufilter_last_error(void);

#ifdef __cplusplus
}
#endif
