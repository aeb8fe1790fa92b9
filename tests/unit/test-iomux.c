/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-iomux.c — daemon/base/iomux.c on a real sd-event loop and real
 * sockets: every ready fd of a wake-up handled in one dispatch, in rank
 * order; an entry removed, disabled or handled (iomux_handled()) mid-round
 * is not handed its event;
 * what iomux_maybe_pending() says during and after a round; a full round;
 * an edge-triggered entry re-armed; the last entry removed from inside a
 * round (ASan sees a use after free, should there be one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iomux.h"

#define N 40            /* more than a round */

struct fixture {
        sd_event *loop;
        int ends[N][2];                 /* [0] watched, [1] written */
        struct iomux_entry e[N];
        int order[N * 2];               /* indexes of handled entries, in order */
        size_t n_order;
        /* What a handler does to another entry when called: */
        int remove_on[N];               /* -1: nothing */
        int disable_on[N];
        int probe_on[N];                /* iomux_maybe_pending() of it, into probed[] */
        int probed[N];
        int handled_on[N];              /* iomux_handled() of it */
        bool consume;                   /* read what made it ready */
};

static void handler(struct iomux_entry *e, uint32_t revents) {
        struct fixture *f = e->userdata;
        int i = (int) (e - f->e);
        char c;

        assert_true(revents & EPOLLIN);
        f->order[f->n_order++] = i;
        if (f->consume)
                assert_int_equal(read(e->fd, &c, 1), 1);
        if (f->remove_on[i] >= 0)
                iomux_remove(&f->e[f->remove_on[i]]);
        if (f->disable_on[i] >= 0)
                assert_int_equal(iomux_set_enabled(&f->e[f->disable_on[i]], false), 0);
        if (f->probe_on[i] >= 0)
                f->probed[i] = iomux_maybe_pending(&f->e[f->probe_on[i]]);
        if (f->handled_on[i] >= 0)
                iomux_handled(&f->e[f->handled_on[i]]);
}

static void add(struct fixture *f, int i, int rank, uint32_t events) {
        f->e[i] = (struct iomux_entry) {
                .fd = f->ends[i][0],
                .events = events,
                .rank = rank,
                .handler = handler,
                .userdata = f,
        };
        assert_int_equal(iomux_add(f->loop, &f->e[i]), 0);
}

static void poke(struct fixture *f, int i) {
        assert_int_equal(write(f->ends[i][1], "x", 1), 1);
}

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_int_equal(sd_event_new(&f->loop), 0);
        for (int i = 0; i < N; i++) {
                assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, f->ends[i]), 0);
                f->remove_on[i] = f->disable_on[i] = f->probe_on[i] = f->handled_on[i] = -1;
                f->probed[i] = -1;
        }
        f->consume = true;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;

        for (int i = 0; i < N; i++) {
                iomux_remove(&f->e[i]);
                close(f->ends[i][0]);
                close(f->ends[i][1]);
        }
        sd_event_unref(f->loop);
        free(f);
        return 0;
}

/* One iteration of the loop, not waiting. */
static void turn(struct fixture *f) {
        assert_true(sd_event_run(f->loop, 0) >= 0);
}

static void test_one_dispatch_in_rank_order(void **state) {
        struct fixture *f = *state;

        add(f, 0, IOMUX_RANK_SESSION, EPOLLIN | EPOLLET);
        add(f, 1, IOMUX_RANK_UEVENT, EPOLLIN);
        add(f, 2, IOMUX_RANK_LISTEN, EPOLLIN);
        add(f, 3, IOMUX_RANK_SESSION, EPOLLIN | EPOLLET);       /* not ready */
        poke(f, 0);
        poke(f, 2);
        poke(f, 1);
        turn(f);
        /* All three in one iteration: the listener, the session, then the
         * uevents (what a session said before its VM's DESTROY is heard). */
        assert_int_equal(f->n_order, 3);
        assert_int_equal(f->order[0], 2);
        assert_int_equal(f->order[1], 0);
        assert_int_equal(f->order[2], 1);
        /* Nothing left: another iteration hands nothing out. */
        turn(f);
        assert_int_equal(f->n_order, 3);
}

