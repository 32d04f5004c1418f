// output.cu: GPU twin of the output error in src/exact.c (SPEC section 2, "If values are present"):
// for each block mask M, ||O - O'||_F / ||O||_F with O = A V and O' the attention renormalised over
// the kept elements, O'_i = (sum_{j kept} A_ij v_j) / (sum_{j kept} A_ij) (0 for a row that keeps
// nothing).
//   A_ij = exp(z_ij - lse_i), with lse from the exact pass (so no online softmax is needed);
//   one flash-style kernel per mask (and one without a mask for O): a CTA of 4 warps owns 64 query
//   rows, warp w rows 16 w .. +16; key and value tiles of 64 stream through shared memory (cp.async,
//   two buffers); S = Q K^T and O += P V with mma.sync m16n8k16 (float16 in, float32 accumulate), P
//   rounded to float16 once, in the same way in every pass, so the kept part of O' matches O's;
//   a key tile that no row of the CTA keeps is skipped, so a mask costs its density.
//   The pass without a mask stores O (float32) and sum ||O_i||^2; each mask pass adds
//   sum_i ||O_i - O'_i||^2 over its rows.
// The head's q, k, v (float32 on the host) are converted to float16 here; lse comes from the host.
#include <math.h>
#include <string.h>

#include "gpu_common.cuh"

extern "C" {
#include "gpu.h"
}

namespace {

constexpr int OBM = 64;  // query rows per CTA
constexpr int OBN = 64;  // keys per tile
constexpr int OWARPS = 4;
constexpr int OTHREADS = 32 * OWARPS;
constexpr float OLOG2E = 1.44269504088896341f;

template <int D>
__host__ __device__ constexpr int ldt() { return D + 8; }  // padded shared rows (halfs)
template <int D>
__host__ __device__ constexpr size_t tile_bytes() { return (size_t)OBN * ldt<D>() * sizeof(__half); }
template <int D>
constexpr size_t out_smem() { return 4 * tile_bytes<D>(); }  // K and V, two buffers each

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&h;
}

template <int D>
__device__ __forceinline__ void load_tile(__half *T, const __half *src, int64_t N, int64_t c0) {
    constexpr int CH = D / 8;
    for (int x = threadIdx.x; x < OBN * CH; x += OTHREADS) {
        const int r = x / CH, cc = x % CH;
        const int64_t j = c0 + r;
        const bool ok = j < N;
        cp_async16(T + r * ldt<D>() + cc * 8, src + (ok ? j : 0) * D + cc * 8, ok);
    }
}

struct out_args {
    const __half *q, *k, *v;  // (N, D)
    const float *lse;         // (N), natural log
    int64_t N, nb;
    int B;
    float scale2;             // c log2 e
    const uint8_t *mask;      // (nb, nb), or NULL: every causal element (O itself)
    float *O;                 // (N, D): written by the pass without a mask, read by the others
    double *acc;              // [0] sum ||O||^2 (no mask), [1] sum ||O - O'||^2 (a mask)
};

