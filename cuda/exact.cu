// exact.cu: GPU twin of src/exact.c, the two streaming passes of SPEC section 2 over z = c Q K^T.
//   inputs: q, k (N, d) float32 rows on the host, converted to float16 on the device (d in {64, 128});
//   pass 1: lse (N) and the range of z over causal pairs (the min as the unsigned max of the
//           products' float bits, exact_min_kernel completing it);
//   pass 2: block mass W and block max X (nb, nb) on the B grid, the count of A < eps/N, the z
//           histogram and moments, a per-row log-domain histogram per row giving the exact sparsity,
//           and the pooled images (element by element when pixel cells are not whole blocks).
// Tiling (both passes): a CTA of 8 warps owns 128 query rows, warp w rows 16 w .. +16 (in pass 2 at
// small N, where the row blocks fill at most half the SMs, a long row block's keys are split over
// several CTAs that add into the same row histograms: pass2_plan); keys stream
// through shared memory in tiles of 64 (cp.async; a ring of 3 tiles in pass 1, 2 in pass 2) and
// every warp multiplies its rows by the whole tile with mma.sync m16n8k16 (f16 in, f32 accumulate),
// so a row lives in one warp and the keys are read from L2 once per 128 rows. Softmax arithmetic in
// f32 and base 2. Two CTAs per SM. A tiny kernel first samples z for the moments' centre; two small
// ones sum q_i . k_j over the causal pairs in double (the moments' first sum, O(N d)).
// Per element, pass 2 spends one SFU op (ex2) and two shared reductions: the z histogram (bin by an
// FMA against a magic constant, no float-to-int conversion, which shares the SFU's quarter rate) and
// the row histogram (bin and mass from the float bits of A N / eps, one packed 32-bit entry).
#include <math.h>
#include <string.h>

#include <type_traits>

#include "gpu_common.cuh"

extern "C" {
#include "gpu.h"
#include "mask.h"
}


namespace {

constexpr int BM = 128;       // query rows per CTA: 8 warps of 16
constexpr int BN = 64;        // keys per shared-memory tile
constexpr int NWARPS = 8;
constexpr int THREADS = 32 * NWARPS;
constexpr int ZB = EXACT_ZHIST_BINS;
constexpr int ZBS = ZB + 2;   // z histogram with a guard entry on each side (rounding at zlo and zhi)
constexpr float LN2 = 0.693147180559945309f;
constexpr float LOG2E = 1.44269504088896341f;
// x + MAGIC (|x| < 2^22) holds round(x) in the low mantissa bits: bits = MAGIC_BITS + round(x).
constexpr float MAGIC = 12582912.0f;  // 1.5 * 2^23
constexpr uint32_t MAGIC_BITS = 0x4B400000u;
// Per-row histogram entries per row at most (pass 2 keeps (BM, rhs) of them in shared memory beside
// the key tiles and the z histogram, two CTAs per SM), and the mantissa bits of an element's mass.
constexpr int RHS_MAX = 140;
constexpr float LAZY_THR = 8.f;  // pass 1: base-2 units a row max may grow before the sums rescale
constexpr int RBITS = 9;

template <int D>
__host__ __device__ constexpr int ldk() { return D + 8; }  // padded shared row (halfs): ldmatrix rows hit distinct banks
// Key tiles in shared memory: a ring of KBUF1 in pass 1, KBUF2 in pass 2. With 3, one barrier a
// tile (the tile loaded at step it overwrites the one read at it - 2, which every warp finished
// before the barrier of it - 1): pass 1 at 128K 8.72 -> 8.26 ms. Pass 2 keeps 2 (15.83 -> 15.70 ms
// with 3, at the cost of 17 KB that the row and z histograms use better), with one barrier a tile
// since round 5 (the copy of the next tile issued after it).
constexpr int KBUF1 = 3;
constexpr int KBUF2 = 2;
template <int D>
__host__ __device__ constexpr size_t ktile_bytes() { return (size_t)BN * ldk<D>() * sizeof(__half); }
template <int D>
__host__ __device__ constexpr int ktile_halfs() { return (int)(ktile_bytes<D>() / sizeof(__half)); }

// Accumulators of one head, in device memory.
struct exact_acc {
    unsigned zmin, zmax;        // z range in base-2 units (z log2 e), ordered encoding
    unsigned long long below;   // causal pairs with A < eps / N
    unsigned long long dropped; // the exact-sparsity count
    unsigned long long sparse_blocks;
    unsigned overflow;          // an input beyond the float16 range
    unsigned umax;              // pass 1: the unsigned max of the causal products' float bits (zmin from it)
    float zc_sum;               // z log2 e summed over the centre's sample (zcentre_kernel)
    float zc;                   // the moments' centre, near zc_sum / ZC_SAMPLES (written by the pass that sums them)
    double mom[4];              // sums of y (filled in by the finish), y^2, y^3, y^4 with y = z log2 e - zc
    double qk_sum;              // sum over causal pairs of q_i . k_j: the first moment from it (not from mom[0])
    unsigned long long zhist[ZB];
};

struct pass_args {
    const __half *q, *k;  // (N, D)
    int64_t N;
    float scale2;         // c log2 e: z log2 e = scale2 (q . k)
    float *lse;           // (N), natural log
    exact_acc *acc;
    // pass 2
    double eps;
    int B, lgB;           // block size and its log2
    int64_t nb;
    float *W, *X;         // (nb, nb)
    int P;
    const int *cellof;    // (N) pixel cell of each row and column
    float *img_sum, *img_max;  // (P, P)
    // pass 2's row histogram (see row_hist_plan)
    float lkap, inv_kap;  // log2 kappa and 1 / kappa, kappa = N / eps
    double eps_kap;       // eps kappa = N
    int hs, rs;           // bin = bits(p') >> hs; an element adds (1 : bits(p')) >> rs
    uint32_t fb4;         // the bin of entry 0
    int rhs;              // entries per row
    int flush_mask;       // key tiles between flushes, less 1
    int zc_copies;        // z histogram copies (8 or 32)
    unsigned long long *rowhist;  // (N, rhs) wide entries: count << 32 | mass sum
    // pass 2's work units (pass2_plan): row block, first key tile, end tile, units of that row block
    const int4 *units;
    unsigned *rb_done;    // (row blocks) units done, where a row block is split
    float *rowtot;        // (N) the rows' mass summed over the units of a split row block
};

// ---------------------------------------------------------------------------- shared pieces

template <int D>
__device__ __forceinline__ void load_k_tile(__half *Ks, const __half *k, int64_t N, int64_t c0) {
    constexpr int CH = D / 8;  // 16-byte chunks per key
    // A fixed trip count (the loop from threadIdx.x compiled as a generic loop with its remainder:
    // ~110 instructions a tile per thread in pass 2's SASS, against ~30 like this).
    static_assert(BN * CH % THREADS == 0, "whole passes of the CTA over a key tile");
    constexpr int ROWS = THREADS / CH;  // keys a pass of the CTA covers
    const int r0 = threadIdx.x / CH, cc = threadIdx.x % CH;
    __half *dst = Ks + r0 * ldk<D>() + cc * 8;
    if (c0 + BN <= N) {  // a whole tile: constant offsets from one address
        const __half *src = k + (c0 + r0) * D + cc * 8;
#pragma unroll
        for (int x = 0; x < BN * CH / THREADS; x++) cp_async16(dst + x * ROWS * ldk<D>(), src + x * ROWS * D, true);
    } else {  // the last tile: keys from N on are zero-filled
#pragma unroll
        for (int x = 0; x < BN * CH / THREADS; x++) {
            const int64_t j = c0 + r0 + x * ROWS;
            const bool ok = j < N;
            cp_async16(dst + x * ROWS * ldk<D>(), k + (ok ? j : 0) * D + cc * 8, ok);
        }
    }
    cp_async_commit();
}

// S (16 x 64) = Q_warp K_tile^T: acc[n] holds rows g, g+8 and columns 8n + 2t, +1 (g = lane / 4,
// t = lane % 4) as {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}.
template <int D>
__device__ __forceinline__ void qk_tile(float acc[8][4], const uint32_t qf[D / 16][4], const __half *Kw) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int n = 0; n < 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 32; kk++) {
#pragma unroll
        for (int n = 0; n < 8; n++) {
            uint32_t b[4];
            ldmatrix_x4(b, Kw + (n * 8 + (lane & 7)) * ldk<D>() + kk * 32 + (lane >> 3) * 8);
            mma_f16_16816(acc[n], qf[2 * kk], b[0], b[1]);
            mma_f16_16816(acc[n], qf[2 * kk + 1], b[2], b[3]);
        }
    }
}