static void test_removed_or_disabled_mid_round_is_skipped(void **state) {
        struct fixture *f = *state;

        add(f, 0, IOMUX_RANK_LISTEN, EPOLLIN);
        add(f, 1, IOMUX_RANK_SESSION, EPOLLIN);
        add(f, 2, IOMUX_RANK_SESSION, EPOLLIN);
        add(f, 3, IOMUX_RANK_SESSION, EPOLLIN);
        f->remove_on[0] = 1;
        f->disable_on[0] = 2;
        for (int i = 0; i < 4; i++)
                poke(f, i);
        turn(f);
        assert_int_equal(f->n_order, 2);
        assert_int_equal(f->order[0], 0);
        assert_int_equal(f->order[1], 3);
        /* The disabled one is not polled at all; enabled, it is there. */
        turn(f);
        assert_int_equal(f->n_order, 2);
        assert_int_equal(iomux_set_enabled(&f->e[2], true), 0);
        turn(f);
        assert_int_equal(f->n_order, 3);
        assert_int_equal(f->order[2], 2);
}

static void test_maybe_pending_during_and_after_a_round(void **state) {
        struct fixture *f = *state;

        add(f, 0, IOMUX_RANK_SESSION, EPOLLIN);
        add(f, 1, IOMUX_RANK_UEVENT, EPOLLIN);
        add(f, 2, IOMUX_RANK_SESSION, EPOLLIN);                 /* not ready */
        f->probe_on[0] = 1;     /* ready, handled after it: pending */
        f->probe_on[1] = 0;     /* handled already: not */
        assert_false(iomux_maybe_pending(&f->e[0]));
        poke(f, 0);
        poke(f, 1);
        turn(f);
        assert_int_equal(f->n_order, 2);
        assert_int_equal(f->probed[0], 1);
        assert_int_equal(f->probed[1], 0);
        assert_false(iomux_maybe_pending(&f->e[1]));
        assert_false(iomux_maybe_pending(&f->e[2]));
        /* Not added: never pending. */
        assert_false(iomux_maybe_pending(&f->e[3]));
}

/* A session's ATTACH flushes the uevent socket, ready in the same round
 * after it: the flush read it to empty, so its handler is not called for
 * nothing; the entry stays watched. */
static void test_handled_mid_round_is_skipped(void **state) {
        struct fixture *f = *state;
        char c;

        f->consume = false;
        add(f, 0, IOMUX_RANK_SESSION, EPOLLIN | EPOLLET);
        add(f, 1, IOMUX_RANK_UEVENT, EPOLLIN);
        f->handled_on[0] = 1;
        poke(f, 0);
        poke(f, 1);
        turn(f);
        assert_int_equal(f->n_order, 1);
        assert_int_equal(f->order[0], 0);
        assert_false(iomux_maybe_pending(&f->e[1]));
        /* Still readable (level-triggered): the next round has it. */
        f->handled_on[0] = -1;
        turn(f);
        assert_int_equal(f->n_order, 2);
        assert_int_equal(f->order[1], 1);
        assert_int_equal(read(f->ends[1][0], &c, 1), 1);
        /* Outside a round: nothing. */
        iomux_handled(&f->e[1]);
        iomux_handled(&f->e[2]);        /* not added */
}

