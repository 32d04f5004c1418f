// chol.cuh: the ridge solve of the decomposition's normal equations (SPEC section 3; the GPU twin of
// ridge_solve_normal in src/decomp.c): x = (G + lambda^2 I)^{-1} rhs with lambda = eps_r sqrt(trace G) / 2,
// G (n, n) symmetric, n <= 256, all in double.
//   inputs: G (n, n) row-major, rhs (n); outputs: x (n), *info (1 when a pivot is not positive), and as
//   scratch in global memory Lg (LG_DOUBLES: the factor's tiles below the diagonal) and Mg (MG_DOUBLES:
//   the inverses of the diagonal tiles), each tile as its shared-memory image (TILE doubles, tix's
//   layout), np = n rounded up to CT (padded with an identity block).
// One CTA of THREADS, a left-looking blocked Cholesky over CT x CT tiles held in shared memory:
// panel K (tile column K) needs only the tiles of tile rows >= K, so that at most (nt - K)(K + 1) <= 20
// of the 36 tiles of n = 256 are live at once (a row of tiles is dropped after its panel; Lg keeps a
// copy for the back substitution). Per panel: the panel's update from the tiles on its left as double
// mma (m16n8k4) on the tensor cores; warp 0 factors the diagonal tile in registers and forms that tile's
// inverse beside it, pivot by pivot, while warp 1 sums the forward substitution's terms from the tiles on
// the left (y_K = L_KK^{-1} (rhs_K - sum_J L_KJ y_J), the last product by the inverse); the
// tiles below take X = P L_KK^{-T} as another double mma (a diagonal tile's condition is about the
// square root of G's, ~1e3, so the explicit inverse costs at most ~1e-13 relative; the host emulation,
// bench/chol_emu.cpp, gives 7e-15 at n = 256). The back
// substitution L^T x = y runs last from Lg and Mg. The one-CTA right-looking version kept the matrix
// in global memory and walked each panel's rows one thread at a time (0.41 ms under ncu at n = 256).
#ifndef SKEL_CHOL_CUH
#define SKEL_CHOL_CUH

#include "gpu_common.cuh"

namespace chol {

constexpr int CT = 32;        // tile side
constexpr int MAXT = 8;       // tiles per side at most (n <= 256)
constexpr int LDT = 36;       // padded tile row (doubles): the mma fragments' loads are free of bank conflicts
constexpr int NSLOT = 20;     // live tiles at most: max over K of (MAXT - K)(K + 1)
constexpr int THREADS = 256;  // 8 warps, each up to two of the 2 (MAXT - K) mma tasks (32 x 16) of a panel
constexpr int NW = THREADS / 32;
constexpr int TILE = CT * LDT;
constexpr size_t SMEM = sizeof(double) * ((size_t)(NSLOT + 1) * TILE + 2 * MAXT * CT + THREADS);
constexpr size_t LG_DOUBLES = (size_t)MAXT * MAXT * TILE;  // Lg: tile (I, K) at (I MAXT + K) TILE
constexpr size_t MG_DOUBLES = (size_t)MAXT * TILE;         // Mg: tile K at K TILE

// The factor's tiles go to global memory by bulk copies (the TMA engine) of their shared-memory images:
// plain stores from the warps had stalled them while the other SMs loaded the memory system (in the
// decomposition, beside rows_kernel, the Cholesky took ~225 us at 128K against 107 alone, and ~166 with
// no stores at all: bench/decomp_timeline.sh, s13). Each writer fences its shared-memory stores for the
// async proxy; one lane then issues the copy; the groups are committed once a panel, and a slot is
// reused only after its copy has read it (wait_group.read, a panel later).
__device__ __forceinline__ void bulk_store(double *gdst, const double *ssrc, uint32_t bytes) {
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(gdst), "r"(smem_addr(ssrc)), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void bulk_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ void fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Element (r, j) of a tile: the low two bits of the column are swapped by bits 2-3 of the row, so that
// both a thread per row (lanes over r) and the mma fragments (lanes over 8 rows x 4 columns) meet 16
// distinct bank pairs.
__device__ __forceinline__ int tix(int r, int j) { return r * LDT + (j ^ ((r >> 2) & 3)); }

// d (16 x 8) += a (16 x 16) b (16 x 8), the sm_90 shape (m8n8k4 is an eighth of its work per
// instruction): lane (g, t) holds a[i] = A[g + 8 (i % 2)][t + 4 (i / 2)], b[i] = B[t + 4 i][g] and
// d[i] = D[g + 8 (i / 2)][2 t + i % 2] (bench/dmma_shapes.cu checks this layout on the device).
__device__ __forceinline__ void dmma16(double d[4], const double a[8], const double b[4]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5,%6,%7,%8,%9,%10,%11}, "
                 "{%12,%13,%14,%15}, {%0,%1,%2,%3};\n"
                 : "+d"(d[0]), "+d"(d[1]), "+d"(d[2]), "+d"(d[3])
                 : "d"(a[0]), "d"(a[1]), "d"(a[2]), "d"(a[3]), "d"(a[4]), "d"(a[5]), "d"(a[6]), "d"(a[7]),
                   "d"(b[0]), "d"(b[1]), "d"(b[2]), "d"(b[3]));
}

