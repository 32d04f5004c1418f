// sweep.h: recall-density curves of every method on one head (SPEC section 7: "each can be swept
// over its knob"), all judged on the exact block mass W.
//
// Knobs: SparseSkeleton's budget rho; vertical-slash's counts (scaled together); XAttention's tau;
// the Lambda-shape's window; TriangleMix's local window; the oracle's per-row-block recall r; and
// the global oracle (the heaviest blocks of the whole head), the best mean recall any block mask
// of that density can reach.
#ifndef SKEL_SWEEP_H
#define SKEL_SWEEP_H

#include <stdint.h>

#include "methods.h"

#define SWEEP_MAX_POINTS 96

typedef struct {
    char method[16];
    double knob;  // the method's own parameter at this point
    double density, compute_fraction, recall, min_rowblock_recall;
} sweep_point;

typedef struct {
    int64_t N;
    int d, B, S, T;
    double eps;
    const float *q, *k;        // (N, d)
    const float *W;            // (nb, nb) exact block mass
    const float *s, *v, *h;    // (N) the decomposition
    methods_params mp;         // the defaults the sweeps scale
    const double *xa_score;    // XAttention's block scores for mp (xattention_scores), or NULL to compute them
    const last_lines *vs_lines, *fp_lines;  // vertical-slash's and FlexPrefill's lines for mp (methods_lines),
                                            // or NULL to compute them
} sweep_input;

// Fills pts (at most SWEEP_MAX_POINTS) and returns their number.
int sweep_head(const sweep_input *in, sweep_point *pts);

#endif
