// results.h: the analysis results file (SPEC section 5, "Results file") and the per-head report.
//
// Layout (HDF5, never the dump itself):
//   /                       attrs: the dump's metadata (model, n_tokens, n_layers, n_q_heads,
//                           n_kv_heads, head_dim, rope_layout), the analysis parameters (block, sink,
//                           local, eps, budget, samples, seed, image_size, device) and
//                           results_version, source (the dump's path)
//   /layers/L/heads/H/lse          float32 (N)         exact row log-sum-exp
//   /layers/L/heads/H/block_mass   float32 (nb, nb)    W[I][J], upper triangle 0
//   /layers/L/heads/H/block_max    float32 (nb, nb)    X[I][J], upper triangle 0
//   /layers/L/heads/H/image_max    float32 (P, P)      max of A over each pixel cell, upper 0
//   /layers/L/heads/H/image_mean   float32 (P, P)      mean of A over the causal elements of a cell
//   /layers/L/heads/H/s, v, h      float32 (N)         the decomposition (s indexed by offset i-j)
//   /layers/L/heads/H/alpha, kappa float64 (d)         the ridge solution
//   /layers/L/heads/H/mask         uint8 (nb, nb)      1 = block kept (SparseSkeleton)
//   /layers/L/heads/H/z_hist       float64 (bins)      attrs lo, hi, mean, var, skew, kurtosis
//   /layers/L/heads/H attrs        every column of the report below
//   /report                        compound table, one row per analysed head, fields as below
// Pixel cell (a, b) of the P x P images covers rows [a N / P, (a+1) N / P) and columns
// [b N / P, (b+1) N / P) (integer division, P = min(image_size, N)).
#ifndef SKEL_RESULTS_H
#define SKEL_RESULTS_H

#include <stdint.h>

#include "common.h"

#define RESULTS_VERSION 1

// One row of the per-head report (SPEC section 5). NaN where a value does not apply
// (output_rel_error without values).
typedef struct {
    int32_t layer, head, kv_head;
    int64_t n_tokens;
    double exact_sparsity, threshold_sparsity, block_sparsity;
    double predicted_sparsity, predicted_block_sparsity;
    double mask_density, mask_recall, min_rowblock_recall, oracle_density_at_same_recall;
    double fit_r2, fit_rmse, output_rel_error;
    double time_exact_ms, time_decomp_ms, time_mask_ms;
} head_report;

// The CSV header line (no newline) and one formatted row, in the column order above.
extern const char *const REPORT_CSV_HEADER;
void report_csv_row(FILE *f, const head_report *r);

#endif
