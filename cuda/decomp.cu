// decomp.cu: GPU twin of src/decomp.c (SPEC section 3) and of the threshold-mode block scan of
// src/mask.c (SPEC section 4).
//   inputs: q, k (N, d) float32 post-RoPE rows on the host (uploaded into zero-padded device copies);
//   outputs: the decomp struct of decomp.h (s, v, h, alpha, kappa, mu, sigma2, log_lambda, nu, zeta,
//            fit statistics) and the (nb, nb) mask with the predicted block sparsity.
// Row statistics by chunks of C = 128 rows (chunk c: rows S + T + c C .., keys entering the
// interior S + c C ..): the exclusive prefix of the chunks' (centred) key Gram matrices and of the
// key sums gives the part before the chunk; one CTA per chunk (rows_kernel) does the rest on the
// tensor cores in split float16 precision (hi + lo operands, three mma.sync per product: float32-
// level products): q G q against the prefix Gram, the in-chunk products and the Lambda-shape's sink
// and local products (for float16 dumps the keys' float16 copy k16 as they are, one mma a product).
// The Grams (gram_kernel) are also split-precision mma, summed over segments of
// GSEG chunks in shared memory, the segments' prefix by a small scan. The fit's ridge samples are built on
// the device (their mu from a fine key prefix), their normal equations by double mma (ata_kernel) and solved by a one-CTA
// tiled Cholesky (chol.cuh; the ridge as ridge_solve_normal adds it); that chain (with u, s and the prefix
// sums of v and s) runs on a second stream, at the highest priority; the Grams and row statistics start
// once its normal equations are formed and run beside the Cholesky. The held-out samples need no features
// (heldout_kernel). Per-row reductions accumulate in double, as the CPU does. The work is one CUDA graph
// (captured at the first call of each kind), and nothing waits for the host between the upload and the
// download of the results.
// bench/decomp_timeline.sh shows when each kernel of the graph runs.
#include <math.h>
#include <string.h>

#include "chol.cuh"
#include "gpu_common.cuh"
#include "mask_budget.cuh"

extern "C" {
#include "decomp.h"
#include "gpu.h"
#include "mask.h"
}

namespace {

constexpr int C = 128;   // rows per row-statistics chunk (one CTA of rows_kernel)
constexpr int CU = 8;   // rows per chunk of the u prefix sums used by the samples
constexpr int MAXD = 128;

// ---------------------------------------------------------------------------- kernels

// sincos of a large argument (|x| up to ~1e9: positions times frequencies): reduced by 2 pi in
// double-double first (error ~1e-16), so that the library's sincos stays on its fast path.
__device__ __forceinline__ void sincos_big(double x, double *s, double *c) {
    const double n = rint(x * 0.15915494309189533577);
    const double r = fma(-n, 2.4492935982947064e-16, fma(-n, 6.283185307179586232, x));
    sincos(r, s, c);
}

// A block's log-sum-exp parts from its 8 warps' {max, sum of exp(y - max)} in red: part[0] = the max,
// part[1] = the sum of exp(y - part[0]) (-inf and 0 when no warp had a value). Thread 0 only.
__device__ __forceinline__ void lse_block_merge(double *part, const double (*red)[8]) {
    double M = red[0][0], L = 0;
    for (int w = 1; w < 8; w++) M = fmax(M, red[0][w]);
    if (M > -INFINITY)
        for (int w = 0; w < 8; w++)
            if (red[0][w] > -INFINITY) L += red[1][w] * exp(red[0][w] - M);
    part[0] = M, part[1] = L;
}

// u_j = k_j rotated by -pos_j omega (SPEC section 3), as rope_unapply, and the samples' u and k sums
// (decomp6): one pass unropes k into u and forms the CU-row chunk sums
// of both (keys from S), CUSEG chunks per CTA, written as each chunk's exclusive prefix within its
// segment, PF[c] = [u sums | k sums] (2d, float: sums of fewer than CUSEG CU keys, rounded to 2^-24 of
// themselves, below 2^-24 of a mean's every term; half the bytes the samples gather), and the
// segment's total in double, PFseg[c / CUSEG]; a small scan
// of PFseg completes the prefix: prefix(c) = PFseg[c / CUSEG] + PF[c] (c = 0 .. ncu; chunk ncu is
// empty). Replaces unrope + two chunk_colsum + two scan_cols over ncu rows (~210 us at 128K).
// Since session 7 the row statistics take their key sums from PFseg too (ktot_kernel), and this pass
// also forms amax, the largest |k| of each feature over keys S .. amax_end - 1 (the Grams' scales).
// Since session 13 it also forms the last row's log-sum-exp parts (lpart: each CTA's {max, sum} over its keys
// of the last row's interior, merged by lse_merge_kernel), which a pass over the keys of its own had read again.
// Block 64 x 4: thread (p, g) owns the column pair p (rotated together) and chunks g, g + 4, ...; rows
// 0 .. S - 1 (no sums) are unroped by all CTAs, grid-stride.
constexpr int CUSEG = 16;
constexpr size_t UNROPE_SMEM = sizeof(float) * CUSEG * CU * 65;  // unrope_sums_kernel's dynamic zp
__global__ void __launch_bounds__(256, 3) unrope_sums_kernel(float *u, float *PF, double *PFseg, const float *k, int64_t N,
                                                          int d, int S, int64_t ncu, const double *inv_freq,
                                                          const int32_t *pos, int half_layout, float *amax,
                                                          int64_t amax_end, const float *qlast, int64_t nlast,
                                                          double c, double *lpart) {
    __shared__ double cs[CUSEG][2 * MAXD];
    __shared__ float am[MAXD];
    extern __shared__ float zp_sm[];      // (CUSEG CU, 65): the last row's products, key x column pair (padded)
    float (*zp)[65] = (float (*)[65])zp_sm;
    __shared__ double lred[2][8];
    const int p = threadIdx.x & 63, g = threadIdx.x >> 6, h = d / 2;
    const int ia = half_layout ? p : 2 * p, ib = half_layout ? p + h : 2 * p + 1;
    const int64_t seg = blockIdx.x;
    if (threadIdx.x < d) am[threadIdx.x] = 0.f;
    __syncthreads();
    if (p < h) {
        const double w = inv_freq[p];
        double sw, cw;  // one step of the rotation, for consecutive positions
        sincos(w, &sw, &cw);
        float ma = 0.f, mb = 0.f;
        const float qa = qlast[ia], qb = qlast[ib];  // q_{N-1}, for the last row's log-sum-exp
        for (int64_t j = blockIdx.x * 4 + g; j < S; j += (int64_t)gridDim.x * 4) {
            double sn, cn;
            sincos_big(-(double)pos[j] * w, &sn, &cn);
            const double ya = k[j * d + ia], yb = k[j * d + ib];
            u[j * d + ia] = (float)(ya * cn - yb * sn);
            u[j * d + ib] = (float)(ya * sn + yb * cn);
        }
        for (int cc = g; cc < CUSEG; cc += 4) {
            const int64_t r0 = S + (seg * CUSEG + cc) * CU;
            // the chunk's loads first, all in flight at once (row by row, each row's loads waited for
            // in turn: ~2/3 of this pass's stall samples at 128K, s10_prof_us.txt)
            float fk[CU][2];
            int32_t pk[CU];
#pragma unroll
            for (int r = 0; r < CU; r++) {
                const int64_t j = r0 + r;
                const bool ok = j < N;
                fk[r][0] = ok ? k[j * d + ia] : 0.f, fk[r][1] = ok ? k[j * d + ib] : 0.f, pk[r] = ok ? pos[j] : 0;
            }
            double ua = 0, ub = 0, ka = 0, kb = 0, sn = 0, cn = 1;
            int32_t pp = 0;
#pragma unroll
            for (int r = 0; r < CU; r++) {
                const int64_t j = r0 + r;
                if (j >= N) break;
                // the angle -pos_j w: from the row before by one step of -w when the positions are
                // consecutive (~1e-16 a step, CU - 1 steps at most), else (and at each chunk's first
                // row) by sincos_big: the double-precision sincos was ~a quarter of this pass
                const int32_t pj = pk[r];
                if (r > 0 && pj == pp + 1) {
                    const double c1 = fma(cn, cw, sn * sw);
                    sn = fma(sn, cw, -cn * sw), cn = c1;
                } else
                    sincos_big(-(double)pj * w, &sn, &cn);
                pp = pj;
                const float fa = fk[r][0], fb = fk[r][1];
                const double ya = fa, yb = fb;
                const float va = (float)(ya * cn - yb * sn), vb = (float)(ya * sn + yb * cn);
                u[j * d + ia] = va;
                u[j * d + ib] = vb;
                ua += va, ub += vb, ka += fa, kb += fb;
                if (j < amax_end) ma = fmaxf(ma, fabsf(fa)), mb = fmaxf(mb, fabsf(fb));
                zp[cc * CU + r][p] = fmaf(qa, fa, qb * fb);
            }
            cs[cc][ia] = ua, cs[cc][ib] = ub, cs[cc][d + ia] = ka, cs[cc][d + ib] = kb;
        }
        // non-negative floats order as their bits do
        if (ma > 0.f) atomicMax((int *)am + ia, __float_as_int(ma));
        if (mb > 0.f) atomicMax((int *)am + ib, __float_as_int(mb));
    }
    __syncthreads();
    if (threadIdx.x < d && am[threadIdx.x] > 0.f) atomicMax((int *)amax + threadIdx.x, __float_as_int(am[threadIdx.x]));
    {
        // the last row's interior (keys S .. S + nlast - 1): z_j = c q_{N-1} . k_j from the column pairs'
        // products, summed in a fixed order (two threads a key, then one shuffle), and the block's
        // log-sum-exp {max, sum of exp(z - max)} in double into lpart (a pass over the keys of its own,
        // lse_last_kernel, had read them all again beside this one: ~30 us at 128K)
        const int key = threadIdx.x >> 1, half = threadIdx.x & 1;
        float z = 0.f;
        for (int x = half * 32; x < half * 32 + 32 && x < h; x++) z += zp[key][x];
        z += __shfl_xor_sync(0xffffffffu, z, 1);
        const int64_t j = S + seg * CUSEG * CU + key;
        const double y = j < N && j - S < nlast ? c * (double)z : -INFINITY;
        double mx = warp_max(y);
        double l = mx > -INFINITY ? warp_sum(half == 0 ? exp(y - mx) : 0.0) : 0.0;
        if ((threadIdx.x & 31) == 0) lred[0][threadIdx.x >> 5] = mx, lred[1][threadIdx.x >> 5] = l;
        __syncthreads();
        if (threadIdx.x == 0) lse_block_merge(lpart + 2 * seg, lred);
    }
    const int t = threadIdx.x;
    if (t < 2 * d) {
        double run = 0;
        for (int cc = 0; cc < CUSEG; cc++) {
            const int64_t c = seg * CUSEG + cc;
            if (c <= ncu) PF[c * 2 * d + t] = (float)run;  // <= CUSEG CU keys: 2^-24 of their sum
            run += cs[cc][t];
        }
        PFseg[seg * 2 * d + t] = run;
    }
}

// The keys' sum over S .. N - T - 1 (the last row's interior; its mean centres the Grams and the row
// statistics) from the samples' prefix: PFseg, PF and the last chunk's rows. One block of d threads.
__global__ void ktot_kernel(double *ktot, const float *PF, const double *PFseg, const float *k, int64_t N, int d, int S,
                            int T) {
    griddep_wait();
    griddep_launch();
    const int x = threadIdx.x;
    const int64_t x0 = N - T, ch = (x0 - S) / CU, j0 = S + ch * CU;
    double s = PFseg[(ch / CUSEG) * 2 * d + d + x] + PF[ch * 2 * d + d + x];
    for (int64_t j = j0; j < x0; j++) s += k[j * d + x];
    ktot[x] = s;
}

// In place: the first n rows of a (n [+ 1], w) become their exclusive prefix over the first index,
// accumulated in double (with_total: row n gets the total). A block of COLS x (1024 / COLS) threads
// takes COLS columns: each thread sums a segment of rows of its column (COLS consecutive addresses
// per row), the segment sums are scanned in shared memory, then each thread rewrites its segment.
template <typename Tv, int COLS>
__global__ void __launch_bounds__(1024) scan_cols_kernel(Tv *a, int64_t n, int64_t w, int with_total) {
    griddep_wait();
    griddep_launch();
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
    {  // each column's segment sums scanned by one warp (a serial scan over SEGS was a latency chain)
        constexpr int PER = SEGS / 32;
        const int wid = (ty * COLS + tx) / 32, lane = (tx + ty * COLS) & 31;
        for (int col = wid; col < COLS; col += 32) {
            double loc[PER], tot = 0;
#pragma unroll
            for (int p = 0; p < PER; p++) loc[p] = seg[lane * PER + p][col], tot += loc[p];
            double inc = tot;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const double y = __shfl_up_sync(0xffffffffu, inc, o);
                if (lane >= o) inc += y;
            }
            double run = inc - tot;
#pragma unroll
            for (int p = 0; p < PER; p++) seg[lane * PER + p][col] = run, run += loc[p];
            const int64_t xc = blockIdx.x * COLS + col;
            if (lane == 31 && with_total && xc < w) a[n * w + xc] = (Tv)run;
        }
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

// The Grams' segment prefix (scan_cols_kernel's job for up to 8 GS_PER segments, as at N <= ~128K): in
// place, the first n rows of a (n, w) (w % 4 == 0) become their exclusive prefix, accumulated in double.
// A block of 32 x 8 threads takes 32 float4 columns; thread (x, y) holds rows y per .. + per - 1 of its
// column in registers (all loads in flight), the 8 row groups' sums are scanned in shared memory, and the
// rows are rewritten from the registers: one read and one write of each element in one wave (the general
// scan, two passes a block of 1024 threads and two waves, took ~12 us at 128K and its launch ~3 more).
constexpr int GS_PER = 16;
__global__ void __launch_bounds__(256) gram_scan_kernel(float *a, int64_t n, int64_t w) {
    griddep_wait();
    griddep_launch();
    __shared__ double part[8][32][4];
    const int tx = threadIdx.x, ty = threadIdx.y, per = (int)((n + 7) / 8);
    const int64_t col = (blockIdx.x * 32 + tx) * (int64_t)4;
    float4 v[GS_PER];
    double sm[4] = {0.0, 0.0, 0.0, 0.0};
#pragma unroll
    for (int r = 0; r < GS_PER; r++) {
        const int64_t row = (int64_t)ty * per + r;
        v[r] = r < per && row < n && col < w ? *(const float4 *)(a + row * w + col) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int r = 0; r < GS_PER; r++) sm[0] += v[r].x, sm[1] += v[r].y, sm[2] += v[r].z, sm[3] += v[r].w;
#pragma unroll
    for (int e = 0; e < 4; e++) part[ty][tx][e] = sm[e];
    __syncthreads();
    double b[4] = {0.0, 0.0, 0.0, 0.0};
    for (int y = 0; y < ty; y++)
#pragma unroll
        for (int e = 0; e < 4; e++) b[e] += part[y][tx][e];
#pragma unroll
    for (int r = 0; r < GS_PER; r++) {
        const int64_t row = (int64_t)ty * per + r;
        if (r < per && row < n && col < w) {
            *(float4 *)(a + row * w + col) = make_float4((float)b[0], (float)b[1], (float)b[2], (float)b[3]);
            b[0] += v[r].x, b[1] += v[r].y, b[2] += v[r].z, b[3] += v[r].w;
        }
    }
}

// ---------------------------------------------------------------------------- row statistics
// One CTA of 8 warps per chunk of C rows (rows i0 = S + T + c C ..; warp w owns rows 16 w .. +16 as
// in exact.cu) computes mu_i, sigma_i^2 and log Lambda_i from products on the tensor cores:
//   the prefix Gram G_c (keys S .. S + c C - 1, d x d): q_i G_c q_i, as "keys" the rows of G_c;
//   the window, keys i0 - T .. i0 + C - 1: (q_i . k_j) and its square summed over j <= i - T (the
//   in-chunk part of the interior), and the Lambda-shape's last T keys i - T + 1 .. i;
//   the sinks, keys 0 .. S - 1.
// B operands stream through shared memory in tiles of 64 rows (raw float32 by cp.async, a ring of
// NRAW tiles ahead, then split). Split precision for float32 accuracy:
// every operand row x is scaled by a power of two 2^e (|x 2^e| < 2^14) and written as float16
// hi + lo (lo = x 2^e - hi), and each product is hi hi + hi lo + lo hi (three mma.sync m16n8k16,
// f32 accumulate): ~2^-21 relative per term, the dropped lo lo term ~2^-22. For float16 dumps (F16) the
// window's and sinks' tiles are the keys' float16 values (k16) as cp.async lands them: exact products.
constexpr int BT = 64;  // B rows per shared-memory tile
constexpr int GSEG = 8; // chunks per Gram segment (gram_kernel): float accumulation over at most GSEG C keys
template <int DP>
__host__ __device__ constexpr int ldb() { return DP + 8; }  // padded shared row (halfs), as exact.cu's ldk

// 2^e with amax 2^e < 2^14 (1 for an all-zero row): e = min(14 - E, 126) for amax = m 2^E, m in
// [0.5, 1) (frexpf's E), from the exponent bits (a subnormal amax takes E = -125, where e is 126
// either way). frexpf and ldexpf cost ~25 instructions with their special cases, once per split row.
__device__ __forceinline__ float pow2_scale(float amax) {
    if (!(amax > 0.f)) return 1.f;
    const int E = max((int)(__float_as_uint(amax) >> 23), 1) - 126;  // amax > 0: no sign bit
    return __uint_as_float((uint32_t)(min(14 - E, 126) + 127) << 23);
}
// 1 / x for a power of two x = 2^e, -126 < e < 127 (pow2_scale's), exactly, without a division.
__device__ __forceinline__ float pow2_inv(float x) { return __uint_as_float((254u << 23) - __float_as_uint(x)); }
__device__ __forceinline__ uint32_t half2_bits(__half2 h) {
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
}
// hi and lo float16 pairs of (x, y) (already scaled).
__device__ __forceinline__ void split2(float x, float y, uint32_t &hi, uint32_t &lo) {
    const __half2 h = __floats2half2_rn(x, y);
    const float2 hf = __half22float2(h);
    hi = half2_bits(h);
    lo = half2_bits(__floats2half2_rn(x - hf.x, y - hf.y));
}
// hi + lo of a split pair, as floats (still scaled).
__device__ __forceinline__ float2 unsplit2(uint32_t hi, uint32_t lo) {
    __half2 h, l;
    memcpy(&h, &hi, 4);
    memcpy(&l, &lo, 4);
    const float2 a = __half22float2(h), b = __half22float2(l);
    return make_float2(a.x + b.x, a.y + b.y);
}

// The warp's 16 query rows rowA = i0 + 16 w + g and rowA + 8 (zero beyond N or d): load_q_raw issues
// every load of the thread's part at once into v (predicated, no branch), split_q then takes the rows'
// maxima and writes the split mma A fragments with 1 / scale of each row. rows_kernel issues the loads
// before its tiles' cp.async, so that they lead the SM's memory queue. (Session 9's profile: the old
// load_q_split, a branchy max pass over global loads and a second pass reloading them, after the first
// four tiles' cp.async, held ~19% of rows_kernel's stall samples at 128K, s9_prof_rows.txt.)
template <int DP>
__device__ __forceinline__ void load_q_raw(float2 v[2][DP / 16][2], const float *q, int64_t N, int d, int64_t rowA) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int64_t row = rowA + 8 * h;
#pragma unroll
        for (int s = 0; s < DP / 16; s++)
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int col = s * 16 + half * 8 + 2 * t;
                v[h][s][half] = row < N && col < d ? *(const float2 *)(q + row * d + col) : make_float2(0.f, 0.f);
            }
    }
}
template <int DP>
__device__ __forceinline__ void split_q(uint32_t qh[DP / 16][4], uint32_t ql[DP / 16][4], float qinv[2],
                                        const float2 v[2][DP / 16][2]) {
    float sc[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float m = 0.f;
#pragma unroll
        for (int s = 0; s < DP / 16; s++)
#pragma unroll
            for (int half = 0; half < 2; half++) m = fmaxf(m, fmaxf(fabsf(v[h][s][half].x), fabsf(v[h][s][half].y)));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
        sc[h] = pow2_scale(m);
        qinv[h] = pow2_inv(sc[h]);
    }
#pragma unroll
    for (int s = 0; s < DP / 16; s++)
#pragma unroll
        for (int r = 0; r < 4; r++) {  // fragment register r: row (r & 1), columns + 8 (r >> 1)
            const int h = r & 1;
            const float2 x = v[h][s][r >> 1];
            split2(x.x * sc[h], x.y * sc[h], qh[s][r], ql[s][r]);
        }
}

