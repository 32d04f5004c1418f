// gpu_common.cuh: what every cuda/*.cu shares: the CUDA_CHECK macro and small device helpers
// (mma.sync / ldmatrix / cp.async wrappers, fast exp2, order-preserving float encoding).
#ifndef SKEL_GPU_COMMON_CUH
#define SKEL_GPU_COMMON_CUH

#include <cuda_fp16.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

// Broken CUDA calls are internal errors: file, line and statement, then abort. (Running out of
// device memory is not: gpu_exact_init reports it as an ordinary error.)
#define CUDA_CHECK(stmt)                                                                          \
    do {                                                                                          \
        cudaError_t err_ = (stmt);                                                                \
        if (err_ != cudaSuccess) {                                                                \
            fprintf(stderr, "CUDA error at %s:%d: %s: %s\n", __FILE__, __LINE__, #stmt,           \
                    cudaGetErrorString(err_));                                                    \
            abort();                                                                              \
        }                                                                                         \
    } while (0)
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

// Programmatic dependent launch (sm_90): a kernel launched with launch_pdl may start before the kernel
// before it on its stream has finished; griddep_wait, its first statement, waits until that kernel has
// completed and its memory is visible (a no-op in a kernel launched without the attribute).
// griddep_launch lets this kernel's dependents be scheduled before it ends (small grids only: their
// CTAs wait on SMs, holding them).
__device__ __forceinline__ void griddep_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void griddep_launch() { asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); }

// 2^x with the SFU (relative error ~2^-22); 0 for x = -inf and below the float range.
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// Unsigned encoding that orders like the floats it encodes (for atomicMin / atomicMax).
__device__ __forceinline__ unsigned float_to_ordered(float f) {
    unsigned b = __float_as_uint(f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__host__ __device__ __forceinline__ float ordered_to_float(unsigned o) {
    unsigned b = (o & 0x80000000u) ? (o & 0x7fffffffu) : ~o;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16-byte global -> shared copy; zero-filled when !valid.
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int n>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(n));
}

// Four 8x8 b16 matrices from shared memory; lane l gives the address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// c (16x8, f32) += a (16x16, f16, row-major fragments) b (16x8, f16, column-major fragments).
__device__ __forceinline__ void mma_f16_16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 b16 matrices from shared memory, each transposed on the way (a row-major V tile as the
// column-major B operand of P V).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// warp-wide sums (float, double, integers), maxima and minima (float, double): every lane gets the result
template <typename T>
__device__ __forceinline__ T warp_sum(T x) {
#pragma unroll
    for (int o = 16; o; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
template <typename T>
__device__ __forceinline__ T warp_max(T x) {
#pragma unroll
    for (int o = 16; o; o >>= 1) x = fmax(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
template <typename T>
__device__ __forceinline__ T warp_min(T x) {
#pragma unroll
    for (int o = 16; o; o >>= 1) x = fmin(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// A warp's 16 query rows (rowA = its row g, rowA + 8) as mma A fragments, zero beyond N; q (N, D).
template <int D>
__device__ __forceinline__ void load_q_frags(uint32_t qf[D / 16][4], const __half *q, int64_t N, int64_t rowA) {
    const int t = threadIdx.x & 3;
    const int64_t rowB = rowA + 8;
#pragma unroll
    for (int s = 0; s < D / 16; s++) {
        const int col = s * 16 + 2 * t;
        qf[s][0] = rowA < N ? *(const uint32_t *)(q + rowA * D + col) : 0u;
        qf[s][1] = rowB < N ? *(const uint32_t *)(q + rowB * D + col) : 0u;
        qf[s][2] = rowA < N ? *(const uint32_t *)(q + rowA * D + col + 8) : 0u;
        qf[s][3] = rowB < N ? *(const uint32_t *)(q + rowB * D + col + 8) : 0u;
    }
}

// float32 -> float16, flagging values beyond the float16 range (static: one copy per file).
static __global__ void to_half_kernel(__half *out, const float *in, int64_t n, unsigned *overflow) {
    for (int64_t x = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; x < n; x += (int64_t)gridDim.x * blockDim.x) {
        float v = in[x];
        if (fabsf(v) > 65504.f) atomicOr(overflow, 1u);
        out[x] = __float2half_rn(v);
    }
}

#endif