// d (16 x 8) += a (16 x 4) b (4 x 8): lane (g, t) holds a0 = A[g][t], a1 = A[g + 8][t], b = B[t][g] and
// d0, d1 = D[g][2 t], D[g][2 t + 1], d2, d3 = D[g + 8][2 t], D[g + 8][2 t + 1] (bench/dmma_shapes.cu).
__device__ __forceinline__ void dmma1684(double &d0, double &d1, double &d2, double &d3, double a0, double a1, double b) {
    asm volatile("mma.sync.aligned.m16n8k4.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                 : "+d"(d0), "+d"(d1), "+d"(d2), "+d"(d3)
                 : "d"(a0), "d"(a1), "d"(b));
}

// acc (32 x 16: rows 8 fr + g, columns 8 fc + 2 t + e) += A (32 x 32 tile) B^T where B's rows c0 ..
// c0 + 15 are the output's columns. As m16n8k4 (rows 8 fr + g and 8 (fr + 1) + g of one instruction):
// m8n8k4 issues at the same rate with half the work on sm_90 (bench/dmma_shapes.cu).
__device__ __forceinline__ void mma_32x16(double acc[4][2][2], const double *A, const double *B, int c0) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int kk = 0; kk < CT; kk += 4) {
        double a[4], b[2];
#pragma unroll
        for (int fr = 0; fr < 4; fr++) a[fr] = A[tix(8 * fr + g, kk + t)];
#pragma unroll
        for (int fc = 0; fc < 2; fc++) b[fc] = B[tix(c0 + 8 * fc + g, kk + t)];
#pragma unroll
        for (int f = 0; f < 2; f++)
#pragma unroll
            for (int fc = 0; fc < 2; fc++)
                dmma1684(acc[2 * f][fc][0], acc[2 * f][fc][1], acc[2 * f + 1][fc][0], acc[2 * f + 1][fc][1], a[2 * f],
                         a[2 * f + 1], b[fc]);
    }
}