// B tiles pass through shared memory twice: raw float32 rows (64 x DP, a ring of NRAW slots filled by
// cp.async ahead of use, so that the global loads of later tiles fly while a tile is multiplied; the
// load-then-sync version left the loads' latency exposed at one CTA per SM), then split.
constexpr int NRAW = 4;
// The ring's slots for rows_kernel<DP, MINB, ..>: two CTAs a SM at d = 128 (MINB = 2) fit in shared memory
// only with 2 slots (~101 KB a CTA; 4 slots are ~162 KB).
template <int DP, int MINB>
__host__ __device__ constexpr int rows_nraw() { return DP == 128 && MINB == 2 ? 2 : NRAW; }
template <int DP, int MINB>
__host__ __device__ constexpr size_t rows_smem() {
    return sizeof(float) * rows_nraw<DP, MINB>() * BT * DP + sizeof(__half) * 2 * BT * ldb<DP>();
}

// Rows 0 .. nvalid - 1 of src (row stride d, d even) into the raw slot R (BT rows LD elements apart),
// zero beyond nvalid and d; one cp.async group. T = float: raw rows for split_raw (LD = DP); T = __half:
// the keys of a float16 dump (k16, d % 8 == 0) as a B tile in split_raw's layout (LD = ldb<DP>()), the
// mma operand as it lands, with no split.
template <int DP, typename T = float, int LD = DP>
__device__ __forceinline__ void raw_issue(T *R, const T *src, int64_t nvalid, int d) {
    // thread: column col of rows r0, r0 + RS, .. (the same column every sweep of the 256 threads)
    const int nv = (int)(nvalid < 0 ? 0 : nvalid < BT ? nvalid : BT);
    constexpr int E = 16 / sizeof(T);  // elements a 16-byte piece
    if (sizeof(T) == 2 || d % E == 0) {  // float16 tiles: d % 8 == 0 (F16's condition), no test
        constexpr int PR = DP / E, RS = 256 / PR;  // 16-byte pieces per row, rows per sweep
        const int r0 = threadIdx.x / PR, col = E * (threadIdx.x % PR);
        const T *s0 = src + (int64_t)r0 * d + col;
#pragma unroll
        for (int x = 0; x < BT / RS; x++) {
            const bool ok = r0 + x * RS < nv && col < d;
            cp_async16(R + (r0 + x * RS) * LD + col, ok ? s0 + (int64_t)x * RS * d : src, ok);
        }
    } else if constexpr (sizeof(T) == 4) {  // float rows of d = 2 mod 4: 8-byte pieces
        constexpr int PR = DP / 2, RS = 256 / PR;
        const int r0 = threadIdx.x / PR, col = 2 * (threadIdx.x % PR);
        const T *s0 = src + (int64_t)r0 * d + col;
#pragma unroll
        for (int x = 0; x < BT / RS; x++) {
            const bool ok = r0 + x * RS < nv && col < d;
            asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smem_addr(R + (r0 + x * RS) * LD + col)),
                         "l"(ok ? s0 + (int64_t)x * RS * d : src), "r"(ok ? 8 : 0));
        }
    }
    cp_async_commit();
}

// Waits until at most n of this thread's cp.async groups are pending (n <= NRAW).
__device__ __forceinline__ void raw_wait(int n) {
    switch (n) {
    case 0: cp_async_wait<0>(); break;
    case 1: cp_async_wait<1>(); break;
    case 2: cp_async_wait<2>(); break;
    case 3: cp_async_wait<3>(); break;
    default: cp_async_wait<4>(); break;
    }
}

// The raw rows of R (+ R2 when given; - sub, DP floats, when given, on rows below nvalid) as split rows
// of a B tile, each with 1 / scale in sinv (0 for rows from nvalid on, which are zero). LPR = 8 lanes
// per row, DP / 32 float4 columns each (interleaved: a row's 8 lanes read 128 contiguous bytes); the
// row maximum by 3 shuffles within those lanes. (DP / 4 lanes a row, one float4 each, took 5 shuffles
// and a pow2_scale for every 4 elements at d = 128.)
template <int DP>
__device__ __forceinline__ void split_raw(__half *Bh, __half *Bl, float *sinv, const float *R, int64_t nvalid,
                                          const float *R2 = nullptr, const float *sub = nullptr) {
    constexpr int LPR = 8, RPW = 32 / LPR, PASSES = BT / (8 * RPW), NF4 = DP / (4 * LPR);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, p = lane % LPR;
#pragma unroll
    for (int ps = 0; ps < PASSES; ps++) {
        const int r = (ps * 8 + warp) * RPW + lane / LPR;
        float4 v[NF4];
        float m = 0.f;
#pragma unroll
        for (int i = 0; i < NF4; i++) {
            const int col = 4 * (p + LPR * i);
            v[i] = *(const float4 *)(R + r * DP + col);
            if (R2) {
                const float4 x = *(const float4 *)(R2 + r * DP + col);
                v[i].x += x.x, v[i].y += x.y, v[i].z += x.z, v[i].w += x.w;
            }
            if (sub && r < nvalid) {
                const float4 m4 = *(const float4 *)(sub + col);
                v[i].x -= m4.x, v[i].y -= m4.y, v[i].z -= m4.z, v[i].w -= m4.w;
            }
            m = fmaxf(m, fmaxf(fmaxf(fabsf(v[i].x), fabsf(v[i].y)), fmaxf(fabsf(v[i].z), fabsf(v[i].w))));
        }
#pragma unroll
        for (int o = LPR / 2; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        const float sc = pow2_scale(m);
#pragma unroll
        for (int i = 0; i < NF4; i++) {
            const int col = 4 * (p + LPR * i);
            uint32_t h0, l0, h1, l1;
            split2(v[i].x * sc, v[i].y * sc, h0, l0);
            split2(v[i].z * sc, v[i].w * sc, h1, l1);
            *(uint2 *)(Bh + r * ldb<DP>() + col) = make_uint2(h0, h1);
            *(uint2 *)(Bl + r * ldb<DP>() + col) = make_uint2(l0, l1);
        }
        if (p == 0) sinv[r] = r < nvalid ? pow2_inv(sc) : 0.f;
    }
}

// The three split products of one k16 step for NG accumulators, issued term by term across the
// group: NG independent mma chains in flight instead of one chain of six dependent mma (the inline
// asm is volatile, so its order is the issue order). b*[x][0..1] are the step's B fragments.
// AL = false leaves out the al bh term (queries that are float16 values: al is zero).
template <int NG, bool AL = true>
__device__ __forceinline__ void mma3_group(float (*acc)[4], const uint32_t ah[4], const uint32_t al[4],
                                           const uint32_t (*bh)[4], const uint32_t (*bl)[4], int half) {
    if (AL)
#pragma unroll
        for (int x = 0; x < NG; x++) mma_f16_16816(acc[x], al, bh[x][2 * half], bh[x][2 * half + 1]);
#pragma unroll
    for (int x = 0; x < NG; x++) mma_f16_16816(acc[x], ah, bl[x][2 * half], bl[x][2 * half + 1]);
#pragma unroll
    for (int x = 0; x < NG; x++) mma_f16_16816(acc[x], ah, bh[x][2 * half], bh[x][2 * half + 1]);
}

// acc (16 x 64) = Q_warp B^T in split precision; acc[n] holds rows g, g + 8 and columns 8 n + 2 t, +1
// as exact.cu's qk_tile. The small terms first. B fragments for 4 n-tiles at a time.
template <int DP, bool AL>
__device__ __forceinline__ void mma_tile_split(float acc[8][4], const uint32_t qh[DP / 16][4],
                                               const uint32_t ql[DP / 16][4], const __half *Bh, const __half *Bl) {
    constexpr int NG = 4;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int n = 0; n < 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DP / 32; kk++) {
#pragma unroll
        for (int n0 = 0; n0 < 8; n0 += NG) {
            uint32_t bh[NG][4], bl[NG][4];
#pragma unroll
            for (int x = 0; x < NG; x++) {
                const int off = ((n0 + x) * 8 + (lane & 7)) * ldb<DP>() + kk * 32 + (lane >> 3) * 8;
                ldmatrix_x4(bh[x], Bh + off);
                ldmatrix_x4(bl[x], Bl + off);
            }
            mma3_group<NG, AL>(acc + n0, qh[2 * kk], ql[2 * kk], bh, bl, 0);
            mma3_group<NG, AL>(acc + n0, qh[2 * kk + 1], ql[2 * kk + 1], bh, bl, 1);
        }
    }
}