// Shared-memory reductions at a 32-bit shared address (no return value: RED, not ATOM).
__device__ __forceinline__ void red_shared_u32(uint32_t addr, uint32_t v) {
    asm volatile("red.shared.add.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
// ---------------------------------------------------------------------------- the moments' centre

// The mean of z (base-2 units) over a fixed sample of causal pairs: row i drawn with density ~ i + 1
// and a column below it by a hash, so the pairs are about uniform. Any value near the mean keeps the
// moments' float sums accurate (y = z - zc small); the finish shifts them exactly. A warp a pair at a
// time, the lanes over the dimensions; the sum by float atomics (any order gives a usable centre,
// and pass 2 and the finish read the same one).
constexpr int ZC_SAMPLES = 4096;  // a power of two: zc = zc_sum / ZC_SAMPLES exactly as on the device
constexpr int ZC_BLOCKS = 64;
__global__ void zcentre_kernel(const __half *q, const __half *k, int64_t N, int d, float scale2, exact_acc *acc) {
    const int lane = threadIdx.x & 31, gw = (blockIdx.x * THREADS + threadIdx.x) >> 5;
    float s = 0.f;
    for (int x = gw; x < ZC_SAMPLES; x += ZC_BLOCKS * NWARPS) {
        int64_t i = (int64_t)((double)N * sqrt((x + 0.5) / ZC_SAMPLES));
        i = i < N ? i : N - 1;
        uint64_t h = (uint64_t)(x + 1) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 31;
        const int64_t j = (int64_t)(h % (uint64_t)(i + 1));
        const __half2 *qi = (const __half2 *)(q + i * d), *kj = (const __half2 *)(k + j * d);
        float dot = 0.f;
        for (int c = lane; c < d / 2; c += 32) {
            const float2 a = __half22float2(qi[c]), b = __half22float2(kj[c]);
            dot = fmaf(a.x, b.x, fmaf(a.y, b.y, dot));
        }
        s += warp_sum(dot) * scale2;
    }
    if (lane == 0) atomicAdd(&acc->zc_sum, s);
}

// ---------------------------------------------------------------------------- sum of q_i . k_j
// Over causal pairs, in double, O(N d): the moments' first sum is c log2 e times it less the pairs
// times the centre, so pass 2 need not add y element by element. Chunks of QK_ROWS rows: T_c the
// pairs inside chunk c, Q_c and K_c its q and k sums; the total is sum_c T_c + Q_c . (K_0 + .. +
// K_{c-1}). qk_chunk_kernel: a CTA a chunk, a thread a dimension (T_c into acc->qk_sum; Q_c and
// K_c to qks, (2, d, nch)); qk_scan_kernel: a CTA a dimension, the exclusive scan of K over chunks.
constexpr int QK_ROWS = 128;  // 32 measured the same
__global__ void __launch_bounds__(128) qk_chunk_kernel(const __half *q, const __half *k, int64_t N, int d,
                                                       double *qks, exact_acc *acc) {
    const int64_t i0 = (int64_t)blockIdx.x * QK_ROWS, i1 = i0 + QK_ROWS < N ? i0 + QK_ROWS : N;
    const int nch = gridDim.x;
    double t = 0;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        double run = 0, qs = 0;
#pragma unroll 8
        for (int64_t i = i0; i < i1; i++) {
            const double kv = __half2float(k[i * d + c]), qv = __half2float(q[i * d + c]);
            run += kv;
            t = fma(qv, run, t);
            qs += qv;
        }
        qks[(int64_t)c * nch + blockIdx.x] = qs;
        qks[((int64_t)d + c) * nch + blockIdx.x] = run;
    }
    __shared__ double red[4];
    t = warp_sum(t);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = t;
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd(&acc->qk_sum, red[0] + red[1] + red[2] + red[3]);
}
__global__ void __launch_bounds__(256) qk_scan_kernel(const double *qks, int d, int nch, exact_acc *acc) {
    const double *qs = qks + (int64_t)blockIdx.x * nch, *ks = qks + ((int64_t)d + blockIdx.x) * nch;
    const int per = (nch + 255) / 256, b0 = threadIdx.x * per, b1 = b0 + per < nch ? b0 + per : nch;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double tot = 0;
    for (int b = b0; b < b1; b++) tot += ks[b];
    // exclusive scan of the threads' totals: in the warp, then over the warps
    double inc = tot;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const double v = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += v;
    }
    __shared__ double wt[8], red[8];
    if (lane == 31) wt[warp] = inc;
    __syncthreads();
    double pref = inc - tot;
    for (int w = 0; w < warp; w++) pref += wt[w];
    double s = 0;
    for (int b = b0; b < b1; b++) s = fma(qs[b], pref, s), pref += ks[b];
    s = warp_sum(s);
    if (lane == 0) red[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double x = 0;
        for (int w = 0; w < 8; w++) x += red[w];
        atomicAdd(&acc->qk_sum, x);
    }
}

// ---------------------------------------------------------------------------- pass 1: lse

// Each thread keeps its own running (max, sum) for its two rows over its own columns; the 4 partial
// sums of a row (its 4 lanes) are merged at the end.
template <int D>
__global__ void __launch_bounds__(THREADS, 2) exact_pass1_kernel(pass_args a) {
    extern __shared__ uint4 smem_u4[];
    __half *Ks = (__half *)smem_u4;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int64_t N = a.N, r0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * BM;  // longest rows first
    const int64_t rw = r0 + warp * 16, rowA = rw + g, rowB = rowA + 8;
    uint32_t qf[D / 16][4];
    load_q_frags<D>(qf, a.q, N, rowA);
    const int64_t cols = r0 + BM < N ? r0 + BM : N;
    const int nt = (int)((cols + BN - 1) / BN);
    const int64_t rlast = rw + 15 < N - 1 ? rw + 15 : N - 1;
    const float scale2 = a.scale2;
    float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f, tmx = -INFINITY;
    uint32_t tum = 0u;
    // The softmax work on a tile (masked where it crosses the diagonal or the end). Short dependency
    // chains: two partial maxima of the bits for the min, a tree of maxima, two partial sums a row
    // (pass 1 at 128K 8.26 -> 8.20 ms alone, more beside wgmma; kept for the latency-bound pass).
    auto part = [&](float(&acc)[8][4], int64_t cw) {
        // max and min on the raw products (scale2 > 0); masked elements become -inf in a copy
        float v[8][4];
#pragma unroll
        for (int n = 0; n < 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) v[n][e] = acc[n][e];
        // The min as the unsigned max of the float bits: a negative float's bits exceed every
        // non-negative one's and grow with its magnitude, so where any product is negative the
        // maximum is the most negative product. ptxas takes two elements an instruction (a
        // 3-input integer max). Where none is (tum's sign bit clear over the whole head),
        // exact_min_kernel finds the min after this pass.
        uint32_t um[2] = {0u, 0u};
        if (cw + BN - 1 > rw || rw + 15 >= N) {
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int64_t row = e < 2 ? rowA : rowB, col = cw + n * 8 + 2 * t + (e & 1);
                    if (!(col <= row && row < N)) v[n][e] = -INFINITY;
                    else {
                        um[e & 1] = max(um[e & 1], __float_as_uint(v[n][e]));
                    }
                }
        } else {
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    um[e & 1] = max(um[e & 1], __float_as_uint(v[n][e]));
                }
        }
        tum = max(tum, max(um[0], um[1]));
        // the rows' maxima over the tile (a tree)
        auto tile_max = [&](float &tA, float &tB) {
            float xa[8], xb[8];
#pragma unroll
            for (int n = 0; n < 8; n++) xa[n] = fmaxf(v[n][0], v[n][1]), xb[n] = fmaxf(v[n][2], v[n][3]);
#pragma unroll
            for (int w = 4; w; w >>= 1)
#pragma unroll
                for (int n = 0; n < w; n++) xa[n] = fmaxf(xa[n], xa[n + w]), xb[n] = fmaxf(xb[n], xb[n + w]);
            tA = xa[0] * scale2, tB = xb[0] * scale2;
        };
        float tA, tB;
        tile_max(tA, tB);
        tmx = fmaxf(tmx, fmaxf(tA, tB));  // the rows' max m may lag behind it (lazy rescaling)
        // the tile's exponentials against offsets -m (a thread with no valid element in a row yet
        // has m = -inf: subtract 0 instead; its masked elements are -inf, and -inf - -inf is NaN)
        auto sums = [&](float &lsA, float &lsB) {
            const float oA = mA == -INFINITY ? 0.f : -mA, oB = mB == -INFINITY ? 0.f : -mB;
            float sA[2] = {0.f, 0.f}, sB[2] = {0.f, 0.f};
#pragma unroll
            for (int n = 0; n < 8; n++) {
                sA[n & 1] += fast_exp2(fmaf(v[n][0], scale2, oA)) + fast_exp2(fmaf(v[n][1], scale2, oA));
                sB[n & 1] += fast_exp2(fmaf(v[n][2], scale2, oB)) + fast_exp2(fmaf(v[n][3], scale2, oB));
            }
            lsA = sA[0] + sA[1], lsB = sB[0] + sB[1];
        };
        auto rescale = [&](float tA, float tB) {
            if (tA > mA) lA *= fast_exp2(mA - tA), mA = tA;
            if (tB > mB) lB *= fast_exp2(mB - tB), mB = tB;
        };
        float lsA, lsB;
        // Lazy rescaling: the exponentials go against the running max as it was before the tile, so
        // they need not wait for the tile's max tree; a term is then at most 2^LAZY_THR. Where a row
        // max grew by more than that (its first tile, rarely after), the warp redoes the tile as round 4.
        sums(lsA, lsB);
        if (__any_sync(0xffffffffu, tA > mA + LAZY_THR || tB > mB + LAZY_THR)) {
            rescale(tA, tB);
            sums(lsA, lsB);
        }
        lA += lsA, lB += lsB;
    };
    load_k_tile<D>(Ks, a.k, N, 0);
    for (int it = 0, cur = 0; it < nt; it++) {
        const int nxt = cur + 1 == KBUF1 ? 0 : cur + 1;
        if (it + 1 < nt) {
            load_k_tile<D>(Ks + nxt * ktile_halfs<D>(), a.k, N, (int64_t)(it + 1) * BN);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const int64_t cw = (int64_t)it * BN;
        if (cw <= rlast) {
            float acc[8][4];
            qk_tile<D>(acc, qf, Ks + cur * ktile_halfs<D>());
            part(acc, cw);
        }
        if (KBUF1 == 2) __syncthreads();
        cur = nxt;
    }
    // merge the 4 lanes of a row
#pragma unroll
    for (int o = 1; o <= 2; o <<= 1) {
        float mo = __shfl_xor_sync(0xffffffffu, mA, o), lo = __shfl_xor_sync(0xffffffffu, lA, o);
        float mx = fmaxf(mA, mo);
        lA = mx == -INFINITY ? 0.f : lA * fast_exp2(mA - mx) + lo * fast_exp2(mo - mx), mA = mx;
        mo = __shfl_xor_sync(0xffffffffu, mB, o), lo = __shfl_xor_sync(0xffffffffu, lB, o);
        mx = fmaxf(mB, mo);
        lB = mx == -INFINITY ? 0.f : lB * fast_exp2(mB - mx) + lo * fast_exp2(mo - mx), mB = mx;
    }
    if (t == 0) {
        if (rowA < N) a.lse[rowA] = (mA + log2f(lA)) * LN2;
        if (rowB < N) a.lse[rowB] = (mB + log2f(lB)) * LN2;
    }
    const uint32_t umx = __reduce_max_sync(0xffffffffu, tum);
    const float zmx = warp_max(tmx);
    if (lane == 0 && rw < N) {
        atomicMax(&a.acc->umax, umx);
        atomicMax(&a.acc->zmax, float_to_ordered(zmx));
    }
}

