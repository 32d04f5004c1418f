// dmma_shapes.cu: the double-precision mma shapes of sm_90 (m8n8k4, and m16n8k4 / k8 / k16), their
// fragment layouts checked against a host product, and their throughput (independent chains, a full
// GPU of warps). Not a test of the library: a workbench for the kernels that use them (ata_kernel in
// decomp.cu, the Cholesky in chol.cuh).
//   nvcc -O3 -arch=sm_90 -std=c++17 bench/dmma_shapes.cu -o build/dmma_shapes && ./build/dmma_shapes
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cuda_runtime.h>

#define CK(x)                                                                                  \
    do {                                                                                       \
        cudaError_t e_ = (x);                                                                  \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));         \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

// K = 4 (m8n8k4): lane (g, t) a[g][t], b[t][g], d[g][2t + e]
__device__ __forceinline__ void mma_884(double d[2], const double *a, const double *b) {
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};\n"
                 : "+d"(d[0]), "+d"(d[1]) : "d"(a[0]), "d"(b[0]));
}
// m16n8kK: a[i] = A[g + 8 (i % 2)][t + 4 (i / 2)], b[i] = B[t + 4 i][g], d[i] = D[g + 8 (i / 2)][2 t + i % 2]
// (the layout assumed here; main checks it)
__device__ __forceinline__ void mma_1684(double d[4], const double *a, const double *b) {
    asm volatile("mma.sync.aligned.m16n8k4.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                 : "+d"(d[0]), "+d"(d[1]), "+d"(d[2]), "+d"(d[3]) : "d"(a[0]), "d"(a[1]), "d"(b[0]));
}
__device__ __forceinline__ void mma_1688(double d[4], const double *a, const double *b) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+d"(d[0]), "+d"(d[1]), "+d"(d[2]), "+d"(d[3])
                 : "d"(a[0]), "d"(a[1]), "d"(a[2]), "d"(a[3]), "d"(b[0]), "d"(b[1]));
}
__device__ __forceinline__ void mma_16816(double d[4], const double *a, const double *b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5,%6,%7,%8,%9,%10,%11}, "
                 "{%12,%13,%14,%15}, {%0,%1,%2,%3};\n"
                 : "+d"(d[0]), "+d"(d[1]), "+d"(d[2]), "+d"(d[3])
                 : "d"(a[0]), "d"(a[1]), "d"(a[2]), "d"(a[3]), "d"(a[4]), "d"(a[5]), "d"(a[6]), "d"(a[7]),
                   "d"(b[0]), "d"(b[1]), "d"(b[2]), "d"(b[3]));
}

// One warp: D = A B for A (M x K) row-major, B (K x 8) row-major, with the assumed layouts.
template <int M, int K>
__global__ void layout_kernel(double *D, const double *A, const double *B) {
    const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    double a[8], b[4], d[4] = {0, 0, 0, 0};
    if constexpr (M == 8) {
        a[0] = A[g * K + t], b[0] = B[t * 8 + g];
        mma_884(d, a, b);
        D[g * 8 + 2 * t] = d[0], D[g * 8 + 2 * t + 1] = d[1];
    } else {
        for (int i = 0; i < 2 * K / 4; i++) a[i] = A[(g + 8 * (i % 2)) * K + t + 4 * (i / 2)];
        for (int i = 0; i < K / 4; i++) b[i] = B[(t + 4 * i) * 8 + g];
        if constexpr (K == 4) mma_1684(d, a, b);
        if constexpr (K == 8) mma_1688(d, a, b);
        if constexpr (K == 16) mma_16816(d, a, b);
        for (int i = 0; i < 4; i++) D[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2] = d[i];
    }
}

