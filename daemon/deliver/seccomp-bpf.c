/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * seccomp-bpf.c — classic BPF as seccomp runs it: the install-time checks,
 * the interpreter over struct seccomp_data, the kernel's precedence when
 * several filters answer, and reading a stopped task's filters.
 *
 * The checks follow bpf_check_classic() and seccomp_check_filter() rule for
 * rule, so that a program this file refuses is one the kernel would have
 * refused too; a dumped filter that does not check means we misunderstand
 * it, and the caller must then refuse rather than guess.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>

#include "seccomp-bpf.h"

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif
#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif
#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF 0x7fc00000U
#endif
#ifndef SECCOMP_RET_LOG
#define SECCOMP_RET_LOG 0x7ffc0000U
#endif
#ifndef SECCOMP_RET_ACTION_FULL
#define SECCOMP_RET_ACTION_FULL 0xffff0000U
#endif

#define SECCOMP_DATA_SIZE ((uint32_t) sizeof(struct seccomp_data))

static bool is_cond_jump(uint16_t code) {
        switch (code) {
        case BPF_JMP | BPF_JEQ | BPF_K:
        case BPF_JMP | BPF_JEQ | BPF_X:
        case BPF_JMP | BPF_JGE | BPF_K:
        case BPF_JMP | BPF_JGE | BPF_X:
        case BPF_JMP | BPF_JGT | BPF_K:
        case BPF_JMP | BPF_JGT | BPF_X:
        case BPF_JMP | BPF_JSET | BPF_K:
        case BPF_JMP | BPF_JSET | BPF_X:
                return true;
        }
        return false;
}

/* seccomp_check_filter()'s list: everything else is refused at install. */
static bool seccomp_code_allowed(uint16_t code) {
        if (is_cond_jump(code))
                return true;
        switch (code) {
        case BPF_LD | BPF_W | BPF_ABS:
        case BPF_LD | BPF_W | BPF_LEN:
        case BPF_LDX | BPF_W | BPF_LEN:
        case BPF_RET | BPF_K:
        case BPF_RET | BPF_A:
        case BPF_ALU | BPF_ADD | BPF_K:
        case BPF_ALU | BPF_ADD | BPF_X:
        case BPF_ALU | BPF_SUB | BPF_K:
        case BPF_ALU | BPF_SUB | BPF_X:
        case BPF_ALU | BPF_MUL | BPF_K:
        case BPF_ALU | BPF_MUL | BPF_X:
        case BPF_ALU | BPF_DIV | BPF_K:
        case BPF_ALU | BPF_DIV | BPF_X:
        case BPF_ALU | BPF_AND | BPF_K:
        case BPF_ALU | BPF_AND | BPF_X:
        case BPF_ALU | BPF_OR | BPF_K:
        case BPF_ALU | BPF_OR | BPF_X:
        case BPF_ALU | BPF_XOR | BPF_K:
        case BPF_ALU | BPF_XOR | BPF_X:
        case BPF_ALU | BPF_LSH | BPF_K:
        case BPF_ALU | BPF_LSH | BPF_X:
        case BPF_ALU | BPF_RSH | BPF_K:
        case BPF_ALU | BPF_RSH | BPF_X:
        case BPF_ALU | BPF_NEG:
        case BPF_LD | BPF_IMM:
        case BPF_LDX | BPF_IMM:
        case BPF_MISC | BPF_TAX:
        case BPF_MISC | BPF_TXA:
        case BPF_LD | BPF_MEM:
        case BPF_LDX | BPF_MEM:
        case BPF_ST:
        case BPF_STX:
        case BPF_JMP | BPF_JA:
                return true;
        }
        return false;
}

static int check_insn(const struct sock_filter *f, size_t pc, size_t len) {
        if (!seccomp_code_allowed(f->code))
                return -EINVAL;
        switch (f->code) {
        case BPF_ALU | BPF_DIV | BPF_K:
                return f->k == 0 ? -EINVAL : 0;
        case BPF_ALU | BPF_LSH | BPF_K:
        case BPF_ALU | BPF_RSH | BPF_K:
                return f->k >= 32 ? -EINVAL : 0;
        case BPF_LD | BPF_MEM:
        case BPF_LDX | BPF_MEM:
        case BPF_ST:
        case BPF_STX:
                return f->k >= BPF_MEMWORDS ? -EINVAL : 0;
        case BPF_JMP | BPF_JA:
                return f->k >= len - pc - 1 ? -EINVAL : 0;
        case BPF_LD | BPF_W | BPF_ABS:
                /* 32-bit aligned and inside seccomp_data. */
                return f->k >= SECCOMP_DATA_SIZE || (f->k & 3) ? -EINVAL : 0;
        }
        if (is_cond_jump(f->code) && (pc + f->jt + 1 >= len || pc + f->jf + 1 >= len))
                return -EINVAL;
        return 0;
}

