// decomp.cu: GPU twin of src/decomp.c (SPEC section 3) and of the threshold-mode block scan of
// src/mask.c (SPEC section 4).
//   inputs: q, k (N, d) float32 post-RoPE rows on the host (uploaded into zero-padded device copies);
//   outputs: the decomp struct of decomp.h (s, v, h, alpha, kappa, mu, sigma2, log_lambda, nu, zeta,
//            fit statistics) and the (nb, nb) mask with the predicted block sparsity.
// Row statistics by chunks of C = 128 rows (chunk c: rows S + T + c C .., keys entering the
// interior S + c C ..): the exclusive prefix of the chunks' key Gram matrices and key sums (double
// scans of float GEMM results) gives the part before the chunk, one batched SGEMM of in-chunk
// products the rest. The Lambda-shape: one SGEMM against the sink keys and batched SGEMMs of
// 64-row chunks against their local key windows. Ridge samples are built on the device, their normal
// equations by DGEMM and solved by cuSOLVER's Cholesky (the ridge as ridge_solve_normal adds it).
// Per-row reductions accumulate in double, as the CPU does. Nothing waits for the host between the
// upload and the download of the results.
#include <cublas_v2.h>
#include <cusolverDn.h>
#include <math.h>
#include <string.h>

#include "gpu_common.cuh"
#include "mask_budget.cuh"

extern "C" {
#include "decomp.h"
#include "gpu.h"
#include "mask.h"
}

#define CUBLAS_CHECK(stmt)                                                                                \
    do {                                                                                                  \
        cublasStatus_t st_ = (stmt);                                                                      \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                                               \
            fprintf(stderr, "cuBLAS error at %s:%d: %s: status %d\n", __FILE__, __LINE__, #stmt, (int)st_); \
            abort();                                                                                      \
        }                                                                                                 \
    } while (0)

