// decomp.h: the three-way decomposition log A_ij ~ s_{i-j} + v_j + h_i (SPEC section 3, paper
// Algorithm 1 made precise). O(N d^2 + M d^2) time, O(N d) memory; no pass over QK^T.
//
// Row i's interior is S <= j <= i - T (n_i = i - T - S + 1 elements). On the interior
//   z_ij - mu_i ~ (r_{i-j} - rbar_i) alpha + (u_j - ubar_i) kappa
// with r_m = (cos(m w), sin(m w)) the RoPE features of offset m and u_j the un-RoPE'd keys, fitted
// by ridge regression on M sampled interior pairs. The normaliser nu_i ~ log sum_j exp(z_ij - mu_i)
// comes from the exact Lambda-shape (sinks and local window) plus a log-normal interior term.
#ifndef SKEL_DECOMP_H
#define SKEL_DECOMP_H

#include <stdint.h>

#include "common.h"
#include "dump.h"

typedef struct {
    int S;           // sink count (default 64)
    int T;           // local window (default 64)
    int M;           // ridge samples; 0 means 80 d
    double ridge;    // eps_r (default 1e-3): lambda = eps_r ||A||_F / 2
    uint64_t seed;   // sampling seed
} decomp_params;

typedef struct {
    int64_t N;
    int d;
    decomp_params prm;
    float *s;           // (N) s_m, m = i - j
    float *v;           // (N) v_j
    float *h;           // (N) h_i
    double *alpha;      // (d) weights of r_m: d/2 cosines then d/2 sines
    double *kappa;      // (d) weights of u_j, in the dump's storage order
    double *mu;         // (N) interior mean of z_ij (rows without interior: mean over j <= i)
    double *sigma2;     // (N) interior variance of z_ij (0 without interior)
    double *log_lambda; // (N) log of the Lambda-shape sum of exp(z_ij - mu_i)
    double *nu;         // (N) the normaliser estimate; exact for rows without interior
    double zeta;        // the last-row correction of SPEC section 3
    double fit_r2, fit_rmse;  // on a held-out sample of M pairs
} decomp;

void decomp_init(decomp *D, int64_t N, int d, const decomp_params *prm);
void decomp_free(decomp *D);

// q, k: (N, d) post-RoPE rows. Fails (one line, naming what) when N < S + T + 2 or the normal
// equations are singular.
int decomp_compute(decomp *D, const float *q, const float *k, const double *inv_freq, const int32_t *pos,
                   rope_layout layout, skel_err *e);

// Interior size of row i.
static inline int64_t decomp_n_interior(int64_t i, int S, int T) { return i - T - S + 1 > 0 ? i - T - S + 1 : 0; }

// rbar (d): mean of r_m over m in [m0, m0 + n), in closed form (Dirichlet kernel), n >= 1.
void decomp_rope_mean(double *rbar, const double *inv_freq, int d, int64_t m0, int64_t n);

// Ridge regression: x (n) = argmin ||A x - b||^2 + lambda^2 ||x||^2, lambda = eps_r ||A||_F / 2,
// by Cholesky on the normal equations. A (m, n) row-major, b (m). Returns 0 or -1 if singular.
int ridge_solve(const double *A, const double *b, int64_t m, int n, double eps_r, double *x);
// The same from the normal equations: G (n, n) = A^T A (upper triangle read, overwritten), x (n) =
// A^T b on entry, the solution on return. Shared by the CPU and GPU paths.
int ridge_solve_normal(double *G, double *x, int n, double eps_r);

// The ns sampled interior pairs of decomp_compute (ns = 2 M: the first half fits, the second is held out):
// rows I (ns), columns J (ns). Same seed, same pairs on every platform.
uint64_t decomp_draw_samples(int64_t *rows, int64_t *cols, int64_t ns, int64_t N, int S, int T, uint64_t seed);

#endif
