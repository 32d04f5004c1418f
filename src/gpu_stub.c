// gpu_stub.c: the GPU entry points of gpu.h for builds without nvcc (SKEL_HAVE_CUDA undefined).
#include "gpu.h"

#ifndef SKEL_HAVE_CUDA

#define NO_CUDA "built without CUDA (nvcc was not found when this binary was built)"

int gpu_probe(char *name, size_t n, skel_err *e) {
    if (name && n) name[0] = 0;
    return skel_fail(e, NO_CUDA), 0;
}

int gpu_exact_supported(int d, int B, skel_err *e) { return skel_fail(e, NO_CUDA), 0; }

int gpu_device_count(void) { return 0; }

int gpu_set_device(int dev, skel_err *e) { return skel_fail(e, NO_CUDA); }

int gpu_exact_init(gpu_exact **g, int64_t N, int d, int B, int image_size, double eps, skel_err *e) {
    *g = NULL;
    return skel_fail(e, NO_CUDA);
}

void gpu_exact_free(gpu_exact *g) {}

int gpu_exact_compute(gpu_exact *g, exact_stats *st, const float *q, const float *k, int k_changed,
                      gpu_exact_times *t, skel_err *e) {
    return skel_fail(e, NO_CUDA);
}

int gpu_decomp_init(gpu_decomp **g, int64_t N, int d, const decomp_params *prm, int B, skel_err *e) {
    *g = NULL;
    return skel_fail(e, NO_CUDA);
}

void gpu_decomp_free(gpu_decomp *g) {}

int gpu_decomp_compute(gpu_decomp *g, decomp *D, const float *q, const float *k, int k_changed, int qk_f16,
                       const double *inv_freq, const int32_t *pos, rope_layout layout, const mask_params *mp,
                       uint8_t *mask, double *pbs, gpu_decomp_times *t, skel_err *e) {
    return skel_fail(e, NO_CUDA);
}

void gpu_exact_device_qk(const gpu_exact *g, const void **q, const void **k, int64_t *N, int *d) {
    *q = *k = NULL, *N = 0, *d = 0;
}

int gpu_methods_init(gpu_methods **g, int64_t N, int d, const methods_params *p, skel_err *e) {
    *g = NULL;
    return skel_fail(e, NO_CUDA);
}

void gpu_methods_free(gpu_methods *g) {}

int gpu_xattention_scores(gpu_methods *g, const gpu_exact *x, double *score, skel_err *e) {
    return skel_fail(e, NO_CUDA);
}

int gpu_output_init(gpu_output **g, int64_t N, int d, int B, skel_err *e) {
    *g = NULL;
    return skel_fail(e, NO_CUDA);
}

void gpu_output_free(gpu_output *g) {}

int gpu_output_error(gpu_output *g, const float *q, const float *k, const float *v, int kv_changed,
                     const float *lse, const uint8_t *const *masks, int nmasks, double *err, skel_err *e) {
    return skel_fail(e, NO_CUDA);
}

#endif