// acc (16 x 64) = Q_warp B^T with B float16 values (k16's tiles): one mma a product (q's lo part is zero
// too: F16), exact products summed in float32. exact.cu's qk_tile in another issue order: the 8 n-tiles'
// fragments first, then 8 independent mma a k16 step (qk_tile issues each n-tile's two dependent mma
// in turn, as exact.cu's passes were tuned with).
template <int DP>
__device__ __forceinline__ void mma_tile_f16(float acc[8][4], const uint32_t qh[DP / 16][4], const __half *Bh) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int n = 0; n < 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DP / 32; kk++) {
        uint32_t bh[8][4];
#pragma unroll
        for (int n = 0; n < 8; n++) ldmatrix_x4(bh[n], Bh + (n * 8 + (lane & 7)) * ldb<DP>() + kk * 32 + (lane >> 3) * 8);
#pragma unroll
        for (int n = 0; n < 8; n++) mma_f16_16816(acc[n], qh[2 * kk], bh[n][0], bh[n][1]);
#pragma unroll
        for (int n = 0; n < 8; n++) mma_f16_16816(acc[n], qh[2 * kk + 1], bh[n][2], bh[n][3]);
    }
}

struct rows_args {
    const float *q, *k;  // (Npad, d)
    const __half *k16;   // (Npad, d) the keys as float16 values (rows_kernel<.., F16 = true>'s window and sinks)
    const float *G;      // (nch, d, d) exclusive prefix of the chunks' key Grams within their segment
    const float *Goff;   // (nseg, d, d) exclusive prefix of the segments' Grams: G_c = Goff[c / GSEG] + G[c]
    const double *KP;    // (nch, d) rows kp_ld apart: exclusive prefix of the chunks' key sums (PFseg's k part)
    const double *KPtot; // (d) the keys' sum over the last row's interior
    double *mu, *sigma2, *log_lambda;  // (N)
    double nall;         // keys in KPtot (N - T - S): mf = KPtot / nall is the keys' centre
    int64_t kp_ld;
    int64_t N;
    int d, S, T;
    double c;
};

constexpr float LOG2E_F = 1.44269504088896341f;
constexpr double LN2_D = 0.693147180559945309417;

// The tile's products in the log2 domain in place, once for both passes and the interior sums:
// acc = x' = c2 q_i . (k_j - mf) = acc qinv_i c2 sinv[w] (qs[h] = qinv_h c2; each sinv[w] read once for
// both row halves). (Session 8's what-if: the window's and sinks' epilogues were ~80 of rows_kernel's
// 278 us at 128K; lse_tile recomputed acc qc2 sinv[w] + add in each of its two passes.)
__device__ __forceinline__ void scale_tile(float acc[8][4], const float qs[2], const float *sinv) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const float sw = sinv[n * 8 + 2 * t + e];
            acc[n][e] *= qs[0] * sw;
            acc[n][2 + e] *= qs[1] * sw;
        }
}

// Online log-sum-exp in base 2 (m, l) of one row half h over the tile's candidates, from the scaled
// products x' (scale_tile): y = x' + add; the tile maximum first, then the sum. ok(w) says which tile
// columns w = 8 n + 2 t + e are candidates.
template <typename Ok>
__device__ __forceinline__ void lse_tile(float &m, float &l, const float acc[8][4], int h, float add, Ok ok) {
    const int t = threadIdx.x & 3;
    float tx = -INFINITY;
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
        for (int e = 0; e < 2; e++)
            if (ok(n * 8 + 2 * t + e)) tx = fmaxf(tx, acc[n][2 * h + e]);
    if (tx == -INFINITY) return;
    const float tm = tx + add;
    if (tm > m) l *= fast_exp2(m - tm), m = tm;
    const float mo = m - add;
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
        for (int e = 0; e < 2; e++)
            if (ok(n * 8 + 2 * t + e)) l += fast_exp2(acc[n][2 * h + e] - mo);
}

// rows_kernel's raw pieces in order: the prefix Gram's rows (G_c's 64-row tiles, each as Gloc and
// Goff), the window's key tiles, the sinks' key tiles (a G tile takes two pieces, the others one).
// Issues pieces from `issued` on while they fit in the ring (pieces from `used` on are unread) and
// returns the new count; recomputes its indices from the arguments (registers are at the limit).
// F16: the window's and sinks' pieces are float16 tiles from k16 (raw_issue<DP, __half, ldb<DP>()>).
template <int DP, bool F16, int NR>
__device__ __forceinline__ int rows_issue(const rows_args &a, float *raw, int issued, int used) {
    const int64_t c = blockIdx.x, i0 = a.S + a.T + c * C;
    const int d = a.d, ngt = c > 0 ? DP / 64 : 0, nwt = (C + a.T + BT - 1) / BT, nst = (a.S + BT - 1) / BT;
    const int npiece = 2 * ngt + nwt + nst;
#pragma unroll 1
    for (; issued < npiece && issued < used + NR; issued++) {
        const int p = issued, w = p - 2 * ngt;
        float *slot = raw + (p % NR) * BT * DP;
        if (w < 0) {
            const float *src = (p & 1 ? a.Goff + (size_t)(c / GSEG) * d * d : a.G + (size_t)c * d * d) + (size_t)(p / 2) * 64 * d;
            raw_issue<DP>(slot, src, d - (p / 2) * 64, d);
            continue;
        }
        const int64_t j0 = w < nwt ? i0 - a.T + (int64_t)w * BT : (int64_t)(w - nwt) * BT;
        const int64_t nv = w < nwt ? a.N - j0 : a.S - j0;
        if (F16)
            raw_issue<DP, __half, ldb<DP>()>((__half *)slot, a.k16 + j0 * d, nv, d);
        else
            raw_issue<DP>(slot, a.k + j0 * d, nv, d);
    }
    return issued;
}

// Every row of a tile multiplied by its query row's factor qs[h] (F16's tiles have no per-key scale).
__device__ __forceinline__ void scale_rows(float acc[8][4], const float qs[2]) {
#pragma unroll
    for (int n = 0; n < 8; n++) acc[n][0] *= qs[0], acc[n][1] *= qs[0], acc[n][2] *= qs[1], acc[n][3] *= qs[1];
}

// F16: every query and key is a float16 value (a float16 dump's: gpu_decomp_compute's qk_f16, with the
// keys' float16 copy k16). The products of the queries' lo parts, which are zero, are left out (a third
// of the Grams' mma: rows_kernel 214 -> 202 us at 128K in session 10's what-if, s10_noqlo_ncu.txt), and
// the window's and sinks' tiles are k16's rows as cp.async lands them: one mma a product (exact products
// summed in float32; the keys uncentred, q . mf taken off after), no split pass and no second barrier.
template <int DP, int MINB, bool F16>
__global__ void __launch_bounds__(256, MINB) rows_kernel(rows_args a) {
    griddep_wait();
    extern __shared__ __align__(16) unsigned char rows_sm[];
    constexpr int NR = rows_nraw<DP, MINB>();
    float *raw = (float *)rows_sm;  // (NR, BT, DP)
    __half *Bh = (__half *)(raw + NR * BT * DP), *Bl = Bh + BT * ldb<DP>();
    __shared__ float sinv[BT];
    __shared__ __align__(16) float mf[DP];
    __shared__ __align__(16) double kps[DP];  // KP[c]: the keys' sum up to the chunk's prefix
    __shared__ __align__(16) float kpc[DP];   // KP[c] - c C mf: the prefix's keys' sum, centred
    __shared__ float qks[C];                  // q_i . kpc for the chunk's rows
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int64_t N = a.N, c = blockIdx.x;
    const int d = a.d, S = a.S, T = a.T;
    const int64_t i0 = S + T + c * C;
    const int rr[2] = {warp * 16 + g, warp * 16 + g + 8};  // the thread's two rows in the chunk
    const int nwt = (C + T + BT - 1) / BT, nst = (S + BT - 1) / BT;
    int issued = 0, used = 0;  // raw pieces issued, pieces split (rows_issue)
    // the next tile (two pieces with R2: a G tile) split into Bh, Bl, sinv; the freed slots refilled
    auto next_tile = [&](int pieces, int64_t nvalid, const float *sub) {
        raw_wait(issued - used - pieces);
        __syncthreads();
        split_raw<DP>(Bh, Bl, sinv, raw + (used % NR) * BT * DP, nvalid,
                      pieces > 1 ? raw + ((used + 1) % NR) * BT * DP : nullptr, sub);
        __syncthreads();
        used += pieces;
        issued = rows_issue<DP, F16, NR>(a, raw, issued, used);
    };
    // F16: the next window or sinks tile, read in place from its slot; the slot of the tile before it
    // (every warp is past it at this barrier) refilled
    auto next_key16 = [&]() -> const __half * {
        raw_wait(issued - used - 1);
        __syncthreads();
        issued = rows_issue<DP, F16, NR>(a, raw, issued, used);
        return (const __half *)(raw + (used++ % NR) * BT * DP);
    };
    // the queries' loads first (load_q_raw), then the tiles'
    float2 qv[2][DP / 16][2];
    load_q_raw<DP>(qv, a.q, N, d, i0 + rr[0]);
    // KP[c] as a cp.async group of its own, the first, right behind the queries' loads: q_i . (KP[c] -
    // c C mf) is taken from the raw queries with q_i . mf (it was taken at the end from the split queries,
    // ~4% of the stall samples at 128K in the CTA's exposed tail: s10_prof_rows.txt)
    if (threadIdx.x < DP / 2) {
        const bool ok = 2 * (int)threadIdx.x < d;  // d even
        cp_async16(&kps[2 * threadIdx.x], ok ? a.KP + c * a.kp_ld + 2 * threadIdx.x : a.KP, ok);
    }
    cp_async_commit();
    issued = rows_issue<DP, F16, NR>(a, raw, 0, 0);
    for (int x = threadIdx.x; x < DP; x += blockDim.x) mf[x] = x < d ? (float)(a.KPtot[x] / a.nall) : 0.f;
    uint32_t qh[DP / 16][4], ql[DP / 16][4];
    float qinv[2];
    split_q<DP>(qh, ql, qinv, qv);
    raw_wait(issued);  // KP[c]'s group, the oldest
    __syncthreads();
    // the prefix's key sum centred on mf (in double: KP[c] is a sum of c C keys), small enough for float
    for (int x = threadIdx.x; x < DP; x += blockDim.x) kpc[x] = x < d ? (float)(kps[x] - (double)(c * C) * mf[x]) : 0.f;
    __syncthreads();
    // q_i . mf: the Grams and the window keys are centred on mf (k - mf) so that their products carry
    // the spread of z, not its mean; and q_i . kpc, the prefix's sum of x = q_i . (k - mf). Both in float
    // from the raw queries still in registers: sigma^2 is formed from the centred sums alone, so q . mf
    // only enters mu (and the log-sum-exp's shift), where 2^-24 of it is far inside the tolerances. (In
    // double, with q . KP uncentred, their conversions and products were ~6% of rows_kernel's stall
    // samples at 128K, s11_prof_rows.txt.)
    float mq[2] = {0.f, 0.f}, qk[2] = {0.f, 0.f};
#pragma unroll
    for (int s = 0; s < DP / 16; s++)
#pragma unroll
        for (int r = 0; r < 4; r++) {
            const int col = s * 16 + (r >> 1) * 8 + 2 * t;
            const float2 v = qv[r & 1][s][r >> 1];  // zero beyond d
            mq[r & 1] = fmaf(v.x, mf[col], fmaf(v.y, mf[col + 1], mq[r & 1]));
            qk[r & 1] = fmaf(v.x, kpc[col], fmaf(v.y, kpc[col + 1], qk[r & 1]));
        }
#pragma unroll
    for (int h = 0; h < 2; h++) {
        mq[h] += __shfl_xor_sync(0xffffffffu, mq[h], 1);
        mq[h] += __shfl_xor_sync(0xffffffffu, mq[h], 2);
        qk[h] += __shfl_xor_sync(0xffffffffu, qk[h], 1);
        qk[h] += __shfl_xor_sync(0xffffffffu, qk[h], 2);
        if (t == h) qks[rr[h]] = qk[h];  // read back at the end by this lane
    }
    const float c2 = (float)a.c * LOG2E_F;  // log2-domain z per unit q . k
    const float qs[2] = {qinv[0] * c2, qinv[1] * c2};  // scale_tile's row factors
    float lin[2] = {0.f, 0.f}, quad[2] = {0.f, 0.f}, qpre[2] = {0.f, 0.f}, lm[2] = {-INFINITY, -INFINITY},
          ll[2] = {0.f, 0.f};
    float acc[8][4];
    // q_i G_c q_i: B rows are the rows of G_c (symmetric), each with its own scale
    if (c > 0) {
#pragma unroll
        for (int tg = 0; tg < DP / 64; tg++) {
            next_tile(2, d - tg * 64, nullptr);
            mma_tile_split<DP, !F16>(acc, qh, ql, Bh, Bl);
#pragma unroll
            for (int n = 0; n < 8; n++) {  // column b = 64 tg + 8 n + 2 t: A fragment s = 4 tg + n / 2
                const int s = tg * 4 + n / 2, r = (n & 1) * 2;
                const float2 qa = F16 ? unsplit2(qh[s][r], 0u) : unsplit2(qh[s][r], ql[s][r]);
                const float2 qb = F16 ? unsplit2(qh[s][r + 1], 0u) : unsplit2(qh[s][r + 1], ql[s][r + 1]);
                const float s0 = sinv[n * 8 + 2 * t], s1 = sinv[n * 8 + 2 * t + 1];
                qpre[0] += qa.x * acc[n][0] * s0 + qa.y * acc[n][1] * s1;
                qpre[1] += qb.x * acc[n][2] * s0 + qb.y * acc[n][3] * s1;
            }
        }
    }
    // the window: key j = i0 - T + w, w = 64 tw + 8 n + 2 t + e; row r uses w <= r (interior) and
    // r < w <= r + T (the last T keys)
    // F16: x' is taken as acc - c2 q . mf (acc = c2 q_i . k_j, uncentred), and the log-sum-exp's add is 0
    const float mqc[2] = {F16 ? mq[0] * c2 : 0.f, F16 ? mq[1] * c2 : 0.f};
    for (int tw = 0; tw < nwt; tw++) {
        const __half *B16 = nullptr;
        if (F16)
            B16 = next_key16();
        else
            next_tile(1, N - (i0 - T + (int64_t)tw * BT), mf);
        // a warp whose rows use no key of this tile (w > r + T for every row r of the warp: the last
        // tile, for the chunk's first 64 rows when T = 64) skips its products and sums, which would
        // add nothing (lse_tile with no key left changes neither m nor l); the barriers are all in
        // next_tile (next_key16), which every warp still takes
        if (warp * 16 + 15 + T < tw * BT) continue;
        if (F16) {
            mma_tile_f16<DP>(acc, qh, B16);
            scale_rows(acc, qs);
        } else {
            mma_tile_split<DP, true>(acc, qh, ql, Bh, Bl);
            scale_tile(acc, qs, sinv);
        }
        // and a warp whose rows have no interior key in this tile (w > r for all: r < 0) skips the
        // interior sums, one with no window key (w <= r for all: r >= BT - 1) the log-sum-exp: the
        // tiles are banded, so each warp is one of these in about a third of its window tiles (the
        // sums unchanged: neither adds anything there)
        const bool any_in = warp * 16 + 15 >= tw * BT, any_win = warp * 16 < tw * BT + BT - 1;
#pragma unroll
        for (int h = 0; h < 2; h++) {  // x' = c2 q_i . (k_j - mf)
            const int r = rr[h] - tw * BT;  // the row against tile columns
            if (any_in)
#pragma unroll
                for (int n = 0; n < 8; n++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int w = n * 8 + 2 * t + e;
                        if (w <= r) {
                            const float x = acc[n][2 * h + e] - mqc[h];
                            lin[h] += x, quad[h] += x * x;
                        }
                    }
            if (any_win)
                lse_tile(lm[h], ll[h], acc, h, F16 ? 0.f : mq[h] * c2, [=](int w) { return w > r && w <= r + T; });
        }
    }
    // the sinks
    for (int ts = 0; ts < nst; ts++) {
        if (F16) {
            mma_tile_f16<DP>(acc, qh, next_key16());
            scale_rows(acc, qs);
        } else {
            next_tile(1, S - ts * BT, nullptr);
            mma_tile_split<DP, true>(acc, qh, ql, Bh, Bl);
            scale_tile(acc, qs, sinv);
        }
        const int ns = S - ts * BT;
#pragma unroll
        for (int h = 0; h < 2; h++) lse_tile(lm[h], ll[h], acc, h, 0.f, [=](int w) { return w < ns; });
    }
    // each row's four lanes sum their parts; then lane t = h finishes row h (the two rows at once)
    const double ic2 = 1.0 / (double)c2;  // lin and quad summed x' = c2 x: back to x
    double Lr[2], Qr[2], Pr[2];
    float mr[2], lr[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        double L = (double)lin[h] * ic2, Q = (double)quad[h] * (ic2 * ic2), P = (double)qpre[h];
        float m = lm[h], l = ll[h];
#pragma unroll
        for (int o = 1; o <= 2; o <<= 1) {
            L += __shfl_xor_sync(0xffffffffu, L, o);
            Q += __shfl_xor_sync(0xffffffffu, Q, o);
            P += __shfl_xor_sync(0xffffffffu, P, o);
            const float mo = __shfl_xor_sync(0xffffffffu, m, o), lo = __shfl_xor_sync(0xffffffffu, l, o);
            const float mn = fmaxf(m, mo);
            if (mn > -INFINITY) l = l * fast_exp2(m - mn) + lo * fast_exp2(mo - mn);
            m = mn;
        }
        Lr[h] = L, Qr[h] = Q, Pr[h] = P, mr[h] = m, lr[h] = l;
    }
    const int h = t & 1, r = h ? rr[1] : rr[0];
    const int64_t i = i0 + r;
    if (t < 2 && i < N) {
        // with x = q . (k - mf) over the n interior keys (the window's r + 1 and the prefix's c C):
        // Lt = sum x (the window's L, the prefix's q . kpc), Qt = sum x^2 (the window's Q, the prefix's
        // q G q, G centred); z / c = x + m1, m1 = q . mf, so mu = c (Lt / n + m1) and sigma^2 =
        // c^2 (Qt - Lt^2 / n) / n, in which m1 cancels exactly (it was formed as E z^2 - mu^2)
        const double L = h ? Lr[1] : Lr[0], Q = h ? Qr[1] : Qr[0], P = h ? Pr[1] : Pr[0];
        const float m = h ? mr[1] : mr[0], l = h ? lr[1] : lr[0];
        const double qi = (double)(h ? qinv[1] : qinv[0]), n = (double)(i - T - S + 1), m1 = h ? mq[1] : mq[0];
        const double Lt = L + (double)qks[r], Qt = Q + P * qi * qi;
        const double mu = a.c * (Lt / n + m1);
        const double var = a.c * a.c * (Qt - Lt * Lt / n) / n;
        a.mu[i] = mu;
        a.sigma2[i] = var > 0 ? var : 0;
        a.log_lambda[i] = l > 0.f ? LN2_D * ((double)m + log2((double)l)) - mu : -INFINITY;
    }
}

