// rope.h: rotary position embedding on (N, d) rows, both storage layouts.
//   half:        pairs (x, x + d/2), as in HF/NeoX;   interleaved: pairs (2x, 2x + 1).
// Pair x at position p is rotated by the angle p * inv_freq[x].
#ifndef SKEL_ROPE_H
#define SKEL_ROPE_H

#include <stdint.h>

#include "dump.h"

// Index of the first and second element of pair x in a row of width d.
static inline int rope_pair_a(rope_layout l, int d, int x) { return l == ROPE_HALF ? x : 2 * x; }
static inline int rope_pair_b(rope_layout l, int d, int x) { return l == ROPE_HALF ? x + d / 2 : 2 * x + 1; }

// out (N, d) = rows of in (N, d) rotated by +angle (apply) or -angle (unapply); out may equal in.
void rope_apply(float *out, const float *in, int64_t N, int d, const double *inv_freq, const int32_t *pos,
                rope_layout layout);
void rope_unapply(float *out, const float *in, int64_t N, int d, const double *inv_freq, const int32_t *pos,
                  rope_layout layout);

#endif