template <int D>
__global__ void __launch_bounds__(OTHREADS) output_kernel(out_args a) {
    extern __shared__ uint4 osmem[];
    __half *Ks = (__half *)osmem, *Vs = Ks + 2 * OBN * ldt<D>();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int64_t N = a.N, r0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * OBM;  // longest rows first
    const int64_t rw = r0 + warp * 16, rowA = rw + g, rowB = rowA + 8;
    uint32_t qf[D / 16][4];
    load_q_frags<D>(qf, a.q, N, rowA);
    const float lA = rowA < N ? a.lse[rowA] * OLOG2E : 0.f, lB = rowB < N ? a.lse[rowB] * OLOG2E : 0.f;
    const int64_t IA = rowA / a.B, IB = rowB / a.B;
    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float dA = 0.f, dB = 0.f;  // kept mass of the rows (this thread's columns)

    const int64_t rlast_cta = (r0 + OBM < N ? r0 + OBM : N) - 1;
    const int nt = (int)(rlast_cta / OBN) + 1;
    // A tile is needed when some row of the CTA keeps some block it meets (all of them without a mask).
    auto needed = [&](int it) -> bool {
        if (!a.mask) return true;
        const int64_t c0 = (int64_t)it * OBN, c1 = (c0 + OBN < N ? c0 + OBN : N) - 1;
        const int64_t I0 = r0 / a.B, I1 = rlast_cta / a.B, J0 = c0 / a.B, J1 = c1 / a.B;
        int any = 0;
        for (int64_t x = threadIdx.x; x < (I1 - I0 + 1) * (J1 - J0 + 1); x += OTHREADS) {
            const int64_t I = I0 + x / (J1 - J0 + 1), J = J0 + x % (J1 - J0 + 1);
            any |= J <= I && a.mask[I * a.nb + J];
        }
        return __syncthreads_or(any);
    };
    // the tiles to visit, in order; prefetch the next needed one while computing the current
    int cur = 0;
    while (cur < nt && !needed(cur)) cur++;
    int buf = 0;
    if (cur < nt) {
        load_tile<D>(Ks, a.k, N, (int64_t)cur * OBN);
        load_tile<D>(Vs, a.v, N, (int64_t)cur * OBN);
        cp_async_commit();
    }
    while (cur < nt) {
        int nxt = cur + 1;
        while (nxt < nt && !needed(nxt)) nxt++;
        if (nxt < nt) {
            load_tile<D>(Ks + (buf ^ 1) * OBN * ldt<D>(), a.k, N, (int64_t)nxt * OBN);
            load_tile<D>(Vs + (buf ^ 1) * OBN * ldt<D>(), a.v, N, (int64_t)nxt * OBN);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const int64_t cw = (int64_t)cur * OBN;
        const __half *Kw = Ks + buf * OBN * ldt<D>(), *Vw = Vs + buf * OBN * ldt<D>();
        if (cw <= rw + 15 && rw < N) {
            float s[8][4];
#pragma unroll
            for (int n = 0; n < 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < D / 32; kk++)
#pragma unroll
                for (int n = 0; n < 8; n++) {
                    uint32_t b[4];
                    ldmatrix_x4(b, Kw + (n * 8 + (lane & 7)) * ldt<D>() + kk * 32 + (lane >> 3) * 8);
                    mma_f16_16816(s[n], qf[2 * kk], b[0], b[1]);
                    mma_f16_16816(s[n], qf[2 * kk + 1], b[2], b[3]);
                }
            // P = exp(z - lse) on kept causal elements, rounded to float16 (the mass counted as rounded)
            uint32_t pf[4][4];  // A fragments of P, one per 16 keys
#pragma unroll
            for (int n = 0; n < 8; n++) {
                const int64_t col0 = cw + n * 8 + 2 * t, J = (cw + n * 8) / a.B;
                const bool kA = !a.mask || (J <= IA && a.mask[IA * a.nb + J]);
                const bool kB = !a.mask || (J <= IB && a.mask[IB * a.nb + J]);
                float p[4];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int64_t row = e < 2 ? rowA : rowB, col = col0 + (e & 1);
                    const bool keep = (e < 2 ? kA : kB) && col <= row && row < N;
                    p[e] = keep ? fast_exp2(fmaf(s[n][e], a.scale2, -(e < 2 ? lA : lB))) : 0.f;
                }
                const uint32_t h01 = pack_half2(p[0], p[1]), h23 = pack_half2(p[2], p[3]);
                const float2 r01 = __half22float2(*(const __half2 *)&h01), r23 = __half22float2(*(const __half2 *)&h23);
                dA += r01.x + r01.y, dB += r23.x + r23.y;
                pf[n >> 1][(n & 1) * 2 + 0] = h01;  // rows g: keys 2t (n even: a0, n odd: a2)
                pf[n >> 1][(n & 1) * 2 + 1] = h23;  // rows g + 8 (a1 / a3)
            }
            // O += P V: k = 16 keys per step, n = 8 dims per mma; V fragments by transposed ldmatrix
#pragma unroll
            for (int ks = 0; ks < 4; ks++) {
                const uint32_t af[4] = {pf[ks][0], pf[ks][1], pf[ks][2], pf[ks][3]};
#pragma unroll
                for (int n = 0; n < D / 8; n += 2) {
                    uint32_t b[4];
                    ldmatrix_x4_trans(b, Vw + (ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ldt<D>() + n * 8 + (lane >> 4) * 8);
                    mma_f16_16816(o[n], af, b[0], b[1]);
                    mma_f16_16816(o[n + 1], af, b[2], b[3]);
                }
            }
        }
        __syncthreads();
        cur = nxt, buf ^= 1;
    }
    // the rows' kept mass: the 4 lanes of a row
    dA += __shfl_xor_sync(0xffffffffu, dA, 1), dA += __shfl_xor_sync(0xffffffffu, dA, 2);
    dB += __shfl_xor_sync(0xffffffffu, dB, 1), dB += __shfl_xor_sync(0xffffffffu, dB, 2);
    double sum = 0;
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int64_t row = e < 2 ? rowA : rowB;
            if (row >= N) continue;
            const int64_t at = row * D + n * 8 + 2 * t + (e & 1);
            if (!a.mask) {  // O itself (its mass is 1 up to rounding: divided by it, as O' is)
                const float den = e < 2 ? dA : dB, y = den > 0 ? o[n][e] / den : 0.f;
                a.O[at] = y;
                sum += (double)y * y;
            } else {
                const float den = e < 2 ? dA : dB;
                const double y = (double)a.O[at] - (den > 0 ? (double)o[n][e] / den : 0.0);
                sum += y * y;
            }
        }
#pragma unroll
    for (int off = 16; off; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) atomicAdd(&a.acc[a.mask ? 1 : 0], sum);
}

}  // namespace