// ---------------------------------------------------------------------------- key Grams
// The chunks' key Grams K_c^T K_c (keys S + c C .. +C, centred: k - mf with mf = KPtot / nall, the
// mean of the interior keys of the last row) on the tensor cores, in the split precision of
// rows_kernel with one power-of-two scale per feature (from 2 amax >= |k - mf|, amax the features'
// largest |k|): a CTA sweeps a segment of GSEG chunks in order and keeps their running sum (in
// shared memory), so that it writes each chunk's exclusive prefix within the segment (Gloc) and the
// segment's total (Gseg); the segments' exclusive prefix (a small scan) completes the prefix:
// G_c = Goff[c / GSEG] + Gloc[c]. (A Gram per chunk and a scan over all of them moved 320 MB at 128K;
// the cuBLAS SGEMM + scan version measured 1.80 against 1.63 ms.)
// Keys stream through shared memory in 64-key tiles as they lie (key-major: coalesced loads, split
// into float16 hi and lo four features at a time), and both mma operands come from the same tile by
// ldmatrix.trans. The 16 warps tile the DP x DP Gram 4 x 4 (DP / 4 rows by DP / 4 columns each).
// (Session 6; before, the keys were stored transposed one float16 at a time, each of two CTAs per
// segment split all of them for its 64 columns, and every warp reloaded all the B fragments for its
// 16 rows: ncu put 23% of the stall samples in the transposed stores and 41% in an ldmatrix-bound
// mma phase, 180 us at 128K.)
template <int DP>
__host__ __device__ constexpr int ldt() { return DP + 8; }  // padded key row (halfs): ldmatrix rows 16 bytes apart mod 128

template <int DP>
__host__ __device__ constexpr size_t gram_smem() {  // Th, Tl (BT, ldt) halfs, run (DP, DP + 4) floats
    return sizeof(__half) * 2 * BT * ldt<DP>() + sizeof(float) * DP * (DP + 4);
}

constexpr int GRAM_THREADS = 512;  // 16 warps tiling the Gram 4 x 4 (32 accumulators a thread at d = 128)
template <int DP>
__global__ void __launch_bounds__(GRAM_THREADS, 1) gram_kernel(float *Gloc, float *Gseg, __half *k16, const float *k, const float *amax,
                                                     const double *KPtot, double nall, int64_t N, int d, int S,
                                                     int64_t nch) {
    constexpr int WM = DP / 4, WN = DP / 4, MT = WM / 16, NT = WN / 8, LDR = DP + 4;
    constexpr int F4 = DP / 4, LPT = BT * F4 / GRAM_THREADS;  // float4 pieces per key row, per thread per tile
    extern __shared__ __align__(16) unsigned char gram_sm[];
    __half *Th = (__half *)gram_sm, *Tl = Th + BT * ldt<DP>();
    float *run = (float *)(Tl + BT * ldt<DP>());  // (DP, LDR) the running sum, unscaled
    __shared__ __align__(16) float sf[DP], mf[DP];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int a0 = (warp >> 2) * WM, b0 = (warp & 3) * WN;  // the warp's rows (features a) and columns (b)
    for (int x = threadIdx.x; x < DP; x += blockDim.x) {
        sf[x] = x < d ? pow2_scale(2 * amax[x]) : 1.f;
        mf[x] = x < d ? (float)(KPtot[x] / nall) : 0.f;
    }
    for (int x = threadIdx.x; x < DP * LDR; x += blockDim.x) run[x] = 0.f;
    const int64_t s = blockIdx.x, c1 = (s + 1) * GSEG < nch ? (s + 1) * GSEG : nch;
    // run to G (d x d, row-major), float4 pieces (d % 4 == 0) or pairs
    auto store = [&](float *G) {
        if (d == DP) {  // the common case: a constant divisor (the runtime one's integer division was
                        // ~20% of gram_kernel's stall samples at 128K, s10_prof_gram.txt)
            constexpr int Q4 = DP / 4;
            for (int x = threadIdx.x; x < DP * Q4; x += blockDim.x) {
                const int a = x / Q4, b = 4 * (x % Q4);
                *(float4 *)(G + (size_t)a * DP + b) = *(const float4 *)(run + a * LDR + b);
            }
        } else if (d % 4 == 0) {
            const int q4 = d / 4;
            for (int x = threadIdx.x; x < d * q4; x += blockDim.x) {
                const int a = x / q4, b = 4 * (x - a * q4);
                *(float4 *)(G + (size_t)a * d + b) = *(const float4 *)(run + a * LDR + b);
            }
        } else {
            const int q2 = d / 2;
            for (int x = threadIdx.x; x < d * q2; x += blockDim.x) {
                const int a = x / q2, b = 2 * (x - a * q2);
                *(float2 *)(G + (size_t)a * d + b) = *(const float2 *)(run + a * LDR + b);
            }
        }
    };
    // the key tiles' raw values (thread: pieces e = tid + GRAM_THREADS i: key e / F4, features 4 (e % F4) ..),
    // loaded a tile ahead: their global latency overlaps the previous tile's mma
    float4 v[LPT];
    auto load_tile = [&](int64_t j0) {
#pragma unroll
        for (int i = 0; i < LPT; i++) {
            const int e = threadIdx.x + GRAM_THREADS * i, j = e / F4, f = 4 * (e % F4);
            const float *src = k + (j0 + j) * d + f;
            if (f + 4 <= d && d % 4 == 0) v[i] = *(const float4 *)src;
            else {
                v[i] = make_float4(0.f, 0.f, 0.f, 0.f);
                if (f < d) v[i].x = src[0], v[i].y = src[1];  // d even
                if (f + 2 < d) v[i].z = src[2], v[i].w = src[3];
            }
        }
    };
    load_tile(S + s * GSEG * C);
    if (k16) {  // the keys outside the Grams' S .. S + nch C - 1 (those are written as they are split):
                // the sinks, and up to T keys after the last chunk's (d % 8 == 0)
        const int64_t e1 = S + nch * C, nx = ((int64_t)S + (N > e1 ? N - e1 : 0)) * d / 4;
        for (int64_t x = s * GRAM_THREADS + threadIdx.x; x < nx; x += (int64_t)gridDim.x * GRAM_THREADS) {
            const int64_t y = x < (int64_t)S * d / 4 ? 4 * x : 4 * x + (e1 - S) * d;  // the element
            const float4 v4 = *(const float4 *)(k + y);
            *(uint2 *)(k16 + y) = make_uint2(half2_bits(__floats2half2_rn(v4.x, v4.y)), half2_bits(__floats2half2_rn(v4.z, v4.w)));
        }
    }
    __syncthreads();
    const int lr = lane & 7, lm = lane >> 3;  // ldmatrix: row lr of matrix lm
    for (int64_t c = s * GSEG; c < c1; c++) {
        store(Gloc + (size_t)c * d * d);
        float acc[MT][NT][4];
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
            for (int n = 0; n < NT; n++) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.f;
        for (int kh = 0; kh < C / BT; kh++) {
            __syncthreads();  // the previous tile's fragments read (and run's stores)
#pragma unroll
            for (int i = 0; i < LPT; i++) {
                const int e = threadIdx.x + GRAM_THREADS * i, j = e / F4, f = 4 * (e % F4);
                const float4 m4 = *(const float4 *)(mf + f), s4 = *(const float4 *)(sf + f);
                if (k16)
                    *(uint2 *)(k16 + (S + c * C + kh * BT + j) * d + f) =
                        make_uint2(half2_bits(__floats2half2_rn(v[i].x, v[i].y)), half2_bits(__floats2half2_rn(v[i].z, v[i].w)));
                uint32_t h0, l0, h1, l1;
                split2((v[i].x - m4.x) * s4.x, (v[i].y - m4.y) * s4.y, h0, l0);
                split2((v[i].z - m4.z) * s4.z, (v[i].w - m4.w) * s4.w, h1, l1);
                *(uint2 *)(Th + j * ldt<DP>() + f) = make_uint2(h0, h1);
                *(uint2 *)(Tl + j * ldt<DP>() + f) = make_uint2(l0, l1);
            }
            const int64_t jn = S + c * C + (kh + 1) * BT;  // the next tile (the next chunk's first after the last)
            if (jn < S + c1 * C) load_tile(jn);
            __syncthreads();
#pragma unroll
            for (int ks = 0; ks < BT / 16; ks++) {
                // one k16 step at a time (the A fragments of one step only: 126 registers at 512 threads)
                // A (features a x keys) from the key-major tile: matrix lm = (a + 8 (lm & 1), keys + 8 (lm >> 1))
                uint32_t ah[MT][4], al[MT][4];
#pragma unroll
                for (int m = 0; m < MT; m++) {
                    const int off = (ks * 16 + (lm >> 1) * 8 + lr) * ldt<DP>() + a0 + m * 16 + (lm & 1) * 8;
                    ldmatrix_x4_trans(ah[m], Th + off);
                    ldmatrix_x4_trans(al[m], Tl + off);
                }
#pragma unroll
                for (int n0 = 0; n0 < NT; n0 += 2) {
                    // B (keys x features b), two n-tiles: matrix lm = keys + 8 (lm & 1) of columns
                    // b + 8 (n0 + (lm >> 1)) .. + 7; r[2 h], r[2 h + 1] are n-tile n0 + h's fragments
                    uint32_t bh[4], bl[4];
                    const int off = (ks * 16 + (lm & 1) * 8 + lr) * ldt<DP>() + b0 + (n0 + (lm >> 1)) * 8;
                    ldmatrix_x4_trans(bh, Th + off);
                    ldmatrix_x4_trans(bl, Tl + off);
#pragma unroll
                    for (int m = 0; m < MT; m++)
#pragma unroll
                        for (int h = 0; h < 2; h++) mma_f16_16816(acc[m][n0 + h], al[m], bh[2 * h], bh[2 * h + 1]);
#pragma unroll
                    for (int m = 0; m < MT; m++)
#pragma unroll
                        for (int h = 0; h < 2; h++) mma_f16_16816(acc[m][n0 + h], ah[m], bl[2 * h], bl[2 * h + 1]);
#pragma unroll
                    for (int m = 0; m < MT; m++)
#pragma unroll
                        for (int h = 0; h < 2; h++) mma_f16_16816(acc[m][n0 + h], ah[m], bh[2 * h], bh[2 * h + 1]);
                }
            }
        }
        // run += the chunk's Gram, unscaled (float adds rounding to nearest: each chunk's Gram is
        // accumulated by the tensor cores over its own C keys only; their accumulation truncates,
        // and over a whole segment it biased sigma^2 by ~2e-5 relative)
#pragma unroll
        for (int m = 0; m < MT; m++) {
            const int ra = a0 + m * 16 + g, rb = ra + 8;
            const float ira = pow2_inv(sf[ra]), irb = pow2_inv(sf[rb]);
#pragma unroll
            for (int n = 0; n < NT; n++) {
                const int b = b0 + n * 8 + 2 * t;
                const float ib0 = pow2_inv(sf[b]), ib1 = pow2_inv(sf[b + 1]);
                float2 *pa = (float2 *)(run + ra * LDR + b), *pb = (float2 *)(run + rb * LDR + b);
                float2 xa = *pa, xb = *pb;
                xa.x += acc[m][n][0] * ira * ib0, xa.y += acc[m][n][1] * ira * ib1;
                xb.x += acc[m][n][2] * irb * ib0, xb.y += acc[m][n][3] * irb * ib1;
                *pa = xa, *pb = xb;
            }
        }
        __syncthreads();  // run complete before the next store
    }
    store(Gseg + (size_t)s * d * d);
}

