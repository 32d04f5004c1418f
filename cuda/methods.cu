// methods.cu: GPU twin of part of src/methods.c, the compared methods' heavy step: XAttention's
// antidiagonal block scores (xattention_scores), quadratic in N (N^2 d / (2 S) multiply-adds), where
// the other methods are linear. The selection from the scores stays on the host
// (xattention_select), as do the linear methods.
//   input:  the float16 q and k of the head the exact pass last computed (gpu_exact keeps them);
//   Qr:     the strided query groups, row a = (q_{aS+S-1}, ..., q_{aS}) (S d halfs), made on the device;
//   Kr:     k itself seen as (N / S, S d) rows, row b = (k_{bS}, ..., k_{bS+S-1});
//   Z:      c Qr Kr^T for a band of strided rows at a time (cuBLAS, float16 in, float32 accumulate);
//   score:  per strided row a, the softmax over b <= a in double (as the CPU), summed into the
//           (a / per, b / per) block of score (per = xa_block / S) with double atomics.
// The CPU computes Z from the float32 q, k; with float16 dumps (the usual case) the inputs are the
// same numbers and only the summation order differs.
#include <math.h>
#include <string.h>

#include "blas_check.cuh"
#include "gpu_common.cuh"

extern "C" {
#include "gpu.h"
#include "methods.h"
}

namespace {

constexpr size_t Z_BYTES = (size_t)256 << 20;  // the band of Z computed at a time

// Qr row a, t-th group of d: q row aS + S - 1 - t.
__global__ void xa_stride_q_kernel(__half *Qr, const __half *q, int64_t ns, int S, int d) {
    const int64_t w = (int64_t)S * d, n = ns * w / 8;  // 16-byte chunks
    for (int64_t x = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; x < n; x += (int64_t)gridDim.x * blockDim.x) {
        const int64_t e = x * 8, a = e / w, r = e % w, t = r / d, c = r % d;
        *(uint4 *)(Qr + e) = *(const uint4 *)(q + (a * S + S - 1 - t) * d + c);
    }
}

__device__ __forceinline__ double block_sum_d(double x, double *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    __syncthreads();
    if (lane == 0) sh[wid] = x;
    __syncthreads();
    double t = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += sh[w];
    return t;
}

__device__ __forceinline__ float block_max_f(float x, float *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    __syncthreads();
    if (lane == 0) sh[wid] = x;
    __syncthreads();
    float t = -INFINITY;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) t = fmaxf(t, sh[w]);
    return t;
}

// One CTA per strided row a in [a0, a1): its softmax over b <= a, summed per block of `per` keys.
__global__ void xa_rows_kernel(const float *Z, int64_t ldz, int64_t a0, int per, int64_t nbx, double *score) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    const int64_t a = a0 + blockIdx.x, len = a + 1;
    const float *z = Z + (int64_t)blockIdx.x * ldz;
    float mx = -INFINITY;
    for (int64_t b = threadIdx.x; b < len; b += blockDim.x) mx = fmaxf(mx, z[b]);
    mx = block_max_f(mx, shf);
    double l = 0;
    for (int64_t b = threadIdx.x; b < len; b += blockDim.x) l += exp((double)z[b] - mx);
    l = block_sum_d(l, shd);
    // key block J = b / per: a thread per block, its `per` keys in a row
    const int64_t I = a / per, nJ = (len + per - 1) / per;
    for (int64_t J = threadIdx.x; J < nJ; J += blockDim.x) {
        double acc = 0;
        const int64_t b1 = (J + 1) * per < len ? (J + 1) * per : len;
        for (int64_t b = J * per; b < b1; b++) acc += exp((double)z[b] - mx) / l;
        if (acc != 0) atomicAdd(&score[I * nbx + J], acc);
    }
}

}  // namespace

struct gpu_methods {
    int64_t N, ns, nbx, band;  // band: strided rows per GEMM
    int d, S, per;
    float c;
    __half *Qr;     // (ns, S d)
    float *Z;       // (band, ns)
    double *score;  // (nbx, nbx)
    cublasHandle_t blas;
};

static const double GiB = 1024.0 * 1024.0 * 1024.0;

