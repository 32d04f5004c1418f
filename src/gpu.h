// gpu.h: the GPU backend (cuda/*.cu) as seen from C. Every entry point exists in every build: built
// without nvcc, src/gpu_stub.c supplies them and they fail with "built without CUDA".
//
// One head at a time. The exact statistics (SPEC section 2) run on the device and fill the same
// exact_stats as the CPU reference (src/exact.c); the device buffers are allocated once per head
// shape and reused, the keys stay on the device between the query heads of a GQA group.
#ifndef SKEL_GPU_H
#define SKEL_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "decomp.h"
#include "exact.h"
#include "mask.h"
#include "methods.h"

#ifdef __cplusplus
extern "C" {
#endif

// 1 if a CUDA device is usable (its name into name[n] when name is not NULL); 0 with the reason
// in e otherwise (no device, no driver, or built without CUDA).
int gpu_probe(char *name, size_t n, skel_err *e);

// CUDA devices visible (0 without a driver or a build without CUDA), and selecting one for the calling
// host thread: every gpu_* object made and used afterwards in that thread lives on it.
int gpu_device_count(void);
int gpu_set_device(int dev, skel_err *e);

// Whether the GPU path handles this shape (d and B); 0 with the reason in e.
int gpu_exact_supported(int d, int B, skel_err *e);

typedef struct gpu_exact gpu_exact;

// Device memory for heads of N tokens (the other arguments as in exact_stats_init). When the device
// lacks the memory, fails with one line giving what the head needs and what is free.
int gpu_exact_init(gpu_exact **g, int64_t N, int d, int B, int image_size, double eps, skel_err *e);
void gpu_exact_free(gpu_exact *g);

typedef struct {
    double upload_ms;  // host -> device copy and conversion to float16 of q (and k)
    double pass1_ms;   // lse and the z range
    double pass2_ms;   // block mass and max, counts, histograms, moments, images
    double finish_ms;  // block sparsity, pooled images from whole blocks
    double download_ms;  // results back to the host
} gpu_exact_times;

// q, k: (N, d) float32 post-RoPE rows. k_changed = 0 keeps the keys of the previous call (GQA).
// Fills st (made by exact_stats_init with the same shape); st = NULL runs the passes without
// copying results back (benchmarks). Times (device events) into t when not NULL.
int gpu_exact_compute(gpu_exact *g, exact_stats *st, const float *q, const float *k, int k_changed,
                      gpu_exact_times *t, skel_err *e);

// The device copies (float16, (N, d) rows) of the q and k that the last gpu_exact_compute used.
void gpu_exact_device_qk(const gpu_exact *g, const void **q, const void **k, int64_t *N, int *d);

// ---------------------------------------------------------------------------- decomposition and mask
// GPU twin of decomp_compute (SPEC section 3) and of mask_skeleton's threshold-mode block scan
// (section 4), for one head shape; buffers reused across heads. B is the largest block size the
// masks will use.
typedef struct gpu_decomp gpu_decomp;

int gpu_decomp_init(gpu_decomp **g, int64_t N, int d, const decomp_params *prm, int B, skel_err *e);
void gpu_decomp_free(gpu_decomp *g);

typedef struct {
    double upload_ms;  // q (and k) to the device, the samples drawn
    double decomp_ms;  // SPEC section 3 on the device, including the 2d x 2d ridge solve
    double mask_ms;    // block vectors and the block scan
} gpu_decomp_times;

// q, k: (N, d) float32 post-RoPE rows; k_changed = 0 keeps the keys (and inv_freq, pos) of the last
// call. qk_f16 != 0 says that every query and key is a float16 value (an f16 dump's): the row
// statistics then leave out the products of the queries' float16 remainders, which are zero (a third of
// the Grams' tensor-core products), and multiply the window's and sinks' keys as float16 values, one
// product each, not split (with values that are not float16 this would cost ~2^-11 relative in those
// products, so pass it only from the dump's dtype). Fills D (made by decomp_init with the same
// N, d and parameters) as decomp_compute does. With mask (nb, nb) not NULL: the mask of mp, threshold
// or budget mode (a radix selection on the device, the same kept set as mask_skeleton), and the
// predicted block sparsity into *pbs.
int gpu_decomp_compute(gpu_decomp *g, decomp *D, const float *q, const float *k, int k_changed, int qk_f16,
                       const double *inv_freq, const int32_t *pos, rope_layout layout, const mask_params *mp,
                       uint8_t *mask, double *pbs, gpu_decomp_times *t, skel_err *e);

// ---------------------------------------------------------------------------- compared methods
// XAttention's block scores (xattention_scores in methods.h) on the device, for heads of N tokens:
// the quadratic step of the compared methods. The selection (xattention_select) stays on the host.
typedef struct gpu_methods gpu_methods;

int gpu_methods_init(gpu_methods **g, int64_t N, int d, const methods_params *p, skel_err *e);
void gpu_methods_free(gpu_methods *g);
// From the q and k that gpu_exact_compute last ran on (x): score (nbx, nbx) on the host,
// nbx = xattention_blocks(N, p).
int gpu_xattention_scores(gpu_methods *g, const gpu_exact *x, double *score, skel_err *e);

// ---------------------------------------------------------------------------- output error
// The relative output error ||O - O'||_F / ||O||_F of block masks (SPEC section 2, with values), the
// GPU twin of exact_compute's: flash-style passes over the kept blocks, float16 in, float32 sums.
typedef struct gpu_output gpu_output;

int gpu_output_init(gpu_output **g, int64_t N, int d, int B, skel_err *e);
void gpu_output_free(gpu_output *g);
// q, k, v (N, d) float32 rows (kv_changed = 0 keeps the last call's k and v), lse (N) from the exact
// statistics, masks[m] (nb, nb): err[m] for m < nmasks.
int gpu_output_error(gpu_output *g, const float *q, const float *k, const float *v, int kv_changed,
                     const float *lse, const uint8_t *const *masks, int nmasks, double *err, skel_err *e);

#ifdef __cplusplus
}
#endif

#endif
