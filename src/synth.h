// synth.h: synthetic dumps with planted structure, for tests, benchmarks and demos.
//
// Queries and keys are built un-rotated, as complex pairs (pair x has frequency
// inv_freq[x] = theta^(-2x/d)), then rotated with real RoPE ("half" layout, positions 0..N-1), so
// that z_ij = c Re sum_x P_ix conj(U_jx) e^{i (i-j) w_x}. The pairs are split in four groups:
//   - the highest-frequency eighth: P conj(U) real positive: a local band that peaks at i = j;
//   - the next eighth: U carries the phase e^{i m0 w}: a slash at offset m0 = N / (4 + kv_head);
//   - the two lowest-frequency pairs, which RoPE barely turns over N tokens: a key-only component
//     that is large for 4 sink tokens (z about 12) and 8 random vertical keys per KV head (z about
//     9): columns that every query attends to;
//   - all components: Gaussian noise (z noise of standard deviation about 1.5).
// Each query head weights the groups differently (head-dependent factors in [0.5, 1.5]).
#ifndef SKEL_SYNTH_H
#define SKEL_SYNTH_H

#include <stdint.h>

#include "common.h"

typedef struct {
    int64_t N;
    int layers, q_heads, kv_heads, d;
    double theta;  // RoPE base, default 500000
    uint64_t seed;
    int f16;       // store float16 (default float32)
    int values;    // also write v
} synth_params;

// The planted vertical keys of one KV head (8 positions, ascending) in layer L.
void synth_vertical_keys(const synth_params *p, int layer, int kv_head, int64_t out[8]);
// The planted slash offset of one KV head.
int64_t synth_slash_offset(const synth_params *p, int kv_head);

int synth_write(const char *path, const synth_params *p, skel_err *e);

#endif
