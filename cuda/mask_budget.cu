// mask_budget.cu: budget mode of the skeleton mask on the device (mask_skeleton's selection in
// src/mask.c, SPEC section 4): after the forced blocks, the best-scoring others until `want` more
// are kept, ties at the cut broken in row-major order; a radix selection instead of the host's
// quickselect over (nb^2 / 2) scores (134M blocks at 1M tokens).
//   1. four 8-bit radix passes over the scores of the free causal blocks (as order-preserving
//      uint32 keys, largest first) find the cut: the want-th largest score, and how many blocks
//      equal to it are still to be kept;
//   2. the ties per block row, and their exclusive prefix over rows (row-major order);
//   3. one warp per block row keeps the blocks above the cut and the first ties.
// The scores are recomputed in each pass from the block vectors (sB from Mb as the block scan does):
// the same float arithmetic as the CPU, so the kept set is the CPU's.
#include <stdint.h>

#include "gpu_common.cuh"
#include "mask_budget.cuh"

namespace {

struct select_state {
    uint32_t prefix;     // the cut's key bits found so far
    uint32_t pad;
    unsigned long long k;  // rank (1-based) of the cut among the blocks that share the prefix
};

__device__ __forceinline__ uint32_t key_of(float x) {
    const uint32_t u = __float_as_uint(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // larger float, larger key
}

__device__ __forceinline__ float score_at(const float *Mb, const float *vB, const float *hB, int64_t I, int64_t J) {
    const int64_t kk = I - J;
    const float sB = kk == 0 ? Mb[0] : 0.5f * (Mb[kk - 1] + Mb[kk]);
    return sB + vB[J] + hB[I];
}

// Histogram of key byte `shift / 8` among free causal blocks whose higher key bits equal the prefix.
__global__ void radix_hist_kernel(unsigned long long *hist, const select_state *st, const uint8_t *mask, const float *Mb,
                                  const float *vB, const float *hB, int64_t nb, int shift) {
    __shared__ unsigned h[256];
    for (int x = threadIdx.x; x < 256; x += blockDim.x) h[x] = 0;
    __syncthreads();
    const uint32_t prefix = st->prefix, hi_mask = shift == 24 ? 0u : ~0u << (shift + 8);
    for (int64_t I = blockIdx.y; I < nb; I += gridDim.y)
        for (int64_t J = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; J <= I; J += (int64_t)gridDim.x * blockDim.x) {
            if (mask[I * nb + J]) continue;
            const uint32_t key = key_of(score_at(Mb, vB, hB, I, J));
            if ((key & hi_mask) == (prefix & hi_mask)) atomicAdd(&h[(key >> shift) & 255u], 1u);
        }
    __syncthreads();
    for (int x = threadIdx.x; x < 256; x += blockDim.x)
        if (h[x]) atomicAdd(&hist[x], (unsigned long long)h[x]);
}

// The bin that holds the k-th largest: from the top bin down.
__global__ void radix_pick_kernel(unsigned long long *hist, select_state *st, int shift) {
    unsigned long long k = st->k, cum = 0;
    int b = 255;
    for (; b > 0; b--) {
        if (cum + hist[b] >= k) break;
        cum += hist[b];
    }
    st->prefix |= (uint32_t)b << shift;
    st->k = k - cum;
    for (int x = 0; x < 256; x++) hist[x] = 0;
}

__global__ void tie_count_kernel(unsigned long long *ties, const select_state *st, const uint8_t *mask, const float *Mb,
                                 const float *vB, const float *hB, int64_t nb) {
    const uint32_t cut = st->prefix;
    for (int64_t I = blockIdx.y; I < nb; I += gridDim.y) {
        unsigned c = 0;
        for (int64_t J = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; J <= I; J += (int64_t)gridDim.x * blockDim.x)
            c += !mask[I * nb + J] && key_of(score_at(Mb, vB, hB, I, J)) == cut;
        c = warp_sum(c);
        if ((threadIdx.x & 31) == 0 && c) atomicAdd(&ties[I], (unsigned long long)c);
    }
}

// Exclusive prefix of the per-row tie counts, in place (one CTA of 1024 threads).
__global__ void tie_scan_kernel(unsigned long long *ties, int64_t nb) {
    __shared__ unsigned long long part[1024];
    const int64_t per = (nb + blockDim.x - 1) / blockDim.x, a = threadIdx.x * per, b = a + per < nb ? a + per : nb;
    unsigned long long s = 0;
    for (int64_t x = a; x < b; x++) s += ties[x];
    part[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned long long run = 0;
        for (unsigned t = 0; t < blockDim.x; t++) {
            const unsigned long long v = part[t];
            part[t] = run, run += v;
        }
    }
    __syncthreads();
    unsigned long long run = part[threadIdx.x];
    for (int64_t x = a; x < b; x++) {
        const unsigned long long v = ties[x];
        ties[x] = run, run += v;
    }
}

// One warp per block row: keep the free blocks above the cut, and ties while their row-major rank
// is under the count still wanted.
__global__ void budget_mark_kernel(uint8_t *mask, const unsigned long long *tie_off, const select_state *st,
                                   const float *Mb, const float *vB, const float *hB, int64_t nb) {
    const int lane = threadIdx.x & 31;
    const int64_t I = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (I >= nb) return;
    const uint32_t cut = st->prefix;
    const unsigned long long k = st->k;
    unsigned long long rank = tie_off[I];
    for (int64_t J0 = 0; J0 <= I; J0 += 32) {
        const int64_t J = J0 + lane;
        bool keep = false, tie = false;
        if (J <= I && !mask[I * nb + J]) {
            const uint32_t key = key_of(score_at(Mb, vB, hB, I, J));
            keep = key > cut, tie = key == cut;
        }
        const unsigned bal = __ballot_sync(0xffffffffu, tie);
        if (tie && rank + __popc(bal & ((1u << lane) - 1u)) < k) keep = true;
        rank += __popc(bal);
        if (keep) mask[I * nb + J] = 1;
    }
}

}  // namespace

size_t gpu_mask_budget_scratch_bytes(int64_t nb) {
    return sizeof(select_state) + 256 * sizeof(unsigned long long) + (size_t)nb * sizeof(unsigned long long) + 64;
}

void gpu_mask_budget(uint8_t *mask, const float *Mb, const float *vB, const float *hB, int64_t nb, int64_t want,
                     void *scratch) {
    if (want <= 0) return;
    select_state *st = (select_state *)scratch;
    unsigned long long *hist = (unsigned long long *)(st + 1), *ties = hist + 256;
    select_state init = {0u, 0u, (unsigned long long)want};
    CUDA_CHECK(cudaMemcpyAsync(st, &init, sizeof init, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemsetAsync(hist, 0, 256 * sizeof(unsigned long long)));
    CUDA_CHECK(cudaMemsetAsync(ties, 0, (size_t)nb * sizeof(unsigned long long)));
    const dim3 gr((unsigned)((nb + 255) / 256 < 16 ? (nb + 255) / 256 : 16), (unsigned)(nb < 4096 ? nb : 4096));
    for (int shift = 24; shift >= 0; shift -= 8) {
        radix_hist_kernel<<<gr, 256>>>(hist, st, mask, Mb, vB, hB, nb, shift);
        CUDA_CHECK_LAUNCH();
        radix_pick_kernel<<<1, 1>>>(hist, st, shift);
        CUDA_CHECK_LAUNCH();
    }
    tie_count_kernel<<<gr, 256>>>(ties, st, mask, Mb, vB, hB, nb);
    CUDA_CHECK_LAUNCH();
    tie_scan_kernel<<<1, 1024>>>(ties, nb);
    CUDA_CHECK_LAUNCH();
    budget_mark_kernel<<<(unsigned)((nb + 7) / 8), 256>>>(mask, ties, st, Mb, vB, hB, nb);
    CUDA_CHECK_LAUNCH();
}