// After pass 1: zmin. Where any causal product is negative, the unsigned max of the products' float
// bits (pass 1's umax) is the most negative one: a thread writes zmin and every CTA returns. Else
// every product is >= 0 and this kernel finds their min as pass 1's tiles without the softmax, its
// CTAs striding over the row blocks (a slower path, for a head with no negative q . k at all).
constexpr unsigned MIN_GRID = 256;
template <int D>
__global__ void __launch_bounds__(THREADS, 2) exact_min_kernel(pass_args a) {
    const uint32_t U = a.acc->umax;
    if (U & 0x80000000u) {
        if (blockIdx.x == 0 && threadIdx.x == 0) a.acc->zmin = float_to_ordered(__uint_as_float(U) * a.scale2);
        return;
    }
    extern __shared__ uint4 smem_u4[];
    __half *Ks = (__half *)smem_u4;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int64_t N = a.N, nblk = (N + BM - 1) / BM;
    float mn = INFINITY;
    for (int64_t blk = blockIdx.x; blk < nblk; blk += gridDim.x) {
        const int64_t r0 = blk * BM, rw = r0 + warp * 16, rowA = rw + g, rowB = rowA + 8;
        uint32_t qf[D / 16][4];
        load_q_frags<D>(qf, a.q, N, rowA);
        const int64_t cols = r0 + BM < N ? r0 + BM : N;
        const int nt = (int)((cols + BN - 1) / BN);
        const int64_t rlast = rw + 15 < N - 1 ? rw + 15 : N - 1;
        for (int it = 0; it < nt; it++) {
            load_k_tile<D>(Ks, a.k, N, (int64_t)it * BN);
            cp_async_wait<0>();
            __syncthreads();
            const int64_t cw = (int64_t)it * BN;
            if (cw <= rlast) {
                float acc[8][4];
                qk_tile<D>(acc, qf, Ks);
#pragma unroll
                for (int n = 0; n < 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int64_t row = e < 2 ? rowA : rowB, col = cw + n * 8 + 2 * t + (e & 1);
                        if (col <= row && row < N) mn = fminf(mn, acc[n][e]);
                    }
            }
            __syncthreads();
        }
    }
    mn = warp_min(mn);
    if (lane == 0 && mn < INFINITY) atomicMin(&a.acc->zmin, float_to_ordered(mn * a.scale2));
}

// ---------------------------------------------------------------------------- pass 2

// The per-row histogram behind the exact sparsity is over p' = A kappa, kappa = N / eps, so that
// p' = 1 is the threshold eps / N. Its bins come from the float bits of p': bin = bits(p') >> hs,
// the exponent and the top k = 23 - hs mantissa bits (2^k bins an octave; k = 2: 0.19 to 0.32 wide
// in log2, where the previous 64 bins over [eps / (i+1), 1] were 0.27 to 0.32 at 128K). Inside a bin
// p' is linear in the mantissa bits below it, so one 32-bit entry holds a count and a mass, added
// by one shared reduction: an element adds (1 : bits(p')) >> rs (a funnel shift, rs = hs - RBITS)
// = 2^P + (bin << RBITS) + r, with P = 32 - rs and r the next RBITS mantissa bits. n adds sum to
// n K + sum r with K = 2^P + (bin << RBITS); sum r < n 2^RBITS <= 2^P < K while n <= 2^(9+k), i.e.
// for 2^(k+3) key tiles of 64, so the entries go every 2^(k+3) tiles into wide per-row ones in
// device memory (count << 32 | sum r; a CTA owns its rows) and are zeroed. A bin's mass is
// n lo + (sum r + n / 2) unit, lo its lower edge and unit the step of r: truncation, unbiased by
// the n / 2, at most 2^-(10+k) of an element (k = 2: 2.4e-4). Entries 0..3 hold p' < 1, A < eps / N
// (each lane clamps such elements to its own entry t, so they never meet on a bank): always
// dropped, at most i+1 of them each < eps / N, so they need a count only, derived at the end from
// the row length, as their mass from the row total. The boundary bin is resolved as the CPU does.
struct row_hist_entry {
    uint32_t K;
    double invK, lo, unit;
};
// The shape of the row histogram: pass_args' fields, by value (a reference to the kernel parameter
// would copy it to the stack).
struct row_hist_shape {
    uint32_t fb4;
    int hs, rs, rhs;
};
__device__ __forceinline__ row_hist_entry row_hist_bin(row_hist_shape sh, int idx) {
    const uint32_t bin = sh.fb4 + (uint32_t)idx, lob = bin << sh.hs;
    row_hist_entry e;
    e.K = (1u << (32 - sh.rs)) + (bin << RBITS);
    e.invK = 1.0 / e.K;
    e.lo = __uint_as_float(lob);
    e.unit = (double)__uint_as_float(lob & 0x7f800000u) * (double)(1u << sh.rs) * 0x1p-23;
    return e;
}
// The count and mass sum of a packed entry (one that has taken at most 2^(9+k) elements), as count << 32 | sum r.
__device__ __forceinline__ unsigned long long row_hist_unpack(uint32_t v, const row_hist_entry &e) {
    const uint32_t n = (uint32_t)((double)v * e.invK + 1e-9);  // floor(v / K): v / K is within 5e-13, frac <= 1 - 1/K
    return ((unsigned long long)n << 32) | (v - n * e.K);
}