// Rows without an interior (i < S + T): the normaliser exactly over their i + 1 keys. One block of
// 128 threads per row, z of its keys in shared memory (dynamic, i + 1 floats at most S + T).
__device__ __forceinline__ double block_sum_d(double x, double *red) {  // blockDim.x = 128
    x = warp_sum(x);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = x;
    __syncthreads();
    return red[0] + red[1] + red[2] + red[3];
}
__device__ __forceinline__ double block_max_d(double x, double *red) {
    x = warp_max(x);
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

// The last row's interior products z_j = q_{N-1} . k_j (keys kc0[0 .. n)) and their log-sum-exp in one
// pass over the keys (an SGEMV writing z and a kernel reading it back were two, ~30 us at 128K): each
// warp takes 4 keys at a time (float4 loads, float products and sums like the SGEMV's, one reduction
// by shuffles), with a running max and sum in double; part[2 b], part[2 b + 1] = the block's max and
// sum of exp(c z - max); lse_merge_kernel merges the blocks' pairs into {max, sum}.
__global__ void __launch_bounds__(256) lse_last_kernel(double *part, const float *q, const float *kc0, int64_t n, int d,
                                                       double c) {
    __shared__ double red[2][8];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float4 qv[MAXD / 128];
#pragma unroll
    for (int m = 0; m < MAXD / 128; m++) {
        const int x = 4 * lane + 128 * m;
        qv[m] = x < d ? *(const float4 *)(q + x) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    double mx = -INFINITY, l = 0;
    const int64_t nw = (int64_t)gridDim.x * 8;
    for (int64_t t0 = (blockIdx.x * 8 + warp) * 4; t0 < n; t0 += nw * 4) {
        float z[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            z[u] = 0.f;
#pragma unroll
            for (int m = 0; m < MAXD / 128; m++) {
                const int x = 4 * lane + 128 * m;
                if (x < d && t0 + u < n) {
                    const float4 kv = *(const float4 *)(kc0 + (t0 + u) * d + x);
                    z[u] = fmaf(qv[m].x, kv.x, fmaf(qv[m].y, kv.y, fmaf(qv[m].z, kv.z, fmaf(qv[m].w, kv.w, z[u]))));
                }
            }
        }
#pragma unroll
        for (int o = 16; o; o >>= 1)
#pragma unroll
            for (int u = 0; u < 4; u++) z[u] += __shfl_xor_sync(0xffffffffu, z[u], o);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            if (t0 + u >= n) break;
            const double y = c * z[u];
            if (y > mx) l = l * exp(mx - y) + 1.0, mx = y;
            else l += exp(y - mx);
        }
    }
    if (lane == 0) red[0][warp] = mx, red[1][warp] = l;
    __syncthreads();
    if (threadIdx.x == 0) lse_block_merge(part + 2 * blockIdx.x, red);
}
__global__ void lse_merge_kernel(double *out, const double *part, int nparts) {  // one warp
    double mx = -INFINITY, l = 0;
    for (int b = threadIdx.x; b < nparts; b += 32) mx = fmax(mx, part[2 * b]);
    mx = warp_max(mx);
    for (int b = threadIdx.x; b < nparts; b += 32)
        if (part[2 * b] > -INFINITY) l += part[2 * b + 1] * exp(part[2 * b] - mx);
    l = warp_sum(l);
    if (threadIdx.x == 0) out[0] = mx, out[1] = l;
}

// One ridge row per warp: a = [r_{I-J} - rbar_I, u_J - ubar_I] (2d), b = c q_I . k_J - mu_I, with
// mu_I from the key prefix in PF (as decomp_compute's running sum; rows_kernel's mu is not waited for,
// so that the ridge solve overlaps the row statistics), in double. The fit's rows 0 .. M - 1 only: the
// held-out rows need no features (heldout_kernel).
__global__ void __launch_bounds__(256, 2) sample_rows_kernel(double *A, int64_t M, double *b, const int64_t *sI,
                                   const int64_t *sJ, const float *q, const float *k, const float *u, const float *PF, const double *PFseg,
                                   const double *inv_freq, int d, int S, int T, double c) {
    griddep_wait();
    const int64_t t = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (t >= M) return;
    const int64_t I = sI[t], J = sJ[t], n = I - T - S + 1;
    double *a = A + t * 2 * d;
    auto put = [&](int col, double v) { a[col] = v; };
    // The loads first, the sincos while they fly (a warp issues in order, so a use of a load waits for
    // it): the prefix rows of the u and k sums over keys S .. I - T (the CU-row chunk prefix PF within
    // its segment, the segment's PFseg), u_J, q_I and k_J; then the last chunk's rows.
    const int64_t x0 = I - T + 1, ch = (x0 - S) / CU, j0 = S + ch * CU;
    const int nr = (int)(x0 - j0);
    const float *pc = PF + ch * 2 * d;
    const double *ps = PFseg + (ch / CUSEG) * 2 * d;
    double us[MAXD / 32], ks[MAXD / 32], us2[MAXD / 32], ks2[MAXD / 32];
    float uj[MAXD / 32], qi[MAXD / 32], kj[MAXD / 32];
#pragma unroll
    for (int m = 0; m < MAXD / 32; m++) {
        const int x = lane + 32 * m;
        const bool in = x < d;
        us[m] = in ? pc[x] : 0.0, us2[m] = in ? ps[x] : 0.0;
        ks[m] = in ? pc[d + x] : 0.0, ks2[m] = in ? ps[d + x] : 0.0;
        uj[m] = in ? u[J * d + x] : 0.f, qi[m] = in ? q[I * d + x] : 0.f, kj[m] = in ? k[J * d + x] : 0.f;
    }
    for (int x = lane; x < d / 2; x += 32) {
        // rbar_I over offsets T .. I - S in closed form (decomp_rope_mean); the angle (T + (n - 1) / 2) w
        // as (T - 1/2) w + n w / 2 from the table's sin and cos of (T - 1/2) w (one sincos_big less a
        // frequency: session 9 measured two more a lane at +24 us of this kernel at 128K)
        const int h = d / 2;
        const double w = inv_freq[x], sw = inv_freq[h + x], sa = inv_freq[2 * h + x], ca = inv_freq[3 * h + x];
        double sn, cs, sh, ch;
        sincos_big(n * w / 2, &sh, &ch);
        const double mag = fabs(sw) < 1e-300 ? (double)n : sh / sw;
        const double sp = fma(sa, ch, ca * sh), cp = fma(ca, ch, -sa * sh);
        sincos_big((double)(I - J) * w, &sn, &cs);
        put(x, cs - cp * mag / n);
        put(x + d / 2, sn - sp * mag / n);
    }
#pragma unroll
    for (int m = 0; m < MAXD / 32; m++) us[m] += us2[m], ks[m] += ks2[m];
    // the last chunk's rows, row by row (each row's loads independent of the others')
#pragma unroll 4
    for (int jj = 0; jj < nr; jj++)
#pragma unroll
        for (int m = 0; m < MAXD / 32; m++) {
            const int x = lane + 32 * m;
            if (x < d) us[m] += u[(j0 + jj) * d + x], ks[m] += k[(j0 + jj) * d + x];
        }
    double qk = 0;
    float z = 0.f;
#pragma unroll
    for (int m = 0; m < MAXD / 32; m++) {
        const int x = lane + 32 * m;
        if (x < d) {
            put(d + x, uj[m] - us[m] / n);
            qk += (double)qi[m] * ks[m];
        }
        z += qi[m] * kj[m];
    }
    qk = warp_sum(qk);
    z = warp_sum(z);
    if (lane == 0) b[t] = c * z - c * qk / n;
}

// The held-out rows M .. ns - 1 (the fit's R^2 and RMSE) need no features: their prediction a . x =
// (r_{I-J} - rbar_I) alpha + (u_J - ubar_I) kappa is s_{I-J} - delta_I + v_J - eps_I = s_{I-J} + v_J + h_I + nu_I,
// which the host forms from the vectors it copies back (sampling them as the fit's rows are, their 2d
// features and a . x, was half of sample_rows_kernel's ~71 us at 128K, on the ridge chain). Here only
// z_IJ = c q_I . k_J, a warp a row, beside the Cholesky (the host takes mu_I off: the target is z_IJ - mu_I).
__global__ void heldout_kernel(double *b, const int64_t *sI, const int64_t *sJ, int64_t M, int64_t nho, const float *q,
                               const float *k, int d, double c) {
    const int64_t t = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (t >= nho) return;
    const int64_t I = sI[M + t], J = sJ[M + t];
    float z = 0.f;
    for (int x = lane; x < d; x += 32) z = fmaf(q[I * d + x], k[J * d + x], z);
    z = warp_sum(z);
    if (lane == 0) b[M + t] = c * z;
}

// The normal equations' A^T A and A^T b over the M fit rows of A (M, w), w = 2d, as double mma on the
// tensor cores: the lower triangle of ATB x ATB blocks (bi >= bk; the Cholesky reads no block above the
// diagonal), each block's rows split over gridDim.y CTAs whose partial sums a second kernel adds in a
// fixed order (deterministic). A^T b rides with the diagonal blocks. (cublasDgemm of the whole w x w,
// its split-K reduction and a cublasDgemv of A^T b were four kernels, ~57 us at 128K; this pair ~42.)
// Block of 4 warps, each a 32 x 32 quarter of the 64 x 64 output by m16n8k16 (m8n8k4, half the rate on
// sm_90 by bench/dmma_shapes.cu, took 48 us for the same tiling); ATK rows a stage, two stages by
// cp.async. The stages' rows are ATS doubles apart (ATS = 4 mod 16): each half-warp's 16 loads of a
// fragment (rows t + 4 i, columns g + 8 j) meet 16 distinct bank pairs.
constexpr int ATB = 64, ATK = 32, ATS = ATB + 4;
constexpr size_t ATA_SMEM = sizeof(double) * 4 * ATK * ATS;
__host__ __device__ inline int ata_pairs(int w) {
    const int nb = (w + ATB - 1) / ATB;
    return nb * (nb + 1) / 2;
}
__global__ void __launch_bounds__(128) ata_kernel(double *part, double *partb, const double *A, const double *b, int64_t M,
                                                  int w, int64_t rps) {
    griddep_wait();
    extern __shared__ __align__(16) unsigned char ata_sm[];  // sa, sb (2, ATK, ATS) each: ATA_SMEM
    double(*sa)[ATK][ATS] = (double(*)[ATK][ATS])ata_sm, (*sb)[ATK][ATS] = sa + 2;
    __shared__ double sv[2][ATK];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    int p = blockIdx.x, bi = 0;
    while (p > bi) p -= ++bi;
    const int bk = p;
    const bool diag = bi == bk;
    const int64_t m0 = blockIdx.y * rps, m1 = m0 + rps < M ? m0 + rps : M;
    const int nst = m0 < m1 ? (int)((m1 - m0 + ATK - 1) / ATK) : 0;
    auto issue = [&](int st) {
        const int buf = st & 1;
        // ATK rows x 32 pieces of 16 bytes a matrix: 8 a thread (4 with one matrix)
#pragma unroll
        for (int x = 0; x < ATK * (ATB / 2) / 128; x++) {
            const int e = tid + 128 * x, r = e >> 5, cp = (e & 31) * 2;
            const int64_t m = m0 + (int64_t)st * ATK + r;
            const bool okr = m < m1;
            const int ci = bi * ATB + cp, ck = bk * ATB + cp;
            cp_async16(&sa[buf][r][cp], okr && ci < w ? A + m * w + ci : A, okr && ci < w);
            if (!diag) cp_async16(&sb[buf][r][cp], okr && ck < w ? A + m * w + ck : A, okr && ck < w);
        }
        if (diag && tid < ATK) {
            const int64_t m = m0 + (int64_t)st * ATK + tid;
            sv[buf][tid] = m < m1 ? b[m] : 0.0;
        }
        cp_async_commit();
    };
    const int r0 = 32 * (warp >> 1), c0 = 32 * (warp & 1);
    double acc[2][4][4] = {};  // (16-row fragment, 8-column fragment): m16n8k16
    double atb = 0;
    if (nst > 0) issue(0);
    for (int st = 0; st < nst; st++) {
        const int buf = st & 1;
        if (st + 1 < nst) {
            issue(st + 1);
            cp_async_wait<1>();
        } else
            cp_async_wait<0>();
        __syncthreads();
        const double(*X)[ATS] = sa[buf];
        const double(*Y)[ATS] = diag ? sa[buf] : sb[buf];
#pragma unroll
        for (int kk = 0; kk < ATK; kk += 16) {
            double a[2][8], bb[4][4];
#pragma unroll
            for (int f = 0; f < 2; f++)
#pragma unroll
                for (int i = 0; i < 8; i++) a[f][i] = X[kk + t + 4 * (i / 2)][r0 + 16 * f + g + 8 * (i % 2)];
#pragma unroll
            for (int f = 0; f < 4; f++)
#pragma unroll
                for (int i = 0; i < 4; i++) bb[f][i] = Y[kk + t + 4 * i][c0 + 8 * f + g];
#pragma unroll
            for (int fr = 0; fr < 2; fr++)
#pragma unroll
                for (int fc = 0; fc < 4; fc++) chol::dmma16(acc[fr][fc], a[fr], bb[fc]);
        }
        if (diag && tid < ATB)
#pragma unroll 8
            for (int r = 0; r < ATK; r++) atb = fma(X[r][tid], sv[buf][r], atb);
        __syncthreads();
    }
    double *out = part + ((size_t)blockIdx.y * gridDim.x + blockIdx.x) * ATB * ATB;
#pragma unroll
    for (int fr = 0; fr < 2; fr++)
#pragma unroll
        for (int fc = 0; fc < 4; fc++)
#pragma unroll
            for (int h = 0; h < 2; h++)
                *(double2 *)(out + (r0 + 16 * fr + g + 8 * h) * ATB + c0 + 8 * fc + 2 * t) =
                    make_double2(acc[fr][fc][2 * h], acc[fr][fc][2 * h + 1]);
    if (diag && tid < ATB && bi * ATB + tid < w) partb[(size_t)blockIdx.y * w + bi * ATB + tid] = atb;
}
// AtA's lower blocks and Atb from the partial sums, added in split order; one thread an element.
__global__ void ata_reduce_kernel(double *AtA, double *Atb, const double *part, const double *partb, int w, int npair,
                                  int nsplit) {
    griddep_wait();
    griddep_launch();
    const int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (e < (int64_t)npair * ATB * ATB) {
        int p = (int)(e / (ATB * ATB)), bi = 0;
        const int rc = (int)(e % (ATB * ATB));
        while (p > bi) p -= ++bi;
        const int row = bi * ATB + rc / ATB, col = p * ATB + rc % ATB;
        if (row < w && col < w) {
            double s = 0;
#pragma unroll 8
            for (int y = 0; y < nsplit; y++) s += part[((size_t)y * npair) * ATB * ATB + e];
            AtA[(size_t)row * w + col] = s;
        }
    } else if (e < (int64_t)npair * ATB * ATB + w) {
        const int c = (int)(e - (int64_t)npair * ATB * ATB);
        double s = 0;
        for (int y = 0; y < nsplit; y++) s += partb[(size_t)y * w + c];
        Atb[c] = s;
    }
}

// The scans' tile: SCAN_TILE elements. uk_kernel and s_kernel take one tile a block and write its sum
// (in a fixed order) for scan_out_kernel, so that their prefix sums need no scan_sums_kernel pass
// (~9.5 us each at 128K, session 7).
constexpr int SCAN_TILE = 1024;

// uk_j = u_j . kappa (double): a block of UK_WARPS warps a tile, each warp SCAN_TILE / UK_WARPS keys, 8
// at a time (their loads in flight together), and the tile's sum of uk into tsum[blockIdx.x]. (With 8
// warps a tile, 128 blocks at 128K: 36.5 us, where a warp a key and no tile sums had taken 25.)
constexpr int UK_WARPS = 32;
__global__ void __launch_bounds__(UK_WARPS * 32) uk_kernel(double *uk, double *tsum, const float *u, const double *kappa, int64_t N,
                                                 int d) {
    griddep_wait();
    constexpr int KW = SCAN_TILE / UK_WARPS, U = 8, XL = MAXD / 32;
    __shared__ double ws[UK_WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double kv[XL];
#pragma unroll
    for (int m = 0; m < XL; m++) kv[m] = lane + 32 * m < d ? kappa[lane + 32 * m] : 0.0;
    const int64_t j0 = blockIdx.x * (int64_t)SCAN_TILE + warp * KW;
    double wsum = 0;
    for (int b = 0; b < KW; b += U) {
        float v[U][XL];
#pragma unroll
        for (int k = 0; k < U; k++)
#pragma unroll
            for (int m = 0; m < XL; m++) {
                const int x = lane + 32 * m;
                const int64_t j = j0 + b + k;
                v[k][m] = j < N && x < d ? u[j * d + x] : 0.f;
            }
        double sk[U];
#pragma unroll
        for (int k = 0; k < U; k++) {
            sk[k] = 0;
#pragma unroll
            for (int m = 0; m < XL; m++) sk[k] += (double)v[k][m] * kv[m];
        }
        // the U = 8 sums over the warp by halving exchanges (4 + 2 + 1 shuffles, then 2 more: 9 in all,
        // where a warp_sum each took 40): lane l ends with key k = 4 b4 + 2 b3 + b2 (bits of l) complete
        static_assert(U == 8, "three halving rounds");
        const bool b4 = lane & 16, b3 = lane & 8, b2 = lane & 4;
#pragma unroll
        for (int i = 0; i < 4; i++) {  // keep keys 4 b4 + i
            const double give = b4 ? sk[i] : sk[i + 4];
            sk[i] = (b4 ? sk[i + 4] : sk[i]) + __shfl_xor_sync(0xffffffffu, give, 16);
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {  // keys 4 b4 + 2 b3 + i
            const double give = b3 ? sk[i] : sk[i + 2];
            sk[i] = (b3 ? sk[i + 2] : sk[i]) + __shfl_xor_sync(0xffffffffu, give, 8);
        }
        {
            const double give = b2 ? sk[0] : sk[1];
            sk[0] = (b2 ? sk[1] : sk[0]) + __shfl_xor_sync(0xffffffffu, give, 4);
        }
        sk[0] += __shfl_xor_sync(0xffffffffu, sk[0], 2);
        sk[0] += __shfl_xor_sync(0xffffffffu, sk[0], 1);
        const int64_t j = j0 + b + 4 * b4 + 2 * b3 + b2;
        if ((lane & 3) == 0 && j < N) uk[j] = sk[0], wsum += sk[0];  // one lane of each key
    }
    wsum = warp_sum(wsum);
    if (lane == 0) ws[warp] = wsum;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0;
        for (int w = 0; w < UK_WARPS; w++) t += ws[w];
        tsum[blockIdx.x] = t;
    }
}

// s_m = r_m alpha - rbar_{N-1} alpha. SXS threads take SRUN consecutive offsets, each a quarter of
// the frequencies, their sums then added by shuffles (one thread a run left ~4 warps per SM at 128K:
// latency-bound, 29 us): r_m by a rotation recurrence from an exact sincos at the run's start (as the
// CPU, which re-anchors every 256); the one-step rotations once per block.
constexpr int SRUN = 8, SXS = 4;
constexpr int S_BLOCK = SCAN_TILE / SRUN * SXS;  // threads a block: one scan tile of offsets
__global__ void __launch_bounds__(S_BLOCK) s_kernel(float *s, double *tsum, const double *alpha, const double *inv_freq,
                                                  const double *rbarN, int64_t N, int d) {
    __shared__ double al[MAXD], fr[MAXD / 2], dsn[MAXD / 2], dcs[MAXD / 2], rba, ws[S_BLOCK / 32];
    for (int x = threadIdx.x; x < d; x += blockDim.x) al[x] = alpha[x];
    for (int x = threadIdx.x; x < d / 2; x += blockDim.x) fr[x] = inv_freq[x], sincos(inv_freq[x], &dsn[x], &dcs[x]);
    if (threadIdx.x == 0) {
        double r = 0;
        for (int x = 0; x < d; x++) r += rbarN[x] * alpha[x];
        rba = r;
    }
    __syncthreads();
    const int64_t gt = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;  // blockDim.x a multiple of 32
    const int q = (int)(gt % SXS);
    const int64_t m0 = gt / SXS * SRUN;
    double acc[SRUN];
#pragma unroll
    for (int t = 0; t < SRUN; t++) acc[t] = 0;
    if (m0 < N)
        for (int x = q; x < d / 2; x += SXS) {
            double sn, cs;
            sincos_big((double)m0 * fr[x], &sn, &cs);
            const double ds = dsn[x], dc = dcs[x];
#pragma unroll
            for (int t = 0; t < SRUN; t++) {
                acc[t] += al[x] * cs + al[x + d / 2] * sn;
                const double ncs = cs * dc - sn * ds;
                sn = sn * dc + cs * ds;
                cs = ncs;
            }
        }
#pragma unroll
    for (int o = 1; o < SXS; o <<= 1)
#pragma unroll
        for (int t = 0; t < SRUN; t++) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
    double rs = 0;  // the run's sum of its float32 s values, in order (lane q == 0 of the run)
#pragma unroll
    for (int t = 0; t < SRUN; t++) {
        const float sv = (float)(acc[t] - rba);
        if (m0 + t < N) {
            if (t % SXS == q) s[m0 + t] = sv;
            rs += (double)sv;
        }
    }
    // the tile's sum: the runs' sums in order, within the warp, then the warps' in order
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = SXS; o < 32; o <<= 1) {
        const double y = __shfl_down_sync(0xffffffffu, rs, o);
        if ((lane & (2 * o - 1)) == 0) rs += y;
    }
    if (lane == 0) ws[warp] = rs;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0;
        for (int w = 0; w < S_BLOCK / 32; w++) t += ws[w];
        tsum[blockIdx.x] = t;
    }
}