struct gpu_output {
    int64_t N, nb;
    int d, B;
    float *stage;       // (N, d) upload buffer
    __half *q, *k, *v;  // (N, d)
    float *lse, *O;     // (N), (N, d)
    uint8_t *mask;      // (nb, nb)
    double *acc;        // (2)
    unsigned *overflow; // an input beyond the float16 range
};

static const double GiB = 1024.0 * 1024.0 * 1024.0;

extern "C" int gpu_output_init(gpu_output **out, int64_t N, int d, int B, skel_err *e) {
    *out = NULL;
    if (d != 64 && d != 128) return skel_fail(e, "head_dim %d: the GPU output error handles 64 or 128", d);
    gpu_output *g = (gpu_output *)calloc(1, sizeof *g);
    CHECK(g);
    g->N = N, g->d = d, g->B = B, g->nb = (N + B - 1) / B;
    const size_t nd = (size_t)N * d;
    void **bufs[] = {(void **)&g->stage, (void **)&g->q, (void **)&g->k, (void **)&g->v, (void **)&g->lse,
                     (void **)&g->O, (void **)&g->mask, (void **)&g->acc, (void **)&g->overflow};
    const size_t sizes[] = {nd * sizeof(float), nd * sizeof(__half), nd * sizeof(__half), nd * sizeof(__half),
                            (size_t)N * sizeof(float), nd * sizeof(float), (size_t)(g->nb * g->nb), 2 * sizeof(double),
                            sizeof(unsigned)};
    size_t need = 0;
    for (size_t x = 0; x < sizeof sizes / sizeof sizes[0]; x++) need += sizes[x];
    for (size_t x = 0; x < sizeof sizes / sizeof sizes[0]; x++) {
        cudaError_t err = cudaMalloc(bufs[x], sizes[x]);
        if (err != cudaSuccess) {
            cudaGetLastError();
            size_t free_b = 0, total_b = 0;
            CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
            gpu_output_free(g);
            return skel_fail(e, "GPU out of memory: the output error of a head of N = %lld tokens (d = %d) needs %.2f GiB of device memory; %.2f GiB of %.2f GiB was free",
                             (long long)N, d, need / GiB, free_b / GiB, total_b / GiB);
        }
    }
    CUDA_CHECK(cudaMemset(g->overflow, 0, sizeof(unsigned)));
    CUDA_CHECK(cudaFuncSetAttribute(output_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)out_smem<64>()));
    CUDA_CHECK(cudaFuncSetAttribute(output_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)out_smem<128>()));
    *out = g;
    return 0;
}