// Every CTA's entries into the wide ones (stored by the first flush, added after), then zeroed.
__device__ __noinline__ void row_hist_flush(unsigned *H, row_hist_shape sh, unsigned long long *rowhist, int nrows,
                                            bool first) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, rhs = sh.rhs;
    for (int idx = lane; idx < rhs; idx += 32) {
        const row_hist_entry e = row_hist_bin(sh, idx);
        for (int r = warp; r < BM; r += NWARPS) {
            const uint32_t v = H[r * rhs + idx];
            H[r * rhs + idx] = 0u;
            if (idx < 4 || r >= nrows) continue;
            unsigned long long *w = rowhist + r * rhs + idx;
            const unsigned long long x = row_hist_unpack(v, e);
            // a store, then reductions: neither waits for memory (a load-add-store waited for each
            // entry's load: pass 2 at 128K 14.27 -> 13.66 ms); the row walk at the end reads them
            // after a barrier
            if (first) *w = x;
            else if (x) atomicAdd(w, x);
        }
    }
}

template <int D, bool IMG, bool SPLITK>
__global__ void __launch_bounds__(THREADS, 2) exact_pass2_kernel(pass_args a) {
    extern __shared__ uint4 smem_u4[];
    __half *Ks = (__half *)smem_u4;
    unsigned *H = (unsigned *)(Ks + KBUF2 * ktile_halfs<D>());  // (BM, rhs) row-histogram entries
    unsigned *zh = H + BM * a.rhs;                         // (ZBS, zc_copies)
    __shared__ float rowtot[BM];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    // SPLITK: this CTA's unit, rows r0 .. r0 + BM - 1 against key tiles t0 .. nt - 1 (a row block
    // split over several units where it would outlast the others: pass2_plan); else a row block
    // against all its tiles, the longest rows first
    const int4 unit = SPLITK ? a.units[blockIdx.x] : make_int4(0, 0, 0, 1);
    const bool split = SPLITK && unit.w > 1;
    const int64_t N = a.N, r0 = SPLITK ? (int64_t)unit.x * BM : (int64_t)(gridDim.x - 1 - blockIdx.x) * BM;
    const int64_t rw = r0 + warp * 16, rowA = rw + g, rowB = rowA + 8;
    const int rhs = a.rhs, hs = a.hs, rs = a.rs, zcp = a.zc_copies;
    const row_hist_shape sh = {a.fb4, hs, rs, rhs};
    for (int x = threadIdx.x; x < BM * rhs; x += THREADS) H[x] = 0u;
    for (int x = threadIdx.x; x < ZBS * zcp; x += THREADS) zh[x] = 0u;

    // head-wide constants from pass 1
    const float zlo = ordered_to_float(a.acc->zmin);
    float zhi = ordered_to_float(a.acc->zmax);
    if (zhi <= zlo) zhi = zlo + LOG2E;  // a constant head: one non-empty bin (the CPU's zmin + 1)
    const float zbinv = (float)(ZB / ((double)zhi - zlo) * (1 - 1e-6));
    const float zlo2 = zlo + 0.5f / zbinv;  // (z - zlo2) zbinv rounds to floor((z - zlo) zbinv)
    // z histogram entry of z: bits(fmaf(z - zlo2, zbinv, MAGIC + 1)) - MAGIC_BITS = bin + 1, in this
    // lane's copy (entry (bin + 1, lane % copies); the address arithmetic wraps modulo 2^32). With 32
    // copies every lane has its own bank.
    const uint32_t zstride = 4u * (uint32_t)zcp;
    const uint32_t zbase = smem_addr(zh) + 4u * (uint32_t)(lane & (zcp - 1)) - MAGIC_BITS * zstride;
    const uint32_t one = a.N > 0;  // the increment in a register (see NOTES.md: ATOMS.POPC.INC)
    const float scale2 = a.scale2;
    // the moments' centre: the sampled mean moved onto the z histogram's grid, (zc - zlo2) zbinv =
    // mz an integer, so that the bin entry of z is bits(fmaf(y, zbinv, MAGIC + 1 + mz)) with
    // y = z - zc, one FMA from the y the moments need (pass 2 at 128K 16.00 -> 15.80 ms)
    const float mz = rintf((a.acc->zc_sum * (1.f / ZC_SAMPLES) - zlo2) * zbinv);
    const float zc = zlo2 + mz / zbinv, zmagic = MAGIC + 1.f + mz;
    if (blockIdx.x == 0 && threadIdx.x == 0) a.acc->zc = zc;

    uint32_t qf[D / 16][4];
    load_q_frags<D>(qf, a.q, N, rowA);
    // log2 p' = z log2 e - (lse log2 e - log2 kappa)
    const float lA = rowA < N ? a.lse[rowA] * LOG2E - a.lkap : 0.f;
    const float lB = rowB < N ? a.lse[rowB] * LOG2E - a.lkap : 0.f;
    const float inv_kap = a.inv_kap;
    const uint32_t floor_t = (a.fb4 + (uint32_t)t) << hs;  // bits(p') of this lane's underflow entry
    // row entry of bits b: base + 4 (b >> hs); rows at a stride of rhs = 4 mod 8 words, so that the
    // lanes (g, t) at their underflow entries fill the 32 banks
    const uint32_t hbA = smem_addr(H + (rowA - r0) * rhs) - 4u * a.fb4;
    const uint32_t hbB = smem_addr(H + (rowB - r0) * rhs) - 4u * a.fb4;
    int pA = 0, pB = 0;
    if (IMG) pA = rowA < N ? a.cellof[rowA] : 0, pB = rowB < N ? a.cellof[rowB] : 0;
    float sA = 0.f, sB = 0.f;  // the rows' mass (in units of p') over this thread's columns
    double m2 = 0, m3 = 0, m4 = 0;
    const int gmask = (a.B >= 64 ? 8 : a.B / 8) - 1;  // n-tiles (8 keys each) per block column in a tile, less 1
    const int64_t I = rw >> a.lgB;

    const int t0 = SPLITK ? unit.y : 0;
    const int64_t cols = r0 + BM < N ? r0 + BM : N;
    const int nt = SPLITK ? unit.z : (int)((cols + BN - 1) / BN);
    const int64_t rlast = rw + 15 < N - 1 ? rw + 15 : N - 1;
    // The element loop over a tile, with the causal/row-range test compiled only into tiles that
    // need it. The block sums and max (bsA, bsB, bx) run to the end of a block column, at the
    // latest the end of the tile.
    float bsA = 0.f, bsB = 0.f;
    // The block max on the bits of p' (p' >= 0 orders as an integer: ptxas fuses two elements into
    // a 3-input integer max; redux.sync at the block end), 0 for none. Was fmaxf on log2 p', one
    // FMNMX an element and 5 shuffles a block: pass 2 at 128K 14.73 -> 14.60 ms alone.
    uint32_t bx = 0u;
    // the moments' sums of y^2 .. y^4; the sum of y comes from qk_sum (one FADD an element less:
    // pass 2 at 128K 14.73 -> 14.25 ms, the two small kernels +0.09 ms on pass 1)
    float s2 = 0.f, s3 = 0.f, s4 = 0.f;
    auto body = [&](auto masked_tag, float(&acc)[8][4], int64_t cw) {
        constexpr bool MASKED = decltype(masked_tag)::value;
        int curA = -1, curB = -1;  // image runs: the pixel column being accumulated
        float isA = 0.f, ixA = 0.f, isB = 0.f, ixB = 0.f;
#pragma unroll
        for (int n = 0; n < 8; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const bool rb = e >= 2;
                const int64_t row = rb ? rowB : rowA, col = cw + n * 8 + 2 * t + (e & 1);
                if (MASKED && !(col <= row && row < N)) continue;
                const float x = acc[n][e];
                const float u = fmaf(x, scale2, -(rb ? lB : lA));  // log2 p'
                const float p = fast_exp2(u);
                if (rb) bsB += p;
                else bsA += p;
                bx = max(bx, __float_as_uint(p));
                const float y = fmaf(x, scale2, -zc), y2 = y * y;
                s2 += y2, s3 = fmaf(y2, y, s3), s4 = fmaf(y2, y2, s4);
                red_shared_u32(zbase + __float_as_uint(fmaf(y, zbinv, zmagic)) * zstride, one);
                const uint32_t b = max(__float_as_uint(p), floor_t);
                red_shared_u32((rb ? hbB : hbA) + ((b >> hs) << 2), __funnelshift_r(b, 1u, rs));
                if (IMG) {
                    const int pc = a.cellof[col];
                    int &cur = rb ? curB : curA;
                    float &is = rb ? isB : isA, &ix = rb ? ixB : ixA;
                    if (pc != cur) {
                        if (cur >= 0) {
                            const int64_t o = (int64_t)(rb ? pB : pA) * a.P + cur;
                            atomicAdd(&a.img_sum[o], is * inv_kap);
                            atomicMax((unsigned *)&a.img_max[o], __float_as_uint(ix * inv_kap));
                        }
                        cur = pc, is = 0.f, ix = 0.f;
                    }
                    is += p, ix = fmaxf(ix, p);
                }
            }
            if (((n + 1) & gmask) == 0) {  // end of a block column: the warp's 16 rows are one block row
                const int64_t J = (cw + (n - gmask) * 8) >> a.lgB;
                const float ws = warp_sum(bsA + bsB);
                const float xm = __uint_as_float(__reduce_max_sync(0xffffffffu, bx));
                if (lane == 0 && J <= I && ws > 0.f) {
                    atomicAdd(&a.W[I * a.nb + J], ws * inv_kap);
                    atomicMax((unsigned *)&a.X[I * a.nb + J], __float_as_uint(xm * inv_kap));
                }
                sA += bsA, sB += bsB;
                bsA = bsB = 0.f, bx = 0u;
            }
        }
        if (IMG) {
            if (curA >= 0) {
                const int64_t o = (int64_t)pA * a.P + curA;
                atomicAdd(&a.img_sum[o], isA * inv_kap);
                atomicMax((unsigned *)&a.img_max[o], __float_as_uint(ixA * inv_kap));
            }
            if (curB >= 0) {
                const int64_t o = (int64_t)pB * a.P + curB;
                atomicAdd(&a.img_sum[o], isB * inv_kap);
                atomicMax((unsigned *)&a.img_max[o], __float_as_uint(ixB * inv_kap));
            }
        }
    };
    auto tile = [&](float(&acc)[8][4], int64_t cw) {
        if (cw + BN - 1 > rw || rw + 15 >= N) body(std::true_type{}, acc, cw);
        else body(std::false_type{}, acc, cw);
    };
    // the moments' float sums into the double totals, at each flush (float sums of at most 32 tiles
    // of 32 terms; the doubles stay spilled in between: a fold every tile cost 4 LDL + 4 STL a tile)
    auto fold = [&]() {
        m2 += s2, m3 += s3, m4 += s4;
        s2 = s3 = s4 = 0.f;
    };
    int nflush = 0;
    // flushes after every flush_mask + 1 tiles of the row (units start at multiples of that)
    auto flush_due = [&](int done) { return (done & a.flush_mask) == 0 && done < nt; };  // after tile done - 1
    const int nrows = N - r0 < BM ? (int)(N - r0) : BM;
    // the first flush stores (a unit alone on its rows); a split row block's units only add, into
    // entries zeroed before the pass
    auto flush = [&]() { row_hist_flush(H, sh, a.rowhist + r0 * rhs, nrows, nflush++ == 0 && !split); };
    load_k_tile<D>(Ks, a.k, N, (int64_t)t0 * BN);
    // One barrier a tile with two buffers: the barrier at the top of step it says that tile it has
    // landed (each thread waited for its own copies) and that every warp has left tile it - 1, whose
    // buffer the copy of tile it + 1, issued after it, overwrites. It also orders H and zh's clearing
    // and a flush's zeroing before the adds that follow.
    for (int it = t0, cur = 0; it < nt; it++) {
        const int nxt = cur ^ 1;
        cp_async_wait<0>();
        __syncthreads();
        if (it + 1 < nt) load_k_tile<D>(Ks + nxt * ktile_halfs<D>(), a.k, N, (int64_t)(it + 1) * BN);
        const int64_t cw = (int64_t)it * BN;
        if (cw <= rlast) {
            float acc[8][4];
            qk_tile<D>(acc, qf, Ks + cur * ktile_halfs<D>());
            tile(acc, cw);
        }
        if (flush_due(it + 1)) {
            __syncthreads();  // every warp's adds in before the flush reads H
            flush();
            fold();
        }
        cur = nxt;
    }
    static_assert(KBUF2 == 2, "pass 2's loop alternates two key buffers");
    fold();
    // the rows' total mass (4 lanes each), then one thread per row walks its histogram
    sA += __shfl_xor_sync(0xffffffffu, sA, 1), sA += __shfl_xor_sync(0xffffffffu, sA, 2);
    sB += __shfl_xor_sync(0xffffffffu, sB, 1), sB += __shfl_xor_sync(0xffffffffu, sB, 2);
    if (t == 0) rowtot[warp * 16 + g] = sA, rowtot[warp * 16 + g + 8] = sB;
    __syncthreads();
    bool walk = true;
    if (split) {
        // everything into device memory (entries and row totals); the unit that finishes its row
        // block last walks the rows from there
        flush();
        if (threadIdx.x < nrows) atomicAdd(&a.rowtot[r0 + threadIdx.x], rowtot[threadIdx.x]);
        __threadfence();
        __syncthreads();
        walk = __syncthreads_or(threadIdx.x == 0 && atomicAdd(&a.rb_done[unit.x], 1u) == (unsigned)(unit.w - 1));
        if (walk) {
            __threadfence();
            if (threadIdx.x < nrows) rowtot[threadIdx.x] = __ldcg(&a.rowtot[r0 + threadIdx.x]);
        }
    }
    unsigned long long dropped = 0, below = 0;
    if (walk && threadIdx.x < BM && r0 + threadIdx.x < N) {
        const unsigned *h = H + threadIdx.x * rhs;
        const unsigned long long *w = a.rowhist + (r0 + threadIdx.x) * rhs;
        const double eps = a.eps_kap;
        // an entry: what is left in shared memory plus what the flushes put in the wide one
        auto entry = [&](int idx, unsigned long long *n, double *m) {
            const row_hist_entry e = row_hist_bin(sh, idx);
            unsigned long long x = row_hist_unpack(h[idx], e);
            if (nflush) x += SPLITK ? __ldcg(w + idx) : w[idx];  // (split: other units' reductions, from L2)
            *n = x >> 32;
            *m = (double)*n * e.lo + ((double)(x & 0xffffffffu) + 0.5 * (double)*n) * e.unit;
        };
        unsigned long long hc = 0;
        double hm = 0;
        for (int idx = 4; idx < rhs; idx++) {
            unsigned long long n;
            double m;
            entry(idx, &n, &m);
            hc += n, hm += m;
        }
        // the underflow (always dropped whole): what the histogram did not take of the row
        below = (unsigned long long)(r0 + threadIdx.x + 1) - hc;
        const double um = rowtot[threadIdx.x] - hm;
        double cm = um > 0 ? um : 0;
        dropped = below;
        for (int idx = 4; idx < rhs; idx++) {
            unsigned long long c;
            double m;
            entry(idx, &c, &m);
            if (!c) continue;
            if (cm + m < eps) {
                cm += m, dropped += c;
                continue;
            }
            // the boundary bin: its elements taken as equal, count those that still fit (as the CPU)
            const double avg = m / (double)c;
            double fit = avg > 0 ? ceil((eps - cm) / avg) - 1 : (double)c;
            fit = fit < 0 ? 0 : (fit > (double)c ? (double)c : fit);
            dropped += (unsigned long long)fit;
            break;
        }
    }
    // z histogram: the copies add up, the guard entries fold into the end bins
    for (int x = threadIdx.x; x < ZB; x += THREADS) {
        unsigned c = 0;
        for (int j = 0; j < zcp; j++)
            c += zh[(x + 1) * zcp + j] + (x == 0 ? zh[j] : 0u) + (x == ZB - 1 ? zh[(ZB + 1) * zcp + j] : 0u);
        if (c) atomicAdd(&a.acc->zhist[x], (unsigned long long)c);
    }
    // per-warp totals