/* check_load_and_stores(): a scratch cell must be written on every path
 * before it is read.  Kept as the kernel does it, quirks included (the
 * valid set is not reset after a RET). */
static int check_memory(const struct sock_filter *prog, size_t len, size_t *ret_pc) {
        _cleanup_free_ uint16_t *masks = NULL;
        uint16_t memvalid = 0;

        masks = malloc(len * sizeof(*masks));
        if (!masks)
                return -ENOMEM;
        memset(masks, 0xff, len * sizeof(*masks));

        for (size_t pc = 0; pc < len; pc++) {
                const struct sock_filter *f = &prog[pc];

                memvalid &= masks[pc];
                switch (f->code) {
                case BPF_ST:
                case BPF_STX:
                        memvalid |= (uint16_t) (1u << f->k);
                        break;
                case BPF_LD | BPF_MEM:
                case BPF_LDX | BPF_MEM:
                        if (!(memvalid & (1u << f->k))) {
                                if (ret_pc)
                                        *ret_pc = pc;
                                return -EINVAL;
                        }
                        break;
                case BPF_JMP | BPF_JA:
                        masks[pc + 1 + f->k] &= memvalid;
                        memvalid = 0xffff;
                        break;
                default:
                        if (is_cond_jump(f->code)) {
                                masks[pc + 1 + f->jt] &= memvalid;
                                masks[pc + 1 + f->jf] &= memvalid;
                                memvalid = 0xffff;
                        }
                }
        }
        return 0;
}

int seccomp_bpf_check(const struct sock_filter *prog, size_t len, size_t *ret_pc) {
        uint16_t last;

        if (!prog || len == 0 || len > BPF_MAXINSNS) {
                if (ret_pc)
                        *ret_pc = 0;
                return -EINVAL;
        }
        for (size_t pc = 0; pc < len; pc++)
                if (check_insn(&prog[pc], pc, len) < 0) {
                        if (ret_pc)
                                *ret_pc = pc;
                        return -EINVAL;
                }
        last = prog[len - 1].code;
        if (last != (BPF_RET | BPF_K) && last != (BPF_RET | BPF_A)) {
                if (ret_pc)
                        *ret_pc = len - 1;
                return -EINVAL;
        }
        return check_memory(prog, len, ret_pc);
}

static uint32_t alu(uint16_t op, uint32_t a, uint32_t operand) {
        switch (op) {
        case BPF_ADD: return a + operand;
        case BPF_SUB: return a - operand;
        case BPF_MUL: return a * operand;
        case BPF_DIV: return a / operand;       /* operand 0 handled by the caller */
        case BPF_AND: return a & operand;
        case BPF_OR:  return a | operand;
        case BPF_XOR: return a ^ operand;
        case BPF_LSH: return a << (operand & 31);   /* 32-bit eBPF shifts mask the count */
        case BPF_RSH: return a >> (operand & 31);
        }
        return a;
}

static bool jump_taken(uint16_t op, uint32_t a, uint32_t operand) {
        switch (op) {
        case BPF_JEQ:  return a == operand;
        case BPF_JGT:  return a > operand;
        case BPF_JGE:  return a >= operand;
        case BPF_JSET: return (a & operand) != 0;
        }
        return false;
}

int seccomp_bpf_run(const struct sock_filter *prog, size_t len, const struct seccomp_data *sd,
                    uint32_t *ret) {
        uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
        int r;

        r = seccomp_bpf_check(prog, len, NULL);
        if (r < 0)
                return r;

        /* Checked: every jump lands inside, and the last instruction is a
         * RET, so this loop always ends at a RET within len steps. */
        for (size_t pc = 0; pc < len; pc++) {
                const struct sock_filter *f = &prog[pc];
                uint32_t operand = BPF_SRC(f->code) == BPF_X ? x : f->k;

                switch (BPF_CLASS(f->code)) {
                case BPF_LD:
                        if (f->code == (BPF_LD | BPF_W | BPF_ABS))
                                memcpy(&a, (const uint8_t *) sd + f->k, sizeof(a));
                        else if (f->code == (BPF_LD | BPF_W | BPF_LEN))
                                a = SECCOMP_DATA_SIZE;
                        else if (f->code == (BPF_LD | BPF_IMM))
                                a = f->k;
                        else
                                a = mem[f->k];
                        break;
                case BPF_LDX:
                        if (f->code == (BPF_LDX | BPF_W | BPF_LEN))
                                x = SECCOMP_DATA_SIZE;
                        else if (f->code == (BPF_LDX | BPF_IMM))
                                x = f->k;
                        else
                                x = mem[f->k];
                        break;
                case BPF_ST:
                        mem[f->k] = a;
                        break;
                case BPF_STX:
                        mem[f->k] = x;
                        break;
                case BPF_ALU:
                        if (BPF_OP(f->code) == BPF_NEG)
                                a = -a;
                        else if (BPF_OP(f->code) == BPF_DIV && operand == 0) {
                                /* The kernel's converted program returns 0 here. */
                                *ret = 0;
                                return 0;
                        } else
                                a = alu(BPF_OP(f->code), a, operand);
                        break;
                case BPF_JMP:
                        if (BPF_OP(f->code) == BPF_JA)
                                pc += f->k;
                        else
                                pc += jump_taken(BPF_OP(f->code), a, operand) ? f->jt : f->jf;
                        break;
                case BPF_RET:
                        *ret = BPF_RVAL(f->code) == BPF_A ? a : f->k;
                        return 0;
                case BPF_MISC:
                        if (BPF_MISCOP(f->code) == BPF_TAX)
                                x = a;
                        else
                                a = x;
                        break;
                }
        }
        return -EINVAL;         /* unreachable for a checked program */
}

