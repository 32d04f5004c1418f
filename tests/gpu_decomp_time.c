// gpu_decomp_time: the GPU decomposition and threshold mask alone (cuda/decomp.cu), timed as gpu_bench
// times them (device events: decomposition from after the upload to v and h and the held-out fit
// statistics, then the mask; one warm-up, median of REPS calls) on gpu_bench's heads (seeded Gaussian
// rows, d = 128, S = T = 64, B = 64, eps 0.8), without the exact pass and SDPA, for A/B runs of decomp.cu
// in one GPU call. Not a test.
//   build/gpu_decomp_time [N,N,...]   (default 8192,32768,131072; GDT_D=64 for d = 64 heads)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp.h"
#include "gpu.h"
#include "mask.h"

#define REPS 21

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// xorshift64* and Box-Muller with gpu_bench's seed: the same rows as its heads.
static double gauss(uint64_t *s) {
    double u[2];
    for (int x = 0; x < 2; x++) {
        *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
        u[x] = ((*s * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
    }
    return sqrt(-2 * log(u[0] + 1e-300)) * cos(2 * M_PI * u[1]);
}

int main(int argc, char **argv) {
    int64_t sizes[8] = {8192, 32768, 131072};
    int nsizes = 3;
    if (argc > 1) {
        nsizes = 0;
        for (char *p = argv[1]; *p && nsizes < 8; p += *p == ',') sizes[nsizes++] = strtoll(p, &p, 10);
    }
    // GDT_D=64 times the d = 64 heads (rows_kernel<64, 2, ..>) instead
    const char *ds = getenv("GDT_D");
    const int gdt_d = ds ? atoi(ds) : 128;
    if (gdt_d != 64 && gdt_d != 128) {
        fprintf(stderr, "gpu_decomp_time: GDT_D=%s: head dimension must be 64 or 128\n", ds);
        return 2;
    }
    skel_err e;
    for (int z = 0; z < nsizes; z++) {
        const int64_t N = sizes[z];
        const int d = gdt_d;
        float *q = malloc(sizeof(float) * N * d), *k = malloc(sizeof(float) * N * d);
        double *inv_freq = malloc(sizeof(double) * d / 2);
        int32_t *pos = malloc(sizeof(int32_t) * N);
        if (!q || !k || !inv_freq || !pos) return 1;
        uint64_t s = 0x9e3779b97f4a7c15ULL ^ (uint64_t)N ^ ((uint64_t)d << 40);
        const double sd = sqrt(2.0);
        for (int64_t x = 0; x < N * d; x++) {
            q[x] = (float)(_Float16)(sd * gauss(&s)), k[x] = (float)(_Float16)(sd * gauss(&s));  // as gpu_bench
            (void)gauss(&s);  // gpu_bench draws v here
        }
        for (int x = 0; x < d / 2; x++) inv_freq[x] = pow(5e5, -2.0 * x / d);
        for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)i;
        decomp dc;
        decomp_params dp = {.S = 64, .T = 64, .M = 0, .ridge = 1e-3, .seed = 1};
        decomp_init(&dc, N, d, &dp);
        mask_params mp = {.B = 64, .S = 64, .T = 64, .eps = 0.8, .budget = 0};
        const int64_t nb = (N + mp.B - 1) / mp.B;
        uint8_t *mask = malloc((size_t)(nb * nb));
        gpu_decomp *GD;
        if (gpu_decomp_init(&GD, N, d, &dp, mp.B, &e)) {
            fprintf(stderr, "gpu_decomp_time: %s\n", e.msg);
            return 1;
        }
        gpu_decomp_times dt;
        double pbs, td[REPS], tk[REPS];
        for (int x = -1; x < REPS; x++) {  // x = -1: warm-up; qk_f16 = 1: the queries and keys are float16 values
            if (gpu_decomp_compute(GD, &dc, q, k, 1, 1, inv_freq, pos, ROPE_HALF, &mp, mask, &pbs, &dt, &e)) {
                fprintf(stderr, "gpu_decomp_time: %s\n", e.msg);
                return 1;
            }
            if (x >= 0) td[x] = dt.decomp_ms, tk[x] = dt.mask_ms;
        }
        qsort(td, REPS, sizeof(double), cmp_d);
        qsort(tk, REPS, sizeof(double), cmp_d);
        printf("N=%7lld d=%d: decomposition %.3f ms (min %.3f, max %.3f), mask %.3f ms, fit R^2 %.4f, predicted block sparsity %.4f\n",
               (long long)N, d, td[REPS / 2], td[0], td[REPS - 1], tk[REPS / 2], dc.fit_r2, pbs);
        gpu_decomp_free(GD);
        decomp_free(&dc);
        free(q), free(k), free(inv_freq), free(pos), free(mask);
    }
    return 0;
}