#pragma unroll
    for (int o = 16; o; o >>= 1) {
        below += __shfl_xor_sync(0xffffffffu, below, o);
        dropped += __shfl_xor_sync(0xffffffffu, dropped, o);
    }
    m2 = warp_sum(m2), m3 = warp_sum(m3), m4 = warp_sum(m4);
    if (lane == 0) {
        if (below) atomicAdd(&a.acc->below, below);
        if (dropped) atomicAdd(&a.acc->dropped, dropped);
        atomicAdd(&a.acc->mom[1], m2);
        atomicAdd(&a.acc->mom[2], m3), atomicAdd(&a.acc->mom[3], m4);
    }
}

// ---------------------------------------------------------------------------- small kernels

__global__ void init_acc_kernel(exact_acc *acc) {
    memset(acc, 0, sizeof *acc);
    acc->zmin = 0xffffffffu;
    acc->zmax = 0u;
}

// Causal blocks whose max is below eps / N.
__global__ void block_sparsity_kernel(const float *X, int64_t nb, float thr, unsigned long long *count) {
    unsigned long long c = 0;
    for (int64_t I = blockIdx.y; I < nb; I += gridDim.y)
        for (int64_t J = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; J <= I; J += (int64_t)gridDim.x * blockDim.x)
            c += X[I * nb + J] < thr;
    c = warp_sum(c);
    if ((threadIdx.x & 31) == 0 && c) atomicAdd(count, c);
}

