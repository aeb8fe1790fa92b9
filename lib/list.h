/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * list.h — one intrusive doubly linked list for every list of the project,
 * in systemd's LIST_* style: the links live in the element (LIST_FIELDS),
 * the head is a plain pointer, and an element knows whether it is linked
 * (LIST_LINKED) so that unlinking twice is harmless.
 *
 *   struct item { LIST_FIELDS(struct item, items); };
 *   struct item *head = NULL, *tail = NULL;
 *   LIST_APPEND(items, head, tail, x);
 *   LIST_FOREACH(items, i, head) ...
 */
#pragma once

#include <stddef.h>

#define LIST_FIELDS(t, name) t *name##_next, *name##_prev

/* Prepend to a list without a tail pointer. */
#define LIST_PREPEND(name, head, item)                                  \
        do {                                                            \
                __typeof__(*(head)) **_head = &(head), *_item = (item); \
                _item->name##_prev = NULL;                              \
                _item->name##_next = *_head;                            \
                if (*_head)                                             \
                        (*_head)->name##_prev = _item;                  \
                *_head = _item;                                         \
        } while (0)

/* Append to a list with a tail pointer (NULL tail: pass a dummy variable). */
#define LIST_APPEND(name, head, tail, item)                             \
        LIST_INSERT_AFTER(name, head, tail, (tail), item)

/* Insert item after 'after' (NULL: at the front) of a list with a tail. */
#define LIST_INSERT_AFTER(name, head, tail, after, item)                \
        do {                                                            \
                __typeof__(*(head)) **_head = &(head), **_tail = &(tail), \
                        *_after = (after), *_item = (item);             \
                _item->name##_prev = _after;                            \
                _item->name##_next = _after ? _after->name##_next : *_head; \
                if (_item->name##_next)                                 \
                        _item->name##_next->name##_prev = _item;        \
                else                                                    \
                        *_tail = _item;                                 \
                if (_after)                                             \
                        _after->name##_next = _item;                    \
                else                                                    \
                        *_head = _item;                                 \
        } while (0)

/* Unlink from a list with a tail pointer. */
#define LIST_REMOVE_TAIL(name, head, tail, item)                        \
        do {                                                            \
                __typeof__(*(head)) **_head = &(head), **_tail = &(tail), *_item = (item); \
                if (_item->name##_next)                                 \
                        _item->name##_next->name##_prev = _item->name##_prev; \
                else                                                    \
                        *_tail = _item->name##_prev;                    \
                if (_item->name##_prev)                                 \
                        _item->name##_prev->name##_next = _item->name##_next; \
                else                                                    \
                        *_head = _item->name##_next;                    \
                _item->name##_next = _item->name##_prev = NULL;         \
        } while (0)

/* Unlink from a list without a tail pointer. */
#define LIST_REMOVE(name, head, item)                                   \
        do {                                                            \
                __typeof__(*(head)) **_head = &(head), *_item = (item); \
                if (_item->name##_next)                                 \
                        _item->name##_next->name##_prev = _item->name##_prev; \
                if (_item->name##_prev)                                 \
                        _item->name##_prev->name##_next = _item->name##_next; \
                else                                                    \
                        *_head = _item->name##_next;                    \
                _item->name##_next = _item->name##_prev = NULL;         \
        } while (0)

/* Is item in the list that starts at head? (O(1): by its links.) */
#define LIST_LINKED(name, head, item) ((item)->name##_prev || (head) == (item))

#define LIST_FOREACH(name, i, head) for (__typeof__(head) i = (head); i; i = i->name##_next)
/* The same, where the body may unlink (or free) i. */
#define LIST_FOREACH_SAFE(name, i, n, head)                             \
        for (__typeof__(head) i = (head), n = i ? i->name##_next : NULL; i; \
             i = n, n = i ? i->name##_next : NULL)