// Exclusive prefix sums out (n + 1) of x_m = (double)sf[m] (when sf) or xd[m], from the sums of its tiles
// of SCAN_TILE elements, which the producer wrote (uk_kernel, s_kernel): each block rescans its tile from
// its offset, the sum of the tile sums before it. (Session 7 had a pass of its own for the tile sums, and
// before that a third kernel that scanned them in one thread.)
constexpr int SCAN_PER = SCAN_TILE / 256;
__device__ __forceinline__ double scan_x(const float *sf, const double *xd, int64_t m) {
    return sf ? (double)sf[m] : xd[m];
}
__global__ void scan_out_kernel(double *out, const double *tiles, const float *sf, const double *xd, int64_t n) {
    griddep_wait();
    __shared__ double part[256], base[2];
    if (threadIdx.x < 32) {  // this tile's offset: the sum of the tiles before it (the last block: and the total)
        const bool last = blockIdx.x + 1 == gridDim.x;
        double b = 0, tot = 0;
        for (unsigned x = threadIdx.x; x < gridDim.x; x += 32) {
            if (x < blockIdx.x) b += tiles[x];
            if (last) tot += tiles[x];
        }
        b = warp_sum(b);
        if (last) tot = warp_sum(tot);
        if (threadIdx.x == 0) base[0] = b, base[1] = tot;
    }
    const int64_t a0 = blockIdx.x * (int64_t)SCAN_TILE + threadIdx.x * SCAN_PER;
    double v[SCAN_PER], s = 0;
#pragma unroll
    for (int t = 0; t < SCAN_PER; t++) v[t] = a0 + t < n ? scan_x(sf, xd, a0 + t) : 0.0, s += v[t];
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
    double run = base[0] + part[threadIdx.x];
#pragma unroll
    for (int t = 0; t < SCAN_PER; t++)
        if (a0 + t < n) out[a0 + t] = run, run += v[t];
    if (blockIdx.x + 1 == gridDim.x && threadIdx.x == 0) out[n] = base[1];
}

// v_j and h_i, one thread per position. Each thread forms the two scalars from the last row (a kernel
// of their own was a launch more on the critical path): ubar_{N-1} kappa from the prefix pv, and zeta
// from the last row's log-sum-exp red = {max, sum}, its mu and sigma^2; thread 0 writes them to sc for
// the host.
__global__ void vh_kernel(float *v, float *h, double *nu, const double *uk, double *sc, const double *ps,
                          const double *pv, const double *red, const double *mu, const double *log_lambda,
                          const double *sigma2, int64_t N, int S, int T) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t nlast = N - T - S;
    const double ubarN_kappa = (pv[N - T] - pv[S]) / nlast;
    const double zeta = mu[N - 1] + sigma2[N - 1] / 2 - (red[0] + log(red[1] / nlast));
    if (i == 0) sc[0] = ubarN_kappa, sc[1] = zeta;
    if (i >= N) return;
    v[i] = (float)(uk[i] - ubarN_kappa);
    const int64_t n = i - T - S + 1;
    if (n < 1) {
        h[i] = (float)(-nu[i]);
        return;
    }
    const double delta = (ps[i - S + 1] - ps[T]) / n, epsi = (pv[i - T + 1] - pv[S]) / n - ubarN_kappa;
    const double a = log_lambda[i], bt = log((double)n) + sigma2[i] / 2 - zeta;
    const double hi = a > bt ? a : bt, lo = a > bt ? bt : a;
    nu[i] = hi + log1p(exp(lo - hi));
    h[i] = (float)(-delta - epsi - nu[i]);
}

// Block maxima of s, v, h (mask_block_vectors): Mb, vB, hB (nb). One warp per block.
__global__ void block_vectors_kernel(float *Mb, float *vB, float *hB, const float *s, const float *v, const float *h,
                                     int64_t N, int B, int64_t nb) {
    const int64_t b = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (b >= nb) return;
    float ms = -INFINITY, mv = -INFINITY, mh = -INFINITY;
    for (int64_t x = b * B + lane; x < (b + 1) * B && x < N; x += 32) ms = fmaxf(ms, s[x]), mv = fmaxf(mv, v[x]), mh = fmaxf(mh, h[x]);
#pragma unroll
    for (int o = 16; o; o >>= 1) {
        ms = fmaxf(ms, __shfl_xor_sync(0xffffffffu, ms, o));
        mv = fmaxf(mv, __shfl_xor_sync(0xffffffffu, mv, o));
        mh = fmaxf(mh, __shfl_xor_sync(0xffffffffu, mh, o));
    }
    if (lane == 0) Mb[b] = ms, vB[b] = mv, hB[b] = mh;
}

// The threshold-mode block scan (mask_skeleton): mask (nb, nb) and the count of causal blocks whose
// score is below tauB. Grid-stride over rows I (y) and columns J, MQ at a time (x); one atomic per CTA
// (one per warp, over 4M blocks at 128K, serialised on one address and cost 0.07 ms).
constexpr int MQ = 4;  // mask_kernel: blocks a thread, one 32-bit store when nb % MQ == 0
__global__ void mask_kernel(uint8_t *mask, unsigned long long *below, const float *Mb, const float *vB, const float *hB,
                            int64_t nb, float tauB, int64_t sink_cols, int64_t band, int keep_above) {
    __shared__ unsigned long long red[32];
    unsigned long long cnt = 0;
    const bool vec = nb % MQ == 0;
    const int64_t nq = (nb + MQ - 1) / MQ;
    for (int64_t I = blockIdx.y; I < nb; I += gridDim.y) {
        const float hI = hB[I];
        for (int64_t qd = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; qd < nq; qd += (int64_t)gridDim.x * blockDim.x) {
            const int64_t J0 = qd * MQ;
            uint32_t word = 0;  // block J0 + e in byte e (little-endian: the order in memory)
            if (J0 <= I)
#pragma unroll
                for (int e = 0; e < MQ; e++) {
                    const int64_t J = J0 + e;
                    if (J <= I) {
                        const int64_t kk = I - J;
                        const float sB = kk == 0 ? Mb[0] : 0.5f * (Mb[kk - 1] + Mb[kk]);
                        const float sc = sB + vB[J] + hI;
                        cnt += sc < tauB;
                        const uint32_t keep = J < sink_cols || kk <= band || (keep_above && sc >= tauB);
                        word |= keep << (8 * e);
                    }
                }
            if (vec)
                *(uint32_t *)(mask + I * nb + J0) = word;
            else
                for (int e = 0; e < MQ && J0 + e < nb; e++) mask[I * nb + J0 + e] = (uint8_t)(word >> (8 * e));
        }
    }
    cnt = warp_sum(cnt);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = cnt;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)blockDim.x / 32; w++) cnt += red[w];
        if (cnt) atomicAdd(below, cnt);
    }
}

unsigned blocks_for(int64_t threads, int per_block) { return (unsigned)((threads + per_block - 1) / per_block); }

// A launch with programmatic stream serialization (gpu_common.cuh's griddep_wait): the kernel's CTAs may be
// scheduled as the kernel before it on st ends, rather than after (in the graph, ~1-4 us between a node's end
// and its dependent's start, bench/decomp_timeline.sh).
// With pdl false (the operation before it on st is not a kernel: an event's wait), a plain launch.
template <typename... KArgs, typename... Args>
void launch_pdl(bool pdl, void (*kern)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st, Args... args) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = st, cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, kern, (KArgs)args...));
}