// Pooled images when every pixel cell is a square of whole blocks (cb blocks a side).
__global__ void image_from_blocks_kernel(const float *W, const float *X, int64_t nb, int P, int cb, float *isum,
                                         float *imax) {
    const int64_t x = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (x >= (int64_t)P * P) return;
    const int pa = (int)(x / P), pb = (int)(x % P);
    if (pb > pa) return;
    double s = 0;
    float m = 0.f;
    for (int64_t I = (int64_t)pa * cb; I < (int64_t)(pa + 1) * cb; I++)
        for (int64_t J = (int64_t)pb * cb; J < (int64_t)(pb + 1) * cb && J <= I; J++)
            s += W[I * nb + J], m = fmaxf(m, X[I * nb + J]);
    isum[x] = (float)s;
    imax[x] = m;
}

// Pass 1's shared memory: the key tiles.
size_t pass1_smem(int d) {
    const size_t kt = d == 64 ? ktile_bytes<64>() : ktile_bytes<128>();
    return KBUF1 * kt;
}
// Pass 2's shared memory: two key tiles, the row histogram, the z histogram. Two CTAs per SM need
// each at most 114 KB (228 KB an SM, 1 KB reserved per CTA) with the static 512 bytes.
size_t pass2_smem(int d, int rhs, int zc_copies) {
    return KBUF2 * (d == 64 ? ktile_bytes<64>() : ktile_bytes<128>()) + sizeof(unsigned) * ((size_t)BM * rhs + (size_t)ZBS * zc_copies);
}
constexpr size_t SMEM_PER_CTA = 114 * 1024 - 1024 - BM * sizeof(float);

// Pass 2's work units: row block rb (rows rb BM ..) against key tiles t0 .. t1 - 1. A CTA a row block
// unless that block's tiles exceed the mean work of a resident CTA (the total over 2 CTAs an SM),
// at least SPLIT_MIN tiles: then it is cut into near-equal units, so that at 8K (64 row blocks on
// 132 SMs) the longest rows no longer set the pass's time. Longest units first. Returns the
// count; *nsplit counts the row blocks cut (none: pass 2 runs its unsplit instantiation).
constexpr int SPLIT_MIN = 32;
static int pass2_tiles(int64_t N, int64_t rb) {
    const int64_t cols = (rb + 1) * BM < N ? (rb + 1) * BM : N;
    return (int)((cols + BN - 1) / BN);
}
static int unit_longer(const void *x, const void *y) {
    const int4 *a = (const int4 *)x, *b = (const int4 *)y;
    const int la = a->z - a->y, lb = b->z - b->y;
    if (la != lb) return lb - la;
    return b->x - a->x;  // then the later row block first, as the unsplit order
}
static int4 *pass2_plan(int64_t N, int nsm, int fl, int *nunits, int *nsplit) {
    const int64_t nblk = (N + BM - 1) / BM;
    int64_t total = 0;
    for (int64_t rb = 0; rb < nblk; rb++) total += pass2_tiles(N, rb);
    const int64_t slots = 2 * (int64_t)(nsm > 0 ? nsm : 1);
    int64_t tmax = (total + slots - 1) / slots;
    if (tmax < SPLIT_MIN) tmax = SPLIT_MIN;
    // Split only where the row blocks fill at most half the SMs (N <= 8.4K on an H100): measured
    // 1.30 -> 0.96 ms at 8K, but 2.10 -> 2.56 at 16K and 4.34 -> 7.11 at 32K (not understood:
    // NOTES). SKEL_PASS2_SPLIT=0 / 1 overrides the choice (A/B timing).
    const char *env = getenv("SKEL_PASS2_SPLIT");
    const int want = env ? atoi(env) : 2 * nblk <= nsm;
    if (!want) tmax = INT32_MAX;
    int64_t n = 0;
    for (int64_t rb = 0; rb < nblk; rb++) n += (pass2_tiles(N, rb) + tmax - 1) / tmax;
    int4 *u = (int4 *)malloc(sizeof(int4) * (size_t)n);
    CHECK(u);
    int64_t x = 0;
    *nsplit = 0;
    for (int64_t rb = 0; rb < nblk; rb++) {
        const int nt = pass2_tiles(N, rb), parts = (int)((nt + tmax - 1) / tmax);
        *nsplit += parts > 1;
        // unit boundaries at multiples of fl (the row histogram's flush interval, a power of two:
        // pass 2 flushes after tiles it with (it + 1) % fl == 0 in every unit alike); parts <=
        // the row block's fl-tile chunks, since tmax >= SPLIT_MIN >= fl, so no unit is empty
        const int nc = (nt + fl - 1) / fl;
        for (int p = 0; p < parts; p++) {
            const int a0 = p * nc / parts * fl, a1 = p == parts - 1 ? nt : (p + 1) * nc / parts * fl;
            u[x++] = make_int4((int)rb, a0, a1, parts);
        }
    }
    qsort(u, (size_t)n, sizeof(int4), unit_longer);
    *nunits = (int)n;
    return u;
}

// The row histogram's shape for N and eps (see pass 2): the most bins an octave (k <= 2) whose
// entries from p' = 1/16 (the underflow entries) to p' = kappa (the largest A, 1, with room for
// rounding) fit RHS_MAX; rhs = 4 mod 8. 0 when eps is too small for any (N / eps > 2^90 or so).
int row_hist_plan(pass_args *a, int64_t N, double eps) {
    const double kap = (double)N / eps;
    for (int k = 2; k >= 0; k--) {
        const int hs = 23 - k;
        const uint32_t fb4 = (0x3f800000u >> hs) - 4;
        const float top = (float)(kap * 1.001);
        uint32_t tb;
        memcpy(&tb, &top, 4);
        const int n = (int)((tb >> hs) - fb4 + 1), rhs = n + (12 - n % 8) % 8;
        if (!isfinite(top) || rhs > RHS_MAX) continue;
        a->lkap = (float)log2(kap), a->inv_kap = (float)(1 / kap), a->eps_kap = eps * kap;
        a->hs = hs, a->rs = hs - RBITS, a->fb4 = fb4, a->rhs = rhs, a->flush_mask = (1 << (k + 3)) - 1;
        return 1;
    }
    return 0;
}

}  // namespace

// ---------------------------------------------------------------------------- entry points

// Pass 2's kernel for head dimension d: with images from whole blocks (img_blocks) or element by
// element, over split row blocks (pass2_plan) or one CTA a row block.
typedef void (*pass2_fn)(pass_args);
static pass2_fn pass2_kernel(int d, bool img_blocks, bool split) {
    if (d == 64) {
        if (split) return img_blocks ? exact_pass2_kernel<64, false, true> : exact_pass2_kernel<64, true, true>;
        return img_blocks ? exact_pass2_kernel<64, false, false> : exact_pass2_kernel<64, true, false>;
    }
    if (split) return img_blocks ? exact_pass2_kernel<128, false, true> : exact_pass2_kernel<128, true, true>;
    return img_blocks ? exact_pass2_kernel<128, false, false> : exact_pass2_kernel<128, true, false>;
}

struct gpu_exact {
    int64_t N, nb;
    int d, B, P;
    double eps;
    int img_blocks;     // 1: images from whole blocks; 0: element by element in pass 2
    float *stage;       // (N, d) float32 upload buffer
    __half *q, *k;      // (N, d)
    float *lse;         // (N)
    float *W, *X;       // (nb, nb)
    float *isum, *imax; // (P, P)
    int *cellof;        // (N)
    exact_acc *acc;
    unsigned long long *sparse_blocks;
    unsigned long long *rowhist;  // (N, rhs) pass 2's wide row-histogram entries
    int4 *units;        // (nunits) pass 2's work units (pass2_plan)
    int nunits, nsplit; // units, row blocks split over several
    unsigned *rb_done;  // (row blocks) units done
    float *rowtot;      // (N) split row blocks' row totals
    double *qks;        // (2, d, nch) the chunks' q and k sums (qk_chunk_kernel)
    cudaStream_t side;  // the q . k sum's stream (non-blocking: no implicit order with the legacy one)
    cudaEvent_t ev_in, ev_qk;  // the inputs are on the device; the q . k sum is done
    pass_args rh;       // the row histogram's shape (row_hist_plan) and the z histogram's copies
    float *h_isum;      // (P, P) host copy of the image sums
    cudaEvent_t ev[6];
};

extern "C" int gpu_probe(char *name, size_t n, skel_err *e) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (name && n) name[0] = 0;
    if (err != cudaSuccess) {
        cudaGetLastError();
        return skel_fail(e, "no usable CUDA device (%s)", cudaGetErrorString(err)), 0;
    }
    if (count < 1) return skel_fail(e, "no CUDA device found"), 0;
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    if (p.major < 8) return skel_fail(e, "CUDA device %s has compute capability %d.%d; need 8.0 or newer", p.name, p.major, p.minor), 0;
    if (name && n) snprintf(name, n, "%s", p.name);
    return 1;
}

