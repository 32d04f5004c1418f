// chol3.cuh: decomp3's ridge solve (the default build's; cuda/chol.cuh is decomp4's, -DDECOMP4=1),
// in a header so that bench/chol_ab.cu times the same kernel.
#pragma once
#include "gpu_common.cuh"

namespace chol3 {

// The ridge solve (ridge_solve_normal): x = (G + lambda^2 I)^{-1} rhs, lambda = eps_r sqrt(trace G) / 2,
// in one CTA: G (n x n, symmetric) is copied with the ridge into L (np x np, row-major; n padded to
// np = CB ceil(n / CB) with an identity block) and factored in place by a blocked right-looking
// Cholesky: per CB-column panel, warp 0 factors the diagonal block in registers (lane r holds row r),
// every thread solves panel rows against it, and the trailing matrix takes the rank-CB update in 4 x 4
// register tiles with the panel in shared memory. Then the two triangular solves by CB-row blocks.
// *info = 1 when a pivot is not positive. One launch where cuSOLVER's potrf + potrs took 8 rounds of
// three small kernels at n = 256.
constexpr int CB = 32;
constexpr int THREADS = 384;
constexpr int MAXW = 2 * 128;  // n <= 2 d, d <= 128
constexpr size_t SMEM = sizeof(double) * ((size_t)(MAXW - CB) * (CB + 1) + CB * (CB + 1) + 2 * MAXW);

__global__ void __launch_bounds__(THREADS) chol_solve_kernel(double *L, double *x, int *info, const double *G,
                                                             const double *rhs, int n, int np, double eps_r) {
    extern __shared__ double csm[];
    double *P = csm;                              // (np - CB, CB + 1) panel rows below the diagonal block
    double *Lkk = P + (MAXW - CB) * (CB + 1);     // (CB, CB + 1) the factored diagonal block
    double *yv = Lkk + CB * (CB + 1);             // (np) right-hand side, then the solution
    double *invd = yv + MAXW;                     // (np) 1 / L_pp (multiplications on the dependent chains)
    __shared__ double red[THREADS / 32];
    __shared__ int bad;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    double tr = 0;
    for (int i = tid; i < n; i += THREADS) tr += G[(size_t)i * n + i];
    tr = warp_sum_d(tr);
    if (lane == 0) red[warp] = tr;
    if (tid == 0) bad = 0;
    __syncthreads();
    tr = 0;
    for (int w = 0; w < THREADS / 32; w++) tr += red[w];
    const double lam = eps_r * sqrt(tr) / 2, lam2 = lam * lam;
#pragma unroll 8
    for (int e = tid; e < np * np; e += THREADS) {  // G symmetric: read it row by row (coalesced)
        const int i = e / np, j = e % np;
        double v = i < n && j < n ? G[(size_t)i * n + j] : 0.0;
        if (i == j) v += i < n ? lam2 : 1.0;
        L[e] = v;
    }
    for (int i = tid; i < np; i += THREADS) yv[i] = i < n ? rhs[i] : 0.0;
    __syncthreads();
    for (int k0 = 0; k0 < np; k0 += CB) {
        if (warp == 0) {
            double a[CB];
#pragma unroll
            for (int j = 0; j < CB; j++) a[j] = L[(size_t)(k0 + lane) * np + k0 + j];
#pragma unroll
            for (int p = 0; p < CB; p++) {
                double piv = __shfl_sync(0xffffffffu, a[p], p);
                if (!(piv > 0)) {
                    if (lane == 0) bad = 1;
                    piv = 1;
                }
                const double rinv = rsqrt(piv), lpp = piv * rinv;
                if (lane == p) invd[k0 + p] = rinv;
                a[p] = lane == p ? lpp : lane > p ? a[p] * rinv : a[p];
#pragma unroll
                for (int j = p + 1; j < CB; j++) {
                    const double ljp = __shfl_sync(0xffffffffu, a[p], j);
                    if (lane >= j) a[j] -= a[p] * ljp;
                }
            }
#pragma unroll
            for (int j = 0; j < CB; j++)
                if (j <= lane) {
                    Lkk[lane * (CB + 1) + j] = a[j];
                    L[(size_t)(k0 + lane) * np + k0 + j] = a[j];
                }
        }
        __syncthreads();
        const int m = np - k0 - CB;  // rows below the block
        for (int r = tid; r < m; r += THREADS) {
            const int i = k0 + CB + r;
            double v[CB];
#pragma unroll
            for (int j = 0; j < CB; j++) v[j] = L[(size_t)i * np + k0 + j];
#pragma unroll
            for (int p = 0; p < CB; p++) {
                double s = v[p];
#pragma unroll
                for (int q = 0; q < p; q++) s -= v[q] * Lkk[p * (CB + 1) + q];
                v[p] = s * invd[k0 + p];
            }
#pragma unroll
            for (int j = 0; j < CB; j++) {
                P[r * (CB + 1) + j] = v[j];
                L[(size_t)i * np + k0 + j] = v[j];
            }
        }
        __syncthreads();
        const int mt = m / 4, ntile = mt * (mt + 1) / 2;
        for (int tt = tid; tt < ntile; tt += THREADS) {
            int ti = (int)((sqrt(8.0 * tt + 1) - 1) / 2);
            while ((ti + 1) * (ti + 2) / 2 <= tt) ti++;
            while (ti * (ti + 1) / 2 > tt) ti--;
            const int tj = tt - ti * (ti + 1) / 2;
            double acc[4][4] = {};
#pragma unroll 4
            for (int p = 0; p < CB; p++) {
                double av[4], bv[4];
#pragma unroll
                for (int r = 0; r < 4; r++) av[r] = P[(4 * ti + r) * (CB + 1) + p], bv[r] = P[(4 * tj + r) * (CB + 1) + p];
#pragma unroll
                for (int r = 0; r < 4; r++)
#pragma unroll
                    for (int s = 0; s < 4; s++) acc[r][s] += av[r] * bv[s];
            }
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    const int i = k0 + CB + 4 * ti + r, j = k0 + CB + 4 * tj + s;
                    if (i >= j) L[(size_t)i * np + j] -= acc[r][s];
                }
        }
        __syncthreads();
    }
    // L y = rhs: lane r of warp 0 holds row r of the diagonal block
    for (int k0 = 0; k0 < np; k0 += CB) {
        if (warp == 0) {
            double a[CB];
#pragma unroll
            for (int p = 0; p < CB; p++) a[p] = L[(size_t)(k0 + lane) * np + k0 + p];
            double yr = yv[k0 + lane];
#pragma unroll
            for (int p = 0; p < CB; p++) {
                if (lane == p) yr *= invd[k0 + p];
                const double yp = __shfl_sync(0xffffffffu, yr, p);
                if (lane > p) yr -= a[p] * yp;
            }
            yv[k0 + lane] = yr;
        }
        __syncthreads();
        for (int i = k0 + CB + tid; i < np; i += THREADS) {
            double s = 0;
#pragma unroll 8
            for (int p = 0; p < CB; p++) s += L[(size_t)i * np + k0 + p] * yv[k0 + p];
            yv[i] -= s;
        }
        __syncthreads();
    }
    // L^T x = y: lane r of warp 0 holds column r of the diagonal block
    for (int k0 = np - CB; k0 >= 0; k0 -= CB) {
        if (warp == 0) {
            double cl[CB];
#pragma unroll
            for (int p = 0; p < CB; p++) cl[p] = L[(size_t)(k0 + p) * np + k0 + lane];
            double yr = yv[k0 + lane];
#pragma unroll
            for (int p = CB - 1; p >= 0; p--) {
                if (lane == p) yr *= invd[k0 + p];
                const double xp = __shfl_sync(0xffffffffu, yr, p);
                if (lane < p) yr -= cl[p] * xp;
            }
            yv[k0 + lane] = yr;
        }
        __syncthreads();
        for (int i = tid; i < k0; i += THREADS) {
            double s = 0;
#pragma unroll 8
            for (int p = 0; p < CB; p++) s += L[(size_t)(k0 + p) * np + i] * yv[k0 + p];
            yv[i] -= s;
        }
        __syncthreads();
    }
    for (int i = tid; i < n; i += THREADS) x[i] = yv[i];
    if (tid == 0) *info = bad;
}

}  // namespace chol3
