/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * persist.h — restart without loss (DESIGN §7): every attached VMM's
 * connection is handed to systemd's fd store (FDSTORE=1, FDNAME=
 * session-<vm id>, as journald keeps its stream connections), and each VM's
 * record is kept as a small file under <runtime dir>/vms/.  On start the
 * daemon takes both back; the VMMs notice nothing.
 */
#pragma once

struct manager;
struct vm;

/* vm's record is out of date: it is written when the event loop has
 * nothing more urgent (at most a second later), once however often it
 * changed meanwhile, and after the VMM has its APPLY rather than before.
 * A new session goes to the fd store then too (vm->session_unstored). */
void persist_vm(struct manager *m, struct vm *vm);
/* Write every out-of-date record now (also at exit). */
void persist_flush(struct manager *m);
void persist_forget_vm(struct manager *m, const struct vm *vm);
void persist_store_session(const struct vm *vm, int fd);
void persist_forget_session(const struct vm *vm);

/* Take back the registry and the sessions; call after the policy, the
 * bus and the VMM socket are up, before the watchers start. */
int persist_restore(struct manager *m);