extern "C" int gpu_exact_supported(int d, int B, skel_err *e) {
    if (d != 64 && d != 128) return skel_fail(e, "head_dim %d: the GPU path handles 64 or 128", d), 0;
    if (B < 16 || B > 256 || (B & (B - 1))) return skel_fail(e, "--block %d: the GPU path handles powers of two in [16, 256]", B), 0;
    return 1;
}

static const double GiB = 1024.0 * 1024.0 * 1024.0;

extern "C" int gpu_exact_init(gpu_exact **out, int64_t N, int d, int B, int image_size, double eps, skel_err *e) {
    *out = NULL;
    if (!gpu_probe(NULL, 0, e)) return -1;
    if (!gpu_exact_supported(d, B, e)) return -1;
    gpu_exact *g = (gpu_exact *)calloc(1, sizeof *g);
    CHECK(g);
    if (N > INT32_MAX - BN) {
        free(g);
        return skel_fail(e, "N = %lld: the GPU path handles fewer than 2^31 tokens", (long long)N);
    }
    g->N = N, g->d = d, g->B = B, g->eps = eps;
    g->nb = (N + B - 1) / B;
    g->P = (int)(N < image_size ? N : image_size);
    g->img_blocks = N % g->P == 0 && (N / g->P) % B == 0;
    if (!row_hist_plan(&g->rh, N, eps)) {
        free(g);
        return skel_fail(e, "eps = %g at N = %lld: the GPU's per-row histogram cannot span N / eps; use --device cpu", eps, (long long)N);
    }
    // z histogram copies: one a lane (no bank conflicts) where it fits beside the row histogram
    g->rh.zc_copies = pass2_smem(d, g->rh.rhs, 32) <= SMEM_PER_CTA ? 32 : 8;
    const size_t nd = (size_t)N * d, nb2 = (size_t)g->nb * g->nb, p2 = (size_t)g->P * g->P;
    const size_t nrh = (size_t)N * g->rh.rhs, nqks = 2 * (size_t)d * (size_t)((N + QK_ROWS - 1) / QK_ROWS);
    // What one head needs on the device, in one sum so the error can name it.
    int nsm = 0, dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev));
    int4 *units = pass2_plan(N, nsm, g->rh.flush_mask + 1, &g->nunits, &g->nsplit);
    const size_t nblk = (size_t)((N + BM - 1) / BM);
    const size_t need = nd * (sizeof(float) + 2 * sizeof(__half)) + (size_t)N * (2 * sizeof(float) + sizeof(int)) +
                        g->nunits * sizeof(int4) + nblk * sizeof(unsigned) +
                        nb2 * 2 * sizeof(float) + p2 * 2 * sizeof(float) + nrh * sizeof(unsigned long long) +
                        nqks * sizeof(double) + sizeof(exact_acc) + 64;
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    // Leave 256 MiB for the CUDA context's own needs and the kernels' stacks.
    if (need + ((size_t)256 << 20) > free_b) {
        free(g), free(units);
        return skel_fail(e, "GPU out of memory: a head of N = %lld tokens (d = %d, %lld blocks a side) needs %.2f GiB of device memory; %.2f GiB of %.2f GiB is free",
                         (long long)N, d, (long long)(N + B - 1) / B, need / GiB, free_b / GiB, total_b / GiB);
    }
    void **bufs[] = {(void **)&g->stage, (void **)&g->q, (void **)&g->k, (void **)&g->lse, (void **)&g->W,
                     (void **)&g->X, (void **)&g->isum, (void **)&g->imax, (void **)&g->cellof, (void **)&g->acc,
                     (void **)&g->sparse_blocks, (void **)&g->rowhist, (void **)&g->qks, (void **)&g->units,
                     (void **)&g->rb_done, (void **)&g->rowtot};
    const size_t sizes[] = {nd * sizeof(float), nd * sizeof(__half), nd * sizeof(__half), N * sizeof(float),
                            nb2 * sizeof(float), nb2 * sizeof(float), p2 * sizeof(float), p2 * sizeof(float),
                            N * sizeof(int), sizeof(exact_acc), sizeof(unsigned long long),
                            nrh * sizeof(unsigned long long), nqks * sizeof(double), g->nunits * sizeof(int4),
                            nblk * sizeof(unsigned), N * sizeof(float)};
    for (size_t x = 0; x < sizeof sizes / sizeof sizes[0]; x++) {
        cudaError_t err = cudaMalloc(bufs[x], sizes[x]);
        if (err != cudaSuccess) {
            cudaGetLastError();
            CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
            gpu_exact_free(g), free(units);
            return skel_fail(e, "GPU out of memory: a head of N = %lld tokens (d = %d) needs %.2f GiB of device memory; %.2f GiB of %.2f GiB was free (%s)",
                             (long long)N, d, need / GiB, free_b / GiB, total_b / GiB, cudaGetErrorString(err));
        }
    }
    CUDA_CHECK(cudaMemcpy(g->units, units, g->nunits * sizeof(int4), cudaMemcpyHostToDevice));
    free(units);
    int *cell = (int *)malloc(sizeof(int) * N);
    CHECK(cell);
    for (int64_t c = 0; c < g->P; c++)
        for (int64_t i = exact_cell_start(c, N, g->P); i < exact_cell_start(c + 1, N, g->P); i++) cell[i] = (int)c;
    CUDA_CHECK(cudaMemcpy(g->cellof, cell, sizeof(int) * N, cudaMemcpyHostToDevice));
    free(cell);
    g->h_isum = (float *)malloc(p2 * sizeof(float));
    CHECK(g->h_isum);
    for (int x = 0; x < 6; x++) CUDA_CHECK(cudaEventCreate(&g->ev[x]));
    CUDA_CHECK(cudaStreamCreateWithFlags(&g->side, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&g->ev_in, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&g->ev_qk, cudaEventDisableTiming));
    CUDA_CHECK(cudaFuncSetAttribute(exact_pass1_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)pass1_smem(64)));
    CUDA_CHECK(cudaFuncSetAttribute(exact_pass1_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)pass1_smem(128)));
    CUDA_CHECK(cudaFuncSetAttribute(exact_min_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)pass1_smem(64)));
    CUDA_CHECK(cudaFuncSetAttribute(exact_min_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)pass1_smem(128)));
    const int smem2 = (int)pass2_smem(d, g->rh.rhs, g->rh.zc_copies);
    CHECK(smem2 <= (int)SMEM_PER_CTA);
    for (int img = 0; img < 2; img++)
        for (int split = 0; split < 2; split++)
            CUDA_CHECK(cudaFuncSetAttribute(pass2_kernel(d, img, split), cudaFuncAttributeMaxDynamicSharedMemorySize, smem2));
    *out = g;
    return 0;
}

extern "C" void gpu_exact_free(gpu_exact *g) {
    if (!g) return;
    void *bufs[] = {g->stage, g->q, g->k, g->lse, g->W, g->X, g->isum, g->imax, g->cellof, g->acc, g->sparse_blocks, g->rowhist,
                    g->qks, g->units, g->rb_done, g->rowtot};
    for (size_t x = 0; x < sizeof bufs / sizeof bufs[0]; x++)
        if (bufs[x]) CUDA_CHECK(cudaFree(bufs[x]));
    for (int x = 0; x < 6; x++)
        if (g->ev[x]) CUDA_CHECK(cudaEventDestroy(g->ev[x]));
    if (g->ev_in) CUDA_CHECK(cudaEventDestroy(g->ev_in));
    if (g->ev_qk) CUDA_CHECK(cudaEventDestroy(g->ev_qk));
    if (g->side) CUDA_CHECK(cudaStreamDestroy(g->side));
    free(g->h_isum);
    free(g);
}

static float elapsed(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms;
}