static int32_t action_only(uint32_t ret) {
        return (int32_t) (ret & SECCOMP_RET_ACTION_FULL);
}

uint32_t seccomp_action_combine(uint32_t a, uint32_t b) {
        return action_only(b) < action_only(a) ? b : a;
}

bool seccomp_action_runs(uint32_t ret) {
        uint32_t action = ret & SECCOMP_RET_ACTION_FULL;

        return action == SECCOMP_RET_ALLOW || action == SECCOMP_RET_LOG;
}

static const struct {
        uint32_t action;
        const char *name;
} action_names[] = {
        { SECCOMP_RET_KILL_PROCESS, "kill-process" },
        { SECCOMP_RET_KILL_THREAD,  "kill-thread" },
        { SECCOMP_RET_TRAP,         "trap (SIGSYS)" },
        { SECCOMP_RET_USER_NOTIF,   "user-notif (a supervisor decides)" },
        { SECCOMP_RET_TRACE,        "trace (ENOSYS without a seccomp tracer)" },
        { SECCOMP_RET_LOG,          "log" },
        { SECCOMP_RET_ALLOW,        "allow" },
};

const char *seccomp_action_format(uint32_t ret, char *buf, size_t size) {
        uint32_t action = ret & SECCOMP_RET_ACTION_FULL, data = ret & SECCOMP_RET_DATA;

        if (action == SECCOMP_RET_ERRNO) {
                const char *errname = strerrorname_np((int) data);

                snprintf(buf, size, "errno %u (%s)", data, errname ? errname : "?");
                return buf;
        }
        for (size_t i = 0; i < ELEMENTSOF(action_names); i++)
                if (action_names[i].action == action) {
                        snprintf(buf, size, "%s", action_names[i].name);
                        return buf;
                }
        snprintf(buf, size, "unknown action 0x%08x (the kernel kills the process)", ret);
        return buf;
}

int seccomp_filter_dump(pid_t tid, unsigned index, struct sock_filter **ret_prog, size_t *ret_len) {
        _cleanup_free_ struct sock_filter *prog = NULL;
        long n, m;

        /* With no buffer the kernel answers the instruction count only. */
        n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *) (uintptr_t) index, NULL);
        if (n < 0)
                return -errno;
        if (n == 0 || n > BPF_MAXINSNS)
                return -EINVAL;
        prog = calloc((size_t) n, sizeof(*prog));
        if (!prog)
                return -ENOMEM;
        m = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *) (uintptr_t) index, prog);
        if (m < 0)
                return -errno;
        if (m != n)             /* filters never change once installed */
                return -EIO;
        *ret_prog = TAKE_PTR(prog);
        *ret_len = (size_t) n;
        return 0;
}

int seccomp_filters_evaluate(pid_t tid, const struct seccomp_data *sd, uint32_t *ret,
                             unsigned *ret_nfilters) {
        uint32_t combined = SECCOMP_RET_ALLOW;
        unsigned n = 0;
        int r;

        for (;; n++) {
                _cleanup_free_ struct sock_filter *prog = NULL;
                size_t len;
                uint32_t one;

                r = seccomp_filter_dump(tid, n, &prog, &len);
                if (r == -ENOENT)
                        break;
                if (r < 0)
                        return r;
                r = seccomp_bpf_run(prog, len, sd, &one);
                if (r < 0)
                        return r;
                /* Index 0 is the oldest; the kernel walks newest first and
                 * keeps the earlier answer on a tie: newer wins a tie. */
                combined = seccomp_action_combine(one, combined);
        }
        if (n == 0)
                return -ENOENT;
        *ret = combined;
        if (ret_nfilters)
                *ret_nfilters = n;
        return 0;
}