#define CUSOLVER_CHECK(stmt)                                                                                \
    do {                                                                                                    \
        cusolverStatus_t st_ = (stmt);                                                                      \
        if (st_ != CUSOLVER_STATUS_SUCCESS) {                                                               \
            fprintf(stderr, "cuSOLVER error at %s:%d: %s: status %d\n", __FILE__, __LINE__, #stmt, (int)st_); \
            abort();                                                                                        \
        }                                                                                                   \
    } while (0)

namespace {

constexpr int C = 128;   // rows per row-statistics chunk
constexpr int CL = 64;   // rows per Lambda-shape chunk
constexpr int CU = 16;   // rows per chunk of the u prefix sums used by the samples
constexpr int MAXD = 128;

// ---------------------------------------------------------------------------- kernels

// u_j = k_j rotated by -pos_j omega (SPEC section 3), as rope_unapply.
__global__ void unrope_kernel(float *u, const float *k, int64_t N, int d, const double *inv_freq, const int32_t *pos,
                              int half_layout) {
    const int64_t n = N * (d / 2);
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t j = e / (d / 2);
        const int x = (int)(e % (d / 2));
        double s, c;
        sincos(-(double)pos[j] * inv_freq[x], &s, &c);
        const int ia = half_layout ? x : 2 * x, ib = half_layout ? x + d / 2 : 2 * x + 1;
        const double ya = k[j * d + ia], yb = k[j * d + ib];
        u[j * d + ia] = (float)(ya * c - yb * s);
        u[j * d + ib] = (float)(ya * s + yb * c);
    }
}

// out[c] (d) = sum of src rows [r0 + c ch, r0 + (c+1) ch) below `end`, in double; grid nc, block d.
__global__ void chunk_colsum_kernel(double *out, const float *src, int d, int64_t r0, int ch, int64_t end) {
    const int64_t c = blockIdx.x;
    const int x = threadIdx.x;
    double s = 0;
    for (int64_t r = r0 + c * ch; r < r0 + (c + 1) * ch && r < end; r++) s += src[r * d + x];
    out[c * d + x] = s;
}

// In place: the first n rows of a (n [+ 1], w) become their exclusive prefix over the first index,
// accumulated in double (with_total: row n gets the total). A block of COLS x (1024 / COLS) threads
// takes COLS columns: each thread sums a segment of rows of its column (COLS consecutive addresses
// per row), the segment sums are scanned in shared memory, then each thread rewrites its segment.
template <typename Tv, int COLS>
__global__ void __launch_bounds__(1024) scan_cols_kernel(Tv *a, int64_t n, int64_t w, int with_total) {
    constexpr int SEGS = 1024 / COLS;
    __shared__ double seg[SEGS][COLS + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t x = blockIdx.x * COLS + tx, per = (n + SEGS - 1) / SEGS, r0 = ty * per, r1 = r0 + per < n ? r0 + per : n;
    double s = 0;
    if (x < w) {
#pragma unroll 8
        for (int64_t r = r0; r < r1; r++) s += a[r * w + x];
    }
    seg[ty][tx] = s;
    __syncthreads();
    if (ty == 0) {
        double run = 0;
        for (int k = 0; k < SEGS; k++) {
            const double v = seg[k][tx];
            seg[k][tx] = run;
            run += v;
        }
        if (with_total && x < w) a[n * w + x] = (Tv)run;
    }
    __syncthreads();
    if (x < w) {
        double run = seg[ty][tx];
#pragma unroll 8
        for (int64_t r = r0; r < r1; r++) {
            const Tv v = a[r * w + x];
            a[r * w + x] = (Tv)run;
            run += v;
        }
    }
}

__device__ __forceinline__ double warp_sum_d(double x) {
#pragma unroll
    for (int o = 16; o; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ double warp_max_d(double x) {
#pragma unroll
    for (int o = 16; o; o >>= 1) x = fmax(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// mu_i and sigma_i^2 of the interior rows, one warp per row:
//   lin = q_i . (keys before the chunk) + sum_{cc <= r} Z[r][cc],  quad = q_i G q_i + sum Z^2.
__global__ void row_stats_kernel(double *mu, double *sigma2, const float *q, const double *KP, const float *Y,
                                 const float *Z, int64_t N, int d, int S, int T, double c) {
    const int64_t i = S + T + (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (i >= N) return;
    const int64_t ch = (i - S - T) / C, r = (i - S - T) % C;
    double lin = 0, quad = 0;
    for (int x = lane; x < d; x += 32) {
        const double qx = q[i * d + x];
        lin += qx * KP[ch * d + x];
        quad += qx * (double)Y[(i - S - T) * d + x];
    }
    const float *zr = Z + (ch * C + r) * C;
    for (int64_t cc = lane; cc <= r; cc += 32) {
        const double z = zr[cc];
        lin += z, quad += z * z;
    }
    lin = warp_sum_d(lin), quad = warp_sum_d(quad);
    if (lane == 0) {
        const double n = (double)(i - T - S + 1), m = c * lin / n;
        const double var = c * c * quad / n - m * m;
        mu[i] = m;
        sigma2[i] = var > 0 ? var : 0;
    }
}

// log Lambda_i of the interior rows, one warp per row: S sink products (Zs) and T local ones (Zl).
__global__ void lambda_kernel(double *log_lambda, const double *mu, const float *Zs, const float *Zl, int64_t N, int S,
                              int T, int WL, double c) {
    const int64_t i = S + T + (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (i >= N) return;
    const int64_t ch = (i - S - T) / CL, r = (i - S - T) % CL;
    const double m = mu[i];
    double mx = -INFINITY;
    for (int t = lane; t < S + T; t += 32) {
        const float zr = t < S ? Zs[(i - S - T) * S + t] : Zl[(ch * CL + r) * WL + r + (t - S)];
        mx = fmax(mx, c * zr - m);
    }
    mx = warp_max_d(mx);
    double l = 0;
    for (int t = lane; t < S + T; t += 32) {
        const float zr = t < S ? Zs[(i - S - T) * S + t] : Zl[(ch * CL + r) * WL + r + (t - S)];
        l += exp(c * zr - m - mx);
    }
    l = warp_sum_d(l);
    if (lane == 0) log_lambda[i] = mx + log(l);
}

__device__ __forceinline__ float dotf_warp(const float *a, const float *b, int d, int lane) {
    float s = 0;
    for (int x = lane; x < d; x += 32) s += a[x] * b[x];
#pragma unroll
    for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}

// Rows without an interior (i < S + T): the normaliser exactly over their i + 1 keys. One block of
// 128 threads per row, z of its keys in shared memory (dynamic, i + 1 floats at most S + T).
__device__ __forceinline__ double block_sum_d(double x, double *red) {  // blockDim.x = 128
    x = warp_sum_d(x);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = x;
    __syncthreads();
    return red[0] + red[1] + red[2] + red[3];
}
__device__ __forceinline__ double block_max_d(double x, double *red) {
    x = warp_max_d(x);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = x;
    __syncthreads();
    return fmax(fmax(red[0], red[1]), fmax(red[2], red[3]));
}
__global__ void short_rows_kernel(double *mu, double *sigma2, double *log_lambda, double *nu, const float *q,
                                  const float *k, int d, double c) {
    extern __shared__ double zs[];
    __shared__ double red[4];
    const int64_t i = blockIdx.x;
    for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) {
        float s = 0;
        for (int x = 0; x < d; x++) s += q[i * d + x] * k[j * d + x];
        zs[j] = c * s;
    }
    __syncthreads();
    double sum = 0;
    for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) sum += zs[j];
    const double m = block_sum_d(sum, red) / (double)(i + 1);
    double mx = -INFINITY;
    for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) mx = fmax(mx, zs[j] - m);
    mx = block_max_d(mx, red);
    double l = 0;
    for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) l += exp(zs[j] - m - mx);
    l = block_sum_d(l, red);
    if (threadIdx.x == 0) mu[i] = m, sigma2[i] = 0, log_lambda[i] = nu[i] = mx + log(l);
}

// max and sum of exp(c z - max) over z (n): each block's pair into part (2 per block), then
// lse_merge_kernel merges them into out = {max, sum}. Blocks of 256 threads.
__global__ void lse_part_kernel(double *part, const float *z, int64_t n, double c) {
    __shared__ double red[8];
    double mx = -INFINITY;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x)
        mx = fmax(mx, c * z[t]);
    mx = warp_max_d(mx);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = mx;
    __syncthreads();
    mx = red[0];
    for (int w = 1; w < 8; w++) mx = fmax(mx, red[w]);
    __syncthreads();
    double l = 0;
    if (mx > -INFINITY)
        for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x)
            l += exp(c * z[t] - mx);
    l = warp_sum_d(l);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = l;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < 8; w++) l += red[w];
        part[2 * blockIdx.x] = mx, part[2 * blockIdx.x + 1] = l;
    }
}
__global__ void lse_merge_kernel(double *out, const double *part, int nparts) {
    if (threadIdx.x) return;
    double mx = -INFINITY, l = 0;
    for (int b = 0; b < nparts; b++) mx = fmax(mx, part[2 * b]);
    for (int b = 0; b < nparts; b++)
        if (part[2 * b] > -INFINITY) l += part[2 * b + 1] * exp(part[2 * b] - mx);
    out[0] = mx, out[1] = l;
}

// Sum of u over keys [S, x): the CU-row chunk prefix plus the rows of x's chunk before x.
__device__ __forceinline__ double u_prefix(const double *UP, const float *u, int d, int S, int64_t x, int col) {
    const int64_t ch = (x - S) / CU;
    double s = UP[ch * d + col];
    for (int64_t j = S + ch * CU; j < x; j++) s += u[j * d + col];
    return s;
}