static void test_a_full_round_leaves_the_rest_for_the_next(void **state) {
        struct fixture *f = *state;

        for (int i = 0; i < N; i++) {
                add(f, i, IOMUX_RANK_SESSION, EPOLLIN);
                poke(f, i);
        }
        turn(f);
        assert_int_equal(f->n_order, IOMUX_ROUND_MAX);
        /* More may be ready than the round read: anyone may be pending. */
        for (int i = 0; i < N; i++)
                assert_true(iomux_maybe_pending(&f->e[i]));
        turn(f);
        assert_int_equal(f->n_order, N);
        for (int i = 0; i < N; i++)
                assert_false(iomux_maybe_pending(&f->e[i]));
        /* Each once. */
        for (int i = 0; i < N; i++) {
                int k = 0;

                for (size_t j = 0; j < f->n_order; j++)
                        k += f->order[j] == i;
                assert_int_equal(k, 1);
        }
}

static void test_edge_triggered_reported_again_when_rearmed(void **state) {
        struct fixture *f = *state;

        f->consume = false;     /* a handler that stops before the socket is empty */
        add(f, 0, IOMUX_RANK_SESSION, EPOLLIN | EPOLLET);
        poke(f, 0);
        turn(f);
        assert_int_equal(f->n_order, 1);
        turn(f);
        assert_int_equal(f->n_order, 1);        /* no new edge */
        assert_int_equal(iomux_rearm(&f->e[0]), 0);
        turn(f);
        assert_int_equal(f->n_order, 2);
}

static void test_last_entry_removed_inside_its_round(void **state) {
        struct fixture *f = *state;

        add(f, 0, IOMUX_RANK_SESSION, EPOLLIN);
        f->remove_on[0] = 0;            /* removes itself: the loop's last entry */
        poke(f, 0);
        turn(f);
        assert_int_equal(f->n_order, 1);
        assert_null(f->e[0].mux);
        /* A new entry makes a new mux on the same loop, which works. */
        f->remove_on[0] = -1;
        add(f, 1, IOMUX_RANK_SESSION, EPOLLIN);
        poke(f, 1);
        turn(f);
        assert_int_equal(f->n_order, 2);
        assert_int_equal(f->order[1], 1);
}

static void test_two_loops_two_muxes(void **state) {
        struct fixture *f = *state;
        sd_event *other;

        assert_int_equal(sd_event_new(&other), 0);
        add(f, 0, IOMUX_RANK_SESSION, EPOLLIN);
        f->e[1] = (struct iomux_entry) {
                .fd = f->ends[1][0], .events = EPOLLIN, .rank = IOMUX_RANK_SESSION,
                .handler = handler, .userdata = f,
        };
        assert_int_equal(iomux_add(other, &f->e[1]), 0);
        assert_ptr_not_equal(f->e[0].mux, f->e[1].mux);
        poke(f, 0);
        poke(f, 1);
        turn(f);
        assert_int_equal(f->n_order, 1);
        assert_int_equal(f->order[0], 0);
        assert_true(sd_event_run(other, 0) >= 0);
        assert_int_equal(f->n_order, 2);
        assert_int_equal(f->order[1], 1);
        iomux_remove(&f->e[1]);
        sd_event_unref(other);
}

static void test_add_fails_for_a_bad_fd_and_leaves_nothing(void **state) {
        struct fixture *f = *state;
        struct iomux_entry e = { .fd = -1, .events = EPOLLIN, .handler = handler, .userdata = f };

        assert_int_equal(iomux_add(f->loop, &e), -EBADF);
        assert_null(e.mux);
        iomux_remove(&e);       /* not added: nothing */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_one_dispatch_in_rank_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_removed_or_disabled_mid_round_is_skipped, setup, teardown),
                cmocka_unit_test_setup_teardown(test_maybe_pending_during_and_after_a_round, setup, teardown),
                cmocka_unit_test_setup_teardown(test_handled_mid_round_is_skipped, setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_full_round_leaves_the_rest_for_the_next, setup, teardown),
                cmocka_unit_test_setup_teardown(test_edge_triggered_reported_again_when_rearmed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_last_entry_removed_inside_its_round, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_loops_two_muxes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_add_fails_for_a_bad_fd_and_leaves_nothing, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