extern "C" void gpu_output_free(gpu_output *g) {
    if (!g) return;
    void *bufs[] = {g->stage, g->q, g->k, g->v, g->lse, g->O, g->mask, g->acc, g->overflow};
    for (size_t x = 0; x < sizeof bufs / sizeof bufs[0]; x++)
        if (bufs[x]) CUDA_CHECK(cudaFree(bufs[x]));
    free(g);
}

static void upload_half(gpu_output *g, __half *dst, const float *src) {
    const int64_t nd = g->N * g->d;
    CUDA_CHECK(cudaMemcpy(g->stage, src, sizeof(float) * nd, cudaMemcpyHostToDevice));
    to_half_kernel<<<1024, 256>>>(dst, g->stage, nd, g->overflow);
    CUDA_CHECK_LAUNCH();
}

extern "C" int gpu_output_error(gpu_output *g, const float *q, const float *k, const float *v, int kv_changed,
                                const float *lse, const uint8_t *const *masks, int nmasks, double *err, skel_err *e) {
    const int64_t N = g->N, nb = g->nb;
    // the flag covers q and the k, v on the device: cleared when those change (a call that saw it set
    // failed, so it is clear otherwise)
    if (kv_changed) CUDA_CHECK(cudaMemsetAsync(g->overflow, 0, sizeof(unsigned)));
    upload_half(g, g->q, q);
    if (kv_changed) upload_half(g, g->k, k), upload_half(g, g->v, v);
    unsigned overflow = 0;
    CUDA_CHECK(cudaMemcpy(&overflow, g->overflow, sizeof overflow, cudaMemcpyDeviceToHost));
    if (overflow) return skel_fail(e, "an input value exceeds the float16 range (|x| > 65504); use --device cpu");
    CUDA_CHECK(cudaMemcpy(g->lse, lse, sizeof(float) * N, cudaMemcpyHostToDevice));
    out_args a;
    memset(&a, 0, sizeof a);
    a.q = g->q, a.k = g->k, a.v = g->v, a.lse = g->lse, a.N = N, a.nb = nb, a.B = g->B;
    a.scale2 = (float)(OLOG2E / sqrt((double)g->d));
    a.O = g->O, a.acc = g->acc;
    const unsigned grid = (unsigned)((N + OBM - 1) / OBM);
    double norm2 = 0;
    for (int m = -1; m < nmasks; m++) {  // O first, then each mask against it
        CUDA_CHECK(cudaMemsetAsync(g->acc, 0, 2 * sizeof(double)));
        a.mask = NULL;
        if (m >= 0) {
            CUDA_CHECK(cudaMemcpy(g->mask, masks[m], (size_t)(nb * nb), cudaMemcpyHostToDevice));
            a.mask = g->mask;
        }
        if (g->d == 64) output_kernel<64><<<grid, OTHREADS, out_smem<64>()>>>(a);
        else output_kernel<128><<<grid, OTHREADS, out_smem<128>()>>>(a);
        CUDA_CHECK_LAUNCH();
        double acc[2];
        CUDA_CHECK(cudaMemcpy(acc, g->acc, sizeof acc, cudaMemcpyDeviceToHost));
        if (m < 0) norm2 = acc[0];
        else err[m] = norm2 > 0 ? sqrt(acc[1] / norm2) : NAN;
    }
    return 0;
}