// One ridge row per warp: a = [r_{I-J} - rbar_I, u_J - ubar_I] (2d), b = c q_I . k_J - mu_I.
__global__ void sample_rows_kernel(double *A, double *b, const int64_t *sI, const int64_t *sJ, int64_t ns,
                                   const float *q, const float *k, const float *u, const double *UP, const double *mu,
                                   const double *inv_freq, int d, int S, int T, double c) {
    const int64_t t = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (t >= ns) return;
    const int64_t I = sI[t], J = sJ[t], n = I - T - S + 1;
    double *a = A + t * 2 * d;
    for (int x = lane; x < d / 2; x += 32) {
        // rbar_I over offsets T .. I - S in closed form (decomp_rope_mean)
        const double w = inv_freq[x], sw = sin(w / 2);
        const double mag = fabs(sw) < 1e-300 ? (double)n : sin(n * w / 2) / sw;
        const double ph = (T + (n - 1) / 2.0) * w;
        double sn, cs;
        sincos((double)(I - J) * w, &sn, &cs);
        a[x] = cs - cos(ph) * mag / n;
        a[x + d / 2] = sn - sin(ph) * mag / n;
    }
    for (int x = lane; x < d; x += 32) a[d + x] = u[J * d + x] - u_prefix(UP, u, d, S, I - T + 1, x) / n;
    const float z = dotf_warp(q + I * d, k + J * d, d, lane);
    if (lane == 0) b[t] = c * z - mu[I];
}

// uk_j = u_j . kappa (double), one warp per key.
__global__ void uk_kernel(double *uk, const float *u, const double *kappa, int64_t N, int d) {
    const int64_t j = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (j >= N) return;
    double s = 0;
    for (int x = lane; x < d; x += 32) s += (double)u[j * d + x] * kappa[x];
    s = warp_sum_d(s);
    if (lane == 0) uk[j] = s;
}

// s_m = r_m alpha - rbar_{N-1} alpha. A thread takes SRUN consecutive offsets: r_m by a rotation
// recurrence from an exact sincos at the run's start (as the CPU, which re-anchors every 256).
constexpr int SRUN = 32;
__global__ void s_kernel(float *s, const double *alpha, const double *inv_freq, const double *rbarN, int64_t N, int d) {
    __shared__ double al[MAXD], fr[MAXD / 2], rba;
    for (int x = threadIdx.x; x < d; x += blockDim.x) al[x] = alpha[x];
    for (int x = threadIdx.x; x < d / 2; x += blockDim.x) fr[x] = inv_freq[x];
    if (threadIdx.x == 0) {
        double r = 0;
        for (int x = 0; x < d; x++) r += rbarN[x] * alpha[x];
        rba = r;
    }
    __syncthreads();
    const int64_t m0 = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) * SRUN;
    if (m0 >= N) return;
    double acc[SRUN];
#pragma unroll
    for (int t = 0; t < SRUN; t++) acc[t] = 0;
    for (int x = 0; x < d / 2; x++) {
        double sn, cs, ds, dc;
        sincos((double)m0 * fr[x], &sn, &cs);
        sincos(fr[x], &ds, &dc);
#pragma unroll
        for (int t = 0; t < SRUN; t++) {
            acc[t] += al[x] * cs + al[x + d / 2] * sn;
            const double ncs = cs * dc - sn * ds;
            sn = sn * dc + cs * ds;
            cs = ncs;
        }
    }
#pragma unroll
    for (int t = 0; t < SRUN; t++)
        if (m0 + t < N) s[m0 + t] = (float)(acc[t] - rba);
}

// The ridge (ridge_solve_normal): G += lambda^2 I with lambda = eps_r sqrt(trace G) / 2. One block.
__global__ void add_ridge_kernel(double *G, int n, double eps_r) {
    __shared__ double tr;
    if (threadIdx.x == 0) {
        double t = 0;
        for (int c = 0; c < n; c++) t += G[(size_t)c * n + c];
        tr = t;
    }
    __syncthreads();
    const double lam = eps_r * sqrt(tr) / 2;
    for (int c = threadIdx.x; c < n; c += blockDim.x) G[(size_t)c * n + c] += lam * lam;
}

// Device scalars: sc[0] = ubar_{N-1} kappa (from the prefix pv), sc[1] = zeta (from the last row's
// log-sum-exp red = {max, sum} and its mu, sigma^2).
__global__ void scalars_kernel(double *sc, const double *pv, const double *red, const double *mu, const double *sigma2,
                               int64_t N, int S, int T) {
    const int64_t nlast = N - T - S;
    sc[0] = (pv[N - T] - pv[S]) / nlast;
    sc[1] = mu[N - 1] + sigma2[N - 1] / 2 - (red[0] + log(red[1] / nlast));
}

// Exclusive prefix sums out (n + 1) of x_m = (double)sf[m] (when sf) or xd[m] - *offp (0 when offp
// is NULL), in three steps: each block of 256 threads sums a tile of SCAN_TILE elements (scan_sums),
// one block scans the tile sums (scan_tiles), each block rescans its tile from its offset (scan_out).
constexpr int SCAN_TILE = 4096, SCAN_PER = SCAN_TILE / 256;
__device__ __forceinline__ double scan_x(const float *sf, const double *xd, double off, int64_t m) {
    return sf ? (double)sf[m] : xd[m] - off;
}
__global__ void scan_sums_kernel(double *tiles, const float *sf, const double *xd, const double *offp, int64_t n) {
    __shared__ double red[8];
    const double off = offp ? *offp : 0.0;
    double s = 0;
    for (int64_t m = blockIdx.x * (int64_t)SCAN_TILE + threadIdx.x; m < n && m < (blockIdx.x + 1) * (int64_t)SCAN_TILE; m += 256)
        s += scan_x(sf, xd, off, m);
    s = warp_sum_d(s);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < 8; w++) s += red[w];
        tiles[blockIdx.x] = s;
    }
}
__global__ void scan_tiles_kernel(double *tiles, double *out, int64_t ntiles, int64_t n) {
    if (threadIdx.x) return;
    double run = 0;
    for (int64_t b = 0; b < ntiles; b++) {
        const double v = tiles[b];
        tiles[b] = run;
        run += v;
    }
    out[n] = run;
}
__global__ void scan_out_kernel(double *out, const double *tiles, const float *sf, const double *xd, const double *offp,
                                int64_t n) {
    __shared__ double part[256];
    const double off = offp ? *offp : 0.0;
    const int64_t a0 = blockIdx.x * (int64_t)SCAN_TILE + threadIdx.x * SCAN_PER;
    double v[SCAN_PER], s = 0;
#pragma unroll
    for (int t = 0; t < SCAN_PER; t++) v[t] = a0 + t < n ? scan_x(sf, xd, off, a0 + t) : 0.0, s += v[t];
    part[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x < 32) {  // one warp scans the 256 thread sums, 8 per lane
        double loc[8], tot = 0;
#pragma unroll
        for (int t = 0; t < 8; t++) loc[t] = part[threadIdx.x * 8 + t], tot += loc[t];
        double inc = tot;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const double y = __shfl_up_sync(0xffffffffu, inc, o);
            if ((int)threadIdx.x >= o) inc += y;
        }
        double run = inc - tot;
#pragma unroll
        for (int t = 0; t < 8; t++) part[threadIdx.x * 8 + t] = run, run += loc[t];
    }
    __syncthreads();
    double run = tiles[blockIdx.x] + part[threadIdx.x];
