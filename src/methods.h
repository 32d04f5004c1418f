// methods.h: the block masks of the compared sparse-prefill methods (SPEC section 7), on the same
// B x B grid as the exact block mass, so that each is judged by the same recall, density, compute
// fraction and output error as SparseSkeleton and the oracle.
//
// Methods that choose elements (columns, diagonals, windows) keep a block when it holds any chosen
// causal element; methods with their own block size (XAttention's 128) keep every grid block that
// meets a chosen block of theirs.
#ifndef SKEL_METHODS_H
#define SKEL_METHODS_H

#include <stdint.h>

#include "common.h"

typedef struct {
    // Vertical-slash (MInference): the exact softmax of the last vs_last_q queries; column sums
    // choose vs_vertical keys, diagonal sums vs_slash offsets; the first 30 keys and the last 100
    // diagonals always. 0 = the authors' 128K setting (1000 and 6096) scaled by N / 131072, at
    // least 30 and 100.
    int64_t vs_vertical, vs_slash;
    int vs_last_q;
    // XAttention: antidiagonal scores with stride xa_stride inside xa_block blocks, softmaxed per
    // strided row; per block row the best blocks until their share reaches xa_tau; the first block
    // column and the diagonal always.
    int xa_block, xa_stride;
    double xa_tau;
    // FlexPrefill: from the last fp_block queries, the Jensen-Shannon distance between the true
    // attention pooled over key blocks and the estimate softmax(avgpool(Q) avgpool(K)^T); below
    // fp_tau the head is query-aware and every block row keeps its best pooled-estimate blocks up
    // to a share fp_gamma; otherwise vertical and slash lines of the last queries' attention up to
    // coverage fp_gamma each. The first block column and the diagonal always.
    int fp_block;
    double fp_gamma, fp_tau;
    // Lambda-shape (StreamingLLM): lambda_sinks first keys and a window of lambda_window keys.
    int lambda_sinks, lambda_window;
    // TriangleMix tri-shape: sinks, local window and the last tri_last query rows dense.
    int tri_sinks, tri_local, tri_last;
} methods_params;

void methods_params_default(methods_params *p);
// The vertical/slash counts actually used for N tokens.
void methods_vs_counts(const methods_params *p, int64_t N, int64_t *nv, int64_t *ns);

// Every mask is (nb, nb), nb = ceil(N / B), 1 = kept, upper triangle 0. q, k: (N, d) post-RoPE.
void method_vertical_slash(uint8_t *mask, const float *q, const float *k, int64_t N, int d, int B,
                           const methods_params *p);
// The lines vertical-slash and FlexPrefill start from: the exact attention of the last nq query rows
// summed per key column (vert, N) and per offset i - j (slash, N). methods_lines computes both
// methods' (the last vs_last_q rows; the last fp_block rows) in one pass over the larger set, each as
// the method alone computes it; the *_select functions then choose blocks from them (the methods
// above are lines + select), so that a sweep over counts or coverage computes the lines once.
typedef struct {
    int64_t nq;
    double *vert, *slash;
} last_lines;
void methods_lines(last_lines *vs, last_lines *fp, const float *q, const float *k, int64_t N, int d,
                   const methods_params *p);
void methods_lines_free(last_lines *l);
void vertical_slash_select(uint8_t *mask, const last_lines *vs, int64_t N, int B, const methods_params *p);
int flexprefill_select(uint8_t *mask, const last_lines *fp, const float *q, const float *k, int64_t N, int d, int B,
                       const methods_params *p);
void method_xattention(uint8_t *mask, const float *q, const float *k, int64_t N, int d, int B,
                       const methods_params *p);
// XAttention in two steps (method_xattention is both): the block scores (nbx, nbx), nbx =
// xattention_blocks, then the selection from them (the GPU computes the scores: gpu.h).
int64_t xattention_blocks(int64_t N, const methods_params *p);
void xattention_scores(double *score, const float *q, const float *k, int64_t N, int d, const methods_params *p);
void xattention_select(uint8_t *mask, const double *score, int64_t N, int B, const methods_params *p);
// Returns 1 when the head was judged query-aware (block selection), 0 for vertical-slash.
int method_flexprefill(uint8_t *mask, const float *q, const float *k, int64_t N, int d, int B,
                       const methods_params *p);
void method_lambda(uint8_t *mask, int64_t N, int B, const methods_params *p);
void method_trianglemix(uint8_t *mask, int64_t N, int B, const methods_params *p);

#endif