constexpr int LSE_PARTS = 256;
constexpr int CHOL_TILE = chol::CT;

// A prefix sum whose producer wrote the tile sums (uk_kernel, s_kernel): scan_out_kernel alone.
void scan_finish(double *out, const double *tiles, const float *sf, const double *xd, int64_t n, cudaStream_t st) {
    launch_pdl(true, scan_out_kernel, blocks_for(n, SCAN_TILE), 256, 0, st, out, tiles, sf, xd, n);
}

}  // namespace

// ---------------------------------------------------------------------------- entry points

struct gpu_decomp {
    int64_t N, Npad, nch, ncu, ns;
    int d, S, T, M, np;
    double ridge;
    uint64_t seed;
    cudaStream_t s1;     // the decomposition's first stream while it is captured into a graph
    struct {
        int key;                // the kind of call (gpu_decomp_compute)
        cudaGraphExec_t exec;
    } graphs[16];               // decomp_enqueue's work, captured once a key: one launch a call
    int ngraph;
    cudaStream_t s2;     // the ridge chain (samples .. uk, v's prefix), beside the row statistics
    cudaStream_t s3;     // s and its prefix, beside uk once the ridge system is solved
    cudaEvent_t fork, join, solved, join3;  // the first stream (st) to s2, s2 back; s2 to s3, s3 back
    cudaEvent_t eqready;                    // s2's normal equations formed: the Grams and row statistics start
    double *tiles2, *tiles3;  // scan scratch of s2 and s3
    double *L;           // (chol::LG_DOUBLES) the ridge system's Cholesky factor below its diagonal tiles, by tiles
                         // rounded up to CHOL_TILE
    double *Mg;          // (chol::MG_DOUBLES) the inverses of its diagonal tiles, by tiles
    int *info;           // the factorisation's status
    double *rbarN;       // (d) rbar of the last row
    double *sc;          // (2) ubar_{N-1} kappa, zeta
    float *q, *k;        // (Npad, d) zero-padded copies
    __half *k16;         // (Npad, d) the keys as float16 (exact: written only for float16 dumps, k16_ok)
    int k16_ok;          // k16 holds the current keys (the last k_changed call had qk_f16 and d % 8 == 0)
    float *u;            // (N, d) un-RoPE'd keys
    double *inv_freq;    // (4, d / 2): w, then sin(w / 2), sin((T - 1/2) w), cos((T - 1/2) w) (the samples')
    int32_t *pos;        // (N)
    double *ktot;        // (d) the keys' sum over S .. N - T - 1 (ktot_kernel)
    cudaEvent_t kready;  // s2 to st: PFseg, ktot and amax are there
    float *PF;           // (ncu + 1, 2d) u and k sums over chunks of CU keys from S: exclusive prefix within
                         // segments of CUSEG chunks (the samples' ubar and mu; unrope_sums_kernel)
    double *PFseg;       // (npf, 2d) the segments' sums, then their exclusive prefix
    int64_t npf;         // segments of CUSEG chunks, ceil((ncu + 1) / CUSEG)
    float *G;            // (nch, d, d) the chunks' key Grams' exclusive prefix within their segment of GSEG
    float *Gseg;         // (nseg, d, d) the segments' Grams, then their exclusive prefix
    float *amax;         // (d) the features' largest |k| (the Grams' split scales)
    int64_t nseg;
    double *mu, *sigma2, *log_lambda, *nu;  // (N)
    int64_t *sI, *sJ;    // (ns) samples
    double *A, *b;       // (M, 2d): the fit rows; (ns): every row's target
    double *AtA, *Atb, *x;  // (2d, 2d), (2d), (2d)
    int64_t *hI, *hJ;       // (ns) the samples on the host (drawn once: they depend on N, S, T and the seed only)
    double *apart, *bpart;  // ata_kernel's partial sums: (ata_nsplit, ata_pairs, ATB, ATB), (ata_nsplit, 2d)
    int64_t ata_rps;        // fit rows a split
    int ata_nsplit;
    double *uk, *ps, *pv;  // (N), (N + 1), (N + 1)
    float *s, *v, *h;    // (N)
    double *red;         // (4)
    double *tiles;       // (2 max(npf, LSE_PARTS)) the last row's lse parts (the scans use tiles2, tiles3)
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
    void *bufs[] = {g->q, g->k, g->k16, g->u, g->inv_freq, g->pos, g->ktot, g->PF, g->PFseg, g->G, g->Gseg, g->amax,
                    g->mu, g->sigma2, g->log_lambda, g->nu, g->sI, g->sJ, g->A, g->b, g->AtA, g->Atb, g->x,
                    g->apart, g->bpart,
                    g->uk, g->ps, g->pv, g->s, g->v, g->h, g->red, g->Mb, g->vB, g->hB, g->mask, g->below,
                    g->budget, g->L, g->Mg, g->info, g->rbarN, g->sc, g->tiles, g->tiles2, g->tiles3};
    for (size_t x = 0; x < sizeof bufs / sizeof bufs[0]; x++)
        if (bufs[x]) CUDA_CHECK(cudaFree(bufs[x]));
    for (int x = 0; x < g->ngraph; x++) CUDA_CHECK(cudaGraphExecDestroy(g->graphs[x].exec));
    if (g->s1) CUDA_CHECK(cudaStreamDestroy(g->s1));
    if (g->s2) CUDA_CHECK(cudaStreamDestroy(g->s2));
    if (g->s3) CUDA_CHECK(cudaStreamDestroy(g->s3));
    if (g->fork) CUDA_CHECK(cudaEventDestroy(g->fork));
    if (g->join) CUDA_CHECK(cudaEventDestroy(g->join));
    if (g->kready) CUDA_CHECK(cudaEventDestroy(g->kready));
    if (g->solved) CUDA_CHECK(cudaEventDestroy(g->solved));
    if (g->join3) CUDA_CHECK(cudaEventDestroy(g->join3));
    if (g->eqready) CUDA_CHECK(cudaEventDestroy(g->eqready));
    for (int x = 0; x < 4; x++)
        if (g->ev[x]) CUDA_CHECK(cudaEventDestroy(g->ev[x]));
    free(g->hI), free(g->hJ);
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
    g->nch = (nint + C - 1) / C, g->ncu = (N - g->S + CU - 1) / CU;
    g->npf = (g->ncu + 1 + CUSEG - 1) / CUSEG;
    g->nseg = (g->nch + GSEG - 1) / GSEG;
    g->ns = 2 * (int64_t)g->M;
    g->np = (2 * d + CHOL_TILE - 1) / CHOL_TILE * CHOL_TILE;
    g->Npad = g->S + g->nch * C;  // the chunks' Grams read keys S .. S + nch C - 1
    if (g->Npad < N) g->Npad = N;
    g->nb_cap = (N + B - 1) / B;
    const size_t fd = sizeof(float) * d, dd = sizeof(double) * d, w = 2 * (size_t)d;
    size_t total = 0;
    int bad = 0;
    bad |= dev_alloc((void **)&g->q, g->Npad * fd, &total);
    bad |= dev_alloc((void **)&g->k, g->Npad * fd, &total);
    bad |= dev_alloc((void **)&g->u, N * fd, &total);
    bad |= dev_alloc((void **)&g->k16, g->Npad * sizeof(__half) * d, &total);
    bad |= dev_alloc((void **)&g->inv_freq, sizeof(double) * 2 * d, &total);  // and the samples' constants
    bad |= dev_alloc((void **)&g->pos, sizeof(int32_t) * N, &total);
    bad |= dev_alloc((void **)&g->ktot, dd, &total);
    bad |= dev_alloc((void **)&g->PF, (g->ncu + 1) * 2 * fd, &total);
    bad |= dev_alloc((void **)&g->PFseg, g->npf * 2 * dd, &total);
    bad |= dev_alloc((void **)&g->G, g->nch * d * fd, &total);
    bad |= dev_alloc((void **)&g->Gseg, g->nseg * d * fd, &total);
    bad |= dev_alloc((void **)&g->amax, fd, &total);
    bad |= dev_alloc((void **)&g->mu, sizeof(double) * N, &total);
    bad |= dev_alloc((void **)&g->sigma2, sizeof(double) * N, &total);
    bad |= dev_alloc((void **)&g->log_lambda, sizeof(double) * N, &total);
    bad |= dev_alloc((void **)&g->nu, sizeof(double) * N, &total);
    bad |= dev_alloc((void **)&g->sI, sizeof(int64_t) * g->ns, &total);
    bad |= dev_alloc((void **)&g->sJ, sizeof(int64_t) * g->ns, &total);
    bad |= dev_alloc((void **)&g->A, sizeof(double) * g->M * w, &total);
    bad |= dev_alloc((void **)&g->b, sizeof(double) * g->ns, &total);
    bad |= dev_alloc((void **)&g->AtA, sizeof(double) * w * w, &total);
    bad |= dev_alloc((void **)&g->Atb, sizeof(double) * w, &total);
    {
        // about two CTAs of ata_kernel a SM (132 on the H100) over the lower blocks
        const int npair = ata_pairs(w), want = (264 + npair - 1) / npair;
        const int64_t per = (g->M + want - 1) / want;
        g->ata_rps = (per + ATK - 1) / ATK * ATK;
        g->ata_nsplit = (int)((g->M + g->ata_rps - 1) / g->ata_rps);
        bad |= dev_alloc((void **)&g->apart, sizeof(double) * g->ata_nsplit * npair * ATB * ATB, &total);
        bad |= dev_alloc((void **)&g->bpart, sizeof(double) * g->ata_nsplit * w, &total);
    }
    bad |= dev_alloc((void **)&g->x, sizeof(double) * w, &total);
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
    bad |= dev_alloc((void **)&g->L, sizeof(double) * chol::LG_DOUBLES, &total);
    bad |= dev_alloc((void **)&g->Mg, sizeof(double) * chol::MG_DOUBLES, &total);
    bad |= dev_alloc((void **)&g->rbarN, sizeof(double) * d, &total);
    bad |= dev_alloc((void **)&g->sc, sizeof(double) * 2, &total);
    bad |= dev_alloc((void **)&g->tiles, sizeof(double) * 2 * (g->npf > LSE_PARTS ? g->npf : LSE_PARTS), &total);
    bad |= dev_alloc((void **)&g->tiles2, sizeof(double) * (N / SCAN_TILE + 1), &total);
    bad |= dev_alloc((void **)&g->tiles3, sizeof(double) * (N / SCAN_TILE + 1), &total);
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
    CUDA_CHECK(cudaMemset(g->k16, 0, g->Npad * sizeof(__half) * d));
    {
        // the ridge chain at the device's highest stream priority: its kernels take SMs as they free
        // before the row statistics' do (it ends in the one-SM Cholesky: the longer chain once
        // rows_kernel shrank, session 6)
        int lo = 0, hi = 0;
        CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
        CUDA_CHECK(cudaStreamCreateWithPriority(&g->s1, cudaStreamNonBlocking, lo));
        CUDA_CHECK(cudaStreamCreateWithPriority(&g->s2, cudaStreamNonBlocking, hi));
        CUDA_CHECK(cudaStreamCreateWithPriority(&g->s3, cudaStreamNonBlocking, hi));
    }
    CUDA_CHECK(cudaEventCreateWithFlags(&g->fork, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&g->join, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&g->kready, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&g->solved, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&g->join3, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&g->eqready, cudaEventDisableTiming));
    CUDA_CHECK(cudaFuncSetAttribute(ata_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)ATA_SMEM));
    CUDA_CHECK(cudaFuncSetAttribute(unrope_sums_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)UNROPE_SMEM));
    CUDA_CHECK(cudaFuncSetAttribute(chol::chol_solve_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)chol::SMEM));
    CUDA_CHECK(cudaFuncSetAttribute(rows_kernel<64, 2, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)rows_smem<64, 2>()));
    CUDA_CHECK(cudaFuncSetAttribute(rows_kernel<64, 2, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)rows_smem<64, 2>()));
    CUDA_CHECK(cudaFuncSetAttribute(rows_kernel<128, 2, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)rows_smem<128, 2>()));
    CUDA_CHECK(cudaFuncSetAttribute(rows_kernel<128, 1, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)rows_smem<128, 1>()));
    CUDA_CHECK(cudaFuncSetAttribute(gram_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)gram_smem<64>()));
    CUDA_CHECK(cudaFuncSetAttribute(gram_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)gram_smem<128>()));
    for (int x = 0; x < 4; x++) CUDA_CHECK(cudaEventCreate(&g->ev[x]));
    g->hI = (int64_t *)malloc(sizeof(int64_t) * g->ns), g->hJ = (int64_t *)malloc(sizeof(int64_t) * g->ns);
    CHECK(g->hI && g->hJ);
    decomp_draw_samples(g->hI, g->hJ, g->ns, N, g->S, g->T, g->seed);
    CUDA_CHECK(cudaMemcpy(g->sI, g->hI, sizeof(int64_t) * g->ns, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(g->sJ, g->hJ, sizeof(int64_t) * g->ns, cudaMemcpyHostToDevice));
    *out = g;
    return 0;
}

static float elapsed_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms;
}