extern "C" int gpu_methods_init(gpu_methods **out, int64_t N, int d, const methods_params *p, skel_err *e) {
    *out = NULL;
    if (p->xa_stride < 1 || p->xa_block % p->xa_stride || (p->xa_stride * d) % 8)
        return skel_fail(e, "XAttention on the GPU: block %d must be a multiple of the stride %d", p->xa_block, p->xa_stride);
    gpu_methods *g = (gpu_methods *)calloc(1, sizeof *g);
    CHECK(g);
    g->N = N, g->d = d, g->S = p->xa_stride, g->per = p->xa_block / p->xa_stride;
    g->ns = N / g->S;
    g->nbx = xattention_blocks(N, p);
    g->c = (float)(1 / (sqrt((double)d) * g->S));
    const int64_t ns = g->ns > 0 ? g->ns : 1;
    g->band = (int64_t)(Z_BYTES / (sizeof(float) * ns));
    if (g->band < 1) g->band = 1;
    if (g->band > ns) g->band = ns;
    const size_t sizes[3] = {sizeof(__half) * ns * g->S * d, sizeof(float) * g->band * ns,
                             sizeof(double) * g->nbx * g->nbx};
    void **bufs[3] = {(void **)&g->Qr, (void **)&g->Z, (void **)&g->score};
    for (int x = 0; x < 3; x++) {
        cudaError_t err = cudaMalloc(bufs[x], sizes[x]);
        if (err != cudaSuccess) {
            cudaGetLastError();
            size_t free_b = 0, total_b = 0;
            CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
            gpu_methods_free(g);
            return skel_fail(e, "GPU out of memory: XAttention's scores for N = %lld tokens need %.2f GiB of device memory; %.2f GiB of %.2f GiB was free",
                             (long long)N, (sizes[0] + sizes[1] + sizes[2]) / GiB, free_b / GiB, total_b / GiB);
        }
    }
    CUBLAS_CHECK(cublasCreate(&g->blas));
    *out = g;
    return 0;
}

extern "C" void gpu_methods_free(gpu_methods *g) {
    if (!g) return;
    if (g->Qr) CUDA_CHECK(cudaFree(g->Qr));
    if (g->Z) CUDA_CHECK(cudaFree(g->Z));
    if (g->score) CUDA_CHECK(cudaFree(g->score));
    if (g->blas) CUBLAS_CHECK(cublasDestroy(g->blas));
    free(g);
}

extern "C" int gpu_xattention_scores(gpu_methods *g, const gpu_exact *x, double *score, skel_err *e) {
    const void *qv, *kv;
    int64_t N;
    int d;
    gpu_exact_device_qk(x, &qv, &kv, &N, &d);
    const __half *q = (const __half *)qv, *k = (const __half *)kv;
    if (N != g->N || d != g->d) return skel_fail(e, "gpu_xattention_scores: head shape %lld x %d, expected %lld x %d", (long long)N, d, (long long)g->N, g->d);
    const int64_t ns = g->ns, w = (int64_t)g->S * d, nbx = g->nbx;
    CUDA_CHECK(cudaMemsetAsync(g->score, 0, sizeof(double) * nbx * nbx));
    if (ns > 0) {
        xa_stride_q_kernel<<<1024, 256>>>(g->Qr, q, ns, g->S, d);
        CUDA_CHECK_LAUNCH();
        const float one = g->c, zero = 0.f;
        for (int64_t a0 = 0; a0 < ns; a0 += g->band) {
            const int64_t a1 = a0 + g->band < ns ? a0 + g->band : ns, nc = a1;  // keys b < a1 cover b <= a
            // row-major Z (a1 - a0, nc) = Qr[a0:a1] Kr[0:nc]^T, as column-major Z^T = Kr Qr^T
            CUBLAS_CHECK(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nc, (int)(a1 - a0), (int)w, &one, k,
                                         CUDA_R_16F, (int)w, g->Qr + a0 * w, CUDA_R_16F, (int)w, &zero, g->Z,
                                         CUDA_R_32F, (int)nc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            xa_rows_kernel<<<(unsigned)(a1 - a0), 256>>>(g->Z, nc, a0, g->per, nbx, g->score);
            CUDA_CHECK_LAUNCH();
        }
    }
    CUDA_CHECK(cudaMemcpy(score, g->score, sizeof(double) * nbx * nbx, cudaMemcpyDeviceToHost));
    return 0;
}
