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

#include <hdf5.h>

#include "common.h"
#include "decomp.h"
#include "dump.h"
#include "exact.h"
#include "h5util.h"
#include "sweep.h"

#define RESULTS_VERSION 2  // 2: the compared methods (<method>_mask datasets, /methods)

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

// One row of the methods table: a method's block mask on one head (SPEC section 7).
typedef struct {
    int32_t layer, head;
    char method[16];
    double density, compute_fraction, recall, min_rowblock_recall, output_rel_error;
} method_row;

extern const char *const METHODS_CSV_HEADER;
// The HDF5 compound type of method_row (caller closes it); reading with it matches fields by name.
hid_t results_methods_type(void);

// How a results file was made: stored as root attributes.
typedef struct {
    int block, sink, local, samples, image_size;
    double eps, budget, ridge;
    uint64_t seed;
    const char *device;  // "cpu" or "gpu"
} results_params;

// Writes <path>.tmp-<pid> (and the CSVs beside it, <path without .h5>.csv and
// <path without .h5>_methods.csv) and renames them into place in results_finish, so a failed run
// never replaces a good result.
typedef struct {
    char path[1024], tmp_path[1100], csv_path[1024], csv_tmp[1100];
    hid_t file;
    char mcsv_path[1024], mcsv_tmp[1100];
    head_report *rows;  // (nrows) the report so far
    int nrows, cap;
    method_row *mrows;  // (nmrows) the methods table so far
    int nmrows, mcap;
} results_writer;

// A head's 2-D arrays (block mass and max, images, the masks) compressed as results_put_head would
// store them (h5util.h, h5_pack2d), so that a pipeline compresses in its workers.
#define RESULTS_MAX_PACKED 16
typedef struct results_packed {
    int n;
    const void *src[RESULTS_MAX_PACKED];  // the arrays packed, matched by address when writing
    h5_packed a[RESULTS_MAX_PACKED];
} results_packed;
void results_pack_head(results_packed *pk, const exact_stats *st, const uint8_t *mask, int nmethods,
                       const uint8_t *const *mmasks);
void results_packed_free(results_packed *pk);

int results_create(results_writer *R, const char *path, const dump *D, const results_params *p, skel_err *e);
// One head's arrays and report (mask (nb, nb), 1 = kept), and the compared methods: for each,
// its mask is stored as <dset[m]> and its row goes into /methods.
// pk: the head's 2-D arrays packed ahead by results_pack_head (any thread), or NULL to compress
// them here.
int results_put_head(results_writer *R, const exact_stats *st, const decomp *dc, const uint8_t *mask,
                     const head_report *rep, int nmethods, const char *const *dset, const uint8_t *const *mmasks,
                     const method_row *mrows, const results_packed *pk, skel_err *e);


// A head's recall-density sweep, as /layers/L/heads/H/sweep (compound: method, knob, density,
// compute_fraction, recall, min_rowblock_recall).
// The HDF5 compound type of sweep_point (caller closes it).
hid_t results_sweep_type(void);
int results_put_sweep(results_writer *R, int layer, int head, const sweep_point *pts, int n, skel_err *e);
int results_finish(results_writer *R, skel_err *e);
void results_abort(results_writer *R);

#endif