#pragma unroll
    for (int t = 0; t < SCAN_PER; t++)
        if (a0 + t < n) out[a0 + t] = run, run += v[t];
}

// v_j and h_i, one thread per position.
__global__ void vh_kernel(float *v, float *h, double *nu, const double *uk, const double *sc, const double *ps,
                          const double *pv, const double *log_lambda, const double *sigma2, int64_t N, int S, int T) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= N) return;
    const double ubarN_kappa = sc[0], zeta = sc[1];
    v[i] = (float)(uk[i] - ubarN_kappa);
    const int64_t n = i - T - S + 1;
    if (n < 1) {
        h[i] = (float)(-nu[i]);
        return;
    }
    const double delta = (ps[i - S + 1] - ps[T]) / n, epsi = (pv[i - T + 1] - pv[S]) / n;
    const double a = log_lambda[i], bt = log((double)n) + sigma2[i] / 2 - zeta;
    const double hi = a > bt ? a : bt, lo = a > bt ? bt : a;
    nu[i] = hi + log1p(exp(lo - hi));
    h[i] = (float)(-delta - epsi - nu[i]);
}

// Block maxima of s, v, h (mask_block_vectors): Mb, vB, hB (nb).
__global__ void block_vectors_kernel(float *Mb, float *vB, float *hB, const float *s, const float *v, const float *h,
                                     int64_t N, int B, int64_t nb) {
    const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (b >= nb) return;
    float ms = -INFINITY, mv = -INFINITY, mh = -INFINITY;
    for (int64_t x = b * B; x < (b + 1) * B && x < N; x++) ms = fmaxf(ms, s[x]), mv = fmaxf(mv, v[x]), mh = fmaxf(mh, h[x]);
    Mb[b] = ms, vB[b] = mv, hB[b] = mh;
}

// The threshold-mode block scan (mask_skeleton): mask (nb, nb) and the count of causal blocks whose
// score is below tauB. Grid-stride over rows I (y) and columns J (x).
__global__ void mask_kernel(uint8_t *mask, unsigned long long *below, const float *Mb, const float *vB, const float *hB,
                            int64_t nb, float tauB, int64_t sink_cols, int64_t band, int keep_above) {
    unsigned long long cnt = 0;
    for (int64_t I = blockIdx.y; I < nb; I += gridDim.y)
        for (int64_t J = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; J < nb; J += (int64_t)gridDim.x * blockDim.x) {
            uint8_t keep = 0;
            if (J <= I) {
                const int64_t kk = I - J;
                const float sB = kk == 0 ? Mb[0] : 0.5f * (Mb[kk - 1] + Mb[kk]);
                const float sc = sB + vB[J] + hB[I];
                cnt += sc < tauB;
                keep = J < sink_cols || kk <= band || (keep_above && sc >= tauB);
            }
            mask[I * nb + J] = keep;
        }
#pragma unroll
    for (int o = 16; o; o >>= 1) cnt += __shfl_xor_sync(0xffffffffu, cnt, o);
    if ((threadIdx.x & 31) == 0 && cnt) atomicAdd(below, cnt);
}

unsigned blocks_for(int64_t threads, int per_block) { return (unsigned)((threads + per_block - 1) / per_block); }

constexpr int LSE_PARTS = 256;

