// make bench: CPU timings of the pipeline per head at N = 4K, 16K, 32K with d = 128, and the exact
// pass's GFLOP/s against this machine's FP32 FMA peak, measured in the same run. Not a test.
//
// FLOP count: 2 N^2 d / 2 per QK^T pass over the causal half; the exact pass makes two passes.
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas_core.h"
#include "decomp.h"
#include "exact.h"
#include "mask.h"
#include "model.h"
#include "rope.h"

// Peak: each thread runs 12 independent FMA chains on 512-bit (or 256-bit) registers.
__attribute__((target("avx512f"))) static double fma_loop512(long iters) {
    __m512 a[12], b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
    for (int r = 0; r < 12; r++) a[r] = _mm512_set1_ps((float)r);
    for (long t = 0; t < iters; t++)
        for (int r = 0; r < 12; r++) a[r] = _mm512_fmadd_ps(a[r], b, c);
    float s = 0, out[16];
    for (int r = 0; r < 12; r++) {
        _mm512_storeu_ps(out, a[r]);
        s += out[0];
    }
    return s;
}
__attribute__((target("avx2,fma"))) static double fma_loop256(long iters) {
    __m256 a[12], b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
    for (int r = 0; r < 12; r++) a[r] = _mm256_set1_ps((float)r);
    for (long t = 0; t < iters; t++)
        for (int r = 0; r < 12; r++) a[r] = _mm256_fmadd_ps(a[r], b, c);
    float s = 0, out[8];
    for (int r = 0; r < 12; r++) {
        _mm256_storeu_ps(out, a[r]);
        s += out[0];
    }
    return s;
}

static double measure_peak(int *width) {
    __builtin_cpu_init();
    int w512 = __builtin_cpu_supports("avx512f");
    *width = w512 ? 512 : 256;
    const long iters = 20000000;
    double sink = 0, best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = skel_now();
#pragma omp parallel reduction(+ : sink)
        sink += w512 ? fma_loop512(iters) : fma_loop256(iters);
        double t = skel_now() - t0;
        double flops = 2.0 * 12 * (*width / 32) * (double)iters * omp_get_max_threads();
        best = fmax(best, flops / t);
    }
    if (sink == 1.2345) printf(" ");
    return best;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_fix(argv);  // OpenBLAS's kernels for this CPU, as skel gets them
    int width;
    double peak = measure_peak(&width);
    printf("threads: %d; FP32 FMA peak measured with %d-bit FMA chains: %.1f GFLOP/s\n", omp_get_max_threads(), width,
           peak / 1e9);
    printf("%8s %12s %12s %12s %14s %10s\n", "N", "exact ms", "decomp ms", "mask ms", "exact GFLOP/s", "of peak");
    const int d = 128, reps = 3;
    const int64_t sizes[] = {4096, 16384, 32768};
    for (int si = 0; si < 3; si++) {
        const int64_t N = sizes[si];
        float *q = xmalloc(sizeof(float) * N * d), *k = xmalloc(sizeof(float) * N * d);
        double *freq = xmalloc(sizeof(double) * d / 2);
        int32_t *pos = xmalloc(sizeof(int32_t) * N);
        for (int x = 0; x < d / 2; x++) freq[x] = pow(5e5, -2.0 * x / d);
        for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)i;
        srand(7);  // fixed seed: Gaussian-ish rows with a shared direction, as real heads have
        for (int64_t x = 0; x < N * d; x++) {
            q[x] = (float)((rand() / (double)RAND_MAX - 0.5) * 2.0 + (x % d < 8 ? 1.5 : 0));
            k[x] = (float)((rand() / (double)RAND_MAX - 0.5) * 2.0 + (x % d < 8 ? 1.0 : 0));
        }
        rope_apply(q, q, N, d, freq, pos, ROPE_HALF);
        rope_apply(k, k, N, d, freq, pos, ROPE_HALF);
        double te[8], td[8], tm[8];
        const int64_t nb = (N + 63) / 64;
        uint8_t *mask = xmalloc((size_t)(nb * nb));
        for (int r = 0; r <= reps; r++) {  // run 0 is the warm-up
            exact_stats st;
            exact_stats_init(&st, N, d, 64, 1024, 0.8);
            double t0 = skel_now();
            exact_compute(&st, q, k, NULL, NULL, 0);
            double t1 = skel_now();
            decomp dc;
            decomp_params dp = {.S = 64, .T = 64, .M = 0, .ridge = 1e-3, .seed = 1};
            decomp_init(&dc, N, d, &dp);
            skel_err e;
            if (decomp_compute(&dc, q, k, freq, pos, ROPE_HALF, &e)) {
                fprintf(stderr, "bench: %s\n", e.msg);
                return 1;
            }
            double t2 = skel_now();
            mask_params mp = {.B = 64, .S = 64, .T = 64, .eps = 0.8};
            mask_skeleton(mask, dc.s, dc.v, dc.h, N, &mp);
            double t3 = skel_now();
            if (r) te[r - 1] = t1 - t0, td[r - 1] = t2 - t1, tm[r - 1] = t3 - t2;
            exact_stats_free(&st);
            decomp_free(&dc);
        }
        qsort(te, reps, sizeof(double), cmp_d);
        qsort(td, reps, sizeof(double), cmp_d);
        qsort(tm, reps, sizeof(double), cmp_d);
        double gflops = 2 * (2.0 * N * N * d / 2) / te[reps / 2] / 1e9;
        printf("%8lld %12.1f %12.1f %12.2f %14.1f %9.1f%%\n", (long long)N, 1e3 * te[reps / 2], 1e3 * td[reps / 2],
               1e3 * tm[reps / 2], gflops, 100 * gflops * 1e9 / peak);
        free(q), free(k), free(freq), free(pos), free(mask);
    }

    // The model runner's prefill (skel dump's forward pass), when make model has fetched it.
    const char *gguf = "data/model/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (access(gguf, R_OK) != 0) {
        printf("\nprefill: %s not present (make model), skipped\n", gguf);
        return 0;
    }
    printf("\nprefill, SmolLM2-135M (all 30 layers, no dump), median of repeats:\n");
    const int toks[] = {2048, 8192}, reps_m[] = {3, 1};
    for (int t = 0; t < 2; t++) {
        skel_err e;
        double tps = model_bench_prefill(gguf, toks[t], reps_m[t], &e);
        if (tps < 0) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        printf("%8d tokens: %8.0f tokens/s\n", toks[t], tps);
    }
    return 0;
}