__global__ void __launch_bounds__(THREADS, 1) chol_solve_kernel(double *Lg, double *Mg, double *x, int *info,
                                                              const double *G, const double *rhs, int n, double eps_r) {
    griddep_wait();  // launched with launch_pdl after the normal equations' reduction
    extern __shared__ double sm[];
    double *tiles = sm;                  // NSLOT tiles of (CT, LDT)
    double *Mt = tiles + NSLOT * TILE;   // (CT, LDT) L_KK^{-1} of the current panel
    double *y = Mt + TILE;               // (MAXT CT) rhs, then L^{-1} rhs
    double *xs = y + MAXT * CT;          // (MAXT CT) the solution
    double *red = xs + MAXT * CT;        // (THREADS) partial sums of the back substitution
    __shared__ double rk[CT], lam2s;
    __shared__ int slot[MAXT][MAXT], freel[NSLOT], bad;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int nt = (n + CT - 1) / CT, np = nt * CT;
    if (warp == 0) {
        double tr = 0;
        for (int i = lane; i < n; i += 32) tr += G[(size_t)i * n + i];
        tr = warp_sum(tr);
        if (lane == 0) {
            const double lam = eps_r * sqrt(tr) / 2;
            lam2s = lam * lam;
            bad = 0;
            // the slots: tile (I, K) is taken at panel K, tile row K given back after it
            int nf = 0;
            for (int s = NSLOT - 1; s >= 0; s--) freel[nf++] = s;
            for (int K = 0; K < nt; K++) {
                for (int I = K; I < nt; I++) slot[I][K] = freel[--nf];
                for (int J = 0; J <= K; J++) freel[nf++] = slot[K][J];
            }
        }
    }
    for (int i = tid; i < np; i += THREADS) y[i] = i < n ? rhs[i] : 0.0;
    __syncthreads();
    const double lam2 = lam2s;
    for (int K = 0; K < nt; K++) {
        const int k0 = K * CT;
        double *D = tiles + slot[K][K] * TILE;
        // P (I, K) = G (I, K) + ridge - sum_{J < K} L (I, J) L (K, J)^T for I >= K: task (I, column half)
        for (int task = warp; task < 2 * (nt - K); task += NW) {
            const int I = K + task / 2, c0 = 16 * (task & 1);
            double gv[4][2][2], acc[4][2][2] = {};
#pragma unroll
            for (int fr = 0; fr < 4; fr++)
#pragma unroll
                for (int fc = 0; fc < 2; fc++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int r = I * CT + 8 * fr + g, c = k0 + c0 + 8 * fc + 2 * t + e;
                        double v = r < n && c < n ? G[(size_t)r * n + c] : 0.0;
                        if (r == c) v += r < n ? lam2 : 1.0;
                        gv[fr][fc][e] = v;
                    }
            for (int J = 0; J < K; J++) mma_32x16(acc, tiles + slot[I][J] * TILE, tiles + slot[K][J] * TILE, c0);
            double *P = tiles + slot[I][K] * TILE;
#pragma unroll
            for (int fr = 0; fr < 4; fr++)
#pragma unroll
                for (int fc = 0; fc < 2; fc++)
#pragma unroll
                    for (int e = 0; e < 2; e++) P[tix(8 * fr + g, c0 + 8 * fc + 2 * t + e)] = gv[fr][fc][e] - acc[fr][fc][e];
        }
        __syncthreads();
        if (warp == 0) {
            // The diagonal tile in registers, lane r holding row r; and with it, lane c forms column c of
            // L_KK^{-1} (v L_KK^T = e_c by columns: v_p /= L_pp, then v_j -= v_p L_jp for j > p), which
            // needs at pivot p only the column of L that the factor has just formed. Column p goes
            // through shared memory (Mt, free until the inverse is written to it; column-major, read
            // two at a time by every lane), so that each pivot costs one store and (CT - p) / 2 loads
            // where a shuffle per element cost CT - p. nxt: lane p + 1's a[p + 1] after column p's
            // update, formed from its own l (the value the update below gives it, bit for bit), so that
            // the next pivot does not wait for shared memory: the 256 pivots are the serial depth of
            // the whole factorisation.
            if (lane == 0) bulk_wait_read<0>();  // Mt's copy of the panel before has read it
            __syncwarp();
            double a[CT], v[CT];
#pragma unroll
            for (int j = 0; j < CT; j++) a[j] = D[tix(lane, j)], v[j] = j == lane ? 1.0 : 0.0;
            double nxt = a[0];
#pragma unroll
            for (int p = 0; p < CT; p++) {
                double piv = __shfl_sync(0xffffffffu, nxt, p);
                if (!(piv > 0)) {
                    if (lane == 0) bad = 1;
                    piv = 1;
                }
                const double rinv = rsqrt(piv), lpp = piv * rinv;
                const double l = lane == p ? lpp : lane > p ? a[p] * rinv : 0.0;  // L[lane][p]
                if (p + 1 < CT) nxt = fma(-l, l, a[p + 1]);
                Mt[p * LDT + lane] = l;
                v[p] *= rinv;
                __syncwarp();
#pragma unroll
                for (int j = (p + 1) & ~1; j < CT; j += 2) {
                    const double2 c2 = *(const double2 *)(Mt + p * LDT + j);
                    if (j > p) a[j] = fma(-l, c2.x, a[j]), v[j] = fma(-v[p], c2.x, v[j]);
                    a[j + 1] = fma(-l, c2.y, a[j + 1]), v[j + 1] = fma(-v[p], c2.y, v[j + 1]);
                }
            }
            __syncwarp();  // every lane's last read of the columns before Mt takes the inverse
#pragma unroll
            for (int j = 0; j < CT; j++) Mt[tix(j, lane)] = v[j];  // Mt[j][c] = (L_KK^{-1})[j][c]
            fence_async_smem();
            __syncwarp();
            if (lane == 0) bulk_store(Mg + (size_t)K * TILE, Mt, sizeof(double) * TILE);  // for the back substitution
        } else if (warp == 1) {  // rk = y_K - sum_{J < K} L (K, J) y_J, lane c row c (4 partial sums)
            double s[4] = {y[k0 + lane], 0.0, 0.0, 0.0};
            for (int J = 0; J < K; J++) {
                const double *B = tiles + slot[K][J] * TILE;
#pragma unroll
                for (int p = 0; p < CT; p++) s[p & 3] -= B[tix(lane, p)] * y[J * CT + p];
            }
            rk[lane] = (s[0] + s[1]) + (s[2] + s[3]);
        }
        __syncthreads();
        if (warp == NW - 1) {  // y_K = L_KK^{-1} rk (the warp with the fewest X tasks below), lane j row j
            double s[4] = {0.0, 0.0, 0.0, 0.0};
#pragma unroll
            for (int c = 0; c < CT; c++) s[c & 3] += Mt[tix(lane, c)] * rk[c];
            y[k0 + lane] = (s[0] + s[1]) + (s[2] + s[3]);
        }
        // X (I, K) = P (I, K) L_KK^{-T} for I > K: X[i][c] = sum_j P[i][j] Mt[c][j], one warp a tile (at
        // most MAXT - 1 < NW), written in place once that warp has read its rows of P: no CTA barrier
        // between the products and the stores (two warps a tile, one per column half, needed one)
        if (warp < nt - 1 - K) {
            const int I = K + 1 + warp;
            double *P = tiles + slot[I][K] * TILE;
            double acc[2][4][2][2] = {};
            mma_32x16(acc[0], P, Mt, 0);
            mma_32x16(acc[1], P, Mt, 16);
            __syncwarp();
#pragma unroll
            for (int u = 0; u < 2; u++)
#pragma unroll
                for (int fr = 0; fr < 4; fr++)
#pragma unroll
                    for (int fc = 0; fc < 2; fc++) {
                        const int r = 8 * fr + g, c = 16 * u + 8 * fc + 2 * t;
                        P[tix(r, c)] = acc[u][fr][fc][0], P[tix(r, c + 1)] = acc[u][fr][fc][1];
                    }
            fence_async_smem();
            __syncwarp();
            if (lane == 0) bulk_store(Lg + ((size_t)I * MAXT + K) * TILE, P, sizeof(double) * TILE);
        }
        // this panel's copies as one group; the panel before's have read their tiles (slot (I, K) is
        // reused two panels after K at the soonest)
        if (lane == 0) bulk_commit(), bulk_wait_read<1>();
        __syncthreads();
    }
    if (lane == 0) bulk_wait_all();  // every copy written, before the back substitution reads them
    asm volatile("fence.proxy.async;\n" ::: "memory");
    __syncthreads();
    // L^T x = y by tile rows from the last: x_K = L_KK^{-T} (y_K - sum_{r >= k0 + CT} L[r][k0 + c] x_r);
    // thread (w, c) sums rows k0 + CT + w, + NW, ..; each step's loads are issued a step ahead
    constexpr int RB = (MAXT - 1) * CT / NW;  // rows below a tile row per thread, at most
    double lv[RB], mv[CT];
    auto load_l = [&](int K) {
#pragma unroll
        for (int m = 0; m < RB; m++) {
            const int r = (K + 1) * CT + warp + NW * m;
            lv[m] = r < np ? Lg[((size_t)(r / CT) * MAXT + K) * TILE + tix(r % CT, lane)] : 0.0;
        }
    };
    auto load_m = [&](int K) {
#pragma unroll
        for (int j = 0; j < CT; j++) mv[j] = Mg[(size_t)K * TILE + tix(j, lane)];
    };
    load_l(nt - 1);
    if (warp == 0) load_m(nt - 1);
    for (int K = nt - 1; K >= 0; K--) {
        const int k0 = K * CT;
        double s = 0;
#pragma unroll
        for (int m = 0; m < RB; m++) {
            const int r = k0 + CT + warp + NW * m;
            if (r < np) s += lv[m] * xs[r];
        }
        red[warp * 32 + lane] = s;
        if (K > 0) load_l(K - 1);
        __syncthreads();
        if (warp == 0) {
            double tk = y[k0 + lane];
#pragma unroll
            for (int w = 0; w < NW; w++) tk -= red[w * 32 + lane];
            double xc[2] = {0.0, 0.0};
#pragma unroll
            for (int j = 0; j < CT; j++) xc[j & 1] += mv[j] * __shfl_sync(0xffffffffu, tk, j);
            xs[k0 + lane] = xc[0] + xc[1];
            if (K > 0) load_m(K - 1);
        }
        __syncthreads();
    }
    for (int i = tid; i < n; i += THREADS) x[i] = xs[i];
    if (tid == 0) *info = bad;
}

}  // namespace chol

#endif