// out (n + 1): exclusive prefix sums (see scan_out_kernel); tiles: ceil(n / SCAN_TILE) doubles.
void scan_device(double *out, double *tiles, const float *sf, const double *xd, const double *offp, int64_t n) {
    const unsigned nt = blocks_for(n, SCAN_TILE);
    scan_sums_kernel<<<nt, 256>>>(tiles, sf, xd, offp, n);
    CUDA_CHECK_LAUNCH();
    scan_tiles_kernel<<<1, 32>>>(tiles, out, nt, n);
    CUDA_CHECK_LAUNCH();
    scan_out_kernel<<<nt, 256>>>(out, tiles, sf, xd, offp, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

// ---------------------------------------------------------------------------- entry points

struct gpu_decomp {
    int64_t N, Npad, nch, ncl, ncu, ns;
    int d, S, T, M, WL;
    double ridge;
    uint64_t seed;
    cublasHandle_t blas;
    cusolverDnHandle_t solver;
    double *work;        // (lwork) cuSOLVER workspace
    int lwork;
    int *info;           // cuSOLVER's factorisation status
    double *rbarN;       // (d) rbar of the last row
    double *sc;          // (2) ubar_{N-1} kappa, zeta
    float *q, *k;        // (Npad, d) zero-padded copies
    float *u;            // (N, d) un-RoPE'd keys
    double *inv_freq;    // (d / 2)
    int32_t *pos;        // (N)
    double *KP;          // (nch + 1, d) exclusive prefix of the chunks' key sums (keys from S)
    double *UP;          // (ncu + 1, d) the same for u in chunks of CU
    float *G;            // (nch, d, d) the chunks' key Grams, then their exclusive prefix
    float *Y;            // (nch C, d) q_i G
    float *Z;            // (nch, C, C) in-chunk products q_i . k_j
    float *Zs;           // (N - S - T, S) sink products
    float *Zl;           // (ncl, CL, WL) local-window products
    float *zlast;        // (N) the last row's interior products
    double *mu, *sigma2, *log_lambda, *nu;  // (N)
    int64_t *sI, *sJ;    // (ns) samples
    double *A, *b;       // (ns, 2d), (ns)
    double *AtA, *Atb, *x, *pred;  // (2d, 2d), (2d), (2d), (ns / 2)
    double *uk, *ps, *pv;  // (N), (N + 1), (N + 1)
    float *s, *v, *h;    // (N)
    double *red;         // (4)
    double *tiles;       // (max(ceil(N / SCAN_TILE), 2 LSE_PARTS)) partial sums of the scans and the last row's lse
    float *Mb, *vB, *hB; // (nb) for the largest block count asked for (B >= 16)
    uint8_t *mask;       // (nb, nb)
    unsigned long long *below;
    void *budget;        // the budget selection's scratch (mask_budget.cuh)
    int64_t nb_cap;
    cudaEvent_t ev[4];
};

static int dev_alloc(void **p, size_t bytes, size_t *total) {
    *total += bytes;
    if (cudaMalloc(p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return -1;
    }
    return 0;
}

extern "C" void gpu_decomp_free(gpu_decomp *g) {
    if (!g) return;
    void *bufs[] = {g->q, g->k, g->u, g->inv_freq, g->pos, g->KP, g->UP, g->G, g->Y, g->Z, g->Zs, g->Zl, g->zlast,
                    g->mu, g->sigma2, g->log_lambda, g->nu, g->sI, g->sJ, g->A, g->b, g->AtA, g->Atb, g->x, g->pred,
                    g->uk, g->ps, g->pv, g->s, g->v, g->h, g->red, g->Mb, g->vB, g->hB, g->mask, g->below,
                    g->budget, g->work, g->info, g->rbarN, g->sc, g->tiles};
    for (size_t x = 0; x < sizeof bufs / sizeof bufs[0]; x++)
        if (bufs[x]) CUDA_CHECK(cudaFree(bufs[x]));
    if (g->blas) CUBLAS_CHECK(cublasDestroy(g->blas));
    if (g->solver) CUSOLVER_CHECK(cusolverDnDestroy(g->solver));
    for (int x = 0; x < 4; x++)
        if (g->ev[x]) CUDA_CHECK(cudaEventDestroy(g->ev[x]));
    free(g);
}

extern "C" int gpu_decomp_init(gpu_decomp **out, int64_t N, int d, const decomp_params *prm, int B, skel_err *e) {
    *out = NULL;
    if (!gpu_probe(NULL, 0, e)) return -1;
    if (d > MAXD || d % 2) return skel_fail(e, "head_dim %d: the GPU decomposition handles even d up to %d", d, MAXD);
    if (prm->S + prm->T > 4096)  // the short rows' products sit in shared memory
        return skel_fail(e, "--sink %d + --local %d: the GPU decomposition handles at most 4096", prm->S, prm->T);
    if (N < (int64_t)prm->S + prm->T + 2)
        return skel_fail(e, "N = %lld tokens is too small for sink %d + local %d (needs at least %d)", (long long)N,
                         prm->S, prm->T, prm->S + prm->T + 2);
    gpu_decomp *g = (gpu_decomp *)calloc(1, sizeof *g);
    CHECK(g);
    g->N = N, g->d = d, g->S = prm->S, g->T = prm->T, g->M = prm->M > 0 ? prm->M : 80 * d;
    g->ridge = prm->ridge, g->seed = prm->seed;
    const int64_t nint = N - g->S - g->T;  // rows with an interior
    g->nch = (nint + C - 1) / C, g->ncl = (nint + CL - 1) / CL, g->ncu = (N - g->S + CU - 1) / CU;
    g->WL = CL + g->T;
    g->ns = 2 * (int64_t)g->M;
    // padded rows: chunk c reads queries S + T + c C + r and keys S + c C + cc, Lambda chunks up to
    // S + T + ncl CL + CL keys
    const int64_t need_q = g->S + g->T + (g->nch * C > g->ncl * CL ? g->nch * C : g->ncl * CL);
    const int64_t need_k = g->S + g->T + g->ncl * CL + CL;
    g->Npad = need_q > need_k ? need_q : need_k;
    g->nb_cap = (N + B - 1) / B;
    const size_t fd = sizeof(float) * d, dd = sizeof(double) * d, w = 2 * (size_t)d;
    size_t total = 0;
    int bad = 0;
    bad |= dev_alloc((void **)&g->q, g->Npad * fd, &total);
    bad |= dev_alloc((void **)&g->k, g->Npad * fd, &total);
    bad |= dev_alloc((void **)&g->u, N * fd, &total);
    bad |= dev_alloc((void **)&g->inv_freq, sizeof(double) * d / 2, &total);
    bad |= dev_alloc((void **)&g->pos, sizeof(int32_t) * N, &total);
    bad |= dev_alloc((void **)&g->KP, (g->nch + 1) * dd, &total);
    bad |= dev_alloc((void **)&g->UP, (g->ncu + 1) * dd, &total);
    bad |= dev_alloc((void **)&g->G, g->nch * d * fd, &total);
    bad |= dev_alloc((void **)&g->Y, g->nch * C * fd, &total);
    bad |= dev_alloc((void **)&g->Z, g->nch * (size_t)C * C * sizeof(float), &total);
    bad |= dev_alloc((void **)&g->Zs, nint * (size_t)(g->S ? g->S : 1) * sizeof(float), &total);
    bad |= dev_alloc((void **)&g->Zl, g->ncl * (size_t)CL * g->WL * sizeof(float), &total);
    bad |= dev_alloc((void **)&g->zlast, sizeof(float) * N, &total);
    bad |= dev_alloc((void **)&g->mu, sizeof(double) * N, &total);
    bad |= dev_alloc((void **)&g->sigma2, sizeof(double) * N, &total);
    bad |= dev_alloc((void **)&g->log_lambda, sizeof(double) * N, &total);
    bad |= dev_alloc((void **)&g->nu, sizeof(double) * N, &total);
    bad |= dev_alloc((void **)&g->sI, sizeof(int64_t) * g->ns, &total);
    bad |= dev_alloc((void **)&g->sJ, sizeof(int64_t) * g->ns, &total);
    bad |= dev_alloc((void **)&g->A, sizeof(double) * g->ns * w, &total);
    bad |= dev_alloc((void **)&g->b, sizeof(double) * g->ns, &total);
    bad |= dev_alloc((void **)&g->AtA, sizeof(double) * w * w, &total);
    bad |= dev_alloc((void **)&g->Atb, sizeof(double) * w, &total);
    bad |= dev_alloc((void **)&g->x, sizeof(double) * w, &total);
    bad |= dev_alloc((void **)&g->pred, sizeof(double) * g->M, &total);
    bad |= dev_alloc((void **)&g->uk, sizeof(double) * N, &total);
    bad |= dev_alloc((void **)&g->ps, sizeof(double) * (N + 1), &total);
    bad |= dev_alloc((void **)&g->pv, sizeof(double) * (N + 1), &total);
    bad |= dev_alloc((void **)&g->s, sizeof(float) * N, &total);
    bad |= dev_alloc((void **)&g->v, sizeof(float) * N, &total);
    bad |= dev_alloc((void **)&g->h, sizeof(float) * N, &total);
    bad |= dev_alloc((void **)&g->red, sizeof(double) * 4, &total);
    bad |= dev_alloc((void **)&g->Mb, sizeof(float) * g->nb_cap, &total);
    bad |= dev_alloc((void **)&g->vB, sizeof(float) * g->nb_cap, &total);
    bad |= dev_alloc((void **)&g->hB, sizeof(float) * g->nb_cap, &total);
    bad |= dev_alloc((void **)&g->mask, (size_t)g->nb_cap * g->nb_cap, &total);
    bad |= dev_alloc(&g->budget, gpu_mask_budget_scratch_bytes(g->nb_cap), &total);
    bad |= dev_alloc((void **)&g->below, sizeof(unsigned long long), &total);
    bad |= dev_alloc((void **)&g->info, sizeof(int), &total);
    bad |= dev_alloc((void **)&g->rbarN, sizeof(double) * d, &total);
    bad |= dev_alloc((void **)&g->sc, sizeof(double) * 2, &total);
    bad |= dev_alloc((void **)&g->tiles, sizeof(double) * (N / SCAN_TILE + 1 + 2 * LSE_PARTS), &total);
    if (bad) {
        size_t free_b = 0, total_b = 0;
        CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
        gpu_decomp_free(g);
        const double GiB = 1024.0 * 1024.0 * 1024.0;
        return skel_fail(e, "GPU out of memory: the decomposition of a head of N = %lld tokens (d = %d) needs %.2f GiB of device memory; %.2f GiB of %.2f GiB was free",
                         (long long)N, d, total / GiB, free_b / GiB, total_b / GiB);
    }
    CUDA_CHECK(cudaMemset(g->q, 0, g->Npad * fd));
    CUDA_CHECK(cudaMemset(g->k, 0, g->Npad * fd));
    CUBLAS_CHECK(cublasCreate(&g->blas));
    CUBLAS_CHECK(cublasSetMathMode(g->blas, CUBLAS_PEDANTIC_MATH));  // true float32 GEMMs, no TF32
    CUSOLVER_CHECK(cusolverDnCreate(&g->solver));
    CUSOLVER_CHECK(cusolverDnDpotrf_bufferSize(g->solver, CUBLAS_FILL_MODE_UPPER, (int)w, g->AtA, (int)w, &g->lwork));
    CUDA_CHECK(cudaMalloc((void **)&g->work, sizeof(double) * (g->lwork > 0 ? g->lwork : 1)));
    for (int x = 0; x < 4; x++) CUDA_CHECK(cudaEventCreate(&g->ev[x]));
    *out = g;
    return 0;
}

static float elapsed_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms;
}

extern "C" int gpu_decomp_compute(gpu_decomp *g, decomp *D, const float *q, const float *k, int k_changed,
                                  const double *inv_freq, const int32_t *pos, rope_layout layout, const mask_params *mp,
                                  uint8_t *mask, double *pred_block_sparsity, gpu_decomp_times *tm, skel_err *e) {
    const int64_t N = g->N, nint = N - g->S - g->T, ns = g->ns;
    const int d = g->d, S = g->S, T = g->T, M = g->M, w = 2 * d;
    const double c = 1.0 / sqrt((double)d);
    CHECK(D->N == N && D->d == d && D->prm.S == S && D->prm.T == T && D->prm.M == M);
    const float one = 1.f, zero = 0.f;
    const double oned = 1.0, zerod = 0.0;
    cublasHandle_t hb = g->blas;

    CUDA_CHECK(cudaEventRecord(g->ev[0]));
    CUDA_CHECK(cudaMemcpy(g->q, q, sizeof(float) * N * d, cudaMemcpyHostToDevice));
    if (k_changed) {
        CUDA_CHECK(cudaMemcpy(g->k, k, sizeof(float) * N * d, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(g->inv_freq, inv_freq, sizeof(double) * d / 2, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(g->pos, pos, sizeof(int32_t) * N, cudaMemcpyHostToDevice));
    }
    int64_t *hI = (int64_t *)malloc(sizeof(int64_t) * ns), *hJ = (int64_t *)malloc(sizeof(int64_t) * ns);
    CHECK(hI && hJ);
    decomp_draw_samples(hI, hJ, ns, N, S, T, g->seed);
    {
        double rbarN[2 * MAXD];
        decomp_rope_mean(rbarN, inv_freq, d, T, N - T - S);
        CUDA_CHECK(cudaMemcpy(g->rbarN, rbarN, sizeof(double) * d, cudaMemcpyHostToDevice));
    }
    CUDA_CHECK(cudaMemcpy(g->sI, hI, sizeof(int64_t) * ns, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(g->sJ, hJ, sizeof(int64_t) * ns, cudaMemcpyHostToDevice));
    free(hI), free(hJ);
    CUDA_CHECK(cudaEventRecord(g->ev[1]));

    // ------------------------------------------------------------ keys: u, prefix sums, Grams
    if (k_changed) {
        unrope_kernel<<<1024, 256>>>(g->u, g->k, N, d, g->inv_freq, g->pos, layout == ROPE_HALF);
        CUDA_CHECK_LAUNCH();
        chunk_colsum_kernel<<<(unsigned)g->ncu, d>>>(g->UP, g->u, d, S, CU, N);
        CUDA_CHECK_LAUNCH();
        scan_cols_kernel<double, 8><<<blocks_for(d, 8), dim3(8, 128)>>>(g->UP, g->ncu, d, 1);
        CUDA_CHECK_LAUNCH();
        chunk_colsum_kernel<<<(unsigned)g->nch, d>>>(g->KP, g->k, d, S, C, N - T);
        CUDA_CHECK_LAUNCH();
        scan_cols_kernel<double, 8><<<blocks_for(d, 8), dim3(8, 128)>>>(g->KP, g->nch, d, 1);
        CUDA_CHECK_LAUNCH();
        // Gram of chunk c's keys S + c C .. +C (col-major d x C blocks): G_c = K_c K_c^T
        CUBLAS_CHECK(cublasSgemmStridedBatched(hb, CUBLAS_OP_N, CUBLAS_OP_T, d, d, C, &one, g->k + (size_t)S * d, d,
                                               (long long)C * d, g->k + (size_t)S * d, d, (long long)C * d, &zero, g->G, d,
                                               (long long)d * d, (int)g->nch));
        scan_cols_kernel<float, 32><<<blocks_for((int64_t)d * d, 32), dim3(32, 32)>>>(g->G, g->nch, (int64_t)d * d, 0);
        CUDA_CHECK_LAUNCH();
    }
    // ------------------------------------------------------------ mu, sigma^2
    const float *qc0 = g->q + (size_t)(S + T) * d, *kc0 = g->k + (size_t)S * d;
    // Y (C x d per chunk, row-major) = Q_c G_c; column-major: Y^T = G_c Q_c^T
    CUBLAS_CHECK(cublasSgemmStridedBatched(hb, CUBLAS_OP_N, CUBLAS_OP_N, d, C, d, &one, g->G, d, (long long)d * d, qc0,
                                           d, (long long)C * d, &zero, g->Y, d, (long long)C * d, (int)g->nch));
    // Z[r][cc] = q_{i0+r} . k_{j0+cc}: column-major (C x C) = K_c^T Q_c
    CUBLAS_CHECK(cublasSgemmStridedBatched(hb, CUBLAS_OP_T, CUBLAS_OP_N, C, C, d, &one, kc0, d, (long long)C * d, qc0, d,
                                           (long long)C * d, &zero, g->Z, C, (long long)C * C, (int)g->nch));
    row_stats_kernel<<<blocks_for(nint * 32, 256), 256>>>(g->mu, g->sigma2, g->q, g->KP, g->Y, g->Z, N, d, S, T, c);
    CUDA_CHECK_LAUNCH();
    // ------------------------------------------------------------ Lambda-shape, short rows, zeta
    if (S > 0)  // Zs (nint x S, row-major) = Q_int K_sink^T
        CUBLAS_CHECK(cublasSgemm(hb, CUBLAS_OP_T, CUBLAS_OP_N, S, (int)nint, d, &one, g->k, d, qc0, d, &zero, g->Zs, S));
    // Zl[r][w] = q_{i0+r} . k_{i0-T+1+w}
    CUBLAS_CHECK(cublasSgemmStridedBatched(hb, CUBLAS_OP_T, CUBLAS_OP_N, g->WL, CL, d, &one, g->k + (size_t)(S + 1) * d,
                                           d, (long long)CL * d, qc0, d, (long long)CL * d, &zero, g->Zl, g->WL,
                                           (long long)CL * g->WL, (int)g->ncl));
    lambda_kernel<<<blocks_for(nint * 32, 256), 256>>>(g->log_lambda, g->mu, g->Zs, g->Zl, N, S, T, g->WL, c);
    CUDA_CHECK_LAUNCH();
    short_rows_kernel<<<S + T, 128, sizeof(double) * (S + T)>>>(g->mu, g->sigma2, g->log_lambda, g->nu, g->q, g->k, d, c);
    CUDA_CHECK_LAUNCH();
    const int64_t nlast = N - T - S;  // interior of row N - 1
    CUBLAS_CHECK(cublasSgemv(hb, CUBLAS_OP_T, d, (int)nlast, &one, kc0, d, g->q + (size_t)(N - 1) * d, 1, &zero, g->zlast, 1));
    lse_part_kernel<<<LSE_PARTS, 256>>>(g->tiles, g->zlast, nlast, c);
    CUDA_CHECK_LAUNCH();
    lse_merge_kernel<<<1, 32>>>(g->red, g->tiles, LSE_PARTS);
    CUDA_CHECK_LAUNCH();
    // ------------------------------------------------------------ samples and the normal equations
    sample_rows_kernel<<<blocks_for(ns * 32, 256), 256>>>(g->A, g->b, g->sI, g->sJ, ns, g->q, g->k, g->u, g->UP, g->mu,
                                                          g->inv_freq, d, S, T, c);
    CUDA_CHECK_LAUNCH();
    // A (M x w, row-major) is A^T column-major: A^T A = At At^T, A^T b = At b
    CUBLAS_CHECK(cublasDgemm(hb, CUBLAS_OP_N, CUBLAS_OP_T, w, w, M, &oned, g->A, w, g->A, w, &zerod, g->AtA, w));
    CUBLAS_CHECK(cublasDgemv(hb, CUBLAS_OP_N, w, M, &oned, g->A, w, g->b, 1, &zerod, g->Atb, 1));
    add_ridge_kernel<<<1, 256>>>(g->AtA, w, g->ridge);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(g->x, g->Atb, sizeof(double) * w, cudaMemcpyDeviceToDevice));
    CUSOLVER_CHECK(cusolverDnDpotrf(g->solver, CUBLAS_FILL_MODE_UPPER, w, g->AtA, w, g->work, g->lwork, g->info));
    CUSOLVER_CHECK(cusolverDnDpotrs(g->solver, CUBLAS_FILL_MODE_UPPER, w, 1, g->AtA, w, g->x, w, g->info));
    // held-out predictions: rows M .. 2M
    CUBLAS_CHECK(cublasDgemv(hb, CUBLAS_OP_T, w, M, &oned, g->A + (size_t)M * w, w, g->x, 1, &zerod, g->pred, 1));
    // ------------------------------------------------------------ s, v, h
    uk_kernel<<<blocks_for(N * 32, 256), 256>>>(g->uk, g->u, g->x + d, N, d);
    CUDA_CHECK_LAUNCH();
    s_kernel<<<blocks_for((N + SRUN - 1) / SRUN, 128), 128>>>(g->s, g->x, g->inv_freq, g->rbarN, N, d);
    CUDA_CHECK_LAUNCH();
    scan_device(g->pv, g->tiles, NULL, g->uk, NULL, N);  // for sum_{S..N-1-T} uk first
    scalars_kernel<<<1, 1>>>(g->sc, g->pv, g->red, g->mu, g->sigma2, N, S, T);
    CUDA_CHECK_LAUNCH();
    scan_device(g->pv, g->tiles, NULL, g->uk, g->sc, N);
    scan_device(g->ps, g->tiles, g->s, NULL, NULL, N);
    vh_kernel<<<blocks_for(N, 256), 256>>>(g->v, g->h, g->nu, g->uk, g->sc, g->ps, g->pv, g->log_lambda, g->sigma2, N,
                                           S, T);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaEventRecord(g->ev[2]));
    // ------------------------------------------------------------ mask (threshold mode scan; budget
    // mode keeps the scores' forced blocks here and leaves the selection to the caller)
    if (mask) {
        const int B = mp->B;
        const int64_t nb = (N + B - 1) / B;
        CHECK(nb <= g->nb_cap);
        block_vectors_kernel<<<blocks_for(nb, 256), 256>>>(g->Mb, g->vB, g->hB, g->s, g->v, g->h, N, B, nb);
        CUDA_CHECK_LAUNCH();
        CUDA_CHECK(cudaMemsetAsync(g->below, 0, sizeof(unsigned long long)));
        dim3 gr(blocks_for(nb < 4096 ? nb : 4096, 256), (unsigned)(nb < 65535 ? nb : 65535));
        const int64_t sink_cols = (mp->S + B - 1) / B, band = (mp->T + B - 1) / B;
        mask_kernel<<<gr, 256>>>(g->mask, g->below, g->Mb, g->vB, g->hB, nb, (float)log(mp->eps * B / (double)N),
                                 sink_cols, band, mp->budget <= 0);
        CUDA_CHECK_LAUNCH();
        if (mp->budget > 0) {  // after the forced blocks, the best others until rho of the causal blocks
            const int64_t ncausal = nb * (nb + 1) / 2;
            int64_t forced = 0;
            for (int64_t I = 0; I < nb; I++) {  // J < sink_cols or I - J <= band, J <= I
                const int64_t a = sink_cols < I + 1 ? sink_cols : I + 1, b = band + 1 < I + 1 ? band + 1 : I + 1;
                const int64_t lo = I - band > 0 ? I - band : 0, both = a - lo > 0 ? a - lo : 0;
                forced += a + b - both;
            }
            int64_t want = (int64_t)ceil(mp->budget * ncausal) - forced;
            if (want > ncausal - forced) want = ncausal - forced;
            gpu_mask_budget(g->mask, g->Mb, g->vB, g->hB, nb, want, g->budget);
        }
    }
    CUDA_CHECK(cudaEventRecord(g->ev[3]));
    // ------------------------------------------------------------ results back
    int info = 0;
    double xs[2 * MAXD], sc[2];
    CUDA_CHECK(cudaMemcpy(&info, g->info, sizeof(int), cudaMemcpyDeviceToHost));
    if (info) return skel_fail(e, "ridge normal equations are not positive definite (degenerate head?)");
    CUDA_CHECK(cudaMemcpy(xs, g->x, sizeof(double) * w, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(sc, g->sc, sizeof(double) * 2, cudaMemcpyDeviceToHost));
    memcpy(D->alpha, xs, sizeof(double) * d);
    memcpy(D->kappa, xs + d, sizeof(double) * d);
    D->zeta = sc[1];
    CUDA_CHECK(cudaMemcpy(D->s, g->s, sizeof(float) * N, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(D->v, g->v, sizeof(float) * N, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(D->h, g->h, sizeof(float) * N, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(D->mu, g->mu, sizeof(double) * N, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(D->sigma2, g->sigma2, sizeof(double) * N, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(D->log_lambda, g->log_lambda, sizeof(double) * N, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(D->nu, g->nu, sizeof(double) * N, cudaMemcpyDeviceToHost));
    {
        double *bh = (double *)malloc(sizeof(double) * M * 2);
        CHECK(bh);
        CUDA_CHECK(cudaMemcpy(bh, g->b + M, sizeof(double) * M, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(bh + M, g->pred, sizeof(double) * M, cudaMemcpyDeviceToHost));
        double sb = 0, sbb = 0, sr = 0;
        for (int t = 0; t < M; t++) {
            const double r = bh[t] - bh[M + t];
            sr += r * r, sb += bh[t], sbb += bh[t] * bh[t];
        }
        const double var = sbb - sb * sb / M;
        D->fit_rmse = sqrt(sr / M);
        D->fit_r2 = var > 0 ? 1 - sr / var : 0;
        free(bh);
    }
    if (mask) {
        const int64_t nb = (N + mp->B - 1) / mp->B;
        unsigned long long below = 0;
        CUDA_CHECK(cudaMemcpy(mask, g->mask, (size_t)nb * nb, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(&below, g->below, sizeof below, cudaMemcpyDeviceToHost));
        if (pred_block_sparsity) *pred_block_sparsity = (double)below / ((double)nb * (nb + 1) / 2);
    }
    if (tm) {
        CUDA_CHECK(cudaEventSynchronize(g->ev[3]));
        tm->upload_ms = elapsed_ms(g->ev[0], g->ev[1]);
        tm->decomp_ms = elapsed_ms(g->ev[1], g->ev[2]);
        tm->mask_ms = elapsed_ms(g->ev[2], g->ev[3]);
    }
    return 0;
}
