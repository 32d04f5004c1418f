// mask.h: block masks from the decomposition, and what any block mask is worth against the exact
// block mass (SPEC sections 2 and 4).
//
// Block form (block size B, nb = ceil(N / B) blocks): vB_J = max_{j in J} v_j, hB_I = max_{i in I} h_i,
// Mb_k = max_{m in [kB, kB+B)} s_m, sB_0 = Mb_0, sB_k = (Mb_{k-1} + Mb_k) / 2, and the score of
// block (I, J) is sc = sB_{I-J} + vB_J + hB_I.
#ifndef SKEL_MASK_H
#define SKEL_MASK_H

#include <stdint.h>

#include "common.h"

typedef struct {
    int B;          // block size
    int S, T;       // sinks and local window: sink block columns and the local band are always kept
    double eps;     // threshold mode: keep sc >= log(eps B / N)
    double budget;  // budget mode when > 0: keep the best-scoring blocks up to this causal density
} mask_params;

// sB, vB, hB: (nb) each.
void mask_block_vectors(const float *s, const float *v, const float *h, int64_t N, int B, float *sB, float *vB,
                        float *hB);

// mask (nb, nb): 1 = kept, upper triangle 0. Returns the predicted block sparsity: the fraction of
// causal blocks whose score is below log(eps B / N).
double mask_skeleton(uint8_t *mask, const float *s, const float *v, const float *h, int64_t N,
                     const mask_params *p);

// Statistical sparsity prediction (paper eqs. 12-14): mean and variance of s_{i-j} + v_j + h_i over
// all causal pairs in O(N), then Phi((log(eps/N) - mean) / sd).
double mask_predict_sparsity(const float *s, const float *v, const float *h, int64_t N, double eps,
                             double *mean, double *var);

typedef struct {
    double recall;               // sum of kept W / N: mean over rows of the kept attention mass
    double min_rowblock_recall;  // worst row block
    double density;              // kept causal blocks / causal blocks
    double compute_fraction;     // causal QK^T elements in kept blocks / all causal elements
} mask_metrics;

// W: (nb, nb) exact block mass.
void mask_evaluate(const uint8_t *mask, const float *W, int64_t N, int B, mask_metrics *out);

// The oracle mask at recall r: per row block, the fewest blocks (largest mass first) whose mass
// reaches r times the rows in the block.
void mask_oracle(uint8_t *mask, const float *W, int64_t N, int B, double r);

// Causal pairs (j <= i) with i in [r0, r1) and j in [c0, c1).
int64_t causal_pairs(int64_t r0, int64_t r1, int64_t c0, int64_t c1);

#endif
