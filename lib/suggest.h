/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suggest.h — "did you mean": how far a misspelt word is from a known one,
 * and when a known word is close enough to be offered.  Used for unknown
 * keys of pmufilterd.yaml(5) (policy-yaml.c, policy-load.c) and unknown
 * event names (catalogue.c).  Pure.
 */
#pragma once

#include "util.h"

/* Farther than this, and a suggestion is a guess: none is made. */
#define SUGGEST_MAX_DISTANCE 2u
/* Longer words are never compared (event names are at most 256). */
#define SUGGEST_LEN_MAX 256u

/*
 * The optimal-string-alignment distance between a and b (Damerau–
 * Levenshtein restricted to adjacent transpositions: insertions, deletions,
 * substitutions and swaps of two neighbours each count 1), ASCII case
 * ignored if asked.  Capped: max + 1 for anything farther than max, and for
 * a word longer than SUGGEST_LEN_MAX.
 */
unsigned suggest_distance(const char *a, const char *b, bool ignore_case, unsigned max);

/*
 * Is a word at `distance` from `typed` close enough to offer?  At most
 * SUGGEST_MAX_DISTANCE edits, and fewer than a third of typed's length, so
 * that a short word is never "corrected" into an unrelated one (`pm` is
 * not offered `pmu`); 0 means the same word, which is nothing to offer.
 */
bool suggest_close(const char *typed, unsigned distance);

/* The closest of the words offered so far, first offered wins a tie. */
struct suggestion {
        const char *typed;
        const char *best;               /* borrowed from the caller; NULL: none close */
        unsigned distance;
};

static inline struct suggestion suggestion_start(const char *typed) {
        return (struct suggestion) { .typed = typed, .distance = SUGGEST_MAX_DISTANCE + 1 };
}
/* Offer one known word: kept if close and closer than the best so far. */
void suggestion_offer(struct suggestion *s, const char *word, bool ignore_case);