extern "C" int gpu_exact_compute(gpu_exact *g, exact_stats *st, const float *q, const float *k, int k_changed,
                                 gpu_exact_times *tm, skel_err *e) {
    const int64_t N = g->N, nb = g->nb, nd = N * g->d;
    const int P = g->P;
    if (st) CHECK(st->N == N && st->d == g->d && st->B == g->B && st->P == P);
    const int cvt_blocks = 1024;
    CUDA_CHECK(cudaEventRecord(g->ev[0]));
    init_acc_kernel<<<1, 1>>>(g->acc);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(g->stage, q, sizeof(float) * nd, cudaMemcpyHostToDevice));
    to_half_kernel<<<cvt_blocks, 256>>>(g->q, g->stage, nd, &g->acc->overflow);
    CUDA_CHECK_LAUNCH();
    if (k_changed) {
        CUDA_CHECK(cudaMemcpy(g->stage, k, sizeof(float) * nd, cudaMemcpyHostToDevice));
        to_half_kernel<<<cvt_blocks, 256>>>(g->k, g->stage, nd, &g->acc->overflow);
        CUDA_CHECK_LAUNCH();
    }
    CUDA_CHECK(cudaMemsetAsync(g->W, 0, sizeof(float) * nb * nb));
    CUDA_CHECK(cudaMemsetAsync(g->X, 0, sizeof(float) * nb * nb));
    CUDA_CHECK(cudaMemsetAsync(g->isum, 0, sizeof(float) * P * P));
    CUDA_CHECK(cudaMemsetAsync(g->imax, 0, sizeof(float) * P * P));
    CUDA_CHECK(cudaMemsetAsync(g->sparse_blocks, 0, sizeof(unsigned long long)));

    pass_args a = g->rh;  // the row histogram's shape
    a.q = g->q, a.k = g->k, a.N = N;
    a.scale2 = (float)(LOG2E / sqrt((double)g->d));
    a.lse = g->lse, a.acc = g->acc;
    a.eps = g->eps;
    a.B = g->B, a.lgB = __builtin_ctz((unsigned)g->B), a.nb = nb, a.W = g->W, a.X = g->X;
    a.P = P, a.cellof = g->cellof, a.img_sum = g->isum, a.img_max = g->imax;
    a.rowhist = g->rowhist;
    a.units = g->units, a.rb_done = g->rb_done, a.rowtot = g->rowtot;
    const unsigned grid = (unsigned)((N + BM - 1) / BM);
    const size_t smem2 = pass2_smem(g->d, a.rhs, a.zc_copies);

    CUDA_CHECK(cudaEventRecord(g->ev[1]));
    zcentre_kernel<<<ZC_BLOCKS, THREADS>>>(g->q, g->k, N, g->d, a.scale2, g->acc);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaEventRecord(g->ev_in));
    if (g->d == 64) exact_pass1_kernel<64><<<grid, THREADS, pass1_smem(64)>>>(a);
    else exact_pass1_kernel<128><<<grid, THREADS, pass1_smem(128)>>>(a);
    CUDA_CHECK_LAUNCH();
    {
        const unsigned gm = grid < MIN_GRID ? grid : MIN_GRID;
        if (g->d == 64) exact_min_kernel<64><<<gm, THREADS, pass1_smem(64)>>>(a);
        else exact_min_kernel<128><<<gm, THREADS, pass1_smem(128)>>>(a);
    }
    CUDA_CHECK_LAUNCH();
    {  // the q . k sum on the side stream, launched after pass 1 so that its CTAs take the SMs that
       // pass 1's tail leaves idle (0.04 ms of kernels; before pass 1 on the legacy stream they
       // added 0.09 ms to it, here nothing measurable); joined before the finish reads acc
        const int nch = (int)((N + QK_ROWS - 1) / QK_ROWS);
        CUDA_CHECK(cudaStreamWaitEvent(g->side, g->ev_in, 0));
        qk_chunk_kernel<<<nch, 128, 0, g->side>>>(g->q, g->k, N, g->d, g->qks, g->acc);
        CUDA_CHECK_LAUNCH();
        qk_scan_kernel<<<g->d, 256, 0, g->side>>>(g->qks, g->d, nch, g->acc);
        CUDA_CHECK_LAUNCH();
        CUDA_CHECK(cudaEventRecord(g->ev_qk, g->side));
    }
    if (g->nsplit) {  // split row blocks add into their entries and row totals from zero
        CUDA_CHECK(cudaMemsetAsync(g->rowhist, 0, (size_t)N * a.rhs * sizeof(unsigned long long)));
        CUDA_CHECK(cudaMemsetAsync(g->rowtot, 0, (size_t)N * sizeof(float)));
        CUDA_CHECK(cudaMemsetAsync(g->rb_done, 0, (size_t)((N + BM - 1) / BM) * sizeof(unsigned)));
    }
    CUDA_CHECK(cudaEventRecord(g->ev[2]));
    pass2_kernel(g->d, g->img_blocks, g->nsplit > 0)<<<g->nsplit ? (unsigned)g->nunits : grid, THREADS, smem2>>>(a);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaStreamWaitEvent(0, g->ev_qk, 0));
    CUDA_CHECK(cudaEventRecord(g->ev[3]));
    {
        dim3 gr((unsigned)((nb + 255) / 256 < 64 ? (nb + 255) / 256 : 64), (unsigned)(nb < 4096 ? nb : 4096));
        block_sparsity_kernel<<<gr, 256>>>(g->X, nb, (float)(g->eps / (double)N), g->sparse_blocks);
        CUDA_CHECK_LAUNCH();
    }
    if (g->img_blocks) {
        const int64_t cells = (int64_t)P * P;
        image_from_blocks_kernel<<<(unsigned)((cells + 255) / 256), 256>>>(g->W, g->X, nb, P, (int)(N / P / g->B),
                                                                          g->isum, g->imax);
        CUDA_CHECK_LAUNCH();
    }
    CUDA_CHECK(cudaEventRecord(g->ev[4]));
    exact_acc h;
    CUDA_CHECK(cudaMemcpy(&h, g->acc, sizeof h, cudaMemcpyDeviceToHost));
    unsigned long long sparse_blocks = 0;
    CUDA_CHECK(cudaMemcpy(&sparse_blocks, g->sparse_blocks, sizeof sparse_blocks, cudaMemcpyDeviceToHost));
    if (h.overflow) return skel_fail(e, "an input value exceeds the float16 range (|x| > 65504); use --device cpu");
    if (st) {
        CUDA_CHECK(cudaMemcpy(st->lse, g->lse, sizeof(float) * N, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(st->block_mass, g->W, sizeof(float) * nb * nb, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(st->block_max, g->X, sizeof(float) * nb * nb, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(st->image_max, g->imax, sizeof(float) * P * P, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(g->h_isum, g->isum, sizeof(float) * P * P, cudaMemcpyDeviceToHost));
        const double npairs = (double)N * (double)(N + 1) / 2;
        for (int64_t pa = 0; pa < P; pa++)
            for (int64_t pb = 0; pb < P; pb++) {
                int64_t n = pb <= pa ? causal_pairs(exact_cell_start(pa, N, P), exact_cell_start(pa + 1, N, P),
                                                    exact_cell_start(pb, N, P), exact_cell_start(pb + 1, N, P))
                                     : 0;
                st->image_mean[pa * P + pb] = n ? (float)(g->h_isum[pa * P + pb] / n) : 0.f;
            }
        st->threshold_sparsity = (double)h.below / npairs;
        st->exact_sparsity = (double)h.dropped / npairs;
        st->block_sparsity = (double)sparse_blocks / ((double)nb * (nb + 1) / 2);
        // base-2 units back to natural ones
        double zmin = ordered_to_float(h.zmin) * (double)LN2, zmax = ordered_to_float(h.zmax) * (double)LN2;
        if (zmax <= zmin) zmax = zmin + 1;
        st->zlo = zmin, st->zhi = zmax;
        for (int b = 0; b < ZB; b++) st->zhist[b] = (double)h.zhist[b];
        const double zc = h.zc;  // the centre the moments' sums used
        h.mom[0] = (double)a.scale2 * h.qk_sum - npairs * zc;  // sum of y = z log2 e - zc over the pairs
        const double mu1 = h.mom[0] / npairs, e2 = h.mom[1] / npairs, e3 = h.mom[2] / npairs, e4 = h.mom[3] / npairs;
        const double var = e2 - mu1 * mu1;
        const double c3 = e3 - 3 * mu1 * e2 + 2 * mu1 * mu1 * mu1;
        const double c4 = e4 - 4 * mu1 * e3 + 6 * mu1 * mu1 * e2 - 3 * mu1 * mu1 * mu1 * mu1;
        st->zmean = (zc + mu1) * LN2;
        st->zvar = var * (double)LN2 * LN2;
        st->zskew = var > 0 ? c3 / pow(var, 1.5) : 0;
        st->zkurt = var > 0 ? c4 / (var * var) - 3 : 0;
    }
    CUDA_CHECK(cudaEventRecord(g->ev[5]));
    CUDA_CHECK(cudaEventSynchronize(g->ev[5]));
    if (tm) {
        tm->upload_ms = elapsed(g->ev[0], g->ev[1]);
        tm->pass1_ms = elapsed(g->ev[1], g->ev[2]);
        tm->pass2_ms = elapsed(g->ev[2], g->ev[3]);
        tm->finish_ms = elapsed(g->ev[3], g->ev[4]);
        tm->download_ms = elapsed(g->ev[4], g->ev[5]);
    }
    return 0;
}

extern "C" void gpu_exact_device_qk(const gpu_exact *g, const void **q, const void **k, int64_t *N, int *d) {
    *q = g->q, *k = g->k, *N = g->N, *d = g->d;
}
