// exact.h: exact attention statistics of one head (SPEC section 2), never holding N x N.
//
// Two streaming passes over z = c Q K^T (c = 1/sqrt(d)), causal j <= i, tiled like FlashAttention:
//   pass 1: lse_i = log sum_{j<=i} exp(z_ij), plus the range and mean of z;
//   pass 2: with lse known, A_ij = exp(z_ij - lse_i) is visited once more to accumulate the block
//           mass W and block max X on a B x B grid, the count of A_ij < eps/N, a per-row log-domain
//           histogram for the exact sparsity, the z histogram and moments, and the pooled images.
// The QK^T tiles come from an AVX-512 kernel over keys repacked once per head (single-threaded
// sgemm where the CPU lacks AVX-512, or when SKEL_NO_AVX512 is set: the tests use it to check that
// path); row tiles are spread over OpenMP threads.
#ifndef SKEL_EXACT_H
#define SKEL_EXACT_H

#include <stdint.h>

#include "common.h"

#define EXACT_ZHIST_BINS 256   // bins of the stored z histogram
#define EXACT_ROW_BINS 2048    // bins of the per-row histogram behind the exact sparsity
#define EXACT_MAX_MASKS 8      // masks whose output error one exact pass measures

typedef struct {
    // parameters
    int64_t N;     // tokens
    int d;         // head dimension
    int B;         // block size, a power of two in [16, 256]
    int64_t nb;    // ceil(N / B)
    int P;         // pooled image size, min(image_size, N)
    double eps;    // sparsity tolerance
    // results
    float *lse;         // (N)
    float *block_mass;  // (nb, nb) W[I][J], 0 above the diagonal
    float *block_max;   // (nb, nb) X[I][J], 0 above the diagonal
    float *image_max;   // (P, P) max of A over each pixel cell, 0 above the diagonal
    float *image_mean;  // (P, P) mean of A over the causal elements of each cell
    double threshold_sparsity;  // fraction of causal A_ij < eps / N
    double block_sparsity;      // fraction of causal blocks with X < eps / N
    double exact_sparsity;      // SPEC eq. 1: per row, most smallest elements with mass < eps
    double zlo, zhi;            // range of z over causal pairs (the histogram's range)
    double zhist[EXACT_ZHIST_BINS];
    double zmean, zvar, zskew, zkurt;  // moments of z over causal pairs (kurt = excess kurtosis)
    double output_rel_error[EXACT_MAX_MASKS];  // ||O - O'||_F / ||O||_F per mask given, else NaN
} exact_stats;

// Allocates the result arrays for a head of N tokens.
void exact_stats_init(exact_stats *st, int64_t N, int d, int B, int image_size, double eps);
void exact_stats_free(exact_stats *st);

// q, k: (N, d) post-RoPE rows of one query head and its key head. Fills st. With values v (N, d)
// and block masks (nmasks of them, each (nb, nb)), also each mask's relative output error: attention
// restricted to its blocks, softmax renormalised over the kept elements. v may be NULL (nmasks 0).
void exact_compute(exact_stats *st, const float *q, const float *k, const float *v, const uint8_t *const *masks,
                   int nmasks);

// Pixel cell boundaries of the pooled images: cell a covers [a N / P, (a+1) N / P).
static inline int64_t exact_cell_start(int64_t a, int64_t N, int64_t P) { return a * N / P; }

#endif