// The decomposition's launches after the upload (everything up to v and h, and the held-out targets), on
// st, s2 and s3, as gpu_decomp_compute captures them into a graph (st = s1). (decomp4's graph of this
// sequence had measured 0.54 -> 0.49 ms at 8K but 1.27 -> 1.41 ms at 128K, decomp4_ab.log; session 12's,
// 0.27 -> 0.26 at 8K and 0.53 -> 0.52 at 128K, s12_graph_ab.log.)
static void decomp_enqueue(gpu_decomp *g, int k_changed, int qk_f16, rope_layout layout, cudaStream_t st) {
    const int64_t N = g->N, ns = g->ns;
    const int d = g->d, S = g->S, T = g->T, M = g->M, w = 2 * d;
    const double c = 1.0 / sqrt((double)d);
    // Three streams: s2 takes u with the key sums (which st waits for), the fit's samples, the ridge solve,
    // uk and v's prefix; s3 the last row's lse, the short rows and the held-out products, then s and its
    // prefix once the system is solved; st (once s2's normal equations are formed) the key Grams and the
    // row statistics. They join before v and h. (Session 7: with the Cholesky shorter, the total is about
    // the sum of the kernels that fill the GPU: the streams share it.)
    const double nall = (double)(N - T - S);  // the last row's interior
    CUDA_CHECK(cudaEventRecord(g->fork, st));
    CUDA_CHECK(cudaStreamWaitEvent(g->s2, g->fork, 0));
    // ------------------------------------------------------------ s3: the last row's log-sum-exp when
    // the keys are reused (when they are new, unrope_sums_kernel's parts, merged once it is done)
    CUDA_CHECK(cudaStreamWaitEvent(g->s3, g->fork, 0));
    if (!k_changed) {
        lse_last_kernel<<<LSE_PARTS, 256, 0, g->s3>>>(g->tiles, g->q + (size_t)(N - 1) * d, g->k + (size_t)S * d, N - T - S, d, c);
        CUDA_CHECK_LAUNCH();
        lse_merge_kernel<<<1, 32, 0, g->s3>>>(g->red, g->tiles, LSE_PARTS);
        CUDA_CHECK_LAUNCH();
    }
    // ------------------------------------------------------------ s2: u, its prefix sums and k's
    if (k_changed) {
        // with the largest |k| of each feature over the Grams' keys S .. S + nch C - 1 (below N), and the
        // keys' sums for the row statistics too (PFseg's k part at segments of CUSEG CU = C keys is the
        // exclusive prefix of their chunks' key sums): a pass over the keys of its own on the other
        // stream (chunk_colsum_kernel + a scan, ~38 us at 128K) is gone
        static_assert(CUSEG * CU == C, "PFseg's segments are the row statistics' chunks");
        CUDA_CHECK(cudaMemsetAsync(g->amax, 0, sizeof(float) * d, g->s2));
        const int64_t amax_end = S + g->nch * C < N ? S + g->nch * C : N;
        unrope_sums_kernel<<<(unsigned)g->npf, 256, UNROPE_SMEM, g->s2>>>(g->u, g->PF, g->PFseg, g->k, N, d, S, g->ncu,
                                                                          g->inv_freq, g->pos, layout == ROPE_HALF, g->amax,
                                                                          amax_end, g->q + (size_t)(N - 1) * d, N - T - S, c,
                                                                          g->tiles);
        CUDA_CHECK_LAUNCH();
        launch_pdl(true, scan_cols_kernel<double, 8>, blocks_for(2 * d, 8), dim3(8, 128), 0, g->s2, g->PFseg, g->npf,
                   (int64_t)(2 * d), 0);
        launch_pdl(true, ktot_kernel, 1, d, 0, g->s2, g->ktot, g->PF, g->PFseg, g->k, N, d, S, T);
        CUDA_CHECK(cudaEventRecord(g->kready, g->s2));
        CUDA_CHECK(cudaStreamWaitEvent(g->s3, g->kready, 0));
        lse_merge_kernel<<<1, 32, 0, g->s3>>>(g->red, g->tiles, (int)g->npf);
        CUDA_CHECK_LAUNCH();
    }
    // ------------------------------------------------------------ s2: samples, ridge solve, s, uk
    launch_pdl(k_changed, sample_rows_kernel, blocks_for((int64_t)M * 32, 256), 256, 0, g->s2, g->A, M, g->b, g->sI, g->sJ,
               g->q, g->k, g->u, g->PF, g->PFseg, g->inv_freq, d, S, T, c);
    // A^T A's lower blocks and A^T b (ata_kernel; cublasDsyrk, half the products, had measured slower
    // than cublasDgemm: 0.857 / 0.866 -> 0.925 / 0.910 ms at 128K, session 7)
    {
        const int npair = ata_pairs(w);
        launch_pdl(true, ata_kernel, dim3((unsigned)npair, (unsigned)g->ata_nsplit), 128, ATA_SMEM, g->s2, g->apart, g->bpart,
                   g->A, g->b, M, w, g->ata_rps);
        launch_pdl(true, ata_reduce_kernel, blocks_for((int64_t)npair * ATB * ATB + w, 256), 256, 0, g->s2, g->AtA, g->Atb,
                   g->apart, g->bpart, w, npair, g->ata_nsplit);
    }
    CUDA_CHECK(cudaEventRecord(g->eqready, g->s2));
    // s3: the short rows and the held-out products (neither needs the key sums) beside the Cholesky and
    // gram_kernel, on the SMs that gram_kernel's one wave leaves (on st in front of the Grams, the short
    // rows' blocks had waited for SMs behind the ridge chain's kernels: at 32K gram_kernel started ~95 us
    // after the normal equations were ready; at the start, beside the key pass, they slowed it at 32K;
    // bench/decomp_timeline.sh)
    CUDA_CHECK(cudaStreamWaitEvent(g->s3, g->eqready, 0));
    short_rows_kernel<<<S + T, 128, sizeof(double) * (S + T), g->s3>>>(g->mu, g->sigma2, g->log_lambda, g->nu, g->q, g->k, d, c);
    CUDA_CHECK_LAUNCH();
    heldout_kernel<<<blocks_for((ns - M) * 32, 256), 256, 0, g->s3>>>(g->b, g->sI, g->sJ, M, ns - M, g->q, g->k, d, c);
    CUDA_CHECK_LAUNCH();
    launch_pdl(true, chol::chol_solve_kernel, 1, chol::THREADS, chol::SMEM, g->s2, g->L, g->Mg, g->x, g->info, (const double *)g->AtA,
               (const double *)g->Atb, w, g->ridge);
    // s and its prefix on s3, beside uk and its prefix on s2
    CUDA_CHECK(cudaEventRecord(g->solved, g->s2));
    CUDA_CHECK(cudaStreamWaitEvent(g->s3, g->solved, 0));
    s_kernel<<<blocks_for(N, SCAN_TILE), S_BLOCK, 0, g->s3>>>(g->s, g->tiles3, g->x, g->inv_freq, g->rbarN, N, d);
    CUDA_CHECK_LAUNCH();
    scan_finish(g->ps, g->tiles3, g->s, NULL, N, g->s3);
    CUDA_CHECK(cudaEventRecord(g->join3, g->s3));
    launch_pdl(true, uk_kernel, blocks_for(N, SCAN_TILE), UK_WARPS * 32, 0, g->s2, g->uk, g->tiles2, (const float *)g->u,
               (const double *)(g->x + d), N, d);
    // pv: uk's prefix as it is, not centred on ubar_{N-1} kappa (the CPU's), which needs its sum first:
    // in double its magnitude costs ~N 1e-16 |uk| in eps_i, far below h's float32 (a second, centred
    // scan on the tail measured ~25 us of the critical path at 128K, session 7)
    scan_finish(g->pv, g->tiles2, NULL, g->uk, N, g->s2);
    CUDA_CHECK(cudaEventRecord(g->join, g->s2));
    if (k_changed) CUDA_CHECK(cudaStreamWaitEvent(st, g->kready, 0));  // else the last call's, complete
    // and for the ridge chain's normal equations: gram_kernel's CTAs (a SM's whole register file each,
    // one wave) had held every SM while ata_kernel waited for them; the Cholesky (one SM) now runs beside
    // the Grams and row statistics (s12: 128K 0.500 / 0.493 -> 0.476 / 0.481 ms; after the samples alone,
    // no gain)
    CUDA_CHECK(cudaStreamWaitEvent(st, g->eqready, 0));
    if (k_changed) {
        // float16 keys (qk_f16: an f16 dump's) also as float16, for rows_kernel's window and sinks (raw_issue
        // copies 8 at a time: d % 8 == 0, k16_ok as gpu_decomp_compute sets it; gram_kernel's keys S .. Npad - 1
        // cover the others)
        __half *k16 = g->k16_ok ? g->k16 : NULL;
        if (d <= 64)
            gram_kernel<64><<<(unsigned)g->nseg, GRAM_THREADS, gram_smem<64>(), st>>>(g->G, g->Gseg, k16, g->k, g->amax, g->ktot, nall,
                                                                 N, d, S, g->nch);
        else
            gram_kernel<128><<<(unsigned)g->nseg, GRAM_THREADS, gram_smem<128>(), st>>>(g->G, g->Gseg, k16, g->k, g->amax, g->ktot,
                                                                  nall, N, d, S, g->nch);
        CUDA_CHECK_LAUNCH();
        if (g->nseg <= 8 * GS_PER)
            launch_pdl(true, gram_scan_kernel, blocks_for((int64_t)d * d / 4, 32), dim3(32, 8), 0, st, g->Gseg, g->nseg, (int64_t)d * d);
        else
            scan_cols_kernel<float, 32><<<blocks_for((int64_t)d * d, 32), dim3(32, 32), 0, st>>>(g->Gseg, g->nseg, (int64_t)d * d, 0);
        CUDA_CHECK_LAUNCH();
    }
    {
        const bool f16 = qk_f16 && g->k16_ok;  // the queries and keys are float16 values
        const rows_args ra = {g->q, g->k, g->k16, g->G, g->Gseg, g->PFseg + d, g->ktot, g->mu, g->sigma2,
                              g->log_lambda, nall, 2 * (int64_t)d, N, d, S, T, c};
        if (d <= 64)
            (f16 ? rows_kernel<64, 2, true> : rows_kernel<64, 2, false>)<<<(unsigned)g->nch, 256, rows_smem<64, 2>(), st>>>(ra);
        else if (f16)  // 128 registers (68 B spilled; 199 uncapped) and a ring of 2 slots (~103 KB of shared
                       // memory): two CTAs a SM, each hiding the other's prologue and barriers
            launch_pdl(k_changed, rows_kernel<128, 2, true>, (unsigned)g->nch, 256, rows_smem<128, 2>(), st, ra);
        else  // 244 registers: one CTA per SM (two, capped at 128 registers, spilled ~700 B and measured
              // 1.70 against 1.66 ms for the whole decomposition at 128K in round 2, decomp3_ab.log)
            rows_kernel<128, 1, false><<<(unsigned)g->nch, 256, rows_smem<128, 1>(), st>>>(ra);
        CUDA_CHECK_LAUNCH();
    }
    // ------------------------------------------------------------ v, h (after s2)
    CUDA_CHECK(cudaStreamWaitEvent(st, g->join, 0));
    CUDA_CHECK(cudaStreamWaitEvent(st, g->join3, 0));
    vh_kernel<<<blocks_for(N, 256), 256, 0, st>>>(g->v, g->h, g->nu, g->uk, g->sc, g->ps, g->pv, g->red, g->mu,
                                                  g->log_lambda, g->sigma2, N, S, T);
    CUDA_CHECK_LAUNCH();
}

extern "C" int gpu_decomp_compute(gpu_decomp *g, decomp *D, const float *q, const float *k, int k_changed, int qk_f16,
                                  const double *inv_freq, const int32_t *pos, rope_layout layout, const mask_params *mp,
                                  uint8_t *mask, double *pred_block_sparsity, gpu_decomp_times *tm, skel_err *e) {
    const int64_t N = g->N;
    const int d = g->d, S = g->S, T = g->T, M = g->M, w = 2 * d;
    CHECK(D->N == N && D->d == d && D->prm.S == S && D->prm.T == T && D->prm.M == M);

    CUDA_CHECK(cudaEventRecord(g->ev[0]));
    CUDA_CHECK(cudaMemcpy(g->q, q, sizeof(float) * N * d, cudaMemcpyHostToDevice));
    if (k_changed) {
        CUDA_CHECK(cudaMemcpy(g->k, k, sizeof(float) * N * d, cudaMemcpyHostToDevice));
        // with the samples' per-frequency constants (sample_rows_kernel): sin(w / 2), sin and cos of
        // (T - 1/2) w
        double tab[4 * (MAXD / 2)];
        const int h = d / 2;
        for (int x = 0; x < h; x++) {
            const double w = inv_freq[x];
            tab[x] = w, tab[h + x] = sin(w / 2), tab[2 * h + x] = sin((T - 0.5) * w), tab[3 * h + x] = cos((T - 0.5) * w);
        }
        CUDA_CHECK(cudaMemcpy(g->inv_freq, tab, sizeof(double) * 4 * h, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(g->pos, pos, sizeof(int32_t) * N, cudaMemcpyHostToDevice));
    }
    {
        double rbarN[2 * MAXD];
        decomp_rope_mean(rbarN, inv_freq, d, T, N - T - S);
        CUDA_CHECK(cudaMemcpy(g->rbarN, rbarN, sizeof(double) * d, cudaMemcpyHostToDevice));
    }
    CUDA_CHECK(cudaEventRecord(g->ev[1]));

    {
        // decomp_enqueue's ~40 launches and events as one graph launch (captured on s1 at the first call
        // of each kind: what it enqueues depends only on g and on these flags, k16_ok included for calls
        // that reuse the keys)
        if (k_changed) g->k16_ok = qk_f16 && d % 8 == 0;  // this call's keys go to k16 (gram_kernel)
        const int key = (k_changed != 0) | (qk_f16 != 0) << 1 | (layout == ROPE_HALF) << 2 | (g->k16_ok != 0) << 3;
        cudaGraphExec_t ex = NULL;
        for (int x = 0; x < g->ngraph; x++)
            if (g->graphs[x].key == key) ex = g->graphs[x].exec;
        if (!ex) {
            cudaGraph_t gr;
            CUDA_CHECK(cudaStreamBeginCapture(g->s1, cudaStreamCaptureModeThreadLocal));
            decomp_enqueue(g, k_changed, qk_f16, layout, g->s1);
            CUDA_CHECK(cudaStreamEndCapture(g->s1, &gr));
            CUDA_CHECK(cudaGraphInstantiate(&ex, gr, 0));
            CUDA_CHECK(cudaGraphDestroy(gr));
            g->graphs[g->ngraph].key = key, g->graphs[g->ngraph++].exec = ex;  // 16 keys at most
        }
        CUDA_CHECK(cudaGraphLaunch(ex, 0));
    }
    CUDA_CHECK(cudaEventRecord(g->ev[2]));
    // ------------------------------------------------------------ mask (the block scan; in budget mode
    // it keeps the forced blocks and the radix selection of mask_budget.cu adds the best others)
    if (mask) {
        const int B = mp->B;
        const int64_t nb = (N + B - 1) / B;
        CHECK(nb <= g->nb_cap);
        block_vectors_kernel<<<blocks_for(nb * 32, 256), 256>>>(g->Mb, g->vB, g->hB, g->s, g->v, g->h, N, B, nb);
        CUDA_CHECK_LAUNCH();
        CUDA_CHECK(cudaMemsetAsync(g->below, 0, sizeof(unsigned long long)));
        const int64_t nq = (nb + MQ - 1) / MQ;
        dim3 gr(blocks_for(nq < 1024 ? nq : 1024, 256), (unsigned)(nb < 256 ? nb : 256));
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
        // the held-out rows' predictions s_{I-J} + v_J + h_I + nu_I (heldout_kernel's comment)
        double *bh = (double *)malloc(sizeof(double) * M);
        CHECK(bh);
        CUDA_CHECK(cudaMemcpy(bh, g->b + M, sizeof(double) * M, cudaMemcpyDeviceToHost));
        double sb = 0, sbb = 0, sr = 0;
        for (int t = 0; t < M; t++) {
            const int64_t I = g->hI[M + t], J = g->hJ[M + t];
            bh[t] -= D->mu[I];  // heldout_kernel's z_IJ: the target is z_IJ - mu_I
            const double r = bh[t] - ((double)D->s[I - J] + (double)D->v[J] + (double)D->h[I] + D->nu[I]);
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
