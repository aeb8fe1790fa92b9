/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proto.h — the VMM protocol codec (pmufilterd-vmm(7)): pure
 * functions between datagrams and typed messages, used by both ends (the
 * daemon parses ATTACH/APPLIED/DETACH and formats APPLY/ERROR; the client
 * library the other way round).  Depends on libc only: the public client
 * library compiles proto.c too, so this header must not include util.h.
 *
 * Wire format: one SOCK_SEQPACKET datagram per message, at most
 * PROTO_MSG_MAX bytes of UTF-8 text; the first line is "PMUFILTER/1 <VERB>",
 * every further line "KEY=VALUE", each line ended by '\n' (the last '\n' may
 * be missing).  Keys are [A-Z0-9_.]+, except label keys "LABEL.<key>" whose
 * <key> is [A-Za-z0-9_.-]+.  Values are UTF-8 without control characters.
 * Unknown keys are ignored, but must still be well formed and unique.
 *
 * Parsers are strict: anything else is -EBADMSG, with a one-line reason
 * (no newline, safe to send back as ERROR's MESSAGE) written to the
 * caller's buffer.  Formatters refuse (-EINVAL) to produce a message their
 * own parser would reject, so what one side sends the other side accepts.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC "PMUFILTER/1"
#define PROTO_MSG_MAX 16384             /* bytes per datagram (pmufilterd-vmm(7)) */
#define PROTO_EVENTS_MAX 1024           /* entries in one APPLY; the kernel takes 300 */
#define PROTO_LABELS_MAX 64             /* LABEL.<key>= lines in one ATTACH */
#define PROTO_REASON_MAX 256            /* a reason buffer that is never too short */
#define PROTO_ERRNO_MAX 4095            /* the kernel's MAX_ERRNO */

enum proto_verb {
        PROTO_ATTACH,                   /* VMM -> daemon, with the VM fd */
        PROTO_APPLY,                    /* daemon -> VMM */
        PROTO_APPLIED,                  /* VMM -> daemon */
        PROTO_ERROR,                    /* daemon -> VMM, then the daemon closes */
        PROTO_DETACH,                   /* VMM -> daemon; closing is the same */
        _PROTO_VERB_MAX,
};

enum proto_client {
        PROTO_CLIENT_LIBRARY,           /* CLIENT=library (also when absent) */
        PROTO_CLIENT_PRELOAD,           /* CLIENT=preload */
        _PROTO_CLIENT_MAX,
};

const char *proto_verb_to_string(enum proto_verb v);            /* "ATTACH", NULL if out of range */
const char *proto_client_to_string(enum proto_client c);        /* "library", NULL if out of range */

struct proto_label {
        char *key;                      /* without the "LABEL." prefix */
        char *value;
};

/* ATTACH.  Parsed: every pointer owned (free with proto_attach_done()).
 * To format: fill with borrowed pointers, no need to free. */
struct proto_attach {
        int vmfd;                       /* VMFD=, required: the fd number in the VMM */
        unsigned vcpus;                 /* VCPUS=, 0 when absent */
        char *name;                     /* NAME=, NULL when absent; never empty */
        char *uuid;                     /* UUID=, canonical 8-4-4-4-12 hex, lowercased by the parser */
        enum proto_client client;       /* CLIENT= */
        struct proto_label *labels;     /* LABEL.<key>=, sorted by key, unique */
        size_t n_labels;                /* <= PROTO_LABELS_MAX */
};

/* APPLY: the kernel's struct kvm_pmu_event_filter, field for field. */
struct proto_apply {
        char *vm;                       /* VM=, the daemon's VM id; NULL when absent */
        uint64_t serial;                /* SERIAL=, required */
        char *profile;                  /* PROFILE=, NULL when absent */
        bool pmu_off;                   /* PMU=off: disable the vPMU first (if no vCPUs yet) */
        uint32_t action;                /* ACTION=allow|deny -> KVM_PMU_EVENT_ALLOW/_DENY, required */
        uint32_t flags;                 /* FLAGS=<decimal u32>, required */
        uint32_t fixed_counter_bitmap;  /* FIXED=0x<hex u32>, required */
        uint64_t *events;               /* EVENTS=0x<hex>,..., required, may be empty */
        size_t n_events;                /* <= PROTO_EVENTS_MAX */
};

/* APPLIED: the VMM's answer to one APPLY. */
struct proto_applied {
        uint64_t serial;                /* SERIAL=, required: the APPLY answered */
        int error;                      /* ERRNO=, required: 0 or the ioctl's errno (positive) */
        bool has_pmu_error;             /* PMU_ERRNO= present (sent when the APPLY said PMU=off) */
        int pmu_error;                  /* 0 or errno of KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY) */
};

/* ERROR: the daemon refuses; it closes the session after sending it. */
struct proto_error {
        int error;                      /* ERRNO=, required, 1..PROTO_ERRNO_MAX (positive) */
        char *message;                  /* MESSAGE=, NULL when absent */
};

void proto_attach_done(struct proto_attach *m);         /* frees members, zeroes; NULL-safe */
void proto_apply_done(struct proto_apply *m);
void proto_error_done(struct proto_error *m);

/*
 * Parsing.  buf/len is one received datagram (need not be NUL-terminated).
 * Each parser checks the verb line too.  Returns 0 and fills *ret; or
 * -EBADMSG (malformed, reason written) or -ENOMEM.  *ret is written only on
 * success.  reason may be NULL; else it gets a NUL-terminated one-liner
 * (reason_size bytes at most; PROTO_REASON_MAX always suffices).
 */
int proto_parse_verb(const void *buf, size_t len, enum proto_verb *ret,
                     char *reason, size_t reason_size);
int proto_parse_attach(const void *buf, size_t len, struct proto_attach *ret,
                       char *reason, size_t reason_size);
int proto_parse_apply(const void *buf, size_t len, struct proto_apply *ret,
                      char *reason, size_t reason_size);
int proto_parse_applied(const void *buf, size_t len, struct proto_applied *ret,
                        char *reason, size_t reason_size);
int proto_parse_error(const void *buf, size_t len, struct proto_error *ret,
                      char *reason, size_t reason_size);
int proto_parse_detach(const void *buf, size_t len, char *reason, size_t reason_size);

/*
 * Formatting into buf (size bytes).  Returns the message length (no NUL is
 * counted; one is written when room is left), -ENOBUFS when buf is too
 * small, -EMSGSIZE when the message would exceed PROTO_MSG_MAX (e.g. 1024
 * full-width masked events), -EINVAL when a field would not parse back
 * (a value with a control character, a bad label key, errno out of range,
 * too many events or labels, ...).
 */
int proto_format_attach(char *buf, size_t size, const struct proto_attach *m);
int proto_format_apply(char *buf, size_t size, const struct proto_apply *m);
int proto_format_applied(char *buf, size_t size, const struct proto_applied *m);
int proto_format_error(char *buf, size_t size, const struct proto_error *m);
int proto_format_detach(char *buf, size_t size);

/* MESSAGE= text from anything: control characters and invalid UTF-8
 * become '?', cut to fit size (NUL included).  For the daemon's ERROR
 * messages, which may quote things the peer sent. */
void proto_sanitize_message(char *dst, size_t size, const char *src);