// Throughput: each warp runs NC independent accumulators through ITER steps.
template <int SHAPE>
__global__ void rate_kernel(double *out, int iters) {
    constexpr int NC = 8;
    double a[8], b[4], d[NC][4];
    for (int i = 0; i < 8; i++) a[i] = 1.0 + 1e-3 * (threadIdx.x + i);
    for (int i = 0; i < 4; i++) b[i] = 1.0 - 1e-3 * (threadIdx.x + i);
    for (int c = 0; c < NC; c++) d[c][0] = d[c][1] = d[c][2] = d[c][3] = 0;
    for (int it = 0; it < iters; it++)
#pragma unroll
        for (int c = 0; c < NC; c++) {
            if constexpr (SHAPE == 0) mma_884(d[c], a, b);
            if constexpr (SHAPE == 1) mma_1684(d[c], a, b);
            if constexpr (SHAPE == 2) mma_1688(d[c], a, b);
            if constexpr (SHAPE == 3) mma_16816(d[c], a, b);
        }
    double s = 0;
    for (int c = 0; c < NC; c++) s += d[c][0] + d[c][1] + d[c][2] + d[c][3];
    if (s == 12345.678) out[0] = s;  // keeps the work
}

template <int M, int K>
static double check_layout() {
    double hA[16 * 16], hB[16 * 8], hD[16 * 8], ref[16 * 8];
    for (int i = 0; i < M * K; i++) hA[i] = (double)((i * 37) % 101) / 7.0 - 5.0;
    for (int i = 0; i < K * 8; i++) hB[i] = (double)((i * 53) % 97) / 11.0 - 3.0;
    for (int r = 0; r < M; r++)
        for (int c = 0; c < 8; c++) {
            long double s = 0;
            for (int k = 0; k < K; k++) s += (long double)hA[r * K + k] * hB[k * 8 + c];
            ref[r * 8 + c] = (double)s;
        }
    double *dA, *dB, *dD;
    CK(cudaMalloc(&dA, sizeof hA));
    CK(cudaMalloc(&dB, sizeof hB));
    CK(cudaMalloc(&dD, sizeof hD));
    CK(cudaMemcpy(dA, hA, sizeof hA, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dB, hB, sizeof hB, cudaMemcpyHostToDevice));
    layout_kernel<M, K><<<1, 32>>>(dD, dA, dB);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hD, dD, sizeof hD, cudaMemcpyDeviceToHost));
    double err = 0;
    for (int i = 0; i < M * 8; i++) err = fmax(err, fabs(hD[i] - ref[i]) / (1 + fabs(ref[i])));
    cudaFree(dA), cudaFree(dB), cudaFree(dD);
    return err;
}

template <int SHAPE>
static void rate(const char *name, double flop_per_mma) {
    double *o;
    CK(cudaMalloc(&o, 8));
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const int blocks = sms * 4, threads = 256, iters = 2000;
    rate_kernel<SHAPE><<<blocks, threads>>>(o, 10);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    cudaEventRecord(e0);
    rate_kernel<SHAPE><<<blocks, threads>>>(o, iters);
    cudaEventRecord(e1);
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    const double n = (double)blocks * threads / 32 * iters * 8;
    printf("%-10s %8.3f ms  %6.2f TFLOP/s  %.3f mma/SM/ns\n", name, ms, n * flop_per_mma / ms / 1e9, n / sms / (ms * 1e6));
    cudaFree(o);
}

int main() {
    printf("layout (relative error against a long-double product):\n");
    printf("  m8n8k4   %.3g\n", check_layout<8, 4>());
    printf("  m16n8k4  %.3g\n", check_layout<16, 4>());
    printf("  m16n8k8  %.3g\n", check_layout<16, 8>());
    printf("  m16n8k16 %.3g\n", check_layout<16, 16>());
    printf("throughput (8 independent chains a warp, 4 blocks of 8 warps a SM):\n");
    rate<0>("m8n8k4", 2.0 * 8 * 8 * 4);
    rate<1>("m16n8k4", 2.0 * 16 * 8 * 4);
    rate<2>("m16n8k8", 2.0 * 16 * 8 * 8);
    rate<3>("m16n8k16", 2.0 * 16 * 8 * 16);
    return 0;
}
